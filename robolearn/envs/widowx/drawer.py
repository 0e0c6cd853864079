"""`drawer` and `drawer-close`: a cabinet in front of the WidowX; open or close its drawer."""

from __future__ import annotations

import numpy as np

from robolearn.envs.base import TaskConfig, TaskInfo
from robolearn.envs.widowx import experts, scenes
from robolearn.envs.widowx.base import WidowXTask

DRAWER_OPEN_SUCCESS_M = 0.08
DRAWER_CLOSED_SUCCESS_M = 0.015


class DrawerTask(WidowXTask):
    """A cabinet in front of the arm; open (or, with `closing`, close) its drawer."""

    closing = False

    def _build(self):
        return scenes.build_drawer_scene()

    def __init__(self, info: TaskInfo, config: TaskConfig):
        super().__init__(info, config)
        self._cabinet = self.model.body("cabinet").id
        self._slide_qadr = self.model.joint("drawer").qposadr[0]
        self._handle = self.model.site("handle").id

    def _place(self, rng: np.random.Generator) -> None:
        dist = rng.uniform(0.40, 0.45)
        bearing = rng.uniform(-0.25, 0.25)
        yaw = bearing + rng.uniform(-0.2, 0.2)
        self.model.body_pos[self._cabinet] = [dist * np.cos(bearing), dist * np.sin(bearing), 0]
        self.model.body_quat[self._cabinet] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.data.qpos[self._slide_qadr] = rng.uniform(0.09, 0.13) if self.closing else 0.0

    def _success(self) -> bool:
        if self.closing:
            return self.drawer_opening_m() <= DRAWER_CLOSED_SUCCESS_M
        return self.drawer_opening_m() >= DRAWER_OPEN_SUCCESS_M

    def _make_expert(self) -> experts.Expert:
        return experts.DrawerCloseExpert() if self.closing else experts.DrawerOpenExpert()

    def reset_free_partners(self) -> tuple[str, ...]:
        """drawer and drawer-close share the cabinet: each continues as the other."""
        return ("drawer-close",) if not self.closing else ("drawer",)

    def _become(self, name: str) -> None:
        from robolearn.envs.registry import task_info

        self.closing = name == "drawer-close"
        self.task_info = task_info(name)
        self.expert = self._make_expert()
        self.expert.reset()

    def layout(self) -> np.ndarray:
        """Cabinet x, y (m) and yaw (rad) in the base frame, [3]."""
        return np.array([*self.model.body_pos[self._cabinet, :2], self.cabinet_yaw()])

    def drawer_opening_m(self) -> float:
        """How far the drawer is pulled out (m)."""
        return float(self.data.qpos[self._slide_qadr])

    def handle_pos(self) -> np.ndarray:
        """Centre of the handle bar, base frame (m) [3]."""
        return self.data.site_xpos[self._handle].copy()

    def cabinet_yaw(self) -> float:
        """Yaw of the cabinet's inward axis (rad); the drawer opens along -that axis."""
        mat = self.data.xmat[self._cabinet].reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))


class DrawerCloseTask(DrawerTask):
    """The drawer starts 9-13 cm open; close it."""

    closing = True
