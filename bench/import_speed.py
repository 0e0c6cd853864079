"""Import throughput of each importer on the shared real samples: episodes/s and MB/s.

    uv run --frozen --extra dev python -m bench.import_speed [--quick]

Each row imports one sample into a fresh store in a temporary directory and times the whole call
(input checks, simulator start-up for robomimic, decoding, writing with fsync). MB/s is the
input's size on disk over that time. `--quick` keeps robomimic to 20 steps of one demo.
Other importers add a row by appending to CASES: (importer, input path, function(paths, out,
quick) -> summary with "episodes", "steps").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")  # robosuite: see robolearn/envs/robosuite.py

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLES = SHARED / "samples"
INTERBOTIX = SAMPLES / "rosbag_interbotix"
ROS2 = INTERBOTIX / "ros2_converted"
LIFT = SAMPLES / "robosuite_hdf5" / "lift_panda_demo.hdf5"


def _robomimic(path: Path, out: Path, quick: bool) -> dict:
    from robolearn.data.robomimic import RobomimicConfig
    from robolearn.runs.import_robomimic import import_robomimic

    cfg = RobomimicConfig(image_size=64)
    if quick:
        cfg = RobomimicConfig(image_size=64, max_steps=20, demos=("demo_1",))
    return import_robomimic([path], out, cfg, progress=False)


def _rosbag(path: Path, out: Path, quick: bool) -> dict:
    from robolearn.data.rosbag import RosbagConfig
    from robolearn.runs.import_data import import_rosbag

    return import_rosbag([path], out, RosbagConfig(), progress=False)


def _rlds(path: Path, out: Path, quick: bool) -> dict:
    from robolearn.data.rlds import RldsConfig
    from robolearn.runs.import_data import import_rlds

    return import_rlds([path], out, RldsConfig(image_size=64), progress=False)


def _lerobot(workers: int):
    def convert(path: Path, out: Path, quick: bool) -> dict:
        from robolearn.data.lerobot import LeRobotConfig
        from robolearn.runs.lerobot import import_lerobot

        cfg = LeRobotConfig(image_size=64, skip_missing=True, workers=workers)
        return import_lerobot(path, out, cfg, progress=False)

    return convert


CASES = [
    ("robomimic (Lift, render 64x64)", LIFT, _robomimic),
    ("rosbag ROS 1 (wx200, no camera)", INTERBOTIX / "ros1" / "waist_diagnostics.bag", _rosbag),
    ("rosbag ROS 2 mcap (wx200)", ROS2 / "wx200_waist_mcap", _rosbag),
    ("rosbag ROS 2 sqlite3 (wx200)", ROS2 / "wx200_waist_sqlite3", _rosbag),
    ("rlds (BridgeData shard, 64x64)", SHARED / "bridge_debug.tfrecord", _rlds),
    ("lerobot v2.1 (G1, AV1 -> 64x64, 1 worker)", SAMPLES / "lerobot_v21_unitree_g1", _lerobot(1)),
    ("lerobot v2.1 (G1, AV1 -> 64x64, 2 workers)", SAMPLES / "lerobot_v21_unitree_g1", _lerobot(2)),
    ("lerobot v3.0 (G1, AV1 -> 64x64, 1 worker)", SAMPLES / "lerobot_v30_unitree_g1", _lerobot(1)),
    ("lerobot v3.0 (G1, AV1 -> 64x64, 2 workers)", SAMPLES / "lerobot_v30_unitree_g1", _lerobot(2)),
]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(quick: bool = False) -> list[dict]:
    """One row per importer and sample: episodes, steps, seconds, episodes/s, MB, MB/s."""
    rows = []
    for importer, path, convert in CASES:
        if not path.exists():
            print(f"skipped {importer}: {path} is absent", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = convert(path, Path(tmp) / "store", quick)
            seconds = time.perf_counter() - start
        mb = _size(path) / 1e6
        rows.append(
            {
                "importer": importer,
                "input": path.name,
                "episodes": summary["episodes"],
                "steps": summary["steps"],
                "seconds": round(seconds, 2),
                "episodes/s": summary["episodes"] / seconds,
                "frames/s": (summary["steps"] + summary["episodes"]) / seconds,
                "MB": round(mb, 2),
                "MB/s": mb / seconds,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_speed", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="robomimic: 20 steps of demo_1")
    args = parser.parse_args(argv)
    from bench.run import format_table

    print(format_table(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
