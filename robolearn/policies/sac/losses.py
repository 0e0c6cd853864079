"""Pure pieces of the off-policy learner: Monte-Carlo returns, the TD target over a random subset
of the ensemble, the (Cal-)CQL regularizer, Polyak averaging.

Shapes: E = ensemble members, B = transitions, N = actions drawn per state, A = action size.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def mc_returns(reward: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return from each step to the episode's end: reward [T] -> [T] float32,
    G_t = r_t + gamma G_{t+1}, G_T = 0 (what the episode really collected afterwards: Cal-QL's
    lower bound on the behaviour policy's value)."""
    out = np.zeros(len(reward), np.float64)
    running = 0.0
    for t in range(len(reward) - 1, -1, -1):
        running = float(reward[t]) + gamma * running
        out[t] = running
    return out.astype(np.float32)


def td_target(
    rng: jax.Array, q_next: jax.Array, reward: jax.Array, terminal: jax.Array, gamma: float,
    subset: int, entropy: jax.Array | float = 0.0,
) -> jax.Array:  # fmt: skip
    """r + gamma (1 - terminal) (min over `subset` members drawn at random of Q'(s', a') +
    entropy): q_next [E, B], reward/terminal [B] -> [B]. `entropy` is -alpha log pi(a'|s')
    (0 without the entropy backup)."""
    members = jax.random.choice(rng, q_next.shape[0], (subset,), replace=False)
    bootstrap = jnp.min(q_next[members], axis=0) + entropy
    return reward + gamma * (1.0 - terminal) * bootstrap


def cql_penalty(
    q_data: jax.Array, q_random: jax.Array, q_policy: jax.Array, log_prob_policy: jax.Array,
    action_dim: int, mc_return: jax.Array | None = None,
) -> jax.Array:  # fmt: skip
    """CQL(H) per member: the mean over states of logsumexp over the drawn actions of
    (Q - log density), minus Q(s, a_data). q_data [E, B]; q_random [E, B, N] at actions uniform
    on [-1, 1]^action_dim; q_policy [E, B, M] at actions of the current policy, whose log
    densities are log_prob_policy [B, M] -> [E].

    Cal-QL: with `mc_return` [B], the policy actions' Q are clamped below by the return the data
    really collected from s, so the regularizer stops pushing Q below what the behaviour policy
    achieved (that over-pessimism is what makes a CQL critic unlearn when fine-tuning online)."""
    if mc_return is not None:
        q_policy = jnp.maximum(q_policy, mc_return[None, :, None])
    drawn = jnp.concatenate(
        [q_random - uniform_log_density(action_dim), q_policy - log_prob_policy[None]], axis=-1
    )
    return jnp.mean(jax.nn.logsumexp(drawn, axis=-1) - q_data, axis=-1)


def bc_terms(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> dict[str, jax.Array]:
    """The actor's BC terms on data actions [B, A]: nll, the mean -log pi(a | s) of its Gaussian
    (which also fits the std), and mse, the mean squared distance of its mean to a (which does
    not touch the std)."""
    from robolearn.policies.ppo.losses import gaussian_log_prob

    return {
        "nll": -jnp.mean(gaussian_log_prob(mean, log_std, action)),
        "mse": jnp.mean(jnp.sum((mean - action) ** 2, axis=-1)),
    }


def soft_update(target, online, tau: float):
    """Polyak averaging: target <- (1 - tau) target + tau online, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def uniform_log_density(action_dim: int) -> float:
    """log density of the uniform distribution on [-1, 1]^action_dim."""
    return -action_dim * math.log(2.0)
