"""Loaders: determinism, disjoint and covering shards, window alignment, filters, errors."""

import numpy as np
import pytest

from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.pipeline import TransitionLoader, WindowLoader
from robolearn.data.store import EpisodeError, create_store, write_episode

NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


def _episode(index: int, steps: int, task: str = "drawer", source: str = "expert") -> Episode:
    """Every value encodes (episode index, step) so gathered batches can be checked exactly."""
    t = np.arange(steps + 1)
    image = np.zeros((steps + 1, 8, 8, 3), np.uint8)
    image[..., 0] = index
    image[..., 1] = t[:, None, None]
    proprio = np.stack([np.full(steps + 1, index), t] + [t * 0.0] * 5, 1).astype(np.float32)
    action = np.stack([np.full(steps, index), t[:-1]] + [t[:-1] * 0.0] * 5, 1)
    meta = EpisodeMeta(task, "open", source, 5.0, "test", NAMES)
    return Episode(
        image=image,
        proprio=proprio,
        state=np.zeros((steps + 1, 0)),
        action=(action / 100).astype(np.float32),
        reward=t[1:].astype(np.float32),
        success=t == steps,
        meta=meta,
    )


def _store(path, lengths, start=0, **kwargs):
    create_store(path)
    for i, n in enumerate(lengths):
        write_episode(path, _episode(start + i, n, **kwargs))
    return path


def test_same_seed_same_batches_and_new_permutation_per_epoch(tmp_path):
    root = _store(tmp_path / "s", [10, 7, 12])  # 29 transitions
    a, b = (TransitionLoader(root, batch_size=4, seed=3) for _ in range(2))
    for _ in range(20):
        x, y = next(a), next(b)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    other = next(TransitionLoader(root, batch_size=4, seed=4))
    first = next(TransitionLoader(root, batch_size=29, seed=3))
    assert not np.array_equal(other["step"], first["step"][:4])
    loader = TransitionLoader(root, batch_size=29, seed=3)
    epochs = loader.sample_ids(0, batches=2)  # batch 29 = one epoch per batch
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(29))
    assert not np.array_equal(epochs[0], epochs[1])


def test_shards_are_disjoint_and_together_are_the_global_sequence(tmp_path):
    root = _store(tmp_path / "s", [10, 7, 12])  # 29 transitions
    single = TransitionLoader(root, 9, seed=1).sample_ids(0, batches=3)
    ids, keys = [], []
    for index in range(3):
        loader = TransitionLoader(root, 3, seed=1, process_index=index, process_count=3)
        ids.append(loader.sample_ids(0, batches=3))
        for _ in range(3):
            batch = next(loader)
            keys += list(zip(batch["episode"], batch["step"], strict=True))
    # batch k of the three processes, in process order = batch k of one process with a 3x
    # larger batch, row for row (what makes N processes train exactly like one)
    for k in range(3):
        together = np.concatenate([ids[p][k] for p in range(3)])
        assert np.array_equal(together, single[k])
    assert len(set(np.concatenate([i.ravel() for i in ids]).tolist())) == 27
    assert len(set(keys)) == len(keys) == 27  # the first 27 of epoch 0: all distinct


def test_transition_contents_align(tmp_path):
    root = _store(tmp_path / "s", [5, 6])
    batch = next(TransitionLoader(root, 11, seed=0, with_next=True))
    assert batch["image"].shape == (11, 8, 8, 3) and batch["action"].shape == (11, 7)
    ep, t = batch["episode"], batch["step"]
    assert np.array_equal(batch["image"][:, 0, 0, 0], ep)
    assert np.array_equal(batch["image"][:, 0, 0, 1], t)
    assert np.array_equal(batch["next_image"][:, 0, 0, 1], t + 1)
    assert np.allclose(batch["action"][:, :2] * 100, np.stack([ep, t], 1))
    assert np.array_equal(batch["reward"], t + 1)
    assert np.array_equal(batch["success"], t + 1 == np.array([5, 6])[ep])


def test_window_frames_and_actions_align(tmp_path):
    root = _store(tmp_path / "s", [9, 3, 6])  # the 3-step episode is too short for T = 4
    loader = WindowLoader(root, 4, seed=2, context=4)
    assert loader.num_samples == 6 + 0 + 3
    for _ in range(5):
        batch = next(loader)
        assert batch["image"].shape == (4, 5, 8, 8, 3) and batch["action"].shape == (4, 4, 7)
        assert batch["proprio"].shape == (4, 5, 7) and batch["success"].shape == (4, 5)
        ep, t = batch["episode"], batch["step"]
        frames = t[:, None] + np.arange(5)
        assert np.array_equal(batch["image"][:, :, 0, 0, 1], frames)
        assert np.array_equal(batch["image"][:, :, 0, 0, 0], np.repeat(ep[:, None], 5, 1))
        assert np.array_equal(batch["proprio"][:, :, 1], frames)
        assert np.allclose(batch["action"][:, :, 1] * 100, frames[:, :4])
        assert np.array_equal(batch["reward"], frames[:, 1:])
        assert np.all(frames[:, -1] <= np.array([9, 3, 6])[ep])


def test_filters_by_task_and_source(tmp_path):
    root = _store(tmp_path / "s", [4, 4], task="drawer")
    _store(root, [5], start=2, task="push", source="random")
    assert len(TransitionLoader(root, 2, tasks="push").episodes) == 1
    assert len(TransitionLoader(root, 2, sources=["expert"]).episodes) == 2
    with pytest.raises(EpisodeError, match="no episodes match task lift"):
        TransitionLoader(root, 2, tasks="lift")


def test_missing_and_empty_dataset_dirs_name_the_path(tmp_path):
    with pytest.raises(EpisodeError, match=f"{tmp_path / 'nope'}: no such dataset directory"):
        TransitionLoader(tmp_path / "nope", 2)
    create_store(tmp_path / "empty")
    with pytest.raises(EpisodeError, match=f"{tmp_path / 'empty'}: dataset holds no complete"):
        WindowLoader(tmp_path / "empty", 2)
    (tmp_path / "plain").mkdir()
    with pytest.raises(EpisodeError, match="not an episode store"):
        TransitionLoader(tmp_path / "plain", 2)


def test_malformed_episode_is_named(tmp_path):
    root = _store(tmp_path / "s", [4])
    bad = root / "episodes" / "ep-000001.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(EpisodeError, match="ep-000001.npz"):
        TransitionLoader(root, 2)
