"""ROS 2 bags (rosbag2, MCAP or sqlite3) of a WidowX converted to store episodes.

A bag holds the robot's streams, each message stamped with the time the recorder received it
(the bag stamp, used throughout: header stamps may come from other clocks, or be missing):

    joints    sensor_msgs/msg/JointState on /wx250s/joint_states (~100 Hz): the six arm joints
              (rad) and left_finger/right_finger (m) or only the `gripper` motor angle (rad)
    camera    sensor_msgs/msg/Image (rgb8, bgr8, rgba8, bgra8, mono8) or
              sensor_msgs/msg/CompressedImage (jpeg, png) on /wx250s/camera/image_raw
    commands  optional; the first present of COMMAND_TOPICS: Float64MultiArray (6 arm targets and
              an optional 7th finger target, m), Interbotix JointGroupCommand, JointTrajectory

Sampling. Joint states split into segments wherever they pause longer than `episode_gap_s`. In
each segment a regular grid at `rate_hz` starts at the first camera frame, so with a camera at a
multiple of the rate every observation is a frame taken at that instant. At a grid time t the
observation is what the bridge's policy would see at t: the latest frame and the latest joint
state at or before t. If either is older than `max_age_s` the step is dropped (and counted); the
episode ends there and a new one starts at the next good step, so every action spans exactly one
period 1/rate_hz.

    image   [T+1]  latest frame <= t_k, RGB, resized to image_size (INTER_AREA; non-square frames
                   are stretched, as the RLDS import does)
    proprio [T+1]  core.widowx.proprio(q, finger_q): tip xyz (m), rpy (rad), gripper opening [0, 1]
    state   [T+1]  STATE_NAMES: arm and finger positions, then their velocities (the JointState's
                   measured arm velocities when present, else finite differences; finger velocities
                   always finite differences)

Actions are reconstructed from the motion, not read from the commands (commands are joint targets,
and a bag may hold none). In the BridgeData convention of core.widowx_control:
a_k[:3] = (xyz_{k+1} - xyz_k) / POS_SCALE_M, a_k[3:6] = (rpy_{k+1} - rpy_k, wrapped to +-pi) /
ROT_SCALE_RAD, and the absolute gripper a_k[6] = 2 g - 1, with g the opening of the finger target
last commanded before t_{k+1} or, without one, the measured opening at t_{k+1}; then clipped to
[-1, 1]. meta.extra counts the clipped values and keeps the arm and finger commands in force at
each step. Reward is 0 and success False: a bag says nothing about the task.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError
from robolearn.core.spec import ACTION_NAMES
from robolearn.core.widowx_control import POS_SCALE_M, ROT_SCALE_RAD
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.rosbag_msgs import (
    COMPRESSED_IMAGE,
    FINGER_NAMES,
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_GROUP_COMMAND,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    RosbagError,
    command_sample,
    decode_image,
    deserialize,
    joint_sample,
    make_typestore,
    messages,
    open_bag,
    storage_of,
)

__all__ = ["RosbagConfig", "RosbagError", "bag_to_episodes", "check_bag", "plan_steps"]

JOINT_TOPIC = "/wx250s/joint_states"
IMAGE_TOPIC = "/wx250s/camera/image_raw"
COMMAND_TOPICS = (
    "/wx250s/arm_controller/commands",
    "/wx250s/commands/joint_group",
    "/wx250s/arm_controller/joint_trajectory",
)
ACCEPTED = {
    "joint": (JOINT_STATE,),
    "image": (IMAGE, COMPRESSED_IMAGE),
    "command": (FLOAT64_ARRAY, JOINT_GROUP_COMMAND, JOINT_TRAJECTORY),
}
STATE_NAMES = (*wx.JOINT_NAMES, *FINGER_NAMES) + tuple(
    f"{n}_vel" for n in (*wx.JOINT_NAMES, *FINGER_NAMES)
)
ACTION_MEANING = (
    "reconstructed from the measured motion between observations (rosbag import): a[:3] tip "
    f"delta xyz / {POS_SCALE_M} m, a[3:6] delta roll/pitch/yaw / {ROT_SCALE_RAD} rad (base "
    "frame), a[6] gripper absolute: +1 open, -1 closed (commanded finger target, else measured "
    "opening); clipped to [-1, 1]"
)
_FINGER_SPAN_M = wx.FINGER_UPPER_M - wx.FINGER_LOWER_M


@dataclasses.dataclass(frozen=True)
class RosbagConfig:
    """How a bag becomes store episodes (see the module docstring).

    command_topic: None takes the first of COMMAND_TOPICS the bag has (none present: no commands);
        a topic name requires that topic; "none" ignores commands.
    max_age_s: a step whose latest frame or joint state is older than this is dropped.
    """

    joint_topic: str = JOINT_TOPIC
    image_topic: str = IMAGE_TOPIC
    command_topic: str | None = None
    rate_hz: float = 5.0
    image_size: int | None = 64
    episode_gap_s: float = 1.0
    max_age_s: float = 0.2
    task: str = "widowx"
    instruction: str = ""

    def __post_init__(self):
        if not 0.1 <= self.rate_hz <= 1000:
            raise ConfigError(f"rate must be in 0.1..1000 Hz, got {self.rate_hz}")
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be in 8..1024 pixels, got {self.image_size}")
        if not self.episode_gap_s > 0:
            raise ConfigError(f"episode gap must be positive seconds, got {self.episode_gap_s}")
        if not self.max_age_s > 0:
            raise ConfigError(f"max age must be positive seconds, got {self.max_age_s}")
        if not self.task:
            raise ConfigError("task name must not be empty")


@dataclasses.dataclass
class Streams:
    """The decoded streams of one bag; times are bag stamps in ns, sorted."""

    joint_t: np.ndarray  # int64 [N]
    q: np.ndarray  # [N, 6] rad
    finger: np.ndarray  # [N, 2] m, each finger's offset from the centre
    qdot: np.ndarray  # [N, 6] rad/s, NaN where unmeasured
    image_t: np.ndarray  # int64 [M]
    cmd_t: np.ndarray  # int64 [C]
    cmd_q: np.ndarray  # [C, 6] rad, NaN where a command has no arm targets
    cmd_finger: np.ndarray  # [C] m, NaN where a command has no finger target
    skipped_joint_messages: int = 0


def check_bag(path: str | Path, cfg: RosbagConfig) -> dict[str, str]:
    """Check a bag's topics, types, joint names and first frame; returns role -> topic.

    Cheap (the index and the first messages), so every input fails before anything is written.
    """
    path = Path(path)
    with open_bag(path) as reader:
        topics = _resolve_topics(reader, path, cfg)
        store = make_typestore([c for _, cs in topics.values() for c in cs], path)
        joints = topics["joint"][1]
        if not any(
            joint_sample(deserialize(store, raw, conn, path)) is not None
            for conn, _, raw in messages(reader, joints, path)
        ):
            _no_joint_states(reader, store, joints, path)
        for conn, _, raw in messages(reader, topics["image"][1], path):
            decode_image(deserialize(store, raw, conn, path), conn, cfg.image_size, path)
            break
    return {role: topic for role, (topic, _) in topics.items()}


def bag_to_episodes(path: str | Path, cfg: RosbagConfig) -> tuple[list[Episode], dict]:
    """Every episode of one bag, and counts: dropped_steps, skipped_joint_messages, commands."""
    path = Path(path)
    with open_bag(path) as reader:
        topics = _resolve_topics(reader, path, cfg)
        store = make_typestore([c for _, cs in topics.values() for c in cs], path)
        streams = read_streams(reader, store, topics, path)
        plans, dropped = plan_steps(streams.joint_t, streams.image_t, cfg)
        wanted = {int(k) for plan in plans for k in plan[2]}
        images = _read_images(reader, store, topics["image"][1], wanted, cfg, path)
    info = {
        "source_file": str(path),
        "storage": storage_of(path),
        "topics": {role: topic for role, (topic, _) in topics.items()},
    }
    episodes = [_episode(plan, streams, images, cfg, path, info) for plan in plans]
    stats = {
        "dropped_steps": dropped,
        "skipped_joint_messages": streams.skipped_joint_messages,
        "commands": len(streams.cmd_t),
    }
    return episodes, stats


def plan_steps(
    joint_t: np.ndarray, image_t: np.ndarray, cfg: RosbagConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Per episode the observation times and the joint state and frame each uses; #dropped steps.

    joint_t [N], image_t [M]: sorted stamps (ns). Returns ([(t [K], joint index [K], frame index
    [K]) per episode, K >= 2], dropped) as the module docstring describes: a step is dropped when
    its frame or joint state is older than max_age_s, and so is a good run of one observation.
    """
    period = round(1e9 / cfg.rate_hz)
    max_age = round(cfg.max_age_s * 1e9)
    breaks = np.flatnonzero(np.diff(joint_t) > round(cfg.episode_gap_s * 1e9)) + 1
    plans, dropped = [], 0
    for seg in np.split(np.arange(len(joint_t)), breaks):
        start, end = int(joint_t[seg[0]]), int(joint_t[seg[-1]])
        first = int(np.searchsorted(image_t, start - max_age, side="left"))
        t0 = max(start, int(image_t[first])) if first < len(image_t) else start
        dropped += (t0 - start) // period
        grid = np.arange(t0, end + 1, period, dtype=np.int64)
        j = seg[0] + np.searchsorted(joint_t[seg], grid, side="right") - 1
        i = np.searchsorted(image_t, grid, side="right") - 1
        frame_t = image_t[np.maximum(i, 0)] if len(image_t) else grid
        ok = (grid - joint_t[j] <= max_age) & (i >= 0) & (grid - frame_t <= max_age)
        dropped += int(np.count_nonzero(~ok))
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= 2:
                plans.append((grid[a:b], j[a:b], i[a:b]))
            else:
                dropped += b - a
    return plans, dropped


def read_streams(reader, store, topics: dict, path: Path) -> Streams:
    """One pass over the joint, command and camera topics (frames are only counted here)."""
    roles = {c.id: role for role, (_, conns) in topics.items() for c in conns}
    joint_t, joints, image_t, cmd_t, cmds = [], [], [], [], []
    skipped = 0
    for conn, stamp, raw in messages(reader, [c for _, cs in topics.values() for c in cs], path):
        role = roles[conn.id]
        if role == "image":
            image_t.append(stamp)
        elif role == "joint":
            sample = joint_sample(deserialize(store, raw, conn, path))
            skipped += sample is None
            if sample is not None:
                joint_t.append(stamp)
                joints.append(sample)
        elif (
            command := command_sample(deserialize(store, raw, conn, path), conn.msgtype)
        ) is not None:
            cmd_t.append(stamp)
            cmds.append(command)
    if not joint_t:
        _no_joint_states(reader, store, topics["joint"][1], path)
    joint_t, cmd_t = np.asarray(joint_t, np.int64), np.asarray(cmd_t, np.int64)
    order = np.argsort(joint_t, kind="stable")
    keep = order[np.append(np.diff(joint_t[order]) > 0, True)]  # the last of equal stamps
    by_time = np.argsort(cmd_t, kind="stable")
    q, finger, qdot = (np.asarray([s[k] for s in joints], np.float64)[keep] for k in range(3))
    return Streams(
        joint_t=joint_t[keep],
        q=q,
        finger=finger,
        qdot=qdot,
        image_t=np.sort(np.asarray(image_t, np.int64)),
        cmd_t=cmd_t[by_time],
        cmd_q=np.asarray([c[0] for c in cmds], np.float64).reshape(-1, wx.NUM_JOINTS)[by_time],
        cmd_finger=np.asarray([c[1] for c in cmds], np.float64)[by_time],
        skipped_joint_messages=skipped,
    )


def _episode(plan, streams: Streams, images: dict, cfg: RosbagConfig, path: Path, info: dict):
    """One planned run of observations -> an Episode (see the module docstring)."""
    grid, j, i = plan
    q, finger = streams.q[j], streams.finger[j]
    proprio = np.stack([wx.proprio(a, b) for a, b in zip(q, finger, strict=True)])
    qdot, measured = _velocities(streams, j)
    delta = np.diff(proprio[:, :6], axis=0)
    delta[:, 3:] = (delta[:, 3:] + np.pi) % (2 * np.pi) - np.pi
    cmd_q = _in_force(streams.cmd_t, streams.cmd_q, grid[1:])
    cmd_f = _in_force(streams.cmd_t, streams.cmd_finger, grid[1:])
    opening = np.clip((np.abs(cmd_f) - wx.FINGER_LOWER_M) / _FINGER_SPAN_M, 0.0, 1.0)
    opening = np.where(np.isnan(cmd_f), proprio[1:, 6], opening)
    raw = np.concatenate(
        [delta[:, :3] / POS_SCALE_M, delta[:, 3:] / ROT_SCALE_RAD, 2 * opening[:, None] - 1], axis=1
    )
    extra = {
        **info,
        "start_time_ns": int(grid[0]),
        "state_names": list(STATE_NAMES),
        "velocity": "measured" if measured else "finite differences",
        "clipped_action_values": int(np.count_nonzero(np.abs(raw) > 1.0)),
        "gripper_from_command": int(np.count_nonzero(~np.isnan(cmd_f))),
        "commanded_q_rad": [None if np.isnan(c).any() else np.round(c, 6).tolist() for c in cmd_q],
        "commanded_finger_m": [None if np.isnan(f) else round(float(f), 6) for f in cmd_f],
    }
    meta = EpisodeMeta(
        task=cfg.task,
        instruction=cfg.instruction,
        source="imported",
        fps=cfg.rate_hz,
        action_meaning=ACTION_MEANING,
        action_names=ACTION_NAMES,
        policy=f"rosbag:{path.name}",
        extra=extra,
    )
    return Episode(
        image=np.stack([images[int(k)] for k in i]),
        proprio=proprio.astype(np.float32),
        state=np.concatenate([q, finger, qdot], axis=1),
        action=np.clip(raw, -1.0, 1.0).astype(np.float32),
        reward=np.zeros(len(grid) - 1, np.float32),
        success=np.zeros(len(grid), bool),
        meta=meta,
    )


def _velocities(streams: Streams, j: np.ndarray) -> tuple[np.ndarray, bool]:
    """[K, 8] arm and finger velocities at joint samples j, and whether the arm's were measured."""
    span = slice(int(j[0]), int(j[-1]) + 1)
    t_s = (streams.joint_t[span] - streams.joint_t[span][0]) * 1e-9
    pos = np.concatenate([streams.q[span], streams.finger[span]], axis=1)
    vel = (np.gradient(pos, t_s, axis=0) if len(t_s) > 1 else np.zeros_like(pos))[j - j[0]]
    measured = not np.isnan(streams.qdot[j]).any()
    if measured:
        vel[:, : wx.NUM_JOINTS] = streams.qdot[j]
    return vel, measured


def _in_force(cmd_t: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The latest non-NaN row of `values` [C, ...] stamped strictly before each time, else NaN."""
    nan = np.isnan(values)
    valid = ~(nan.any(axis=1) if values.ndim > 1 else nan)
    stamps, rows = cmd_t[valid], values[valid]
    k = np.searchsorted(stamps, times, side="left") - 1
    out = np.full((len(times), *values.shape[1:]), np.nan)
    out[k >= 0] = rows[k[k >= 0]]
    return out


def _read_images(reader, store, conns, wanted: set[int], cfg, path: Path) -> dict[int, np.ndarray]:
    """Decode only the frames the episodes use (frame k = the k-th message in time order)."""
    images, shape = {}, None
    for k, (conn, _, raw) in enumerate(messages(reader, conns, path)):
        if k not in wanted:
            continue
        image = decode_image(deserialize(store, raw, conn, path), conn, cfg.image_size, path)
        if shape is not None and image.shape != shape:
            raise RosbagError(
                f"{path}: {conn.topic} frames change size ({shape[1]}x{shape[0]} to "
                f"{image.shape[1]}x{image.shape[0]}); pass --image-size to resize"
            )
        images[k], shape = image, image.shape
    return images


def _resolve_topics(reader, path: Path, cfg: RosbagConfig) -> dict[str, tuple[str, list]]:
    """role -> (topic, its connections) for joint, image and (if any) command; checks types."""
    by_topic: dict[str, list] = {}
    for conn in reader.connections:
        by_topic.setdefault(conn.topic, []).append(conn)
    wanted = {"joint": cfg.joint_topic, "image": cfg.image_topic}
    if cfg.command_topic is None:
        present = [t for t in COMMAND_TOPICS if t in by_topic]
        if present:
            wanted["command"] = present[0]
    elif cfg.command_topic.lower() != "none":
        wanted["command"] = cfg.command_topic
    found = {}
    for role, topic in wanted.items():
        if topic not in by_topic:
            have = ", ".join(f"{t} ({c[0].msgtype})" for t, c in sorted(by_topic.items()))
            raise RosbagError(
                f"{path}: no topic {topic}; pass --{role}-topic with one of: "
                f"{have or 'none (the bag is empty)'}"
            )
        for conn in by_topic[topic]:
            if conn.msgtype not in ACCEPTED[role]:
                raise RosbagError(
                    f"{path}: {topic} carries {conn.msgtype}; the {role} topic must carry "
                    f"{' or '.join(ACCEPTED[role])}"
                )
        found[role] = (topic, by_topic[topic])
    return found


def _no_joint_states(reader, store, conns: list, path: Path):
    """Raise the error for a joint topic none of whose messages names the wx250s joints."""
    names = "it has no messages"
    for conn, _, raw in messages(reader, conns, path):
        first = deserialize(store, raw, conn, path).name
        names = f"its first message names {', '.join(first) or 'no joints'}"
        break
    raise RosbagError(
        f"{path}: {conns[0].topic} has no usable wx250s joint state (need "
        f"{', '.join(wx.JOINT_NAMES)} and left_finger/right_finger or gripper, finite); {names}"
    )
