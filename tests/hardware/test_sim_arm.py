"""The simulated WidowX (robolearn.hardware.sim_arm): real MuJoCo drawer scene driven by joint
commands."""

import numpy as np
import pytest
from robolearn.hardware.sim_arm import NOMINAL_CURRENT_MA, SimArm, torque_to_current_ma

from robolearn import envs
from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.envs.widowx.arm import TORQUE_LIMIT


@pytest.fixture(scope="module")
def arm():
    arm = SimArm("drawer", seed=0)
    yield arm
    arm.close()


def test_reset_puts_the_arm_in_the_task_start_pose(arm):
    arm.reset(3)
    q, qdot, finger, effort = arm.joint_state()
    assert q.shape == qdot.shape == effort.shape == (6,) and finger.shape == (2,)
    np.testing.assert_allclose(q, control.start_target().q_rad, atol=1e-12)
    np.testing.assert_allclose(finger, wx.FINGER_UPPER_M)
    assert np.all(qdot == 0) and arm.time_s == 0.0
    assert not arm.success() and arm.contact_force_n() == 0.0
    # Same scene and image as the task itself after reset(seed=3).
    task = envs.make("drawer")
    obs, _ = task.reset(seed=3)
    np.testing.assert_array_equal(arm.render(), obs["image"])
    np.testing.assert_allclose(wx.proprio(q, finger), obs["proprio"], atol=1e-6)
    task.close()


def test_commands_are_tracked_and_time_advances(arm):
    arm.reset(0)
    q0 = arm.joint_state()[0]
    target = q0 + np.array([0.2, -0.1, 0.1, 0.2, -0.2, 0.3])
    arm.command(target, wx.FINGER_LOWER_M)
    for _ in range(50):
        arm.step(0.01)
    assert arm.time_s == pytest.approx(0.5)
    q, qdot, finger, effort = arm.joint_state()
    np.testing.assert_allclose(q, target, atol=5e-3)
    np.testing.assert_allclose(finger, wx.FINGER_LOWER_M, atol=1e-3)
    assert np.abs(qdot).max() < 0.05 and np.abs(effort).max() < 0.1 * NOMINAL_CURRENT_MA.min()


def test_render_is_the_policy_image_and_changes_with_the_arm(arm):
    arm.reset(0)
    before = arm.render()
    assert before.dtype == np.uint8 and before.shape == (64, 64, 3)
    arm.command(arm.joint_state()[0] + np.array([0.5, 0, 0, 0, 0, 0]), wx.FINGER_UPPER_M)
    arm.step(0.3)
    assert np.abs(arm.render().astype(int) - before).sum() > 1000


def test_pushing_into_the_table_reads_as_contact_force_and_effort(arm):
    arm.reset(0)
    q0 = arm.joint_state()[0]
    below, _ = wx.ik_dls(np.array([0.25, 0.0, -0.03]), None, q0)
    arm.command(below, wx.FINGER_UPPER_M)
    arm.step(1.5)
    effort = arm.joint_state()[3]
    assert arm.contact_force_n() > 5.0  # the tip is held up by the table
    assert np.abs(effort).max() > 100.0  # and the servos push against it


def test_success_is_the_task_success(arm):
    arm.reset(0)
    task = arm.task
    slide = task.model.joint("drawer").qposadr[0]
    task.data.qpos[slide] = 0.1
    assert arm.success()
    arm.reset(0)
    assert not arm.success()


def test_effort_scale_and_bad_commands():
    np.testing.assert_allclose(torque_to_current_ma(TORQUE_LIMIT), NOMINAL_CURRENT_MA)
    np.testing.assert_allclose(torque_to_current_ma(-0.5 * TORQUE_LIMIT), -0.5 * NOMINAL_CURRENT_MA)
    arm = SimArm(seed=1)
    with pytest.raises(ValueError, match="6 finite joint targets"):
        arm.command(np.full(6, np.nan), 0.02)
    with pytest.raises(ValueError, match="6 finite joint targets"):
        arm.command(np.zeros(5), 0.02)
    arm.close()


def test_bridge_task_acts_through_the_bridge_like_a_task():
    from robolearn.hardware.bridge import load_policy
    from robolearn.hardware.sim_arm import BridgeTask

    policy = load_policy("bundle:drawer/bc", "drawer")
    task = BridgeTask("drawer", max_steps=30)
    try:
        obs, info = task.reset(seed=0)
        assert obs["image"].shape == (64, 64, 3) and obs["proprio"].shape == (7,)
        assert (
            info["tank_energy_j"] == task.bridge.status()["tank"]["energy_j"] and not info["held"]
        )
        for _ in range(30):
            obs, reward, terminated, truncated, info = task.step(policy(obs))
            if info["success"]:
                break
        assert info["success"] and reward == 1.0 and not terminated and info["step"] < 30
        steps = task.bridge.status()["policy_steps"]
        assert steps == info["step"]  # one bridge policy step per task step
        # a NaN action holds the arm and ends the episode; the next episode restarts the bridge
        obs, _, _, truncated, info = task.step(np.full(7, np.nan))
        assert truncated and info["held"] == "policy_nan" and task.bridge.mode == "hold"
        obs, info = task.continue_as("drawer-close")
        assert task.bridge.mode == "running" and info["task"] == "drawer-close"
        assert not info["success"]  # the drawer is open: not yet closed
        obs, info = task.reset(
            seed=1
        )  # a new bridge: the arm's jump to its start pose is no reading
        assert info["task"] == "drawer-close" and info["step"] == 0 and not info["held"]
    finally:
        task.close()


def test_bridge_task_ends_the_episode_held_on_an_implausible_reading():
    """A finger reading past its limits (here a sensor gone wrong, forced by wrapping the
    simulated arm's reading; in the simulator a violent move can whip a finger there) holds the
    bridge as on the robot: the step ends the episode held, the run goes on with the next reset."""
    from robolearn.hardware.sim_arm import BridgeTask

    task = BridgeTask("drawer", max_steps=10)
    try:
        obs, info = task.reset(seed=0)
        real = task.arm.joint_state

        def whipped():
            q, qdot, finger, effort = real()
            return q, qdot, finger + 0.03, effort

        task.arm.joint_state = whipped
        obs, _, terminated, truncated, info = task.step(np.zeros(7))
        assert truncated and not terminated and task.bridge.mode == "hold"
        assert info["held"].startswith("implausible_joint_state (fingers read")
        assert obs["proprio"].shape == (7,) and np.isfinite(obs["proprio"]).all()
        task.arm.joint_state = real
        obs, info = task.reset(seed=1)
        assert task.bridge.mode == "running" and not info["held"]
    finally:
        task.close()


def test_bridge_task_returns_the_arm_to_start_through_the_bridge_between_reset_free_phases():
    """continue_as(return_to_start=True) through the bridge: every command of the move is a
    bridge policy step (ramp, shield, filter), the arm ends at its start pose with the drawer
    left open; a hold during the move ends it with the bridge started again for the next
    phase; a joint goal that is not 6 finite angles holds like a NaN action."""
    from robolearn.hardware.policy_loader import load_policy
    from robolearn.hardware.sim_arm import BridgeTask

    policy = load_policy("bundle:drawer/bc", "drawer")
    task = BridgeTask("drawer", max_steps=30)
    try:
        obs, info = task.reset(seed=0)
        for _ in range(30):
            obs, _, _, _, info = task.step(policy(obs))
            if info["success"]:
                break
        assert info["success"]
        opening, before = task.arm.task.drawer_opening_m(), task.bridge.status()["policy_steps"]
        obs, info = task.continue_as("drawer-close", return_to_start=True)
        assert info["at_start"] and info["return_steps"] >= 3 and info["step"] == 0
        assert task.bridge.status()["policy_steps"] - before == info["return_steps"]
        assert not info["held"] and task.bridge.mode == "running"
        start_q = control.start_target().q_rad
        assert np.abs(task.bridge.joint_q() - start_q).max() < control.RETURN_TOLERANCE_RAD
        assert np.linalg.norm(obs["proprio"][:3] - control.START_POS_M) < 0.015
        assert abs(task.arm.task.drawer_opening_m() - opening) < 0.015
        assert info["task"] == "drawer-close" and not info["success"]

        obs, _, _, _, info = task.step(np.array([0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0]))
        plain_step, calls = task.step, []

        def held_at_the_second(command):
            calls.append(command)
            if len(calls) == 2:
                task.bridge.hold(task._now(), "operator")
            return plain_step(command)

        task.step = held_at_the_second
        obs, info = task.continue_as("drawer", return_to_start=True)
        assert info["return_steps"] == 2 and not info["at_start"]
        assert task.bridge.mode == "running" and not info["held"] and info["step"] == 0
        task.step = plain_step

        bad = control.JointGoal(np.array([0.0, np.nan, 0.0, 0.0, 0.0, 0.0]))
        *_, truncated, info = task.step(bad)
        assert truncated and info["held"] == "policy_nan" and task.bridge.mode == "hold"
    finally:
        task.close()
