"""Record an episode step by step from a task (or robot) loop into the store.

    recorder = EpisodeRecorder(store_dir, meta)      # claims ep-N.partial on disk
    recorder.add_first(obs, success)
    recorder.add_step(action, reward, obs, success)  # once per step
    path = recorder.finish()                         # atomically becomes ep-N.npz

A process that dies before `finish` leaves only ep-N.partial, which readers ignore and
`robolearn data validate` reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.store import claim_slot, commit_slot


class EpisodeRecorder:
    """Buffers one episode in memory and commits it to the store when finished."""

    def __init__(self, root: str | Path, meta: EpisodeMeta):
        self.meta = meta
        self.slot = claim_slot(root)
        self.index = int(self.slot.stem.split("-")[1])
        self._obs: dict[str, list[np.ndarray]] = {"image": [], "proprio": [], "state": []}
        self._action: list[np.ndarray] = []
        self._reward: list[float] = []
        self._success: list[bool] = []

    def add_first(self, obs: dict[str, np.ndarray], success: bool = False) -> None:
        """The observation after reset."""
        if self._success:
            raise RuntimeError("add_first called twice for one episode")
        self._add_obs(obs, success)

    def add_step(
        self, action: np.ndarray, reward: float, obs: dict[str, np.ndarray], success: bool
    ) -> None:
        """One step: the action taken, the reward after it, the next observation and success."""
        if not self._success:
            raise RuntimeError("add_first must come before add_step")
        self._action.append(np.asarray(action, dtype=np.float32))
        self._reward.append(float(reward))
        self._add_obs(obs, success)

    def finish(self) -> Path:
        """Commit the episode; returns the path of the complete episode file."""
        state = self._obs["state"]
        episode = Episode(
            image=np.stack(self._obs["image"]).astype(np.uint8),
            proprio=np.stack(self._obs["proprio"]).astype(np.float32),
            state=np.stack(state).astype(np.float64)
            if state[0] is not None
            else np.zeros((len(state), 0)),
            action=np.stack(self._action) if self._action else np.zeros((0, 0), np.float32),
            reward=np.asarray(self._reward, dtype=np.float32),
            success=np.asarray(self._success, dtype=bool),
            meta=self.meta,
        )
        return commit_slot(self.slot, episode)

    def abort(self) -> None:
        """Drop the episode and its claimed slot (e.g. a reset failed)."""
        self.slot.unlink(missing_ok=True)

    def _add_obs(self, obs: dict[str, np.ndarray], success: bool) -> None:
        self._obs["image"].append(obs["image"])
        self._obs["proprio"].append(obs["proprio"])
        self._obs["state"].append(obs.get("state"))
        self._success.append(bool(success))
