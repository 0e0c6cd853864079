"""`robolearn train world-model`: fit the diffusion world model to episode stores; resumable,
data-parallel over every local device (and every host with --distributed).

The output directory is the checkpoint directory (see robolearn.world_models.checkpoint) plus
train.yaml (this run's settings) and metrics.jsonl (one JSON object per logged step).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.mesh import data_mesh, replicate, shard_batch
from robolearn.core.normalize import NormStats
from robolearn.core.progress import Progress
from robolearn.data.loader import WindowLoader
from robolearn.world_models import checkpoint as ckpt
from robolearn.world_models.config import WorldModelConfig, preset
from robolearn.world_models.train import init_train_state, make_train_step

DTYPES = ("auto", "float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainWorldModelConfig:
    """What `robolearn train world-model` runs.

    data: episode store directories; every episode in them is used (several tasks are fine: the
        frames say which scene it is), unless `tasks` narrows them.
    steps: total optimizer steps (a resumed run continues up to this number); a fresh run's
        learning rate decays over exactly these steps.
    batch_size: the global batch, split over all devices (must divide by the device count).
    dtype: computation dtype; auto = bfloat16 on GPU/TPU, float32 on CPU (weights stay float32).
    init: start a fresh run from another world model's (EMA) weights, e.g. to fine-tune a model
        of one scene on a new task in it. The architecture, context and proprio statistics come
        from that checkpoint (`preset` is ignored): the weights were learned under them.
    """

    data: tuple[str, ...]
    preset: str = "base"
    tasks: tuple[str, ...] = ()
    steps: int = 20_000
    batch_size: int = 32
    seed: int = 0
    save_every: int = 1000
    log_every: int = 50
    max_to_keep: int = 2
    dtype: str = "auto"
    init: str | None = None

    def __post_init__(self):
        if not self.data:
            raise ConfigError("give at least one --data directory")
        for name in ("steps", "batch_size", "save_every", "log_every", "max_to_keep"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


def compute_dtype(name: str):
    """The computation dtype for `name` on the default backend."""
    if name == "auto":
        return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
    return jnp.dtype(name)


def run_train_world_model(
    cfg: TrainWorldModelConfig, out: Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train (or resume) into `out`; returns {"step", "seconds", "steps_per_second", ...}."""
    # Process 0 decides (and later writes); the others follow its decision.
    resuming = _check_out(out, resume) if jax.process_index() == 0 else False
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        resuming = bool(multihost_utils.broadcast_one_to_all(np.int32(resuming)))
    devices = jax.device_count()
    if cfg.batch_size % devices:
        raise ConfigError(
            f"batch size {cfg.batch_size} does not divide over {devices} devices; "
            f"use a multiple of {devices}"
        )
    loader = WindowLoader(
        list(cfg.data),
        cfg.batch_size // jax.process_count(),
        cfg.seed,
        context=_context(cfg, out if resuming else None),
        pad_start=True,
        tasks=cfg.tasks or None,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    info = _data_info(cfg, loader)
    if resuming:
        model_cfg, stats = _check_resume(out, info)
    elif cfg.init:
        init_info = ckpt.read_info(cfg.init)
        ckpt_io.check_same(
            Path(cfg.init), init_info, info, ("image_size", "action_dim", "proprio_dim")
        )
        model_cfg, stats = ckpt.read_config(cfg.init)
        optim = dataclasses.replace(model_cfg.optim, decay_steps=cfg.steps)
        model_cfg = dataclasses.replace(model_cfg, optim=optim)
        if jax.process_index() == 0:
            ckpt.write_info(out, info, model_cfg, stats)
    else:
        model_cfg = preset(
            cfg.preset,
            image_size=info.image_size,
            action_dim=info.action_dim,
            proprio_dim=info.proprio_dim,
        )
        optim = dataclasses.replace(model_cfg.optim, decay_steps=cfg.steps)
        model_cfg = dataclasses.replace(model_cfg, optim=optim)
        stats = proprio_stats(loader)
        if jax.process_index() == 0:
            ckpt.write_info(out, info, model_cfg, stats)
    if jax.process_index() == 0:
        save_yaml(cfg, out / "train.yaml")
    dtype = compute_dtype(cfg.dtype)
    mesh = data_mesh()
    manager = ckpt.make_manager(out, cfg.max_to_keep)
    try:
        if manager.latest_step() is not None:
            graphdef, state = ckpt.restore_train_state(manager, model_cfg)
            if dtype != jnp.float32:
                graphdef, _ = init_train_state(model_cfg, jax.random.key(0), dtype)
        else:
            graphdef, state = init_train_state(model_cfg, jax.random.key(cfg.seed), dtype)
            if cfg.init:
                weights = ckpt.load_world_model(cfg.init).params
                ema = jax.tree.map(jnp.copy, weights)  # distinct buffers: the step donates both
                state = state.replace(params=weights, ema=ema)
        loader.skip(int(state.step))
        state = replicate(state, mesh)
        step_fn = make_train_step(model_cfg, graphdef, stats, mesh)
        return _loop(cfg, step_fn, state, loader, manager, mesh, out, progress, devices, dtype)
    finally:
        manager.close()


def _loop(cfg, step_fn, state, loader, manager, mesh, out, progress, devices, dtype):
    start_step = step = int(state.step)
    start = last_time = time.perf_counter()
    last_step, metrics = step, {}
    compile_seconds = None
    bar = Progress(cfg.steps, "step", enabled=progress, start_at=step)
    # Only process 0 writes metrics (every process computes the same, replicated values).
    log = open(out / "metrics.jsonl", "a") if jax.process_index() == 0 else None  # noqa: SIM115
    try:
        while step < cfg.steps:
            state, metrics = step_fn(state, shard_batch(next(loader), mesh))
            step += 1
            if compile_seconds is None:
                jax.block_until_ready(metrics)
                compile_seconds = time.perf_counter() - start
                last_time = time.perf_counter()
            if step % cfg.log_every == 0 or step == cfg.steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                rate = (step - last_step) / max(now - last_time, 1e-9)
                row = {"step": step, **metrics, "steps_per_second": rate, "time": now - start}
                if log:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                bar.update(
                    step,
                    f"loss {metrics['denoise_loss']:.4f}  proprio {metrics['proprio_loss']:.4f}  "
                    f"{rate:.2f} steps/s",
                )
                last_step, last_time = step, now
            if step % cfg.save_every == 0 or step == cfg.steps:
                ckpt.save_state(manager, state)
    finally:
        bar.close()
        if log:
            log.close()
    seconds = time.perf_counter() - start
    return {
        "step": step,
        "trained_steps": step - start_step,
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "steps_per_second": (step - start_step) / max(seconds, 1e-9),
        "devices": devices,
        "dtype": jnp.dtype(dtype).name,
        "metrics": {k: float(v) for k, v in jax.device_get(metrics).items()},
    }


def proprio_stats(loader: WindowLoader) -> NormStats:
    """Mean/std of proprio over all cached frames and std of its within-episode one-step change."""
    cache = loader.cache
    proprio = cache.arrays["proprio"].astype(np.float64)
    deltas = [
        np.diff(proprio[s : s + n + 1], axis=0)
        for s, n in zip(cache.frame_start, cache.num_steps, strict=True)
    ]
    return NormStats.of(proprio, np.concatenate(deltas))


def _context(cfg: TrainWorldModelConfig, resume_from: Path | None) -> int:
    if resume_from is not None or cfg.init:
        return ckpt.read_info(resume_from or cfg.init).context
    model_cfg: WorldModelConfig = preset(cfg.preset)
    return model_cfg.model.context


def _data_info(cfg: TrainWorldModelConfig, loader: WindowLoader) -> ckpt.WorldModelInfo:
    image = loader.cache.arrays["image"]
    where = ", ".join(cfg.data)
    if image.shape[1] != image.shape[2]:
        raise ConfigError(f"{where}: the world model needs square images, got {image.shape[1:3]}")
    return ckpt.WorldModelInfo(
        tasks=tuple(loader.cache.task_names),
        image_size=int(image.shape[1]),
        context=loader.context,
        action_dim=int(loader.cache.arrays["action"].shape[1]),
        proprio_dim=int(loader.cache.arrays["proprio"].shape[1]),
    )


def _check_resume(out: Path, data: ckpt.WorldModelInfo):
    ckpt_io.check_same(
        out, ckpt.read_info(out), data, ("tasks", "image_size", "action_dim", "proprio_dim")
    )
    return ckpt.read_config(out)


def _check_out(out: Path, resume: bool) -> bool:
    """Whether to resume from `out`; one-line errors for a directory that cannot be (re)used."""
    return ckpt_io.check_run_dir(out, resume, ckpt.MARKER, ckpt.read_info)
