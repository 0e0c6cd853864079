"""`robolearn label` end to end: rewards from a tiny trained classifier in a new store; the
source store is left byte-for-byte alone; refusals are one line."""

import dataclasses

import numpy as np
import pytest
from test_train_reward import SIZE, train, write_patch_store

from robolearn.cli import main
from robolearn.data.store import create_store, iter_episodes, write_episode


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("label")
    data = write_patch_store(root / "data", won=4, lost=2)
    assert train(root / "reward", data, extra=["--val-fraction", "0.3"]) == 0
    source = write_patch_store(root / "source", won=2, lost=1, seed=3)
    return root, source


def _snapshot(store):
    """Bytes and mtime of every file, mtime of every directory (a new file would change it)."""
    paths = [store, *sorted(store.rglob("*"))]
    return {p: (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns) for p in paths}


def test_label_writes_classifier_rewards_into_a_new_store(setup, tmp_path, capsys):
    root, source = setup
    before = _snapshot(source)
    out = tmp_path / "labelled"
    argv = ["label", "--data", str(source), "--reward", str(root / "reward"), "--out", str(out)]
    assert main(argv + ["--quiet"]) == 0
    assert _snapshot(source) == before
    originals = [ep for _, ep in iter_episodes(source)]
    labelled = [ep for _, ep in iter_episodes(out)]
    assert len(labelled) == len(originals) == 3
    for old, new in zip(originals, labelled, strict=True):
        np.testing.assert_array_equal(new.image, old.image)
        np.testing.assert_array_equal(new.success, old.success)
        extra = new.meta.extra
        assert extra["reward_model"] == str(root / "reward")
        prob = np.asarray(extra["success_prob"])
        assert prob.shape == (old.num_steps,) and new.reward.dtype == np.float32
        np.testing.assert_array_equal(new.reward, (prob >= extra["reward_threshold"]))
        # the patch is easy: the classifier's reward matches the simulator's flags
        np.testing.assert_array_equal(new.reward > 0, old.success[1:])
    printed = capsys.readouterr().out
    assert "labelled 3 episodes (60 steps, 14 rewarded" in printed
    assert printed.splitlines()[-1] == f"store: {out}"


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_label_refusals(setup, tmp_path, capsys):
    root, source = setup
    base = ["label", "--data", str(source), "--reward", str(root / "reward")]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "is not an episode store" in _error(base + ["--out", str(busy)], capsys)
    assert "is the source store" in _error(base + ["--out", str(source)], capsys)
    other = write_patch_store(tmp_path / "other", task="b", won=1, lost=0)
    argv = ["label", "--data", str(other), "--reward", str(root / "reward")]
    err = _error(argv + ["--out", str(tmp_path / "o1")], capsys)
    assert "task(s) b" in err and "does not cover" in err
    err = _error(argv + ["--out", str(tmp_path / "o2"), "--task", "b"], capsys)
    assert "covers tasks a, not b" in err
    small = _store_of_size(tmp_path, 8)
    argv = ["label", "--data", str(small), "--reward", str(root / "reward")]
    err = _error(argv + ["--out", str(tmp_path / "o3")], capsys)
    assert f"takes [{SIZE}, {SIZE}, 3]" in err
    assert not (tmp_path / "o3").exists()
    err = _error(base[:-2] + ["--reward", str(source), "--out", str(tmp_path / "o4")], capsys)
    assert "not a reward checkpoint" in err
    err = _error(base[:-2] + ["--out", str(tmp_path / "o5")], capsys)
    assert "label needs --reward CKPT" in err
    with pytest.raises(SystemExit) as exit_:  # --out is required
        main(["label", "--data", str(source), "--reward", str(root / "reward")])
    assert exit_.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def _store_of_size(tmp_path, size):
    """A store like write_patch_store's with frames cropped to size x size."""
    store = write_patch_store(tmp_path / "full", won=1, lost=0)
    small = create_store(tmp_path / "small")
    for _, ep in iter_episodes(store):
        write_episode(small, dataclasses.replace(ep, image=ep.image[:, :size, :size]))
    return small
