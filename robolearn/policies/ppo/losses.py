"""Pure PPO pieces: generalized advantage estimation, the clipped surrogate, Gaussian log-probs.

Shapes: T = horizon, B = rollouts, A = action size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(action; mean, exp(log_std)^2) summed over the last axis: [..., A] x3 -> [...]."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian: [..., A] -> [...]."""
    return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)


def gae(
    rewards: jax.Array,
    values: jax.Array,
    gamma: float,
    lam: float,
    valid: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and returns of episodes that end after their last step.

    rewards [T, B] (r_t after action t), values [T, B] (V(s_t)); the value after the last step
    is 0 (the episode is over). valid [T, B] (1/0, optional): an episode that ended before T
    (finetune: the classifier's success with --end-on-success, a bridge hold) is padded after
    its last step with valid 0; it ends there, its padding earning and bootstrapping nothing.
    Returns (advantages [T, B], returns = advantages + values).
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t); A_t = delta_t + gamma lam A_{t+1}.
    """
    if valid is None:
        valid = jnp.ones_like(rewards)
    # the step after the last valid one is the end: no value, no advantage flows back
    next_valid = jnp.concatenate([valid[1:], jnp.zeros_like(valid[:1])], axis=0)
    next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])], axis=0) * next_valid
    deltas = (rewards + gamma * next_values - values) * valid

    def back(carry, xs):
        delta, go_on = xs
        adv = delta + gamma * lam * go_on * carry
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(values[0]), (deltas, next_valid), reverse=True)
    return adv, adv + values


def weighted_mean(x: jax.Array, weight: jax.Array | None = None) -> jax.Array:
    """Mean of x, or its weight-weighted mean (weights 1/0 pick the valid steps; 0 where none
    is valid)."""
    if weight is None:
        return jnp.mean(x)
    return jnp.sum(weight * x) / jnp.maximum(jnp.sum(weight), 1.0)


def weighted_var(x: jax.Array, weight: jax.Array | None = None) -> jax.Array:
    """Variance of x (population), or over the steps `weight` picks."""
    return weighted_mean((x - weighted_mean(x, weight)) ** 2, weight)


def clipped_surrogate(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    clip: float,
    weight: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """PPO's clipped objective as a loss to minimize, with its diagnostics.

    All inputs [N]; weight [N] (optional, 1/0): means over the steps it picks (the padding of
    an episode that ended early counts for nothing). Returns (loss, {"approx_kl",
    "clip_fraction", "ratio"}); approx_kl is the low-variance estimator E[(r - 1) - log r] of
    KL(old || new).
    """
    log_ratio = log_prob - old_log_prob
    if weight is not None:  # the padding's ratio is 1: no overflow there, no NaN gradient
        log_ratio = jnp.where(weight > 0, log_ratio, 0.0)
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -weighted_mean(jnp.minimum(unclipped, clipped), weight)
    stats = {
        "approx_kl": weighted_mean((ratio - 1.0) - log_ratio, weight),
        "clip_fraction": weighted_mean((jnp.abs(ratio - 1.0) > clip).astype(jnp.float32), weight),
        "ratio": weighted_mean(ratio, weight),
    }
    return loss, stats
