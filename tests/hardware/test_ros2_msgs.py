"""ROS 2 message conversions (robolearn.hardware.ros2_msgs) and the bridge node's parameter table.

Real message classes from the ros-*-msgs wheels; no node is started. The one stand-in is
`interbotix_xs_msgs` (its package cannot be installed here): a small module with the same
JointGroupCommand / JointSingleCommand / RegisterValues fields, built below as `_interbotix_stub`.
"""

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from robolearn.hardware import ros2_msgs as msgs
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError

Q = np.array([0.1, -0.5, 0.6, 0.05, 0.9, -0.2])


def _joint_state(names, position, velocity=None, effort=None):
    msg = JointState(name=list(names), position=[float(v) for v in position])
    msg.velocity = [float(v) for v in (velocity if velocity is not None else [])]
    msg.effort = [float(v) for v in (effort if effort is not None else [])]
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 500_000_000
    return msg


def test_joint_state_by_name_with_extra_joints_and_mirrored_finger():
    # Interbotix order: arm, gripper (a revolute motor angle we ignore), fingers (right negative).
    names = [*wx.JOINT_NAMES, "gripper", "left_finger", "right_finger"]
    order = [5, 0, 8, 7, 2, 6, 1, 3, 4]  # any order: lookup is by name
    position = [*Q, 0.7, 0.03, -0.029]
    velocity = np.arange(9) * 0.1
    effort = np.arange(9) * 10.0
    msg = _joint_state(
        [names[i] for i in order],
        [position[i] for i in order],
        [velocity[i] for i in order],
        [effort[i] for i in order],
    )
    s = msgs.joint_state_from_msg(msg)
    np.testing.assert_allclose(s.q_rad, Q)
    np.testing.assert_allclose(s.qdot_rad_s, velocity[:6])
    np.testing.assert_allclose(s.effort_ma, effort[:6])
    np.testing.assert_allclose(s.finger_m, [0.03, 0.029])
    assert s.stamp_s == pytest.approx(12.5)


def test_joint_state_round_trip_through_the_driver_message():
    msg = msgs.joint_state_msg(3.25, Q, Q * 2, np.array([0.02, 0.021]), np.full(6, 100.0))
    assert list(msg.name) == list(msgs.JOINT_STATE_NAMES)
    assert msg.position[-1] < 0  # right finger mirrored as Interbotix publishes it
    s = msgs.joint_state_from_msg(msg)
    np.testing.assert_allclose(s.q_rad, Q)
    np.testing.assert_allclose(s.qdot_rad_s, Q * 2)
    np.testing.assert_allclose(s.finger_m, [0.02, 0.021])
    assert s.stamp_s == pytest.approx(3.25)


def test_joint_state_without_velocity_or_effort_gives_none():
    s = msgs.joint_state_from_msg(_joint_state(msgs.JOINT_STATE_NAMES, [*Q, 0.02, -0.02]))
    assert s.qdot_rad_s is None and s.effort_ma is None


@pytest.mark.parametrize(
    "names, position, velocity, effort, error",
    [
        (msgs.JOINT_STATE_NAMES[:-1], [*Q, 0.02], None, None, "lacks joints ['right_finger']"),
        (msgs.JOINT_STATE_NAMES, [*Q, 0.02], None, None, "position has 7 values for 8 names"),
        (msgs.JOINT_STATE_NAMES, [*Q, 0.02, 0.02], [0.0] * 3, None, "velocity has 3 values"),
        (msgs.JOINT_STATE_NAMES, [*Q, 0.02, 0.02], None, [1.0] * 9, "effort has 9 values"),
        (msgs.JOINT_STATE_NAMES, [np.nan, *Q[1:], 0.02, 0.02], None, None, "position has NaN"),
        (msgs.JOINT_STATE_NAMES, [*Q, 0.02, 0.02], [np.inf] * 8, None, "velocity has NaN/inf"),
        ([*msgs.JOINT_STATE_NAMES, "waist"], [*Q, 0.02, 0.02, 0.0], None, None, "duplicate"),
        ([], [], None, None, "lacks joints"),
    ],
)
def test_bad_joint_states_are_rejected_with_one_line(names, position, velocity, effort, error):
    with pytest.raises(msgs.MessageError, match=error.replace("[", r"\[").replace("]", r"\]")):
        msgs.joint_state_from_msg(_joint_state(names, position, velocity, effort))


def test_a_nan_in_a_joint_we_do_not_use_is_ignored():
    names = [*msgs.JOINT_STATE_NAMES, "gripper"]
    s = msgs.joint_state_from_msg(_joint_state(names, [*Q, 0.02, 0.02, np.nan]))
    np.testing.assert_allclose(s.q_rad, Q)


def _image_msg(pixels: np.ndarray, encoding: str, pad: int) -> Image:
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = pixels.reshape(h, w * c)
    msg = Image(height=h, width=w, encoding=encoding, step=w * c + pad)
    msg.data = rows.tobytes()
    return msg


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    pad=st.integers(0, 5),
    encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]),
    seed=st.integers(0, 2**16),
)
def test_image_layouts_and_padding_decode_to_rgb(h, w, pad, encoding, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb[:] = rgb[:, :, :1]
        pixels = rgb[:, :, :1]
    else:
        order = [2, 1, 0] if encoding.startswith("bgr") else [0, 1, 2]
        pixels = rgb[:, :, order]
        if encoding.endswith("a8"):
            pixels = np.concatenate([pixels, np.full((h, w, 1), 255, np.uint8)], axis=2)
    out = msgs.image_from_msg(_image_msg(pixels, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    np.testing.assert_array_equal(out, rgb)


def test_image_round_trip_and_layout():
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = msgs.image_msg(img, 1.5, "cam")
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 48, 64, 192)
    assert msg.header.frame_id == "cam"
    np.testing.assert_array_equal(msgs.image_from_msg(msg), img)


@pytest.mark.parametrize(
    "change, error",
    [
        ({"encoding": "16UC1"}, "encoding '16UC1' not supported"),
        ({"step": 10}, "step 10 < width 4 x 3 channels"),
        ({"height": 0}, "size 0x4 out of range"),
        ({"data": bytes(47)}, "data has 47 bytes, expected step x height = 48"),
        ({"data": b""}, "data has 0 bytes"),
    ],
)
def test_bad_images_are_rejected_with_one_line(change, error):
    msg = msgs.image_msg(np.zeros((4, 4, 3), np.uint8), 0.0)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(msgs.MessageError, match=error):
        msgs.image_from_msg(msg)


def test_forward_command_layout_and_parsing():
    msg = msgs.forward_command_msg(Q, 0.03)
    assert list(msg.data) == [*Q.tolist(), 0.03]
    q, finger = msgs.forward_command_from_msg(msg)
    np.testing.assert_allclose(q, Q)
    assert finger == 0.03
    assert msgs.forward_command_from_msg(Float64MultiArray(data=list(Q)))[1] is None
    for bad in ([0.0] * 5, [*Q, np.nan]):
        with pytest.raises(msgs.MessageError, match="6 or 7 finite values"):
            msgs.forward_command_from_msg(Float64MultiArray(data=bad))
    with pytest.raises(msgs.MessageError, match="6 finite joint positions"):
        msgs.forward_command_msg([np.nan] * 6, 0.03)


def test_trajectory_one_point_reached_after_one_control_period():
    msg = msgs.trajectory_msg(Q, 0.03, 0.01)
    assert list(msg.joint_names) == list(wx.JOINT_NAMES)
    assert len(msg.points) == 1
    point = msg.points[0]
    assert list(point.positions) == Q.tolist()
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 10_000_000)
    with_gripper = msgs.trajectory_msg(Q, 0.03, 0.2, gripper_joint="left_finger")
    assert list(with_gripper.joint_names)[-1] == "left_finger"
    assert with_gripper.points[0].positions[-1] == 0.03
    assert with_gripper.points[0].time_from_start.nanosec == 200_000_000
    # the driver reads a trajectory by joint name, in any order
    reordered = msgs.trajectory_msg(Q, 0.03, 0.01, gripper_joint="left_finger")
    reordered.joint_names = list(reversed(reordered.joint_names))
    reordered.points[0].positions = list(reversed(reordered.points[0].positions))
    q, finger = msgs.trajectory_from_msg(reordered)
    np.testing.assert_allclose(q, Q)
    assert finger == 0.03
    empty = msgs.trajectory_msg(Q, 0.03, 0.01)
    empty.points = []
    with pytest.raises(msgs.MessageError, match="no points"):
        msgs.trajectory_from_msg(empty)


def _interbotix_stub():
    """Stand-in for interbotix_xs_msgs.msg (not installable here): the same field names."""

    class JointGroupCommand:
        def __init__(self, name="", cmd=()):
            self.name, self.cmd = name, list(cmd)

    class JointSingleCommand:
        def __init__(self, name="", cmd=0.0):
            self.name, self.cmd = name, cmd

    return types.SimpleNamespace(
        JointGroupCommand=JointGroupCommand, JointSingleCommand=JointSingleCommand
    )


def test_interbotix_commands_with_a_stand_in_message_module():
    xs = _interbotix_stub()
    group = msgs.interbotix_group_msg(xs, Q, "arm")
    assert group.name == "arm" and group.cmd == pytest.approx(Q.tolist())
    single = msgs.interbotix_single_msg(xs, "gripper", -250.0)
    assert (single.name, single.cmd) == ("gripper", -250.0)
    with pytest.raises(msgs.MessageError):
        msgs.interbotix_single_msg(xs, "gripper", float("nan"))


def test_gripper_pwm_opens_closes_and_stops_at_the_end_stop():
    opened, closed = wx.FINGER_UPPER_M, wx.FINGER_LOWER_M
    assert msgs.gripper_pwm(opened, 0.02, 250.0) == 250.0
    assert msgs.gripper_pwm(closed, 0.03, 250.0) == -250.0
    assert msgs.gripper_pwm(opened, opened, 250.0) == 0.0
    assert msgs.gripper_pwm(closed, closed, 250.0) == 0.0
    assert msgs.gripper_pwm(closed, None, 250.0) == -250.0


def test_profile_registers_are_1_25_and_0_5_control_periods_in_ms():
    assert msgs.profile_registers_ms(5.0) == {"Profile_Velocity": 250, "Profile_Acceleration": 100}
    assert msgs.profile_registers_ms(100.0) == {"Profile_Velocity": 12, "Profile_Acceleration": 5}


def test_names_resolve_under_the_robot_namespace():
    assert msgs.resolve_name("/wx250s", "joint_states") == "/wx250s/joint_states"
    assert msgs.resolve_name("/wx250s/", "camera/image_raw") == "/wx250s/camera/image_raw"
    assert msgs.resolve_name("/wx250s", "/cam/image") == "/cam/image"
    assert msgs.resolve_name("", "joint_states") == "/joint_states"


def test_parameters_are_coerced_to_the_defaults_type():
    rate = msgs.Param("rate", 5.0, "")
    assert msgs.coerce_param(rate, 10) == 10.0 and isinstance(msgs.coerce_param(rate, 10), float)
    assert msgs.coerce_param(rate, None) == 5.0
    gains = msgs.Param("k", [1.0, 2.0], "")
    assert msgs.coerce_param(gains, [3, 4.5]) == [3.0, 4.5]
    with pytest.raises(ConfigError, match="needs 2 numbers, got 3"):
        msgs.coerce_param(gains, [1, 2, 3])
    for param, bad in ((rate, "fast"), (rate, True), (msgs.Param("on", False, ""), 1)):
        with pytest.raises(ConfigError, match=f"parameter {param.name}"):
            msgs.coerce_param(param, bad)


def test_node_parameter_defaults_reproduce_the_bridge_defaults():
    from robolearn.hardware import ros2_config
    from robolearn.hardware.bridge import BridgeConfig

    defaults = {p.name: p.default for p in ros2_config.PARAMS}
    assert len(defaults) == len(ros2_config.PARAMS)  # no name twice
    cfg = ros2_config.bridge_config(defaults)
    base = BridgeConfig(policy_name="")
    assert cfg.passivity == base.passivity
    assert cfg.shield == base.shield
    assert (cfg.policy_hz, cfg.control_hz, cfg.record_dir) == (5.0, 100.0, None)
    with pytest.raises(ConfigError, match="output_mode 'servo'"):
        ros2_config.bridge_config({**defaults, "output_mode": "servo"})


def test_python_policy_specs_name_a_factory(tmp_path, monkeypatch):
    from robolearn.hardware import ros2_config

    (tmp_path / "my_policies.py").write_text(
        "import numpy as np\ndef make_zero():\n    return lambda obs: np.zeros(7, np.float32)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = ros2_config.make_policy("python:my_policies:make_zero", "drawer", 64)
    assert policy({"image": None, "proprio": None}).shape == (7,)
    with pytest.raises(ConfigError, match="cannot make the policy"):
        ros2_config.make_policy("python:my_policies:nothing", "drawer", 64)
    with pytest.raises(ConfigError, match="cannot make the policy"):
        ros2_config.make_policy("python:no_such_module_here:make", "drawer", 64)
    with pytest.raises(ConfigError, match="checkpoint is required"):
        ros2_config.make_policy("", "drawer", 64)
