"""The passivity study (robolearn/runs/passivity_study.py): success, energy violations, injected
energy, filter activations and peak contact force on the `press` task, filter off vs on.

    python -m bench.passivity_study                      # 3 seeds x 20 episodes, markdown table
    python -m bench.passivity_study --out runs/passivity # ... and runs/passivity/results.json
    python -m bench.run passivity_study [--quick]        # as a benchmark table (--quick: 1 x 5)

Trained policies (one checkpoint per training seed, each plays every episode):

    python -m bench.passivity_study --scripted --seeds 0 --episodes 50 \
        --policy standard=runs/press-std-0,runs/press-std-1,runs/press-std-2 \
        --policy energy-aware=runs/press-energy-0,runs/press-energy-1,runs/press-energy-2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.core.errors import RobolearnError  # noqa: E402
from robolearn.runs import passivity_study as study  # noqa: E402

_COLUMNS = {
    "success_rate": "success",
    "violation_episode_rate": "violating episodes",
    "violation_step_rate": "violation steps",
    "injected_energy_j_mean": "injected J",
    "net_energy_j_mean": "net J",
    "activation_rate": "activation rate",
    "lowest_energy_j": "lowest tank J",
    "peak_force_n_mean": "peak force N",
    "peak_force_n_max": "max peak force N",
    "final_force_n_mean": "force at end N",
    "time_to_success_s_mean": "time to success s",
}


def run(quick: bool = False) -> list[dict]:
    """bench.run entry: one row per (policy, filter) condition."""
    cfg = study.StudyConfig(seeds=(0,), episodes=5) if quick else study.StudyConfig()
    results = study.run_study(cfg, log=lambda _: None)
    return [
        {"policy": r["policy"], "filter": r["filter"], "episodes": r["episodes"]}
        | {label: r[key] for key, label in _COLUMNS.items()}
        for r in results["conditions"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.passivity_study", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20, help="episodes per seed")
    parser.add_argument("--max-steps", type=int, default=50, help="5 Hz steps per episode")
    parser.add_argument("--noise-std", type=float, default=0.0, help="action noise of the policies")
    parser.add_argument(
        "--scripted", nargs="*", default=list(study.POLICIES), metavar="NAME",
        help="scripted policies to study: aggressive, expert (default both; none: --scripted)",
    )  # fmt: skip
    parser.add_argument(
        "--policy", action="append", default=[], metavar="NAME=CKPT[,CKPT...]",
        help="a trained press policy, one checkpoint per training seed (repeatable)",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=64, help="the trained policies' frame")
    parser.add_argument("--out", default=None, help="directory for results.json")
    parser.add_argument("--plot", default=None, metavar="PNG", help="also draw the study as bars")
    args = parser.parse_args(argv)
    if args.plot and not args.plot.lower().endswith(".png"):
        print(f"error: --plot writes a PNG file, got {args.plot!r}", file=sys.stderr)
        return 2
    try:
        cfg = study.StudyConfig(
            seeds=tuple(args.seeds),
            episodes=args.episodes,
            max_steps=args.max_steps,
            noise_std=args.noise_std,
            policies=tuple(args.scripted),
            trained=tuple(args.policy),
            image_size=args.image_size,
        )
        results = study.run_study(cfg)
    except RobolearnError as err:  # a bad setting or checkpoint: one line, nothing written
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(study.markdown_table(results))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
        print(f"\nwrote {out / 'results.json'}")
    if args.plot:
        import cv2

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(args.plot, cv2.cvtColor(study.plot(results), cv2.COLOR_RGB2BGR))
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
