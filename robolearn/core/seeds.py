"""Reset seeds of simulator episodes, in streams that never overlap."""

from __future__ import annotations

import numpy as np

SEED_STREAMS = ("eval", "collect")


def episode_seed(seed: int, episode: int, stream: str = "eval") -> int:
    """The reset seed of episode `episode` of a run with base seed `seed`.

    Evaluation seeds are even and collection seeds odd, so the initial states a policy is tested
    on never coincide with those its training data was recorded from, whatever --seed each used.
    """
    offset = SEED_STREAMS.index(stream)
    hashed = int(np.random.SeedSequence([seed, episode, offset]).generate_state(1)[0])
    return (hashed >> 1 << 1) | offset
