"""Reading ROS bags without ROS (the rosbags package): open, types, and the messages we decode.

ROS 2 bags (a rosbag2 directory, or its .mcap / .db3 file) and ROS 1 bags (a .bag file) are read by
rosbags' readers; ROS 1 messages are decoded from their own serialization, ROS 2 ones from CDR.
Types come from the definitions a bag embeds (every ROS 1 bag carries them, with its recorder's
Header); types it does not describe (bags of older ROS 2 recorders) fall back to the ROS 2 Humble
(or ROS 1 Noetic) set plus the Interbotix messages defined here, under both package names the
driver used (`interbotix_xs_msgs`, and `interbotix_xs_sdk` before it), so Interbotix bags read
without either installed. Every failure is a one-line RosbagError naming the bag.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from rosbags.interfaces import ConnectionExtRosbag1
from rosbags.rosbag1 import Reader as Reader1
from rosbags.rosbag1 import ReaderError as ReaderError1
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import (
    Stores,
    TypesysError,
    get_types_from_idl,
    get_types_from_msg,
    get_typestore,
)

from robolearn.core.errors import RobolearnError

JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
INTERBOTIX_PACKAGES = ("interbotix_xs_msgs", "interbotix_xs_sdk")
JOINT_GROUP_COMMANDS = tuple(f"{p}/msg/JointGroupCommand" for p in INTERBOTIX_PACKAGES)
JOINT_SINGLE_COMMANDS = tuple(f"{p}/msg/JointSingleCommand" for p in INTERBOTIX_PACKAGES)
JOINT_GROUP_COMMAND = JOINT_GROUP_COMMANDS[0]
INTERBOTIX_MSGS = {
    **dict.fromkeys(JOINT_GROUP_COMMANDS, "string name\nfloat32[] cmd\n"),
    **dict.fromkeys(JOINT_SINGLE_COMMANDS, "string name\nfloat32 cmd\n"),
}
FINGER_NAMES = ("left_finger", "right_finger")
# The gripper linkage of the WidowX arms (interbotix_xsarm_control/config/<model>.yaml:
# grippers/gripper), the same on the wx200, wx250 and wx250s.
GRIPPER_HORN_RADIUS_M = 0.014
GRIPPER_ARM_LENGTH_M = 0.024
IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_DECODE_ERRORS = (SerdeError, struct.error, IndexError, ValueError, UnicodeDecodeError)
_OPEN_ERRORS = (ReaderError, ReaderError1, sqlite3.Error, OSError, KeyError, ValueError)


class RosbagError(RobolearnError, ValueError):
    """A bag that cannot be read or converted: missing, corrupt, wrong topics, types or joints."""


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Reader | Reader1]:
    """An open rosbags reader of a rosbag2 directory, a .mcap / .db3 file, or a ROS 1 .bag."""
    if not path.exists():
        raise RosbagError(f"{path}: no such file or directory")
    ros1 = path.is_file() and path.suffix == ".bag"
    try:
        reader = Reader1(path) if ros1 else Reader(path)
        reader.open()
    except _OPEN_ERRORS as exc:
        kind = "ROS 1 bag" if ros1 else "ROS 2 bag"
        hint = "pass a rosbag2 directory (with metadata.yaml), its .mcap or .db3 file, or a .bag"
        raise RosbagError(f"{path}: not a readable {kind} ({one_line(exc)}); {hint}") from exc
    try:
        yield reader
    finally:
        reader.close()


def storage_of(path: Path) -> str:
    """'mcap', 'sqlite3' or 'rosbag1': how a bag was stored."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    suffixes = {f.suffix for f in files}
    if ".bag" in suffixes:
        return "rosbag1"
    return "mcap" if ".mcap" in suffixes else "sqlite3" if ".db3" in suffixes else "unknown"


def messages(
    reader, conns: list, path: Path, start: int | None = None, stop: int | None = None
) -> Iterator[tuple]:
    """(connection, bag stamp ns, raw bytes) of `conns` in time order, stamps in [start, stop)."""
    try:
        yield from reader.messages(connections=conns, start=start, stop=stop)
    except (ReaderError, ReaderError1, sqlite3.Error, OSError) as exc:
        raise RosbagError(f"{path}: corrupt bag ({one_line(exc)})") from exc


def is_ros1(conn) -> bool:
    """Whether a connection comes from a ROS 1 bag (its messages are ROS 1 serialized)."""
    return isinstance(conn.ext, ConnectionExtRosbag1)


def make_typestore(conns: list, path: Path):
    """A typestore for `conns`: their embedded definitions, Humble or Noetic + Interbotix
    for the rest."""
    embedded = {}
    for conn in conns:
        try:
            embedded.update(_embedded_types(conn))
        except TypesysError as exc:
            raise RosbagError(
                f"{path}: {conn.topic}: unreadable definition of {conn.msgtype} ({one_line(exc)})"
            ) from exc
    store = get_typestore(Stores.EMPTY)
    store.register(embedded)
    ros1 = any(is_ros1(c) for c in conns)
    fallback = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    for name, text in INTERBOTIX_MSGS.items():
        fallback.register(get_types_from_msg(text, name))
    store.register({k: v for k, v in fallback.fielddefs.items() if k not in store.fielddefs})
    return store


def deserialize(store, raw: bytes, conn, path: Path):
    """One message (ROS 1 or CDR) as the rosbags dataclass of its type."""
    try:
        if is_ros1(conn):
            return store.deserialize_ros1(raw, conn.msgtype)
        return store.deserialize_cdr(raw, conn.msgtype)
    except _DECODE_ERRORS as exc:
        raise RosbagError(
            f"{path}: a {conn.topic} message does not decode as {conn.msgtype} ({one_line(exc)})"
        ) from exc


def finger_from_gripper_rad(angle_rad: np.ndarray) -> np.ndarray:
    """Finger travel (m) for the WidowX gripper motor angle, as interbotix_xs_sdk converts it."""
    h, a = GRIPPER_HORN_RADIUS_M, GRIPPER_ARM_LENGTH_M
    angle = np.asarray(angle_rad, dtype=np.float64)
    return h * np.sin(angle) + np.sqrt(a**2 - (h * np.cos(angle)) ** 2)


def joint_sample(
    msg, joints: tuple[str, ...], fingers: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(q [J], finger [2] m, qdot [J] or NaN) of a JointState; None without all of `joints`.

    Fingers are |q| (Interbotix publishes the right finger negative); a message with only the
    `gripper` motor angle gets both fingers from the driver's linkage formula. With fingers=False
    (an explicit joint list) the fingers are not required and come back NaN.
    """
    index = {name: k for k, name in enumerate(msg.name)}
    pos = np.asarray(msg.position, np.float64)
    if len(pos) != len(index) or any(n not in index for n in joints):
        return None
    arm = [index[n] for n in joints]
    finger = np.full(2, np.nan)
    if fingers:
        measured = np.abs(pos[[index[n] for n in FINGER_NAMES if n in index]])
        if len(measured):
            finger = np.resize(measured, 2)
        elif "gripper" in index:
            finger = np.repeat(finger_from_gripper_rad(pos[index["gripper"]]), 2)
        else:
            return None
        if not np.isfinite(finger).all():
            return None
    if not np.isfinite(pos[arm]).all():
        return None
    vel = np.asarray(msg.velocity, np.float64)
    qdot = vel[arm] if len(vel) == len(index) else np.full(len(joints), np.nan)
    return pos[arm], finger, qdot


def command_sample(msg, msgtype: str, joints: tuple[str, ...]) -> tuple[np.ndarray, float] | None:
    """(arm targets [J] rad, NaN where not commanded; finger target m or NaN); None if unusable.

    Float64MultiArray: J arm targets and an optional finger target after them. JointGroupCommand:
    the first J values of the group (a further value of group "all" drives the gripper motor, not a
    finger position, so it is not used). JointSingleCommand: the one arm joint it names (a gripper
    command is a motor effort or angle, not used). JointTrajectory: the last point, by joint name.
    """
    n = len(joints)
    arm = np.full(n, np.nan)
    if msgtype == FLOAT64_ARRAY:
        data = np.asarray(msg.data, np.float64)
        if len(data) < n:
            return None
        return data[:n], float(data[n]) if len(data) > n else np.nan
    if msgtype in JOINT_GROUP_COMMANDS:
        cmd = np.asarray(msg.cmd, np.float64)
        return (cmd[:n], np.nan) if len(cmd) >= n else None
    if msgtype in JOINT_SINGLE_COMMANDS:
        if msg.name not in joints:
            return None
        arm[joints.index(msg.name)] = float(msg.cmd)
        return arm, np.nan
    index = {name: k for k, name in enumerate(msg.joint_names)}
    pos = np.asarray(msg.points[-1].positions, np.float64) if msg.points else np.zeros(0)
    if len(pos) != len(index) or not index:
        return None
    for k, name in enumerate(joints):
        if name in index:
            arm[k] = pos[index[name]]
    finger = abs(pos[index["left_finger"]]) if "left_finger" in index else np.nan
    return None if np.isnan(arm).all() and np.isnan(finger) else (arm, finger)


def decode_image(msg, conn, size: int | None, path: Path) -> np.ndarray:
    """An Image or CompressedImage -> uint8 RGB [H, W, 3], resized to size x size (INTER_AREA)."""
    where = f"{path}: {conn.topic}"
    data = np.asarray(msg.data, np.uint8)
    if conn.msgtype == COMPRESSED_IMAGE:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise RosbagError(f"{where}: a CompressedImage ({msg.format!r}) does not decode")
        rgb = bgr[..., ::-1]
    else:
        encoding = msg.encoding.lower()
        if encoding not in IMAGE_ENCODINGS:
            raise RosbagError(
                f"{where}: image encoding {msg.encoding!r} is not supported "
                f"(supported: {', '.join(IMAGE_ENCODINGS)}, or a CompressedImage topic)"
            )
        ch, h, w, step = IMAGE_ENCODINGS[encoding], int(msg.height), int(msg.width), int(msg.step)
        if h * w == 0 or step < w * ch or len(data) < h * step:
            raise RosbagError(f"{where}: a {w}x{h} {encoding} image with {len(data)} bytes")
        pixels = data[: h * step].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
        rgb = np.repeat(pixels, 3, axis=2) if ch == 1 else pixels[..., :3]
        rgb = rgb[..., ::-1] if encoding.startswith("bgr") else rgb
    if size is not None and rgb.shape[:2] != (size, size):
        rgb = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _embedded_types(conn) -> dict:
    """The types a connection's embedded definition describes (none for bags without them)."""
    text, kind = conn.msgdef.data, conn.msgdef.format.name
    if not text.strip() or kind not in ("MSG", "IDL"):
        return {}
    if kind == "MSG":
        return get_types_from_msg(text, conn.msgtype)
    sep = "=" * 80 + "\n"
    parts = [p.split("\n", 1)[1] for p in text.split(sep)[1:]] if text.startswith(sep) else [text]
    types = {}
    for idl in parts:
        types.update(get_types_from_idl(idl))
    return types
