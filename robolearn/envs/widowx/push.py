"""`push`: push a block onto a target disc on the table in front of the WidowX."""

from __future__ import annotations

import numpy as np

from robolearn.envs.base import TaskConfig, TaskInfo
from robolearn.envs.widowx import experts, scenes
from robolearn.envs.widowx.base import WidowXTask

PUSH_SUCCESS_M = 0.03


class PushTask(WidowXTask):
    """Push a block onto a target disc on the table."""

    def _build(self):
        return scenes.build_push_scene()

    def __init__(self, info: TaskInfo, config: TaskConfig):
        super().__init__(info, config)
        self._block_qadr = self.model.joint("block").qposadr[0]
        self._block = self.model.body("block").id
        self._target = self.model.body("target").id

    def _place(self, rng: np.random.Generator) -> None:
        block_xy = np.array([rng.uniform(0.22, 0.32), rng.uniform(-0.12, 0.12)])
        angle = rng.uniform(-1.2, 1.2)
        target_xy = block_xy + rng.uniform(0.10, 0.14) * np.array([np.cos(angle), np.sin(angle)])
        yaw = rng.uniform(-np.pi, np.pi)
        qa = self._block_qadr
        self.data.qpos[qa : qa + 3] = [*block_xy, scenes.BLOCK_HALF_M]
        self.data.qpos[qa + 3 : qa + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.model.body_pos[self._target] = [*target_xy, 0.0]

    def _success(self) -> bool:
        return bool(np.linalg.norm(self.block_pos()[:2] - self.target_pos()[:2]) < PUSH_SUCCESS_M)

    def _make_expert(self) -> experts.Expert:
        return experts.PushExpert()

    def layout(self) -> np.ndarray:
        """Target disc centre x, y (m) in the base frame, [2]; the block is in qpos."""
        return self.model.body_pos[self._target, :2].copy()

    def block_pos(self) -> np.ndarray:
        """Block centre, base frame (m) [3]."""
        return self.data.xpos[self._block].copy()

    def target_pos(self) -> np.ndarray:
        """Target disc centre on the table, base frame (m) [3]."""
        return self.model.body_pos[self._target].copy()
