"""Deployment episodes into the episode store: the writer the robot bridge is handed.

The bridge (robolearn.hardware) never imports robolearn.data. It records each episode in memory and,
once the episode ends, hands its contents to an episode writer on its own recording thread
(robolearn.hardware.recording describes the fields). `store_writer(DIR)` is that writer for an
episode store; robolearn.runs.deploy builds it from the bridge node's `record_dir` parameter and
the simulated loop's `--record DIR`.

A deployment episode is stored like any collected episode (robolearn.data.store: source "robot",
fps = the policy rate, reward 0), finished atomically: a crash loses at most the episode being
written. The store is created on the first write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.data.episode import EpisodeMeta
from robolearn.data.recorder import EpisodeRecorder
from robolearn.data.store import create_store


def write_deployment_episode(
    store: str | Path,
    meta: dict[str, Any],
    observations: Sequence[dict[str, np.ndarray]],
    actions: Sequence[np.ndarray],
    success: Sequence[bool],
) -> str:
    """Commit one episode to the store at `store` (created if needed); the episode file's path.

    meta: EpisodeMeta's fields. observations [T+1]: image uint8 [S, S, 3], proprio float32 [7],
    state float64 [12]. actions [T]: float32 [7]. success [T+1]. Nothing is left behind on failure.
    """
    if len(observations) != len(actions) + 1 or len(success) != len(observations):
        raise ValueError(
            f"a deployment episode needs T+1 observations and success flags for T actions, got "
            f"{len(observations)}, {len(success)} for {len(actions)}"
        )
    create_store(store)
    recorder = EpisodeRecorder(store, EpisodeMeta(**meta))
    try:
        recorder.add_first(observations[0], success[0])
        for action, obs, done in zip(actions, observations[1:], success[1:], strict=True):
            recorder.add_step(action, 0.0, obs, done)
        return str(recorder.finish())
    except BaseException:
        recorder.abort()
        raise


def store_writer(store: str | Path) -> Callable[..., str]:
    """The episode writer for the store at `store`: what robolearn.hardware's Bridge is handed
    (`writer=`) and what robolearn.runs.deploy builds from a record directory."""
    return functools.partial(write_deployment_episode, Path(store))
