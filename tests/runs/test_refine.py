"""`robolearn refine` end to end on tiny parts (tiny world model, BC policy and reward classifier
trained for a few steps): the refined checkpoint is a policy that eval loads, metrics are logged,
a killed run resumes, and parts that do not fit together are refused in one line."""

import json

import numpy as np
import pytest
import yaml
from test_imagine import _outcome_store, _train_bc, _train_wm

from robolearn.cli import main
from robolearn.data.synthetic import write_random_store
from robolearn.policies.bc.checkpoint import load_policy, read_info
from robolearn.policies.ppo.checkpoint import read_ppo_config


def _train_reward(data, out):
    argv = ["train", "reward", "--data", str(data), "--preset", "tiny", "--steps", "3"]
    assert main(argv + ["--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    # 8 episodes: the reward trainer keeps whole episodes of both outcomes for calibration
    data = _outcome_store(root / "data", episodes=8)
    push = _outcome_store(root / "push", episodes=8, task="push")
    small = write_random_store(root / "data32", 2, 6, image_size=32)
    return {
        "data": data,
        "data32": small,
        "wm": _train_wm(data, root / "wm"),
        "bc": _train_bc(data, root / "bc"),
        "reward": _train_reward(data, root / "reward"),
        "reward_push": _train_reward(push, root / "reward_push"),
        "bc32": _train_bc(small, root / "bc32"),
    }


def _old_ppo_layout(path, section=None):
    data = yaml.safe_load(path.read_text())
    ppo = data[section] if section else data
    actor, critic = ppo.pop("actor_optim"), ppo.pop("critic_optim")
    ppo.update(actor_lr=actor["learning_rate"], critic_lr=critic["learning_rate"])
    ppo["grad_clip"] = actor["grad_clip"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _refine(parts, out, *extra, iterations=2, **override):
    spec = {k: str(parts[k]) for k in ("wm", "reward", "bc", "data")} | override
    argv = ["refine", "--task", "drawer", "--world-model", spec["wm"], "--reward", spec["reward"]]
    argv += ["--policy", spec["bc"], "--data", spec["data"], "--out", str(out)]
    argv += ["--iterations", str(iterations), "--rollouts", "4", "--horizon", "3"]
    argv += ["--epochs", "1", "--minibatches", "2", "--critic-warmup", "1", "--quiet"]
    return main([*argv, *extra])


def test_refine_writes_a_policy_that_eval_loads_and_resumes(parts, tmp_path, capsys):
    out = tmp_path / "refined"
    lrs = ("--actor-lr", "2e-5", "--critic-lr", "1e-3")
    assert _refine(parts, out, "--save-every", "1", *lrs) == 0
    printed = capsys.readouterr().out
    assert "imagined success" in printed and f"policy checkpoint: {out}" in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in ("imagined_return", "approx_kl", "clip_fraction", "value_loss", "std"):
        assert key in rows[0]
    assert rows[0]["actor_updates"] == 0  # critic warm-up
    info = read_info(out)
    assert (info.kind, info.task, info.parent) == ("ppo", "drawer", str(parts["bc"]))
    policy = load_policy(out, "drawer")
    assert policy.step == 2
    ppo = read_ppo_config(out)
    assert (ppo.actor_optim.learning_rate, ppo.critic_optim.learning_rate) == (2e-5, 1e-3)
    assert (out / "refine.yaml").is_file()

    # a run stopped after 2 iterations continues to 3, its files in the layout before
    # robolearn.core.optim (actor_lr, critic_lr, grad_clip)
    _old_ppo_layout(out / "ppo.yaml")
    _old_ppo_layout(out / "refine.yaml", section="ppo")
    assert _refine(parts, out, "--resume", iterations=3) == 0
    assert "iteration 3 (1 this run" in capsys.readouterr().out
    assert load_policy(out, "drawer").step == 3

    argv = ["eval", "--task", "drawer", "--policy", str(out), "--episodes", "1"]
    argv += ["--max-steps", "2", "--video-episodes", "0", "--out", str(tmp_path / "ev"), "--quiet"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["episodes"] == 1


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"reward": "reward_push"}, "covers tasks push"),
        ({"bc": "bc32"}, "images but the world model imagines"),
        ({"data": "data32"}, "images are 32x32, the world model imagines 64x64"),
    ],
)
def test_parts_that_do_not_fit_are_refused(parts, tmp_path, capsys, override, needle):
    capsys.readouterr()
    assert _refine(parts, tmp_path / "x", **{k: str(parts[v]) for k, v in override.items()}) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_start_step_starts_from_real_windows_inside_episodes(parts, tmp_path, capsys):
    from robolearn.world_models.checkpoint import load_world_model

    from robolearn.data.store import iter_episodes
    from robolearn.runs.refine import RefineConfig, initial_windows

    info = load_world_model(parts["wm"], "drawer", 7).info
    cfg = RefineConfig(task="drawer", data=(str(parts["data"]),), start_step=4)
    frames, actions, proprio = initial_windows(cfg, info)
    _, ep = next(iter(iter_episodes(parts["data"])))
    t = info.context
    assert frames.shape[:2] == (8, t) and actions.shape == (8, t, 7)
    # the window ends at step 4; its actions are the ones that led into those frames
    assert (frames[0, -1] == ep.image[4]).all() and (frames[0, 0] == ep.image[4 - t + 1]).all()
    assert actions[0, -1] == pytest.approx(ep.action[3])
    assert proprio[0, -1] == pytest.approx(ep.proprio[4])

    out = tmp_path / "mid"
    assert _refine(parts, out, "--start-step", "4", "--horizon", "2", iterations=1) == 0
    row = json.loads((out / "metrics.jsonl").read_text())
    assert row["iteration"] == 1 and row["early_shift"] >= 0
    # with a start step the actor is anchored on the recorded frames before it, by default
    assert "early_bc_coef: 10.0" in (out / "refine.yaml").read_text()
    assert "early_bc_coef: 10.0" in (out / "ppo.yaml").read_text()

    # the early pool: every frame before the start step, with the BC policy's mean action
    from robolearn.runs.refine import early_frames, load_parts

    cfg = RefineConfig(
        task="drawer",
        world_model=str(parts["wm"]),
        reward=str(parts["reward"]),
        policy=str(parts["bc"]),
        data=(str(parts["data"]),),
        start_step=4,
    )
    loaded = load_parts(cfg)
    early = early_frames(cfg, loaded)
    assert early.image.shape == (8 * 4, 64, 64, 3) and early.anchor.shape == (8 * 4, 7)
    assert (early.image[:4] == ep.image[:4]).all()
    mean, _ = loaded.policy.apply(loaded.policy.params, ep.image[:4], ep.proprio[:4])
    assert early.anchor[:4] == pytest.approx(np.asarray(mean), abs=1e-5)
    assert early_frames(RefineConfig(task="drawer"), loaded) is None
    capsys.readouterr()
    # 6-step episodes have no step 7; a start step needs recordings; a horizon past the end
    for extra, needle in [
        (("--start-step", "7"), "no episodes of task 'drawer' longer than 7 steps"),
        (("--start-step", "49"), "runs past drawer's 50 steps"),
    ]:
        assert _refine(parts, tmp_path / "x", *extra) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    argv = ["refine", "--task", "drawer", "--start-step", "3", "--out", str(tmp_path / "y")]
    assert main(argv) == 2
    assert "--start-step needs --data" in capsys.readouterr().err
    argv = ["refine", "--task", "drawer", "--early-bc-coef", "1", "--out", str(tmp_path / "z")]
    assert main(argv) == 2
    assert "--early-bc-coef anchors the steps before --start-step" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(parts, tmp_path, capsys):
    out = tmp_path / "refined"
    assert _refine(parts, out, iterations=1) == 0
    capsys.readouterr()
    assert _refine(parts, out, iterations=1) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_imagine_shows_the_predicted_reward(parts, tmp_path, capsys):
    out = tmp_path / "im"
    argv = ["imagine", "--task", "drawer", "--world-model", str(parts["wm"])]
    argv += ["--policy", str(parts["bc"]), "--reward", str(parts["reward"]), "--horizon", "2"]
    assert main([*argv, "--rollouts", "2", "--out", str(out)]) == 0
    assert "predicted reward" in capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    assert result["reward"]["classifier"] == str(parts["reward"])
    for row in result["per_rollout"]:
        assert len(row["reward_prob_imagined"]) == 2 and len(row["reward_prob_real"]) == 2
        assert all(0.0 <= p <= 1.0 for p in row["reward_prob_imagined"])
    assert (out / "reward.png").stat().st_size > 0
    # --reward none: no scoring even where a bundle ships a classifier
    assert (
        main([*argv[:7], "--reward", "none", "--horizon", "2", "--out", str(tmp_path / "n")]) == 0
    )
    assert "reward" not in json.loads((tmp_path / "n" / "results.json").read_text())
