"""`robolearn train bc`: fit the Gaussian BC actor to the episodes of one task; resumable.

The output directory is the checkpoint directory (robolearn.policies.bc.checkpoint) with the
training state for --resume, plus policy/ (the actor-only export eval, imagine and the robot
load), train.yaml (this run's resolved settings), metrics.jsonl and tensorboard/ (the curve),
media/curves-<step>.png (the curves at the end) and, with --wandb, wandb/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import fitted, require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.loop import LoopSettings
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.data.pipeline import PipelineConfig
from robolearn.policies.bc.config import BCConfig


@dataclasses.dataclass(frozen=True)
class TrainBCConfig(LoopSettings):
    """What `robolearn train bc` runs (saved, resolved, as train.yaml in the run)."""

    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """episode store directory (repeat for several); every episode of the task is used"""
    task: str | None = None
    """train on this task's episodes (default: the data's only task)"""
    steps: int = 5000
    """total optimizer steps; a resumed run continues up to this number, and a fresh run's
    learning rate decays over exactly these steps (model.optim.decay_steps is set to it)"""
    batch_size: int = 64
    """transitions per batch"""
    model: BCConfig = BCConfig()
    """the actor, its optimizer and training settings (configs/policy/<preset>.yaml); image,
    proprio and action sizes come from the data. A resumed run keeps its checkpoint's."""
    input: PipelineConfig = PipelineConfig()
    """how the episodes are read: memory budget, RAM or streaming, reader threads and processes
    (robolearn.data.pipeline; e.g. input.memory_mb=512)"""

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        require_positive(self, "steps", "batch_size", "save_every", "log_every", "max_to_keep")


def main(cfg: TrainBCConfig, options: RunOptions) -> None:
    """`robolearn train bc`: join the other hosts if asked, train, say where the policy is."""
    from robolearn.core.loop import preempted_line
    from robolearn.core.mesh import join

    join(options)
    out = options.run_dir("train", f"bc-{cfg.task or cfg.model.preset}")
    result = run_train_bc(
        cfg, out, resume=options.resume, progress=options.progress, wandb=options.tracking()
    )
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(
        f"bc: step {result['step']} ({result['trained_steps']} this run, "
        f"{result['steps_per_second']:.1f} steps/s on {result['devices']} device(s))  {metrics}"
    )
    print(
        preempted_line(result)
        + f"checkpoint: {out}  (actor only, for eval and the robot: {out / 'policy'})"
    )


def run_train_bc(
    cfg: TrainBCConfig,
    out: Path,
    resume: bool = False,
    progress=True,
    wandb: WandbSettings | None = None,
) -> dict:
    """Train (or resume) into `out`, data-parallel over every device of every process; returns
    {"step", "trained_steps", "seconds", "steps_per_second", "devices", "metrics" (the last
    logged), "preempted"}. Process 0 writes the run's files and the actor export (and logs to
    a W&B run too with `wandb`)."""
    import jax

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
    from robolearn.core.normalize import NormStats
    from robolearn.data.pipeline import (
        EpisodeData,
        TransitionLoader,
        resume_loader,
        save_loader_state,
    )
    from robolearn.policies.bc import checkpoint as ckpt
    from robolearn.policies.bc.train import init_train_state, make_train_step
    from robolearn.runs.report import BC_CURVES, metric_curves

    chief = is_chief()
    resuming = broadcast_flag(
        chief and ckpt_io.check_run_dir(out, resume, ckpt.MARKER, ckpt.read_info)
    )
    local_batch = check_batch(cfg.batch_size)
    data = EpisodeData(
        list(cfg.data), tasks=cfg.task, pipeline=cfg.input, progress=progress and chief
    )
    loader = TransitionLoader(
        data,
        local_batch,
        cfg.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    info = _data_info(cfg, data)
    if resuming:
        fields = ("task", "action_dim", "proprio_dim", "image_size")
        ckpt_io.check_same(out, ckpt.read_info(out), info, fields)
        model_cfg, stats = ckpt.read_config(out)
    else:
        sizes = {k: getattr(info, k) for k in ("image_size", "action_dim", "proprio_dim")}
        model_cfg = fitted(cfg.model, cfg.steps, **sizes)
        mean, std, _ = data.proprio_moments()
        stats = NormStats.from_moments(mean, std)
        if chief:
            ckpt.write_info(out, info, model_cfg, stats)
    resolved = dataclasses.replace(cfg, model=model_cfg)
    if chief:
        save_yaml(resolved, out / "train.yaml")
    mesh = data_mesh()
    manager = ckpt.make_manager(out, cfg.max_to_keep)
    writer = None
    try:
        if manager.latest_step() is not None:
            graphdef, state = ckpt.restore_state(manager, model_cfg)
        else:
            graphdef, state = init_train_state(model_cfg, jax.random.key(cfg.seed))
        start = int(jax.device_get(state.step))
        writer = MetricsWriter(
            out, resume_step=start or None, enabled=chief, wandb=wandb, config=to_dict(resolved)
        )

        def batches(start_step: int):
            resume_loader(loader, out, start_step)  # the data order continues where it stopped
            return (shard_batch(batch, mesh) for batch in loader)

        def save(state) -> None:
            ckpt.save_state(manager, state)
            save_loader_state(loader, out, int(state.step), keep=manager.all_steps())
            if chief:
                ckpt.export_actor(out, out / ckpt.EXPORT_DIR, state.params, int(state.step))

        result = train(
            replicate(state, mesh),
            make_train_step(model_cfg, graphdef, replicate(stats, mesh)),
            batches,
            cfg.schedule(cfg.steps),
            save=save,
            show=("nll", "mse"),
            progress=progress,
            writer=writer,
        )
        metric_curves(writer, result.step, BC_CURVES)
    finally:
        if writer is not None:
            writer.close()
        manager.close()
        loader.close()
    return {
        "step": result.step,
        "trained_steps": result.trained_steps,
        "seconds": result.seconds,
        "steps_per_second": result.steps_per_second,
        "devices": jax.device_count(),
        "metrics": result.metrics,
        "preempted": result.preempted,
    }


def _data_info(cfg: TrainBCConfig, data):
    """The PolicyInfo the data implies; one-line errors for data BC cannot train on."""
    from robolearn.policies.bc.checkpoint import PolicyInfo

    tasks = data.task_names
    where = ", ".join(cfg.data)
    if len(tasks) > 1:
        raise ConfigError(f"{where}: data holds tasks {', '.join(tasks)}; choose one with --task")
    height, width, _ = data.image_shape
    if height == 0:
        raise ConfigError(f"{where}: the episodes have no camera images; BC needs them")
    if height != width:
        raise ConfigError(f"{where}: BC needs square images, got {(height, width)}")
    return PolicyInfo(
        task=tasks[0],
        action_dim=data.action_dim,
        proprio_dim=data.proprio_dim,
        image_size=int(height),
    )
