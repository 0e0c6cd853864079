"""`robolearn data import rlds|rosbag`: RLDS TFRecords (files or TFDS dataset directories) or ROS
bags (ROS 2 MCAP / sqlite3, ROS 1) -> an episode store."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from robolearn.core.errors import RobolearnError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions, make_run_dir
from robolearn.data.rlds import DEFAULT_IMAGE_KEY, RldsConfig, iter_rlds_episodes, rlds_inputs
from robolearn.data.rosbag import RosbagConfig, RosbagError, check_bag, iter_bag_episodes
from robolearn.data.store import create_store, write_episode
from robolearn.data.tfrecord import TFRecordError, iter_records


def check_inputs(
    paths: list[str | Path], expected: dict[Path, int] | None = None
) -> dict[Path, int]:
    """Check every file exists and is an intact TFRecord (framing and both CRCs of every record).

    Cheap next to decoding (checksums run at GB/s), and it means a corrupt, truncated or
    non-TFRecord file fails before anything is written. `expected`: record counts a TFDS
    dataset_info.json gives per shard, which must match. Returns the record count per file.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise RobolearnError(f"{path}: no such file")
    counts = {path: sum(1 for _ in iter_records(path)) for path in paths}
    for path, count in counts.items():
        if count == 0:
            raise TFRecordError(f"{path}: empty file, no records to import")
        want = (expected or {}).get(path)
        if want is not None and want != count:
            raise TFRecordError(
                f"{path}: holds {count} records, its dataset_info.json says {want}; "
                "a shard cut short or replaced"
            )
    return counts


def import_rlds(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RldsConfig, progress: bool = True
) -> dict:
    """Convert every episode of every RLDS file (or TFDS dataset directory) into the store.

    Directories expand into their shards (robolearn.data.rlds.rlds_inputs); the inputs are checked
    (`check_inputs`, and the image key against features.json) before the store is created;
    `out_dir` None makes a new run directory under ./runs/. An existing store is appended to.
    Records stream one at a time, shard after shard.

    Returns a summary: episodes, steps (actions), skipped records, clipped action values, input
    bytes, seconds, episodes and MB per second and the store directory. An error while decoding
    an episode names how many episodes were already written (each one complete).
    """
    inputs = rlds_inputs(paths)
    cfg = dataclasses.replace(cfg, image_key=_image_key(cfg.image_key, inputs.image_keys, paths))
    counts = check_inputs(list(inputs.files), inputs.records)
    store = create_store(make_run_dir(out_dir, "import", f"rlds-{cfg.task}"))
    summary = dict.fromkeys(("records", "episodes", "steps", "skipped", "clipped_action_values"), 0)
    summary["input_bytes"] = sum(path.stat().st_size for path in counts)
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
    return finish_summary(summary, start, store)


def _image_key(key: str | None, listed: tuple[str, ...] | None, paths) -> str:
    """The camera key: as given, else features.json's first (image_0 first), else the default."""
    if listed is None:
        return key or DEFAULT_IMAGE_KEY
    if key is not None:
        if key.removeprefix("steps/") not in listed:
            raise TFRecordError(
                f"{paths[0]}: features.json has no image feature steps/{key.removeprefix('steps/')}"
                f"; use --image-key with one of: {', '.join(listed) or 'none'}"
            )
        return key
    if not listed:
        raise TFRecordError(f"{paths[0]}: features.json lists no image feature under steps/")
    return DEFAULT_IMAGE_KEY if DEFAULT_IMAGE_KEY in listed else listed[0]


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
        summary["records"] += 1
        bar.update(
            summary["records"],
            f"{path.name}: {summary['episodes']} episodes, {summary['steps']} steps",
        )


def finish_summary(summary: dict, start: float, store: Path) -> dict:
    """Add seconds, episodes/s, MB/s of input and the store to an importer's summary."""
    elapsed = time.perf_counter() - start
    summary["seconds"] = round(elapsed, 3)
    summary["episodes_per_second"] = summary["episodes"] / elapsed if elapsed > 0 else 0.0
    summary["mb_per_second"] = summary["input_bytes"] / 1e6 / elapsed if elapsed > 0 else 0.0
    summary["out"] = str(store)
    return summary


def import_rosbag(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RosbagConfig, progress: bool = True
) -> dict:
    """Convert ROS bags (ROS 2 directories or .mcap/.db3 files, ROS 1 .bag files) into the store.

    Every bag is checked first (`check_bag`: readable, topics, types, joint names, first frame), so
    a bad input fails before the store is created; `out_dir` None makes a new run directory under
    ./runs/, an existing store is appended to. Episodes are written one by one as a bag yields
    them (its frames decoded per episode); an error says how many episodes were already written.

    Returns a summary: bags, episodes, steps (actions), dropped_steps (stale frame or joint state),
    clipped action values, skipped joint messages, bags without a camera, input bytes, seconds,
    episodes and MB per second, and the store.
    """
    paths = [Path(p) for p in paths]
    cameras = {path: "image" in check_bag(path, cfg) for path in paths}
    store = create_store(make_run_dir(out_dir, "import", f"rosbag-{cfg.task}"))
    summary = dict.fromkeys(
        ("episodes", "steps", "dropped_steps", "clipped_action_values", "skipped_joint_messages"), 0
    )
    summary["bags"] = len(paths)
    summary["without_camera"] = sum(not c for c in cameras.values())
    summary["input_bytes"] = sum(_size(path) for path in paths)
    start = time.perf_counter()
    bar = Progress(len(paths), "bag", enabled=progress)
    try:
        for done, path in enumerate(paths, 1):
            _import_bag(path, store, cfg, summary)
            bar.update(
                done, f"{path.name}: {summary['episodes']} episodes, {summary['steps']} steps"
            )
    finally:
        bar.close()
    return finish_summary(summary, start, store)


def _import_bag(path: Path, store: Path, cfg: RosbagConfig, summary: dict) -> None:
    stats: dict = {}
    before = summary["episodes"]
    try:
        for episode in iter_bag_episodes(path, cfg, stats):
            write_episode(store, episode)
            summary["episodes"] += 1
            summary["steps"] += episode.num_steps
            summary["clipped_action_values"] += episode.meta.extra["clipped_action_values"]
    except RosbagError as exc:
        raise RosbagError(
            f"{exc} ({summary['episodes']} episodes before it were written to {store})"
        ) from exc
    if summary["episodes"] == before:
        print(
            f"skipped: {path}: no two consecutive good steps at {cfg.rate_hz:g} Hz", file=sys.stderr
        )
    summary["dropped_steps"] += stats.get("dropped_steps", 0)
    summary["skipped_joint_messages"] += stats.get("skipped_joint_messages", 0)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())


@dataclasses.dataclass(frozen=True)
class ImportRldsConfig:
    """What `robolearn data import rlds` converts. Actions are normalized to [-1, 1] in the
    BridgeData convention (xyz/0.05 m, rpy/0.25 rad, gripper +1 open); the final step's action,
    which has no next observation, is dropped."""

    paths: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(positional=True, metavar="PATH")
    )
    """RLDS TFRecord file(s) (one tf.train.Example per episode, steps/<key> features) or TFDS
    dataset directories (dataset_info.json + <name>-<split>.tfrecord-NNNNN-of-MMMMM shards)"""
    image_key: str | None = None
    """camera key without the steps/ prefix (default: features.json's first image feature,
    else observation/image_0)"""
    image_size: int | None = None
    """resize frames to N x N pixels (default: keep the source size)"""
    task: str = "bridge"
    """task name written into each episode"""


@dataclasses.dataclass(frozen=True)
class ImportRosbagConfig:
    """What `robolearn data import rosbag` converts: ROS 2 bags (a bag directory, or its .mcap/
    .db3 file) and ROS 1 .bag files of an Interbotix WidowX (wx250s, wx250, wx200), sampled at
    --rate on a grid aligned with the camera (with the joint states when there is none). Each
    step's image is the latest frame, its proprio the tip pose (forward kinematics) of the latest
    joint state; actions are reconstructed from the measured motion in the BridgeData convention
    (gripper +1 open from the commanded finger target or the measured opening), clipped to
    [-1, 1]. A bag without a camera gives episodes without images (shape [T+1, 0, 0, 3])."""

    paths: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(positional=True, metavar="BAG")
    )
    """bag directories, .mcap/.db3 files or ROS 1 .bag files"""
    robot: str | None = None
    """the arm: wx250s, wx250 or wx200 (default: the joint topic's namespace, else wx250s)"""
    joints: str = ""
    """comma-separated joint names: import these joints in joint space instead of an arm's tip"""
    joint_topic: str | None = None
    """sensor_msgs/JointState topic (default: /<robot>/joint_states, or the bag's only one)"""
    image_topic: str | None = None
    """sensor_msgs/Image or CompressedImage topic (default: /<robot>/camera/image_raw; no camera
    when the bag has no image topic); 'none' imports the joint states alone"""
    command_topic: str | None = None
    """Float64MultiArray, JointGroupCommand, JointSingleCommand or JointTrajectory topic; 'none'
    ignores commands (default: the first present of the arm controller, joint group, trajectory
    and joint single topics)"""
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
            robot=self.robot,
            joints=tuple(j.strip() for j in self.joints.split(",")) if self.joints else (),
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
    if result["without_camera"]:
        print(
            f"{result['without_camera']} bag(s) have no camera: their episodes have no images "
            "(joint states only)"
        )
    print(f"store: {result['out']}")
