"""Interbotix X-series WidowX arms for the bag importer: joint names, screw axes, fingers.

Forward kinematics is the product of exponentials T(q) = exp([S_1] q_1) ... exp([S_n] q_n) M with
the space-frame screw axes S_i = (w_i, v_i) and home pose M of the tip (`ee_gripper_link`) in
`base_link`, as Interbotix's own `interbotix_xs_modules/xs_robot/mr_descriptions.py` lists them
per model. The wx250s entry is built from robolearn.core.widowx (the arm the simulator and the
bridge use, matched to Interbotix to 3e-16 m), so the importer and the robot agree on it by
construction; wx250 and wx200 are Interbotix's values, and their joint chain is the one of the
URDFs in interbotix_xsarm_descriptions (wx200: elbow at (0.05, 0, 0.2), wrist 0.2 further, wrist
rotate 0.065 further, tip 0.093575 beyond it). All three have the same gripper: fingers 0.015 m
(closed) to 0.037 m (open) from the centre, and the same motor linkage (horn 14 mm, arm 24 mm,
interbotix_xsarm_control/config/<model>.yaml).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robolearn.core import widowx as wx


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm model: joint names in chain order, screw axes [J, 6] (w, v), tip home pose [4, 4]."""

    name: str
    joint_names: tuple[str, ...]
    screw_axes: np.ndarray
    home_m: np.ndarray
    finger_lower_m: float = wx.FINGER_LOWER_M
    finger_upper_m: float = wx.FINGER_UPPER_M

    @property
    def num_joints(self) -> int:
        """J, the number of arm joints (the gripper not counted)."""
        return len(self.joint_names)

    def fk(self, q_rad: np.ndarray) -> np.ndarray:
        """Pose of the tip in the base frame, 4x4 homogeneous (m), for joint angles q [J] (rad)."""
        t = np.eye(4)
        for screw, theta in zip(self.screw_axes, np.asarray(q_rad, np.float64), strict=True):
            t = t @ _exp_screw(screw, float(theta))
        return t @ self.home_m

    def proprio(self, q_rad: np.ndarray, finger_m: np.ndarray) -> np.ndarray:
        """[7]: tip xyz (m), roll/pitch/yaw (rad, base frame), gripper opening in [0, 1]."""
        pose = self.fk(q_rad)
        span = self.finger_upper_m - self.finger_lower_m
        opening = np.clip((float(np.mean(finger_m)) - self.finger_lower_m) / span, 0.0, 1.0)
        return np.concatenate([pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), [opening]])


def _exp_screw(screw: np.ndarray, theta: float) -> np.ndarray:
    """exp([S] theta) of a revolute screw S = (w, v) with |w| = 1 (Rodrigues), 4x4."""
    w, v = screw[:3], screw[3:]
    k = wx.skew(w)
    k2 = k @ k
    s, c = np.sin(theta), np.cos(theta)
    out = np.eye(4)
    out[:3, :3] = np.eye(3) + s * k + (1.0 - c) * k2
    out[:3, 3] = (theta * np.eye(3) + (1.0 - c) * k + (theta - s) * k2) @ v
    return out


def _home(x_m: float, z_m: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 3], m[2, 3] = x_m, z_m
    return m


_FIVE_DOF = ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")

ARMS = {
    "wx250s": Arm("wx250s", wx.JOINT_NAMES, wx.SCREW_AXES, wx.HOME_M),
    "wx250": Arm(
        "wx250",
        _FIVE_DOF,
        np.array(
            [
                [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
                [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
                [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
                [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
            ]
        ),
        _home(0.458325, 0.36065),
    ),
    "wx200": Arm(
        "wx200",
        _FIVE_DOF,
        np.array(
            [
                [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
                [0.0, 1.0, 0.0, -0.31065, 0.0, 0.05],
                [0.0, 1.0, 0.0, -0.31065, 0.0, 0.25],
                [1.0, 0.0, 0.0, 0.0, 0.31065, 0.0],
            ]
        ),
        _home(0.408575, 0.31065),
    ),
}
