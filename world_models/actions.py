"""Action encodings before the learned embedding: two-hot (World4RL), one-hot and linear.

Actions are normalized to [-1, 1] per dimension. Bins b_1..b_K are uniform over [-1, 1]. Two-hot
puts weight (b_{k+1} - a) / (b_{k+1} - b_k) on b_k and (a - b_k) / (b_{k+1} - b_k) on b_{k+1}, so
the encoding sums to 1, is exact at bin centres and linear in between; values outside [-1, 1]
are clipped first. One-hot is the nearest bin; linear is the clipped value itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bin_centres(bins: int) -> jax.Array:
    """float32 [K], uniform over [-1, 1] including both ends."""
    return jnp.linspace(-1.0, 1.0, bins, dtype=jnp.float32)


def two_hot(action: jax.Array, bins: int) -> jax.Array:
    """[..., D] in [-1, 1] -> [..., D, K]: weights on the two bins bracketing each value."""
    a = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
    pos = (a + 1.0) * 0.5 * (bins - 1)  # continuous bin index in [0, K-1]
    low = jnp.clip(jnp.floor(pos), 0, bins - 2)
    frac = pos - low
    idx = jnp.arange(bins, dtype=jnp.float32)
    low = low[..., None]
    return jnp.where(idx == low, 1.0 - frac[..., None], 0.0) + jnp.where(
        idx == low + 1, frac[..., None], 0.0
    )


def one_hot(action: jax.Array, bins: int) -> jax.Array:
    """[..., D] -> [..., D, K]: 1 at the bin nearest each (clipped) value."""
    a = jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
    nearest = jnp.round((a + 1.0) * 0.5 * (bins - 1)).astype(jnp.int32)
    return jax.nn.one_hot(nearest, bins, dtype=jnp.float32)


def encode_actions(action: jax.Array, encoding: str, bins: int) -> jax.Array:
    """[..., D] -> [..., F] with F = D*K (two_hot, one_hot) or D (linear)."""
    if encoding == "two_hot":
        out = two_hot(action, bins)
    elif encoding == "one_hot":
        out = one_hot(action, bins)
    elif encoding == "linear":
        return jnp.clip(action.astype(jnp.float32), -1.0, 1.0)
    else:
        raise ValueError(f"unknown action encoding {encoding!r}")
    return out.reshape(*out.shape[:-2], -1)


def decode_two_hot(weights: jax.Array) -> jax.Array:
    """Inverse of two_hot on [-1, 1]: [..., D, K] -> [..., D] (the weighted mean of the bins)."""
    return jnp.sum(weights * bin_centres(weights.shape[-1]), axis=-1)
