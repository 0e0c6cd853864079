"""`robolearn refine` end to end on tiny parts (tiny world model, BC policy and reward classifier
trained for a few steps): the refined checkpoint is a policy that eval loads, with an actor-only
export beside it; metrics reach metrics.jsonl and TensorBoard; a killed run resumes; a run config
file works; parts that do not fit together are refused in one line."""

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from test_imagine import _outcome_store, _train_bc, _train_wm

from robolearn.cli import main
from robolearn.core.config import load_yaml
from robolearn.data.synthetic import write_random_store
from robolearn.policies.bc.checkpoint import EXPORT_DIR, load_policy, read_info
from robolearn.policies.ppo.checkpoint import read_ppo_config
from robolearn.runs.refine import RefineConfig

ROOT = Path(__file__).resolve().parents[2]


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


def _tensorboard_steps(out, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def _assert_curves(path):
    """The refinement's curves at the end: imagined return and success and the PPO
    diagnostics (KL and clip fraction, entropy and std, the critic's), three panels to a row,
    not blank."""
    import imageio.v3 as iio

    image = iio.imread(path)
    assert image.shape == (600, 3 * 420, 3) and image.std() > 10


def test_refine_writes_a_policy_that_eval_loads_and_resumes(parts, tmp_path, capsys):
    """From a --config file (flags and KEY=VALUE overrides over it), then resumed with flags."""
    out = tmp_path / "refined"
    config = {
        "task": "drawer",
        "world_model": str(parts["wm"]),
        "reward": str(parts["reward"]),
        "policy": str(parts["bc"]),
        "data": [str(parts["data"])],
        "iterations": 2,
        "ppo": {"rollouts": 4, "horizon": 3, "epochs": 1, "minibatches": 2, "critic_warmup": 1},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    argv = ["refine", "--config", str(tmp_path / "run.yaml"), "--out", str(out), "--quiet"]
    argv += ["--save-every", "1", "--actor-lr", "2e-5", "ppo.critic_optim.learning_rate=1e-3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("refine drawer: iteration 2 (2 this run, ")
    assert "; imagined success " in printed[0] and "(iteration 1) -> " in printed[0]
    assert printed[0].endswith(" imagined steps/s")
    assert printed[1:] == [
        f"policy checkpoint: {out}",
        f"evaluate it: robolearn eval --task drawer --policy {out}",
    ]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("imagined_return", "approx_kl", "clip_fraction", "value_loss", "std"):
        assert key in rows[0]
    assert rows[0]["actor_updates"] == 0  # critic warm-up
    assert rows[1]["imagined_steps_per_second"] > 0
    assert _tensorboard_steps(out, "imagined_success") == [1, 2]
    _assert_curves(out / "media" / "curves-2.png")
    info = read_info(out)
    assert (info.kind, info.task, info.parent) == ("ppo", "drawer", str(parts["bc"]))
    policy = load_policy(out, "drawer")
    assert policy.step == 2
    ppo = read_ppo_config(out)
    assert (ppo.actor_optim.learning_rate, ppo.critic_optim.learning_rate) == (2e-5, 1e-3)
    resolved = load_yaml(RefineConfig, out / "refine.yaml")
    assert resolved.ppo == ppo and (ppo.horizon, ppo.early_bc_coef) == (3, 0.0)
    assert resolved.iterations == 2 and resolved.world_model == str(parts["wm"])

    # a run stopped after 2 iterations continues to 3 with its own PPO settings (not the
    # defaults of the flags left out), its files in the layout before robolearn.core.optim
    # (actor_lr, critic_lr, grad_clip)
    _old_ppo_layout(out / "ppo.yaml")
    _old_ppo_layout(out / "refine.yaml", section="ppo")
    assert _refine(parts, out, "--resume", iterations=3) == 0
    assert "iteration 3 (1 this run" in capsys.readouterr().out
    assert load_policy(out, "drawer").step == 3
    assert load_yaml(RefineConfig, out / "refine.yaml").ppo == ppo
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert _tensorboard_steps(out, "imagined_success") == [1, 2, 3]
    _assert_curves(out / "media" / "curves-3.png")

    # OUT/policy: the actor of the last save, and nothing else of the training state
    export = out / EXPORT_DIR
    assert (read_info(export).weights, read_info(export).kind) == ("actor", "ppo")
    assert _orbax_tree(export / "checkpoints" / "3") == {"step", "params"}
    assert {"critic", "actor_opt", "critic_opt"} <= _orbax_tree(out / "checkpoints" / "3")
    actor, trained = load_policy(export, "drawer"), load_policy(out, "drawer")
    assert actor.step == 3
    for a, b in zip(jax.tree.leaves(actor.params), jax.tree.leaves(trained.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (export / "refine.yaml").is_file() and (export / "metrics.jsonl").is_file()

    argv = ["eval", "--task", "drawer", "--policy", str(export), "--episodes", "1"]
    argv += ["--max-steps", "2", "--video-episodes", "0", "--out", str(tmp_path / "ev"), "--quiet"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["episodes"] == 1


def test_eval_episodes_report_imagined_and_real_success_per_checkpoint(parts, tmp_path, capsys):
    out = tmp_path / "gap"
    assert _refine(parts, out, "--save-every", "1", "--eval-episodes", "2") == 0
    printed = capsys.readouterr().out
    assert (
        "imagined / real success per checkpoint (2 scenes): 1: " in printed and ", 2: " in printed
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/real_success" in r]
    assert [r["step"] for r in evals] == [1, 2]
    for r in evals:
        assert r["eval/imagined_success"] in (0.0, 0.5, 1.0)
        assert r["eval/gap"] == r["eval/imagined_success"] - r["eval/real_success"]
    # the real part is `robolearn eval` of that checkpoint on the same scenes (seed 0, 3 steps)
    argv = ["eval", "--task", "drawer", "--policy", str(out / EXPORT_DIR), "--episodes", "2"]
    argv += ["--max-steps", "3", "--video-episodes", "0", "--out", str(tmp_path / "ev"), "--quiet"]
    assert main(argv) == 0
    real = json.loads((tmp_path / "ev" / "results.json").read_text())["success_rate"]
    assert evals[-1]["eval/real_success"] == real
    _assert_curves(out / "media" / "curves-2.png")


def _orbax_tree(step_dir):
    """The top-level names of the pytree saved in a checkpoints/<step>/ directory."""
    import orbax.checkpoint as ocp

    return set(ocp.StandardCheckpointer().metadata(step_dir / "default").item_metadata.tree)


def test_the_drawer_run_config_is_the_run_that_made_the_shipped_refined_policy():
    """configs/runs/refine-drawer.yaml, read by the CLI, is the shipped refine.yaml (the old PPO
    layout migrated; the horizon and early anchor as refine resolves them for drawer)."""
    from robolearn import bundles, cli
    from robolearn.core.checkpoint import load_config
    from robolearn.policies.ppo.checkpoint import migrate_ppo_section

    path = ROOT / "configs" / "runs" / "refine-drawer.yaml"
    command, args, flags = cli.parse(["refine", "--config", str(path)])
    cfg = cli.resolve_config(command, args, flags)
    shipped = Path(bundles.resolve("bundle:drawer/refined")) / "refine.yaml"
    made = load_config(RefineConfig, shipped, migrate_ppo_section)
    resolved = [dataclasses.replace(c, ppo=c.resolved_ppo(50)) for c in (cfg, made)]
    assert resolved[0] == resolved[1]
    assert cfg.ppo.actor_optim.learning_rate == 1e-5 and cfg.ppo.horizon == 50


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
    from robolearn.runs.refine import initial_windows

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
    assert row["step"] == 1 and row["early_shift"] >= 0
    # with a start step the actor is anchored on the recorded frames before it, by default
    resolved = load_yaml(RefineConfig, out / "refine.yaml")
    assert (resolved.ppo.early_bc_coef, resolved.ppo.horizon) == (10.0, 2)
    assert read_ppo_config(out) == resolved.ppo

    # the early pool: every frame before the start step, with the BC policy's mean action
    from robolearn.runs.parts import load_parts
    from robolearn.runs.refine import early_frames

    cfg = RefineConfig(task="drawer", data=(str(parts["data"]),), start_step=4)
    loaded = load_parts("drawer", str(parts["wm"]), str(parts["bc"]), str(parts["reward"]))
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


def test_existing_run_is_not_overwritten_nor_resumed_with_other_parts(parts, tmp_path, capsys):
    out = tmp_path / "refined"
    assert _refine(parts, out, iterations=1) == 0
    capsys.readouterr()
    assert _refine(parts, out, iterations=1) == 2
    assert "--resume" in capsys.readouterr().err
    other = shutil.copytree(parts["reward"], tmp_path / "reward-copy")
    assert _refine(parts, out, "--resume", iterations=2, reward=str(other)) == 2
    err = capsys.readouterr().err
    assert f"was refined with reward {str(parts['reward'])!r}, not {str(other)!r}" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["refine", "--out", str(tmp_path / "none")]) == 2
    assert "give --task" in capsys.readouterr().err


def test_the_sampler_flags_choose_how_the_world_model_imagines(parts, tmp_path, capsys):
    """--sampler-steps (the few-step option, as in imagine and eval): refine.yaml records the
    sampler used, and a resume with another one is a one-line error."""
    import yaml

    out = tmp_path / "refined"
    assert _refine(parts, out, "--sampler-steps", "1", iterations=1) == 0
    saved = yaml.safe_load((out / "refine.yaml").read_text())
    assert saved["sampler_steps"] == 1 and saved["sampler_method"] == "euler"
    capsys.readouterr()
    assert _refine(parts, out, "--resume", "--sampler-steps", "2", iterations=2) == 2
    err = capsys.readouterr().err
    assert "imagined with --sampler-steps 1, not 2" in err and len(err.strip().splitlines()) == 1
    assert _refine(parts, out, "--resume", "--sampler-steps", "1", iterations=2) == 0


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_std_floor_end_narrows_the_exploration_over_the_run(parts, tmp_path):
    """--std-floor-end: the floor goes linearly from --std-floor to it over --iterations, the
    imagined actions sampled and scored at the same floor (the actor's KL to the rollout policy
    stays ~0 at a small step; scored at another floor than sampled it would not)."""
    out = tmp_path / "narrowing"
    argv = ["--std-floor", "0.9", "--std-floor-end", "0.3", "--actor-lr", "1e-6"]
    assert _refine(parts, out, *argv, iterations=2) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["std_floor"] for r in rows], [0.9, 0.3], rtol=1e-6)
    assert rows[0]["std"] >= 0.9 - 1e-6 and rows[1]["std"] >= 0.3 - 1e-6
    assert rows[1]["actor_updates"] > 0 and rows[1]["approx_kl"] < 1e-3, rows[1]
    assert read_ppo_config(out).std_floor_end == 0.3


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


def test_start_frames_are_read_through_the_input_pipeline(tmp_path):
    """Only the frames up to the start step are kept, the same whether the episodes are held in
    RAM or streamed from the pack (input.mode); they are the store's episodes' first frames."""
    from types import SimpleNamespace

    from robolearn.data.pipeline import PipelineConfig
    from robolearn.data.store import iter_episodes
    from robolearn.runs.refine import initial_windows, recorded_episodes

    data = write_random_store(tmp_path / "d", 3, 6, image_size=16, seed=4)
    write_random_store(data, 2, 6, image_size=16, task="push")
    episodes = [ep for _, ep in iter_episodes(data) if ep.meta.task == "drawer"]
    info = SimpleNamespace(context=3, image_size=16, action_dim=7)
    read = {}
    for mode in ("memory", "stream"):
        pipeline = PipelineConfig(mode=mode, memory_mb=0.001 if mode == "stream" else 64)
        cfg = RefineConfig(task="drawer", data=(str(data),), start_step=4, input=pipeline)
        starts = recorded_episodes(cfg, 16, progress=False)
        assert len(starts) == 3
        for start, ep in zip(starts, episodes, strict=True):
            np.testing.assert_array_equal(start.image, ep.image[:5])
            np.testing.assert_array_equal(start.action, ep.action[:4])
            np.testing.assert_array_equal(start.proprio, ep.proprio[:5])
        read[mode] = initial_windows(cfg, info, starts)
    assert (data / "packed").is_dir()
    for ram, streamed in zip(read["memory"], read["stream"], strict=True):
        np.testing.assert_array_equal(ram, streamed)
    # start step 0: the first frame and proprio, padded as at a reset (zero actions)
    cfg = RefineConfig(task="drawer", data=(str(data),), input=PipelineConfig(mode="stream"))
    starts = recorded_episodes(cfg, 16, progress=False)
    assert [s.image.shape[0] for s in starts] == [1, 1, 1] and starts[0].action.shape == (0, 7)
    frames, actions, proprio = initial_windows(cfg, info, starts)
    assert frames.shape == (3, 3, 16, 16, 3) and not actions.any()
    np.testing.assert_array_equal(frames[:, 0], np.stack([ep.image[0] for ep in episodes]))
    np.testing.assert_array_equal(proprio[:, -1], np.stack([ep.proprio[0] for ep in episodes]))
