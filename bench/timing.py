"""Timing helper shared by the benchmarks that time jitted JAX calls."""

from __future__ import annotations

import statistics
import time

import jax


def timed(fn, reps: int, warmup: int, budget_s: float = 60.0) -> tuple[float, int]:
    """Median seconds of up to `reps` calls of fn() (results blocked on) after `warmup` calls;
    stops early once the timed calls took `budget_s` (at least one call). -> (median, calls)."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    while len(times) < max(reps, 1) and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times)
