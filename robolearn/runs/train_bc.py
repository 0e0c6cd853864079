"""`robolearn train bc`: fit the Gaussian BC actor to the episodes of one task; resumable.

The output directory is the checkpoint directory (see robolearn.policies.bc.checkpoint) plus
train.yaml (this run's resolved settings) and metrics.jsonl (one JSON object per logged step).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax

from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats
from robolearn.core.progress import Progress
from robolearn.data.loader import TransitionLoader
from robolearn.policies.bc import checkpoint as ckpt
from robolearn.policies.bc.config import BCConfig, preset
from robolearn.policies.bc.train import init_train_state, make_train_step


@dataclasses.dataclass(frozen=True)
class TrainBCConfig:
    """What `robolearn train bc` runs.

    data: episode store directories (all episodes of `task` in them are used).
    task: the task to train on; None takes the data's only task.
    steps: total optimizer steps (a resumed run continues up to this number). A fresh run's
        learning rate decays over exactly these steps; resuming with more keeps the final rate.
        A resumed run keeps its checkpoint's model, optimizer and proprio statistics, and skips
        the batches already trained on, so its data order continues where it stopped.
    save_every/log_every: checkpoint and metrics intervals in steps (a checkpoint is always
        written at the end).
    """

    data: tuple[str, ...]
    preset: str = "base"
    task: str | None = None
    steps: int = 5000
    batch_size: int = 64
    seed: int = 0
    save_every: int = 1000
    log_every: int = 50
    max_to_keep: int = 2

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        for name in ("steps", "batch_size", "save_every", "log_every", "max_to_keep"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def run_train_bc(cfg: TrainBCConfig, out: Path, resume: bool = False, progress=True) -> dict:
    """Train (or resume) into `out`; returns {"step", "seconds", "steps_per_second", metrics}."""
    resuming = _check_out(out, resume)
    loader = _make_loader(cfg)
    info = _data_info(cfg, loader)
    if resuming:
        model_cfg, stats = _check_resume(out, info)
    else:
        model_cfg = preset(
            cfg.preset,
            image_size=info.image_size,
            action_dim=info.action_dim,
            proprio_dim=info.proprio_dim,
        )
        # The learning rate decays over this run's steps (the preset's decay_steps is a default).
        optim = dataclasses.replace(model_cfg.optim, decay_steps=cfg.steps)
        model_cfg = dataclasses.replace(model_cfg, optim=optim)
        stats = NormStats.of(loader.cache.arrays["proprio"])
        ckpt.write_info(out, info, model_cfg, stats)
    save_yaml(cfg, out / "train.yaml")
    manager = ckpt.make_manager(out, cfg.max_to_keep)
    try:
        if manager.latest_step() is not None:
            graphdef, state = ckpt.restore_state(manager, model_cfg)
        else:
            graphdef, state = init_train_state(model_cfg, jax.random.key(cfg.seed))
        loader.skip(int(state.step))
        return _loop(cfg, model_cfg, graphdef, state, stats, loader, manager, out, progress)
    finally:
        manager.close()


def _loop(cfg, model_cfg: BCConfig, graphdef, state, stats, loader, manager, out, progress):
    train_step = make_train_step(model_cfg, graphdef, stats)
    start_step = step = int(state.step)
    start = last_time = time.perf_counter()
    last_step, metrics = step, {}
    bar = Progress(cfg.steps, "step", enabled=progress, start_at=step)
    with open(out / "metrics.jsonl", "a") as log:
        while step < cfg.steps:
            state, metrics = train_step(state, next(loader))
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                rate = (step - last_step) / max(now - last_time, 1e-9)
                row = {"step": step, **metrics, "steps_per_second": rate, "time": now - start}
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.update(
                    step, f"nll {metrics['nll']:.3f}  mse {metrics['mse']:.4f}  {rate:.1f} steps/s"
                )
                last_step, last_time = step, now
            if step % cfg.save_every == 0 or step == cfg.steps:
                ckpt.save_state(manager, state)
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "step": step,
        "trained_steps": step - start_step,
        "seconds": seconds,
        "steps_per_second": (step - start_step) / max(seconds, 1e-9),
        "metrics": {k: float(v) for k, v in jax.device_get(metrics).items()},
    }


def _make_loader(cfg: TrainBCConfig) -> TransitionLoader:
    return TransitionLoader(list(cfg.data), cfg.batch_size, cfg.seed, tasks=cfg.task)


def _data_info(cfg: TrainBCConfig, loader: TransitionLoader) -> ckpt.PolicyInfo:
    tasks = loader.cache.task_names
    where = ", ".join(cfg.data)
    if len(tasks) > 1:
        raise ConfigError(f"{where}: data holds tasks {', '.join(tasks)}; choose one with --task")
    image = loader.cache.arrays["image"]
    if image.shape[1] != image.shape[2]:
        raise ConfigError(f"{where}: BC needs square images, got {image.shape[1:3]}")
    return ckpt.PolicyInfo(
        task=tasks[0],
        action_dim=int(loader.cache.arrays["action"].shape[1]),
        proprio_dim=int(loader.cache.arrays["proprio"].shape[1]),
        image_size=int(image.shape[1]),
    )


def _check_resume(out: Path, data: ckpt.PolicyInfo) -> tuple[BCConfig, NormStats]:
    ckpt_io.check_same(
        out, ckpt.read_info(out), data, ("task", "action_dim", "proprio_dim", "image_size")
    )
    return ckpt.read_config(out)


def _check_out(out: Path, resume: bool) -> bool:
    """Whether to resume from `out`; one-line errors for a directory that cannot be (re)used."""
    return ckpt_io.check_run_dir(out, resume, ckpt.MARKER, ckpt.read_info)
