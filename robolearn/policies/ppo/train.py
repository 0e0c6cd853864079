"""PPO refinement state and the jitted update `update(state, traj, anchor) -> (state, metrics)`.

The actor is the BC Gaussian actor (same graph, same checkpoint format); the critic is new. One
update = critic values of the whole batch, GAE, then `epochs` x `minibatches` clipped-surrogate
and value steps, all inside one `lax.scan` (purejaxrl's shape).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from robolearn.core.normalize import NormStats
from robolearn.core.optim import make_optimizer
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.model import GaussianActor
from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.ppo.losses import (
    clipped_surrogate,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    weighted_mean,
    weighted_var,
)
from robolearn.policies.ppo.model import Critic


class Trajectory(NamedTuple):
    """One batch of imagined episodes, time-major (T = horizon, B = rollouts).

    image uint8 [T, B, H, W, 3]: the frame the policy acted on at step t (t = 0 is real);
    proprio float32 [T, B, P] (raw units); action float32 [T, B, A]: the sampled action before
    clipping to [-1, 1] (the world model got the clipped one); log_prob [T, B] of that action
    under the rollout policy; reward [T, B] for the frame after action t; prob [T, B]: the
    classifier's calibrated success probability of that frame. valid [T, B] (optional, 1/0):
    an episode that ended before T (finetune's real episodes: success with --end-on-success, a
    reset-free phase, a bridge hold) is padded after its last step with valid 0 (its last step
    repeated, reward 0): the padding earns, bootstraps and weighs nothing in the update.
    """

    image: jax.Array
    proprio: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    prob: jax.Array
    valid: jax.Array | None = None


class EarlyFrames(NamedTuple):
    """Recorded frames before the imagined episodes' start: image uint8 [N, H, W, 3], proprio
    float32 [N, P] (raw units), anchor float32 [N, A]: the BC actor's mean action on each."""

    image: jax.Array
    proprio: jax.Array
    anchor: jax.Array


class RefineState(struct.PyTreeNode):
    """Everything refinement changes, one pytree (the checkpoint): `params` is the actor, named
    as in the BC TrainState so a refined checkpoint loads as a policy."""

    step: jax.Array
    params: nnx.State
    critic: nnx.State
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    rng: jax.Array


def make_optimizers(cfg: PPOConfig) -> tuple[optax.GradientTransformation, ...]:
    """(actor, critic) optimizers of cfg.actor_optim and cfg.critic_optim."""
    return make_optimizer(cfg.actor_optim), make_optimizer(cfg.critic_optim)


def critic_config(ppo: PPOConfig, actor: BCConfig):
    """The critic's ModelConfig with the actor's input sizes."""
    return dataclasses.replace(
        ppo.critic, image_size=actor.model.image_size, proprio_dim=actor.model.proprio_dim
    )


def init_refine_state(
    ppo: PPOConfig, actor: BCConfig, rng: jax.Array, actor_params: nnx.State | None = None
) -> tuple[tuple[nnx.GraphDef, nnx.GraphDef], RefineState]:
    """((actor graphdef, critic graphdef), state) starting from `actor_params` (the BC policy's
    weights; None = a fresh actor, for shapes and tests)."""
    actor_rng, critic_rng, rng = jax.random.split(rng, 3)
    actor_graph, fresh = nnx.split(GaussianActor(actor.model, nnx.Rngs(params=actor_rng)))
    params = fresh if actor_params is None else actor_params
    critic_graph, critic = nnx.split(Critic(critic_config(ppo, actor), nnx.Rngs(critic_rng)))
    actor_tx, critic_tx = make_optimizers(ppo)
    state = RefineState(
        jnp.zeros((), jnp.int32),
        params,
        critic,
        actor_tx.init(params),
        critic_tx.init(critic),
        rng,
    )
    return (actor_graph, critic_graph), state


def effective_log_std(log_std: jax.Array, std_floor) -> jax.Array:
    """max(log_std, log(std_floor)): the exploration std refinement samples with (std_floor a
    float or a traced scalar, PPOConfig.floor_at's; a floor of 0 leaves log_std as it is)."""
    if isinstance(std_floor, int | float) and std_floor <= 0:
        return log_std
    return jnp.maximum(log_std, jnp.log(std_floor))


def make_update(cfg: PPOConfig, graphs: tuple, stats: NormStats, iterations: int | None = None):
    """The jitted update described in the module doc.

    update(state, traj: Trajectory, anchor_params, early=None) -> (state, metrics); the actor's
    log-probabilities are at the floor of iteration state.step in a run of `iterations`
    (cfg.floor_at: the floor traj was sampled at);
    anchor_params are the BC actor's weights (used only when cfg.bc_coef > 0). `early` is an
    EarlyFrames pool of recorded frames that imagination does not visit, with the BC actor's mean
    actions on them: each minibatch samples cfg.early_batch of them and the actor loss adds
    cfg.early_bc_coef x their mean squared distance (reported as `early_shift` either way).
    Metrics: imagined return and success, value loss, explained variance, approx KL, clip
    fraction, entropy, std, whether the actor updated this iteration (and early_shift).
    """
    actor_graph, critic_graph = graphs
    actor_tx, critic_tx = make_optimizers(cfg)

    def actor_out(params, image, proprio, floor=cfg.std_floor):
        mean, log_std = nnx.merge(actor_graph, params)(image, stats.normalize(proprio))
        return mean, effective_log_std(log_std, floor)

    def critic_out(params, image, proprio, time_left):
        return nnx.merge(critic_graph, params)(image, stats.normalize(proprio), time_left)

    def actor_loss(params, mb, floor):
        mean, log_std = actor_out(params, mb["image"], mb["proprio"], floor)
        log_prob = gaussian_log_prob(mean, log_std, mb["action"])
        adv, w = mb["advantage"], mb.get("valid")
        if cfg.normalize_advantages:
            adv = (adv - weighted_mean(adv, w)) / (jnp.sqrt(weighted_var(adv, w)) + 1e-8)
        loss, diag = clipped_surrogate(log_prob, mb["log_prob"], adv, cfg.clip, w)
        entropy = weighted_mean(gaussian_entropy(log_std), w)
        loss = loss - cfg.entropy_coef * entropy
        if cfg.bc_coef:
            loss = loss + cfg.bc_coef * weighted_mean(jnp.sum((mean - mb["anchor"]) ** 2, -1), w)
        diag = {**diag, "entropy": entropy, "std": jnp.exp(log_std).mean()}
        if "early_image" in mb:
            early_mean, _ = actor_out(params, mb["early_image"], mb["early_proprio"])
            shift = jnp.mean(jnp.sum((early_mean - mb["early_anchor"]) ** 2, -1))
            loss = loss + (cfg.early_bc_coef or 0.0) * shift
            diag["early_shift"] = shift
        return loss, diag

    def critic_loss(params, mb):
        value = critic_out(params, mb["image"], mb["proprio"], mb["time_left"])
        return weighted_mean((value - mb["return"]) ** 2, mb.get("valid"))

    def minibatch_step(carry, mb):
        state, actor_on = carry
        floor = cfg.floor_at(state.step, iterations)
        (_, diag), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.params, mb, floor)
        v_loss, c_grads = jax.value_and_grad(critic_loss)(state.critic, mb)
        c_updates, critic_opt = critic_tx.update(c_grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, c_updates)
        # The KL check uses the pre-step policy of this minibatch: once it is past the target,
        # the actor is frozen for the rest of the iteration (the critic keeps learning).
        actor_on = actor_on & (diag["approx_kl"] <= cfg.target_kl)
        a_updates, new_actor_opt = actor_tx.update(a_grads, state.actor_opt, state.params)
        new_params = optax.apply_updates(state.params, a_updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(actor_on, n, o), new, old)
        state = state.replace(
            params=keep(new_params, state.params),
            actor_opt=keep(new_actor_opt, state.actor_opt),
            critic=critic,
            critic_opt=critic_opt,
        )
        return (state, actor_on), {**diag, "value_loss": v_loss, "actor_on": actor_on}

    @jax.jit
    def update(state: RefineState, traj: Trajectory, anchor_params, early=None):
        t, b = traj.reward.shape
        n = t * b
        flat = lambda x: x.reshape((n, *x.shape[2:]))
        time_left = jnp.broadcast_to((t - jnp.arange(t, dtype=jnp.float32))[:, None] / t, (t, b))
        values = jax.lax.map(
            lambda xs: critic_out(state.critic, *xs),
            (traj.image, traj.proprio, time_left),
        )
        advantage, returns = gae(traj.reward, values, cfg.gamma, cfg.gae_lambda, traj.valid)
        data = {
            "image": flat(traj.image),
            "proprio": flat(traj.proprio),
            "action": flat(traj.action),
            "log_prob": flat(traj.log_prob),
            "advantage": flat(advantage),
            "return": flat(returns),
            "time_left": flat(time_left),
        }
        if traj.valid is not None:
            data["valid"] = flat(traj.valid)
        if cfg.bc_coef:
            anchor = jax.lax.map(
                lambda xs: actor_out(anchor_params, *xs)[0], (traj.image, traj.proprio)
            )
            data["anchor"] = flat(anchor)
        rng, perm_rng = jax.random.split(state.rng)
        mb_size = n // cfg.minibatches
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(
            jax.random.split(perm_rng, cfg.epochs)
        )
        idx = perms.reshape(cfg.epochs * cfg.minibatches, mb_size)
        batches = jax.tree.map(lambda x: x[idx], data)
        if early is not None:
            shape = (cfg.epochs * cfg.minibatches, cfg.early_batch)
            # a key of its own that leaves the other streams as they were without early frames
            early_rng = jax.random.fold_in(perm_rng, 1)
            pick = jax.random.randint(early_rng, shape, 0, early.anchor.shape[0])
            batches["early_image"] = early.image[pick]
            batches["early_proprio"] = early.proprio[pick]
            batches["early_anchor"] = early.anchor[pick]
        actor_on = state.step >= cfg.critic_warmup
        # Unrolled (cfg.unroll) XLA:CPU ran each minibatch ~30x faster than in a rolled loop
        # while the convolutions' kernel gradients were XLA's (1.85 s vs 0.05 s per BC-actor
        # minibatch); with robolearn.core.conv's it is ~1.3x.
        (state, _), diag = jax.lax.scan(
            minibatch_step, (state, actor_on), batches, unroll=cfg.unroll
        )
        w = traj.valid  # (explained variance over the steps episodes had)
        var = weighted_var(returns, w)
        reward, prob = traj.reward, traj.prob
        if w is not None:
            reward, prob = reward * w, prob * w
        metrics = {
            "imagined_return": reward.sum(0).mean(),
            "imagined_success": (reward.max(0) > 0.5).mean()
            if cfg.reward == "binary"
            else (prob.max(0) > 0.5).mean(),
            "success_prob_max": prob.max(0).mean(),
            "value_loss": diag["value_loss"].mean(),
            "explained_variance": 1.0 - weighted_var(returns - values, w) / jnp.maximum(var, 1e-8),
            "approx_kl": diag["approx_kl"].mean(),
            "clip_fraction": diag["clip_fraction"].mean(),
            "entropy": diag["entropy"].mean(),
            "std": diag["std"].mean(),
            "actor_updates": diag["actor_on"].sum(),
        }
        if early is not None:
            metrics["early_shift"] = diag["early_shift"].mean()
        if cfg.std_floor_end is not None:
            metrics["std_floor"] = jnp.asarray(cfg.floor_at(state.step, iterations), jnp.float32)
        return state.replace(step=state.step + 1, rng=rng), metrics

    return update
