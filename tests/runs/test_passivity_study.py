"""The passivity study: the `press` contact task and the filter off/on comparison on it.

Real physics (MuJoCo), the real filter (robolearn.hardware.passivity) and the real simulated arm
(robolearn.hardware.sim_arm); no mocks. Episodes are shortened to 12-16 policy steps (the button is
pressed by step ~9), so the whole file runs in seconds.
"""

import json

import numpy as np
import pytest

from bench import passivity_study as bench_study
from robolearn import envs
from robolearn.core.errors import ConfigError
from robolearn.envs.widowx import contact
from robolearn.runs import passivity_study as study


@pytest.fixture(scope="module")
def aggressive():
    """One 16-step episode of the aggressive policy, filter off and on (same placement)."""
    cfg = study.StudyConfig(seeds=(0,), episodes=1, max_steps=16, policies=("aggressive",))
    return cfg, study.run_study(cfg, log=lambda _: None)


def test_press_task_resets_steps_renders_and_flags_success():
    task = envs.make("press")
    try:
        obs, info = task.reset(seed=0)
        assert obs["image"].shape == (64, 64, 3) and not info["success"]
        assert task.contact_force_n() == 0.0 and task.button_depth_m() == pytest.approx(0, abs=1e-3)
        for _ in range(14):  # the scripted expert: hover over the cap, press, hold
            obs, reward, _, _, info = task.step(task.expert_action())
        assert info["success"] and reward == 1.0
        assert task.button_depth_m() >= contact.PRESS_SUCCESS_M
        assert 5.0 < task.contact_force_n() <= task.peak_force_n < 40.0
        np.testing.assert_array_equal(task.render(), obs["image"])
        for _ in range(2):  # straight up: the spring pushes the cap back, success goes away
            *_, info = task.step(np.array([0, 0, 1.0, 0, 0, 0, -1.0]))
        assert not info["success"] and task.button_depth_m() < 1e-3
        assert task.contact_force_n() == 0.0
        task.reset(seed=0)
        assert task.peak_force_n == 0.0  # the episode peak restarts
    finally:
        task.close()


def test_study_reports_every_metric_for_both_conditions(aggressive):
    cfg, results = aggressive
    rows = results["conditions"]
    assert [(r["policy"], r["filter"]) for r in rows] == [
        ("aggressive", "off"),
        ("aggressive", "on"),
    ]
    for r in rows:
        assert r["episodes"] == 1 and len(r["per_episode"]) == 1
        lo, hi = r["success_ci95"]
        assert 0.0 <= lo <= r["success_rate"] <= hi <= 1.0
        assert r["injected_energy_j_mean"] > 0 and r["peak_force_n_max"] > 0
        assert 0.0 <= r["activation_rate"] <= 1.0 and 0.0 <= r["violation_step_rate"] <= 1.0
        episode = r["per_episode"][0]
        assert episode["control_steps"] == 16 * study.CONTROL_PER_POLICY_STEP
    assert results["config"]["passivity"]["energy_min_j"] == cfg.energy_min_j
    table = study.markdown_table(results)
    assert table.count("\n") == 3 and "| aggressive | on |" in table
    json.dumps(results, default=float)  # results.json material


def test_filter_keeps_the_tank_above_e_min_and_lowers_the_force(aggressive):
    cfg, results = aggressive
    off, on = results["conditions"]
    assert on["violation_episodes"] == 0 and on["violation_step_rate"] == 0.0
    assert on["lowest_energy_j"] >= cfg.energy_min_j - 1e-9
    assert on["activation_rate"] > 0.3  # the gate holds the push back once the tank is spent
    assert on["success"] == 1  # the budget still presses the button
    assert on["net_energy_j_max"] <= cfg.energy_init_j - cfg.energy_min_j + 1e-9
    assert off["net_energy_j_max"] > 2 * on["net_energy_j_max"]
    assert on["peak_force_n_max"] < 0.75 * off["peak_force_n_max"]
    assert on["final_force_n_mean"] < 0.75 * off["final_force_n_mean"]


def test_without_the_filter_the_aggressive_policy_violates_the_budget(aggressive):
    cfg, results = aggressive
    off = results["conditions"][0]
    assert off["violation_episodes"] == 1 and off["violation_step_rate"] > 0.2
    assert off["lowest_energy_j"] < cfg.energy_min_j - 0.3  # overdrawn by far, not by rounding
    assert off["activation_rate"] == 0.0 and off["success"] == 1
    assert off["peak_force_n_max"] > 35.0


def test_the_gentle_expert_stays_within_the_budget():
    cfg = study.StudyConfig(seeds=(0,), episodes=1, max_steps=14, policies=("expert",))
    off, on = study.run_study(cfg, log=lambda _: None)["conditions"]
    assert off["violation_episodes"] == 0 and off["success"] == 1
    assert on["activation_rate"] == 0.0  # the filter never touches its commands
    assert on["per_episode"][0] == off["per_episode"][0]


def test_bench_command_prints_the_table_and_writes_results(tmp_path, capsys):
    argv = ["--seeds", "3", "--episodes", "1", "--max-steps", "3", "--out", str(tmp_path)]
    assert bench_study.main(argv) == 0
    out = capsys.readouterr().out
    assert "| policy | filter | success (95 % CI) |" in out and "| expert | on |" in out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["conditions"]) == 4 and saved["config"]["seeds"] == [3]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny press policies (BC, 2 steps on random frames): two 'training seeds'."""
    from test_imagine import _train_bc

    from robolearn.data.synthetic import write_random_store

    root = tmp_path_factory.mktemp("press-policies")
    data = write_random_store(root / "data", 2, 6, task="press", seed=1)
    return [str(_train_bc(data, root / f"bc-{seed}")) for seed in (0, 1)]


def test_trained_policies_play_every_placement_once_per_checkpoint(trained):
    a, b = trained
    cfg = study.StudyConfig(
        seeds=(0,), episodes=2, max_steps=3, policies=("expert",),
        trained=(f"tiny={a},{b}", f"again={a}"),
    )  # fmt: skip
    results = study.run_study(cfg, log=lambda _: None)
    rows = {(r["policy"], r["filter"]): r for r in results["conditions"]}
    assert list(rows) == [(p, f) for p in ("expert", "tiny", "again") for f in ("off", "on")]
    tiny = rows["tiny", "off"]
    assert tiny["episodes"] == 4 and [c["checkpoint"] for c in tiny["by_checkpoint"]] == [a, b]
    assert [e["seed"] for e in tiny["per_episode"]] == [0, 1, 0, 1]  # the same placements
    assert [c["episodes"] for c in tiny["by_checkpoint"]] == [2, 2]
    # a checkpoint plays deterministically (mean actions): the same policy, the same episodes
    first = tiny["by_checkpoint"][0]
    assert first["injected_energy_j_mean"] == rows["again", "off"]["injected_energy_j_mean"]
    assert "by_checkpoint" not in rows["expert", "off"]
    for e in tiny["per_episode"]:
        assert e["control_steps"] == 3 * study.CONTROL_PER_POLICY_STEP
        assert e["time_to_success_s"] is None or 0 < e["time_to_success_s"] <= 3 * study.STEP_S
    expert = rows["expert", "off"]["per_episode"]
    assert all(e["time_to_success_s"] is None for e in expert)  # 3 steps: not pressed yet
    table = study.markdown_table(results)
    assert f"| tiny | {b} | on |" in table and "| again | on |" in table
    # head, rule, 6 conditions; a blank line; head, rule, 6 checkpoint rows (2 + 2 + 1 + 1)
    assert len(table.splitlines()) == 2 + 6 + 1 + 2 + 6
    json.dumps(results, default=float)


def test_time_to_success_is_the_first_step_the_button_is_down():
    cfg = study.StudyConfig(seeds=(0,), episodes=1, max_steps=14, policies=("expert",))
    off = study.run_study(cfg, log=lambda _: None)["conditions"][0]
    episode = off["per_episode"][0]
    assert episode["success"] and 0 < episode["time_to_success_s"] <= 14 * study.STEP_S
    assert off["time_to_success_s_mean"] == episode["time_to_success_s"]
    assert pytest.approx(0.2) == study.STEP_S


def test_bench_command_studies_trained_policies_alone(trained, tmp_path, capsys):
    argv = ["--scripted", "--policy", f"bc={trained[0]}", "--seeds", "0", "--episodes", "1"]
    plot = tmp_path / "media" / "study.png"
    argv += ["--plot", str(plot)]
    assert bench_study.main([*argv, "--max-steps", "2", "--out", str(tmp_path)]) == 0
    import cv2

    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 300 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # drawn, not blank
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["policy"], r["filter"]) for r in saved["conditions"]] == [
        ("bc", "off"),
        ("bc", "on"),
    ]
    assert saved["config"]["trained"] == [f"bc={trained[0]}"]
    assert f"| bc | {trained[0]} | off |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy", "bc=/no/such/checkpoint"], "no policy at '/no/such/checkpoint'"),
        (["--policy", "bc"], "a trained policy is NAME=CHECKPOINT"),
        (["--policy", "bc=A,"], "a trained policy is NAME=CHECKPOINT"),
        (["--scripted"], "nothing to study"),
        (["--policy", "expert=A"], "every policy needs its own name"),
        (["--policy", "bundle=bundle:drawer/bc"], "trained for task 'drawer', not 'press'"),
        (["--plot", "study.jpg"], "--plot writes a PNG file"),
    ],
)
def test_bench_refuses_bad_policies_in_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert bench_study.main([*argv, "--episodes", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()  # refused before anything was run or written


def test_bad_study_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="policies must be among aggressive, expert"):
        study.StudyConfig(policies=("random",))
    with pytest.raises(ConfigError, match="need at least one seed"):
        study.StudyConfig(episodes=0)
    with pytest.raises(ConfigError, match="energy_init_j must lie within"):
        study.StudyConfig(energy_init_j=0.05)
