"""`robolearn train reward`: a calibrated success classifier from episode stores.

1. Episodes are split into training and validation episodes, per task and outcome (whole
   episodes: no frame of a training episode is ever validated on); every covered task keeps at
   least one successful episode on each side.
2. Frames are labelled by RoboFuME's recipe (robolearn.reward_models.labels) and the classifier is
   trained on 50/50 balanced batches of the training episodes' labelled frames, by the one
   training loop (robolearn.core.loop; no resume: a run is minutes). The episodes are read
   through the input pipeline (robolearn.data.pipeline, `input.*`: in RAM when they fit
   input.memory_mb, else streamed from the store's pack; only the success flags are held for
   every frame), batches by its FrameLoader (Grain: deterministic by seed).
3. Temperature and threshold are fitted on the validation episodes
   (robolearn.reward_models.calibration).
4. The calibrated classifier is scored on held-out episodes (--heldout; else the validation
   split, which then also chose the threshold) against (a) the recipe's labels and (b) the
   store's own per-frame success flags (every frame of the covered tasks' episodes).

The classifier is a small CNN (--kind cnn) or SigLIP towers with a success head prompted with
each task's instruction (--kind siglip; the towers frozen unless --finetune-towers).

With --world-model, the classifier also learns to judge what that world model draws: every
episode of the covered tasks is imagined open loop from its first frame under its recorded
actions (robolearn.imagination.imagine_episodes), and each imagined frame joins its episode's
side of the split with the recipe's label of the recorded frame at the same step. A policy
refined in imagination is rewarded by frames like these; a classifier that saw only real frames
can score frames the model draws off the data (smears, checkerboards) as success, which PPO
then seeks out. Real episodes of a refined policy in the data teach it, through their imagined
twins, what that policy's imagined successes really were. Held-out episodes are imagined and
scored too (robolearn.runs.reward_eval). The imagined frames are kept in RAM (as many as the
covered tasks' recorded frames).

The output directory is the checkpoint (robolearn.reward_models.checkpoint; a siglip one holds a
copy of the SigLIP files) plus train.yaml (this run's resolved settings), metrics.jsonl and
tensorboard/ (the training curve), metrics.json (calibration and evaluation), media/ (at the end:
the training curves; ROC, precision-recall and reliability diagrams before and after temperature
scaling on the validation frames; the validation negatives scored highest and positives scored
lowest, robolearn.runs.report) and, with --wandb, wandb/.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import require_positive, save_yaml
from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.data.pipeline import EpisodeData, FrameImages, PipelineConfig
from robolearn.reward_models.config import RewardConfig
from robolearn.reward_models.labels import LabelError, LabelledFrames, label_dataset

if TYPE_CHECKING:
    from robolearn.reward_models.checkpoint import LabelStats
    from robolearn.runs.reward_eval import Imagined


class PreemptedError(RobolearnError):
    """SIGTERM stopped a run that has no checkpoint to continue from."""


@dataclasses.dataclass(frozen=True)
class TrainRewardConfig:
    """What `robolearn train reward` runs (saved, resolved, as train.yaml in the run)."""

    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """episode store directory (repeat for several; several tasks are fine): every episode is
    used, other tasks' frames as negatives for the covered tasks"""
    tasks: tuple[str, ...] = dataclasses.field(default=(), metadata=flag("--task", metavar="TASK"))
    """a task the classifier covers (repeat for several; default: every task in the data).
    Episodes of other tasks are still used, as negatives"""
    heldout: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """store of held-out episodes (other seeds) to report on (repeat for several; default:
    report on the validation split)"""
    val_fraction: float = 0.15
    """share of each task's successful and of its failed episodes held out for calibration (at
    least one successful episode per task)"""
    target_fpr: float = 0.02
    """false-positive rate on validation negatives the threshold is chosen for; the threshold
    never goes below probability 0.5"""
    steps: int = 2000
    """optimizer steps; the learning rate decays over exactly these (model.optim.decay_steps is
    set to it)"""
    batch_size: int = 64
    """labelled frames per batch, half positives, half negatives"""
    seed: int = 0
    """init, split and data seed"""
    log_every: int = 50
    """metrics interval in steps"""
    siglip: str = dataclasses.field(default="", metadata=flag(metavar="DIR"))
    """--kind siglip: Hugging Face SigLIP checkpoint directory to start from (config.json,
    model.safetensors and spiece.model or tokenizer.json, as in google/siglip-base-patch16-224);
    copied into the checkpoint"""
    world_model: str = dataclasses.field(default="", metadata=flag(metavar="CKPT"))
    """world-model checkpoint (or shipped part, e.g. bundle:drawer/world-model): every episode of
    the covered tasks is also imagined by it, open loop under its recorded actions, and the
    imagined frames are trained, calibrated and scored on with the label of the recorded frame
    at the same step, so the classifier judges imagined frames by what really happened: the
    reward for `robolearn refine` with that model"""
    model: RewardConfig = RewardConfig()
    """the classifier, its labelling recipe, optimizer and training settings
    (configs/reward/<preset>.yaml); image size and number of tasks come from the data, the
    SigLIP source and prompt length from --siglip"""
    input: PipelineConfig = PipelineConfig()
    """how the episodes (--data and --heldout, each) are read: memory budget, RAM or streaming,
    reader threads (robolearn.data.pipeline; e.g. input.memory_mb=512)"""

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        if self.model.kind == "siglip" and not self.siglip:
            raise ConfigError(
                "--kind siglip needs --siglip DIR, a Hugging Face SigLIP checkpoint directory "
                "(config.json, model.safetensors, spiece.model; e.g. siglip-base-patch16-224)"
            )
        if self.model.kind != "siglip" and (self.siglip or self.model.siglip.finetune_towers):
            raise ConfigError("--siglip and --finetune-towers go with --kind siglip")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.target_fpr < 1.0:
            raise ConfigError(f"--target-fpr must be in [0, 1), got {self.target_fpr}")
        require_positive(self, "steps", "batch_size", "log_every")


def main(cfg: TrainRewardConfig, options: RunOptions) -> None:
    """`robolearn train reward`: join the other hosts if asked, train, calibrate, evaluate;
    print the table and the paths."""
    from robolearn.core.mesh import join
    from robolearn.runs.reward_eval import summary_lines

    join(options)
    out = options.run_dir("train", f"reward-{'-'.join(cfg.tasks) or cfg.model.preset}")
    result = run_train_reward(cfg, out, progress=options.progress, wandb=options.tracking())
    if result is None:
        print(f"reward classifier: trained with process 0, which calibrates it into {out}")
        return
    tr = result["training"]
    print(
        f"reward classifier for {', '.join(result['tasks'])}: {tr['steps']} steps "
        f"({tr['steps_per_second']:.1f} steps/s), train loss {tr['last']['loss']:.4f}"
    )
    print("\n".join(summary_lines(result)))
    print(f"metrics: {out / 'metrics.json'}")
    print(f"checkpoint: {out}")


@dataclasses.dataclass(frozen=True)
class _Data:
    """What the classifier trains and calibrates on. images: the recorded frames (by global
    frame row), then any imagined ones; train, val: the labelled frames of each side, indexing
    images; val_episodes: the validation episodes (indices into recorded); imagined: the
    recorded episodes imagined by --world-model (None without one); stats: the counts
    (stats.json)."""

    recorded: EpisodeData
    tasks: tuple[str, ...]
    images: FrameImages
    train: LabelledFrames
    val: LabelledFrames
    val_episodes: np.ndarray
    imagined: Imagined | None
    stats: LabelStats


def run_train_reward(
    cfg: TrainRewardConfig,
    out: Path,
    progress: bool = True,
    wandb: WandbSettings | None = None,
) -> dict | None:
    """Train, calibrate and evaluate into `out` (empty or new); returns what metrics.json holds.

    Training is data-parallel over every device of every process (each reads its own block of
    every balanced batch; each labels, and with --world-model imagines, the whole data, which
    costs minutes, not hours); process 0 alone writes the run's files (and logs to a W&B run
    with `wandb`), calibrates and scores (the others return None after training)."""
    from robolearn.core.config import to_dict
    from robolearn.core.mesh import is_chief
    from robolearn.core.metrics import MetricsWriter
    from robolearn.reward_models import checkpoint as ckpt
    from robolearn.reward_models.vlm import check_source

    chief = is_chief()
    progress = progress and chief
    if chief:
        ckpt_io.check_run_dir(out, False, ckpt.MARKER, ckpt.read_info)
    siglip = cfg.model.kind == "siglip"
    text_length = check_source(cfg.siglip, cfg.model.siglip.max_text_length) if siglip else None
    recorded = EpisodeData(list(cfg.data), pipeline=cfg.input, progress=progress)
    where = ", ".join(cfg.data)
    tasks = _covered_tasks(cfg.tasks, recorded, where)
    image_size = _image_size(recorded, where)
    heldout = _load_heldout(cfg, tasks, image_size, progress)
    wm = _load_world_model(cfg.world_model, tasks, image_size, [recorded, heldout])
    model_cfg = _model_config(cfg, image_size, len(tasks), text_length)
    data = _data(cfg, model_cfg.labels, recorded, tasks, wm, progress)
    resolved = dataclasses.replace(cfg, model=model_cfg)
    if chief:
        ckpt.write_config(out, model_cfg, data.stats)
        save_yaml(resolved, out / "train.yaml")
    instructions = {t: _instruction(recorded, t) for t in tasks}
    siglip_dir = None
    if siglip:  # every process reads the towers from the source; process 0 copies them
        siglip_dir = ckpt.write_towers(out, cfg.siglip) if chief else Path(cfg.siglip)
    with MetricsWriter(out, enabled=chief, wandb=wandb, config=to_dict(resolved)) as writer:
        logits, training = _fit(cfg, model_cfg, instructions, siglip_dir, data, writer, progress)
        if not chief:
            return None
        result = {"tasks": list(tasks), "training": training}
        val_logits = logits(data.images, data.val.frame, data.val.task)
        scored = _calibrate_and_score(
            cfg, model_cfg.labels, logits, val_logits, data, heldout, wm, progress
        )
        result |= scored
        _figures(writer, training["steps"], val_logits, data, scored["calibration"])
    info = ckpt.RewardInfo(model_cfg.kind, tasks, instructions, image_size, **result["calibration"])
    ckpt.write_info(out, info)
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _figures(writer, step: int, val_logits, data: _Data, calibration: dict) -> None:
    """The run's figures at the end (robolearn.runs.report): the training curves, and the
    calibration figures of the validation frames (their logits float32 [F])."""
    from robolearn.reward_models.calibration import Calibration
    from robolearn.runs.report import REWARD_CURVES, metric_curves, reward_figures

    metric_curves(writer, step, REWARD_CURVES)
    val = data.val
    reward_figures(
        writer, step, val_logits, val.label, Calibration(**calibration), data.images, val.frame
    )


def _model_config(
    cfg: TrainRewardConfig, image_size: int, num_tasks: int, text_length: int | None
) -> RewardConfig:
    """cfg.model as trained: sized for the data, decaying over cfg.steps, and (kind siglip) its
    source and prompt length resolved."""
    model = cfg.model
    cnn = dataclasses.replace(model.cnn, image_size=image_size, num_tasks=num_tasks)
    optim = dataclasses.replace(model.optim, decay_steps=cfg.steps)
    model = dataclasses.replace(model, cnn=cnn, optim=optim)
    if model.kind != "siglip":
        return model
    siglip = dataclasses.replace(
        model.siglip, source=str(Path(cfg.siglip).absolute()), max_text_length=text_length
    )
    return dataclasses.replace(model, siglip=siglip)


def _data(cfg: TrainRewardConfig, labels_cfg, recorded, tasks, wm, progress: bool) -> _Data:
    """The split, the labelled frames of each side (with their imagined twins given a world
    model) and their counts; one-line LabelErrors for data that cannot train or calibrate."""
    from robolearn.reward_models.checkpoint import LabelStats
    from robolearn.reward_models.labels import split_episodes
    from robolearn.runs import reward_eval as ev

    successes, episode_tasks = ev.success_flags(recorded)
    label_dataset(successes, episode_tasks, tasks, labels_cfg)  # the no-positives error first
    train_eps, val_eps = split_episodes(successes, episode_tasks, tasks, cfg.val_fraction, cfg.seed)
    train = ev.labelled(recorded, train_eps, tasks, labels_cfg)
    val = ev.labelled(recorded, val_eps, tasks, labels_cfg)
    if val.label.all():
        raise LabelError(
            f"{', '.join(cfg.data)}: the validation episodes hold no negative frame to calibrate "
            "on; raise --val-fraction or collect failed episodes (--policy random)"
        )
    images, imagined = FrameImages(recorded), None
    counts = {"train": train.counts(tasks), "validation": val.counts(tasks)}
    if wm is not None:
        imagined = ev.imagine(
            wm, recorded, tasks, cfg.batch_size, cfg.seed, "training data", progress
        )
        offset, images = recorded.num_frames, FrameImages(recorded, imagined.images)
        imagined_train = imagined.labelled(recorded, train_eps, tasks, labels_cfg, offset)
        imagined_val = imagined.labelled(recorded, val_eps, tasks, labels_cfg, offset)
        train, val = train.join(imagined_train), val.join(imagined_val)
        counts["imagined_train"] = imagined_train.counts(tasks)
        counts["imagined_validation"] = imagined_val.counts(tasks)
    stats = LabelStats({"train": len(train_eps), "validation": len(val_eps)}, counts)
    return _Data(recorded, tasks, images, train, val, val_eps, imagined, stats)


def _fit(
    cfg: TrainRewardConfig,
    model_cfg: RewardConfig,
    instructions: dict[str, str],
    siglip_dir: Path | None,
    data: _Data,
    writer,
    progress: bool,
):
    """cfg.steps of balanced batches of data.train (the input pipeline's FrameLoader) in the
    training loop (its metrics through `writer`), then the trained parameters saved to
    writer.out. Returns (logits(images, frame, task) ->
    the trained classifier's logits float32 [F] of images[frame], {steps, seconds,
    first_step_seconds, steps_per_second, last: the last logged metrics})."""
    import jax

    from robolearn.core.loop import Schedule, train
    from robolearn.core.mesh import check_batch, data_mesh, host, is_chief, replicate, shard_batch
    from robolearn.data.pipeline import FrameLoader
    from robolearn.reward_models import train as reward_train
    from robolearn.reward_models.checkpoint import save_params

    classifier = reward_train.make_classifier(model_cfg, list(instructions.values()), siglip_dir)
    rng = jax.random.key(cfg.seed)
    state, frozen = reward_train.init_train_state(classifier, model_cfg.optim, rng)
    frames = data.train
    loader = FrameLoader(
        data.images,
        frames.frame,
        frames.label,
        check_batch(cfg.batch_size),
        cfg.seed,
        columns={"task": frames.task},
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    mesh = data_mesh()

    def batches():
        for batch in loader:
            yield shard_batch({key: batch[key] for key in ("image", "task", "label")}, mesh)

    with loader:
        result = train(
            replicate(state, mesh),
            reward_train.make_train_step(classifier, model_cfg, replicate(frozen, mesh)),
            batches(),
            Schedule(cfg.steps, cfg.log_every),
            show=("loss", "accuracy"),
            progress=progress,
            writer=writer,
        )
    if result.preempted:  # no mid-run checkpoints: a run is minutes
        raise PreemptedError(
            f"stopped by SIGTERM at step {result.step} of {cfg.steps}: nothing saved; run it "
            "again into a new --out"
        )
    trained = host(result.state.params)
    if is_chief():
        save_params(writer.out, result.step, trained)
    params = reward_train.merge_params(trained, host(frozen))
    logit_fn = jax.jit(classifier.logits)

    def logits(images, frame: np.ndarray, task: np.ndarray) -> np.ndarray:
        return reward_train.predict_logits(logit_fn, params, images, frame, task)

    summary = {
        "steps": result.step,
        "seconds": result.seconds,
        "first_step_seconds": result.compile_seconds,  # mostly XLA compilation
        "steps_per_second": result.steps_per_second,
        "last": result.metrics,
    }
    return logits, summary


def _calibrate_and_score(cfg, labels_cfg, logits, val_logits, data, heldout, wm, progress) -> dict:
    """Temperature and threshold fitted on the validation frames (val_logits: the classifier's
    logits of data.val), then the calibrated classifier scored: {"calibration", "validation",
    "evaluation"} of metrics.json."""
    from robolearn.reward_models.calibration import calibrate
    from robolearn.runs import reward_eval as ev

    val, tasks = data.val, data.tasks
    calibration = calibrate(val_logits, val.label, cfg.target_fpr)

    def probs(images, frame: np.ndarray, task: np.ndarray) -> np.ndarray:
        return ev.calibrated(logits(images, frame, task), calibration)

    on, episodes = (data.recorded, data.val_episodes) if heldout is None else (heldout, None)
    evaluation = ev.evaluate(on, episodes, tasks, labels_cfg, probs, calibration)
    if wm is not None:
        imagined = data.imagined
        if heldout is not None:
            imagined = ev.imagine(
                wm, heldout, tasks, cfg.batch_size, cfg.seed, "held out", progress
            )
        evaluation["imagined"] = ev.evaluate_imagined(
            on, episodes, imagined, tasks, labels_cfg, probs, calibration
        )
    return {
        "calibration": dataclasses.asdict(calibration),
        "validation": ev.scores(ev.calibrated(val_logits, calibration), val, tasks, calibration),
        "evaluation": evaluation,
    }


def _load_heldout(cfg: TrainRewardConfig, tasks, image_size: int, progress) -> EpisodeData | None:
    """The held-out stores, checked against the training data before any training."""
    if not cfg.heldout:
        return None
    on = EpisodeData(list(cfg.heldout), pipeline=cfg.input, progress=progress)
    where = ", ".join(cfg.heldout)
    if _image_size(on, where) != image_size:
        raise ConfigError(
            f"{where}: held-out frames are {_image_size(on, where)} px, the training "
            f"data's {image_size} px; hold out episodes recorded like the training ones"
        )
    if not set(tasks) & set(on.task_names):
        raise ConfigError(f"{where}: holds no episodes of task(s) {', '.join(tasks)}")
    return on


def _load_world_model(spec: str, tasks, image_size: int, datas):
    """The --world-model checkpoint (None without one), checked against the data (EpisodeData;
    None entries skipped) before any training."""
    if not spec:
        return None
    from robolearn import bundles
    from robolearn.world_models.checkpoint import load_world_model

    wm = load_world_model(bundles.resolve(spec))
    missing = [t for t in tasks if t not in wm.info.tasks]
    if missing:
        raise ConfigError(
            f"--world-model {spec}: trained on {', '.join(wm.info.tasks)}, not on "
            f"{', '.join(missing)}; it can only imagine the tasks it was trained on"
        )
    if wm.info.image_size != image_size:
        raise ConfigError(
            f"--world-model {spec}: imagines {wm.info.image_size} px frames, the data's are "
            f"{image_size} px"
        )
    for data in filter(None, datas):
        proprio, action = data.proprio_dim, data.action_dim
        if (proprio, action) != (wm.info.proprio_dim, wm.info.action_dim):
            raise ConfigError(
                f"{data.where}: {proprio}-D proprio and {action}-D "
                f"actions, the world model's are {wm.info.proprio_dim}-D and "
                f"{wm.info.action_dim}-D"
            )
    return wm


def _covered_tasks(tasks: tuple[str, ...], data: EpisodeData, where: str) -> tuple[str, ...]:
    if not tasks:
        return tuple(data.task_names)
    for task in tasks:
        if task not in data.task_names:
            raise ConfigError(
                f"{where}: no episodes of task {task!r}; the data holds "
                f"{', '.join(data.task_names)}"
            )
    return tuple(dict.fromkeys(tasks))


def _image_size(data: EpisodeData, where: str) -> int:
    h, w = data.image_shape[:2]
    if h != w:
        raise ConfigError(f"{where}: the reward classifier needs square images, got {h}x{w}")
    return int(h)


def _instruction(data: EpisodeData, task: str) -> str:
    """The most common instruction of the task's episodes."""
    texts = [m.instruction for m in data.meta if m.task == task]
    return max(dict.fromkeys(texts), key=texts.count)
