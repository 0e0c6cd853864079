"""Frames by global row (EpisodeData.frames, FrameImages) and the balanced FrameLoader: the rows
are the decoded episodes' in RAM and streamed, batches are half positives, deterministic by seed,
the same in RAM and streamed, and continue exactly after a restore."""

import numpy as np
import pytest

from robolearn.data.pipeline import EpisodeData, FrameImages, FrameLoader, PipelineConfig
from robolearn.data.store import EpisodeError, read_episode
from robolearn.data.synthetic import write_random_store

RAM = PipelineConfig(mode="memory", threads=0)
STREAM = PipelineConfig(mode="stream", threads=2)
STREAM_ALL = PipelineConfig(mode="stream", threads=2, memory_mb=0.001)  # success read too


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames") / "data"
    write_random_store(root, 4, steps=6, image_size=8, seed=1, successes=True)
    write_random_store(root, 2, steps=3, image_size=8, seed=2, task="push", successes=True)
    return root


@pytest.fixture(scope="module")
def datas(store):
    return {
        "ram": EpisodeData(store, pipeline=RAM),
        "stream": EpisodeData(store, pipeline=STREAM, progress=False),
        "stream-all": EpisodeData(store, pipeline=STREAM_ALL, progress=False),
    }


@pytest.mark.parametrize("mode", ["ram", "stream", "stream-all"])
def test_frames_are_the_decoded_episodes_rows(datas, mode):
    data = datas[mode]
    episodes = [read_episode(p) for p in data.paths]
    assert data.num_frames == sum(len(ep.image) for ep in episodes) == 4 * 7 + 2 * 4
    index = np.random.default_rng(0).integers(0, data.num_frames, 40)
    index[:3] = [data.num_frames - 1, 0, 0]  # the last row, a repeated row
    for key in ("image", "proprio", "success"):
        want = np.concatenate([getattr(ep, key) for ep in episodes])[index]
        got = data.frames(key, index)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=key)
    # episode e's frame t is row frame_start[e] + t
    np.testing.assert_array_equal(
        data.frames("image", data.frame_start[[5]] + 2), episodes[5].image[2:3]
    )
    with pytest.raises(IndexError, match="outside"):
        data.frames("image", np.array([data.num_frames]))
    with pytest.raises(ValueError, match="not 'action'"):
        data.frames("action", np.array([0]))


def test_frame_images_append_extra_frames_after_the_data(datas):
    data = datas["stream"]
    extra = np.full((3, 8, 8, 3), 7, np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None]
    images = FrameImages(data, extra)
    n = data.num_frames
    assert len(images) == n + 3
    got = images[np.array([n + 2, 1, n, 1])]
    np.testing.assert_array_equal(got[0], extra[2])
    np.testing.assert_array_equal(got[2], extra[0])
    np.testing.assert_array_equal(got[[1, 3]], data.frames("image", np.array([1, 1])))
    with pytest.raises(ValueError, match="uint8"):
        FrameImages(data, np.zeros((1, 4, 4, 3), np.uint8))


def _labelled(data):
    """Every frame labelled by its success flag, task 0/1 by episode task."""
    label = data.frames("success", np.arange(data.num_frames))
    episode = np.repeat(np.arange(len(data.paths)), data.num_steps + 1)
    task = np.array([data.meta[e].task == "push" for e in episode], np.int32)
    return np.arange(data.num_frames), label, task


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _same(xs, ys):
    for x, y in zip(xs, ys, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_frame_batches_are_balanced_deterministic_and_read_the_frames(datas):
    data = datas["ram"]
    frame, label, task = _labelled(data)
    assert 0 < label.sum() < len(label)

    def make(seed, source=data, batch_size=8):
        return FrameLoader(source, frame, label, batch_size, seed, columns={"task": task})

    batches = _take(make(3), 10)
    for batch in batches:
        assert batch["image"].shape == (8, 8, 8, 3) and batch["label"].sum() == 4
        np.testing.assert_array_equal(batch["label"], label[batch["frame"]])
        np.testing.assert_array_equal(batch["task"], task[batch["frame"]])
        np.testing.assert_array_equal(batch["image"], data.frames("image", batch["frame"]))
    # each class is shuffled epoch by epoch: the first P positives drawn are every positive once
    positives = np.concatenate([b["frame"][b["label"]] for b in batches])
    pos = np.flatnonzero(label)
    assert sorted(positives[: len(pos)]) == pos.tolist()
    _same(batches, _take(make(3), 10))
    assert any(
        (a["frame"] != b["frame"]).any() for a, b in zip(batches, _take(make(4), 10), strict=True)
    )
    # odd batch sizes alternate which class has the extra frame
    odd = _take(make(3, batch_size=5), 4)
    assert [int(b["label"].sum()) for b in odd] == [3, 2, 3, 2]
    # streamed frames give the same batches
    for mode in ("stream", "stream-all"):
        _same(batches, _take(make(3, datas[mode]), 10))


def test_frame_batches_of_two_processes_are_the_halves_of_one_processs(datas):
    data = datas["ram"]
    frame, label, task = _labelled(data)
    single = _take(FrameLoader(data, frame, label, 8, 2, columns={"task": task}), 3)
    halves = [
        _take(FrameLoader(data, frame, label, 4, 2, process_index=i, process_count=2), 3)
        for i in range(2)
    ]
    for k in range(3):
        together = np.concatenate([halves[0][k]["frame"], halves[1][k]["frame"]])
        np.testing.assert_array_equal(together, single[k]["frame"])
        assert halves[0][k]["label"].sum() == halves[1][k]["label"].sum() == 2


def test_frame_loader_state_continues_exactly(datas):
    data = datas["stream"]
    frame, label, task = _labelled(data)
    whole = FrameLoader(data, frame, label, 6, 1, columns={"task": task})
    expected = _take(whole, 7)
    first = FrameLoader(data, frame, label, 6, 1, columns={"task": task})
    _take(first, 3)
    state = first.state()
    first.close()
    resumed = FrameLoader(data, frame, label, 6, 1, columns={"task": task})
    assert resumed.restore(state) == "grain"
    _same(expected[3:], _take(resumed, 4))
    resumed.close()
    whole.close()


def test_frame_loader_needs_both_classes(datas):
    data = datas["ram"]
    frame = np.arange(5)
    with pytest.raises(EpisodeError, match="no negative frame"):
        FrameLoader(data, frame, np.ones(5, bool), 4)
    with pytest.raises(EpisodeError, match="no positive frame"):
        FrameLoader(data, frame, np.zeros(5, bool), 4)
    with pytest.raises(IndexError, match="rows of the"):
        FrameLoader(data, np.array([0, data.num_frames]), np.array([True, False]), 2)
