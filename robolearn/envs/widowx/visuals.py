"""Per-episode visual randomization (sim-to-real): light, geom colours, camera pose jitter.

Works on the compiled model in place, always starting from the values it had when built, so episodes
do not drift. Physics is untouched: only rgba, light and camera fields change.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.visuals import shift_colour_groups
from robolearn.envs.widowx import scenes

CAMERA_POS_JITTER_M = 0.03
CAMERA_LOOKAT_JITTER_M = 0.02
RGB_JITTER = 0.12
LIGHT_DIR_JITTER = 0.4


class VisualRandomizer:
    """Randomizes light, colours and the scene camera of `model` per call to `apply`."""

    def __init__(self, model: mujoco.MjModel):
        self._model = model
        self._rgba = model.geom_rgba.copy()
        self._light_dir = model.light_dir.copy()
        self._light_diffuse = model.light_diffuse.copy()
        self._headlight_ambient = model.vis.headlight.ambient.copy()
        self._cam = model.camera(scenes.CAMERA).id

    def apply(self, rng: np.random.Generator) -> None:
        """Draw new visuals from `rng` (uses it after the task has placed its objects)."""
        m = self._model
        m.geom_rgba[:] = shift_colour_groups(self._rgba, rng, RGB_JITTER)
        light_dir = self._light_dir + rng.uniform(
            -LIGHT_DIR_JITTER, LIGHT_DIR_JITTER, self._light_dir.shape
        )
        m.light_dir[:] = light_dir / np.linalg.norm(light_dir, axis=1, keepdims=True)
        m.light_diffuse[:] = self._light_diffuse * rng.uniform(0.6, 1.4)
        m.vis.headlight.ambient[:] = self._headlight_ambient * rng.uniform(0.6, 1.4)
        pos = scenes.CAMERA_POS + rng.uniform(-CAMERA_POS_JITTER_M, CAMERA_POS_JITTER_M, 3)
        lookat = scenes.CAMERA_LOOKAT + rng.uniform(
            -CAMERA_LOOKAT_JITTER_M, CAMERA_LOOKAT_JITTER_M, 3
        )
        x, y = np.split(scenes.look_at_xyaxes(pos, lookat), 2)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, np.stack([x, y, np.cross(x, y)], axis=1).ravel())
        m.cam_pos[self._cam] = pos
        m.cam_quat[self._cam] = quat
