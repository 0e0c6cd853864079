"""One episode in memory: observations, actions, rewards, success, and what they mean.

Shapes (T = number of steps; observations include the one after the last action):

    image    uint8   [T+1, H, W, 3]
    proprio  float32 [T+1, P]        end-effector xyz (m), rpy (rad), gripper opening [0, 1]
    state    float64 [T+1, S]        simulator qpos+qvel; S = 0 where there is no simulator
    action   float32 [T, A]          normalized to [-1, 1]; meta.action_meaning gives the units
    reward   float32 [T]             reward after each action
    success  bool    [T+1]           task success at each observation
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import numpy as np

SOURCES = ("expert", "noisy", "random", "policy", "robot", "imported")
ARRAY_KEYS = ("image", "proprio", "state", "action", "reward", "success")


@dataclasses.dataclass(frozen=True)
class EpisodeMeta:
    """What an episode is: task, instruction, where it came from, and how to read its actions.

    source: expert | noisy | random | policy | robot | imported.
    policy: what acted (e.g. "expert", "noisy(0.3)", a checkpoint path, "rlds:bridge_debug").
    seed: the reset seed in simulation (None for robot or imported data).
    layout: the task's placement of fixed bodies (Task.layout()), to rebuild the initial scene.
    """

    task: str
    instruction: str
    source: str
    fps: float
    action_meaning: str
    action_names: tuple[str, ...]
    policy: str = ""
    seed: int | None = None
    layout: tuple[float, ...] = ()
    created: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(
                f"episode source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            )
        if not self.created:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            object.__setattr__(self, "created", now)


@dataclasses.dataclass
class Episode:
    """Arrays of one episode (see the module docstring for shapes) and its EpisodeMeta."""

    image: np.ndarray
    proprio: np.ndarray
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    meta: EpisodeMeta

    @property
    def num_steps(self) -> int:
        """T, the number of actions."""
        return int(self.action.shape[0])

    @property
    def succeeded(self) -> bool:
        """Whether the task was solved at any observation of the episode."""
        return bool(self.success.any())

    def check(self) -> None:
        """Raise ValueError naming the first array whose shape or dtype breaks the contract."""
        t = self.num_steps
        expect = {
            "image": (np.uint8, (t + 1, None, None, 3)),
            "proprio": (np.float32, (t + 1, None)),
            "state": (np.float64, (t + 1, None)),
            "action": (np.float32, (t, len(self.meta.action_names))),
            "reward": (np.float32, (t,)),
            "success": (np.bool_, (t + 1,)),
        }
        if t < 1:
            raise ValueError("action: an episode needs at least one step")
        for key, (dtype, shape) in expect.items():
            arr = getattr(self, key)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
                got = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
                raise ValueError(f"{key}: expected dtype {np.dtype(dtype).name}, got {got}")
            if arr.ndim != len(shape) or any(
                s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)
            ):
                want = tuple("?" if s is None else s for s in shape)
                raise ValueError(f"{key}: expected shape {want}, got {arr.shape}")
        for key in ("proprio", "state", "action", "reward"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise ValueError(f"{key}: contains NaN or inf")
