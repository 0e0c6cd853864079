"""`robolearn train world-model`: fit the diffusion world model to episode stores; resumable,
data-parallel over every local device (and every host with --distributed).

The output directory is the checkpoint directory (robolearn.world_models.checkpoint: its
config.yaml is the model really trained, sizes from the data) plus train.yaml (this run's
resolved settings), metrics.jsonl and tensorboard/ (the curves, written by process 0 only),
media/ (open-loop videos and PSNR/SSIM plots of a few fixed windows at every evaluation,
robolearn.runs.wm_preview, and the loss curves at the end) and, with --wandb, wandb/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from robolearn.core.config import fitted, require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.loop import LoopSettings
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.data.pipeline import PipelineConfig
from robolearn.world_models.config import WorldModelConfig

# Every JAX import below is inside a function: `main` joins a multi-host job
# (jax.distributed.initialize) before anything touches a JAX backend.


@dataclasses.dataclass(frozen=True)
class TrainWorldModelConfig(LoopSettings):
    """What `robolearn train world-model` runs (saved, resolved, as train.yaml in the run)."""

    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """episode store directory (repeat for several); every episode in them is used, several
    tasks are fine (the frames say which scene it is) unless --task narrows them"""
    tasks: tuple[str, ...] = dataclasses.field(default=(), metadata=flag("--task", metavar="TASK"))
    """only this task's episodes (repeat for several; default: all)"""
    steps: int = 20_000
    """total optimizer steps; a resumed run continues up to this number, and a fresh run's
    learning rate decays over exactly these steps (model.optim.decay_steps is set to it)"""
    batch_size: int = 32
    """global batch size, split over every device of every host (must divide by their count)"""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """computation dtype; auto: bfloat16 on GPU/TPU, float32 on CPU (weights stay float32)"""
    init: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """start a fresh run from another world model's EMA weights (a checkpoint directory or a
    shipped part, e.g. bundle:drawer/world-model) to fine-tune it, e.g. on a new task in the
    same scene; its architecture, context and proprio statistics win over model and --preset,
    except model.context_noise > 0: fine-tune it with noise-augmented context frames (a model
    trained without gains the level's conditioning, starting at zero weight), with
    model.context_clean of the samples clean"""
    distill_from: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """train a few-step student of this world model (a checkpoint directory or a shipped part):
    it starts from the teacher's EMA weights, keeps its architecture, context and proprio
    statistics, and learns to land where the teacher's own sampler lands (e.g. 3 euler steps,
    from the same noise and context) in --distill-steps euler steps per frame; imagine, refine
    and eval run it like any world model, faster per frame. A resumed run needs the same teacher"""
    distill_steps: int = 1
    """denoiser calls per frame of the student (--distill-from only)"""
    model: WorldModelConfig = WorldModelConfig()
    """the denoiser, EDM, sampler, optimizer and training settings
    (configs/world_model/<preset>.yaml); image, action and proprio sizes come from the data. A
    resumed run keeps its checkpoint's, a run with init takes init's."""
    input: PipelineConfig = PipelineConfig()
    """how the episodes are read: memory budget, RAM or streaming, reader threads and processes
    (robolearn.data.pipeline; e.g. input.memory_mb=512); each host reads its own shard"""
    eval_data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """held-out episode store (repeat for several) whose fixed windows the open-loop preview
    imagines (default: windows of the training data, named "train" in the media and scalars)"""
    eval_windows: int = 4
    """windows of the open-loop preview (one per episode, chosen once; 0: no preview)"""
    eval_horizon: int = 8
    """open-loop steps of each preview window (capped at the longest episode; 0: no preview)"""
    eval_every: int = 0
    """preview interval in steps (0: at every save); the last step is always previewed"""

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        require_positive(
            self, "steps", "batch_size", "save_every", "log_every", "max_to_keep", "distill_steps"
        )
        if self.init and self.distill_from:
            raise ConfigError(
                "--init and --distill-from both start from another model: a student starts from "
                "its teacher (give --distill-from only)"
            )
        for name in ("eval_windows", "eval_horizon", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


def main(cfg: TrainWorldModelConfig, options: RunOptions) -> None:
    """`robolearn train world-model`: join the other hosts if asked, train, say where it is."""
    from robolearn.core.loop import preempted_line
    from robolearn.core.mesh import join

    join(options)
    out = options.run_dir("train", f"world-model-{cfg.model.preset}")
    result = run_train_world_model(
        cfg, out, resume=options.resume, progress=options.progress, wandb=options.tracking()
    )
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(
        f"world model: step {result['step']} ({result['trained_steps']} this run, "
        f"{result['steps_per_second']:.2f} steps/s on {result['devices']} device(s), "
        f"{result['dtype']})  {metrics}"
    )
    print(preempted_line(result) + f"checkpoint: {out}")


def compute_dtype(name: str):
    """The computation dtype for `name` on the default backend."""
    import jax
    import jax.numpy as jnp

    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
    return jnp.dtype(name)


def run_train_world_model(
    cfg: TrainWorldModelConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    wandb: WandbSettings | None = None,
) -> dict:
    """Train (or resume) into `out`; returns {"step", "trained_steps", "seconds",
    "compile_seconds", "steps_per_second" (after compilation), "devices", "dtype", "metrics"
    (the last logged)}. wandb: log to a W&B run too (process 0)."""
    import jax
    import jax.numpy as jnp

    from robolearn import bundles
    from robolearn.core import checkpoint as ckpt_io
    from robolearn.core.config import to_dict
    from robolearn.core.loop import train
    from robolearn.core.mesh import (
        broadcast_flag,
        check_batch,
        data_mesh,
        is_chief,
        replicate,
        shard_batch,
    )
    from robolearn.core.metrics import MetricsWriter
    from robolearn.data.pipeline import (
        EpisodeData,
        WindowLoader,
        resume_loader,
        save_loader_state,
    )
    from robolearn.runs.report import metric_curves
    from robolearn.runs.wm_preview import OpenLoopPreview
    from robolearn.world_models import checkpoint as ckpt
    from robolearn.world_models.train import make_train_step

    if cfg.init:
        cfg = dataclasses.replace(cfg, init=bundles.resolve(cfg.init))
    if cfg.distill_from:
        cfg = dataclasses.replace(cfg, distill_from=bundles.resolve(cfg.distill_from))
    chief = is_chief()
    resuming = broadcast_flag(
        chief and ckpt_io.check_run_dir(out, resume, ckpt.MARKER, ckpt.read_info)
    )
    local_batch = check_batch(cfg.batch_size)
    data = EpisodeData(
        list(cfg.data), tasks=cfg.tasks or None, pipeline=cfg.input, progress=progress and chief
    )
    loader = WindowLoader(
        data,
        local_batch,
        cfg.seed,
        context=_context(cfg, out if resuming else None),
        pad_start=True,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    info = _data_info(cfg, loader)
    windows = _preview_windows(cfg, data, loader.context)  # checked before anything is written
    model_cfg, stats = _model_config(cfg, out, info, data, resuming)
    teacher = _teacher(cfg, model_cfg)  # (checked before train.yaml is rewritten)
    resolved = dataclasses.replace(cfg, model=model_cfg)
    if chief:
        save_yaml(resolved, out / "train.yaml")
    dtype = compute_dtype(cfg.dtype)
    mesh = data_mesh()
    manager = ckpt.make_manager(out, cfg.max_to_keep)
    writer = None
    try:
        graphdef, state = _initial_state(cfg, model_cfg, manager, dtype)
        start = int(jax.device_get(state.step))
        writer = MetricsWriter(
            out, resume_step=start or None, enabled=chief, wandb=wandb, config=to_dict(resolved)
        )
        preview = None
        if windows is not None:
            preview = OpenLoopPreview(windows, graphdef, model_cfg.sampler, stats, writer, cfg.seed)
        schedule = dataclasses.replace(
            cfg.schedule(cfg.steps), eval_every=(cfg.eval_every or cfg.save_every) if preview else 0
        )

        def batches(start_step: int):
            resume_loader(loader, out, start_step)  # the data order continues where it stopped
            return (shard_batch(batch, mesh) for batch in loader)

        def save(state) -> None:
            ckpt.save_state(manager, state)
            save_loader_state(loader, out, int(state.step), keep=manager.all_steps())

        result = train(
            replicate(state, mesh),
            make_train_step(model_cfg, graphdef, stats, mesh, teacher),
            batches,
            schedule,
            save=save,
            evaluate=preview,
            show=("distill_loss" if teacher else "denoise_loss", "proprio_loss"),
            progress=progress,
            writer=writer,
        )
        metric_curves(writer, result.step, _curves(windows))
    finally:
        if writer is not None:
            writer.close()
        manager.close()
        loader.close()
    return {
        "step": result.step,
        "trained_steps": result.trained_steps,
        "seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "steps_per_second": result.steps_per_second,
        "devices": jax.device_count(),
        "dtype": jnp.dtype(dtype).name,
        "metrics": result.metrics,
        "preempted": result.preempted,
    }


def _preview_windows(cfg: TrainWorldModelConfig, data, context: int):
    """The open-loop preview's fixed windows (robolearn.runs.wm_preview): of --eval-data when
    given (checked against the training data), else of the training data; None when disabled."""
    from robolearn.data.pipeline import EpisodeData
    from robolearn.runs.wm_preview import check_eval_data, choose_windows

    if not (cfg.eval_windows and cfg.eval_horizon):
        return None
    source, name = data, "train"
    if cfg.eval_data:
        source = EpisodeData(list(cfg.eval_data), tasks=cfg.tasks or None, pipeline=cfg.input)
        check_eval_data(source, data, ", ".join(cfg.eval_data))
        name = "heldout"
    return choose_windows(source, cfg.eval_windows, cfg.eval_horizon, context, cfg.seed, name)


def _curves(windows) -> tuple:
    """The panels of the loss-curves figure: the losses, and the preview's PSNR when it ran."""
    from robolearn.runs.report import WORLD_MODEL_CURVES
    from robolearn.runs.wm_preview import report_steps

    if windows is None:
        return WORLD_MODEL_CURVES
    keys = [f"eval/{windows.name}_psnr_h{k}" for k in report_steps(windows.horizon)]
    return (*WORLD_MODEL_CURVES, (f"open-loop PSNR, {windows.name} windows (dB)", keys, False))


def _teacher(cfg: TrainWorldModelConfig, model_cfg: WorldModelConfig):
    """(graphdef, EMA params, sampler) of the --distill-from teacher, None when not distilling;
    a one-line error when a resumed student is given no teacher, or a plain run one."""
    from robolearn.world_models.checkpoint import load_world_model

    if bool(cfg.distill_from) != bool(model_cfg.sampler.distilled):
        if cfg.distill_from:
            raise ConfigError(
                "--distill-from: the run being resumed is not a distilled student (resume it "
                "without --distill-from, or distil into a new --out)"
            )
        raise ConfigError(
            "this run is a student distilled from a teacher: resume it with the same "
            "--distill-from CKPT"
        )
    if not cfg.distill_from:
        return None
    teacher = load_world_model(cfg.distill_from)
    return teacher.graphdef, teacher.params, teacher.sampler


def _model_config(cfg: TrainWorldModelConfig, out: Path, info, data, resuming: bool):
    """(WorldModelConfig, proprio NormStats) this run trains: the checkpoint's when resuming,
    init's when given (checked against the data), else cfg.model with the data's sizes; a fresh
    run's learning rate decays over cfg.steps. A fresh run writes them into `out`."""
    import jax

    from robolearn.core import checkpoint as ckpt_io
    from robolearn.world_models import checkpoint as ckpt
    from robolearn.world_models.config import distilled, with_context_noise

    if resuming:
        fields = ("tasks", "image_size", "action_dim", "proprio_dim")
        ckpt_io.check_same(out, ckpt.read_info(out), info, fields)
        return ckpt.read_config(out)
    if cfg.init or cfg.distill_from:
        source = cfg.init or cfg.distill_from
        fields = ("image_size", "action_dim", "proprio_dim")
        ckpt_io.check_same(Path(source), ckpt.read_info(source), info, fields)
        model_cfg, stats = ckpt.read_config(source)
        if cfg.init and model_cfg.sampler.distilled:
            raise ConfigError(
                f"{source}: a few-step student, trained to imitate a sampler, not on EDM's loss; "
                "fine-tune its teacher (a student can be distilled further with --distill-from)"
            )
        if cfg.distill_from:
            teacher_steps = model_cfg.sampler.steps
            if cfg.distill_steps >= teacher_steps:
                raise ConfigError(
                    f"--distill-steps {cfg.distill_steps}: the teacher already samples in "
                    f"{teacher_steps} step(s); a student takes fewer"
                )
            model_cfg = distilled(model_cfg, cfg.distill_steps)
        elif cfg.model.model.context_noise > 0:
            noise = cfg.model.model
            model_cfg = with_context_noise(model_cfg, noise.context_noise, noise.context_clean)
    else:
        sizes = {k: getattr(info, k) for k in ("image_size", "action_dim", "proprio_dim")}
        model_cfg, stats = fitted(cfg.model, cfg.steps, **sizes), proprio_stats(data)
    model_cfg = fitted(model_cfg, cfg.steps)  # an --init model decays over this run too
    if jax.process_index() == 0:
        ckpt.write_info(out, info, model_cfg, stats)
    return model_cfg, stats


def _initial_state(cfg: TrainWorldModelConfig, model_cfg: WorldModelConfig, manager, dtype):
    """(graphdef, TrainState): the latest checkpoint of the run, else a fresh model (with
    init's EMA weights as its weights and EMA when cfg.init is given)."""
    import jax
    import jax.numpy as jnp

    from robolearn.world_models import checkpoint as ckpt
    from robolearn.world_models.train import adopt_weights, init_train_state

    if manager.latest_step() is not None:
        graphdef, state = ckpt.restore_train_state(manager, model_cfg)
        if dtype != jnp.float32:
            graphdef, _ = init_train_state(model_cfg, jax.random.key(0), dtype)
        return graphdef, state
    graphdef, state = init_train_state(model_cfg, jax.random.key(cfg.seed), dtype)
    if cfg.init or cfg.distill_from:
        # (grown to this run's model where it adds context noise to init's: adopt_weights)
        source = ckpt.load_world_model(cfg.init or cfg.distill_from).params
        weights = adopt_weights(source, state.params, model_cfg.model.cond_dim)
        ema = jax.tree.map(jnp.copy, weights)  # distinct buffers: the step donates both
        state = state.replace(params=weights, ema=ema)
    return graphdef, state


def proprio_stats(data):
    """NormStats: mean/std of proprio over every frame of the EpisodeData and std of its
    within-episode one-step change."""
    from robolearn.core.normalize import NormStats

    mean, std, delta_std = data.proprio_moments()
    return NormStats.from_moments(mean, std, delta_std)


def _context(cfg: TrainWorldModelConfig, resume_from: Path | None) -> int:
    """T, the frames of context: the resumed run's, init's, else cfg.model's."""
    from robolearn.world_models import checkpoint as ckpt

    if resume_from is not None or cfg.init or cfg.distill_from:
        return ckpt.read_info(resume_from or cfg.init or cfg.distill_from).context
    return cfg.model.model.context


def _data_info(cfg: TrainWorldModelConfig, loader):
    """The WorldModelInfo the data implies; a one-line error for non-square frames."""
    from robolearn.world_models import checkpoint as ckpt

    data = loader.data
    height, width, _ = data.image_shape
    where = ", ".join(cfg.data)
    if height == 0:
        raise ConfigError(f"{where}: the episodes have no camera images; a world model needs them")
    if height != width:
        raise ConfigError(f"{where}: the world model needs square images, got {(height, width)}")
    return ckpt.WorldModelInfo(
        tasks=tuple(data.task_names),
        image_size=int(height),
        context=loader.context,
        action_dim=data.action_dim,
        proprio_dim=data.proprio_dim,
    )
