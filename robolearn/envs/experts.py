"""Scripted data policies: the task's expert, a noisy expert, and uniform random actions.

World4RL trains its world model on a mix of expert, policy and random-action data; these are the
sources the collectors draw from. Contract: `policy(obs) -> action float32 [7]`; `reset()` at the
start of every episode (the task resets its own expert phase on `Task.reset`).
"""

from __future__ import annotations

import numpy as np

from robolearn.envs.base import ACTION_DIM, Task

MODES = ("expert", "noisy", "random")
DEFAULT_NOISE_STD = 0.3


class ScriptedPolicy:
    """Acts in `task` as its scripted expert, a noisy expert, or uniformly at random.

    noisy: expert action + N(0, noise_std^2) per dimension, clipped to [-1, 1]; the gripper
    dimension gets the same noise, so a noisy expert sometimes drops what it holds (as a weak
    policy would). random: uniform in [-1, 1]^7, independent per step.
    """

    def __init__(
        self, task: Task, mode: str = "expert", noise_std: float = DEFAULT_NOISE_STD, seed: int = 0
    ):
        if mode not in MODES:
            raise ValueError(f"policy mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.task = task
        self.mode = mode
        self.noise_std = float(noise_std)
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the policy's own noise for a new episode (None keeps the running stream)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.mode == "random":
            return self._rng.uniform(-1.0, 1.0, ACTION_DIM).astype(np.float32)
        action = np.asarray(self.task.expert_action(), dtype=np.float64)
        if self.mode == "noisy":
            action = action + self._rng.normal(0.0, self.noise_std, ACTION_DIM)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
