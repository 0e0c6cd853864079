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


# -- the return to the start pose between reset-free phases ---------------------------------
RETURN_TOLERANCE_RAD = 0.05  # every arm joint within this of the start pose's: there
RETURN_LIFT_M = 0.03  # a tip more than this below the start height rises first
RETURN_JOINT_STEP_RAD = MAX_JOINT_STEP_RAD / 2  # per joint and control step: pi/2 rad/s
RETURN_MAX_STEPS = 30  # 6 s at 5 Hz: the return gives up after this many control steps


@dataclasses.dataclass(frozen=True)
class JointGoal:
    """A control step toward the joint positions q_rad [6] (rad), each joint moving at most
    RETURN_JOINT_STEP_RAD, with the gripper command `gripper` (+1 open): what return_to_start
    gives where an action [7] would go. It needs no IK: an arm in a branch of the IK that
    end-effector steps cannot leave (the waist turned back over the base, the wrist flipped)
    still gets out."""

    q_rad: np.ndarray
    gripper: float = 1.0


def joint_step_target(target: EETarget, goal: JointGoal) -> EETarget:
    """The next EETarget on the way to `goal`: the joint target moved toward goal.q_rad by at
    most RETURN_JOINT_STEP_RAD per joint, within the joint limits; the pose is its FK."""
    q = target.q_rad + np.clip(
        np.asarray(goal.q_rad, float) - target.q_rad, -RETURN_JOINT_STEP_RAD, RETURN_JOINT_STEP_RAD
    )
    q = wx.clip_to_limits(q)
    pose = wx.fk(q)
    return EETarget(pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), q)


def return_to_start(
    step, proprio: np.ndarray, q_rad: np.ndarray, max_steps: int = RETURN_MAX_STEPS
):
    """Drive the arm back to the episodes' start pose (start_target()), one control step at a
    time, as a robot's operator would script it between reset-free phases: the gripper opens in
    place (letting go of a handle), a tip more than RETURN_LIFT_M below the start height rises
    straight up while rising works (clear of what it held), then the joints move straight to the
    start pose's (JointGoal). step(command) -> (proprio [7], arm q [6], stop), command an action
    [7] or a JointGoal; stop when whatever acts can act no more (a bridge that held). Returns
    (control steps taken, whether every joint got within RETURN_TOLERANCE_RAD); (0, True) for an
    arm already there with its gripper open."""
    goal = JointGoal(start_target().q_rad)

    def there(q):
        return bool(np.abs(np.asarray(q) - goal.q_rad).max() < RETURN_TOLERANCE_RAD)

    if there(q_rad) and proprio[6] >= 0.9:
        return 0, True
    open_in_place = np.zeros(7)
    open_in_place[6] = 1.0
    proprio, q_rad, stop = step(open_in_place)
    taken = 1
    while not stop and taken < max_steps and START_POS_M[2] - proprio[2] > RETURN_LIFT_M:
        z = proprio[2]
        lift = open_in_place.copy()
        lift[2] = min(1.0, (START_POS_M[2] - z) / POS_SCALE_M)
        proprio, q_rad, stop = step(lift)
        taken += 1
        if proprio[2] - z < 0.005:  # it did not rise (a skipped IK step, or blocked)
            break
    while not stop and taken < max_steps and not there(q_rad):
        proprio, q_rad, stop = step(goal)
        taken += 1
    return taken, there(q_rad)
