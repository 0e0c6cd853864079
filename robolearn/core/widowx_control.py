"""BridgeData-style end-effector control of the WidowX: action -> joint targets.

Shared by the simulated tasks (robolearn.envs.widowx) and the robot bridge (hardware/), so a
policy's action means the same joint motion in MuJoCo and on the real arm.

One control step (5 Hz): the end-effector target moves by a[:3] * 0.05 m and a[3:6] * 0.25 rad
(roll/pitch/yaw, base frame), is clipped to WORKSPACE_BOX_M / RPY_BOX_RAD, and IK (core/widowx.py,
seeded with the previous joint target) turns it into joint targets. A step whose IK does not
converge (within 1 mm / 0.05 rad) is skipped: the previous joint target and end-effector target are
kept (as the BridgeData robot skips steps that break limits; IK never leaves the joint limits). A
solution that would move a joint faster than the velocity limit (pi rad/s) is shortened joint-wise
to that limit (and skipped if that leaves the workspace box). The end-effector target is then
re-synced to FK of the joint target, so the two always agree. Joint
targets are ramped linearly over the first 70 % of the physics substeps and then held, so the arm
has settled when the next observation is taken; the gripper a[6] is absolute (+1 open, -1 closed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robolearn.core import widowx as wx

CONTROL_HZ = 5.0
PHYSICS_DT_S = 0.002
SUBSTEPS = 100  # 0.2 s per control step
INTERP_CHUNKS = 10  # substeps run in 10 chunks of 10; joint targets ramp over the first ...
RAMP_CHUNKS = 7  # ... 7 chunks (0.14 s) and hold for the rest, so the arm settles by the next step
POS_SCALE_M = 0.05
ROT_SCALE_RAD = 0.25
# Fitted to our scenes (BridgeData's box [[0.1,-0.15,-0.01],[0.45,0.25,0.25]] is for its table):
# in front of the base, above the table top, within comfortable reach.
WORKSPACE_BOX_M = np.array([[0.10, -0.30, 0.015], [0.50, 0.30, 0.32]])
RPY_BOX_RAD = np.array([[-1.0, -0.6, -1.6], [1.0, 1.45, 1.6]])
MAX_JOINT_STEP_RAD = wx.VELOCITY_LIMIT_RAD_S / CONTROL_HZ

START_POS_M = np.array([0.22, 0.0, 0.20])
START_RPY_RAD = np.array([0.0, 0.8, 0.0])
_START_SEED_Q = np.array([0.0, -0.3, 0.3, 0.0, 0.8, 0.0])

ACTION_MEANING = (
    "ee target += a[:3]*0.05 m and rpy += a[3:6]*0.25 rad (base frame, clipped to a workspace "
    "box), IK to joint targets; a[6] gripper absolute: +1 open, -1 closed"
)


@dataclasses.dataclass
class EETarget:
    """The commanded end-effector pose (base frame) and the joint target that realizes it."""

    pos_m: np.ndarray
    rpy_rad: np.ndarray
    q_rad: np.ndarray


def start_target() -> EETarget:
    """The episode's start pose: tip 22 cm ahead, 20 cm up, pitched 0.8 rad down."""
    q, ok = wx.ik_dls(START_POS_M, wx.rpy_to_mat(START_RPY_RAD), _START_SEED_Q)
    assert ok, "start pose must be reachable"
    return EETarget(START_POS_M.copy(), START_RPY_RAD.copy(), q)


def step_target(target: EETarget, action: np.ndarray) -> tuple[EETarget, bool]:
    """The next EETarget for a normalized action [7]; (unchanged target, False) if skipped."""
    pos = np.clip(target.pos_m + action[:3] * POS_SCALE_M, *WORKSPACE_BOX_M)
    rpy = np.clip(target.rpy_rad + action[3:6] * ROT_SCALE_RAD, *RPY_BOX_RAD)
    rot = wx.rpy_to_mat(rpy)
    q = _solve(pos, rot, target.q_rad)
    if q is None:
        # A flipped wrist (forearm_roll and wrist_rotate near +-pi) can get stuck on the roll
        # limits; retry from the unflipped branch.
        seed = target.q_rad.copy()
        if abs(seed[3]) > np.pi / 2:
            seed[4] = -seed[4]
        seed[3] = seed[5] = 0.0
        q = _solve(pos, rot, seed)
    if q is None:
        return target, False
    q = target.q_rad + np.clip(q - target.q_rad, -MAX_JOINT_STEP_RAD, MAX_JOINT_STEP_RAD)
    pose = wx.fk(q)
    lo, hi = WORKSPACE_BOX_M
    if np.any(pose[:3, 3] < lo - 1e-3) or np.any(pose[:3, 3] > hi + 1e-3):
        return target, False  # a shortened step may leave the box on its way
    return EETarget(pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), q), True


def _solve(pos: np.ndarray, rot: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """IK accepted within 1 mm / 0.05 rad (near wrist singularities DLS lags in orientation)."""
    q, ok = wx.ik_dls(pos, rot, seed, max_iters=40, damping=0.01)
    if ok:
        return q
    pose = wx.fk(q)
    err_pos = np.linalg.norm(pose[:3, 3] - pos)
    err_rot = np.linalg.norm(wx.rotation_error(rot, pose[:3, :3]))
    return q if err_pos < 1e-3 and err_rot < 0.05 else None


def gripper_target_m(command: float) -> float:
    """Finger joint target (m) for an absolute gripper command in [-1, 1] (+1 open)."""
    frac = (np.clip(command, -1.0, 1.0) + 1.0) / 2.0
    return wx.FINGER_LOWER_M + frac * (wx.FINGER_UPPER_M - wx.FINGER_LOWER_M)
