"""WidowX 250 6DOF kinematics: PoE FK by hand and against MuJoCo, Jacobian, DLS IK."""

import numpy as np
import pytest

import robolearn.envs  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
from robolearn.core import widowx as wx
from robolearn.envs.base import mat_to_rpy


def random_q(rng, n, margin=0.0):
    span = wx.Q_UPPER_RAD - wx.Q_LOWER_RAD
    return rng.uniform(wx.Q_LOWER_RAD + margin * span, wx.Q_UPPER_RAD - margin * span, (n, 6))


def test_home_pose_by_hand():
    pose = wx.fk(wx.HOME_Q_RAD)
    np.testing.assert_allclose(pose[:3, 3], [0.458325, 0.0, 0.36065], atol=1e-12)
    np.testing.assert_allclose(pose[:3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(wx.HOME_TIP_POS_M, pose[:3, 3], atol=1e-12)


def test_single_joint_poses_by_hand():
    # Waist +90 deg swings the stretched arm onto +y.
    np.testing.assert_allclose(
        wx.fk([np.pi / 2, 0, 0, 0, 0, 0])[:3, 3], [0.0, 0.458325, 0.36065], atol=1e-12
    )
    # Wrist_angle +90 deg points the last 0.158575 m (wrist -> tip) straight down.
    tip = wx.fk([0, 0, 0, 0, np.pi / 2, 0])[:3, 3]
    np.testing.assert_allclose(tip, [0.29975, 0.0, 0.36065 - 0.158575], atol=1e-12)
    # Rolls about the tool axis leave the tip where it is.
    np.testing.assert_allclose(wx.fk([0, 0, 0, 1.0, 0, -0.7])[:3, 3], wx.HOME_TIP_POS_M, atol=1e-12)


def test_fk_matches_mujoco_site():
    import mujoco

    from robolearn.envs.widowx.arm import TIP_SITE, build_arm

    model = mujoco.MjModel.from_xml_string(build_arm().to_xml_string())
    data = mujoco.MjData(model)
    qadr = [model.joint(name).qposadr[0] for name in wx.JOINT_NAMES]
    site = model.site(TIP_SITE).id
    for q in random_q(np.random.default_rng(0), 250):
        data.qpos[qadr] = q
        mujoco.mj_kinematics(model, data)
        pose = wx.fk(q)
        assert np.abs(data.site_xpos[site] - pose[:3, 3]).max() <= 1e-9
        assert np.abs(data.site_xmat[site].reshape(3, 3) - pose[:3, :3]).max() <= 1e-9


def test_arm_model_uses_core_limits():
    import mujoco

    from robolearn.envs.widowx.arm import build_arm

    model = mujoco.MjModel.from_xml_string(build_arm().to_xml_string())
    for i, name in enumerate(wx.JOINT_NAMES):
        np.testing.assert_allclose(model.joint(name).range, [wx.Q_LOWER_RAD[i], wx.Q_UPPER_RAD[i]])
    np.testing.assert_allclose(
        model.joint("left_finger").range, [wx.FINGER_LOWER_M, wx.FINGER_UPPER_M]
    )


def test_space_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    for q in random_q(rng, 5):
        pose, jac = wx.fk_and_jacobian(q)
        eps = 1e-7
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = eps
            # The space twist of joint i: d/dq_i T(q) * T(q)^-1.
            twist_mat = (wx.fk(q + dq) - wx.fk(q - dq)) / (2 * eps) @ np.linalg.inv(pose)
            twist = [twist_mat[2, 1], twist_mat[0, 2], twist_mat[1, 0], *twist_mat[:3, 3]]
            np.testing.assert_allclose(jac[:, i], twist, atol=1e-6)


def test_ik_round_trip_full_pose():
    rng = np.random.default_rng(2)
    qs = random_q(rng, 100, margin=0.05)
    converged = 0
    for q in qs:
        pose = wx.fk(q)
        q_init = wx.clip_to_limits(q + rng.normal(0.0, 0.2, 6))
        q_ik, ok = wx.ik_dls(pose[:3, 3], pose[:3, :3], q_init)
        assert np.all(q_ik >= wx.Q_LOWER_RAD) and np.all(q_ik <= wx.Q_UPPER_RAD)
        if ok:
            converged += 1
            got = wx.fk(q_ik)
            assert np.linalg.norm(got[:3, 3] - pose[:3, 3]) < 1e-4
            assert np.linalg.norm(wx.rotation_error(pose[:3, :3], got[:3, :3])) < 1e-3
    assert converged >= 90


def test_ik_position_only_from_sleep_pose():
    rng = np.random.default_rng(3)
    for q in random_q(rng, 50, margin=0.3):
        target = wx.fk(q)[:3, 3]
        q_ik, ok = wx.ik_dls(target, None, wx.SLEEP_Q_RAD, max_iters=200)
        assert ok
        assert np.linalg.norm(wx.fk(q_ik)[:3, 3] - target) < 1e-4
        assert np.all(q_ik >= wx.Q_LOWER_RAD) and np.all(q_ik <= wx.Q_UPPER_RAD)


def test_ik_unreachable_target_reports_failure_within_limits():
    q_ik, ok = wx.ik_dls([1.0, 0.0, 0.3], None, wx.HOME_Q_RAD)
    assert not ok
    assert np.all(q_ik >= wx.Q_LOWER_RAD) and np.all(q_ik <= wx.Q_UPPER_RAD)


@pytest.mark.parametrize("rpy", [(0.0, 0.0, 0.0), (0.3, -0.4, 1.2), (-1.0, 1.2, -2.5)])
def test_rpy_to_mat_inverts_mat_to_rpy(rpy):
    rot = wx.rpy_to_mat(np.array(rpy))
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(mat_to_rpy(rot), rpy, atol=1e-12)


def test_rotation_error_axis_angle():
    rot = wx.rpy_to_mat(np.array([0.0, 0.0, 0.5]))
    np.testing.assert_allclose(wx.rotation_error(rot, np.eye(3)), [0, 0, 0.5], atol=1e-12)
    flip = wx.rpy_to_mat(np.array([np.pi, 0.0, 0.0]))
    assert np.isclose(np.linalg.norm(wx.rotation_error(flip, np.eye(3))), np.pi)
