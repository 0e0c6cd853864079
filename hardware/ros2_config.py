"""The bridge node's parameters (one table) and what they build: BridgeConfig and the policy.

PARAMS is the single list of robolearn_bridge's ROS parameters, with defaults taken from
hardware/shield.py and hardware/passivity.py, so the node declares them, the launch file and
config/bridge.yaml are checked against them, and the README lists them. No rclpy here.
"""

from __future__ import annotations

import dataclasses
import importlib

from robolearn.hardware import ros2_msgs as msgs
from robolearn.hardware.bridge import BridgeConfig, load_policy
from robolearn.hardware.passivity import PassivityConfig
from robolearn.hardware.shield import JOINT_MARGIN_RAD, ShieldConfig

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError

OUTPUT_MODES = ("forward_position", "joint_trajectory", "interbotix")
PYTHON_POLICY = "python:"
_P, _S, _B = PassivityConfig(), ShieldConfig(), BridgeConfig()
P = msgs.Param
PARAMS = (
    P("checkpoint", "", "policy: checkpoint dir, bundle:TASK/PART, or python:MODULE:FACTORY"),
    P("task", "drawer", "task the policy was trained for"),
    P("instruction", "", "language instruction (recorded with episodes)"),
    P("image_size", 64, "image side the policy takes (px); camera frames are resized to it"),
    P("policy_rate", 5.0, "policy steps per second (Hz)"),
    P("control_rate", 100.0, "commands per second to the arm (Hz)"),
    P("output_mode", "forward_position", "forward_position | joint_trajectory | interbotix"),
    P("autostart", False, "start the policy once joint states and an image have arrived"),
    P("image_sync", True, "run each policy step on a frame that arrived after it was due"),
    P("image_sync_wait_s", 0.1, "image_sync: wait at most this long for that frame (s)"),
    P("record_dir", "", "episode store for deployment episodes (empty: no recording)"),
    P("status_rate", 1.0, "~/status topic rate (Hz)"),
    P("robot_namespace", msgs.ROBOT_NAMESPACE, "namespace of the arm driver's topics"),
    *(
        P(name, value, f"{name.replace('_', ' ')} (relative to robot_namespace unless /...)")
        for name, value in msgs.TOPICS.items()
    ),
    P("trajectory_gripper_joint", "", "joint_trajectory mode: finger joint to append (or none)"),
    P("arm_group", "arm", "interbotix mode: joint group of the six arm joints"),
    P("gripper_name", "gripper", "interbotix mode: the gripper joint's name"),
    P("gripper_pwm", 250.0, "interbotix mode: gripper PWM to open (+) and close (-)"),
    P("joint_margin_rad", JOINT_MARGIN_RAD, "shield: joint limits shrunk by this margin (rad)"),
    P(
        "workspace_box_m",
        [*_S.workspace_box_m[0], *_S.workspace_box_m[1]],
        "shield: tip box, x y z low then high (m)",
    ),
    P("workspace_margin_m", _S.workspace_margin_m, "shield: tolerance around the box (m)"),
    P("max_velocity_rad_s", _S.max_velocity_rad_s, "shield: joint velocity limit (rad/s)"),
    P("effort_limit_ma", list(_S.effort_limit), "shield: safe stop above these currents (mA)"),
    P(
        "joint_state_timeout_s",
        _S.joint_state_timeout_s,
        "watchdog: hold when joint states are older (s)",
    ),
    P("image_timeout_s", _S.image_timeout_s, "watchdog: hold when camera images are older (s)"),
    P(
        "policy_timeout_s",
        0.0,
        "watchdog: hold when a policy step has no result this long after it was due "
        "(s; 0: two policy periods)",
    ),
    P(
        "joint_delay_s",
        _B.joint_delay_s,
        "filter: age of a joint state on arrival; q is extrapolated to the control time (s)",
    ),
    P("filter_enabled", _P.enabled, "passivity filter gates commands (false: accounting only)"),
    P("stiffness", list(_P.stiffness), "port stiffness K per arm joint (N m/rad)"),
    P("damping", list(_P.damping), "port damping D per arm joint (N m s/rad)"),
    P("energy_init", _P.energy_init_j, "energy tank level at start (J)"),
    P("energy_min", _P.energy_min_j, "energy tank floor (J)"),
    P("energy_max", _P.energy_max_j, "energy tank cap (J)"),
)
del P


def bridge_config(p: dict) -> BridgeConfig:
    """The BridgeConfig for node parameters `p` (one-line ConfigError for bad values)."""
    if p["output_mode"] not in OUTPUT_MODES:
        raise ConfigError(f"output_mode {p['output_mode']!r}: use one of {', '.join(OUTPUT_MODES)}")
    margin = p["joint_margin_rad"]
    shield = dataclasses.replace(
        _S,
        q_lower_rad=tuple(wx.Q_LOWER_RAD + margin),
        q_upper_rad=tuple(wx.Q_UPPER_RAD - margin),
        workspace_box_m=(tuple(p["workspace_box_m"][:3]), tuple(p["workspace_box_m"][3:])),
        workspace_margin_m=p["workspace_margin_m"],
        max_velocity_rad_s=p["max_velocity_rad_s"],
        effort_limit=tuple(p["effort_limit_ma"]),
        joint_state_timeout_s=p["joint_state_timeout_s"],
        image_timeout_s=p["image_timeout_s"],
    )
    passivity = PassivityConfig(
        stiffness=tuple(p["stiffness"]),
        damping=tuple(p["damping"]),
        energy_init_j=p["energy_init"],
        energy_min_j=p["energy_min"],
        energy_max_j=p["energy_max"],
        enabled=p["filter_enabled"],
    )
    return BridgeConfig(
        policy_hz=p["policy_rate"],
        control_hz=p["control_rate"],
        instruction=p["instruction"],
        image_size=p["image_size"],
        passivity=passivity,
        shield=shield,
        record_dir=p["record_dir"] or None,
        task=p["task"],
        policy_name=p["checkpoint"],
        joint_delay_s=p["joint_delay_s"],
        policy_deadline_s=p["policy_timeout_s"] or None,
    )


def make_policy(spec: str, task: str, image_size: int):
    """The policy named by `spec`: `python:MODULE:FACTORY` (FACTORY() returns the policy) or a
    checkpoint (robolearn.hardware.bridge.load_policy)."""
    if not spec:
        raise ConfigError("parameter checkpoint is required (e.g. -p checkpoint:=bundle:drawer/bc)")
    if not spec.startswith(PYTHON_POLICY):
        return load_policy(spec, task, image_size)
    module, _, factory = spec[len(PYTHON_POLICY) :].partition(":")
    try:
        return getattr(importlib.import_module(module), factory)()
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"checkpoint {spec!r}: cannot make the policy ({exc})") from exc


def import_interbotix():
    """(interbotix_xs_msgs.msg, interbotix_xs_msgs.srv), or None when not installed."""
    try:
        return importlib.import_module("interbotix_xs_msgs.msg"), importlib.import_module(
            "interbotix_xs_msgs.srv"
        )
    except ImportError:
        return None
