"""EpisodeCache: every matching episode of one or more stores decoded into RAM, one array per key.

Used where frames are addressed by index across the whole data (reward training and its
calibration, world-model evaluation). Training batches come from robolearn.data.pipeline, which
also streams data larger than memory. Memory: about H*W*3 bytes per frame (12 kB at 64x64) plus
(P + A + 2) * 4 bytes per step. `refresh()` decodes only episodes it has not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robolearn.data.episode import Episode
from robolearn.data.pipeline import as_set as _as_set
from robolearn.data.pipeline import empty_message as _empty_message
from robolearn.data.store import EpisodeError, list_episodes, open_store, read_episode, read_meta


class EpisodeCache:
    """Decoded episodes of one or more stores, filtered by task and source, concatenated per key.

    Frame arrays (image, proprio, success) hold T+1 rows per episode; step arrays (action,
    reward) T rows. `frame_start[e]` and `step_start[e]` locate episode e in them.
    """

    def __init__(
        self,
        roots: str | Path | Sequence[str | Path],
        tasks: str | Sequence[str] | None = None,
        sources: str | Sequence[str] | None = None,
    ):
        self.roots = [Path(r) for r in ([roots] if isinstance(roots, (str, Path)) else roots)]
        if not self.roots:
            raise EpisodeError("no dataset directory given")
        self.tasks = _as_set(tasks)
        self.sources = _as_set(sources)
        self.paths: list[Path] = []
        self.meta: list = []
        self._seen: set[Path] = set()
        self._pending: list[tuple[Path, Episode]] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.num_steps = np.zeros(0, np.int64)
        self.frame_start = np.zeros(0, np.int64)
        self.step_start = np.zeros(0, np.int64)
        for root in self.roots:
            open_store(root)
        self.refresh()
        if not self.paths:
            raise EpisodeError(_empty_message(self.roots, self.tasks, self.sources))

    def refresh(self) -> int:
        """Decode episodes appended to the stores since the last call; returns how many."""
        new: list[tuple[Path, Episode]] = []
        for root in self.roots:
            for path in list_episodes(root):
                if path in self._seen:
                    continue
                self._seen.add(path)
                meta = read_meta(path)
                if self.tasks and meta.task not in self.tasks:
                    continue
                if self.sources and meta.source not in self.sources:
                    continue
                new.append((path, read_episode(path)))
        if new:
            self._append(new)
        return len(new)

    def _append(self, new: list[tuple[Path, Episode]]) -> None:
        episodes = [ep for _, ep in new]
        first = self.arrays or {k: getattr(episodes[0], k) for k in ("image", "proprio", "action")}
        for path, ep in new:
            for key in ("image", "proprio", "action"):
                if getattr(ep, key).shape[1:] != first[key].shape[1:]:
                    raise EpisodeError(
                        f"{path}: {key} shape {getattr(ep, key).shape[1:]} differs from the other "
                        f"episodes' {first[key].shape[1:]}; load stores of one size together"
                    )
        parts = {
            key: [self.arrays[key]] if key in self.arrays else []
            for key in ("image", "proprio", "success", "action", "reward")
        }
        for ep in episodes:
            for key in parts:
                parts[key].append(getattr(ep, key))
        self.arrays = {key: np.concatenate(value) for key, value in parts.items()}
        lengths = np.array([ep.num_steps for ep in episodes], np.int64)
        self.num_steps = np.concatenate([self.num_steps, lengths])
        self.step_start = np.concatenate([[0], np.cumsum(self.num_steps)[:-1]]).astype(np.int64)
        self.frame_start = self.step_start + np.arange(len(self.num_steps))
        self.paths += [p for p, _ in new]
        self.meta += [ep.meta for ep in episodes]

    @property
    def task_names(self) -> list[str]:
        """Sorted task names of the cached episodes."""
        return sorted({m.task for m in self.meta})

    def proprio_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (floored at 1e-6) of proprio over every cached frame, float32 [P] each."""
        proprio = self.arrays["proprio"].astype(np.float64)
        return proprio.mean(0).astype(np.float32), np.maximum(proprio.std(0), 1e-6).astype(
            np.float32
        )
