"""BC train steps/s (and samples/s) of the tiny and base presets at 64x64, after compilation."""

from __future__ import annotations

import time

import jax
import numpy as np

from robolearn.core.normalize import NormStats
from robolearn.policies.bc.config import preset
from robolearn.policies.bc.train import init_train_state, make_train_step


def measure(name: str, batch_size: int, steps: int) -> dict:
    """Compile time and steady-state steps/s of one preset's train_step."""
    cfg = preset(name, image_size=64)
    graphdef, state = init_train_state(cfg, jax.random.key(0))
    stats = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32))
    step = make_train_step(cfg, graphdef, stats)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (batch_size, 64, 64, 3), dtype=np.uint8),
        "proprio": rng.normal(size=(batch_size, 7)).astype(np.float32),
        "action": rng.uniform(-1, 1, (batch_size, 7)).astype(np.float32),
    }
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    rate = steps / (time.perf_counter() - start)
    params = sum(x.size for x in jax.tree.leaves(state.params))
    return {
        "preset": name,
        "params": params,
        "batch": batch_size,
        "steps_per_s": rate,
        "samples_per_s": rate * batch_size,
        "compile_s": compile_s,
        "backend": jax.default_backend(),
    }


def run(quick: bool = False) -> list[dict]:
    """Rows per (preset, batch)."""
    steps = 10 if quick else 50
    return [measure("tiny", 64, steps * 4), measure("base", 64, steps), measure("base", 256, steps)]
