"""Training loaders over episode stores: single transitions (policies) and frame windows (models).

    loader = TransitionLoader(["data/drawer"], batch_size=256, seed=0)
    batch = next(loader)          # dict of numpy arrays, shapes below
    loader.refresh()              # pick up episodes appended since (they join at the next epoch)

Batches (B = batch size, T = window length in actions, H/W image side, P proprio, A action):

    TransitionLoader              WindowLoader (T = context, default 4: T+1 frames, T actions)
    image    uint8   [B, H, W, 3]      image    uint8   [B, T+1, H, W, 3]
    proprio  float32 [B, P]            proprio  float32 [B, T+1, P]
    action   float32 [B, A]            action   float32 [B, T, A]   action[:, k] leads from
    reward   float32 [B]               reward   float32 [B, T]      frame k to frame k+1
    success  bool    [B]  (next obs)   success  bool    [B, T+1]
    episode  int32   [B]               episode  int32   [B]         index into loader.episodes
    step     int32   [B]               step     int32   [B]         first frame's step
                                                                    (< 0 with pad_start=True)
    next_image, next_proprio  (only with with_next=True)

Sampling: every epoch draws a fresh permutation of all samples from (seed, epoch); a batch never
spans two epochs and the last partial batch is dropped; epochs repeat forever. The same seed gives
the same batch sequence. Sharding: every process computes the same permutation, trims it to a
multiple of `process_count` and takes every `process_count`-th sample from `process_index`, so
shards are disjoint, together cover the trimmed epoch, and every process gets as many batches.

Memory: every matching episode is decoded once and kept in RAM as one array per key: about
H*W*3 bytes per frame (12 kB at 64x64; 50 episodes of 51 frames ~ 31 MB), plus
(P + A + 2) * 4 bytes per step. `refresh()` decodes only episodes it has not seen.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robolearn.data.episode import Episode
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


class _Loader(abc.ABC):
    """Shared shuffling, sharding and epoch logic; subclasses define the samples and gather."""

    def __init__(
        self,
        roots: str | Path | Sequence[str | Path],
        batch_size: int,
        seed: int = 0,
        tasks: str | Sequence[str] | None = None,
        sources: str | Sequence[str] | None = None,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        self.cache = EpisodeCache(roots, tasks, sources)
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        self.epoch = -1
        self._order = np.zeros(0, np.int64)
        self._pos = 0
        self._samples = self._make_samples()
        if self.batches_per_epoch < 1:
            raise EpisodeError(
                f"{', '.join(map(str, self.cache.roots))}: {self.num_samples} samples are too few "
                f"for batch size {batch_size} on {process_count} process(es)"
            )

    @property
    def episodes(self) -> list[Path]:
        """Paths of the cached episodes; batch["episode"] indexes this list."""
        return self.cache.paths

    @property
    def num_samples(self) -> int:
        """Samples in one epoch (before trimming to whole batches)."""
        return len(self._samples[0])

    @property
    def batches_per_epoch(self) -> int:
        """Batches each process gets per epoch (drop-last)."""
        return self.num_samples // self.process_count // self.batch_size

    def refresh(self) -> int:
        """Load episodes appended since; they are sampled from the next epoch on."""
        added = self.cache.refresh()
        if added:
            self._samples = self._make_samples()
        return added

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This process's sample indices of `epoch`, in order, int64 [N // process_count]."""
        n = self.num_samples
        perm = np.random.default_rng([self.seed, epoch]).permutation(n)
        perm = perm[: n - n % self.process_count]
        return perm[self.process_index :: self.process_count]

    def __iter__(self):
        return self

    def skip(self, batches: int) -> None:
        """Advance by `batches` without gathering them (resuming a run where it stopped)."""
        for _ in range(batches):
            self._advance()

    def _advance(self) -> np.ndarray:
        if self._pos + self.batch_size > len(self._order):
            self.epoch += 1
            self._order = self.epoch_order(self.epoch)
            self._pos = 0
        self._pos += self.batch_size
        return self._order[self._pos - self.batch_size : self._pos]

    def __next__(self) -> dict[str, np.ndarray]:
        chosen = self._advance()
        episode, step = self._samples[0][chosen], self._samples[1][chosen]
        batch = self._gather(episode, step)
        batch["episode"] = episode.astype(np.int32)
        batch["step"] = step.astype(np.int32)
        return batch

    def _make_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(episode index, first step) of every sample, int64 [N] each."""
        counts = np.maximum(self.cache.num_steps - self._span() + 1, 0)
        episode = np.repeat(np.arange(len(counts)), counts)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
        step = np.arange(counts.sum()) - np.repeat(first, counts)
        return episode.astype(np.int64), step.astype(np.int64)

    @abc.abstractmethod
    def _span(self) -> int:
        """Actions one sample covers (1 for a transition, T for a window)."""

    @abc.abstractmethod
    def _gather(self, episode: np.ndarray, step: np.ndarray) -> dict[str, np.ndarray]:
        """The batch arrays for samples (episode index [B], first step [B])."""


class TransitionLoader(_Loader):
    """Batches of single transitions (obs_t, action_t, reward_t, success_{t+1}); see module doc.

    with_next=True adds next_image [B, H, W, 3] and next_proprio [B, P] (obs_{t+1}).
    """

    def __init__(self, roots, batch_size: int, seed: int = 0, *, with_next: bool = False, **kwargs):
        self.with_next = with_next
        super().__init__(roots, batch_size, seed, **kwargs)

    def _span(self) -> int:
        return 1

    def _gather(self, episode, step):
        a = self.cache.arrays
        frame = self.cache.frame_start[episode] + step
        act = self.cache.step_start[episode] + step
        batch = {
            "image": a["image"][frame],
            "proprio": a["proprio"][frame],
            "action": a["action"][act],
            "reward": a["reward"][act],
            "success": a["success"][frame + 1],
        }
        if self.with_next:
            batch["next_image"] = a["image"][frame + 1]
            batch["next_proprio"] = a["proprio"][frame + 1]
        return batch


class WindowLoader(_Loader):
    """Batches of T+1 consecutive frames and the T actions between them; see the module doc.

    context: T, the number of actions (and of context frames before the target frame).
    Episodes shorter than T steps contribute no samples.
    pad_start: also yield the T-1 windows that begin before an episode's first frame, padded
        the way a rollout from a single first frame is: frames and proprio before step 0 repeat
        step 0, actions before step 0 are zeros (reward 0). Then every frame after the first is
        a target once, and `step` can be negative (the first, padded, frame's step).
    """

    def __init__(
        self,
        roots,
        batch_size: int,
        seed: int = 0,
        *,
        context: int = 4,
        pad_start: bool = False,
        **kwargs,
    ):
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.context = context
        self.pad_start = pad_start
        super().__init__(roots, batch_size, seed, **kwargs)

    def _span(self) -> int:
        return 1 if self.pad_start else self.context

    def _make_samples(self) -> tuple[np.ndarray, np.ndarray]:
        episode, step = super()._make_samples()
        if self.pad_start:
            step = step - (self.context - 1)
        return episode, step

    def _gather(self, episode, step):
        a = self.cache.arrays
        offsets = np.arange(self.context + 1)
        rel = step[:, None] + offsets  # frame index within the episode, < 0 when padded
        frame = self.cache.frame_start[episode][:, None] + np.maximum(rel, 0)
        act = self.cache.step_start[episode][:, None] + np.maximum(rel[:, :-1], 0)
        before = rel[:, :-1] < 0
        return {
            "image": a["image"][frame],
            "proprio": a["proprio"][frame],
            "action": np.where(before[..., None], 0.0, a["action"][act]).astype(np.float32),
            "reward": np.where(before, 0.0, a["reward"][act]).astype(np.float32),
            "success": a["success"][frame],
        }


def _as_set(value: str | Sequence[str] | None) -> set[str]:
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def _empty_message(roots: list[Path], tasks: set[str], sources: set[str]) -> str:
    where = ", ".join(map(str, roots))
    if not any(list_episodes(r) for r in roots):
        return f"{where}: dataset holds no complete episodes; record some with `robolearn collect`"
    filters = []
    if tasks:
        filters.append(f"task {', '.join(sorted(tasks))}")
    if sources:
        filters.append(f"source {', '.join(sorted(sources))}")
    return f"{where}: no episodes match {' and '.join(filters)}"
