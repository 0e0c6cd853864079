"""`robolearn data import rlds|rosbag`: RLDS TFRecord files or ROS 2 bags -> an episode store."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from robolearn.core.errors import RobolearnError
from robolearn.core.progress import Progress
from robolearn.core.rundir import make_run_dir
from robolearn.data.rlds import RldsConfig, iter_rlds_episodes
from robolearn.data.rosbag import RosbagConfig, RosbagError, bag_to_episodes, check_bag
from robolearn.data.store import create_store, write_episode
from robolearn.data.tfrecord import TFRecordError, iter_records


def check_inputs(paths: list[str | Path]) -> dict[Path, int]:
    """Check every file exists and is an intact TFRecord (framing and both CRCs of every record).

    Cheap next to decoding (checksums run at GB/s), and it means a corrupt, truncated or
    non-TFRecord file fails before anything is written. Returns the record count per file.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise RobolearnError(f"{path}: no such file")
    counts = {path: sum(1 for _ in iter_records(path)) for path in paths}
    for path, count in counts.items():
        if count == 0:
            raise TFRecordError(f"{path}: empty file, no records to import")
    return counts


def import_rlds(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RldsConfig, progress: bool = True
) -> dict:
    """Convert every episode of every RLDS file in `paths` into the store at `out_dir`.

    The inputs are checked (`check_inputs`) before the store is created; `out_dir` None makes a
    new run directory under ./runs/. An existing store is appended to.

    Returns a summary: episodes, steps (actions), skipped records, clipped action values,
    seconds, episodes per second and the store directory. An error while decoding an episode
    names how many episodes were already written (each one complete, as the store guarantees).
    """
    counts = check_inputs(paths)
    store = create_store(make_run_dir(out_dir, "import", f"rlds-{cfg.task}"))
    summary = {"episodes": 0, "steps": 0, "skipped": 0, "clipped_action_values": 0}
    start = time.perf_counter()
    bar = Progress(sum(counts.values()), "record", enabled=progress)
    try:
        for path in counts:
            try:
                _import_file(path, store, cfg, summary, bar)
            except TFRecordError as exc:
                raise TFRecordError(
                    f"{exc} ({summary['episodes']} episodes before it were written to {store})"
                ) from exc
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    summary["seconds"] = round(elapsed, 3)
    summary["episodes_per_second"] = summary["episodes"] / elapsed if elapsed > 0 else 0.0
    summary["out"] = str(store)
    return summary


def _import_file(path: Path, store: Path, cfg: RldsConfig, summary: dict, bar: Progress) -> None:
    for _, episode, note in iter_rlds_episodes(path, cfg):
        if episode is None:
            summary["skipped"] += 1
            print(f"skipped: {note}", file=sys.stderr)
        else:
            write_episode(store, episode)
            summary["episodes"] += 1
            summary["steps"] += episode.num_steps
            summary["clipped_action_values"] += episode.meta.extra["clipped_action_values"]
        bar.update(
            summary["episodes"] + summary["skipped"],
            f"{path.name}: {summary['episodes']} episodes, {summary['steps']} steps",
        )


def import_rosbag(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RosbagConfig, progress: bool = True
) -> dict:
    """Convert ROS 2 bags (directories or .mcap/.db3 files) into the episode store at `out_dir`.

    Every bag is checked first (`check_bag`: readable, topics, types, joint names, first frame), so
    a bad input fails before the store is created; `out_dir` None makes a new run directory under
    ./runs/, an existing store is appended to. A bag is converted whole before its episodes are
    written, each atomically; an error in a later bag says how many episodes were already written.

    Returns a summary: bags, episodes, steps (actions), dropped_steps (stale frame or joint state),
    clipped action values, skipped joint messages, seconds, episodes per second and the store.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        check_bag(path, cfg)
    store = create_store(make_run_dir(out_dir, "import", f"rosbag-{cfg.task}"))
    summary = dict.fromkeys(
        ("episodes", "steps", "dropped_steps", "clipped_action_values", "skipped_joint_messages"), 0
    )
    summary["bags"] = len(paths)
    start = time.perf_counter()
    bar = Progress(len(paths), "bag", enabled=progress)
    try:
        for done, path in enumerate(paths, 1):
            try:
                episodes, stats = bag_to_episodes(path, cfg)
            except RosbagError as exc:
                raise RosbagError(
                    f"{exc} ({summary['episodes']} episodes before it were written to {store})"
                ) from exc
            if not episodes:
                print(
                    f"skipped: {path}: no two consecutive good steps at {cfg.rate_hz:g} Hz",
                    file=sys.stderr,
                )
            for episode in episodes:
                write_episode(store, episode)
                summary["episodes"] += 1
                summary["steps"] += episode.num_steps
                summary["clipped_action_values"] += episode.meta.extra["clipped_action_values"]
            summary["dropped_steps"] += stats["dropped_steps"]
            summary["skipped_joint_messages"] += stats["skipped_joint_messages"]
            bar.update(
                done, f"{path.name}: {summary['episodes']} episodes, {summary['steps']} steps"
            )
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    summary["seconds"] = round(elapsed, 3)
    summary["episodes_per_second"] = summary["episodes"] / elapsed if elapsed > 0 else 0.0
    summary["out"] = str(store)
    return summary
