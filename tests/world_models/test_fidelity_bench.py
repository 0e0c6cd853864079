"""bench.world_model_fidelity: both presets trained on the same collected data for the same FLOPs
and scored open loop on held-out episodes by the real commands; a rerun reuses what is done."""

import pytest

from bench import world_model_fidelity as fidelity


@pytest.mark.slow  # collects 3 episodes, trains tiny and small a few steps, evaluates both: ~3 min
def test_quick_rows_train_both_presets_for_equal_flops(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_FIDELITY_DIR", str(tmp_path))
    rows = fidelity.run(quick=True)
    tiny, small = rows
    assert (tiny["preset"], small["preset"]) == ("tiny", "small")
    assert small["steps"] == 2
    # equal FLOPs: tiny's steps are small's times the FLOP ratio of one denoiser call
    assert tiny["steps"] == fidelity.equal_flop_steps("tiny", "small", 2) > 2
    assert small["params"] > tiny["params"] > 0
    for row in rows:
        assert row["windows"] > 0
        for key in ("psnr_h1", "psnr_h5", "copy_psnr_h1", "ssim_h5", "copy_ssim_h5"):
            assert row[key] == row[key]  # numbers, not NaN
        assert 0 < row["psnr_h1"] < 100 and -1 <= row["ssim_h5"] <= 1
    # same data for both: the copy-last baseline is a property of the held-out episodes alone
    assert tiny["copy_psnr_h1"] == small["copy_psnr_h1"]
    log = (tmp_path / "quick" / "commands.log").read_text()
    assert log.count("$ robolearn collect") == 2 and log.count("$ robolearn train") == 2
    # a rerun reuses the data, runs and evaluations: no command runs again
    assert fidelity.run(quick=True) == rows
    assert (tmp_path / "quick" / "commands.log").read_text() == log


def test_a_failing_command_raises_with_its_last_line(tmp_path):
    with pytest.raises(RuntimeError, match="robolearn train world-model failed: .*no-such-dir"):
        fidelity._robolearn(
            "train", "world-model", "--data", str(tmp_path / "no-such-dir"), "--steps", "1",
            "--out", str(tmp_path / "run"), log=tmp_path / "log",
        )  # fmt: skip
