"""Reading ROS 2 bags without ROS (the rosbags package): open, types, and the messages we decode.

Types come from the definitions a bag embeds; types it does not describe (bags of older recorders)
fall back to the ROS 2 Humble set plus the Interbotix messages defined here, so Interbotix bags read
without interbotix_xs_msgs installed. Every failure is a one-line RosbagError naming the bag.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
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

from robolearn.core import widowx as wx
from robolearn.core.errors import RobolearnError

JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_GROUP_COMMAND = "interbotix_xs_msgs/msg/JointGroupCommand"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
INTERBOTIX_MSGS = {
    JOINT_GROUP_COMMAND: "string name\nfloat32[] cmd\n",
    "interbotix_xs_msgs/msg/JointSingleCommand": "string name\nfloat32 cmd\n",
}
FINGER_NAMES = ("left_finger", "right_finger")
# wx250s gripper linkage (interbotix_xsarm_control/config/wx250s.yaml: grippers/gripper).
GRIPPER_HORN_RADIUS_M = 0.014
GRIPPER_ARM_LENGTH_M = 0.024
IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_DECODE_ERRORS = (SerdeError, struct.error, IndexError, ValueError, UnicodeDecodeError)


class RosbagError(RobolearnError, ValueError):
    """A bag that cannot be read or converted: missing, corrupt, wrong topics, types or joints."""


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Reader]:
    """An open rosbags Reader of a rosbag2 directory or a single .mcap / .db3 file."""
    if not path.exists():
        raise RosbagError(f"{path}: no such file or directory")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, sqlite3.Error, OSError, KeyError) as exc:
        hint = "pass a rosbag2 directory (with metadata.yaml) or its .mcap or .db3 file"
        raise RosbagError(f"{path}: not a readable ROS 2 bag ({one_line(exc)}); {hint}") from exc
    try:
        yield reader
    finally:
        reader.close()


def storage_of(path: Path) -> str:
    """'mcap' or 'sqlite3': the storage plugin a bag was written with."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    suffixes = {f.suffix for f in files}
    return "mcap" if ".mcap" in suffixes else "sqlite3" if ".db3" in suffixes else "unknown"


def messages(reader: Reader, conns: list, path: Path) -> Iterator[tuple]:
    """(connection, bag stamp ns, raw CDR bytes) of `conns` in time order."""
    try:
        yield from reader.messages(connections=conns)
    except (ReaderError, sqlite3.Error, OSError) as exc:
        raise RosbagError(f"{path}: corrupt bag ({one_line(exc)})") from exc


def make_typestore(conns: list, path: Path):
    """A typestore for `conns`: their embedded definitions, Humble + Interbotix for the rest."""
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
    fallback = get_typestore(Stores.ROS2_HUMBLE)
    for name, text in INTERBOTIX_MSGS.items():
        fallback.register(get_types_from_msg(text, name))
    store.register({k: v for k, v in fallback.fielddefs.items() if k not in store.fielddefs})
    return store


def deserialize(store, raw: bytes, conn, path: Path):
    """One CDR message as the rosbags dataclass of its type."""
    try:
        return store.deserialize_cdr(raw, conn.msgtype)
    except _DECODE_ERRORS as exc:
        raise RosbagError(
            f"{path}: a {conn.topic} message does not decode as {conn.msgtype} ({one_line(exc)})"
        ) from exc


def finger_from_gripper_rad(angle_rad: np.ndarray) -> np.ndarray:
    """Finger travel (m) for the wx250s gripper motor angle, as interbotix_xs_sdk converts it."""
    h, a = GRIPPER_HORN_RADIUS_M, GRIPPER_ARM_LENGTH_M
    angle = np.asarray(angle_rad, dtype=np.float64)
    return h * np.sin(angle) + np.sqrt(a**2 - (h * np.cos(angle)) ** 2)


def joint_sample(msg) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(q [6] rad, finger [2] m, qdot [6] rad/s or NaN) of a JointState; None without our joints.

    Fingers are |q| (Interbotix publishes the right finger negative); a message with only the
    `gripper` motor angle gets both fingers from the driver's linkage formula.
    """
    index = {name: k for k, name in enumerate(msg.name)}
    pos = np.asarray(msg.position, np.float64)
    if len(pos) != len(index) or any(n not in index for n in wx.JOINT_NAMES):
        return None
    arm = [index[n] for n in wx.JOINT_NAMES]
    fingers = np.abs(pos[[index[n] for n in FINGER_NAMES if n in index]])
    if len(fingers):
        finger = np.resize(fingers, 2)
    elif "gripper" in index:
        finger = np.repeat(finger_from_gripper_rad(pos[index["gripper"]]), 2)
    else:
        return None
    if not (np.isfinite(pos[arm]).all() and np.isfinite(finger).all()):
        return None
    vel = np.asarray(msg.velocity, np.float64)
    qdot = vel[arm] if len(vel) == len(index) else np.full(wx.NUM_JOINTS, np.nan)
    return pos[arm], finger, qdot


def command_sample(msg, msgtype: str) -> tuple[np.ndarray, float] | None:
    """(arm targets [6] rad or NaN, finger target m or NaN) of a command; None if unusable.

    Float64MultiArray: 6 arm targets and an optional 7th finger target. JointGroupCommand: the first
    6 values of the group (a 7th value of group "all" drives the gripper motor, not a finger
    position, so it is not used). JointTrajectory: the last point, by joint name.
    """
    if msgtype == FLOAT64_ARRAY:
        data = np.asarray(msg.data, np.float64)
        if len(data) < wx.NUM_JOINTS:
            return None
        return data[: wx.NUM_JOINTS], float(data[6]) if len(data) > 6 else np.nan
    if msgtype == JOINT_GROUP_COMMAND:
        cmd = np.asarray(msg.cmd, np.float64)
        return (cmd[: wx.NUM_JOINTS], np.nan) if len(cmd) >= wx.NUM_JOINTS else None
    index = {name: k for k, name in enumerate(msg.joint_names)}
    pos = np.asarray(msg.points[-1].positions, np.float64) if msg.points else np.zeros(0)
    if len(pos) != len(index) or not index:
        return None
    arm = np.full(wx.NUM_JOINTS, np.nan)
    if all(n in index for n in wx.JOINT_NAMES):
        arm = pos[[index[n] for n in wx.JOINT_NAMES]]
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
