"""Env steps/s with rendering (the full `step`) and without (physics and control only)."""

from __future__ import annotations

import time

import numpy as np

from robolearn import envs

TASKS = {
    "widowx": ["drawer", "drawer-close", "push"],
    "metaworld": ["metaworld/drawer-open", "metaworld/hammer"],
    "robosuite": ["robosuite/lift", "robosuite/door"],
}


def _rate(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return steps / (time.perf_counter() - start)


def measure(name: str, size: int, steps: int) -> dict:
    """Steps/s of `name` at `size` px: full step (with rendering) and physics only."""
    task = envs.make(name, image_size=size)
    rng = np.random.default_rng(0)
    try:
        task.reset(seed=0)
        for _ in range(3):
            task.step(rng.uniform(-1, 1, 7))
        with_render = _rate(lambda: task.step(rng.uniform(-1, 1, 7)), steps)
        task.reset(seed=1)
        # The physics-only figure drives the simulator below the observation assembly on purpose.
        physics = _rate(lambda: task._apply_action(rng.uniform(-1, 1, 7)), steps)
        render = _rate(task._image, steps)
    finally:
        task.close()
    return {
        "task": name,
        "px": size,
        "steps/s render": with_render,
        "steps/s no render": physics,
        "ms/frame": 1000.0 / render,
        "control Hz": envs.task_info(name).control_hz,
    }


def run(quick: bool = False) -> list[dict]:
    rows = []
    for suite, names in TASKS.items():
        available = [n for n in names if n in envs.task_names()]
        for name in available[:1] if quick else available:
            steps = 10 if suite == "robosuite" or quick else 40
            for size in (64, 128):
                rows.append(measure(name, size, steps))
    return rows
