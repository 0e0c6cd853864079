"""The passivity study (robolearn/runs/passivity_study.py): success, energy violations, injected
energy, filter activations and peak contact force on the `press` task, filter off vs on.

    python -m bench.passivity_study                      # 3 seeds x 20 episodes, markdown table
    python -m bench.passivity_study --out runs/passivity # ... and runs/passivity/results.json
    python -m bench.run passivity_study [--quick]        # as a benchmark table (--quick: 1 x 5)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

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
    parser.add_argument("--out", default=None, help="directory for results.json")
    args = parser.parse_args(argv)
    cfg = study.StudyConfig(
        seeds=tuple(args.seeds),
        episodes=args.episodes,
        max_steps=args.max_steps,
        noise_std=args.noise_std,
    )
    results = study.run_study(cfg)
    print()
    print(study.markdown_table(results))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
        print(f"\nwrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
