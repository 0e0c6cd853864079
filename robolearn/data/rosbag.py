"""ROS bags (ROS 2 MCAP or sqlite3, ROS 1 .bag) of an Interbotix WidowX converted to store episodes.

A bag holds the robot's streams, each message stamped with the time the recorder received it
(the bag stamp, used throughout: header stamps may come from other clocks, or be missing):

    joints    sensor_msgs/JointState on /<robot>/joint_states (~100 Hz): the arm joints (rad) and
              left_finger/right_finger (m) or only the `gripper` motor angle (rad)
    camera    optional; sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage
              (jpeg, png) on /<robot>/camera/image_raw
    commands  optional; the first present of COMMAND_TOPICS: Float64MultiArray (J arm targets and
              an optional finger target, m), Interbotix JointGroupCommand or JointSingleCommand
              (interbotix_xs_msgs, or interbotix_xs_sdk in older drivers), JointTrajectory

The arm (robolearn.data.interbotix: wx250s, wx250, wx200) is `--robot`, else the namespace of the
joint topic when it names one, else the wx250s; with `--joints a,b,c` the import is in joint space
instead (see below). Topics default to the arm's namespace; a bag with one JointState topic and
nothing else to go on uses it.

Sampling. Joint states split into segments wherever they pause longer than `episode_gap_s`. In
each segment a regular grid at `rate_hz` starts at the first camera frame (at the first joint
state when the bag has no camera), so with a camera at a multiple of the rate every observation is
a frame taken at that instant. At a grid time t the observation is what the bridge's policy would
see at t: the latest frame and the latest joint state at or before t. If either is older than
`max_age_s` the step is dropped (and counted); the episode ends there and a new one starts at the
next good step, so every action spans exactly one period 1/rate_hz.

    image   [T+1]  latest frame <= t_k, RGB, resized to image_size (INTER_AREA; non-square frames
                   are stretched, as the RLDS import does); [T+1, 0, 0, 3] without a camera, the
                   store's "no camera" (loaders that need images refuse such episodes)
    proprio [T+1]  Arm.proprio(q, finger): tip xyz (m), rpy (rad), gripper opening [0, 1]
    state   [T+1]  meta.extra["state_names"]: arm and finger positions, then their velocities (the
                   JointState's measured arm velocities when present, else finite differences;
                   finger velocities always finite differences)

Actions are reconstructed from the motion, not read from the commands (commands are joint targets,
and a bag may hold none). In the BridgeData convention of core.widowx_control:
a_k[:3] = (xyz_{k+1} - xyz_k) / POS_SCALE_M, a_k[3:6] = (rpy_{k+1} - rpy_k, wrapped to +-pi) /
ROT_SCALE_RAD, and the absolute gripper a_k[6] = 2 g - 1, with g the opening of the finger target
last commanded before t_{k+1} or, without one, the measured opening at t_{k+1}; then clipped to
[-1, 1]. meta.extra counts the clipped values and keeps the arm and finger commands in force at
each step (per joint: a JointSingleCommand sets one). Reward is 0 and success False: a bag says
nothing about the task.

Joint space (`joints`): proprio = the named joints' positions [T+1, J], state = positions then
velocities, a_k[j] = (q_{k+1,j} - q_{k,j}) / (VELOCITY_LIMIT_RAD_S / rate_hz), the fraction of the
largest step the Interbotix velocity limit (pi rad/s) allows, clipped to [-1, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError
from robolearn.core.spec import ACTION_NAMES
from robolearn.core.widowx_control import POS_SCALE_M, ROT_SCALE_RAD
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.interbotix import ARMS, Arm
from robolearn.data.rosbag_msgs import (
    FINGER_NAMES,
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
from robolearn.data.rosbag_topics import Layout, no_joint_states, resolve_layout

__all__ = [
    "RosbagConfig",
    "RosbagError",
    "bag_to_episodes",
    "check_bag",
    "iter_bag_episodes",
    "plan_steps",
]

ACTION_MEANING = (
    "reconstructed from the measured motion between observations (rosbag import): a[:3] tip "
    f"delta xyz / {POS_SCALE_M} m, a[3:6] delta roll/pitch/yaw / {ROT_SCALE_RAD} rad (base "
    "frame), a[6] gripper absolute: +1 open, -1 closed (commanded finger target, else measured "
    "opening); clipped to [-1, 1]"
)
JOINT_ACTION_MEANING = (
    "joint space (rosbag import with --joints), reconstructed from the measured motion: a[j] = "
    "change of joint j between observations / (pi rad/s / rate), the fraction of the largest step "
    "the Interbotix velocity limit allows; clipped to [-1, 1]. proprio = the joints' positions"
)


@dataclasses.dataclass(frozen=True)
class RosbagConfig:
    """How a bag becomes store episodes (see the module docstring).

    joint_topic, image_topic: None takes /<robot>/joint_states and /<robot>/camera/image_raw (no
        camera when the bag has no image topic at all); image_topic "none" ignores any camera.
    command_topic: None takes the first of COMMAND_TOPICS the bag has (none present: no commands);
        a topic name requires that topic; "none" ignores commands.
    robot: an arm of robolearn.data.interbotix.ARMS; None: the joint topic's namespace if it names
        one, else DEFAULT_ROBOT. joints: import these joints in joint space instead of an arm.
    max_age_s: a step whose latest frame or joint state is older than this is dropped.
    """

    joint_topic: str | None = None
    image_topic: str | None = None
    command_topic: str | None = None
    robot: str | None = None
    joints: tuple[str, ...] = ()
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
        if self.robot is not None and self.robot not in ARMS:
            raise ConfigError(f"unknown robot {self.robot!r}; known arms: {', '.join(ARMS)}")
        if any(not j for j in self.joints) or len(set(self.joints)) != len(self.joints):
            raise ConfigError(f"joints must be distinct non-empty names, got {list(self.joints)}")


@dataclasses.dataclass
class Streams:
    """The decoded streams of one bag; times are bag stamps in ns, sorted."""

    joint_t: np.ndarray  # int64 [N]
    q: np.ndarray  # [N, J] rad
    finger: np.ndarray  # [N, 2] m, each finger's offset from the centre (NaN in joint space)
    qdot: np.ndarray  # [N, J] rad/s, NaN where unmeasured
    image_t: np.ndarray | None  # int64 [M]; None without a camera
    cmd_t: np.ndarray  # int64 [C]
    cmd_q: np.ndarray  # [C, J] rad, NaN where a command has no target for a joint
    cmd_finger: np.ndarray  # [C] m, NaN where a command has no finger target
    skipped_joint_messages: int = 0


def check_bag(path: str | Path, cfg: RosbagConfig) -> dict[str, str]:
    """Check a bag's topics, types, joint names and first frame; returns role -> topic.

    Cheap (the index and the first messages), so every input fails before anything is written.
    """
    path = Path(path)
    with open_bag(path) as reader:
        layout = resolve_layout(reader, path, cfg)
        store = make_typestore(layout.connections(), path)
        conns = layout.topics["joint"][1]
        fingers = layout.arm is not None
        if not any(
            joint_sample(deserialize(store, raw, conn, path), layout.joints, fingers) is not None
            for conn, _, raw in messages(reader, conns, path)
        ):
            no_joint_states(reader, store, layout, path)
        if layout.camera:
            for conn, _, raw in messages(reader, layout.topics["image"][1], path):
                decode_image(deserialize(store, raw, conn, path), conn, cfg.image_size, path)
                break
    return {role: topic for role, (topic, _) in layout.topics.items()}


def iter_bag_episodes(path: str | Path, cfg: RosbagConfig, stats: dict) -> Iterator[Episode]:
    """Every episode of one bag, one at a time (frames are decoded per episode).

    `stats` is filled with dropped_steps, skipped_joint_messages and commands before the first
    episode is yielded.
    """
    path = Path(path)
    with open_bag(path) as reader:
        layout = resolve_layout(reader, path, cfg)
        store = make_typestore(layout.connections(), path)
        streams = read_streams(reader, store, layout, path)
        plans, dropped = plan_steps(streams.joint_t, streams.image_t, cfg)
        stats.update(
            dropped_steps=dropped,
            skipped_joint_messages=streams.skipped_joint_messages,
            commands=len(streams.cmd_t),
        )
        info = {
            "source_file": str(path),
            "storage": storage_of(path),
            "topics": {role: topic for role, (topic, _) in layout.topics.items()},
            "robot": layout.arm.name if layout.arm else None,
        }
        for plan in plans:
            if layout.camera:
                images = _read_images(reader, store, layout, streams.image_t, plan[2], cfg, path)
            else:
                images = np.zeros((len(plan[0]), 0, 0, 3), np.uint8)
            yield _episode(plan, streams, images, layout, cfg, path, info)


def bag_to_episodes(path: str | Path, cfg: RosbagConfig) -> tuple[list[Episode], dict]:
    """Every episode of one bag in a list, and counts: dropped_steps, skipped_joint_messages,
    commands."""
    stats: dict = {}
    episodes = list(iter_bag_episodes(path, cfg, stats))
    return episodes, stats


def plan_steps(
    joint_t: np.ndarray, image_t: np.ndarray | None, cfg: RosbagConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Per episode the observation times and the joint state and frame each uses; #dropped steps.

    joint_t [N], image_t [M] or None (no camera): sorted stamps (ns). Returns ([(t [K], joint index
    [K], frame index [K], -1 without a camera) per episode, K >= 2], dropped) as the module
    docstring describes: a step is dropped when its frame or joint state is older than max_age_s,
    and so is a good run of one observation.
    """
    period = round(1e9 / cfg.rate_hz)
    max_age = round(cfg.max_age_s * 1e9)
    breaks = np.flatnonzero(np.diff(joint_t) > round(cfg.episode_gap_s * 1e9)) + 1
    plans, dropped = [], 0
    for seg in np.split(np.arange(len(joint_t)), breaks):
        start, end = int(joint_t[seg[0]]), int(joint_t[seg[-1]])
        t0 = start
        if image_t is not None:
            first = int(np.searchsorted(image_t, start - max_age, side="left"))
            t0 = max(start, int(image_t[first])) if first < len(image_t) else start
        dropped += (t0 - start) // period
        grid = np.arange(t0, end + 1, period, dtype=np.int64)
        j = seg[0] + np.searchsorted(joint_t[seg], grid, side="right") - 1
        ok = grid - joint_t[j] <= max_age
        if image_t is None:
            i = np.full(len(grid), -1)
        else:
            i = np.searchsorted(image_t, grid, side="right") - 1
            frame_t = image_t[np.maximum(i, 0)] if len(image_t) else grid
            ok &= (i >= 0) & (grid - frame_t <= max_age)
        dropped += int(np.count_nonzero(~ok))
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= 2:
                plans.append((grid[a:b], j[a:b], i[a:b]))
            else:
                dropped += b - a
    return plans, dropped


def read_streams(reader, store, layout: Layout, path: Path) -> Streams:
    """One pass over the joint, command and camera topics (frames are only counted here)."""
    roles = {c.id: role for role, (_, conns) in layout.topics.items() for c in conns}
    fingers = layout.arm is not None
    joint_t, joints, image_t, cmd_t, cmds = [], [], [], [], []
    skipped = 0
    for conn, stamp, raw in messages(reader, layout.connections(), path):
        role = roles[conn.id]
        if role == "image":
            image_t.append(stamp)
        elif role == "joint":
            sample = joint_sample(deserialize(store, raw, conn, path), layout.joints, fingers)
            skipped += sample is None
            if sample is not None:
                joint_t.append(stamp)
                joints.append(sample)
        elif (
            command := command_sample(
                deserialize(store, raw, conn, path), conn.msgtype, layout.joints
            )
        ) is not None:
            cmd_t.append(stamp)
            cmds.append(command)
    if not joint_t:
        no_joint_states(reader, store, layout, path)
    joint_t, cmd_t = np.asarray(joint_t, np.int64), np.asarray(cmd_t, np.int64)
    order = np.argsort(joint_t, kind="stable")
    keep = order[np.append(np.diff(joint_t[order]) > 0, True)]  # the last of equal stamps
    by_time = np.argsort(cmd_t, kind="stable")
    q, finger, qdot = (np.asarray([s[k] for s in joints], np.float64)[keep] for k in range(3))
    n = len(layout.joints)
    return Streams(
        joint_t=joint_t[keep],
        q=q,
        finger=finger,
        qdot=qdot,
        image_t=np.sort(np.asarray(image_t, np.int64)) if layout.camera else None,
        cmd_t=cmd_t[by_time],
        cmd_q=np.asarray([c[0] for c in cmds], np.float64).reshape(-1, n)[by_time],
        cmd_finger=np.asarray([c[1] for c in cmds], np.float64)[by_time],
        skipped_joint_messages=skipped,
    )


def _episode(plan, streams: Streams, images, layout: Layout, cfg: RosbagConfig, path, info):
    """One planned run of observations -> an Episode (see the module docstring)."""
    grid, j, _ = plan
    arm, names = layout.arm, layout.joints
    q, finger = streams.q[j], streams.finger[j]
    vel, measured = _velocities(streams, j, fingers=arm is not None)
    cmd_q = _in_force(streams.cmd_t, streams.cmd_q, grid[1:])
    extra = {
        **info,
        "start_time_ns": int(grid[0]),
        "camera": layout.camera,
        "velocity": "measured" if measured else "finite differences",
        "commanded_q_rad": [_json_row(c) for c in cmd_q],
    }
    if arm is None:
        proprio, state = q, np.concatenate([q, vel], axis=1)
        raw = np.diff(q, axis=0) / (wx.VELOCITY_LIMIT_RAD_S / cfg.rate_hz)
        action_names, meaning = tuple(f"d_{n}" for n in names), JOINT_ACTION_MEANING
        extra.update(space="joint", joints=list(names))
        extra["state_names"] = [*names, *(f"{n}_vel" for n in names)]
    else:
        proprio = np.stack([arm.proprio(a, b) for a, b in zip(q, finger, strict=True)])
        state = np.concatenate([q, finger, vel], axis=1)
        raw, from_command = _bridge_actions(proprio, streams, grid, arm)
        action_names, meaning = ACTION_NAMES, ACTION_MEANING
        cmd_f = _in_force(streams.cmd_t, streams.cmd_finger, grid[1:])
        extra.update(space="end-effector", gripper_from_command=from_command)
        extra["commanded_finger_m"] = [None if np.isnan(f) else round(float(f), 6) for f in cmd_f]
        extra["state_names"] = [
            *(all_names := (*names, *FINGER_NAMES)),
            *(f"{n}_vel" for n in all_names),
        ]
    extra["clipped_action_values"] = int(np.count_nonzero(np.abs(raw) > 1.0))
    meta = EpisodeMeta(
        task=cfg.task,
        instruction=cfg.instruction,
        source="imported",
        fps=cfg.rate_hz,
        action_meaning=meaning,
        action_names=action_names,
        policy=f"rosbag:{path.name}",
        extra=extra,
    )
    return Episode(
        image=images,
        proprio=proprio.astype(np.float32),
        state=state,
        action=np.clip(raw, -1.0, 1.0).astype(np.float32),
        reward=np.zeros(len(grid) - 1, np.float32),
        success=np.zeros(len(grid), bool),
        meta=meta,
    )


def _bridge_actions(proprio: np.ndarray, streams: Streams, grid, arm: Arm):
    """Unclipped BridgeData actions [K-1, 7] between observations, #gripper values commanded."""
    delta = np.diff(proprio[:, :6], axis=0)
    delta[:, 3:] = (delta[:, 3:] + np.pi) % (2 * np.pi) - np.pi
    cmd_f = _in_force(streams.cmd_t, streams.cmd_finger, grid[1:])
    span = arm.finger_upper_m - arm.finger_lower_m
    opening = np.clip((np.abs(cmd_f) - arm.finger_lower_m) / span, 0.0, 1.0)
    opening = np.where(np.isnan(cmd_f), proprio[1:, 6], opening)
    raw = np.concatenate(
        [delta[:, :3] / POS_SCALE_M, delta[:, 3:] / ROT_SCALE_RAD, 2 * opening[:, None] - 1], axis=1
    )
    return raw, int(np.count_nonzero(~np.isnan(cmd_f)))


def _json_row(row: np.ndarray):
    """A commanded joint vector for meta.extra: None if nothing commanded, else None per NaN."""
    if np.isnan(row).all():
        return None
    return [None if np.isnan(x) else round(float(x), 6) for x in row]


def _velocities(streams: Streams, j: np.ndarray, fingers: bool) -> tuple[np.ndarray, bool]:
    """[K, J(+2)] joint (and finger) velocities at joint samples j; whether the arm's were
    measured."""
    span = slice(int(j[0]), int(j[-1]) + 1)
    t_s = (streams.joint_t[span] - streams.joint_t[span][0]) * 1e-9
    pos = streams.q[span]
    if fingers:
        pos = np.concatenate([pos, streams.finger[span]], axis=1)
    vel = (np.gradient(pos, t_s, axis=0) if len(t_s) > 1 else np.zeros_like(pos))[j - j[0]]
    measured = not np.isnan(streams.qdot[j]).any()
    if measured:
        vel[:, : streams.q.shape[1]] = streams.qdot[j]
    return vel, measured


def _in_force(cmd_t: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per column, the latest non-NaN value of `values` [C] or [C, J] stamped strictly before
    each time, else NaN (a JointSingleCommand sets one joint and leaves the others in force)."""
    if values.ndim == 1:
        return _in_force(cmd_t, values[:, None], times)[:, 0]
    out = np.full((len(times), values.shape[1]), np.nan)
    for col in range(values.shape[1]):
        valid = ~np.isnan(values[:, col])
        stamps, rows = cmd_t[valid], values[valid, col]
        k = np.searchsorted(stamps, times, side="left") - 1
        out[k >= 0, col] = rows[k[k >= 0]]
    return out


def _read_images(reader, store, layout, image_t, frames, cfg, path: Path) -> np.ndarray:
    """[K, H, W, 3]: the frames one episode uses (frame k = the k-th message in time order),
    read from the part of the bag they lie in."""
    conns = layout.topics["image"][1]
    start, stop = int(image_t[frames.min()]), int(image_t[frames.max()]) + 1
    k = int(np.searchsorted(image_t, start, side="left"))  # the index of the first one read
    wanted, decoded, shape = set(frames.tolist()), {}, None
    for conn, _, raw in messages(reader, conns, path, start, stop):
        if k in wanted:
            image = decode_image(deserialize(store, raw, conn, path), conn, cfg.image_size, path)
            if shape is not None and image.shape != shape:
                raise RosbagError(
                    f"{path}: {conn.topic} frames change size ({shape[1]}x{shape[0]} to "
                    f"{image.shape[1]}x{image.shape[0]}); pass --image-size to resize"
                )
            decoded[k], shape = image, image.shape
        k += 1
    return np.stack([decoded[int(f)] for f in frames])
