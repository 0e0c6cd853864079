"""`robolearn data import rlds|rosbag`: RLDS TFRecord files or ROS 2 bags -> an episode store."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from robolearn.core.errors import RobolearnError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions, make_run_dir
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


@dataclasses.dataclass(frozen=True)
class ImportRldsConfig:
    """What `robolearn data import rlds` converts. Actions are normalized to [-1, 1] in the
    BridgeData convention (xyz/0.05 m, rpy/0.25 rad, gripper +1 open); the final step's action,
    which has no next observation, is dropped."""

    paths: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(positional=True, metavar="PATH")
    )
    """RLDS TFRecord file(s) (one tf.train.Example per episode, steps/<key> features)"""
    image_key: str = "observation/image_0"
    """camera key without the steps/ prefix"""
    image_size: int | None = None
    """resize frames to N x N pixels (default: keep the source size)"""
    task: str = "bridge"
    """task name written into each episode"""


@dataclasses.dataclass(frozen=True)
class ImportRosbagConfig:
    """What `robolearn data import rosbag` converts: ROS 2 bags (a bag directory, or its .mcap/
    .db3 file) sampled at --rate on a grid aligned with the camera. Each step's image is the
    latest frame, its proprio the tip pose (forward kinematics) of the latest joint state;
    actions are reconstructed from the measured motion in the BridgeData convention (gripper +1
    open from the commanded finger target or the measured opening), clipped to [-1, 1]."""

    paths: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(positional=True, metavar="BAG")
    )
    """bag directories or .mcap/.db3 files"""
    joint_topic: str = RosbagConfig.joint_topic
    """sensor_msgs/JointState topic"""
    image_topic: str = RosbagConfig.image_topic
    """sensor_msgs/Image or CompressedImage topic"""
    command_topic: str | None = None
    """Float64MultiArray, JointGroupCommand or JointTrajectory topic; 'none' ignores commands
    (default: the first present of the arm controller, joint group and trajectory topics)"""
    rate: float = RosbagConfig.rate_hz
    """steps per second (the policy rate)"""
    image_size: int = 64
    """resize frames to N x N pixels; 0 keeps the source size"""
    episode_gap: float = RosbagConfig.episode_gap_s
    """a pause in the joint states longer than this many seconds starts a new episode"""
    max_age: float = RosbagConfig.max_age_s
    """drop a step whose frame or joint state is older than this many seconds"""
    task: str = RosbagConfig.task
    """task name written into each episode"""
    instruction: str = ""
    """language instruction of the episodes"""

    def rosbag(self) -> RosbagConfig:
        """The importer's config."""
        return RosbagConfig(
            joint_topic=self.joint_topic,
            image_topic=self.image_topic,
            command_topic=self.command_topic,
            rate_hz=self.rate,
            image_size=self.image_size or None,
            episode_gap_s=self.episode_gap,
            max_age_s=self.max_age,
            task=self.task,
            instruction=self.instruction,
        )


def main_rlds(cfg: ImportRldsConfig, options: RunOptions) -> None:
    """`robolearn data import rlds`: import and print what was written."""
    rlds = RldsConfig(image_key=cfg.image_key, image_size=cfg.image_size, task=cfg.task)
    result = import_rlds(list(cfg.paths), options.out, rlds, progress=options.progress)
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps "
        f"({result['episodes_per_second']:.1f} episodes/s; {result['skipped']} skipped, "
        f"{result['clipped_action_values']} action values clipped to [-1, 1])"
    )
    print(f"store: {result['out']}")


def main_rosbag(cfg: ImportRosbagConfig, options: RunOptions) -> None:
    """`robolearn data import rosbag`: import and print what was written."""
    rosbag = cfg.rosbag()
    result = import_rosbag(list(cfg.paths), options.out, rosbag, progress=options.progress)
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps at {cfg.rate:g} Hz "
        f"from {result['bags']} bag(s) ({result['dropped_steps']} steps dropped for a stale "
        f"frame or joint state, {result['clipped_action_values']} action values clipped to "
        "[-1, 1])"
    )
    print(f"store: {result['out']}")
