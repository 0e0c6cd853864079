"""`robolearn finetune` end to end on tiny parts (a BC policy and a reward classifier trained for a
few steps) in the real drawer simulator: online episodes recorded into the run's store and
rewarded only by the classifier (the simulator's success flag and reward never reach the
learner), updates after the warm-up, a checkpoint that eval loads as a policy, resume after a
kill mid-episode, offline data kept RLPD-style, one-line errors."""

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from robolearn.reward_models.checkpoint import load_reward_model
from test_imagine import _outcome_store, _train_bc
from test_refine import _train_reward

from robolearn import envs
from robolearn.cli import main
from robolearn.core.seeds import episode_seed
from robolearn.data.store import iter_episodes
from robolearn.policies.bc.checkpoint import EXPORT_DIR, load_policy, read_info
from robolearn.runs import online
from robolearn.runs.finetune import FinetuneConfig, run_finetune

SMALL = [
    "sac.critic.channels=[8,8]",
    "sac.critic.strides=[4,4]",
    "sac.critic.feature_dim=16",
    "sac.critic.hidden=[16]",
]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    data = _outcome_store(root / "data", episodes=8)
    return {
        "data": data,
        "bc": _train_bc(data, root / "bc"),
        "reward": _train_reward(data, root / "reward"),
        "push": _outcome_store(root / "push", episodes=8, task="push"),
    }


def _argv(parts, out, *extra, steps=12):
    argv = ["finetune", "--task", "drawer", "--policy", str(parts["bc"]), "--reward"]
    argv += [str(parts["reward"]), "--steps", str(steps), "--warmup", "5", "--max-steps", "5"]
    argv += ["--batch-size", "8", "--utd", "2", "--ensemble", "2", "--save-every", "5"]
    argv += ["--critic-warmup", "2"]  # two critic-only updates, then the actor follows
    return [*argv, "--out", str(out), "--quiet", *extra, *SMALL]


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _classifier_rewards(parts, episode):
    classifier = load_reward_model(parts["reward"], "drawer")
    prob = classifier.prob(episode.image[1:], "drawer")
    return (prob >= classifier.info.threshold).astype(np.float32)


def test_online_episodes_rewarded_by_the_classifier_then_a_policy_eval_loads(parts, tmp_path):
    out = tmp_path / "ft"
    assert main(_argv(parts, out)) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in episodes] == [5, 5, 2]  # 12 steps, episodes of 5
    for ep in episodes:
        np.testing.assert_array_equal(ep.reward, _classifier_rewards(parts, ep))
        assert ep.meta.extra["reward"] == str(parts["reward"]) and ep.meta.task == "drawer"
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 10, 12]
    assert rows[0]["warmup"] == 1.0 and "q" not in rows[0]  # no update during the warm-up
    assert rows[1]["warmup"] == 0.0 and np.isfinite(rows[-1]["critic_loss"])
    assert {"sim_success", "classifier_success", "alpha", "entropy"} <= set(rows[-1])
    info = read_info(out)
    assert info.kind == "sac" and info.parent == str(parts["bc"])
    assert yaml.safe_load((out / "finetune.yaml").read_text())["sac"]["utd"] == 2
    assert read_info(out / EXPORT_DIR).weights == "actor"
    policy = load_policy(out, "drawer")
    assert policy.step > 0  # the actor after updates, not the BC's
    # alpha's target: the BC actor's own entropy on the states it acted on before the first
    # update (the warm-up's 5, and the first of the next episode: its step 6 came before)
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.bc.train import make_act_fn
    from robolearn.runs.finetune import _gaussian_entropy

    actor_cfg, stats = policy_ckpt.read_config(parts["bc"])
    graph, params, _ = policy_ckpt.restore_actor(parts["bc"], actor_cfg)
    image = np.concatenate([episodes[0].image[:5], episodes[1].image[:1]])
    proprio = np.concatenate([episodes[0].proprio[:5], episodes[1].proprio[:1]])
    _, log_std = make_act_fn(graph, stats)(params, image, proprio)
    expected = np.mean([_gaussian_entropy(np.asarray(row)) for row in log_std])
    target = yaml.safe_load((out / "sac.yaml").read_text())["target_entropy"]
    assert target == pytest.approx(expected, abs=1e-3) and target != -3.5
    # after the two critic-only updates the actor followed: its metrics are in
    assert "alpha" in rows[1] and "alpha" in rows[2]
    argv = ["eval", "--task", "drawer", "--policy", str(out), "--episodes", "1", "--max-steps"]
    assert (
        main([*argv, "3", "--video-episodes", "0", "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    )


class _Lying:
    """The real drawer task, but every step claims success and a huge reward; optionally
    interrupted (a kill) at environment step `kill_at`."""

    def __init__(self, kill_at=None, **kwargs):
        self.task, self.kill_at, self.steps = envs.make("drawer", **kwargs), kill_at, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def step(self, action):
        self.steps += 1
        if self.kill_at is not None and self.steps == self.kill_at:
            raise KeyboardInterrupt
        obs, _, terminated, truncated, info = self.task.step(action)
        return obs, 1000.0, terminated, truncated, {**info, "success": True}


def _config(parts, argv):
    from robolearn.cli import parse, resolve_config

    command, args, flags = parse(argv)
    return resolve_config(command, args, flags)


def test_no_simulator_success_reaches_the_learner_and_a_killed_run_resumes(parts, tmp_path):
    out = tmp_path / "ft"
    cfg = _config(parts, _argv(parts, out))
    assert isinstance(cfg, FinetuneConfig)
    with pytest.raises(KeyboardInterrupt):  # killed in the third episode (step 12 of 12)
        run_finetune(cfg, out, progress=False, make_task=lambda *a, **k: _Lying(12, **k))
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in episodes] == [5, 5]  # the cut episode is not kept
    assert not list((out / "online" / "episodes").glob("*.partial"))
    for ep in episodes:
        assert ep.success[1:].all()  # the simulator's claim is recorded for people to read ...
        np.testing.assert_array_equal(ep.reward, _classifier_rewards(parts, ep))  # ... not used
    assert [r["step"] for r in _rows(out)] == [5, 10]
    result = run_finetune(
        cfg, out, resume=True, progress=False, make_task=lambda *a, **k: _Lying(None, **k)
    )
    assert result["env_steps"] == 12 and result["run_steps"] == 2 and result["updates"] == 2
    assert [r["step"] for r in _rows(out)] == [5, 10, 12]
    assert [ep.num_steps for _, ep in iter_episodes(out / "online")] == [5, 5, 2]
    assert result["recent"]["drawer"]["sim_success"] == 1.0  # logged as the simulator says


def test_offline_data_pretrains_with_calql_and_joins_every_batch(parts, tmp_path):
    out = tmp_path / "rlpd"
    data = ["--data", str(parts["data"]), "--offline-steps", "3", "--offline-ratio", "0.5"]
    assert main(_argv(parts, out, *data, steps=6)) == 0
    assert yaml.safe_load((out / "finetune.yaml").read_text())["data"] == [str(parts["data"])]
    rows = _rows(out)
    assert rows[0]["step"] == 0 and rows[0]["offline/cql"] != 0.0  # Cal-QL's regularizer
    assert rows[-1]["step"] == 6 and np.isfinite(rows[-1]["critic_loss"])
    assert "cql" in rows[-1] and rows[-1]["cql"] == 0.0  # online: SAC (WSRL)
    # 3 pre-training updates before acting, then one per step after the warm-up (step 6)
    assert load_policy(out, "drawer").step == 4


def _judge(images):
    """A stand-in verdict that is a fixed function of each frame (about one frame in three
    succeeds), so a resumed run judges a stored frame as the online step did."""
    import zlib

    return np.asarray([float(zlib.crc32(im.tobytes()) % 3 == 0) for im in images], np.float32)


def test_end_on_success_ends_episodes_at_the_first_rewarded_frame_as_terminal(
    parts, tmp_path, monkeypatch
):
    """--end-on-success: an episode ends on the step the classifier rewards, and that step's
    transition is terminal, online and when a resumed run rebuilds its buffer; offline episodes
    are cut at their first rewarded frame."""
    from robolearn.runs import finetune

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    added, rebuilt = [], []
    one, transitions = finetune._one, finetune._transitions

    def spy_one(prev, action, r, obs, gamma, terminal=False):
        added.append((r, terminal))
        return one(prev, action, r, obs, gamma, terminal)

    def spy_transitions(*args, **kwargs):
        tr = transitions(*args, **kwargs)
        rebuilt.append(tr)
        return tr

    monkeypatch.setattr(finetune, "_one", spy_one)
    monkeypatch.setattr(finetune, "_transitions", spy_transitions)
    out = tmp_path / "eos"
    cfg = _config(parts, _argv(parts, out, "--end-on-success", steps=16))
    assert cfg.end_on_success
    with pytest.raises(KeyboardInterrupt):  # killed at step 14
        run_finetune(cfg, out, progress=False, make_task=lambda *a, **k: _Lying(14, **k))
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert episodes and sum(ep.num_steps for ep in episodes) <= len(added)  # (a cut one dropped)
    for ep in episodes:
        np.testing.assert_array_equal(ep.reward, _judge(ep.image[1:]))
        assert not ep.reward[:-1].any()  # nothing rewarded before the end ...
        assert ep.reward[-1] == 1.0 or ep.num_steps == 5  # ... which is success or the limit
    assert any(ep.num_steps < 5 for ep in episodes), "no episode ended on success"
    assert all(terminal == (r == 1.0) for r, terminal in added)  # the step of success is terminal
    run_finetune(cfg, out, resume=True, progress=False, make_task=lambda *a, **k: _Lying(None, **k))
    assert len(rebuilt) == len(episodes)  # the stored episodes, judged again on resume
    for ep, tr in zip(episodes, rebuilt, strict=True):
        assert tr.terminal[-1] == ep.reward[-1] and not tr.terminal[:-1].any()
    # an offline episode is cut after its first rewarded frame, a terminal transition
    ep = next(ep for _, ep in iter_episodes(parts["data"]) if _judge(ep.image[1:-1]).any())
    judged = _judge(ep.image[1:])
    tr = transitions(ep, judged, 0.99, judged, 0.5)
    first = int(np.flatnonzero(judged)[0])
    assert len(tr.reward) == first + 1 and tr.terminal[-1] == 1.0 and tr.reward[-1] == 1.0
    np.testing.assert_array_equal(tr.next_image[-1], ep.image[first + 1])
    whole = transitions(ep, judged, 0.99)
    assert len(whole.reward) == ep.num_steps and not whole.terminal.any()


@pytest.mark.parametrize("flags", [["sac.mc_bound=true"], ["--actor-loss", "awr"]])
def test_mc_bound_adds_each_episode_when_it_ends_with_its_returns(
    parts, tmp_path, monkeypatch, flags
):
    """sac.mc_bound and the awr actor: an online episode's steps reach the buffer together when
    it ends, each with its Monte-Carlo return in the episode (what bounds the TD target below,
    what AWR weighs by); updates before the first episode ends find an empty buffer and wait."""
    from robolearn.policies.sac import replay
    from robolearn.policies.sac.losses import mc_returns

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    added = []
    add = replay.Replay.add

    def spy(self, buffer, transitions):
        added.append(transitions)
        return add(self, buffer, transitions)

    monkeypatch.setattr(replay.Replay, "add", spy)
    out = tmp_path / "mc"
    argv = _argv(parts, out, *flags, steps=12)
    argv[argv.index("--warmup") + 1] = "0"  # updates from the first step on
    assert main(argv) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [len(t.reward) for t in added] == [ep.num_steps for ep in episodes]
    for ep, tr in zip(episodes, added, strict=True):
        np.testing.assert_array_equal(tr.reward, ep.reward)
        np.testing.assert_allclose(tr.mc_return, mc_returns(ep.reward, 0.99), rtol=1e-6)
        np.testing.assert_array_equal(tr.next_image, ep.image[1:])
    assert any(t.mc_return[0] > 0 for t in added), "no episode earned a reward to carry back"
    assert "critic_loss" in _rows(out)[-1]


@pytest.mark.parametrize("floor", [0.0, 0.5])
def test_acting_explores_at_the_std_floor(floor):
    """sac.std_floor: a sharp actor (std e^-5) acts with max(std, floor), and the entropy its
    target is set from is the one it acts with."""
    from types import SimpleNamespace

    from robolearn.policies.sac.config import SACConfig
    from robolearn.runs import finetune

    learner = object.__new__(finetune._Learner)
    learner.sac = SACConfig(std_floor=floor)
    learner.state = SimpleNamespace(params=None)
    learner._act = lambda params, image, proprio: (np.zeros((1, 7)), np.full((1, 7), -5.0))
    learner._target_entropy, learner._entropies = None, []
    obs = {"image": np.zeros((8, 8, 3), np.uint8), "proprio": np.zeros(7, np.float32)}
    rng = np.random.default_rng(0)
    actions = np.stack([learner.act(obs, rng) for _ in range(400)])
    std = max(floor, np.exp(-5.0))
    assert actions.std() == pytest.approx(std, rel=0.1)
    assert learner._entropies[0] == pytest.approx(
        7 * (0.5 * np.log(2 * np.pi * np.e) + np.log(std))
    )


class _Scenes:
    """The real drawer task, recording the seed of every reset; `made` lists every one built."""

    made: list = []

    def __init__(self, **kwargs):
        self.task, self.seeds, self.closed = envs.make("drawer", **kwargs), [], False
        _Scenes.made.append(self)

    def __getattr__(self, name):
        return getattr(self.task, name)

    def reset(self, seed=None):
        self.seeds.append(seed)
        return self.task.reset(seed=seed)

    def close(self):
        self.closed = True
        self.task.close()


def test_eval_episodes_score_every_save_s_mean_actions_apart_from_the_learner(
    parts, tmp_path, capsys
):
    """--eval-episodes: after every save the saved actor's mean actions run that many episodes
    on `robolearn eval --seed`'s scenes in a task of their own, logged as eval/sim_success with
    its interval and printed at the end; none of their steps reaches the store, the step count
    or the learner; the last one is what `robolearn eval` says of the run."""
    out = tmp_path / "ft"
    cfg = _config(parts, _argv(parts, out, "--eval-episodes", "2", "--eval-seed", "3"))
    _Scenes.made.clear()
    result = run_finetune(cfg, out, progress=False, make_task=lambda *a, **k: _Scenes(**k))
    training, *evaluations = _Scenes.made
    assert len(evaluations) == 3 and all(t.closed for t in _Scenes.made)  # saves at 5, 10, 12
    for each in evaluations:
        assert each.seeds == [episode_seed(3, 0), episode_seed(3, 1)]
    assert episode_seed(3, 0) not in training.seeds
    assert result["env_steps"] == 12
    assert [ep.num_steps for _, ep in iter_episodes(out / "online")] == [5, 5, 2]
    evals = [r for r in _rows(out) if "eval/sim_success" in r]
    assert [r["step"] for r in evals] == [5, 10, 12]
    for r in evals:
        assert r["eval/sim_success_low"] <= r["eval/sim_success"] <= r["eval/sim_success_high"]
    assert [e["step"] for e in result["evals"]["drawer"]] == [5, 10, 12]
    argv = ["eval", "--task", "drawer", "--policy", str(out), "--episodes", "2", "--seed", "3"]
    argv += ["--max-steps", "5", "--video-episodes", "0", "--out", str(tmp_path / "ev")]
    assert main([*argv, "--quiet"]) == 0
    final = json.loads((tmp_path / "ev" / "results.json").read_text())["success_rate"]
    assert evals[-1]["eval/sim_success"] == final
    # OUT/best/ is the export of the first save that scored highest, loadable as a policy
    scores = [r["eval/sim_success"] for r in evals]
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["step"] == evals[scores.index(max(scores))]["step"]
    assert (best["sim_success"], best["eval_seed"], best["episodes"]) == (max(scores), 3, 2)
    assert result["best"]["drawer"] == best
    assert read_info(out / "best").weights == "actor"
    assert load_policy(out / "best", "drawer", envs.ACTION_DIM).step == best["step"]
    # the command prints the curve
    capsys.readouterr()
    assert main(_argv(parts, tmp_path / "ft2", "--eval-episodes", "1", steps=5)) == 0
    assert (
        "mean actions at each save (1 evaluation episode, seed 0; never rewarded): 5: "
        in capsys.readouterr().out
    )


def _evaluated_save(out, step):
    """A learner whose OUT/policy/ export stands for the save at `step` (a marker file)."""
    learner = online.OnlineLearner.__new__(online.OnlineLearner)
    learner.out = out
    export = out / EXPORT_DIR
    export.mkdir(parents=True, exist_ok=True)
    (export / "step").write_text(str(step))
    return learner


@pytest.mark.parametrize(
    "saves, kept",
    [
        ([(0.4, 0, True), (0.6, 0, True), (0.5, 0, False)], 2),  # the highest
        ([(0.6, 0, True), (0.6, 0, False)], 1),  # ties keep the earlier save
        ([(0.8, 0, True), (0.2, 1, True)], 2),  # a best judged on other scenes is no bar
    ],
)
def test_the_best_evaluated_save_is_kept_and_survives_a_resume(tmp_path, saves, kept):
    """keep_if_best copies the export to OUT/best/ only when it beats every earlier save on the
    same scenes; the bar is read back from OUT/best/best.json, as a resumed run reads it."""
    out = tmp_path / "ft"
    for step, (score, seed, new_best) in enumerate(saves, start=1):
        learner = _evaluated_save(out, step)  # a fresh learner each time: as after a resume
        row = {"sim_success": score, "sim_success_low": 0.0, "sim_success_high": 1.0}
        record = learner.keep_if_best(row, step, seed, 50)
        assert record == (
            {"step": step, **row, "eval_seed": seed, "episodes": 50} if new_best else None
        )
    assert (out / "best" / "step").read_text() == str(kept)
    best = learner.best()
    assert (best["step"], best["sim_success"]) == (kept, saves[kept - 1][0])
    assert not (out / "best.writing").exists()


def test_a_damaged_best_record_is_replaced_with_a_warning(tmp_path, capsys):
    learner = _evaluated_save(tmp_path / "ft", 7)
    (tmp_path / "ft" / "best").mkdir()
    (tmp_path / "ft" / "best" / "best.json").write_text('{"sim_success": ')
    assert learner.best() is None
    assert "best.json: unreadable" in capsys.readouterr().err
    row = {"sim_success": 0.1, "sim_success_low": 0.0, "sim_success_high": 0.3}
    assert learner.keep_if_best(row, 7, 0, 50)["step"] == 7
    assert learner.best()["sim_success"] == 0.1


def test_the_progress_line_shows_the_last_save_s_evaluation():
    from robolearn.runs.finetune import _status

    class Learner:
        task, evals = "drawer", [{"step": 3200, "sim_success": 0.84}]

        def summary(self):
            return {
                "episodes": 4,
                "classifier_success": 0.5,
                "sim_success": 0.25,
                "contradicted": 0,
            }

    text = _status(Learner(), {})
    assert text == "drawer  classifier success 50%  sim 25%  eval 84% (at 3200)"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eval-episodes", "2", "--ros2"], "--eval-episodes runs the saved policy in a simul"),
        (["--eval-episodes", "-1"], "eval_episodes must be >= 0"),
        (["sac.cql_alpha=5"], "offline \\(Cal-QL\\) pre-training"),
        (["--data", "DATA"], "--data is used by --offline-steps or --offline-ratio"),
        (["--offline-steps", "3"], "need --data DIR"),
        (["--data", "DATA", "--offline-ratio", "0.01"], "leaves no room for offline"),
        (["--data", "PUSH", "--offline-steps", "1"], "an episode of task 'push', not 'drawer'"),
        (["--replay-capacity", "4"], "must hold at least one batch"),
        (
            [
                "--backward-task",
                "push",
                "--backward-policy",
                "PUSH_BC",
                "--backward-reward",
                "PUSH_REWARD",
            ],
            "'push' does not share 'drawer''s scene",
        ),
        (["--exclusive-success"], "--exclusive-success needs --backward-task"),
        (["--return-to-start"], "--return-to-start moves the arm between reset-free phases"),
        (["--task", "metaworld/lever-pull-40hz", "--bridge"], "not a WidowX task"),
        (["--energy-coef", "1"], "--energy-coef needs --bridge or --ros2"),
        (["--bridge", "energy_cost=joules"], "expected one of injected, drawn"),
        (["--bridge", "--ros2"], "choose one"),
        (["--no-filter"], "--no-filter is for --bridge"),
        (["--ros-params", "output_mode:=joint_trajectory"], "they need --ros2"),
        (["--ros2", "--ros-params", "output_mode=joint_trajectory"], "expected NAME:=VALUE"),
        (["--task", "metaworld/lever-pull-40hz", "--ros2"], "--ros2 drives the WidowX"),
        (["--learner", "ppo"], "--warmup is the sac learner's: ppo learns"),
        (["--learner", "ppo", "--warmup", "0", "--data", "DATA"], "--data is for the sac and"),
        (["--learner", "ppo", "--warmup", "0", "ppo.horizon=7"], "ppo.horizon 7: it is the"),
        (["--learner", "ppo", "--warmup", "0", "ppo.minibatches=3"], "divisible by minibatches"),
        (["--learner", "filtered-bc"], "--warmup is the sac learner's: filtered-bc"),
        (
            ["--learner", "filtered-bc", "--warmup", "0", "--bridge", "--energy-coef", "1"],
            "--energy-coef is not for --learner filtered-bc",
        ),
        (
            ["--learner", "filtered-bc", "--warmup", "0", "--offline-ratio", "0.5"],
            "--offline-ratio",
        ),
        (["--learner", "filtered-bc", "--warmup", "0", "filtered_bc.std_floor=2"], "in \\[0, 1\\]"),
    ],
)
def test_bad_settings_are_one_line_errors(parts, tmp_path, capsys, extra, message):
    swap = {"DATA": str(parts["data"]), "PUSH": str(parts["push"])}
    if "PUSH_BC" in extra:
        swap["PUSH_BC"] = str(_cached(parts, "push_bc", lambda p: _train_bc(parts["push"], p)))
        swap["PUSH_REWARD"] = str(
            _cached(parts, "push_reward", lambda p: _train_reward(parts["push"], p))
        )
    extra = [swap.get(e, e) for e in extra]
    out = tmp_path / "bad"
    assert main(_argv(parts, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())  # refused before anything was written


def _ppo_argv(parts, out, steps):
    argv = ["finetune", "--task", "drawer", "--policy", str(parts["bc"]), "--reward"]
    argv += [str(parts["reward"]), "--learner", "ppo", "--steps", str(steps), "--max-steps", "5"]
    argv += ["--save-every", "10", "ppo.rollouts=2", "ppo.minibatches=2", "ppo.critic_warmup=1"]
    argv += ["ppo.unroll=false", "ppo.critic.channels=[8,8]", "ppo.critic.strides=[4,4]"]
    return [*argv, "ppo.critic.feature_dim=16", "ppo.critic.hidden=[16]", "--out", str(out)]


def test_ppo_learns_from_whole_real_episodes_rewarded_by_the_classifier(
    parts, tmp_path, monkeypatch
):
    """--learner ppo: every ppo.rollouts complete episodes make one PPO update (at the end of
    the last), on the classifier's rewards, never the simulator's; the run is a policy checkpoint of
    kind ppo; a killed run resumes with its iterations and a fresh batch. The exploration floor
    goes from ppo.std_floor to ppo.std_floor_end over the run's 3 iterations, each batch scored
    at the floor it was sampled at."""
    from robolearn.policies.ppo.checkpoint import read_ppo_config
    from robolearn.runs import finetune_ppo

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    seen, floors = [], []
    update = finetune_ppo.PPOLearner.update

    def spy(self, key):
        if len(self._batch) >= self.ppo.rollouts:
            seen.append([ep["reward"] for ep in self._batch[: self.ppo.rollouts]])
            floors.append(self._floor)  # what the batch was sampled at
        return update(self, key)

    monkeypatch.setattr(finetune_ppo.PPOLearner, "update", spy)
    out = tmp_path / "ppo"
    floor = ["ppo.std_floor=0.9", "ppo.std_floor_end=0.3"]
    cfg = _config(parts, [*_ppo_argv(parts, out, 30), "--quiet", *floor])
    with pytest.raises(KeyboardInterrupt):  # killed in the 6th episode, after two iterations
        run_finetune(cfg, out, progress=False, make_task=lambda *a, **k: _Lying(28, **k))
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in episodes] == [5, 5, 5, 5, 5]
    for ep in episodes:
        assert ep.success[1:].all()  # the lying simulator, recorded ...
        np.testing.assert_array_equal(ep.reward, _judge(ep.image[1:]))  # ... the reward is not
    assert len(seen) == 2  # at steps 10 and 20, each on the two episodes before
    for batch, pair in zip(seen, (episodes[:2], episodes[2:4]), strict=True):
        for rewards, ep in zip(batch, pair, strict=True):
            np.testing.assert_array_equal(rewards, ep.reward)
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25]
    assert [r.get("iteration") for r in rows] == [None, 1.0, None, 2.0, None]
    assert rows[1]["actor_updates"] == 0 and rows[3]["actor_updates"] > 0  # critic warm-up 1
    np.testing.assert_allclose(floors, [0.9, 0.6], rtol=1e-6)
    np.testing.assert_allclose([rows[1]["std_floor"], rows[3]["std_floor"]], floors, rtol=1e-6)
    assert not any("imagined" in k or k == "q" for r in rows for k in r)
    assert read_info(out).kind == "ppo" and read_ppo_config(out).horizon == 5
    saved = yaml.safe_load((out / "finetune.yaml").read_text())
    assert saved["learner"] == "ppo" and saved["warmup"] == 0
    # saved at steps 10 and 20, after iterations 1 and 2 (the 5th episode, stored, is unused)
    assert load_policy(out, "drawer").step == 2
    assert load_policy(out / EXPORT_DIR, "drawer").step == 20  # the export: at its env step
    result = run_finetune(
        cfg, out, resume=True, progress=False, make_task=lambda *a, **k: _Lying(None, **k)
    )
    assert result["env_steps"] == 30 and result["run_steps"] == 5
    assert result["updates"] == 0  # a fresh batch, of one episode: no update
    assert [r["step"] for r in _rows(out)] == [5, 10, 15, 20, 25, 30]
    from robolearn.core import checkpoint as ckpt_io

    assert ckpt_io.make_manager(out).latest_step() == 30


def _ppo_batches(monkeypatch, task="drawer") -> list:
    """The batches `task`'s PPO learner updates on: per update, [(reward, valid)] of its
    episodes."""
    from robolearn.runs import finetune_ppo

    seen, update = [], finetune_ppo.PPOLearner.update

    def spy(self, key):
        if len(self._batch) >= self.ppo.rollouts and self.task == task:
            seen.append([(ep["reward"], ep["valid"]) for ep in self._batch[: self.ppo.rollouts]])
        return update(self, key)

    monkeypatch.setattr(finetune_ppo.PPOLearner, "update", spy)
    return seen


def _padded_as_over(batch, episodes, horizon=5):
    """Each episode in the batch as its recorded one: its rewards, then zeros to the horizon,
    valid for the steps it had."""
    for (reward, valid), ep in zip(batch, episodes, strict=True):
        n = ep.num_steps
        np.testing.assert_array_equal(reward, np.pad(ep.reward, (0, horizon - n)))
        np.testing.assert_array_equal(valid, (np.arange(horizon) < n).astype(np.float32))


@contextlib.contextmanager
def _compiled():
    """The names of the functions XLA compiles inside the block."""
    from jax import monitoring

    names = []

    def listener(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            names.append(kwargs.get("fun_name"))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listener)


@contextlib.contextmanager
def _compiled_in_episodes(monkeypatch, learner_cls):
    """The functions XLA compiles while a `learner_cls` episode runs (from an action to the
    episode's end, where over ROS 2 the arm moves on the robot's clock)."""
    from jax import monitoring

    names, window = [], {"open": False, "starting": False}
    act, end, start = learner_cls.act, learner_cls.end_episode, learner_cls.start

    def opening(self, *args, **kwargs):
        window["open"] = not window["starting"]  # (start's warm-up acts: not an episode)
        return act(self, *args, **kwargs)

    def starting(self, *args, **kwargs):
        window["starting"] = True
        try:
            return start(self, *args, **kwargs)
        finally:
            window["starting"] = False

    def closing(self, *args, **kwargs):
        window["open"] = False
        return end(self, *args, **kwargs)

    def listener(event, duration, **kwargs):
        if window["open"] and event.endswith("backend_compile_duration"):
            names.append(kwargs.get("fun_name"))

    monkeypatch.setattr(learner_cls, "act", opening)
    monkeypatch.setattr(learner_cls, "end_episode", closing)
    monkeypatch.setattr(learner_cls, "start", starting)
    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        monitoring.unregister_event_duration_listener(listener)


def test_ppo_episodes_that_end_on_success_are_padded_as_over(parts, tmp_path, monkeypatch):
    """--learner ppo --end-on-success: an episode ends at the step the classifier rewards; it
    joins the batch padded to the horizon as over (reward 0, valid 0), and the update learns,
    compiled once (a state placed otherwise at the first update compiled it again, 46 s over
    ROS 2 with the arm holding); nothing compiles while an episode runs (the first action did:
    the first episode over ROS 2 held)."""
    from robolearn.runs.finetune_ppo import PPOLearner

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    monkeypatch.setattr(online.Reward, "threshold", 0.5, raising=False)
    seen = _ppo_batches(monkeypatch)
    out = tmp_path / "ppo-eos"
    argv = [*_ppo_argv(parts, out, 20), "--end-on-success", "--quiet"]
    with _compiled() as names, _compiled_in_episodes(monkeypatch, PPOLearner) as acting:
        assert main(argv) == 0
    assert names.count("jit(update)") == 1, names
    assert acting == [], acting
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    for ep in episodes:  # ended at the first rewarded step, or at the horizon
        first = _first_rewarded(ep.reward)
        assert ep.num_steps == (5 if first is None else first + 1) or ep is episodes[-1]
    short = [ep for ep in episodes[:-1] if ep.num_steps < 5]
    assert short, [ep.num_steps for ep in episodes]  # (the stand-in rewards one frame in three)
    assert len(seen) >= 2
    for k, batch in enumerate(seen):
        _padded_as_over(batch, episodes[2 * k : 2 * k + 2])
    rows = [r for r in _rows(out) if "iteration" in r]
    assert [r["iteration"] for r in rows] == list(range(1, len(seen) + 1))
    for row, batch in zip(rows, seen, strict=True):
        assert row["batch_steps"] == sum(v.sum() for _, v in batch)
        assert np.isfinite(row["value_loss"]) and np.isfinite(row["approx_kl"])


def test_ppo_through_the_bridge_a_held_episode_is_over(parts, tmp_path, monkeypatch):
    """--learner ppo --bridge: every command goes through the bridge's filter; when the bridge
    holds (here told to at the third step, as the shield would) the episode ends there, and PPO
    learns it as over (no reward after it, padded)."""
    from robolearn.runs.finetune import _task_maker

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    monkeypatch.setattr(online.Reward, "threshold", 0.5, raising=False)
    seen = _ppo_batches(monkeypatch)

    class HeldAtThird:
        def __init__(self, *args, **kwargs):
            self.task, self.steps = _task_maker(cfg)(*args, **kwargs), 0

        def __getattr__(self, name):
            return getattr(self.task, name)

        def step(self, action):
            self.steps += 1
            if self.steps == 3:
                self.task.bridge.hold(self.task._now(), "test: as the shield would")
            return self.task.step(action)

    out = tmp_path / "ppo-bridge"
    cfg = _config(parts, [*_ppo_argv(parts, out, 12), "--bridge", "--quiet"])
    result = run_finetune(cfg, out, progress=False, make_task=HeldAtThird)
    rows = _rows(out)
    assert [(r["episode_steps"], r["held"]) for r in rows] == [(3, 1.0), (5, 0.0), (4, 0.0)]
    assert all(0 < r["min_tank_energy_j"] <= 5.0 for r in rows)  # through the filter
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    # why the bridge held: in the held episode's metadata, and counted by kind for the run
    assert [ep.meta.extra.get("held") for ep in episodes] == [
        "test: as the shield would",
        None,
        None,
    ]
    assert result["holds"] == {"test": 1}
    assert len(seen) == 1  # the first two episodes; the third, cut by the run's end, unused
    _padded_as_over(seen[0], episodes[:2])
    assert rows[1]["iteration"] == 1.0 and rows[1]["batch_steps"] == 8.0


def _fbc_argv(parts, out, steps, *extra):
    argv = ["finetune", "--task", "drawer", "--policy", str(parts["bc"]), "--reward"]
    argv += [str(parts["reward"]), "--learner", "filtered-bc", "--steps", str(steps)]
    argv += ["--max-steps", "5", "--save-every", "10", "filtered_bc.rollouts=2"]
    argv += ["filtered_bc.grad_steps=3", "filtered_bc.batch_size=4"]
    return [*argv, "--out", str(out), *extra]


def _started_learners(monkeypatch) -> list:
    """The filtered-bc learners a run starts, in order, once they have started."""
    from robolearn.runs import finetune_fbc

    learners, start = [], finetune_fbc.FilteredBCLearner.start

    def remember(self, stored, offline):
        start(self, stored, offline)
        learners.append(self)

    monkeypatch.setattr(finetune_fbc.FilteredBCLearner, "start", remember)
    return learners


def _first_rewarded(rewards) -> int | None:
    hits = np.flatnonzero(np.asarray(rewards) >= 0.5)
    return int(hits[0]) if len(hits) else None


def test_filtered_bc_imitates_the_episodes_the_classifier_rewarded(parts, tmp_path, monkeypatch):
    """--learner filtered-bc: every filtered_bc.rollouts episodes the actor takes grad_steps BC
    steps on the online episodes the classifier rewarded (never the simulator: it calls every
    step a success here), each cut after its first rewarded step, and on the --data episodes the
    classifier calls successful (cut alike); the run is a BC-kind policy checkpoint; a killed
    run resumes with the same kept episodes, rebuilt from the store."""
    from robolearn.policies.bc.config import FilteredBCConfig
    from robolearn.runs import finetune_fbc

    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    monkeypatch.setattr(online.Reward, "threshold", 0.5, raising=False)
    seen = []
    update = finetune_fbc.FilteredBCLearner.update

    def spy(self, key):
        if self._episodes >= self.fbc.rollouts:
            seen.append([image.copy() for image, _, _ in self._kept])
        return update(self, key)

    monkeypatch.setattr(finetune_fbc.FilteredBCLearner, "update", spy)
    out = tmp_path / "fbc"
    argv = _fbc_argv(parts, out, 30, "--data", str(parts["data"]), "--quiet")
    cfg = _config(parts, argv)
    with pytest.raises(KeyboardInterrupt):  # killed in the 6th episode, after two updates
        run_finetune(cfg, out, progress=False, make_task=lambda *a, **k: _Lying(28, **k))
    offline = [ep for _, ep in iter_episodes(parts["data"])]
    online_eps = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in online_eps] == [5, 5, 5, 5, 5]

    def kept(episodes, rewards):
        return [ep.image[: k + 1] for ep, r in zip(episodes, rewards, strict=True)
                if (k := _first_rewarded(r)) is not None]  # fmt: skip

    demos = kept(offline, [_judge(ep.image[1:]) for ep in offline])
    assert demos and sum(map(len, demos)) < sum(ep.num_steps for ep in offline)  # cut short
    for ep in online_eps:
        assert ep.success[1:].all()  # the lying simulator, recorded ...
        np.testing.assert_array_equal(ep.reward, _judge(ep.image[1:]))  # ... never imitated on
    assert len(seen) == 2  # after episodes 2 and 4
    for pool, n in zip(seen, (2, 4), strict=True):
        expected = demos + kept(online_eps[:n], [ep.reward for ep in online_eps[:n]])
        assert len(pool) == len(expected)
        for got, want in zip(pool, expected, strict=True):
            np.testing.assert_array_equal(got, want)
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25]
    assert [r.get("grad_steps") for r in rows] == [None, 3.0, None, 6.0, None]
    assert np.isfinite(rows[3]["bc_nll"]) and rows[3]["kept_episodes"] == len(seen[1])
    info = read_info(out)
    assert info.kind == "bc" and info.parent == str(parts["bc"])
    saved = yaml.safe_load((out / "finetune.yaml").read_text())
    assert saved["learner"] == "filtered-bc" and saved["warmup"] == 0
    assert saved["filtered_bc"]["grad_steps"] == 3
    assert load_policy(out, "drawer").step == 6  # saved at step 20, after the second update
    # resumed: the kept episodes come back from the store (recorded rewards) and the --data
    cfg = _config(parts, [*argv, "--resume"])
    learners = _started_learners(monkeypatch)
    result = run_finetune(
        cfg, out, resume=True, progress=False, make_task=lambda *a, **k: _Lying(None, **k)
    )
    assert result["env_steps"] == 30 and result["updates"] == 0  # a fresh batch of one
    expected = kept(online_eps, [ep.reward for ep in online_eps])
    assert int(learners[0].state.step) == 6
    assert len(learners[0]._kept) == len(demos) + len(expected)
    assert FilteredBCConfig(grad_steps=3, rollouts=2, batch_size=4) == learners[0].fbc


def test_filtered_bc_acts_at_its_std_floor():
    """filtered_bc.std_floor: a sharp actor (std e^-5) samples at max(std, floor), clipped."""
    from types import SimpleNamespace

    from robolearn.policies.bc.config import FilteredBCConfig
    from robolearn.runs.finetune_fbc import FilteredBCLearner

    learner = object.__new__(FilteredBCLearner)
    learner.fbc = FilteredBCConfig(std_floor=0.3)
    learner.state = SimpleNamespace(params=None)
    learner._act = lambda params, image, proprio: (np.full((1, 7), 0.9), np.full((1, 7), -5.0))
    obs = {"image": np.zeros((8, 8, 3), np.uint8), "proprio": np.zeros(7, np.float32)}
    rng = np.random.default_rng(0)
    actions = np.stack([learner.act(obs, rng) for _ in range(400)])
    assert actions.max() <= 1.0 and (actions == 1.0).mean() > 0.2  # clipped, as the task sees
    import math

    d = (1.0 - 0.9) / 0.3  # E[min(X, 1)] for X ~ N(0.9, 0.3^2)
    tail = math.exp(-d * d / 2) / math.sqrt(2 * math.pi) - d * 0.5 * math.erfc(d / math.sqrt(2))
    assert actions.mean() == pytest.approx(0.9 - 0.3 * tail, abs=0.02)
    assert actions[actions < 1.0].std() > 0.15  # the floor's spread, not e^-5


def _cached(parts, name, make):
    path = Path(parts["bc"]).parent / name
    return path if path.exists() else make(path)


def test_acting_through_the_bridge_on_the_simulated_arm(parts, tmp_path):
    out = tmp_path / "bridge"
    assert main(_argv(parts, out, "--bridge", steps=6)) == 0
    rows = _rows(out)
    assert [r["step"] for r in rows] == [5, 6]
    # every command passed the passivity filter: its tank is logged per episode
    assert all(0 < r["min_tank_energy_j"] <= 5.0 for r in rows)
    assert {"filter_activations", "interventions", "held"} <= set(rows[0])
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in episodes] == [5, 1]
    for ep in episodes:
        np.testing.assert_array_equal(ep.reward, _classifier_rewards(parts, ep))


def test_filtered_bc_through_the_bridge_imitates_what_the_bridge_executed(
    parts, tmp_path, monkeypatch
):
    """--learner filtered-bc --bridge: episodes go through the bridge's filter like any learner's,
    and a rewarded one is kept with the actions the policy gave (the bridge's ramp is its own)."""
    monkeypatch.setattr(online.Reward, "prob", lambda self, images: _judge(images))
    monkeypatch.setattr(online.Reward, "threshold", 0.5, raising=False)
    learners = _started_learners(monkeypatch)
    out = tmp_path / "fbc-bridge"
    assert main(_fbc_argv(parts, out, 10, "--bridge", "--quiet")) == 0
    rows = _rows(out)
    assert all(0 < r["min_tank_energy_j"] <= 5.0 for r in rows)  # through the filter
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    expected = [ep for ep in episodes if _first_rewarded(ep.reward) is not None]
    assert expected and len(learners[0]._kept) == len(expected)
    for (image, _, action), ep in zip(learners[0]._kept, expected, strict=True):
        k = _first_rewarded(ep.reward)
        np.testing.assert_array_equal(image, ep.image[: k + 1])
        np.testing.assert_allclose(action, ep.action[: k + 1], atol=1e-6)
    assert load_policy(out, "drawer").step == 3 * (len(episodes) // 2)


@pytest.mark.parametrize("cost", ["injected", "drawn"])
def test_energy_cost_comes_off_every_reward_through_the_bridge(parts, tmp_path, cost):
    out = tmp_path / "energy"
    argv = _argv(parts, out, "--bridge", "--energy-coef", "0.5", "--energy-cost", cost, steps=6)
    assert main(argv) == 0
    rows = _rows(out)
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    for row, ep in zip(rows, episodes, strict=True):
        judged = _classifier_rewards(parts, ep)
        paid = judged - ep.reward  # 0.5 per joule of the cost in that step
        assert paid.sum() == pytest.approx(0.5 * row[f"{cost}_energy_j"], rel=1e-4, abs=1e-6)
        if cost == "injected":  # only ever positive
            assert np.all(paid >= 0) and paid.sum() > 0
        assert np.any(paid != 0)
        assert row["classifier_success"] == float(np.any(judged >= 0.5))  # judged unshaped
        assert row["injected_energy_j"] >= row["drawn_energy_j"]  # damping refills the tank
        assert row["min_tank_energy_j"] <= 5.0 - max(row["drawn_energy_j"], 0.0) + 1e-6


def _bridge_energy(policy_dir, seeds=(100, 101, 102), steps=10):
    """Energy (J) the policy's mean actions inject through the bridge on the simulated arm,
    summed over one episode per seed."""
    from robolearn.hardware.sim_arm import BridgeTask

    task, policy, total = BridgeTask("drawer", max_steps=steps), load_policy(policy_dir), 0.0
    try:
        for seed in seeds:
            obs, info = task.reset(seed=seed)
            start, done = info["injected_energy_j"], False
            while not done:
                obs, _, terminated, truncated, info = task.step(policy(obs))
                done = terminated or truncated
            total += info["injected_energy_j"] - start
    finally:
        task.close()
    return total


def test_a_policy_trained_with_the_energy_cost_injects_less(parts, tmp_path):
    """The tiny task: a one-step horizon (gamma 0: Q is the step's own reward), a small learner,
    600 steps through the bridge from the same tiny BC, once without the cost and once with 1 per
    joule injected; then each policy's mean actions over the same three 10-step episodes.
    Measured with learner seeds 0 and 1: 150 -> 43 J and 74 -> 17 J (at 400 steps: 126 -> 68 J
    and 92 -> 45 J)."""
    argv = ["finetune", "--task", "drawer", "--policy", str(parts["bc"]), "--reward"]
    argv += [str(parts["reward"]), "--bridge", "--steps", "600", "--max-steps", "10"]
    argv += ["--warmup", "10", "--critic-warmup", "10", "--utd", "4", "--batch-size", "16"]
    argv += ["--ensemble", "2", "--save-every", "1000", "--quiet", "sac.gamma=0"]
    argv += ["sac.actor_optim.learning_rate=1e-3", "sac.critic.channels=[8,16]"]
    argv += ["sac.critic.strides=[4,4]", "sac.critic.feature_dim=32", "sac.critic.hidden=[64,64]"]
    # both runs at once, each in its own process at XLA's full optimization (the tests' level 0
    # makes these 1200 updates compute-bound: 7 min instead of 2)
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": ""}
    runs = {
        coef: subprocess.Popen(
            [sys.executable, "-m", "robolearn.cli", *argv, "--energy-coef", coef, "--out"]
            + [str(tmp_path / f"coef-{coef}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for coef in ("0", "1")
    }
    for run in runs.values():
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output[-2000:]
    energy = {coef: _bridge_energy(tmp_path / f"coef-{coef}") for coef in runs}
    assert energy["1"] < 0.6 * energy["0"], energy


@pytest.mark.parametrize("no_filter", [False, True])
def test_no_filter_trains_with_the_filter_accounting_only(no_filter):
    from robolearn.runs.finetune import _task_maker

    cfg = FinetuneConfig(task="drawer", bridge=True, no_filter=no_filter)
    task = _task_maker(cfg)("drawer", 64, 5)
    try:
        task.reset(seed=0)
        assert task.bridge.cfg.passivity.enabled is not no_filter
        assert task.bridge.cfg.task == "drawer" and task.bridge.cfg.image_size == 64
        for _ in range(2):  # the tank is accounted either way (what --energy-coef charges)
            *_, info = task.step(np.array([0, 0, -1.0, 0, 0, 0, 0]))
        assert info["injected_energy_j"] > 0
    finally:
        task.close()


def test_resume_refuses_other_parts(parts, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(_argv(parts, out, steps=5)) == 0
    other = Path(parts["bc"]).parent / "bc-other"
    if not other.exists():
        _train_bc(parts["data"], other)
    argv = _argv(parts, out, "--resume", steps=10)
    argv[argv.index("--policy") + 1] = str(other)
    assert main(argv) == 2
    assert "was fine-tuned with policy" in capsys.readouterr().err
    ppo = [*_ppo_argv(parts, out, 10), "--quiet", "--resume"]
    assert main(ppo) == 2  # the SAC run's checkpoints are not PPO's
    assert "fine-tunes learner 'sac', not 'ppo'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def backward(parts, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune-close")
    data = _outcome_store(root / "data", episodes=8, task="drawer-close")
    return {"bc": _train_bc(data, root / "bc"), "reward": _train_reward(data, root / "reward")}


def test_reset_free_practice_alternates_forward_and_backward_without_resets(
    parts, backward, tmp_path, monkeypatch
):

    # the backward classifier sees success at once, the forward one never: forward phases run to
    # the episode length, backward ones end after their first step (switched by the classifier)
    def judged(self, images):
        return np.full(len(images), float(self.task == "drawer-close"), np.float32)

    monkeypatch.setattr(online.Reward, "prob", judged)
    out = tmp_path / "rf"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    argv = _argv(parts, out, *pair, "--backward-reward", str(backward["reward"]), steps=14)
    assert main(argv) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [(ep.meta.task, ep.num_steps) for ep in episodes] == [
        ("drawer", 5), ("drawer-close", 1), ("drawer", 5), ("drawer-close", 1), ("drawer", 2)
    ]  # fmt: skip
    assert episodes[0].meta.extra["reset"] and episodes[0].meta.seed is not None
    for before, ep in zip(episodes, episodes[1:], strict=False):
        assert not ep.meta.extra["reset"] and ep.meta.seed is None
        # no reset between them: each episode starts where the previous one ended
        np.testing.assert_array_equal(ep.image[0], before.image[-1])
        np.testing.assert_array_equal(ep.state[0], before.state[-1])
    assert load_policy(out / "backward", "drawer-close").step > 0  # it learned from its steps
    assert read_info(out / "backward").kind == "sac"
    rows = _rows(out)
    assert "backward/return" in rows[1] and "return" in rows[0]
    # a resumed reset-free run starts with one reset, forward first
    argv = argv[:]
    argv[argv.index("--steps") + 1] = "21"
    assert main([*argv, "--resume"]) == 0
    more = [ep for _, ep in iter_episodes(out / "online")][5:]
    assert more[0].meta.task == "drawer" and more[0].meta.extra["reset"]
    assert [ep.meta.task for ep in more] == ["drawer", "drawer-close", "drawer"]


def test_reset_free_filtered_bc_each_policy_imitates_its_own_task_s_successes(
    parts, backward, tmp_path, monkeypatch
):
    """Reset-free practice with --learner filtered-bc: the backward classifier rewards at once
    (its phases end after one step and are all kept), the forward one never (nothing kept); each
    learner keeps only its own task's episodes, also when a resumed run rebuilds them."""

    def judged(self, images):
        return np.full(len(images), float(self.task == "drawer-close"), np.float32)

    monkeypatch.setattr(online.Reward, "prob", judged)
    learners = _started_learners(monkeypatch)
    out = tmp_path / "rf-fbc"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    pair += ["--backward-reward", str(backward["reward"]), "--quiet"]
    argv = [*_fbc_argv(parts, out, 14), *pair, "filtered_bc.rollouts=1"]
    from robolearn.runs.finetune_fbc import FilteredBCLearner

    with _compiled() as names, _compiled_in_episodes(monkeypatch, FilteredBCLearner) as acting:
        assert main(argv) == 0
    assert names.count("jit(train_step)") == 1, names  # (the two learners' actors: one shape)
    assert acting == [], acting
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [(ep.meta.task, ep.num_steps) for ep in episodes] == [
        ("drawer", 5), ("drawer-close", 1), ("drawer", 5), ("drawer-close", 1), ("drawer", 2)
    ]  # fmt: skip
    forward, back = learners
    assert forward._kept == [] and int(forward.state.step) == 0  # nothing to imitate
    assert len(back._kept) == 2 and int(back.state.step) == 2 * 3  # one update per phase
    assert read_info(out / "backward").kind == "bc"
    assert load_policy(out / "backward", "drawer-close").step == 6
    learners.clear()
    argv[argv.index("--steps") + 1] = "15"
    assert main([*argv, "--resume"]) == 0
    assert learners[0]._kept == [] and len(learners[1]._kept) == 2


def test_reset_free_ppo_each_learner_learns_its_own_phases(parts, backward, tmp_path, monkeypatch):
    """Reset-free practice with --learner ppo: a backward phase the classifier ends after one
    step joins the backward learner's batch as over (padded); the forward phases, to the
    episode length, the forward learner's. Each learner updates on its own task's episodes."""

    def judged(self, images):  # backward phases end at their first step
        return np.full(len(images), float(self.task == "drawer-close"), np.float32)

    monkeypatch.setattr(online.Reward, "prob", judged)
    forward_seen = _ppo_batches(monkeypatch)
    back_seen = _ppo_batches(monkeypatch, "drawer-close")
    out = tmp_path / "rf-ppo"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    pair += ["--backward-reward", str(backward["reward"]), "--quiet"]
    assert main([*_ppo_argv(parts, out, 14), *pair]) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [(ep.meta.task, ep.num_steps) for ep in episodes] == [
        ("drawer", 5), ("drawer-close", 1), ("drawer", 5), ("drawer-close", 1), ("drawer", 2)
    ]  # fmt: skip
    assert len(forward_seen) == 1 and len(back_seen) == 1
    _padded_as_over(forward_seen[0], [episodes[0], episodes[2]])
    _padded_as_over(back_seen[0], [episodes[1], episodes[3]])
    assert back_seen[0][0][0].tolist() == [1, 0, 0, 0, 0]  # rewarded at once, then over
    assert read_info(out / "backward").kind == "ppo"
    assert load_policy(out / "backward", "drawer-close").step == 1
    assert load_policy(out, "drawer").step == 1


@pytest.mark.parametrize("through", [[], ["--bridge"]])
def test_return_to_start_moves_the_arm_back_before_every_reset_free_phase(
    parts, backward, tmp_path, monkeypatch, capsys, through
):
    """--return-to-start: every phase after the first starts with the arm at its start pose
    (the move acted in the simulator, or through the bridge), the drawer as the last phase left
    it; the move's control steps are counted apart, not as online steps."""
    from robolearn.core import widowx_control as control

    def judged(self, images):  # backward phases end at their first step, as above
        return np.full(len(images), float(self.task == "drawer-close"), np.float32)

    monkeypatch.setattr(online.Reward, "prob", judged)
    out = tmp_path / "rf"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    pair += ["--backward-reward", str(backward["reward"]), "--return-to-start", *through]
    assert main(_argv(parts, out, *pair, steps=14)) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [(ep.meta.task, ep.num_steps) for ep in episodes] == [
        ("drawer", 5), ("drawer-close", 1), ("drawer", 5), ("drawer-close", 1), ("drawer", 2)
    ]  # fmt: skip
    assert "return_steps" not in episodes[0].meta.extra  # the run's start is a reset
    moves = [ep.meta.extra["return_steps"] for ep in episodes[1:]]
    assert all(0 <= m <= control.RETURN_MAX_STEPS for m in moves) and sum(moves) > 0
    scene = envs.make("drawer", image_size=16)
    slide = int(scene.model.joint("drawer").qposadr[0])  # the drawer's opening in `state`
    scene.close()
    for before, ep in zip(episodes, episodes[1:], strict=False):
        assert ep.meta.extra["at_start"] and not ep.meta.extra["reset"]
        tip = ep.proprio[0][:3]
        assert np.linalg.norm(tip - control.START_POS_M) < 0.015, tip
        assert abs(ep.state[0][slide] - before.state[-1][slide]) < 0.015  # the scene as left
    rows = [r for r in _rows(out) if "return" in r or "backward/return" in r]
    got = [r.get("return_steps", r.get("backward/return_steps")) for r in rows]
    assert got == [None, *map(float, moves)]
    printed = capsys.readouterr().out
    assert f"start pose before 4 phases in {sum(moves)} control steps" in printed


@pytest.mark.parametrize("exclusive", [False, True])
def test_reset_free_counts_frames_both_classifiers_call_successful_and_can_withhold_them(
    parts, backward, tmp_path, monkeypatch, capsys, exclusive
):
    """Opening and closing exclude each other, so a frame both classifiers call successful shows
    one of them wrong (a policy that learned to fool its classifier: docs/training.md). Such
    frames are counted per episode; with --exclusive-success they earn no reward and end no
    phase, in both directions."""

    def prob(self, images):  # the forward classifier calls every frame successful
        return np.ones(len(images), np.float32) if self.task == "drawer" else _judge(images)

    monkeypatch.setattr(online.Reward, "prob", prob)
    out = tmp_path / "rf"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    pair += ["--backward-reward", str(backward["reward"])]
    argv = _argv(parts, out, *pair, *(["--exclusive-success"] * exclusive), steps=14)
    assert main(argv) == 0
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    rows = [r for r in _rows(out) if "return" in r or "backward/return" in r]
    assert len(rows) == len(episodes) and [ep.meta.task for ep in episodes[:2]] == [
        "drawer", "drawer-close"
    ]  # fmt: skip
    total = 0
    for ep, row in zip(episodes, rows, strict=True):
        other = _judge(ep.image[1:]).astype(bool)
        own = np.ones_like(other) if ep.meta.task == "drawer" else other
        both = own & (other if ep.meta.task == "drawer" else True)
        rewarded = own & ~both if exclusive else own
        np.testing.assert_array_equal(ep.reward, rewarded.astype(np.float32))
        # a phase ends at its first rewarded frame, at the episode length, or with the run
        assert not rewarded[:-1].any()
        assert rewarded[-1] or ep.num_steps == 5 or ep is episodes[-1]
        prefix = "" if ep.meta.task == "drawer" else "backward/"
        assert row[prefix + "contradicted"] == float(both.sum())
        total += int(both.sum())
    assert total > 0
    printed = capsys.readouterr().out
    assert "both classifiers called a frame successful" in printed
    assert ("its reward was withheld" in printed) == exclusive
    assert ("--exclusive-success withholds" in printed) != exclusive


def _ros_graph(monkeypatch, tmp_path) -> tuple[int, list[str]]:
    """A ROS 2 domain of the test's own on this machine (its logs under tmp_path), and the
    bridge node's watchdogs wider than the defaults as --ros-params, as the end-to-end test's (a
    loaded CI machine stalls)."""
    import random

    from bench.ros2_probe import ros_env

    domain = random.SystemRandom().randint(1, 200)
    for name, value in ros_env(domain).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_log"))
    wide = ["joint_state_timeout_s:=0.5", "image_timeout_s:=1.0", "policy_timeout_s:=1.0"]
    return domain, [arg for w in wide for arg in ("--ros-params", w)]


@pytest.mark.slow
def test_over_ros2_against_the_simulated_driver_in_real_time(parts, tmp_path, monkeypatch, capfd):
    # The simulated driver in its own process (real time, real DDS); the bridge node and the
    # learner in this one, as `robolearn finetune --ros2` runs on the robot PC.
    from bench.ros2_probe import DRIVER_MODULE, NodeProcess

    domain, wide = _ros_graph(monkeypatch, tmp_path)
    env = {"ROS_LOG_DIR": str(tmp_path / "ros_log")}
    params = {"task": "drawer", "seed": 3, "vary_scene": True}
    out = tmp_path / "ros2"
    extra = ["--ros2", *wide, "--data", str(parts["data"]), "--offline-ratio", "0.5"]  # (RLPD)
    with NodeProcess(DRIVER_MODULE, params, domain, tmp_path / "driver.log", env) as driver:
        with _compiles_while_acting(monkeypatch) as compiled:
            assert main(_argv(parts, out, *extra, steps=12)) == 0, driver.log()
        log = driver.log()
    # nothing compiled from the first action to the end (a compile takes the CPU for seconds on
    # the arm's time: the updates' first compile in the learner thread made the bridge hold)
    assert compiled == [], compiled
    printed, logged = capfd.readouterr()
    assert "real time: the learner thread ran" in printed
    # the actor never kept the bridge waiting, and no reset's jump was taken for a reading
    for learners_doing in ("policy_late", "policy_error", "no policy step came", "implausible"):
        assert learners_doing not in logged, logged
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    lengths, rows = [ep.num_steps for ep in episodes], _rows(out)
    why = "\n".join(line for line in logged.splitlines() if "ended after" in line)
    held = [r["held"] == 1.0 for r in rows]
    # Episodes of 5 steps (12 in all). The bridge may end one early for what is neither the
    # learner's nor a bug: the shield (the tiny policy's random reach can meet the workspace's
    # edge) or a loaded machine stalling the driver's inputs; that episode is recorded as held.
    if not any(held):
        assert lengths == [5, 5, 2], why
    assert sum(lengths) == 12 and len(rows) == len(lengths), (lengths, why)
    for i, (n, h) in enumerate(zip(lengths, held, strict=True)):
        assert n == 5 or h or i == len(lengths) - 1, (lengths, held, why)
    assert [r["step"] for r in rows] == np.cumsum(lengths).tolist()
    for ep in episodes:  # rewarded by the classifier on the frames the bridge's policy saw
        np.testing.assert_array_equal(ep.reward, _classifier_rewards(parts, ep))
        assert ep.image.shape[1:] == (64, 64, 3) and np.ptp(ep.image) > 0
    # a reset before each episode, each placing the next scene (vary_scene)
    for seed in range(4, 4 + len(episodes)):
        assert f"reset drawer seed {seed}" in log, log
    # every command went through the bridge's filter
    assert all(0 < r["min_tank_energy_j"] <= 5.0 for r in rows), rows
    # the learner thread ran (the updates after the warm-up: it may finish after the last step)
    ran, allowed = map(int, re.search(r"thread ran (\d+) of (\d+) allowed", printed).groups())
    assert allowed == 12 - 5 and 1 <= ran <= allowed
    assert load_policy(out, "drawer").step > 0
    # each episode the bridge did not hold was ended by the learner (the last one too: the arm
    # held while it saved)
    assert logged.count("(robolearn finetune: episode end)") == held.count(False), why


@pytest.mark.slow
def test_over_ros2_ppo_updates_between_episodes_while_the_arm_holds(
    parts, tmp_path, monkeypatch, capfd
):
    # --learner ppo --ros2 against the simulated driver: acting is the actor's forward pass at
    # 5 Hz; the update (its first one compiling) runs after the batch's last episode, the arm
    # held, and the next episode acts with the updated actor after the driver's reset.
    from bench.ros2_probe import DRIVER_MODULE, NodeProcess
    from robolearn.runs.finetune_ppo import PPOLearner

    seen = _ppo_batches(monkeypatch)
    domain, wide = _ros_graph(monkeypatch, tmp_path)
    out = tmp_path / "ppo-ros2"
    extra = ["--ros2", "--quiet", *wide]
    params = {"task": "drawer", "seed": 3, "vary_scene": True}

    with NodeProcess(DRIVER_MODULE, params, domain, tmp_path / "driver.log") as driver:
        with _compiled_in_episodes(monkeypatch, PPOLearner) as acting:
            assert main([*_ppo_argv(parts, out, 15), *extra]) == 0, driver.log()
        log = driver.log()
    assert acting == [], acting  # nothing compiled on the arm's time
    printed, logged = capfd.readouterr()
    for learners_doing in ("policy_late", "policy_error", "no policy step came"):
        assert learners_doing not in logged, logged
    assert "updates ran between episodes, the arm holding" in printed  # no learner thread
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    rows = _rows(out)
    assert sum(ep.num_steps for ep in episodes) == 15 and len(rows) == len(episodes)
    for ep, row in zip(episodes, rows, strict=True):  # 5 steps, or fewer where the bridge held
        assert ep.num_steps == 5 or row["held"] == 1.0, rows
        np.testing.assert_array_equal(ep.reward, _classifier_rewards(parts, ep))
    assert len(seen) >= 1
    _padded_as_over(seen[0], episodes[:2])
    assert rows[1]["iteration"] == 1.0
    for seed in range(4, 4 + len(episodes)):  # a reset before each episode
        assert f"reset drawer seed {seed}" in log, log
    # the policy that acted after the update is the updated one: saved at step 10, then 15
    assert load_policy(out, "drawer").step >= 1


@contextlib.contextmanager
def _compiles_while_acting(monkeypatch):
    """The XLA compiles (thread, function) from the learner's first action until the learner
    thread stops, in any thread."""
    import threading

    from jax import monitoring

    from robolearn.runs import finetune

    compiled, window = [], {"open": False}
    act, stop = finetune._Learner.act, finetune._Updater.stop

    def opening(self, *args, **kwargs):
        window["open"] = True
        return act(self, *args, **kwargs)

    def closing(self, *args, **kwargs):
        window["open"] = False
        return stop(self, *args, **kwargs)

    def listener(event, duration, **kwargs):
        if window["open"] and event.endswith("backend_compile_duration"):
            compiled.append((threading.current_thread().name, kwargs.get("fun_name")))

    monkeypatch.setattr(finetune._Learner, "act", opening)
    monkeypatch.setattr(finetune._Updater, "stop", closing)
    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiled
    finally:
        monitoring.unregister_event_duration_listener(listener)


@pytest.mark.slow
def test_over_ros2_an_actor_later_than_the_deadline_holds_the_arm(parts, tmp_path, monkeypatch):
    # The learner's actor stalls on the second step of the first episode, past the bridge's
    # policy deadline: the bridge holds the arm, the episode ends there, the next one resets.
    import time

    from bench.ros2_probe import DRIVER_MODULE, NodeProcess
    from robolearn.runs import finetune

    domain, wide = _ros_graph(monkeypatch, tmp_path)
    act, calls = finetune._Learner.act, []

    def stalling(self, obs, rng):
        calls.append(1)
        if len(calls) == 2:
            time.sleep(1.5)  # the deadline is 1.0 s here
        return act(self, obs, rng)

    monkeypatch.setattr(finetune._Learner, "act", stalling)
    out = tmp_path / "late"
    extra = ["--ros2", *wide]
    params = {"task": "drawer", "seed": 0}
    with NodeProcess(DRIVER_MODULE, params, domain, tmp_path / "driver.log") as driver:
        assert main(_argv(parts, out, *extra, steps=6)) == 0, driver.log()
    rows = _rows(out)
    assert rows[0]["held"] == 1.0 and rows[0]["episode_steps"] == 2, rows
    assert all(r["held"] == 0.0 for r in rows[1:]), rows
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [ep.num_steps for ep in episodes] == [2, 4]
    assert episodes[0].meta.extra["held"] == "policy_late"  # why, kept with the episode
    assert "held" not in episodes[1].meta.extra


def test_over_ros2_a_start_held_before_its_first_step_is_tried_again(
    parts, tmp_path, monkeypatch, capfd
):
    # A 30,000-step run over ROS 2 on a loaded machine ended at step 15,991: a joint state came
    # 0.117 s late just after an episode's start, the shield held before the first policy step,
    # and the whole run stopped with an error. Here the second episode's start is held the same
    # way: the start is tried again from the measured pose and the run goes on.
    from robolearn.hardware.ros2_node import BridgeNode

    from bench.ros2_probe import DRIVER_MODULE, NodeProcess

    domain, wide = _ros_graph(monkeypatch, tmp_path)
    start, calls = BridgeNode.start, []

    def held_once(self, how):
        calls.append(how)
        started = start(self, how)
        if len(calls) == 2:
            self.hold("shield hold: stale_joint_states (the test's late joint state)")
        return started

    monkeypatch.setattr(BridgeNode, "start", held_once)
    out = tmp_path / "held-start"
    params = {"task": "drawer", "seed": 0}
    with NodeProcess(DRIVER_MODULE, params, domain, tmp_path / "driver.log") as driver:
        assert main(_argv(parts, out, "--ros2", *wide, steps=10)) == 0, driver.log()
    assert len(calls) == 3  # episode 1, episode 2 held at its start, episode 2 again
    assert [ep.num_steps for _, ep in iter_episodes(out / "online")] == [5, 5]
    assert all(r["held"] == 0.0 for r in _rows(out))
    assert "the bridge took no first policy step (shield hold: stale_joint_states" in (
        capfd.readouterr().err
    )


@pytest.mark.slow
@pytest.mark.parametrize("back", [False, True])
def test_over_ros2_reset_free_practice_resets_the_driver_once(
    parts, backward, tmp_path, monkeypatch, back
):
    # Forward and backward phases over ROS 2: the driver is reset at the start only, each phase
    # continues from where the arm is (the bridge restarts from the measured pose); with
    # --return-to-start the arm first moves back to its start pose as bridge policy steps.
    from bench.ros2_probe import DRIVER_MODULE, NodeProcess

    def judged(self, images):  # as above: backward phases end at their first step
        return np.full(len(images), float(self.task == "drawer-close"), np.float32)

    monkeypatch.setattr(online.Reward, "prob", judged)
    domain, wide = _ros_graph(monkeypatch, tmp_path)
    out = tmp_path / "rf"
    pair = ["--backward-task", "drawer-close", "--backward-policy", str(backward["bc"])]
    pair += ["--backward-reward", str(backward["reward"]), "--ros2"]
    pair += wide + ["--return-to-start"] * back
    with NodeProcess(DRIVER_MODULE, {"task": "drawer"}, domain, tmp_path / "driver.log") as driver:
        assert main(_argv(parts, out, *pair, steps=12)) == 0, driver.log()
        log = driver.log()
    episodes = [ep for _, ep in iter_episodes(out / "online")]
    assert [(ep.meta.task, ep.num_steps) for ep in episodes] == [
        ("drawer", 5), ("drawer-close", 1), ("drawer", 5), ("drawer-close", 1)
    ]  # fmt: skip
    assert [ep.meta.extra["reset"] for ep in episodes] == [True, False, False, False]
    assert log.count("reset drawer seed") == 1, log
    held = [v for r in _rows(out) for k, v in r.items() if k in ("held", "backward/held")]
    assert held == [0.0] * 4  # no phase ended by a hold
    if back:
        from robolearn.core import widowx_control as control

        for ep in episodes[1:]:
            assert ep.meta.extra["at_start"] and ep.meta.extra["return_steps"] >= 0
            assert np.linalg.norm(ep.proprio[0][:3] - control.START_POS_M) < 0.015
        assert sum(ep.meta.extra["return_steps"] for ep in episodes[1:]) > 0
    else:
        assert all("return_steps" not in ep.meta.extra for ep in episodes)
