"""The drawer over real ROS 2 in real time: how often a single start opens it, and the tank.

    python -m bench.ros2_drawer                        # seeds 0-9 x 10 starts, ~35 min
    python -m bench.ros2_drawer --seeds 0 --repeats 5  # one scene, five starts
    python -m bench.run ros2_drawer [--quick]          # as a benchmark table (--quick: seeds 0-1)

Each start is what tests/hardware/test_ros2_e2e.py runs: the simulated WidowX driver
(robolearn.hardware.ros2_sim_driver, MuJoCo drawer scene stepped on the wall clock) and the bridge
node (robolearn.runs.deploy, `bundle:drawer/bc`, default filter and shield) as fresh subprocesses
on their own DDS domain, ~/start, `--seconds` of real time, ~/hold. One row per start: when the
driver first reported the drawer open, the tank's lowest and last level (J, from the 1 Hz status
topic and a final ~/status call), the control steps the filter scaled (alpha < 1), the shield's
interventions by kind, the fraction of real time the three processes kept (commands, joint
states, policy steps), the longest gap between two control ticks of the bridge (ms; 10 is on
time: a stalled process misses ticks), when the first command moved the arm after ~/start (s),
and whether the driver fell behind real time (its log says so). Runs are sequential and need the
machine's cores to themselves: another heavy job makes the processes miss real time (see the
`real time` and `tick gap` columns). `--busy N` measures that on purpose: N processes spinning
on the CPU for the whole run (a loaded robot PC, a shared CI machine). `--keep DIR` keeps the
logs of starts that did not open.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.hardware.passivity import PassivityConfig  # noqa: E402

from bench.ros2_probe import BRIDGE, driver_and_bridge, real_time_fractions  # noqa: E402


def start_once(
    seed: int,
    seconds: float = 15.0,
    policy: str = "bundle:drawer/bc",
    keep: Path | None = None,
    record: Path | None = None,
) -> dict:
    """One fresh start of driver + bridge on scene `seed`; a row of the table. keep: a folder
    where the logs of a start that did not open the drawer are copied. record: a store the
    bridge records the start's episode into (the row's `episode` names its file)."""
    with tempfile.TemporaryDirectory(prefix="ros2_drawer_") as tmp:
        before = set(Path(record).glob("episodes/*.npz")) if record is not None else set()
        row = _start(tmp, seed, seconds, policy, record)
        if record is not None:
            new = sorted(set(Path(record).glob("episodes/*.npz")) - before)
            row["episode"] = ",".join(p.name for p in new) or "none"
        if keep is not None and row["opened_s"] == "no":
            shutil.copytree(tmp, Path(keep) / f"seed{seed}_{time.strftime('%H%M%S')}")
    return row


def _start(tmp: str, seed: int, seconds: float, policy: str, record: Path | None) -> dict:
    with driver_and_bridge(tmp, seed, policy, record_dir=record) as (probe, driver, bridge):
        probe.wait_for_node(f"{BRIDGE}/start", bridge, timeout_s=180)
        if not probe.wait_until(lambda: probe.status()["ready"], timeout_s=30):
            raise RuntimeError(f"bridge not ready: {probe.status()['inputs_problem']}")
        if not probe.wait_until(lambda: probe.joint_states and probe.success, timeout_s=30):
            raise RuntimeError("the probe sees no joint states or success topic")
        t0 = time.monotonic()
        ok, message = probe.call(f"{BRIDGE}/start")
        if not ok:
            raise RuntimeError(message)
        time.sleep(seconds)
        status = probe.status()
        probe.call(f"{BRIDGE}/hold")
        with probe.lock:
            opened = [t - t0 for t, ok in probe.success if t > t0 and ok]
            energies = [s["tank"]["energy_j"] for t, s in probe.statuses if t > t0]
        rates = real_time_fractions(probe, status, t0, seconds)
        times, commands = probe.commands_since(t0)
        moved = np.abs(commands - commands[:1]).max(axis=1) > 1e-6 if len(commands) else []
        first_move = f"{times[np.argmax(moved)] - t0:.2f}" if np.any(moved) else "no"
        behind = "slower than real time" in driver.log()
    tank = status["tank"]
    periods = status["control_period_ms"]
    return {
        "seed": seed,
        "opened_s": round(opened[0], 2) if opened else "no",
        "tank_min_j": round(min([*energies, tank["energy_j"]]), 3),
        "tank_end_j": round(tank["energy_j"], 3),
        "alpha<1_steps": tank["activations"],
        "interventions": ", ".join(f"{k} {v}" for k, v in status["interventions"].items())
        or "none",
        "real time": "/".join(f"{r:.2f}" for r in rates.values()),
        "tick gap ms": round(periods["nominal"] + periods["jitter_max"], 1),
        "first move s": first_move,
        "driver behind": "yes" if behind else "no",
    }


def run(
    quick: bool = False,
    seeds=None,
    repeats: int = 1,
    seconds: float = 15.0,
    log=None,
    keep: Path | None = None,
    record: Path | None = None,
) -> list[dict]:
    """bench.run entry: one row per start, `repeats` rounds over `seeds` (default 0-9; quick:
    0 and 1, once each); `log(row)` after each start."""
    seeds = ((0, 1) if quick else tuple(range(10))) if seeds is None else tuple(seeds)
    rows = []
    for _ in range(repeats):
        for seed in seeds:
            rows.append(start_once(seed, seconds, keep=keep, record=record))
            if log is not None:
                log(rows[-1])
    return rows


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_processes(n: int):
    """`n` processes that keep a core busy each until the block ends (a loaded machine)."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def main(argv: list[str] | None = None) -> int:
    from bench.run import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.ros2_drawer", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--repeats", type=int, default=10, help="starts per seed")
    parser.add_argument("--seconds", type=float, default=15.0, help="real time per start")
    parser.add_argument("--keep", type=Path, help="copy the logs of starts that did not open here")
    parser.add_argument("--rows", type=Path, help="append each start's row to this file (JSON)")
    parser.add_argument("--record", type=Path, help="record every start's episode into this store")
    parser.add_argument(
        "--busy", type=int, default=0, help="processes spinning on the CPU during the run"
    )
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error(f"--busy must be >= 0, got {args.busy}")

    def log(row):
        if args.rows is not None:
            with open(args.rows, "a") as f:
                f.write(json.dumps(row) + "\n")
        print(
            f"seed {row['seed']}: opened {row['opened_s']}, tank min {row['tank_min_j']} J, "
            f"real time {row['real time']}, tick gap {row['tick gap ms']} ms",
            flush=True,
        )

    with busy_processes(args.busy):
        rows = run(
            seeds=args.seeds,
            repeats=args.repeats,
            seconds=args.seconds,
            log=log,
            keep=args.keep,
            record=args.record,
        )
    opened = [r for r in rows if r["opened_s"] != "no"]
    dry = sum(r["tank_min_j"] < PassivityConfig().energy_min_j + 0.01 for r in rows)
    print()
    print(format_table(rows))
    times = sorted(r["opened_s"] for r in opened)
    span = f", after {times[0]:g}-{times[-1]:g} s" if times else ""
    print(
        f"\nopened in {len(opened)} of {len(rows)} starts{span}; the tank reached E_min "
        f"in {dry} of {len(rows)}"
    )
    worst = [min(float(r["real time"].split("/")[i]) for r in rows) for i in range(3)]
    behind = sum(r["driver behind"] == "yes" for r in rows)
    print(
        "real time kept (lowest fraction of commands/joint states/policy steps): "
        + "/".join(f"{w:.2f}" for w in worst)
        + f"; longest control tick gap {max(r['tick gap ms'] for r in rows):g} ms; the driver "
        f"fell behind real time in {behind} of {len(rows)} starts"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
