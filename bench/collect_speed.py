"""Collection steps/s into the episode store (stepping, rendering, compressing, fsync included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from robolearn.data.inspect import store_size
from robolearn.runs.collect import CollectConfig, run_collect

CASES = [("drawer", "expert"), ("drawer", "random"), ("metaworld/drawer-open", "expert")]


def run(quick: bool = False) -> list[dict]:
    rows = []
    for task, policy in CASES[:2] if quick else CASES:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = CollectConfig(task=task, policy=policy, episodes=2 if quick else 10)
            result = run_collect(cfg, Path(tmp) / "store", progress=False)
            size = store_size(Path(tmp) / "store")
        rows.append(
            {
                "task": task,
                "policy": policy,
                "episodes": result["episodes"],
                "steps": result["steps"],
                "steps/s": result["steps_per_second"],
                "kB/step": size / 1e3 / result["steps"],
            }
        )
    return rows
