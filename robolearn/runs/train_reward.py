"""`robolearn train reward`: a calibrated success classifier from episode stores.

1. Episodes are split into training and validation episodes, per task and outcome (whole
   episodes: no frame of a training episode is ever validated on); every covered task keeps at
   least one successful episode on each side.
2. Frames are labelled by RoboFuME's recipe (robolearn.reward_models.labels) and the classifier is
   trained on 50/50 balanced batches of the training episodes' labelled frames.
3. Temperature and threshold are fitted on the validation episodes
(robolearn.reward_models.calibration). 4. The calibrated classifier is scored on held-out episodes
(--heldout; else the validation
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
scored too. The output
directory is the checkpoint (robolearn.reward_models.checkpoint; a siglip one holds a copy of the
SigLIP files) plus train.yaml (this run's settings), metrics.jsonl (training curve) and metrics.json
(calibration and evaluation).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.progress import Progress
from robolearn.data.loader import EpisodeCache
from robolearn.reward_models import checkpoint as ckpt
from robolearn.reward_models.calibration import calibrate, classification_metrics, sigmoid
from robolearn.reward_models.config import KINDS, RewardConfig, preset
from robolearn.reward_models.labels import (
    LabelError,
    LabelledFrames,
    balanced_batch,
    flag_labels,
    label_dataset,
    split_episodes,
)
from robolearn.reward_models.train import (
    init_train_state,
    make_classifier,
    make_train_step,
    merge_params,
    predict_logits,
)
from robolearn.reward_models.vlm import check_source


@dataclasses.dataclass(frozen=True)
class TrainRewardConfig:
    """What `robolearn train reward` runs.

    data: episode stores to train and calibrate on (every episode: other tasks' frames are
        negatives for the covered tasks).
    tasks: the tasks the classifier covers; () = every task in the data.
    heldout: stores of episodes never trained or calibrated on (other seeds), to report on.
    val_fraction: share of each task's successful and of its failed episodes held out for
        calibration (at least one successful episode per task).
    target_fpr: false-positive rate on the validation negatives the threshold is chosen for.
    kind: the classifier family (robolearn.reward_models.config.KINDS).
    siglip: kind siglip: the Hugging Face SigLIP directory to start from.
    finetune_towers: kind siglip: train the towers too (default: the head only).
    world_model: a world-model checkpoint whose open-loop imagination of the covered tasks'
        episodes is trained, calibrated and scored on beside the recorded frames ("" = none).
    """

    data: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()
    preset: str = "base"
    val_fraction: float = 0.15
    target_fpr: float = 0.02
    steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    log_every: int = 50
    kind: str = "cnn"
    siglip: str = ""
    finetune_towers: bool = False
    world_model: str = ""

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown --kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "siglip" and not self.siglip:
            raise ConfigError(
                "--kind siglip needs --siglip DIR, a Hugging Face SigLIP checkpoint directory "
                "(config.json, model.safetensors, spiece.model; e.g. siglip-base-patch16-224)"
            )
        if self.kind != "siglip" and (self.siglip or self.finetune_towers):
            raise ConfigError("--siglip and --finetune-towers go with --kind siglip")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.target_fpr < 1.0:
            raise ConfigError(f"--target-fpr must be in [0, 1), got {self.target_fpr}")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def run_train_reward(cfg: TrainRewardConfig, out: Path, progress: bool = True) -> dict:
    """Train, calibrate and evaluate into `out` (empty or new); returns what metrics.json holds."""
    ckpt_io.check_run_dir(out, False, ckpt.MARKER, ckpt.read_info)
    text_length = check_source(cfg.siglip) if cfg.kind == "siglip" else None
    cache = EpisodeCache(list(cfg.data))
    tasks = _covered_tasks(cfg.tasks, cache, ", ".join(cfg.data))
    image_size = _image_size(cache, ", ".join(cfg.data))
    heldout = _load_heldout(cfg.heldout, tasks, image_size)
    wm = _load_world_model(cfg.world_model, tasks, image_size, [cache, heldout])
    model_cfg = _model_config(cfg, image_size, len(tasks), text_length)
    successes, episode_tasks = _episodes(cache)
    label_dataset(successes, episode_tasks, tasks, model_cfg.labels)  # no-positives error first
    train_eps, val_eps = split_episodes(successes, episode_tasks, tasks, cfg.val_fraction, cfg.seed)
    train = _labelled(cache, train_eps, tasks, model_cfg)
    val = _labelled(cache, val_eps, tasks, model_cfg)
    if val.label.all():
        raise LabelError(
            f"{', '.join(cfg.data)}: the validation episodes hold no negative frame to calibrate "
            "on; raise --val-fraction or collect failed episodes (--policy random)"
        )
    images = cache.arrays["image"]
    counts = {"train": train.counts(tasks), "validation": val.counts(tasks)}
    if wm is not None:
        imagined = _imagine(wm, cache, tasks, cfg.batch_size, cfg.seed, "training data", progress)
        offset, images = len(images), np.concatenate([images, imagined.images])
        imagined_train = imagined.labelled(cache, train_eps, tasks, model_cfg.labels, offset)
        imagined_val = imagined.labelled(cache, val_eps, tasks, model_cfg.labels, offset)
        train, val = train.join(imagined_train), val.join(imagined_val)
        counts["imagined_train"] = imagined_train.counts(tasks)
        counts["imagined_validation"] = imagined_val.counts(tasks)
    stats = ckpt.LabelStats({"train": len(train_eps), "validation": len(val_eps)}, counts)
    ckpt.write_config(out, model_cfg, stats)
    save_yaml(cfg, out / "train.yaml")
    instructions = {t: _instruction(cache, t) for t in tasks}
    siglip_dir = ckpt.write_towers(out, cfg.siglip) if cfg.kind == "siglip" else None
    classifier = make_classifier(model_cfg, [instructions[t] for t in tasks], siglip_dir)
    state, frozen, training = _fit(cfg, model_cfg, classifier, images, train, out, progress)
    params = merge_params(state.params, frozen)
    logit_fn = jax.jit(classifier.logits)
    val_logits = predict_logits(logit_fn, params, images, val.frame, val.task)
    calibration = calibrate(val_logits, val.label, cfg.target_fpr)
    ckpt.save_params(out, cfg.steps, state.params)

    def probs(images: np.ndarray, frame: np.ndarray, task: np.ndarray) -> np.ndarray:
        logits = predict_logits(logit_fn, params, images, frame, task)
        return sigmoid(logits / calibration.temperature)

    def score(images: np.ndarray, labelled: LabelledFrames) -> dict:
        p = probs(images, labelled.frame, labelled.task)
        return _metrics(p, labelled, tasks, calibration)

    evaluation = _evaluate(heldout, cache, val_eps, tasks, model_cfg.labels, score)
    if wm is not None:
        on, episodes = (heldout, None) if heldout is not None else (cache, val_eps)
        if heldout is not None:
            imagined = _imagine(wm, heldout, tasks, cfg.batch_size, cfg.seed, "held out", progress)
        evaluation["imagined"] = _evaluate_imagined(
            on, episodes, imagined, tasks, model_cfg.labels, probs, calibration
        )
    result = {
        "tasks": list(tasks),
        "training": training,
        "calibration": dataclasses.asdict(calibration),
        "validation": _metrics(
            sigmoid(val_logits / calibration.temperature), val, tasks, calibration
        ),
        "evaluation": evaluation,
    }
    info = ckpt.RewardInfo(model_cfg.kind, tasks, instructions, image_size, **result["calibration"])
    ckpt.write_info(out, info)
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _model_config(
    cfg: TrainRewardConfig, image_size: int, num_tasks: int, text_length: int | None
) -> RewardConfig:
    """The preset for this data and run, with the kind's settings (siglip: resolved)."""
    model_cfg = preset(cfg.preset, image_size, num_tasks, cfg.steps)
    if cfg.kind != "siglip":
        return model_cfg
    siglip = dataclasses.replace(
        model_cfg.siglip,
        source=str(Path(cfg.siglip).absolute()),
        finetune_towers=cfg.finetune_towers,
        max_text_length=text_length,
    )
    return dataclasses.replace(model_cfg, kind="siglip", siglip=siglip)


def _fit(cfg, model_cfg: RewardConfig, classifier, images, train: LabelledFrames, out, progress):
    """cfg.steps of balanced batches of `train`, whose frames index `images`; returns (state,
    frozen params, {steps, seconds, steps_per_second, last logged metrics})."""
    state, frozen = init_train_state(classifier, model_cfg.optim, jax.random.key(cfg.seed))
    train_step = make_train_step(classifier, model_cfg, frozen)
    rng = np.random.default_rng(cfg.seed)
    bar = Progress(cfg.steps, "step", enabled=progress)
    start = last_time = compiled = time.perf_counter()
    metrics: dict = {}
    with open(out / "metrics.jsonl", "w") as log:
        for step in range(1, cfg.steps + 1):
            idx = balanced_batch(rng, train.label, cfg.batch_size)
            batch = {"image": images[train.frame[idx]], "task": train.task[idx]}
            state, metrics = train_step(state, {**batch, "label": train.label[idx]})
            if step == 1:
                jax.block_until_ready(state)
                compiled = last_time = time.perf_counter()
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                rate = (step - max(step - cfg.log_every, 1)) / max(now - last_time, 1e-9)
                log.write(json.dumps({"step": step, **metrics, "steps_per_second": rate}) + "\n")
                log.flush()
                text = f"loss {metrics['loss']:.4f}  acc {metrics['accuracy']:.3f}"
                bar.update(step, f"{text}  {rate:.1f} steps/s")
                last_time = now
    bar.close()
    end = time.perf_counter()
    summary = {
        "steps": cfg.steps,
        "seconds": end - start,
        "first_step_seconds": compiled - start,  # mostly XLA compilation
        "steps_per_second": (cfg.steps - 1) / max(end - compiled, 1e-9),
    }
    return state, frozen, {**summary, "last": metrics}


def _load_heldout(heldout: tuple[str, ...], tasks, image_size: int) -> EpisodeCache | None:
    """The held-out stores, checked against the training data before any training."""
    if not heldout:
        return None
    on, where = EpisodeCache(list(heldout)), ", ".join(heldout)
    if _image_size(on, where) != image_size:
        raise ConfigError(
            f"{where}: held-out frames are {_image_size(on, where)} px, the training "
            f"data's {image_size} px; hold out episodes recorded like the training ones"
        )
    if not set(tasks) & set(on.task_names):
        raise ConfigError(f"{where}: holds no episodes of task(s) {', '.join(tasks)}")
    return on


def _load_world_model(spec: str, tasks, image_size: int, caches):
    """The --world-model checkpoint (None without one), checked against the data (the caches;
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
    for cache in filter(None, caches):
        proprio, action = cache.arrays["proprio"].shape[1], cache.arrays["action"].shape[1]
        if (proprio, action) != (wm.info.proprio_dim, wm.info.action_dim):
            raise ConfigError(
                f"{', '.join(map(str, cache.roots))}: {proprio}-D proprio and {action}-D "
                f"actions, the world model's are {wm.info.proprio_dim}-D and "
                f"{wm.info.action_dim}-D"
            )
    return wm


@dataclasses.dataclass(frozen=True)
class _Imagined:
    """Episodes of a cache imagined open loop, laid out like the cache: images uint8 [F, H, W, 3]
    hold each imagined episode's N+1 frames in order (frame 0 the recorded first frame, then the
    N imagined ones); start {cache episode: row of its frame 0}."""

    images: np.ndarray
    start: dict[int, int]

    def frames(self, cache: EpisodeCache, episodes, offset: int = 0):
        """(row int64 [F] into offset + images, step int64 [F]) of every frame of `episodes`,
        in the order _episodes and _frame_index give them."""
        rows = [np.arange(cache.num_steps[e] + 1) + offset + self.start[e] for e in episodes]
        steps = [np.arange(cache.num_steps[e] + 1) for e in episodes]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows).astype(np.int64), np.concatenate(steps)

    def labelled(self, cache, episodes, tasks, labels_cfg, offset: int) -> LabelledFrames:
        """The recipe's triples of the imagined frames (not frame 0, which is recorded) of the
        imagined ones among `episodes`, labelled like the recorded frame at the same step;
        frames index the recorded images with these appended at `offset`."""
        episodes = [int(e) for e in episodes if int(e) in self.start]
        successes, episode_tasks = _episodes(cache, episodes)
        out = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
        rows, steps = self.frames(cache, episodes, offset)
        keep = steps[out.frame] > 0
        return LabelledFrames(rows[out.frame[keep]], out.task[keep], out.label[keep])


def _imagine(wm, cache: EpisodeCache, tasks, batch_size: int, seed: int, what: str, progress):
    """Every episode of `cache` of a covered task imagined in full under its recorded actions."""
    from robolearn.imagination import Imaginer, imagine_episodes

    a = cache.arrays
    episodes = [e for e, m in enumerate(cache.meta) if m.task in tasks]
    recorded = []
    for e in episodes:
        fs, ss, n = cache.frame_start[e], cache.step_start[e], cache.num_steps[e]
        recorded.append(
            (a["image"][fs : fs + n + 1], a["action"][ss : ss + n], a["proprio"][fs : fs + n + 1])
        )
    frames = sum(len(r[1]) for r in recorded)
    bar = Progress(1, f"imagining {what}", enabled=progress)
    start = time.perf_counter()
    imagined = imagine_episodes(Imaginer(wm, batch_size), jax.random.key(seed), recorded)
    seconds = time.perf_counter() - start
    bar.update(1, f"{len(recorded)} episodes, {frames} frames ({frames / seconds:.0f}/s)")
    bar.close()
    rows = [np.concatenate([r[0][:1], im]) for r, im in zip(recorded, imagined, strict=True)]
    starts = np.cumsum([0] + [len(r) for r in rows])
    images = np.concatenate(rows) if rows else np.zeros((0, *a["image"].shape[1:]), np.uint8)
    return _Imagined(images, {e: int(starts[k]) for k, e in enumerate(episodes)})


def _evaluate_imagined(on, episodes, imagined: _Imagined, tasks, labels_cfg, probs, calibration):
    """Scores of the imagined frames of `on`'s `episodes` (None: all) at the recipe's labels,
    and per episode of a covered task: is any frame after an action rewarded (P >= threshold),
    imagined and recorded, split by the recorded outcome. A policy refined in imagination is
    paid for the imagined failures rewarded here. probs(images, frame, task) -> calibrated
    P(success) of images[frame] for each frame's task."""
    episodes = range(len(on.meta)) if episodes is None else episodes
    episodes = [int(e) for e in episodes if int(e) in imagined.start]
    labelled = imagined.labelled(on, episodes, tasks, labels_cfg, 0)
    result = {
        "episodes": len(episodes),
        "recipe": _metrics(
            probs(imagined.images, labelled.frame, labelled.task), labelled, tasks, calibration
        ),
    }
    real_frames = _frame_index(on, episodes)
    rows, steps = imagined.frames(on, episodes)
    successes, _ = _episodes(on, episodes)
    lengths = [len(s) for s in successes]
    after = steps > 0  # the frames after each action
    episode = np.repeat(np.arange(len(episodes)), lengths)[after]
    task = np.repeat([tasks.index(on.meta[e].task) for e in episodes], lengths)[after]
    task = task.astype(np.int32)
    won = np.array([s.any() for s in successes], bool)
    for name, images, frames in (
        ("imagined", imagined.images, rows[after]),
        ("real", on.arrays["image"], real_frames[after]),
    ):
        hits = probs(images, frames, task) >= calibration.threshold
        rewarded = np.bincount(episode, hits, minlength=len(episodes)) > 0
        result[f"failed_rewarded_{name}"] = int(np.sum(rewarded & ~won))
        result[f"successful_rewarded_{name}"] = int(np.sum(rewarded & won))
    result["failed_episodes"], result["successful_episodes"] = int(np.sum(~won)), int(np.sum(won))
    return result


def _evaluate(heldout, cache, val_eps, tasks, labels_cfg, score: Callable) -> dict:
    """Scores at the recipe's labels and at the stores' success flags, on the `heldout` cache
    or else on the validation episodes of `cache`."""
    if heldout is not None:
        on, episodes, where = heldout, None, ", ".join(map(str, heldout.roots))
    else:
        on, episodes, where = cache, val_eps, "validation split (no --heldout)"
    successes, episode_tasks = _episodes(on, episodes)
    recipe = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
    flags = flag_labels(successes, episode_tasks, tasks)
    frames, images = _frame_index(on, episodes), on.arrays["image"]
    return {
        "on": where,
        "episodes": len(successes),
        "recipe": score(images, dataclasses.replace(recipe, frame=frames[recipe.frame])),
        "sim_flags": score(images, dataclasses.replace(flags, frame=frames[flags.frame])),
    }


def _metrics(probs, labelled: LabelledFrames, tasks, calibration) -> dict:
    """Overall and per-task classification_metrics at the calibrated threshold."""
    result = classification_metrics(probs, labelled.label, calibration.threshold)
    if len(tasks) > 1:
        result["per_task"] = {
            task: classification_metrics(
                probs[labelled.task == k], labelled.label[labelled.task == k], calibration.threshold
            )
            for k, task in enumerate(tasks)
        }
    return result


def _labelled(cache, episodes: np.ndarray, tasks, model_cfg: RewardConfig) -> LabelledFrames:
    """The recipe's triples of a subset of the cache's episodes, frames indexing the cache."""
    successes, episode_tasks = _episodes(cache, episodes)
    out = label_dataset(successes, episode_tasks, tasks, model_cfg.labels, require_both=False)
    return dataclasses.replace(out, frame=_frame_index(cache, episodes)[out.frame])


def _episodes(cache: EpisodeCache, episodes=None) -> tuple[list[np.ndarray], list[str]]:
    """(success flags bool [T+1] per episode, task per episode) of `episodes` (default all)."""
    episodes = range(len(cache.meta)) if episodes is None else episodes
    flags = cache.arrays["success"]
    successes = [
        flags[cache.frame_start[e] : cache.frame_start[e] + cache.num_steps[e] + 1]
        for e in episodes
    ]
    return successes, [cache.meta[e].task for e in episodes]


def _frame_index(cache: EpisodeCache, episodes=None) -> np.ndarray:
    """Cache frame index int64 [F] of every frame of `episodes` (default all), in order."""
    episodes = range(len(cache.meta)) if episodes is None else episodes
    ranges = [np.arange(cache.num_steps[e] + 1) + cache.frame_start[e] for e in episodes]
    return np.concatenate(ranges).astype(np.int64) if ranges else np.zeros(0, np.int64)


def _covered_tasks(tasks: tuple[str, ...], cache: EpisodeCache, where: str) -> tuple[str, ...]:
    if not tasks:
        return tuple(cache.task_names)
    for task in tasks:
        if task not in cache.task_names:
            raise ConfigError(
                f"{where}: no episodes of task {task!r}; the data holds "
                f"{', '.join(cache.task_names)}"
            )
    return tuple(dict.fromkeys(tasks))


def _image_size(cache: EpisodeCache, where: str) -> int:
    h, w = cache.arrays["image"].shape[1:3]
    if h != w:
        raise ConfigError(f"{where}: the reward classifier needs square images, got {h}x{w}")
    return int(h)


def _instruction(cache: EpisodeCache, task: str) -> str:
    """The most common instruction of the task's episodes."""
    texts = [m.instruction for m in cache.meta if m.task == task]
    return max(dict.fromkeys(texts), key=texts.count)


def summary_lines(result: dict) -> list[str]:
    """The evaluation table `robolearn train reward` prints."""
    ev, cal = result["evaluation"], result["calibration"]
    lines = [
        f"calibrated on validation: temperature {cal['temperature']:.3f}, threshold "
        f"{cal['threshold']:.4f} (false positives <= {cal['target_fpr']:.1%})",
        f"scored on {ev['on']}: {ev['episodes']} episodes",
        f"  {'labels':<10} {'frames':>7} {'pos':>6} {'acc':>6} {'FPR':>6} {'FNR':>6} "
        f"{'prec':>6} {'ECE':>6}",
    ]
    for name, key in (("recipe", "recipe"), ("sim flags", "sim_flags")):
        m = ev[key]
        cells = [_pct(m[k]) for k in ("accuracy", "fpr", "fnr", "precision", "ece")]
        lines.append(f"  {name:<10} {m['frames']:>7} {m['positives']:>6} " + " ".join(cells))
    imagined = ev.get("imagined")
    if imagined is not None:
        m = imagined["recipe"]
        cells = [_pct(m[k]) for k in ("accuracy", "fpr", "fnr", "precision", "ece")]
        lines.append(f"  {'imagined':<10} {m['frames']:>7} {m['positives']:>6} " + " ".join(cells))
        lines.append("episodes with a rewarded frame, imagined | recorded:")
        for outcome in ("failed", "successful"):
            n = imagined[f"{outcome}_episodes"]
            lines.append(
                f"  {outcome:<10} {imagined[f'{outcome}_rewarded_imagined']:>4}/{n} | "
                f"{imagined[f'{outcome}_rewarded_real']}/{n}"
            )
    return lines


def _pct(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{value:>6.1%}"
