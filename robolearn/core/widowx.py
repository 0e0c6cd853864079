"""WidowX 250 6DOF (Interbotix wx250s): kinematics, limits and masses; the one source of truth.

Simulation (robolearn.envs.widowx) and the robot bridge (hardware/) both read these constants, so a
policy sees the same arm in MuJoCo and on the real robot. Pure numpy: no simulator is imported.

Frames: `base` is the arm's base_link frame (z up, x forward, at the bottom of the base). The tip is
Interbotix's `ee_gripper_link`, between the finger pads. All joint origins have rpy = 0 in the URDF,
so at q = 0 every link frame is aligned with the base frame; forward kinematics is the
product of exponentials T(q) = exp([S_1] q_1) ... exp([S_6] q_6) M with space-frame screw axes S_i
= (w_i, v_i) (angular first, as in Lynch & Park's Modern Robotics and Interbotix's mr_descriptions).
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
NUM_JOINTS = 6

# Joint origin (m) of each joint's child link in its parent link's frame, and the joint axis.
JOINT_ORIGINS_M = np.array(
    [
        [0.0, 0.0, 0.072],
        [0.0, 0.0, 0.03865],
        [0.04975, 0.0, 0.25],
        [0.175, 0.0, 0.0],
        [0.075, 0.0, 0.0],
        [0.065, 0.0, 0.0],
    ]
)
JOINT_AXES = np.array(
    [
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
    ]
)
# The gripper tip (ee_gripper_link) in the wrist_rotate child link (gripper_link) frame, m.
TIP_OFFSET_M = np.array([0.093575, 0.0, 0.0])

Q_LOWER_RAD = np.array([-3.14158, -1.88496, -2.14675, -3.14158, -1.74533, -3.14158])
Q_UPPER_RAD = np.array([3.14158, 1.98968, 1.60570, 3.14158, 2.14675, 3.14158])
VELOCITY_LIMIT_RAD_S = np.pi  # per joint

# Each finger is a prismatic joint along the gripper's +-y; value = finger offset from centre (m).
FINGER_LOWER_M = 0.015  # closed
FINGER_UPPER_M = 0.037  # open

HOME_Q_RAD = np.zeros(NUM_JOINTS)
SLEEP_Q_RAD = np.array([0.0, -1.80, 1.55, 0.0, 0.8, 0.0])
HOME_TIP_POS_M = np.array([0.458325, 0.0, 0.36065])

# Link masses (kg), from the Interbotix URDF.
MASS_KG = {
    "base": 0.539,
    "shoulder": 0.481,
    "upper_arm": 0.431,
    "upper_forearm": 0.235,
    "lower_forearm": 0.221,
    "wrist": 0.085,
    "gripper": 0.073,
    "finger": 0.016,
}


def _joint_points_home() -> np.ndarray:
    """Each joint's origin in the base frame at q = 0, [6, 3] (m)."""
    return np.cumsum(JOINT_ORIGINS_M, axis=0)


HOME_M = np.eye(4)
HOME_M[:3, 3] = _joint_points_home()[-1] + TIP_OFFSET_M
# Space-frame screw axes [6, 6]: rows (w, v) with v = -w x p for a point p on the axis.
SCREW_AXES = np.concatenate([JOINT_AXES, -np.cross(JOINT_AXES, _joint_points_home())], axis=1)


def skew(v: np.ndarray) -> np.ndarray:
    """The 3x3 cross-product matrix [v] with [v] u = v x u."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _exp_unit_screw(screw: np.ndarray, theta: float) -> np.ndarray:
    """exp([S] theta) for a revolute screw S = (w, v) with |w| = 1, as a 4x4 transform."""
    w, v = screw[:3], screw[3:]
    wx = skew(w)
    s, c = np.sin(theta), np.cos(theta)
    wx2 = wx @ wx
    out = np.eye(4)
    out[:3, :3] = np.eye(3) + s * wx + (1.0 - c) * wx2
    out[:3, 3] = (theta * np.eye(3) + (1.0 - c) * wx + (theta - s) * wx2) @ v
    return out


def _adjoint(t: np.ndarray) -> np.ndarray:
    """The 6x6 adjoint of a transform, for twists ordered (w, v)."""
    r, p = t[:3, :3], t[:3, 3]
    ad = np.zeros((6, 6))
    ad[:3, :3] = r
    ad[3:, 3:] = r
    ad[3:, :3] = skew(p) @ r
    return ad


def fk_and_jacobian(q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tip pose in the base frame (4x4, m) and the space Jacobian [6, 6] (rows w then v)."""
    q = np.asarray(q_rad, dtype=np.float64)
    jac = np.empty((6, NUM_JOINTS))
    t = np.eye(4)
    for i in range(NUM_JOINTS):
        jac[:, i] = SCREW_AXES[i] if i == 0 else _adjoint(t) @ SCREW_AXES[i]
        t = t @ _exp_unit_screw(SCREW_AXES[i], q[i])
    return t @ HOME_M, jac


def fk(q_rad: np.ndarray) -> np.ndarray:
    """Pose of the gripper tip (ee_gripper_link) in the base frame, 4x4 homogeneous (m) [4, 4]."""
    return fk_and_jacobian(q_rad)[0]


def jacobian_space(q_rad: np.ndarray) -> np.ndarray:
    """Space Jacobian [6, 6]: base-frame twist (w rad/s, v m/s) per unit joint velocity (rad/s)."""
    return fk_and_jacobian(q_rad)[1]


def rotation_error(rot_target: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector (rad, base frame) that rotates `rot` onto `rot_target`, [3]."""
    r = rot_target @ rot.T
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    vec = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-7:
        return 0.5 * vec
    if np.pi - angle < 1e-4:  # near pi the antisymmetric part vanishes; use the symmetric part
        axis = np.sqrt(np.clip((np.diag(r) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis = (r[:, k] + np.eye(3)[k]) / np.sqrt(2.0 * (1.0 + r[k, k]))
        return angle * axis / np.linalg.norm(axis)
    return angle / (2.0 * np.sin(angle)) * vec


def clip_to_limits(q_rad: np.ndarray) -> np.ndarray:
    """Joint angles clipped into [Q_LOWER_RAD, Q_UPPER_RAD], [6]."""
    return np.clip(q_rad, Q_LOWER_RAD, Q_UPPER_RAD)


def ik_dls(
    target_pos: np.ndarray,
    target_rot: np.ndarray | None,
    q_init: np.ndarray,
    *,
    max_iters: int = 100,
    pos_tol_m: float = 1e-5,
    rot_tol_rad: float = 1e-4,
    damping: float = 1e-3,
    rot_weight_m_per_rad: float = 0.1,
    max_step_rad: float = 0.3,
) -> tuple[np.ndarray, bool]:
    """Damped-least-squares IK for the tip; returns (q_rad [6], converged).

    target_pos: tip position in the base frame (m) [3]. target_rot: tip orientation in the base
    frame [3, 3], or None for position only. q_init: start (rad) [6], e.g. the current joint target.
    Each iteration solves dq = A^T (A A^T + damping^2 I)^-1 e for the tip's point Jacobian A (rows
    for orientation scaled by `rot_weight_m_per_rad`), caps |dq| at `max_step_rad` and clips q into
    the joint limits, so the result always respects them. `converged` is False when the tolerances
    were not met within `max_iters` (unreachable target, or stuck at a limit).
    """
    target_pos = np.asarray(target_pos, dtype=np.float64)
    q = clip_to_limits(np.asarray(q_init, dtype=np.float64))
    use_rot = target_rot is not None
    for _ in range(max_iters):
        t, jac = fk_and_jacobian(q)
        p = t[:3, 3]
        err_pos = target_pos - p
        # The tip moves with v_tip = v_s + w_s x p = v_s - [p] w_s.
        a = jac[3:] - skew(p) @ jac[:3]
        err = err_pos
        pos_ok = np.linalg.norm(err_pos) < pos_tol_m
        if use_rot:
            err_rot = rotation_error(target_rot, t[:3, :3])
            if pos_ok and np.linalg.norm(err_rot) < rot_tol_rad:
                return q, True
            a = np.concatenate([a, rot_weight_m_per_rad * jac[:3]])
            err = np.concatenate([err_pos, rot_weight_m_per_rad * err_rot])
        elif pos_ok:
            return q, True
        dq = a.T @ np.linalg.solve(a @ a.T + damping**2 * np.eye(len(err)), err)
        norm = np.linalg.norm(dq)
        if norm > max_step_rad:
            dq *= max_step_rad / norm
        q = clip_to_limits(q + dq)
    return q, False


def rpy_to_mat(rpy_rad: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] of roll, pitch, yaw (rad): R = Rz(yaw) Ry(pitch) Rx(roll).

    The inverse of mat_to_rpy (extrinsic XYZ); positive pitch tips the gripper's
    x axis down.
    """
    r, p, y = rpy_rad
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def mat_to_rpy(mat: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (rad, extrinsic XYZ = intrinsic ZYX) of a rotation matrix [3, 3]."""
    m = np.asarray(mat, dtype=np.float64).reshape(3, 3)
    roll = np.arctan2(m[2, 1], m[2, 2])
    pitch = np.arcsin(np.clip(-m[2, 0], -1.0, 1.0))
    yaw = np.arctan2(m[1, 0], m[0, 0])
    return np.array([roll, pitch, yaw])


def gripper_opening(finger_q_m: np.ndarray) -> float:
    """Gripper opening in [0, 1] (0 closed, 1 open) from the finger joint positions (m) [2]."""
    mean = float(np.mean(finger_q_m))
    return float(np.clip((mean - FINGER_LOWER_M) / (FINGER_UPPER_M - FINGER_LOWER_M), 0.0, 1.0))


def proprio(q_rad: np.ndarray, finger_q_m: np.ndarray) -> np.ndarray:
    """The policy's proprio [7] from measured joints: tip xyz (m) + rpy (rad) + gripper opening.

    The simulated tasks compute the same vector from MuJoCo's tip site (which matches fk to
    machine precision), so a policy sees the same numbers in simulation and on the real arm.
    """
    pose = fk(q_rad)
    return np.concatenate([pose[:3, 3], mat_to_rpy(pose[:3, :3]), [gripper_opening(finger_q_m)]])
