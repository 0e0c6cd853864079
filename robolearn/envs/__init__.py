"""Tasks: the WidowX MuJoCo scenes, and Meta-World and robosuite behind one interface.

import robolearn.envs as envs
task = envs.make("drawer", image_size=64)
obs, info = task.reset(seed=0)
obs, reward, terminated, truncated, info = task.step(task.expert_action())
"""

import os

# Must precede any import of mujoco: it picks its GL backend at import time.
os.environ.setdefault("MUJOCO_GL", "egl")

from robolearn.envs.base import ACTION_DIM, Task, TaskConfig, TaskInfo  # noqa: E402
from robolearn.envs.registry import make, reset_observations, task_info, task_names  # noqa: E402

__all__ = [
    "ACTION_DIM",
    "Task",
    "TaskConfig",
    "TaskInfo",
    "make",
    "reset_observations",
    "task_info",
    "task_names",
]
