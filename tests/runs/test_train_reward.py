"""`robolearn train reward` end to end on tiny stores whose successes show a bright patch:
train (from --config FILE, flags and overrides), calibrate, evaluate, load the checkpoint
(prob, reward, jitted logit fn), the curve in TensorBoard, the calibration figures, errors;
the shipped drawer reward's run config."""

import json
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from robolearn.reward_models.calibration import Calibration, sigmoid, threshold_for_fpr
from robolearn.reward_models.checkpoint import load_reward_model, read_config, read_info

from robolearn import bundles, cli
from robolearn.cli import main
from robolearn.core.checkpoint import CheckpointError
from robolearn.core.spec import ACTION_NAMES
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.store import create_store, write_episode
from robolearn.runs import reward_eval
from robolearn.runs.train_reward import TrainRewardConfig, _model_config

SIZE = 16
ROOT = Path(__file__).resolve().parents[2]


def write_patch_store(root, task="a", won=4, lost=2, steps=20, seed=0, corner=0, proprio_dim=7):
    """Episodes of `steps` steps with dim noise; the `won` successful ones succeed from frame
    steps - 6 on, where a bright 6x6 patch appears in a corner (0: top-left, 1: bottom-right)."""
    root = create_store(root)
    rng = np.random.default_rng(seed)
    meta = EpisodeMeta(task, f"do task {task}", "expert", 5.0, "test", ACTION_NAMES, seed=seed)
    for k in range(won + lost):
        image = rng.integers(0, 90, (steps + 1, SIZE, SIZE, 3), dtype=np.uint8)
        success = np.zeros(steps + 1, bool)
        if k < won:
            success[steps - 6 :] = True
            patch = (slice(0, 6), slice(0, 6)) if corner == 0 else (slice(-6, None),) * 2
            image[steps - 6 :, patch[0], patch[1]] = 255
        episode = Episode(
            image=image,
            proprio=np.zeros((steps + 1, proprio_dim), np.float32),
            state=np.zeros((steps + 1, 0)),
            action=np.zeros((steps, 7), np.float32),
            reward=success[1:].astype(np.float32),
            success=success,
            meta=meta,
        )
        write_episode(root, episode)
    return root


def train(out, *data, extra=()):
    argv = ["train", "reward", "--preset", "tiny", "--steps", "100", "--batch-size", "32"]
    for d in data:
        argv += ["--data", str(d)]
    return main(argv + ["--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tasks whose successes show a patch in different corners, in one checkpoint; the run
    is given as a --config file, a flag over it and a dotted override."""
    root = tmp_path_factory.mktemp("reward")
    data = write_patch_store(root / "data", won=6, lost=3)
    write_patch_store(data, task="b", won=4, lost=2, seed=2, corner=1)
    heldout = write_patch_store(root / "heldout", won=2, lost=2, seed=1)
    write_patch_store(heldout, task="b", won=1, lost=1, seed=3, corner=1)
    run_config = {
        "data": [str(data)],
        "tasks": ["a", "b"],
        "heldout": [str(heldout)],
        "val_fraction": 0.3,
        "steps": 7,  # the flag below wins
        "model": {"preset": "tiny"},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(run_config))
    argv = ["train", "reward", "--config", str(root / "run.yaml"), "--steps", "100"]
    argv += ["--out", str(root / "run"), "--quiet", "batch_size=32"]
    assert main(argv) == 0
    return root, data, heldout


def test_train_writes_a_calibrated_checkpoint(trained):
    root, _, _ = trained
    run = root / "run"
    info = read_info(run)
    assert info.kind == "cnn" and info.tasks == ("a", "b") and info.image_size == SIZE
    assert info.instructions == {"a": "do task a", "b": "do task b"}
    assert info.temperature > 0 and 0.5 <= info.threshold < 1.0 and info.target_fpr == 0.02
    for name in ("config.yaml", "stats.json", "train.yaml", "metrics.jsonl", "metrics.json"):
        assert (run / name).is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    ev = metrics["evaluation"]
    assert ev["episodes"] == 6 and str(root / "heldout") in ev["on"]
    # 3 successful held-out episodes: 3 recipe positives and 7 flagged frames each; for the
    # recipe every frame of the other task's episodes is a negative too.
    assert ev["recipe"]["positives"] == 9 and ev["sim_flags"]["positives"] == 21
    assert ev["sim_flags"]["frames"] == 6 * 21
    assert ev["recipe"]["per_task"]["a"]["negatives"] == 2 * 4 + 2 * 21 + 2 * 21
    assert ev["recipe"]["accuracy"] > 0.9 and ev["recipe"]["fpr"] <= 0.05
    # The threshold allows floor(0.02 x negatives) false positives on the validation frames
    # it was chosen on, and the report scores them exactly as calibration did.
    val = metrics["validation"]
    assert val["fp"] <= int(0.02 * val["negatives"]) and val["fpr"] <= 0.02
    stats = json.loads((run / "stats.json").read_text())
    assert stats["episodes"] == {"train": 10, "validation": 5}
    training = metrics["training"]
    assert training["steps"] == 100 and set(training["last"]) >= {"loss", "accuracy"}
    # the listing counts its parameters from orbax's metadata (numpy leaves record no shapes)
    from robolearn import bundles

    line = bundles.summary(bundles.BundlePart("t", "run", run))
    assert re.search(r"\s\d+\.\dk\s|\s\d\.\d\dM\s", line) and " 0.0k " not in line, line


def test_validation_scores_use_calibration_s_own_probabilities():
    """Why the validation FPR once read 4/159 = 0.025 against a target of 0.02: the threshold sat
    one float64 ulp above the highest negative allowed through, and the report divided the
    float32 logits by the temperature in float32, which rounded that negative up past it. The
    report now scores as calibration does, and the threshold sits a few float32 steps above the
    negative, so a float32 scorer (the jitted reward) does not count it either."""
    logits = np.array([1.8176072, -1.0, 3.0], np.float32)  # the frame of that run
    labels = np.array([False, False, True])
    temperature = 1.6714124527519736
    threshold = threshold_for_fpr(sigmoid(logits.astype(np.float64) / temperature), labels, 0.0)
    calibration = Calibration(temperature, threshold, 0.0)
    assert not (reward_eval.calibrated(logits, calibration)[~labels] >= threshold).any()
    assert not (sigmoid(logits / temperature)[~labels] >= threshold).any()  # float32 too
    one_ulp = np.nextafter(sigmoid(np.float64(logits[0]) / temperature), np.inf)
    assert sigmoid(logits[0] / temperature) >= one_ulp  # what the old threshold let through


def test_metrics_reach_tensorboard_and_train_yaml_is_the_resolved_run(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, data, _ = trained
    run = root / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]  # the training rows (validation/ figures' beside)
    assert [r["step"] for r in rows] == [50, 100]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"loss", "accuracy", "grad_norm"} <= set(events.Tags()["scalars"])
    loss = [(e.step, e.value) for e in events.Scalars("loss")]
    assert loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in rows]
    # train.yaml is the run as it ran (the model sized by the data) and runs again as --config
    command, args, flags = cli.parse(["train", "reward", "--config", str(run / "train.yaml")])
    cfg = cli.resolve_config(command, args, flags)
    assert cfg.data == (str(data),) and cfg.tasks == ("a", "b") and cfg.steps == 100
    assert cfg.batch_size == 32 and cfg.val_fraction == 0.3
    assert cfg.model == read_config(run)[0]
    assert (cfg.model.preset, cfg.model.cnn.image_size, cfg.model.cnn.num_tasks) == ("tiny", 16, 2)
    assert cfg.model.optim.decay_steps == 100


def test_train_draws_calibration_figures_and_the_worst_frames(trained):
    """At the end: the training curves; ROC, precision-recall and reliability (before and after
    temperature scaling) on the validation frames; grids of the validation negatives scored
    highest and positives scored lowest; not blank, in TensorBoard too, with their scalars."""
    import imageio.v3 as iio
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _, _ = trained
    run = root / "run"
    names = ("curves", "reward_calibration", "worst_false_positives", "worst_false_negatives")
    for name in names:
        image = iio.imread(run / "media" / f"{name}-100.png")
        assert image.ndim == 3 and image.std() > 10, name
    # 8 grid tiles of 128 px (and a 4 px gutter) with a caption each, 4 to a row
    assert iio.imread(run / "media" / "worst_false_positives-100.png").shape[1] == 4 * 132
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert set(names) <= set(events.Tags()["images"])
    row = next(json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()
               if "validation/roc_auc" in r)  # fmt: skip
    assert row["step"] == 100 and 0.9 < row["validation/roc_auc"] <= 1.0
    assert 0.0 <= row["validation/ece_after"] <= 1.0 and row["validation/average_precision"] > 0.0


def test_roc_pr_and_reliability_by_hand():
    """4 frames scored 0.9 (pos), 0.8 (neg), 0.4 (pos), 0.1 (neg): the ROC steps through
    (0, .5), (.5, .5), (.5, 1), (1, 1), area 0.75; precision at each recall; reliability bins."""
    from robolearn.runs.report import precision_recall, reliability, roc_curve

    probs = np.array([0.9, 0.8, 0.4, 0.1])
    labels = np.array([True, False, True, False])
    fpr, tpr, auc = roc_curve(probs, labels)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert auc == pytest.approx(0.75)
    recall, precision, ap = precision_recall(probs, labels)
    assert recall.tolist() == [0.5, 0.5, 1, 1] and precision.tolist() == [1, 0.5, 2 / 3, 0.5]
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    mean_p, freq = reliability(probs, labels, bins=2)
    assert mean_p == pytest.approx([0.25, 0.85]) and freq.tolist() == [0.5, 0.5]


def test_the_drawer_reward_run_config_made_the_shipped_classifier():
    path = ROOT / "configs" / "runs" / "reward-drawer.yaml"
    command, args, flags = cli.parse(["train", "reward", "--config", str(path)])
    cfg = cli.resolve_config(command, args, flags)
    assert isinstance(cfg, TrainRewardConfig)
    assert cfg.data == ("data/wm-train", "data/bc3-rollouts") and cfg.steps == 1500
    assert cfg.heldout == ("data/wm-heldout", "data/bc3-heldout")
    shipped = bundles.resolve("bundle:drawer/reward")
    info = read_info(shipped)
    assert cfg.target_fpr == info.target_fpr
    # the model it trains on the drawer's 64 px frames of one task is the shipped one's
    assert _model_config(cfg, info.image_size, len(info.tasks), None) == read_config(shipped)[0]


def test_checkpoint_loads_and_scores_frames(trained):
    root, _, _ = trained
    model = load_reward_model(root / "run", "a")
    frames = np.zeros((6, SIZE, SIZE, 3), np.uint8) + 40
    frames[2:4, :6, :6] = 255  # task a's success
    frames[4:, -6:, -6:] = 255  # task b's success: a negative for a
    prob = model.prob(frames, "a")
    reward = model.reward(frames)  # the task it was loaded for
    assert prob.shape == (6,) and reward.shape == (6,) and reward.dtype == np.float32
    assert reward.tolist() == [0, 0, 1, 1, 0, 0]
    assert model.reward(frames, "b").tolist() == [0, 0, 0, 0, 1, 1]
    fn = jax.jit(model.make_logit_fn("a"))
    logits = np.asarray(fn(model.params, frames))
    assert logits.dtype == np.float32
    np.testing.assert_allclose(1 / (1 + np.exp(-logits.astype(np.float64))), prob, atol=1e-6)
    # pure: it runs inside lax.scan with the parameters passed in
    _, scanned = jax.lax.scan(
        lambda c, x: (c, fn(model.params, x)), 0, frames.reshape(3, 2, SIZE, SIZE, 3)
    )
    np.testing.assert_allclose(np.asarray(scanned).reshape(6), logits, rtol=1e-5, atol=1e-5)


def test_checkpoint_errors(trained, tmp_path):
    root, data, _ = trained
    with pytest.raises(CheckpointError, match="covers tasks a, b, not c"):
        load_reward_model(root / "run", "c")
    with pytest.raises(CheckpointError, match="covers tasks a, b; name one"):
        load_reward_model(root / "run").prob(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(CheckpointError, match="not a reward checkpoint"):
        load_reward_model(data)
    model = load_reward_model(root / "run", "a")
    with pytest.raises(CheckpointError, match=r"expects images uint8 \[B, 16, 16, 3\]"):
        model.prob(np.zeros((2, 8, 8, 3), np.uint8))
    broken = tmp_path / "broken"
    shutil.copytree(root / "run", broken)
    shutil.rmtree(broken / "checkpoints")
    with pytest.raises(CheckpointError, match="broken reward checkpoint"):
        load_reward_model(broken)


def _error(argv_out, data, capsys, extra=()):
    assert train(argv_out, *data, extra=extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_errors_are_one_line(tmp_path, capsys):
    failed = write_patch_store(tmp_path / "failed", won=0, lost=3)
    err = _error(tmp_path / "o1", [failed], capsys)
    assert "nothing positive to learn from" in err and "robolearn collect" in err
    err = _error(tmp_path / "o2", [failed], capsys, extra=["--task", "zz"])
    assert "no episodes of task 'zz'" in err
    empty = create_store(tmp_path / "empty")
    assert "no complete episodes" in _error(tmp_path / "o3", [empty], capsys)
    one = write_patch_store(tmp_path / "one", won=1, lost=2)
    assert "it takes at least 2" in _error(tmp_path / "o4", [one], capsys)
    err = _error(tmp_path / "o5", [one], capsys, extra=["--val-fraction", "1.5"])
    assert "--val-fraction must be in (0, 1), got 1.5" in err
    assert not (tmp_path / "o5").exists()  # refused before the run directory is made
    assert main(["train", "reward", "--out", str(tmp_path / "o6")]) == 2
    assert "give at least one --data directory" in capsys.readouterr().err


def test_streamed_episodes_train_the_classifier_ram_trains(tmp_path):
    """The episodes read from the store's pack (input.mode=stream, small arrays read per row
    too) train, calibrate and score exactly as when they are held in RAM."""
    data = write_patch_store(tmp_path / "data", won=4, lost=2)
    heldout = write_patch_store(tmp_path / "heldout", won=2, lost=1, seed=1)
    runs = {}
    for name, mode in (("ram", ["input.mode=memory"]), ("stream", ["input.mode=stream"])):
        if name == "stream":
            mode.append("input.memory_mb=0.001")
        extra = ["--heldout", str(heldout), "--steps", "20", "--val-fraction", "0.3", *mode]
        assert train(tmp_path / name, data, extra=extra) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        for timing in ("seconds", "first_step_seconds", "steps_per_second"):
            runs[name]["training"].pop(timing)
    assert (data / "packed").is_dir() and (heldout / "packed").is_dir()  # streamed from packs
    assert runs["ram"] == runs["stream"]
    assert runs["ram"]["training"]["steps"] == 20
