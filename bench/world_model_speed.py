"""Diffusion world model speed: train steps/s and imagined frames/s of the tiny, small and base
presets at 64x64 (T=4), with compile time reported separately, model FLOPs from XLA's cost
analysis and, on a GPU, model FLOPs utilization (MFU).

Rows (one per preset, measurement and batch):

    train    the jitted, data-parallel train step (robolearn.world_models.train) at global batch 16
    and 32 on
             random uint8 frames; `sec` is the median of a few timed steps after one warm-up step.
    imagine  `sampler.open_loop` jitted with graph, sampler config and proprio stats closed over,
             from `robolearn.imagination.start_window`, `horizon` steps under random actions,
             default sampler (3 Euler steps = 3 denoiser calls per frame); frames/s = batch *
             horizon / sec.
    diamond  DIAMOND's own PyTorch denoiser and 3-step sampler (bench.diamond: its code from
             ../shared/reference/diamond, 4.4M parameters, Atari layout) measured in this same run,
             eager and under torch.compile: imagine at the same batches and horizon (3 denoiser
             calls per frame, like ours), train at batch 16 with 1 U-Net pass (the work of our
             step) and 2 (DIAMOND's default trainer). Skipped, with the reason in the note, when
             torch (the `reference` extra) or the reference code is missing.

Our small rows (4.0M parameters, DIAMOND's size, at a seventh of its FLOPs) and base rows (4.5M,
DIAMOND's layout) carry `vs_diamond` = ours / DIAMOND compiled at equal work (frames/s at the same
batch; the 1-pass train step time, theirs / ours), and `vs_eager` the same against DIAMOND eager:
> 1 = faster.

compile_s is the ahead-of-time lower + compile of exactly the executable that is then timed.
gflop is per train step (all devices) or per imagined frame (one batch-1 denoiser call times the
denoiser calls per frame), from `compiled.cost_analysis()['flops']`; gflop_per_s = gflop * per_s.
mfu (GPU only) = achieved FLOP/s / (BENCH_PEAK_TFLOPS, default 989, bf16 dense H100/H200, times
the devices used); empty on CPU. The computation dtype is the training default: bfloat16 on GPU/TPU,
float32 on CPU.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from robolearn.world_models.config import preset
from robolearn.world_models.model import count_params
from robolearn.world_models.sampler import open_loop
from robolearn.world_models.train import init_train_state, make_train_step

from bench.timing import timed as _timed
from robolearn.core.checkpoint import abstract_init
from robolearn.core.mesh import data_mesh, replicate, shard_batch
from robolearn.core.normalize import NormStats
from robolearn.imagination import start_window

IMAGE = 64
DEFAULT_PEAK_TFLOPS = 989.0  # H100/H200 SXM, bf16 dense
DIAMOND_TRAIN_BATCH = 16


def _dtype():
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32


def _flops(compiled) -> float | None:
    """'flops' of a compiled executable's cost analysis (a dict, or a list of dicts in some JAX
    versions), or None when the backend gives none."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def _peak_flops(devices: int) -> float | None:
    """Peak FLOP/s of `devices` accelerators on a GPU backend, else None (no MFU on CPU)."""
    if jax.default_backend() != "gpu":
        return None
    return float(os.environ.get("BENCH_PEAK_TFLOPS", DEFAULT_PEAK_TFLOPS)) * 1e12 * devices


def _row(name, params, measure, batch, horizon, per_s, unit, sec, compile_s, gflop, reps, peak):
    achieved = gflop * per_s if gflop is not None else None
    mfu = achieved * 1e9 / peak if achieved is not None and peak else ""
    note = ""
    if peak:
        note = f"mfu vs {peak / 1e12:.0f} TFLOP/s peak (BENCH_PEAK_TFLOPS)"
    return {
        "preset": name,
        "params": params,
        "backend": f"{jax.default_backend()} {jnp.dtype(_dtype()).name}",
        "measure": measure,
        "batch": batch,
        "horizon": horizon,
        "per_s": per_s,
        "unit": unit,
        "sec": sec,
        "compile_s": compile_s,
        "gflop": gflop if gflop is not None else "",
        "gflop_per_s": achieved if achieved is not None else "",
        "mfu": mfu,
        "vs_diamond": "",
        "vs_eager": "",
        "reps": reps,
        "note": note,
    }


def _random_batch(rng: np.random.Generator, batch: int, context: int) -> dict[str, np.ndarray]:
    return {
        "image": rng.integers(0, 256, (batch, context + 1, IMAGE, IMAGE, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, context, 7)).astype(np.float32),
        "proprio": rng.normal(size=(batch, context + 1, 7)).astype(np.float32),
    }


def measure_train(name: str, batch: int, reps: int) -> dict:
    """One train row: compile seconds, median step seconds, steps/s, FLOPs per step."""
    cfg = preset(name, image_size=IMAGE)
    graphdef, state = init_train_state(cfg, jax.random.key(0), _dtype())
    params = count_params(nnx.merge(graphdef, state.params))
    stats = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32), np.ones(7, np.float32))
    mesh = data_mesh()
    step = make_train_step(cfg, graphdef, stats, mesh)
    state = replicate(state, mesh)
    data = shard_batch(_random_batch(np.random.default_rng(0), batch, cfg.model.context), mesh)
    start = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    devices = mesh.devices.size
    flops = _flops(compiled)  # per device after SPMD partitioning
    box = [state]

    def one_step():
        box[0], metrics = compiled(box[0], data)
        return metrics

    sec, reps = _timed(one_step, reps, warmup=1)
    gflop = flops * devices / 1e9 if flops is not None else None
    row = _row(
        name, params, "train", batch, "", 1 / sec, "steps/s", sec, compile_s, gflop, reps,
        _peak_flops(devices),
    )  # fmt: skip
    return row


def denoiser_flops(name: str) -> float | None:
    """FLOPs of one denoiser call at batch 1 (XLA cost analysis; compiled, never initialized
    nor run)."""
    cfg = preset(name, image_size=IMAGE)
    graphdef, state = abstract_init(lambda rng: init_train_state(cfg, rng, _dtype()))
    m = cfg.model

    def denoise(params, noisy, sigma, frames, actions):
        return nnx.merge(graphdef, params).denoise(noisy, sigma, frames, actions)

    args = (
        jnp.zeros((1, IMAGE, IMAGE, 3)),
        jnp.ones((1,)),
        jnp.zeros((1, m.context, IMAGE, IMAGE, 3)),
        jnp.zeros((1, m.context, m.action_dim)),
    )
    return _flops(jax.jit(denoise).lower(state.params, *args).compile())


def measure_imagine(name: str, batch: int, horizon: int, reps: int, warmup: int, flops) -> dict:
    """One imagination row: compile seconds, median rollout seconds, frames/s, FLOPs per frame."""
    cfg = preset(name, image_size=IMAGE)
    m, sampler = cfg.model, cfg.sampler
    graphdef, state = init_train_state(cfg, jax.random.key(0), _dtype())
    params = state.params
    n_params = count_params(nnx.merge(graphdef, params))
    stats = NormStats(jnp.zeros(m.proprio_dim), jnp.ones(m.proprio_dim), jnp.ones(m.proprio_dim))
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (batch, IMAGE, IMAGE, 3), dtype=np.uint8)
    frames, actions, proprio = start_window(
        first, rng.normal(size=(batch, m.proprio_dim)), m.context, m.action_dim
    )
    future = rng.uniform(-1, 1, (batch, horizon, m.action_dim)).astype(np.float32)

    @jax.jit
    def rollout(params, key, frames, actions, proprio, future):
        return open_loop(graphdef, params, key, frames, actions, proprio, future, sampler, stats)

    args = (params, jax.random.key(1), *map(jnp.asarray, (frames, actions, proprio, future)))
    start = time.perf_counter()
    compiled = rollout.lower(*args).compile()
    compile_s = time.perf_counter() - start
    sec, reps = _timed(lambda: compiled(*args), reps, warmup)
    calls = sampler.steps if sampler.method == "euler" else 2 * sampler.steps - 1
    gflop = flops * calls / 1e9 if flops is not None else None
    fps = batch * horizon / sec
    row = _row(
        name, n_params, "imagine", batch, horizon, fps, "frames/s", sec, compile_s, gflop, reps,
        _peak_flops(1),
    )  # fmt: skip
    return row


def diamond_rows(template: dict, imagine: list[tuple[int, int, int, int]], reps: int) -> list:
    """DIAMOND's rows, eager and compiled, with the same keys as ours (bench.diamond), or one row
    saying why they are missing. imagine: (batch, horizon, reps, warm-up) of our rollouts."""
    from bench import diamond

    blank = dict.fromkeys(template, "")
    missing = diamond.available()
    if missing:
        return [{**blank, "preset": "diamond", "note": f"not measured: {missing}"}]
    import torch

    rows = []
    gflop = diamond.denoiser_gflop(diamond.build(compiled=False))
    for compiled in (False, True):
        model = diamond.build(compiled)
        backend = f"cpu float32 torch {torch.__version__.split('+')[0]}"
        kind = "compiled" if compiled else "eager"
        base = {**blank, "preset": f"diamond-{kind}", "params": model.params, "backend": backend}
        for passes in (1, 2):
            sec, n, compile_s = diamond.train_seconds(model, DIAMOND_TRAIN_BATCH, passes, reps)
            rows.append({
                **base, "measure": "train" if passes == 1 else "train-2pass",
                "batch": DIAMOND_TRAIN_BATCH, "per_s": 1 / sec, "unit": "steps/s", "sec": sec,
                "compile_s": compile_s, "reps": n,
                "note": f"{passes} U-Net pass{'es' if passes > 1 else ''} per step",
            })  # fmt: skip
        for batch, horizon, n, warmup in imagine:
            sec, n, compile_s = diamond.imagine_seconds(model, batch, horizon, n, warmup)
            rows.append({
                **base, "measure": "imagine", "batch": batch, "horizon": horizon,
                "per_s": batch * horizon / sec, "unit": "frames/s", "sec": sec,
                "compile_s": compile_s, "gflop": 3 * gflop,
                "gflop_per_s": 3 * gflop * batch * horizon / sec, "reps": n,
                "note": "3 denoiser calls per frame",
            })  # fmt: skip
    return rows


def compare(rows: list[dict]) -> None:
    """Fill vs_diamond (against DIAMOND compiled) and vs_eager of our small and base rows at equal
    work: imagined frames/s at the same batch; train steps/s against DIAMOND's 1-pass step
    ("train"; its default 2-pass step is the "train-2pass" row)."""
    theirs = {
        (row["preset"], row["measure"], row["batch"]): row["per_s"]
        for row in rows
        if str(row["preset"]).startswith("diamond-")
    }
    for row in rows:
        if row["preset"] not in ("small", "base"):
            continue
        for column, kind in (("vs_diamond", "diamond-compiled"), ("vs_eager", "diamond-eager")):
            other = theirs.get((kind, row["measure"], row["batch"]))
            if other:
                row[column] = row["per_s"] / other


def run(quick: bool = False) -> list[dict]:
    """Rows per (preset, measurement, batch); tiny only with quick (and DIAMOND at batch 1), then
    DIAMOND's rows from this run, and the ratios at equal work."""
    presets = ("tiny",) if quick else ("tiny", "small", "base")
    reps = 2 if quick else 5
    cpu = jax.default_backend() == "cpu"
    rows = []
    imagine = []
    for name in presets:
        for batch in (16, 32):
            rows.append(measure_train(name, batch, reps))
        flops = denoiser_flops(name)
        for batch in (1, 32, 256):
            # (horizon, reps, warm-up calls): big batches on a 2-core CPU take up to minutes per
            # rollout, so they get a shorter rollout and a single timed call without warm-up.
            horizon, n, warmup = 4, reps, 1
            if quick and batch > 1:
                horizon, warmup = (2, 0) if batch == 32 else (1, 0)
                n = reps if batch == 32 else 1
            elif name in ("small", "base") and batch == 256 and cpu:
                horizon, n, warmup = 2, 1, 0
            rows.append(measure_imagine(name, batch, horizon, n, warmup, flops))
            if name == presets[-1] and (batch < 256 or not cpu) and (batch == 1 or not quick):
                imagine.append((batch, horizon, n, warmup))
    rows += diamond_rows(rows[0], imagine, reps)
    compare(rows)
    return rows
