"""Benchmark runner: `python -m bench.run [NAME ...] [--quick] [--json FILE]`.

Each benchmark is a module in bench/ with `run(quick: bool) -> list[dict]`; the runner prints
each as a table (columns in the order of the first row) and can save all rows as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

BENCHMARKS = {
    "env_speed": "env steps/s with and without rendering, per suite and image size",
    "expert_success": "scripted expert success over seeds 0..49 (0..9 with --quick)",
    "loader_speed": "training loader samples/s, transitions and T=4 windows, batch 32/256",
    "bc_speed": "BC train steps/s, tiny and base presets at 64x64",
    "collect_speed": "episode collection into the store: steps/s and bytes per step",
    "world_model_speed": "world model train steps/s, imagined frames/s, FLOPs; tiny, small, "
    "base and DIAMOND's own (eager, compiled) in the same run",
    "world_model_fidelity": "small vs base world model open-loop PSNR/SSIM after the same "
    "training FLOPs on the same drawer data",
    "imagination_trust": "imagined vs real success of one task's policies of different quality "
    "(eval imagination), their correlation",
    "world4rl_tasks": "World4RL's six Meta-World tasks at 40 Hz: BC vs refined in imagination "
    "(3 seeds x 50), beside World4RL's figures",
    "xla_levers": "XLA CPU options and compute dtype vs the base world model's speed",
    "learner_speed": "off-policy learner (finetune) updates/s at WSRL's settings and lighter ones "
    "vs the 5 Hz robot",
    "refine_speed": "imagined steps/s of refinement (rollout, PPO iteration) vs the simulator's",
    "passivity_study": "press task, aggressive and expert policy, passivity filter off vs on",
    "deploy_speed": "filter + shield us/step, 100 Hz loop jitter, ROS 2 obs-to-command latency",
    "ros2_drawer": "drawer over ROS 2 in real time: opened per start, tank, interventions",
    "camera_phase": "drawer policy vs a free-running camera's phase (sim time): opened per seed",
}


def format_table(rows: list[dict]) -> str:
    """A plain-text table of `rows` (dicts with the same keys)."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and tasks")
    parser.add_argument("--json", default=None, help="also write all rows to this JSON file")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, MUJOCO_GL={os.environ['MUJOCO_GL']}"
    )
    results = {}
    for name in names:
        start = time.perf_counter()
        rows = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        print(f"\n## {name}: {BENCHMARKS[name]} ({time.perf_counter() - start:.0f} s)\n")
        print(format_table(rows), flush=True)
        results[name] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
