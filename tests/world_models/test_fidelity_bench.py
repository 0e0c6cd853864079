"""bench.world_model_fidelity: the steps that give two presets the same training FLOPs, and its
collect -> train -> evaluate steps through the real commands (tiny, a few steps), reused on a rerun.
"""

import pytest

from bench import world_model_fidelity as fidelity


def test_equal_flops_give_the_cheaper_preset_proportionally_more_steps():
    # one tiny denoiser call costs ~1/18 of a small one (XLA's cost analysis)
    steps = fidelity.equal_flop_steps("tiny", "small", 10)
    assert 100 < steps < 2000
    assert fidelity.equal_flop_steps("small", "small", 10) == 10


@pytest.mark.slow  # collects 2 episodes, trains and evaluates tiny a few steps: ~1-2 min
def test_collect_train_evaluate_through_the_commands_and_reuse(tmp_path):
    log = tmp_path / "commands.log"
    train_dir, heldout = fidelity.collect(tmp_path, {"random": (1, 1)}, log)
    info = fidelity.train(tmp_path, "tiny", train_dir, steps=2, batch=2, log=log)
    assert (info["steps"], info["batch"]) == (2, 2)
    run = tmp_path / "runs" / "tiny-2x2"
    assert info["run"] == str(run)
    result = fidelity.evaluate(run, heldout, horizon=3, stride=20, log=log)
    per = result["per_step"]
    assert result["windows"] > 0 and len(per["psnr"]) == 3
    assert all(0 < p < 100 for p in per["psnr"] + per["psnr_baseline"])
    assert fidelity._params(run) > 0
    text = log.read_text()
    assert text.count("$ robolearn collect") == 2 and "--seed 1" in text
    assert "model.optim.warmup_steps=1" in text and "--detector-steps 0" in text
    # a rerun reuses the data, the run and the evaluation: no command runs again
    assert fidelity.collect(tmp_path, {"random": (1, 1)}, log) == (train_dir, heldout)
    assert fidelity.train(tmp_path, "tiny", train_dir, steps=2, batch=2, log=log) == info
    assert fidelity.evaluate(run, heldout, horizon=3, stride=20, log=log) == result
    assert log.read_text() == text
    # a run cut short (here: 2 of its 4 steps done and saved) resumes from its checkpoint; its
    # other step count makes it another run, never the finished tiny-2x2
    cut = tmp_path / "runs" / "tiny-4x2"
    fidelity._robolearn(
        "train", "world-model", "--data", str(train_dir), "--preset", "tiny", "--steps", "2",
        "--batch-size", "2", "--out", str(cut), "--quiet", log=log,
    )  # fmt: skip
    fidelity.train(tmp_path, "tiny", train_dir, steps=4, batch=2, log=log)
    trains = [line for line in log.read_text().splitlines() if line.startswith("$ robolearn train")]
    assert len(trains) == 3 and str(cut) in trains[-1]
    assert trains[-1].endswith("--resume") and trains[-1].count("--steps 4") == 1
    assert sorted(int(p.name) for p in (cut / "checkpoints").iterdir())[-1] == 4
    assert (cut / "bench_done.json").exists()


def test_a_run_that_ends_short_of_its_steps_is_not_finished(tmp_path, monkeypatch):
    """The trainer exits 0 after a SIGTERM has saved it mid-run: the bench must not mark that
    run finished (here the trainer is skipped and the run holds a checkpoint at step 1 of 6)."""
    (tmp_path / "runs" / "tiny-6x2" / "checkpoints" / "1").mkdir(parents=True)
    calls = []
    monkeypatch.setattr(fidelity, "_robolearn", lambda *args, log: calls.append(args))
    with pytest.raises(RuntimeError, match="tiny-6x2 stopped at step 1 of 6: rerun to resume"):
        fidelity.train(tmp_path, "tiny", tmp_path / "data", steps=6, batch=2, log=tmp_path / "log")
    assert calls[0][-1] == "--resume"
    assert not (tmp_path / "runs" / "tiny-6x2" / "bench_done.json").exists()


def test_a_failing_command_raises_with_its_last_line(tmp_path):
    with pytest.raises(RuntimeError, match="robolearn train world-model failed: .*no-such-dir"):
        fidelity._robolearn(
            "train", "world-model", "--data", str(tmp_path / "no-such-dir"), "--steps", "1",
            "--out", str(tmp_path / "run"), log=tmp_path / "log",
        )  # fmt: skip
