"""`robolearn train reward --world-model`: the classifier also trains, calibrates and is scored
on frames a world model imagines from the recorded episodes, labelled like the recorded frame at
the same step.

The world model is a real (tiny) checkpoint. Where the test needs a model that fails in a known
way, its imagination (`robolearn.imagination.imagine_episodes`) is replaced by one that draws the
success patch, plus a checkerboard, on every frame of a failed episode: a model that
hallucinates success, as a diffusion model pushed off its data does."""

import json

import numpy as np
import pytest
from robolearn.reward_models.checkpoint import load_reward_model
from robolearn.reward_models.config import RewardConfig
from robolearn.reward_models.labels import label_dataset
from test_train_reward import train, write_patch_store

from robolearn import imagination
from robolearn.cli import main
from robolearn.core.config import load_preset
from robolearn.data.pipeline import EpisodeData, PipelineConfig
from robolearn.data.synthetic import write_random_store
from robolearn.runs import reward_eval

STEPS = 20


def _train_wm(data, out):
    argv = ["train", "world-model", "--data", str(data), "--preset", "tiny", "--steps", "2"]
    assert main(argv + ["--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    return out


def _hallucinate(frames: np.ndarray) -> np.ndarray:
    """The success patch (top-left) and a checkerboard (bottom-right) on every frame."""
    out = frames.copy()
    out[:, :6, :6] = 255
    board = (np.indices((6, 6)).sum(0) % 2 * 255).astype(np.uint8)
    out[:, -6:, -6:] = board[None, :, :, None]
    return out


def hallucinating_imagination(imaginer, rng, episodes):
    """Recorded frames where the episode succeeds; success hallucinated where it fails."""
    out = []
    for image, _, _ in episodes:
        succeeded = bool((image[-1, :6, :6] == 255).all())
        out.append(image[1:].copy() if succeeded else _hallucinate(image[1:]))
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("reward-imagined")
    data = write_patch_store(root / "data", won=8, lost=8, steps=STEPS)
    heldout = write_patch_store(root / "heldout", won=3, lost=3, steps=STEPS, seed=1)
    return root, data, heldout, _train_wm(data, root / "wm")


def test_imagined_frames_are_trained_calibrated_and_scored(stores, tmp_path, capsys):
    root, data, heldout, wm = stores
    extra = ["--heldout", str(heldout), "--world-model", str(wm), "--val-fraction", "0.25"]
    assert train(tmp_path / "run", data, extra=extra) == 0
    printed = capsys.readouterr().out
    assert "imagined" in printed and "episodes with a rewarded frame" in printed
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    frames = stats["frames"]
    # every recorded frame but frame 0 has an imagined twin with the same label
    for side in ("train", "validation"):
        recorded, imagined = frames[side]["a"], frames[f"imagined_{side}"]["a"]
        episodes = stats["episodes"][side]
        assert imagined["positives"] == recorded["positives"]
        assert imagined["negatives"] == recorded["negatives"] - episodes
    ev = json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluation"]["imagined"]
    assert ev["episodes"] == 6 and ev["failed_episodes"] == 3 and ev["successful_episodes"] == 3
    # a successful episode's frames 1-3 (negatives) and its last 3 (positives) are labelled
    assert ev["recipe"]["positives"] == 3 * 3 and ev["recipe"]["frames"] == 3 * 6 + 3 * STEPS
    train_yaml = (tmp_path / "run" / "train.yaml").read_text()
    assert f"world_model: {wm}" in train_yaml


def test_imagined_frames_are_labelled_like_the_recorded_frame_at_the_same_step(stores):
    _, data, _, _ = stores
    cache = EpisodeData([str(data)], pipeline=PipelineConfig(mode="memory"))
    n = len(cache.meta)
    # imagined "frames" that name their episode and step, laid out like the cache
    images = np.zeros((n * (STEPS + 1), 1, 1, 3), np.uint8)
    for e in range(n):
        images[e * (STEPS + 1) : (e + 1) * (STEPS + 1), 0, 0, 0] = e
        images[e * (STEPS + 1) : (e + 1) * (STEPS + 1), 0, 0, 1] = np.arange(STEPS + 1)
    imagined = reward_eval.Imagined(images, {e: e * (STEPS + 1) for e in range(n)})
    episodes = [1, 4, 9, 12]
    cfg = load_preset(RewardConfig, "tiny").labels
    offset = 1000
    got = imagined.labelled(cache, episodes, ("a",), cfg, offset)
    successes, tasks = reward_eval.success_flags(cache, episodes)
    recipe = label_dataset(successes, tasks, ("a",), cfg, require_both=False)
    want = {}
    starts = np.cumsum([0] + [len(s) for s in successes])
    for f, label in zip(recipe.frame, recipe.label, strict=True):
        k = int(np.searchsorted(starts, f, side="right") - 1)
        if f - starts[k] > 0:  # frame 0 is recorded, not imagined
            want[(episodes[k], int(f - starts[k]))] = bool(label)
    named = images[got.frame - offset, 0, 0]
    have = {(int(e), int(t)): bool(lab) for (e, t, _), lab in zip(named, got.label, strict=True)}
    assert have == want and len(got) == len(want)
    assert (got.frame >= offset).all() and (got.task == 0).all()


def test_a_hallucinating_model_s_imagined_successes_go_unrewarded(stores, tmp_path, monkeypatch):
    """Trained on recorded frames only, the classifier rewards the hallucinated successes of
    failed episodes; trained with the model's imagination too, it does not, and it still
    rewards the model's faithful successes and the recorded ones."""
    root, data, heldout, wm = stores
    monkeypatch.setattr(imagination, "imagine_episodes", hallucinating_imagination)
    common = ["--heldout", str(heldout), "--val-fraction", "0.25"]
    argv = ["train", "reward", "--data", str(data), "--preset", "tiny", "--steps", "300"]
    argv += ["--batch-size", "32", "--quiet", *common]
    assert main([*argv, "--out", str(tmp_path / "real")]) == 0
    assert main([*argv, "--world-model", str(wm), "--out", str(tmp_path / "both")]) == 0

    held = EpisodeData([str(heldout)], pipeline=PipelineConfig(mode="memory"))
    starts, image = held.frame_start, held.arrays["image"]
    failed = [s for s in starts if not held.arrays["success"][s + STEPS]]
    frames = np.concatenate([_hallucinate(image[s + 1 : s + STEPS + 1]) for s in failed])
    real_only = load_reward_model(tmp_path / "real", "a")
    both = load_reward_model(tmp_path / "both", "a")
    assert real_only.reward(frames).mean() > 0.9
    assert both.reward(frames).sum() == 0

    ev = json.loads((tmp_path / "both" / "metrics.json").read_text())["evaluation"]
    imagined = ev["imagined"]
    assert imagined["failed_rewarded_imagined"] == 0 and imagined["failed_rewarded_real"] == 0
    assert imagined["successful_rewarded_imagined"] == 3
    assert imagined["successful_rewarded_real"] == 3
    assert ev["recipe"]["fpr"] <= 0.05 and ev["recipe"]["fnr"] <= 0.34


def test_world_model_mismatches_are_one_line_errors(stores, tmp_path, capsys):
    root, data, _, wm = stores
    other = write_patch_store(tmp_path / "b", task="b", won=3, lost=2, steps=STEPS)
    assert train(tmp_path / "o1", other, extra=["--world-model", str(wm)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trained on a, not on b" in err
    assert train(tmp_path / "o2", data, extra=["--world-model", str(data)]) == 2
    assert "not a world-model checkpoint" in capsys.readouterr().err
    small = write_patch_store(tmp_path / "s", won=3, lost=2, steps=6)
    small_wm = _train_wm(small, tmp_path / "wm_s")
    big = write_random_store(
        tmp_path / "big", 4, 6, task="a", seed=1, successes=True, image_size=32
    )
    assert train(tmp_path / "o3", big, extra=["--world-model", str(small_wm)]) == 2
    assert "imagines 16 px frames, the data's are 32 px" in capsys.readouterr().err
    # a held-out store the model cannot imagine is refused before any training
    odd = write_patch_store(tmp_path / "odd", won=2, lost=2, steps=STEPS, proprio_dim=6)
    extra = ["--heldout", str(odd), "--world-model", str(wm)]
    assert train(tmp_path / "o4", data, extra=extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "6-D proprio and 7-D actions, the world model's are 7-D" in err
    assert not (tmp_path / "o4" / "metrics.jsonl").exists()
