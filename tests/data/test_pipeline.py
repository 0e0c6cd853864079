"""The input pipeline: RAM and streaming give the same batches, resuming continues the exact
sample sequence (1 and 2 processes), the pack grows with its store and refuses a stale one."""

import json
import os

import numpy as np
import pytest

from robolearn.core.errors import ConfigError
from robolearn.data.packed import PackError, pack_store, read_pack
from robolearn.data.pipeline import (
    EpisodeData,
    PipelineConfig,
    TransitionLoader,
    WindowLoader,
    resume_loader,
    save_loader_state,
)
from robolearn.data.store import list_episodes, read_episode
from robolearn.data.synthetic import write_random_store

RAM = PipelineConfig(mode="memory", threads=0)
STREAM = PipelineConfig(mode="stream", threads=2)
# a budget too small for even the small arrays: every key is read from the pack per sample
STREAM_ALL = PipelineConfig(mode="stream", threads=2, memory_mb=0.001)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe") / "data"
    write_random_store(root, 6, steps=7, image_size=8, seed=1)
    write_random_store(root, 3, steps=5, image_size=8, seed=2, task="push")
    return root


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _same(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize(
    "make",
    [
        lambda data: WindowLoader(data, 5, seed=7, context=3, pad_start=True),
        lambda data: WindowLoader(data, 4, seed=7, context=2),
        lambda data: TransitionLoader(data, 6, seed=7, with_next=True),
    ],
    ids=["window-padded", "window", "transition"],
)
@pytest.mark.parametrize("stream", [STREAM, STREAM_ALL], ids=["images", "every-key"])
def test_streaming_gives_the_batches_ram_gives(store, make, stream):
    ram = EpisodeData(store, pipeline=RAM)
    streamed = EpisodeData(store, pipeline=stream, progress=False)
    assert ram.in_memory and not streamed.in_memory
    # the small arrays stay in RAM when they fit a quarter of the budget; images never do
    small = {"proprio", "success", "action", "reward"}
    assert set(streamed.arrays) == (small if stream is STREAM else set())
    _same(_take(make(ram), 12), _take(make(streamed), 12))


def test_batches_hold_the_stored_rows(store):
    data = EpisodeData(store, pipeline=STREAM, progress=False)
    episodes = [read_episode(p) for p in data.paths]
    batch = next(WindowLoader(data, 16, seed=3, context=2))
    for row, (e, s) in enumerate(zip(batch["episode"], batch["step"], strict=True)):
        ep = episodes[e]
        np.testing.assert_array_equal(batch["image"][row], ep.image[s : s + 3])
        np.testing.assert_array_equal(batch["proprio"][row], ep.proprio[s : s + 3])
        np.testing.assert_array_equal(batch["action"][row], ep.action[s : s + 2])
        np.testing.assert_array_equal(batch["reward"][row], ep.reward[s : s + 2])


def test_auto_mode_streams_what_does_not_fit_the_budget(store):
    data = EpisodeData(store, pipeline=PipelineConfig(memory_mb=1.0), progress=False)
    assert data.in_memory  # 9 episodes of 8x8 frames: ~20 kB
    tiny = EpisodeData(store, pipeline=PipelineConfig(memory_mb=0.005), progress=False)
    assert not tiny.in_memory and tiny.decoded_bytes() > 5_000
    assert not tiny.arrays  # nothing decoded into RAM


def test_moments_streamed_equal_moments_in_ram(store):
    ram = EpisodeData(store, tasks="drawer", pipeline=RAM).proprio_moments()
    streamed = EpisodeData(store, tasks="drawer", pipeline=STREAM, progress=False)
    for a, b in zip(ram, streamed.proprio_moments(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pipeline", [RAM, STREAM], ids=["ram", "stream"])
@pytest.mark.parametrize("processes", [1, 2])
def test_resume_continues_the_exact_sequence(store, tmp_path, pipeline, processes):
    """Per process: 5 batches, save the state as a checkpoint would, then a fresh loader resumed
    from that file gives exactly the batches the uninterrupted loader gives next."""
    for index in range(processes):

        def make(index=index):
            data = EpisodeData(store, pipeline=pipeline, progress=False)
            return WindowLoader(
                data,
                3,
                seed=11,
                context=2,
                pad_start=True,
                process_index=index,
                process_count=processes,
            )

        run = make()
        _take(run, 5)
        out = tmp_path / f"p{processes}"
        save_loader_state(run, out, step=5)
        expected = _take(run, 7)
        resumed = make()
        assert resume_loader(resumed, out, 5) == "grain"
        _same(_take(resumed, 7), expected)
        # without a saved state (older checkpoints): the same batches from the step alone
        positional = make()
        assert resume_loader(positional, tmp_path / "nothing-saved", 5) == "position"
        _same(_take(positional, 7), expected)


def test_resume_after_the_data_changed_warns_and_goes_on(store, tmp_path, capsys):
    loader = TransitionLoader(EpisodeData(store, tasks="drawer", pipeline=RAM), 4, seed=0)
    _take(loader, 2)
    save_loader_state(loader, tmp_path, step=2)
    other = TransitionLoader(EpisodeData(store, pipeline=RAM), 4, seed=0)  # more episodes
    assert resume_loader(other, tmp_path, 2) == "changed"
    assert "changed since this checkpoint" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot continue"):
        other.restore(json.loads(next((tmp_path / "data_state" / "2").iterdir()).read_text()))


def test_saved_states_follow_the_kept_checkpoints(store, tmp_path):
    loader = TransitionLoader(EpisodeData(store, pipeline=RAM), 4, seed=0)
    for step in (1, 2, 3):
        next(loader)
        save_loader_state(loader, tmp_path, step, keep=[step - 1, step])
    assert sorted(p.name for p in (tmp_path / "data_state").iterdir()) == ["2", "3"]


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(store):
    data = EpisodeData(store, pipeline=STREAM, progress=False)
    expected = _take(WindowLoader(data, 4, seed=5, context=2), 6)
    workers = PipelineConfig(mode="stream", threads=1, workers=2)
    with WindowLoader(EpisodeData(store, pipeline=workers, progress=False), 4, 5, context=2) as a:
        _same(_take(a, 6), expected)
        state = a.state()
        more = _take(a, 3)
    with WindowLoader(EpisodeData(store, pipeline=workers, progress=False), 4, 5, context=2) as b:
        b.restore(state)
        _same(_take(b, 3), more)


def test_the_pack_grows_with_its_store_and_keeps_old_shards(tmp_path):
    root = write_random_store(tmp_path / "s", 3, steps=4, image_size=8, seed=0)
    first = pack_store(root, workers=1)
    assert first["episodes"] == 3 and first["shards"] == 1
    shard = root / "packed" / "shard-000000" / "image.bin"
    before = (shard.stat().st_mtime_ns, shard.read_bytes())
    write_random_store(root, 2, steps=6, image_size=8, seed=1)
    second = pack_store(root, workers=1)
    assert (second["episodes"], second["total"], second["shards"]) == (2, 5, 2)
    assert (shard.stat().st_mtime_ns, shard.read_bytes()) == before
    assert pack_store(root, workers=1)["episodes"] == 0
    episodes, _ = read_pack(root / "packed")
    assert [e.file for e in episodes] == [p.name for p in list_episodes(root)]
    data = EpisodeData(root, pipeline=PipelineConfig(mode="stream"), progress=False)
    for e, path in enumerate(data.paths):
        ep = read_episode(path)
        np.testing.assert_array_equal(data.read_frames("image", e, 0, ep.num_steps + 1), ep.image)
        np.testing.assert_array_equal(data.read_steps("action", e, 0, ep.num_steps), ep.action)


def test_a_new_image_size_starts_a_new_shard(tmp_path):
    root = write_random_store(tmp_path / "s", 2, steps=3, image_size=8)
    write_random_store(root, 2, steps=3, image_size=16, seed=1)
    assert pack_store(root, workers=1)["shards"] == 2
    with pytest.raises(Exception, match="load stores of one size together"):
        EpisodeData(root, pipeline=PipelineConfig(mode="stream"), progress=False)


def test_a_stale_or_damaged_pack_is_refused_in_one_line(tmp_path):
    root = write_random_store(tmp_path / "s", 3, steps=4, image_size=8)
    pack_store(root, workers=1)
    (root / "packed" / "shard-000000.tmp").mkdir()  # what a crash mid-pack leaves
    image = root / "packed" / "shard-000000" / "image.bin"
    image.write_bytes(image.read_bytes()[:-10])
    with pytest.raises(PackError, match="image.bin: .* bytes, the episode table says") as err:
        read_pack(root / "packed")
    assert "\n" not in str(err.value)
    (root / "packed" / "packed.json").write_bytes(b"\xff\xfe[")
    with pytest.raises(PackError, match="packed.json: unreadable"):
        read_pack(root / "packed")
    os.unlink(list_episodes(root)[0])
    (root / "packed" / "packed.json").unlink()
    for leftover in (root / "packed").glob("shard-*"):
        for f in leftover.iterdir():
            f.unlink()
        leftover.rmdir()
    pack_store(root, workers=1)
    assert not list((root / "packed").glob("*.tmp"))
    write_random_store(root, 1, steps=4, image_size=8, seed=3)
    os.unlink(list_episodes(root)[0])
    with pytest.raises(PackError, match="packs ep-000001.npz, which .* no longer holds; delete"):
        pack_store(root, workers=1)


def test_data_pack_command_packs_then_reports_nothing_new(tmp_path, capsys):
    from robolearn.cli import main

    root = write_random_store(tmp_path / "s", 3, steps=4, image_size=8)
    assert main(["data", "pack", str(root), "--workers", "1", "--quiet"]) == 0
    assert "packed 3 new episodes" in capsys.readouterr().out
    assert main(["data", "pack", str(root), "--pack", str(tmp_path / "p"), "--quiet"]) == 0
    assert "the pack holds 3 episodes in 1 shard(s)" in capsys.readouterr().out
    assert main(["data", "pack", str(root), "--quiet"]) == 0
    assert "packed 0 new episodes" in capsys.readouterr().out
    assert main(["data", "pack", str(tmp_path / "nope"), "--quiet"]) != 0
    assert "no such dataset directory" in capsys.readouterr().err
