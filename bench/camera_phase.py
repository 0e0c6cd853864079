"""The drawer policy against a free-running camera: does the outcome depend on when the camera's
frames fall relative to the 5 Hz policy steps? Simulated time, no ROS, deterministic.

    python -m bench.run camera_phase [--quick]          # seeds 0-9 (quick: 0-1), 7 phases
    python -m bench.camera_phase --seeds 0 1 --phases 0 5 10 --policy bundle:drawer/bc

In the simulator a policy sees the scene at the instant it acts. Over ROS 2 (and on the real arm)
the camera runs on its own clock (30 Hz here): the frame a policy step gets is up to one camera
period (33 ms) older than the joint state it is paired with, and which age a start gets depends on
the random phase between camera and policy. This bench runs the bridge on the simulated arm
(robolearn.hardware.sim_arm.run_closed_loop with camera_phase_s) for each scene seed and camera
phase; a row per seed and timing: when the drawer opened at each phase (s, or "no"). Timing
`core`: the bridge core stepped every 200 ms on the latest frame, which at 30 Hz is (-phase mod
33.3 ms) old (`fresh`: a frame rendered at every step, the simulator's timing). Timing `node`: as
the ROS 2 node schedules steps (node_timing: after the previous ramp and 10 ms of inference, on a
frame that arrived after the step was due), so frames are fresh but steps come every ~233 ms and
the phase sets when.
"""

from __future__ import annotations

import argparse
import sys

PHASES_MS = (0, 5, 10, 15, 20, 25, 30)


def run(
    quick: bool = False,
    seeds=None,
    phases_ms=PHASES_MS,
    policy: str = "bundle:drawer/bc",
    seconds: float = 8.0,
    timings=("core", "node"),
) -> list[dict]:
    """bench.run entry: one row per seed and timing (default seeds 0-9; quick: 0-1)."""
    from robolearn.hardware.bridge import Bridge, BridgeConfig, load_policy
    from robolearn.hardware.sim_arm import SimArm, run_closed_loop

    seeds = ((0, 1) if quick else tuple(range(10))) if seeds is None else tuple(seeds)
    loaded = load_policy(policy, "drawer")
    arm, rows = SimArm("drawer"), []
    try:
        for timing in timings:
            for seed in seeds:
                row: dict = {"timing": timing, "seed": seed}
                for phase in (None, *phases_ms) if timing == "core" else phases_ms:
                    arm.reset(seed)
                    out = run_closed_loop(
                        Bridge(loaded, BridgeConfig(task="drawer")),
                        arm,
                        seconds,
                        camera_phase_s=None if phase is None else phase / 1000,
                        node_timing=timing == "node",
                    )
                    opened = out["first_success_s"]
                    row["fresh" if phase is None else f"{phase:g} ms"] = (
                        "no" if opened is None else round(opened, 2)
                    )
                rows.append(row)
    finally:
        arm.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench.run import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.camera_phase", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--phases", type=float, nargs="+", default=list(PHASES_MS), help="ms")
    parser.add_argument("--policy", default="bundle:drawer/bc")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--timings", nargs="+", choices=("core", "node"), default=["core", "node"])
    args = parser.parse_args(argv)
    rows = run(
        seeds=args.seeds,
        phases_ms=args.phases,
        policy=args.policy,
        seconds=args.seconds,
        timings=args.timings,
    )
    for timing in args.timings:
        mine = [r for r in rows if r["timing"] == timing]
        print(format_table(mine))
        cells = [v for r in mine for k, v in r.items() if k not in ("timing", "seed")]
        print(f"{timing}: opened in {sum(v != 'no' for v in cells)} of {len(cells)} runs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
