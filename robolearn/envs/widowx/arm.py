"""MJCF of the WidowX 250 6DOF built from robolearn.core.widowx with dm_control.mjcf.

Primitives only (capsules, cylinders, boxes). Every body frame sits at its joint's kinematic origin
with the URDF's zero rotation, so MuJoCo's forward kinematics of the `tip` site equals the
product-of-exponentials FK in core/widowx.py. Arm bodies have gravity compensation (as the real
servos' holding torque), so the position actuators only track; the two fingers are prismatic and
position-controlled by one command each (same target), with high-friction pads.

Collision bits: arm geoms have contype 2 / conaffinity 1, scene geoms contype 1 / conaffinity 3, so
the arm touches the scene but never itself.
"""

from __future__ import annotations

import numpy as np
from dm_control import mjcf

from robolearn.core import widowx as wx

ARM_MODEL_NAME = "wx250s"
TIP_SITE = "tip"
FINGER_JOINTS = ("left_finger", "right_finger")
FINGER_ACTUATORS = ("left_finger", "right_finger")

# Per joint (waist .. wrist_rotate): position gain (N m/rad), damping (N m s/rad, ~0.8 of critical
# for the link inertia + armature), armature (kg m^2), torque limit (N m). With 2 ms steps the
# joints settle within ~0.05 s of a target change.
KP = np.array([200.0, 250.0, 200.0, 50.0, 50.0, 25.0])
DAMPING = np.array([7.0, 8.0, 5.0, 1.2, 1.2, 0.5])
ARMATURE = np.array([0.04, 0.05, 0.03, 0.008, 0.008, 0.004])
TORQUE_LIMIT = np.array([10.0, 12.0, 10.0, 4.0, 4.0, 4.0])

FINGER_KP = 1000.0  # N/m
FINGER_FORCE_LIMIT = 15.0  # N, per finger
# Inner face of a finger pad sits this far inside the finger joint value (m): the gap between the
# pads is 2 * (q_finger - PAD_INSET_M), 10 mm closed and 54 mm open.
PAD_INSET_M = 0.010
PAD_HALF_SIZE_M = (0.02, 0.005, 0.012)  # along gripper x, y (thickness), z
PAD_FRICTION = (1.5, 0.02, 0.002)

_LINK_NAMES = ("shoulder", "upper_arm", "upper_forearm", "lower_forearm", "wrist", "gripper")
ARM_RGBA = (0.15, 0.15, 0.17, 1.0)
ACCENT_RGBA = (0.85, 0.45, 0.1, 1.0)


def _link_geoms(body: mjcf.Element, link: str) -> None:
    """Primitive shapes for one link, in the link's own frame (origin at its joint)."""
    child = {name: wx.JOINT_ORIGINS_M[i + 1] for i, name in enumerate(_LINK_NAMES[:-1])}
    if link == "shoulder":
        body.add("geom", type="cylinder", size=[0.045, 0.02], pos=[0, 0, 0.02], rgba=ARM_RGBA)
        return
    if link == "gripper":
        body.add("geom", type="box", size=[0.022, 0.03, 0.018], pos=[0.025, 0, 0], rgba=ARM_RGBA)
        body.add("geom", type="box", size=[0.006, 0.045, 0.014], pos=[0.05, 0, 0], rgba=ACCENT_RGBA)
        return
    end = child[link]
    radius = {"upper_arm": 0.025, "upper_forearm": 0.022, "lower_forearm": 0.02, "wrist": 0.02}
    rgba = ACCENT_RGBA if link == "wrist" else ARM_RGBA
    body.add("geom", type="capsule", fromto=[0, 0, 0, *end], size=[radius[link]], rgba=rgba)


def _add_finger(gripper: mjcf.Element, name: str, sign: float) -> None:
    """A prismatic finger along sign * y of the gripper frame, its pad centred near the tip."""
    x_tip = wx.TIP_OFFSET_M[0]
    finger = gripper.add("body", name=name, pos=[0, 0, 0])
    finger.add(
        "inertial", pos=[x_tip - 0.01, 0, 0], mass=wx.MASS_KG["finger"], diaginertia=[1e-5] * 3
    )
    finger.add(
        "joint",
        name=name,
        type="slide",
        axis=[0, sign, 0],
        range=[wx.FINGER_LOWER_M, wx.FINGER_UPPER_M],
        damping=4.0,
        armature=0.05,
    )
    hx, hy, hz = PAD_HALF_SIZE_M
    y_pad = -sign * (PAD_INSET_M - hy)  # pad centre, so its inner face is PAD_INSET_M inside q
    finger.add(
        "geom",
        name=f"{name}_pad",
        type="box",
        size=[hx, hy, hz],
        pos=[x_tip - 0.01, y_pad, 0],
        friction=PAD_FRICTION,
        condim=4,
        rgba=(0.3, 0.3, 0.32, 1.0),
        mass=0.0,
    )
    finger.add(
        "geom",
        type="box",
        size=[0.012, 0.004, 0.008],
        pos=[x_tip - 0.035, y_pad - sign * 0.002, 0],
        rgba=ARM_RGBA,
        mass=0.0,
    )


def build_arm() -> mjcf.RootElement:
    """The wx250s as an attachable MJCF model; base frame = the model's world frame."""
    root = mjcf.RootElement(model=ARM_MODEL_NAME)
    root.compiler.angle = "radian"
    root.default.geom.contype = 2
    root.default.geom.conaffinity = 1
    root.default.geom.density = 0.0
    root.default.geom.group = 1
    base = root.worldbody.add("body", name="base_link")
    base.add("inertial", pos=[0, 0, 0.03], mass=wx.MASS_KG["base"], diaginertia=[2e-3] * 3)
    base.add("geom", type="box", size=[0.07, 0.07, 0.02], pos=[0, 0, 0.02], rgba=ARM_RGBA)
    base.add("geom", type="cylinder", size=[0.05, 0.015], pos=[0, 0, 0.055], rgba=ACCENT_RGBA)
    parent = base
    for i, (joint, link) in enumerate(zip(wx.JOINT_NAMES, _LINK_NAMES, strict=True)):
        body = parent.add("body", name=f"{link}_link", pos=wx.JOINT_ORIGINS_M[i], gravcomp=1.0)
        com = wx.JOINT_ORIGINS_M[i + 1] / 2 if i + 1 < wx.NUM_JOINTS else wx.TIP_OFFSET_M / 3
        body.add("inertial", pos=com, mass=wx.MASS_KG[link], diaginertia=[4e-4] * 3)
        body.add(
            "joint",
            name=joint,
            type="hinge",
            axis=wx.JOINT_AXES[i],
            range=[wx.Q_LOWER_RAD[i], wx.Q_UPPER_RAD[i]],
            damping=DAMPING[i],
            armature=ARMATURE[i],
        )
        _link_geoms(body, link)
        root.actuator.add(
            "position",
            name=joint,
            joint=joint,
            kp=KP[i],
            ctrlrange=[wx.Q_LOWER_RAD[i], wx.Q_UPPER_RAD[i]],
            forcerange=[-TORQUE_LIMIT[i], TORQUE_LIMIT[i]],
        )
        parent = body
    parent.add("site", name=TIP_SITE, pos=wx.TIP_OFFSET_M, size=[0.004], rgba=(1, 0, 0, 0))
    for name, sign in zip(FINGER_JOINTS, (1.0, -1.0), strict=True):
        _add_finger(parent, name, sign)
        finger_body = root.find("body", name)
        finger_body.gravcomp = 1.0
        root.actuator.add(
            "position",
            name=name,
            joint=name,
            kp=FINGER_KP,
            ctrlrange=[wx.FINGER_LOWER_M, wx.FINGER_UPPER_M],
            forcerange=[-FINGER_FORCE_LIMIT, FINGER_FORCE_LIMIT],
        )
    return root
