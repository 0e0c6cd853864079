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
    rewards: jax.Array, values: jax.Array, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """Advantages and returns of fixed-horizon episodes that end after the last step.

    rewards [T, B] (r_t after action t), values [T, B] (V(s_t)); the value after the last step
    is 0 (the episode is over). Returns (advantages [T, B], returns = advantages + values).
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t); A_t = delta_t + gamma lam A_{t+1}.
    """
    next_values = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])], axis=0)
    deltas = rewards + gamma * next_values - values

    def back(carry, delta):
        adv = delta + gamma * lam * carry
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(values[0]), deltas, reverse=True)
    return adv, adv + values


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip: float
) -> tuple[jax.Array, dict]:
    """PPO's clipped objective as a loss to minimize, with its diagnostics.

    All inputs [N]. Returns (loss, {"approx_kl", "clip_fraction", "ratio"}); approx_kl is the
    low-variance estimator E[(r - 1) - log r] of KL(old || new).
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    stats = {
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip).astype(jnp.float32)),
        "ratio": jnp.mean(ratio),
    }
    return loss, stats
