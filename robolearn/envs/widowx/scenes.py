"""Tabletop scenes around the WidowX, composed with dm_control.mjcf.

World frame = the arm's base frame; the table top is the plane z = 0. Scene geoms collide with the
arm (contype 1 / conaffinity 3, see arm.py). Objects are placed per episode by the task, by moving
model bodies (cabinet, target) or setting free-joint qpos (block); these builders fix the shapes.
"""

from __future__ import annotations

import numpy as np
from dm_control import mjcf

from robolearn.envs.widowx.arm import build_arm

CAMERA = "scene"
CAMERA_POS = np.array([0.02, -0.58, 0.55])
CAMERA_LOOKAT = np.array([0.25, 0.0, 0.10])
TABLE_RGBA = (0.62, 0.55, 0.45, 1.0)

# Cabinet frame: origin at the bottom centre of its front face, +x pointing away from the robot
# (into the cabinet), z up. The drawer slides along -x out of it.
CABINET_SIZE_M = (0.20, 0.24, 0.15)  # depth, width, height
WALL_M = 0.01
DRAWER_TRAVEL_M = 0.14
HANDLE_OFFSET_M = 0.035  # bar centre in front of the drawer face
HANDLE_HEIGHT_M = 0.075
HANDLE_RADIUS_M = 0.012
CABINET_RGBA = (0.55, 0.62, 0.70, 1.0)
DRAWER_RGBA = (0.80, 0.80, 0.74, 1.0)
HANDLE_RGBA = (0.15, 0.35, 0.75, 1.0)

BLOCK_HALF_M = 0.02
BLOCK_RGBA = (0.80, 0.15, 0.15, 1.0)
TARGET_RADIUS_M = 0.03
TARGET_RGBA = (0.15, 0.70, 0.25, 1.0)


def look_at_xyaxes(pos: np.ndarray, lookat: np.ndarray) -> np.ndarray:
    """MuJoCo camera `xyaxes` [6] for a camera at `pos` looking at `lookat` with z up."""
    forward = (lookat - pos) / np.linalg.norm(lookat - pos)
    x = np.cross(forward, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    return np.concatenate([x, y])


def _base_scene(name: str) -> mjcf.RootElement:
    """Table, light, camera and the arm at the origin."""
    root = mjcf.RootElement(model=name)
    root.compiler.angle = "radian"
    root.option.timestep = 0.002
    root.option.integrator = "implicitfast"
    root.visual.quality.shadowsize = 0
    getattr(root.visual, "global").offwidth = 256
    getattr(root.visual, "global").offheight = 256
    root.visual.headlight.ambient = [0.35, 0.35, 0.35]
    root.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    root.default.geom.contype = 1
    root.default.geom.conaffinity = 3
    root.worldbody.add(
        "light",
        name="key",
        pos=[0.3, -0.3, 1.2],
        dir=[0.2, 0.3, -1],
        diffuse=[0.55] * 3,
        directional=True,
        castshadow=False,
    )
    root.worldbody.add(
        "geom",
        name="table",
        type="box",
        size=[1.5, 1.5, 0.02],
        pos=[0.5, 0, -0.02],
        rgba=TABLE_RGBA,
        friction=[0.6, 0.005, 0.0001],
    )
    root.worldbody.add(
        "camera",
        name=CAMERA,
        pos=CAMERA_POS,
        xyaxes=look_at_xyaxes(CAMERA_POS, CAMERA_LOOKAT),
        fovy=55,
    )
    root.attach(build_arm())
    return root


def _boxes(body: mjcf.Element, rgba, parts: dict[str, tuple]) -> None:
    """Add box geoms named by `parts`: name -> (centre [3], half sizes [3])."""
    for name, (center, half) in parts.items():
        body.add("geom", name=name, type="box", pos=center, size=half, rgba=rgba)


def build_drawer_scene() -> mjcf.RootElement:
    """A cabinet (body `cabinet`) with a drawer on slide joint `drawer` and site `handle`."""
    root = _base_scene("widowx_drawer")
    d, wd, h = CABINET_SIZE_M
    w = WALL_M
    cab = root.worldbody.add("body", name="cabinet", pos=[0.45, 0, 0])
    _boxes(cab, CABINET_RGBA, {
        "cab_left": ([d / 2, wd / 2 - w / 2, h / 2], [d / 2, w / 2, h / 2]),
        "cab_right": ([d / 2, -wd / 2 + w / 2, h / 2], [d / 2, w / 2, h / 2]),
        "cab_top": ([d / 2, 0, h - w / 2], [d / 2, wd / 2, w / 2]),
        "cab_bottom": ([d / 2, 0, w / 2], [d / 2, wd / 2, w / 2]),
        "cab_back": ([d - w / 2, 0, h / 2], [w / 2, wd / 2, h / 2]),
    })  # fmt: skip
    _add_drawer(cab)
    root.contact.add("exclude", body1="cabinet", body2="drawer")
    return root


def _add_drawer(cab: mjcf.Element) -> None:
    """The drawer body, its slide joint and the handle: a vertical bar on two posts."""
    d, wd, h = CABINET_SIZE_M
    w = WALL_M
    drawer = cab.add("body", name="drawer")
    drawer.add("inertial", pos=[d / 2, 0, 0.05], mass=0.4, diaginertia=[2e-3] * 3)
    drawer.add(
        "joint", name="drawer", type="slide", axis=[-1, 0, 0], range=[0, DRAWER_TRAVEL_M],
        damping=4.0, frictionloss=0.3, armature=0.05,
    )  # fmt: skip
    inner_w, inner_h, z0 = wd / 2 - w - 0.004, h - 2 * w - 0.006, w + 0.003
    _boxes(drawer, DRAWER_RGBA, {
        "drawer_front": ([-w / 2, 0, z0 + inner_h / 2], [w / 2, wd / 2 - 0.004, inner_h / 2]),
        "drawer_bottom": ([d / 2, 0, z0 + 0.004], [d / 2 - w, inner_w, 0.004]),
        "drawer_side_l": ([d / 2, inner_w - 0.004, z0 + 0.035], [d / 2 - w, 0.004, 0.035]),
        "drawer_side_r": ([d / 2, 0.004 - inner_w, z0 + 0.035], [d / 2 - w, 0.004, 0.035]),
        "drawer_back": ([d - 2 * w, 0, z0 + 0.035], [0.004, inner_w, 0.035]),
    })  # fmt: skip
    x_bar, z_bar = -HANDLE_OFFSET_M, HANDLE_HEIGHT_M
    post_half = [(-w - x_bar) / 2 + 0.004, 0.008, 0.006]
    _boxes(drawer, HANDLE_RGBA, {
        "handle_post_lo": ([(x_bar - w) / 2, 0, z_bar - 0.04], post_half),
        "handle_post_hi": ([(x_bar - w) / 2, 0, z_bar + 0.04], post_half),
    })  # fmt: skip
    drawer.add(
        "geom", name="handle_bar", type="cylinder", pos=[x_bar, 0, z_bar],
        size=[HANDLE_RADIUS_M, 0.046], rgba=HANDLE_RGBA, friction=[1.2, 0.02, 0.002], condim=4,
    )  # fmt: skip
    drawer.add("site", name="handle", pos=[x_bar, 0, z_bar], size=[0.005], rgba=[0, 0, 0, 0])


def build_push_scene() -> mjcf.RootElement:
    """A free block (joint `block`) and a flat target disc (body `target`, no collisions)."""
    root = _base_scene("widowx_push")
    block = root.worldbody.add("body", name="block", pos=[0.3, 0, BLOCK_HALF_M])
    block.add("freejoint", name="block")
    block.add(
        "geom",
        name="block",
        type="box",
        size=[BLOCK_HALF_M] * 3,
        mass=0.08,
        rgba=BLOCK_RGBA,
        friction=[0.5, 0.005, 0.0001],
        condim=4,
    )
    target = root.worldbody.add("body", name="target", pos=[0.4, 0, 0])
    target.add(
        "geom",
        name="target",
        type="cylinder",
        size=[TARGET_RADIUS_M, 0.0005],
        pos=[0, 0, 0.0005],
        rgba=TARGET_RGBA,
        contype=0,
        conaffinity=0,
    )
    return root
