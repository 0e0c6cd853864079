"""WindowLoader(pad_start=True): windows that start before an episode's first frame, padded the
way an imagined rollout from a single first frame is."""

import numpy as np
import pytest

from robolearn.data.pipeline import WindowLoader
from robolearn.data.store import list_episodes, read_episode
from robolearn.data.synthetic import write_random_store

EPISODES, STEPS, T = 3, 6, 4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pad") / "data"
    return write_random_store(root, EPISODES, STEPS, image_size=8, seed=3)


@pytest.fixture(scope="module")
def epoch(store):
    """One whole epoch as a single batch, and the episodes as stored."""
    loader = WindowLoader(store, batch_size=EPISODES * STEPS, seed=0, context=T, pad_start=True)
    episodes = [read_episode(p) for p in loader.episodes]
    return loader, next(loader), episodes


def test_one_sample_per_step(epoch, store):
    """With padding every step is a sample (T-1 more per episode than without)."""
    loader, batch, _ = epoch
    assert loader.num_samples == EPISODES * STEPS
    assert batch["image"].shape == (EPISODES * STEPS, T + 1, 8, 8, 3)
    assert batch["action"].shape == (EPISODES * STEPS, T, 7)
    assert batch["step"].min() == -(T - 1) and batch["step"].max() == STEPS - T
    plain = WindowLoader(store, batch_size=1, context=T)
    assert plain.num_samples == EPISODES * (STEPS - T + 1)
    assert len(list_episodes(store)) == EPISODES


def test_the_first_window_repeats_frame_zero_with_zero_actions(epoch):
    """step = -(T-1): all T context frames (and proprio) are frame 0, the target is frame 1, the
    T-1 padded actions (and rewards) are 0 and the last is the episode's first action."""
    _, batch, episodes = epoch
    for e, ep in enumerate(episodes):
        (row,) = np.flatnonzero((batch["episode"] == e) & (batch["step"] == -(T - 1)))
        image, action = batch["image"][row], batch["action"][row]
        for k in range(T):
            np.testing.assert_array_equal(image[k], ep.image[0])
            np.testing.assert_array_equal(batch["proprio"][row, k], ep.proprio[0])
        np.testing.assert_array_equal(image[T], ep.image[1])
        np.testing.assert_array_equal(action[: T - 1], 0.0)
        np.testing.assert_array_equal(action[T - 1], ep.action[0])
        np.testing.assert_array_equal(batch["reward"][row, : T - 1], 0.0)
        assert np.abs(ep.action[0]).sum() > 0  # the check above is not trivially zero


def test_unpadded_windows_are_plain_slices(epoch):
    """A window that starts at step >= 0 is the episode's frames and actions, unpadded."""
    _, batch, episodes = epoch
    for row in np.flatnonzero(batch["step"] >= 0):
        ep, s = episodes[batch["episode"][row]], batch["step"][row]
        np.testing.assert_array_equal(batch["image"][row], ep.image[s : s + T + 1])
        np.testing.assert_array_equal(batch["action"][row], ep.action[s : s + T])


def test_every_frame_after_the_first_is_a_target_once_per_epoch(epoch):
    """Targets (frame step + T) cover frames 1..STEPS of every episode exactly once."""
    _, batch, episodes = epoch
    targets = sorted(zip(batch["episode"].tolist(), (batch["step"] + T).tolist(), strict=True))
    assert targets == [(e, f) for e in range(EPISODES) for f in range(1, STEPS + 1)]
    for row, (e, f) in enumerate(zip(batch["episode"], batch["step"] + T, strict=True)):
        np.testing.assert_array_equal(batch["image"][row, T], episodes[e].image[f])
