"""PPO pieces worked by hand, and PPO improving the return of a tiny task it can only solve by
learning (actions drive a reward; the trajectory shapes are the imagined ones)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats
from robolearn.core.optim import OptimConfig
from robolearn.policies.bc.config import ModelConfig, preset
from robolearn.policies.ppo import checkpoint as ppo_ckpt
from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.ppo.losses import clipped_surrogate, gae, gaussian_log_prob
from robolearn.policies.ppo.train import (
    EarlyFrames,
    Trajectory,
    effective_log_std,
    init_refine_state,
    make_update,
)


def test_gae_matches_a_hand_computation():
    rewards = jnp.array([[1.0], [0.0], [2.0]])
    values = jnp.array([[0.5], [1.0], [0.25]])
    gamma, lam = 0.9, 0.5
    # deltas: 1 + .9*1 - .5 = 1.4; 0 + .9*.25 - 1 = -.775; 2 + 0 - .25 = 1.75 (episode ends)
    a2 = 1.75
    a1 = -0.775 + 0.45 * a2
    a0 = 1.4 + 0.45 * a1
    adv, ret = gae(rewards, values, gamma, lam)
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [a0 + 0.5, a1 + 1.0, a2 + 0.25], rtol=1e-6)


def test_gae_of_an_episode_that_ended_early_is_the_episode_s_own():
    """An episode padded after its last step (valid 0) gets the advantages it would get alone,
    ending there: its padding's rewards and values reach nothing, and have no advantage."""
    rng = np.random.default_rng(0)
    rewards = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    values = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    valid = jnp.asarray([[1, 1], [1, 1], [1, 1], [1, 0], [1, 0], [1, 0]], jnp.float32)
    adv, ret = gae(rewards, values, 0.9, 0.8, valid)
    alone, alone_ret = gae(rewards[:3, 1:], values[:3, 1:], 0.9, 0.8)
    np.testing.assert_allclose(adv[:3, 1], alone[:, 0], rtol=1e-5)
    np.testing.assert_allclose(ret[:3, 1], alone_ret[:, 0], rtol=1e-5)
    np.testing.assert_array_equal(adv[3:, 1], 0.0)
    full, _ = gae(rewards[:, :1], values[:, :1], 0.9, 0.8)  # the whole episode: as without
    np.testing.assert_allclose(adv[:, 0], full[:, 0], rtol=1e-6)
    changed, _ = gae(rewards, values, 0.9, 0.8)  # the padding read as steps: not the same
    assert not np.allclose(changed[:3, 1], alone[:, 0])


def test_clipped_surrogate_by_hand():
    old = jnp.zeros(3)
    new = jnp.log(jnp.array([1.5, 0.5, 1.1]))
    adv = jnp.array([1.0, 1.0, -1.0])
    loss, diag = clipped_surrogate(new, old, adv, clip=0.2)
    # min(1.5, 1.2) = 1.2; min(.5, .8) = .5; min(-1.1, -1.1) = -1.1
    np.testing.assert_allclose(loss, -(1.2 + 0.5 - 1.1) / 3, rtol=1e-6)
    np.testing.assert_allclose(diag["clip_fraction"], 2 / 3, rtol=1e-6)
    r = np.array([1.5, 0.5, 1.1])
    np.testing.assert_allclose(diag["approx_kl"], np.mean(r - 1 - np.log(r)), rtol=1e-5)


def test_log_prob_and_std_floor():
    mean, log_std, a = jnp.zeros((1, 2)), jnp.log(jnp.full((1, 2), 0.5)), jnp.ones((1, 2))
    expected = 2 * (-0.5 * 4 - np.log(0.5) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, a), [expected], rtol=1e-6)
    floored = effective_log_std(jnp.full((2,), -5.0), 0.1)
    np.testing.assert_allclose(floored, np.log(0.1), rtol=1e-6)


TINY = dataclasses.replace(
    preset("tiny"),
    model=ModelConfig(
        image_size=8,
        proprio_dim=2,
        action_dim=2,
        channels=(4,),
        strides=(2,),
        feature_dim=8,
        hidden=(16,),
    ),
)
STATS = NormStats(np.zeros(2, np.float32), np.ones(2, np.float32))


def _toy_rollout(graphs, ppo, horizon=5, batch=32, floor=None):
    """A toy 'imagined' task: reward 1 when action[0] > 0.3; the BC-like start acts at 0.
    Actions are sampled at std max(std, floor) (default ppo.std_floor)."""
    from flax import nnx

    actor_graph = graphs[0]

    @jax.jit
    def rollout(params, rng):
        image = jnp.zeros((horizon, batch, 8, 8, 3), jnp.uint8)
        proprio = jnp.zeros((horizon, batch, 2))
        mean, log_std = nnx.merge(actor_graph, params)(
            image.reshape(-1, 8, 8, 3), proprio.reshape(-1, 2)
        )
        log_std = effective_log_std(log_std, ppo.std_floor if floor is None else floor)
        action = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape)
        log_prob = gaussian_log_prob(mean, log_std, action)
        reward = (action[:, 0] > 0.3).astype(jnp.float32)
        shape = (horizon, batch)
        return Trajectory(
            image,
            proprio,
            action.reshape(*shape, 2),
            log_prob.reshape(shape),
            reward.reshape(shape),
            reward.reshape(shape),
        ), nnx.merge(actor_graph, params)(image[0], proprio[0])[0][:, 0].mean()

    return rollout


@pytest.mark.parametrize("warmup", [1])
def test_ppo_improves_the_return_of_a_tiny_task(warmup):
    ppo = PPOConfig(
        rollouts=32,
        horizon=5,
        actor_optim=OptimConfig(3e-3, grad_clip=0.5),
        critic_optim=OptimConfig(3e-3, grad_clip=0.5),
        critic_warmup=warmup,
        std_floor=0.3,
        target_kl=0.5,
    )
    graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
    update = make_update(ppo, graphs, STATS)
    rollout = _toy_rollout(graphs, ppo)
    start_params = state.params
    returns, means = [], []
    rng = jax.random.key(1)
    for i in range(12):
        rng, key = jax.random.split(rng)
        traj, mean0 = rollout(state.params, key)
        state, metrics = update(state, traj, state.params)
        returns.append(float(metrics["imagined_return"]))
        means.append(float(mean0))
        if i < warmup:  # critic warm-up: the actor is untouched
            assert int(metrics["actor_updates"]) == 0
            chex_equal = jax.tree.map(
                lambda a, b: bool(jnp.all(a == b)), state.params, start_params
            )
            assert all(jax.tree.leaves(chex_equal))
    assert int(state.step) == 12
    assert np.mean(returns[-3:]) > np.mean(returns[:2]) + 1.0, returns
    assert means[-1] > means[0] + 0.2, means


def test_the_padding_of_episodes_that_ended_early_weighs_nothing_in_the_update():
    """finetune's real episodes end early (success, a bridge hold) and are padded to the horizon
    with valid 0: whatever the padding holds (frames, actions, log-probabilities far from the
    policy's, rewards), the update's state and metrics are the same; read as steps, it is not."""
    ppo = PPOConfig(
        unroll=False, rollouts=32, horizon=5, critic_warmup=0, target_kl=10.0,
        actor_optim=OptimConfig(3e-3, grad_clip=0.5),
    )  # fmt: skip
    graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
    update = make_update(ppo, graphs, STATS)
    traj, _ = _toy_rollout(graphs, ppo)(state.params, jax.random.key(1))
    rng = np.random.default_rng(0)
    ends = rng.integers(1, 6, size=32)  # steps each episode had
    valid = (np.arange(5)[:, None] < ends[None, :]).astype(np.float32)
    pad = valid == 0
    assert pad.any() and not pad.all()

    def padded(seed):
        noise = np.random.default_rng(seed)
        fill = lambda x, junk: jnp.where(pad.reshape(pad.shape + (1,) * (x.ndim - 2)), junk, x)
        return traj._replace(
            image=fill(traj.image, noise.integers(0, 255, traj.image.shape, dtype=np.uint8)),
            proprio=fill(traj.proprio, noise.normal(size=traj.proprio.shape) * 5),
            action=fill(traj.action, noise.normal(size=traj.action.shape) * 5),
            log_prob=fill(traj.log_prob, noise.normal(size=traj.log_prob.shape) * 300),
            reward=fill(traj.reward, noise.normal(size=traj.reward.shape)),
            prob=fill(traj.prob, noise.uniform(size=traj.prob.shape)),
            valid=jnp.asarray(valid),
        )

    (one, m1), (two, m2) = (
        update(state, padded(1), state.params),
        update(state, padded(2), state.params),
    )
    learned = lambda st: (st.params, st.critic, st.actor_opt, st.critic_opt)
    close = lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-6)
    same = jax.tree.map(close, learned(one), learned(two))
    assert all(jax.tree.leaves(same))
    for name in ("value_loss", "approx_kl", "clip_fraction", "entropy", "actor_updates"):
        np.testing.assert_allclose(m1[name], m2[name], rtol=1e-5, atol=1e-6)
    assert int(m1["actor_updates"]) > 0
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(one.params))
    as_steps, _ = update(state, padded(1)._replace(valid=None), state.params)
    moved = jax.tree.map(close, one.params, as_steps.params)
    assert not all(jax.tree.leaves(moved))


def _one_step_ppo(**overrides) -> PPOConfig:
    """A large actor step under a tiny target KL: an update takes exactly one actor step when its
    first minibatch sees the policy that sampled the batch (KL 0), and none otherwise."""
    return PPOConfig(
        unroll=False,
        rollouts=32,
        horizon=5,
        actor_optim=OptimConfig(3e-2, grad_clip=0.5),
        critic_warmup=0,
        target_kl=1e-9,
        **overrides,
    )


def test_target_kl_freezes_the_actor():
    ppo = _one_step_ppo(std_floor=0.3)
    graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
    update = make_update(ppo, graphs, STATS)
    traj, _ = _toy_rollout(graphs, ppo)(state.params, jax.random.key(1))
    state, metrics = update(state, traj, state.params)
    # the first minibatch's KL is 0 (same policy), so exactly one actor step happens, then the
    # moved policy's KL exceeds the tiny target and the actor stays frozen
    assert int(metrics["actor_updates"]) == 1


def test_std_floor_end_anneals_the_floor_over_the_run():
    ppo = PPOConfig(std_floor=0.2, std_floor_end=0.05)
    floors = [float(ppo.floor_at(i, 4)) for i in range(6)]
    np.testing.assert_allclose(floors, [0.2, 0.15, 0.1, 0.05, 0.05, 0.05], rtol=1e-6)
    assert PPOConfig(std_floor=0.2).floor_at(3, 4) == 0.2  # no end: constant
    assert ppo.floor_at(3, None) == 0.2  # a run of unknown length: constant
    assert float(PPOConfig(std_floor=0.2, std_floor_end=0.0).floor_at(1, 2)) == 0.0
    with pytest.raises(ConfigError, match="std_floor_end"):
        PPOConfig(std_floor_end=1.5)


def test_the_update_scores_actions_at_the_floor_they_were_sampled_at():
    """At iteration 2 of 3 the floor has gone from 1.0 to 0.8 (both above the tiny actor's own
    std, 0.55-0.65): the update's log-probabilities are at 0.8, the rollout's, so its first
    minibatch sees the same policy (KL 0) and takes its one step under a tiny target KL; actions
    sampled at the starting floor do not match."""
    ppo = _one_step_ppo(std_floor=1.0, std_floor_end=0.8)
    graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
    state = state.replace(step=jnp.asarray(2, state.step.dtype))
    update = make_update(ppo, graphs, STATS, iterations=3)
    for floor, steps in ((0.8, 1), (1.0, 0)):
        traj, _ = _toy_rollout(graphs, ppo, floor=floor)(state.params, jax.random.key(1))
        _, metrics = update(state, traj, state.params)
        assert int(metrics["actor_updates"]) == steps, floor
        np.testing.assert_allclose(metrics["std_floor"], 0.8, rtol=1e-6)


def _free_ppo(**overrides) -> PPOConfig:
    """A fast-moving actor with no warm-up and no KL stop, for the anchor tests (its updates
    compiled as a loop: 16 unrolled minibatch steps took ~35 s to compile)."""
    return PPOConfig(
        unroll=False,
        rollouts=32,
        horizon=5,
        actor_optim=OptimConfig(3e-3, grad_clip=0.5),
        critic_warmup=0,
        std_floor=0.3,
        target_kl=10.0,
        **overrides,
    )


def test_bc_coef_keeps_the_actor_near_the_anchor():
    """With a strong pull to the BC policy's means the actor moves less than without it."""
    moved = {}
    for coef in (0.0, 100.0):
        ppo = _free_ppo(bc_coef=coef)
        graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
        start = state.params
        update = make_update(ppo, graphs, STATS)
        rollout = _toy_rollout(graphs, ppo)  # one compile, three calls
        traj, _ = rollout(state.params, jax.random.key(1))
        for _ in range(3):
            state, metrics = update(state, traj, start)
        _, mean_after = rollout(state.params, jax.random.key(1))
        _, mean_before = rollout(start, jax.random.key(1))
        moved[coef] = abs(float(mean_after) - float(mean_before))
    assert moved[100.0] < moved[0.0]


def test_early_bc_coef_holds_the_actions_on_frames_imagination_never_visits():
    """PPO acts on proprio 0 only; recorded 'early' frames have other proprio. Unanchored, the
    update moves the actor's actions there too; the early pull keeps them at the BC's, while the
    imagined states still improve. early_shift reports the distance either way."""
    from flax import nnx

    early_proprio = jnp.tile(jnp.array([[3.0, -3.0], [-2.0, 1.0]]), (8, 1))
    early_image = jnp.zeros((16, 8, 8, 3), jnp.uint8)
    shifts, improved = {}, {}
    for coef in (0.0, 100.0):
        ppo = _free_ppo(epochs=2, minibatches=2, early_bc_coef=coef, early_batch=16)
        graphs, state = init_refine_state(ppo, TINY, jax.random.key(0))
        act = lambda params, g=graphs[0]: nnx.merge(g, params)(early_image, early_proprio)[0]
        start, bc_early = state.params, act(state.params)
        early = EarlyFrames(early_image, early_proprio, bc_early)
        update = make_update(ppo, graphs, STATS)
        rollout = _toy_rollout(graphs, ppo)
        _, imagined_before = rollout(start, jax.random.key(1))
        rng = jax.random.key(1)
        for _ in range(6):
            rng, key = jax.random.split(rng)
            traj, _ = rollout(state.params, key)
            state, metrics = update(state, traj, start, early)
        assert metrics["early_shift"] >= 0
        shifts[coef] = float(jnp.mean(jnp.sum((act(state.params) - bc_early) ** 2, -1)))
        _, imagined_after = rollout(state.params, jax.random.key(1))
        improved[coef] = float(imagined_after) - float(imagined_before)
    assert shifts[100.0] < 0.25 * shifts[0.0], shifts
    assert improved[100.0] > 0.05 and improved[0.0] > 0.05, improved


def _old_ppo_yaml(cfg: PPOConfig) -> dict:
    """The PPOConfig mapping as ppo.yaml held it before robolearn.core.optim."""
    data = dataclasses.asdict(cfg)
    actor, critic = data.pop("actor_optim"), data.pop("critic_optim")
    assert actor["grad_clip"] == critic["grad_clip"] and not actor["weight_decay"]
    return (
        {"actor_lr": actor["learning_rate"], "critic_lr": critic["learning_rate"]}
        | data
        | {"grad_clip": actor["grad_clip"]}
    )


def test_old_ppo_yaml_loads_as_the_same_config(tmp_path):
    cfg = PPOConfig(
        horizon=7,
        actor_optim=OptimConfig(2e-5, grad_clip=0.3),
        critic_optim=OptimConfig(1e-3, grad_clip=0.3),
    )
    (tmp_path / "ppo.yaml").write_text(yaml.safe_dump(_old_ppo_yaml(cfg)))
    assert ppo_ckpt.read_ppo_config(tmp_path) == cfg
    save_yaml(cfg, tmp_path / "ppo.yaml")
    assert ppo_ckpt.read_ppo_config(tmp_path) == cfg
    (tmp_path / "ppo.yaml").write_text("actor_lr: 1.0e-5\nmomentum: 0.9\n")
    with pytest.raises(ppo_ckpt.CheckpointError, match="unknown key 'momentum'"):
        ppo_ckpt.read_ppo_config(tmp_path)


def test_old_layout_ppo_yaml_migrates(tmp_path):
    """A refined run written before robolearn.core.optim names actor_lr, critic_lr and grad_clip
    (what the shipped refined run held): it reads as today's PPOConfig."""
    old = {k: v for k, v in dataclasses.asdict(PPOConfig()).items() if not k.endswith("_optim")}
    (tmp_path / "ppo.yaml").write_text(
        yaml.safe_dump(
            {**old, "horizon": 50, "actor_lr": 1e-5, "critic_lr": 3e-4, "grad_clip": 0.5}
        )
    )
    ppo = ppo_ckpt.read_ppo_config(tmp_path)
    assert ppo == dataclasses.replace(PPOConfig(), horizon=50)
    assert ppo.actor_optim == OptimConfig(1e-5, grad_clip=0.5)
    assert ppo.critic_optim == OptimConfig(3e-4, grad_clip=0.5)
