"""Per-episode visual randomization (sim-to-real) of a compiled MuJoCo model, in place.

Randomizers keep the values the model had when they were built and always start from them, so
episodes do not drift. Physics is untouched: only colours, lights and camera fields change.
"""

from __future__ import annotations

import mujoco
import numpy as np


def shift_colour_groups(rgba: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """`rgba` [N, 4] with one random RGB shift in [-amount, amount] per distinct colour.

    Parts drawn in one colour (same rgba) stay uniformly coloured; fully transparent entries and
    alpha are left as they are.
    """
    out = rgba.copy()
    _, group = np.unique(rgba.round(4), axis=0, return_inverse=True)
    shift = rng.uniform(-amount, amount, (group.max() + 1, 3))[group.ravel()]
    visible = rgba[:, 3] > 0
    out[visible, :3] = np.clip(rgba[visible, :3] + shift[visible], 0.0, 1.0)
    return out


class SceneJitter:
    """Per-episode visual randomization of a compiled model: colours, lights, one camera's pose.

    Always starts from the values the model had when this object was built, so episodes do not
    drift. Physics is untouched. Colour shifts are shared by geoms (and materials) of equal colour.
    """

    RGB_JITTER = 0.1
    CAMERA_POS_JITTER_M = 0.03

    def __init__(self, model: mujoco.MjModel, camera: str):
        self._model = model
        self._cam = model.camera(camera).id
        self._saved = {
            "geom_rgba": model.geom_rgba.copy(),
            "mat_rgba": model.mat_rgba.copy(),
            "light_diffuse": model.light_diffuse.copy(),
            "cam_pos": model.cam_pos.copy(),
        }

    def apply(self, rng: np.random.Generator) -> None:
        """Draw new colours, light intensity and camera position from `rng`."""
        m = self._model
        for field in ("geom_rgba", "mat_rgba"):
            if len(self._saved[field]):
                getattr(m, field)[:] = shift_colour_groups(self._saved[field], rng, self.RGB_JITTER)
        m.light_diffuse[:] = self._saved["light_diffuse"] * rng.uniform(0.7, 1.3)
        jitter = rng.uniform(-self.CAMERA_POS_JITTER_M, self.CAMERA_POS_JITTER_M, 3)
        m.cam_pos[self._cam] = self._saved["cam_pos"][self._cam] + jitter
