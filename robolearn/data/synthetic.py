"""Stores of random episodes, for benchmarks and tests that need data of a given shape fast.

Pixels, proprio and actions are random; reward and success are zero unless `successes` asks for
episodes that succeed. Nothing here is meant to be learnable: it exercises the store, the loaders
and the training plumbing, not a policy.
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
    successes: bool = False,
) -> Path:
    """Create (or append to) a store of `episodes` random episodes of `steps` steps each.

    successes: even-numbered episodes succeed from observation steps // 2 on (success flags and
    reward), odd ones fail, so there are both classes for a success classifier.
    """
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
    for e in range(episodes):
        success = np.zeros(steps + 1, bool)
        if successes and e % 2 == 0:
            success[steps // 2 :] = True
        write_episode(
            root,
            Episode(
                image=rng.integers(0, 256, (steps + 1, image_size, image_size, 3), dtype=np.uint8),
                proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
                state=np.zeros((steps + 1, 0)),
                action=rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32),
                reward=success[1:].astype(np.float32),
                success=success,
                meta=meta,
            ),
        )
    return root
