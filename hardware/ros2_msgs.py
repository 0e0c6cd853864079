"""ROS 2 messages <-> numpy for the WidowX bridge: joint states, camera images, arm commands.

Every `*_from_msg` validates what it reads and raises MessageError (one line: what is wrong) on a
malformed, short or non-finite message; the nodes log that line and drop the message, so a bad
message never crashes them. The `*_msg` builders make the messages the nodes publish.

Conventions (REFERENCES.md section 6, the Interbotix wx250s driver):
- JointState names: the six arm joints (core.widowx.JOINT_NAMES) plus `left_finger`,
  `right_finger`, looked up by name (a driver may add others, e.g. Interbotix's `gripper`, and
  may order them as it likes). Positions rad and m; effort is motor current in mA. Interbotix
  reports `right_finger` negative (mirrored); fingers are read as magnitudes (offset from the
  gripper centre, as core.widowx and the simulator use them) and published mirrored.
- Image: rgb8, bgr8, rgba8, bgra8 or mono8, any row padding (`step`), read as uint8 [H, W, 3] RGB.
- Commands: Float64MultiArray [7] = six arm joints (rad) + finger position (m) for a ros2_control
  forward position controller; JointTrajectory with one point reached after one control period;
  Interbotix JointGroupCommand / JointSingleCommand built from the message module passed in (the
  interbotix_xs_msgs package is optional).

Also the plumbing both nodes share: default topic names (relative to the robot namespace) and
parameter tables (declared with descriptions, values coerced to the default's type).

Only message packages are imported here (no rclpy): conversions are testable without a node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError, RobolearnError

ARM_JOINTS = wx.JOINT_NAMES
FINGER_JOINTS = ("left_finger", "right_finger")
JOINT_STATE_NAMES = ARM_JOINTS + FINGER_JOINTS
# encoding -> (channels, indices of R, G, B in a pixel)
ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
MAX_IMAGE_SIDE = 8192
# History depth of the streamed subscriptions (joint states, camera images, position commands):
# only the newest message is kept. rclpy's executor takes one message per subscription per wait,
# so on a loaded machine a deeper queue is worked off oldest first, and a 100 Hz stream then
# arrives up to depth x 10 ms late, in bursts. Measured over ROS 2 (the drawer policy, the
# simulated driver, 2 cores shared with 3-4 busy processes): with depth 10 commands reached the
# driver 13-14 ms late at the median and 51-85 ms at p99, the bridge paid the tank for a spring
# its stale joint states showed stretched, and the tank emptied (1 of 2 starts stalled, the
# other opened the drawer gated at the floor); with depth 1 in both nodes, 5 ms and 15-19 ms,
# and 3 of 3 starts opened it with the gate never active (tank >= 1.3 J). ros2_control's
# forward command controller keeps only the newest command the same way.
# The simulated driver applies a command at its next physics tick, so a command it skips is
# one the next would have overwritten before it acted (the backlog's bursts landed between two
# ticks too).
LATEST_ONLY = 1
ROBOT_NAMESPACE = "/wx250s"
# Topic and service names relative to the robot namespace (an absolute name is used as is).
TOPICS = {
    "joint_states_topic": "joint_states",
    "image_topic": "camera/image_raw",
    "forward_command_topic": "arm_controller/commands",
    "trajectory_topic": "arm_controller/joint_trajectory",
    "group_command_topic": "commands/joint_group",
    "single_command_topic": "commands/joint_single",
    "registers_service": "set_motor_registers",
}


class MessageError(RobolearnError, ValueError):
    """A message that cannot be used (wrong names, short arrays, NaN, bad image layout)."""


@dataclasses.dataclass(frozen=True)
class JointSample:
    """One joint state: header stamp (s), arm q (rad) [6], qdot (rad/s) [6] or None when the
    message has no velocities, finger offsets (m, >= 0) [2], effort (mA) [6] or None."""

    stamp_s: float
    q_rad: np.ndarray
    qdot_rad_s: np.ndarray | None
    finger_m: np.ndarray
    effort_ma: np.ndarray | None


def stamp_to_s(stamp: Time) -> float:
    """A builtin_interfaces/Time as seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


def s_to_stamp(t_s: float) -> Time:
    """Seconds as a builtin_interfaces/Time (non-negative)."""
    ns = max(int(round(t_s * 1e9)), 0)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def s_to_duration(t_s: float) -> Duration:
    """Seconds as a builtin_interfaces/Duration (non-negative)."""
    ns = max(int(round(t_s * 1e9)), 0)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _column(values, n: int, what: str, optional: bool) -> np.ndarray | None:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 and optional:
        return None
    if arr.shape != (n,):
        raise MessageError(f"JointState {what} has {arr.size} values for {n} names")
    return arr


def joint_state_from_msg(
    msg: JointState,
    arm_joints: Sequence[str] = ARM_JOINTS,
    finger_joints: Sequence[str] = FINGER_JOINTS,
) -> JointSample:
    """The arm and finger joints of a JointState, by name; MessageError if unusable.

    position is required for every name; velocity and effort may be empty (a driver that does
    not report them) but otherwise must match the names. Every value used must be finite.
    """
    names = list(msg.name)
    n = len(names)
    if len(set(names)) != n:
        raise MessageError("JointState has duplicate joint names")
    missing = [j for j in (*arm_joints, *finger_joints) if j not in names]
    if missing:
        raise MessageError(f"JointState lacks joints {missing} (has {names})")
    position = _column(msg.position, n, "position", optional=False)
    velocity = _column(msg.velocity, n, "velocity", optional=True)
    effort = _column(msg.effort, n, "effort", optional=True)
    arm = [names.index(j) for j in arm_joints]
    fingers = [names.index(j) for j in finger_joints]
    q, finger = position[arm], np.abs(position[fingers])
    qdot = None if velocity is None else velocity[arm]
    eff = None if effort is None else effort[arm]
    for what, arr in (("position", position[arm + fingers]), ("velocity", qdot), ("effort", eff)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise MessageError(f"JointState {what} has NaN/inf")
    return JointSample(stamp_to_s(msg.header.stamp), q, qdot, finger, eff)


def joint_state_msg(
    stamp_s: float,
    q_rad: np.ndarray,
    qdot_rad_s: np.ndarray,
    finger_m: np.ndarray,
    effort_ma: np.ndarray,
    frame_id: str = "",
) -> JointState:
    """A JointState as the Interbotix driver publishes it: arm joints then fingers, right finger
    mirrored (negative); finger velocity/effort 0."""
    finger = np.abs(np.asarray(finger_m, np.float64))
    msg = JointState(header=Header(stamp=s_to_stamp(stamp_s), frame_id=frame_id))
    msg.name = list(JOINT_STATE_NAMES)
    msg.position = [*map(float, q_rad), float(finger[0]), -float(finger[1])]
    msg.velocity = [*map(float, qdot_rad_s), 0.0, 0.0]
    msg.effort = [*map(float, effort_ma), 0.0, 0.0]
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """A sensor_msgs/Image as uint8 RGB [H, W, 3] (a copy); MessageError if unusable."""
    if msg.encoding not in ENCODINGS:
        raise MessageError(
            f"Image encoding {msg.encoding!r} not supported (use one of {', '.join(ENCODINGS)})"
        )
    channels, rgb = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise MessageError(f"Image size {h}x{w} out of range")
    if step < w * channels:
        raise MessageError(f"Image step {step} < width {w} x {channels} channels")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * h:
        raise MessageError(f"Image data has {data.size} bytes, expected step x height = {step * h}")
    pixels = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


def image_msg(image: np.ndarray, stamp_s: float, frame_id: str = "camera") -> Image:
    """A uint8 RGB image [H, W, 3] as an rgb8 sensor_msgs/Image (no padding)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise MessageError(f"image must be [H, W, 3], got {list(image.shape)}")
    h, w, _ = image.shape
    msg = Image(header=Header(stamp=s_to_stamp(stamp_s), frame_id=frame_id))
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = h, w, "rgb8", 0, 3 * w
    msg.data = image.tobytes()
    return msg


def _check_command(q_rad: np.ndarray, finger_m: float) -> tuple[np.ndarray, float]:
    q = np.asarray(q_rad, dtype=np.float64)
    if q.shape != (len(ARM_JOINTS),) or not np.all(np.isfinite(q)) or not np.isfinite(finger_m):
        raise MessageError(f"command must be 6 finite joint positions and a finger, got {q}")
    return q, float(finger_m)


def forward_command_msg(q_rad: np.ndarray, finger_m: float) -> Float64MultiArray:
    """Float64MultiArray [7]: the six arm joints (rad) then the finger position (m)."""
    q, finger = _check_command(q_rad, finger_m)
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label="joints", size=7, stride=7)]
    msg.data = [*map(float, q), finger]
    return msg


def forward_command_from_msg(msg: Float64MultiArray) -> tuple[np.ndarray, float | None]:
    """(q [6], finger or None) of a forward position command of 6 or 7 finite values."""
    data = np.asarray(msg.data, dtype=np.float64)
    if data.shape not in ((6,), (7,)) or not np.all(np.isfinite(data)):
        raise MessageError(f"forward command must be 6 or 7 finite values, got {data.size}")
    return data[:6], (float(data[6]) if data.size == 7 else None)


def trajectory_msg(
    q_rad: np.ndarray,
    finger_m: float,
    period_s: float,
    stamp_s: float = 0.0,
    gripper_joint: str = "",
) -> JointTrajectory:
    """A one-point JointTrajectory to q (reached after `period_s`); the finger is appended as
    joint `gripper_joint` when that is not empty (a controller that owns the fingers).

    stamp 0 means "start now" for a ros2_control joint_trajectory_controller.
    """
    q, finger = _check_command(q_rad, finger_m)
    names, positions = list(ARM_JOINTS), [*map(float, q)]
    if gripper_joint:
        names.append(gripper_joint)
        positions.append(finger)
    point = JointTrajectoryPoint(positions=positions, time_from_start=s_to_duration(period_s))
    return JointTrajectory(
        header=Header(stamp=s_to_stamp(stamp_s)), joint_names=names, points=[point]
    )


def trajectory_from_msg(
    msg: JointTrajectory, gripper_joints: Sequence[str] = FINGER_JOINTS
) -> tuple[np.ndarray, float | None]:
    """(q [6], finger or None) of a JointTrajectory's last point, arm joints by name."""
    names = list(msg.joint_names)
    missing = [j for j in ARM_JOINTS if j not in names]
    if missing or len(set(names)) != len(names):
        raise MessageError(f"JointTrajectory joint_names {names} lack {missing} or repeat")
    if not msg.points:
        raise MessageError("JointTrajectory has no points")
    positions = np.asarray(msg.points[-1].positions, dtype=np.float64)
    if positions.shape != (len(names),) or not np.all(np.isfinite(positions)):
        raise MessageError(f"JointTrajectory point has {positions.size} values for {len(names)}")
    q = positions[[names.index(j) for j in ARM_JOINTS]]
    finger = next((abs(positions[names.index(j)]) for j in gripper_joints if j in names), None)
    return q, (None if finger is None else float(finger))


def interbotix_group_msg(msgs_module, q_rad: np.ndarray, group: str = "arm"):
    """interbotix_xs_msgs/JointGroupCommand: the group's joints in order (float32 rad)."""
    q, _ = _check_command(q_rad, 0.0)
    return msgs_module.JointGroupCommand(name=group, cmd=[float(v) for v in q])


def interbotix_single_msg(msgs_module, name: str, cmd: float):
    """interbotix_xs_msgs/JointSingleCommand for one joint (e.g. the gripper's PWM)."""
    if not np.isfinite(cmd):
        raise MessageError(f"single command for {name!r} is not finite")
    return msgs_module.JointSingleCommand(name=name, cmd=float(cmd))


def gripper_pwm(finger_target_m: float, finger_meas_m: float | None, pwm: float) -> float:
    """The Interbotix gripper command (PWM, its default operating mode) toward a finger target:
    +pwm opens, -pwm closes, 0 once the fingers are at the limit in that direction (as the
    Interbotix Python API does, so the motor does not stall against its end stop)."""
    mid = 0.5 * (wx.FINGER_LOWER_M + wx.FINGER_UPPER_M)
    opening = finger_target_m >= mid
    if finger_meas_m is not None:
        at_limit = (
            finger_meas_m >= wx.FINGER_UPPER_M - 1e-3
            if opening
            else finger_meas_m <= wx.FINGER_LOWER_M + 1e-3
        )
        if at_limit:
            return 0.0
    return abs(pwm) if opening else -abs(pwm)


def profile_registers_ms(control_hz: float) -> dict[str, int]:
    """Dynamixel time-based profile registers (ms) for commands at `control_hz`: each command's
    move takes 1.25 control periods, accelerating over half a period (REFERENCES.md section 6);
    the driver's default 2 s profile would lag a 5-100 Hz command stream by seconds."""
    period_ms = 1000.0 / control_hz
    return {
        "Profile_Velocity": max(int(round(1.25 * period_ms)), 1),
        "Profile_Acceleration": max(int(round(0.5 * period_ms)), 1),
    }


@dataclasses.dataclass(frozen=True)
class Param:
    """One ROS parameter of a node: name, default (its type is the parameter's type), meaning."""

    name: str
    default: bool | int | float | str | list
    description: str


def resolve_name(namespace: str, name: str) -> str:
    """`name` under the robot namespace, unless it is absolute ("/...")."""
    if name.startswith("/"):
        return name
    return f"{namespace.rstrip('/')}/{name}" if namespace.strip("/") else f"/{name}"


def coerce_param(param: Param, value) -> bool | int | float | str | list:
    """`value` as the type of `param.default` (ints accepted for floats, as `-p rate:=5` gives);
    ConfigError (one line) for anything else. None (an unset or empty list) gives the default."""
    default = param.default
    if value is None:
        return default
    bad = ConfigError(f"parameter {param.name}: {value!r} is not a {type(default).__name__}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return type(default)(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad
        return value
    items = list(value) if not isinstance(value, str | bytes) else None
    if items is None or any(isinstance(v, bool) or not isinstance(v, int | float) for v in items):
        raise bad
    if default and len(items) != len(default):
        raise ConfigError(f"parameter {param.name}: needs {len(default)} numbers, got {len(items)}")
    return [float(v) for v in items]


def declare_params(node, table: Sequence[Param]) -> dict:
    """Declare every parameter of `table` on an rclpy node (dynamically typed, so 5 and 5.0 both
    work) and return their values coerced to the defaults' types, by name."""
    values = {}
    for param in table:
        descriptor = ParameterDescriptor(description=param.description, dynamic_typing=True)
        node.declare_parameter(param.name, param.default, descriptor)
        values[param.name] = coerce_param(param, node.get_parameter(param.name).value)
    return values
