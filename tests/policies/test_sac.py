"""The off-policy learner (robolearn.policies.sac): its pure pieces (Monte-Carlo returns, the TD
target over a random subset of the ensemble, Cal-QL's clamp), the flashbax replay buffer, and the
jitted update learning a one-step task from frames, warm-started from an actor's weights."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats
from robolearn.policies.bc.config import BCConfig, ModelConfig
from robolearn.policies.sac.config import SACConfig
from robolearn.policies.sac.losses import bc_terms, cql_penalty, mc_returns, td_target
from robolearn.policies.sac.replay import Replay, episode_transitions
from robolearn.policies.sac.train import Transitions, init_sac_state, make_update

TINY = ModelConfig(
    image_size=16, proprio_dim=2, action_dim=2, channels=(8,), strides=(4,), feature_dim=16,
    hidden=(32,),
)  # fmt: skip


def test_mc_returns_and_the_td_target_over_a_subset():
    np.testing.assert_allclose(mc_returns(np.array([0.0, 0.0, 1.0]), 0.5), [0.25, 0.5, 1.0])
    q_next = jnp.array([[1.0, 5.0], [2.0, 0.0], [3.0, 4.0]])  # [E = 3, B = 2]
    reward, terminal = jnp.array([1.0, 1.0]), jnp.array([0.0, 1.0])
    every = td_target(jax.random.key(0), q_next, reward, terminal, 0.5, subset=3)
    np.testing.assert_allclose(every, [1.0 + 0.5 * 1.0, 1.0])  # min over all; terminal: r only
    # a pair drawn at random: each column's min over the same two members, never below the min
    for seed in range(5):
        pair = td_target(jax.random.key(seed), q_next, reward, jnp.zeros(2), 1.0, subset=2)
        assert any(
            np.allclose(pair, 1.0 + np.minimum(q_next[i], q_next[j]))
            for i in range(3) for j in range(3) if i != j
        )  # fmt: skip


def test_calql_clamps_the_policy_actions_q_below_by_the_return():
    q_data = jnp.full((2, 3), 1.0)
    q_random = jnp.full((2, 3, 4), -10.0)
    q_policy = jnp.full((2, 3, 4), -5.0)  # a critic that already underrates the policy
    logp = jnp.zeros((3, 4))
    plain = cql_penalty(q_data, q_random, q_policy, logp, action_dim=2)
    high = cql_penalty(q_data, q_random, q_policy, logp, 2, mc_return=jnp.full((3,), 2.0))
    low = cql_penalty(q_data, q_random, q_policy, logp, 2, mc_return=jnp.full((3,), -20.0))
    assert plain.shape == (2,)
    np.testing.assert_allclose(low, plain)  # returns below the critic's Q change nothing
    # clamped at 2: logsumexp(4 x 2 and the random ones) - 1 > 0, where the plain one is < 0
    assert np.all(high > 0) and np.all(plain < 0)
    np.testing.assert_allclose(high, np.log(4 * np.exp(2.0) + 4 * np.exp(-10 + 2 * np.log(2))) - 1)


def _episode(t=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        image=rng.integers(0, 255, (t + 1, size, size, 3), dtype=np.uint8),
        proprio=rng.normal(size=(t + 1, 2)).astype(np.float32),
        action=rng.uniform(-1.5, 1.5, (t, 2)).astype(np.float32),
        reward=np.arange(t, dtype=np.float32),
    )


def test_episode_transitions_pair_each_frame_with_the_next():
    ep = _episode()
    tr = episode_transitions(**ep, gamma=0.5, terminal=True)
    np.testing.assert_array_equal(tr.image, ep["image"][:3])
    np.testing.assert_array_equal(tr.next_image, ep["image"][1:])
    np.testing.assert_array_equal(tr.next_proprio, ep["proprio"][1:])
    assert tr.action.min() >= -1 and tr.action.max() <= 1  # as executed
    np.testing.assert_allclose(tr.mc_return, [0 + 0.5 * (1 + 0.5 * 2), 1 + 0.5 * 2, 2])
    np.testing.assert_array_equal(tr.terminal, [0, 0, 1])
    assert episode_transitions(**ep, gamma=0.5).terminal.sum() == 0  # a time limit bootstraps
    with pytest.raises(ConfigError, match="T \\+ 1 observations"):
        episode_transitions(**{**ep, "image": ep["image"][:3]}, gamma=0.5)
    bad = ep["action"].copy()
    bad[1, 0] = np.nan
    with pytest.raises(ConfigError, match="action holds NaN"):
        episode_transitions(**{**ep, "action": bad}, gamma=0.5)


def test_replay_is_a_ring_sampled_as_utd_minibatches():
    example = episode_transitions(**_episode(), gamma=0.9)
    replay = Replay(capacity=5, batch_size=4, utd=3, example=example)
    state = replay.init()
    with pytest.raises(ConfigError, match="empty"):
        replay.sample(state, jax.random.key(0))
    for seed in range(2):  # 6 transitions into 5 slots: the first is overwritten
        ep = _episode(seed=seed)
        ep["reward"] = ep["reward"] + 10 * seed
        state = replay.add(state, episode_transitions(**ep, gamma=0.9))
    assert replay.size(state) == 5
    batch = replay.sample(state, jax.random.key(1))
    assert batch.image.shape == (3, 4, 16, 16, 3) and batch.reward.shape == (3, 4)
    held = set(np.asarray(state.experience.reward).ravel().tolist())
    assert held == {1.0, 2.0, 10.0, 11.0, 12.0}  # reward 0 of the first episode is gone
    assert set(np.asarray(batch.reward).ravel().tolist()) <= held
    with pytest.raises(ConfigError, match="capacity \\(3\\) must be at least the batch size"):
        Replay(capacity=3, batch_size=4, utd=1, example=example)


def test_replay_warm_compiles_add_and_sample_ahead_and_changes_nothing():
    compiled = []

    def listener(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            compiled.append(kwargs.get("fun_name"))

    one = episode_transitions(**_episode(t=1), gamma=0.9)
    replay = Replay(capacity=7, batch_size=2, utd=2, example=one)
    state = replay.init()
    replay.warm(state, one)
    assert replay.size(state) == 0
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for seed in range(3):  # steps added one at a time, as online acting adds them
            state = replay.add(state, episode_transitions(**_episode(t=1, seed=seed), gamma=0.9))
            replay.sample(state, jax.random.key(seed))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiled == []
    assert replay.size(state) == 3


def _bandit(rng, n):
    """One-step task from frames: bright frames want action[0] = +0.8, dark ones -0.8."""
    bright = rng.random(n) < 0.5
    image = np.where(bright[:, None, None, None], 220, 30).astype(np.uint8)
    image = np.broadcast_to(image, (n, 16, 16, 3)).copy()
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    want = np.where(bright, 0.8, -0.8)
    reward = (1.0 - np.abs(action[:, 0] - want)).astype(np.float32)
    zeros = np.zeros((n, 2), np.float32)
    ones = np.ones(n, np.float32)
    return Transitions(image, zeros, action, reward, image, zeros, ones, reward), bright


@pytest.mark.parametrize("actor_loss", ["sac", "awac", "awr"])
def test_the_update_learns_a_one_step_task_from_frames(actor_loss):
    """SAC's actor follows the critics' gradient; AWAC's and AWR's fit the replayed (uniform)
    actions weighted by their advantage (by Q, by the return): all learn which action each frame
    wants."""
    cfg = SACConfig(critic=TINY, ensemble=4, utd=2, batch_size=64, shift_pad=0,
                    actor_optim=dataclasses.replace(SACConfig.actor_optim, learning_rate=1e-3),
                    critic_optim=dataclasses.replace(SACConfig.critic_optim, learning_rate=1e-3),
                    init_temperature=0.01, actor_loss=actor_loss)  # fmt: skip
    actor = BCConfig(model=TINY)
    graphs, state = init_sac_state(cfg, actor, jax.random.key(0))
    stats = NormStats(mean=jnp.zeros(2), std=jnp.ones(2))
    update = make_update(cfg, graphs, stats)
    data, _ = _bandit(np.random.default_rng(0), 2000)
    example = jax.tree.map(lambda x: x[:1], data)
    replay = Replay(2000, cfg.batch_size, cfg.utd, example)
    buffer = replay.add(replay.init(), data)
    rng = jax.random.key(1)
    for _ in range(300):
        rng, key = jax.random.split(rng)
        state, metrics = update(state, replay.sample(buffer, key))
    assert int(state.step) == 300
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["cql"]) == 0.0  # off by default (the online phase)
    probe, bright = _bandit(np.random.default_rng(1), 64)
    actor_model = nnx.merge(graphs[0], state.params)
    mean, _ = actor_model(jnp.asarray(probe.image), jnp.zeros((64, 2)))
    first = np.asarray(mean[:, 0])
    assert first[bright].mean() > 0.4 and first[~bright].mean() < -0.4, first
    critic = nnx.merge(graphs[1], state.critic)
    good = np.where(bright, 0.8, -0.8)
    acts = lambda a0: jnp.stack([jnp.asarray(a0, jnp.float32), jnp.zeros(64)], -1)  # noqa: E731
    q_good = critic(jnp.asarray(probe.image), jnp.zeros((64, 2)), acts(good)).mean(0)
    q_bad = critic(jnp.asarray(probe.image), jnp.zeros((64, 2)), acts(-good)).mean(0)
    assert float(jnp.mean(q_good - q_bad)) > 0.8  # the true gap is 1.6


def test_warm_start_keeps_the_actor_and_calql_runs(tmp_path):
    actor = BCConfig(model=TINY)
    from robolearn.policies.bc.model import GaussianActor

    bc_graph, bc_params = nnx.split(GaussianActor(TINY, nnx.Rngs(params=jax.random.key(7))))
    cfg = SACConfig(critic=TINY, ensemble=3, utd=1, batch_size=8, cql_alpha=5.0, bc_coef=1.0)
    graphs, state = init_sac_state(cfg, actor, jax.random.key(0), actor_params=bc_params)
    data, _ = _bandit(np.random.default_rng(0), 8)
    image, proprio = jnp.asarray(data.image), jnp.zeros((8, 2))
    before = nnx.merge(bc_graph, bc_params)(image, proprio)
    np.testing.assert_array_equal(nnx.merge(graphs[0], state.params)(image, proprio)[0], before[0])
    # the actor's weights are the BC TrainState's `params`: same tree, so a policy loader reads it
    assert jax.tree.structure(state.params) == jax.tree.structure(bc_params)
    update = make_update(cfg, graphs, NormStats(mean=jnp.zeros(2), std=jnp.ones(2)))
    state, metrics = update(state, jax.tree.map(lambda x: jnp.asarray(x)[None], data))
    assert float(metrics["cql"]) != 0.0 and np.isfinite(float(metrics["critic_loss"]))
    assert np.isfinite(float(metrics["bc_nll"]))


def test_the_bc_term_fits_the_std_only_as_nll():
    """bc_loss nll fits the Gaussian to the data actions, its std too; mse pulls the mean alone."""
    mean, log_std = jnp.zeros((4, 2)), jnp.full((4, 2), -3.0)
    action = jnp.full((4, 2), 0.5)
    for kind, std_moves in (("nll", True), ("mse", False)):
        grads = jax.grad(lambda m, s, k=kind: bc_terms(m, s, action)[k], argnums=(0, 1))(
            mean, log_std
        )
        assert float(jnp.abs(grads[0]).sum()) > 0 and (grads[0] < 0).all()  # mean toward 0.5
        assert (float(jnp.abs(grads[1]).sum()) > 0) == std_moves
    assert float(bc_terms(mean, log_std, action)["mse"]) == pytest.approx(0.5)


def test_the_actor_maximizes_the_ensembles_mean_or_its_minimum():
    """sac.actor_q: the actor's Q at its own actions is the ensemble's mean (REDQ) or minimum
    (SAC's clipped double Q), seen in the q_policy metric of the same update."""
    data, _ = _bandit(np.random.default_rng(0), 16)
    batch = jax.tree.map(lambda x: jnp.asarray(x)[None], data)
    stats = NormStats(mean=jnp.zeros(2), std=jnp.ones(2))
    q = {}
    for how in ("mean", "min"):
        cfg = SACConfig(critic=TINY, ensemble=4, utd=1, batch_size=16, shift_pad=0, actor_q=how,
                        bc_coef=1.0, bc_loss="mse")  # fmt: skip
        graphs, state = init_sac_state(cfg, BCConfig(model=TINY), jax.random.key(0))
        _, metrics = make_update(cfg, graphs, stats)(state, batch)
        q[how] = float(metrics["q_policy"])
    assert q["min"] < q["mean"] - 1e-4  # the same critics, actor samples and batch
    with pytest.raises(ConfigError, match="actor_q"):
        from robolearn.core.config import from_dict

        from_dict(SACConfig, {"actor_q": "max"})


def test_critics_on_the_warm_started_actors_frozen_encoder():
    """critic_encoder actor: the critics' encoder is the warm-start actor's (its config and
    weights), and updates leave it as it was while the critics' heads learn."""
    from robolearn.policies.bc.model import GaussianActor

    bc_graph, bc_params = nnx.split(GaussianActor(TINY, nnx.Rngs(params=jax.random.key(7))))
    own = dataclasses.replace(TINY, channels=(4, 4), strides=(2, 2), hidden=(8,))
    cfg = SACConfig(critic=own, ensemble=2, utd=2, batch_size=8, critic_encoder="actor")
    graphs, state = init_sac_state(cfg, BCConfig(model=TINY), jax.random.key(0), bc_params)

    def encoder(tree):
        return jax.tree.leaves(nnx.state(nnx.merge(graphs[1], tree).encoder))

    def bc_encoder():
        return jax.tree.leaves(nnx.state(nnx.merge(bc_graph, bc_params).encoder))

    for a, b in zip(encoder(state.critic), bc_encoder(), strict=True):
        np.testing.assert_array_equal(a, b)  # the actor's channels (8,), not the critic's (4, 4)
    heads = jax.tree.leaves(nnx.state(nnx.merge(graphs[1], state.critic).head))
    update = make_update(cfg, graphs, NormStats(mean=jnp.zeros(2), std=jnp.ones(2)))
    data, _ = _bandit(np.random.default_rng(0), 16)
    batch = jax.tree.map(lambda x: jnp.asarray(x).reshape(2, 8, *x.shape[1:]), data)
    for _ in range(3):
        state, _ = update(state, batch)
    for a, b in zip(encoder(state.critic), bc_encoder(), strict=True):
        np.testing.assert_array_equal(a, b)
    after = jax.tree.leaves(nnx.state(nnx.merge(graphs[1], state.critic).head))
    assert any(not np.array_equal(a, b) for a, b in zip(heads, after, strict=True))


def test_awr_weighs_by_the_return_the_episode_collected():
    """actor_loss awr: advantage = the transition's Monte-Carlo return - Q(s, a ~ pi)."""
    data, _ = _bandit(np.random.default_rng(0), 16)
    data = data._replace(mc_return=np.full(16, 5.0, np.float32))
    batch = jax.tree.map(lambda x: jnp.asarray(x)[None], data)
    cfg = SACConfig(critic=TINY, ensemble=2, utd=1, batch_size=16, actor_loss="awr")
    graphs, state = init_sac_state(cfg, BCConfig(model=TINY), jax.random.key(0))
    _, m = make_update(cfg, graphs, NormStats(mean=jnp.zeros(2), std=jnp.ones(2)))(state, batch)
    assert float(m["advantage"]) == pytest.approx(5.0 - float(m["q_policy"]), abs=1e-5)
    assert float(m["awac_weight"]) == pytest.approx(cfg.awac_max_weight)  # exp(~50), capped


def test_mc_bound_lifts_the_td_target_to_the_episodes_return():
    """sac.mc_bound (MCAC): the target is max(TD target, Monte-Carlo return)."""
    data, _ = _bandit(np.random.default_rng(0), 16)
    data = data._replace(reward=np.zeros(16, np.float32), mc_return=np.full(16, 5.0, np.float32))
    batch = jax.tree.map(lambda x: jnp.asarray(x)[None], data)
    stats = NormStats(mean=jnp.zeros(2), std=jnp.ones(2))
    targets = {}
    for bound in (False, True):
        cfg = SACConfig(critic=TINY, ensemble=2, utd=1, batch_size=16, mc_bound=bound)
        graphs, state = init_sac_state(cfg, BCConfig(model=TINY), jax.random.key(0))
        _, metrics = make_update(cfg, graphs, stats)(state, batch)
        targets[bound] = float(metrics["target"])
    assert targets[True] == pytest.approx(5.0) and targets[False] < 1.0


def test_std_floor_widens_the_samples_the_learner_draws():
    """sac.std_floor: the actor's samples (entropy metric, critics' next actions) use
    max(std, floor); at floor 1 every std is 1 (log-std <= 0), so the entropy is N(0, I)'s."""
    data, _ = _bandit(np.random.default_rng(0), 256)
    batch = jax.tree.map(lambda x: jnp.asarray(x)[None], data)
    stats = NormStats(mean=jnp.zeros(2), std=jnp.ones(2))
    entropy = {}
    for floor in (0.0, 1.0):
        cfg = SACConfig(critic=TINY, ensemble=2, utd=1, batch_size=256, std_floor=floor)
        graphs, state = init_sac_state(cfg, BCConfig(model=TINY), jax.random.key(0))
        _, metrics = make_update(cfg, graphs, stats)(state, batch)
        entropy[floor] = float(metrics["entropy"])
    assert entropy[1.0] == pytest.approx(np.log(2 * np.pi * np.e), abs=0.25)
    assert entropy[0.0] < entropy[1.0] - 0.5  # the fresh actor's own std is below 1
    with pytest.raises(ConfigError, match="sac.std_floor"):
        SACConfig(std_floor=1.5)


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="target_subset \\(3\\) cannot exceed"):
        SACConfig(ensemble=2, target_subset=3)
    with pytest.raises(ConfigError, match="sac.gamma"):
        SACConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="sac.cql_alpha"):
        SACConfig(cql_alpha=float("nan"))
    assert SACConfig().entropy_target(7) == -3.5
