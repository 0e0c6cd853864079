"""Stores of random episodes, for benchmarks and tests that need data of a given shape fast.

Pixels, proprio and actions are random; reward and success are zero. Nothing here is meant to be
learnable: it exercises the store, the loaders and the training plumbing, not a policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robolearn.core.spec import ACTION_NAMES
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.store import create_store, write_episode


def write_random_store(
    root: str | Path,
    episodes: int,
    steps: int = 50,
    image_size: int = 64,
    task: str = "drawer",
    action_dim: int = 7,
    seed: int = 0,
) -> Path:
    """Create (or append to) a store of `episodes` random episodes of `steps` steps each."""
    root = create_store(root)
    rng = np.random.default_rng(seed)
    meta = EpisodeMeta(
        task,
        "synthetic data",
        "expert",
        5.0,
        "random values",
        ACTION_NAMES[:action_dim],
        policy="synthetic",
    )
    for _ in range(episodes):
        write_episode(
            root,
            Episode(
                image=rng.integers(0, 256, (steps + 1, image_size, image_size, 3), dtype=np.uint8),
                proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
                state=np.zeros((steps + 1, 0)),
                action=rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32),
                reward=np.zeros(steps, np.float32),
                success=np.zeros(steps + 1, bool),
                meta=meta,
            ),
        )
    return root
