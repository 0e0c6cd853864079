"""The Gaussian BC actor pi(a | image, proprio) = N(mu, diag(std^2)) in Flax NNX (model only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robolearn.core.conv import Conv
from robolearn.policies.bc.config import ModelConfig


def image_to_float(image: jax.Array) -> jax.Array:
    """uint8 [..., H, W, 3] in 0..255 -> float32 in [-1, 1]."""
    return image.astype(jnp.float32) / 127.5 - 1.0


class Encoder(nnx.Module):
    """Conv stack (3x3, strided, GELU) then a linear layer: [B, H, W, 3] float -> [B, F]."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.convs = nnx.List()
        size, c_in = cfg.image_size, 3
        for c_out, stride in zip(cfg.channels, cfg.strides, strict=True):
            self.convs.append(
                Conv(c_in, c_out, (3, 3), strides=(stride, stride), padding="SAME", rngs=rngs)
            )
            size, c_in = -(-size // stride), c_out
        self.out = nnx.Linear(size * size * c_in, cfg.feature_dim, rngs=rngs)
        self.norm = nnx.LayerNorm(cfg.feature_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        return jnp.tanh(self.norm(self.out(x.reshape(x.shape[0], -1))))


class GaussianActor(nnx.Module):
    """mu in [-1, 1] (tanh) and log-std in [log_std_min, log_std_max] (a soft bound).

    Inputs: image uint8 [B, H, W, 3], proprio float32 [B, P] already normalized by the dataset's
    mean and std. The log-std bound is min + (max - min) * sigmoid(raw), which keeps gradients at
    the bounds where a hard clip would zero them; World4RL only states std <= 1.
    """

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.encoder = Encoder(cfg, rngs)
        self.layers = nnx.List()
        width = cfg.feature_dim + cfg.proprio_dim
        for h in cfg.hidden:
            self.layers.append(nnx.Linear(width, h, rngs=rngs))
            width = h
        outputs = 2 * cfg.action_dim if cfg.state_dependent_std else cfg.action_dim
        self.head = nnx.Linear(width, outputs, rngs=rngs)
        if not cfg.state_dependent_std:
            self.log_std_raw = nnx.Param(jnp.zeros((cfg.action_dim,)))

    def __call__(self, image: jax.Array, proprio: jax.Array) -> tuple[jax.Array, jax.Array]:
        """-> (mean [B, A] in [-1, 1], log_std [B, A] in [log_std_min, log_std_max])."""
        x = jnp.concatenate([self.encoder(image_to_float(image)), proprio], axis=-1)
        for layer in self.layers:
            x = jax.nn.gelu(layer(x))
        out = self.head(x)
        a = self.cfg.action_dim
        if self.cfg.state_dependent_std:
            raw = out[:, a:]
        else:
            raw = jnp.broadcast_to(self.log_std_raw[...], out.shape)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        # +2 starts std near exp(lo + 0.88 (hi - lo)), ~0.55 for [-5, 0]: wide, so early NLL
        # gradients stay moderate.
        return jnp.tanh(out[:, :a]), lo + (hi - lo) * jax.nn.sigmoid(raw + 2.0)


def gaussian_nll(
    mean: jax.Array, log_std: jax.Array, action: jax.Array, beta: float = 0.0
) -> jax.Array:
    """-log N(action; mean, exp(log_std)^2) summed over action dims: [B, A] x3 -> [B].

    beta > 0: beta-NLL, each dimension weighted by stop_gradient(std^(2 beta)) (a training
    loss; beta = 0 is the exact negative log-likelihood).
    """
    z = (action - mean) * jnp.exp(-log_std)
    nll = 0.5 * z**2 + log_std + 0.5 * jnp.log(2 * jnp.pi)
    if beta:
        nll = nll * jax.lax.stop_gradient(jnp.exp(2 * beta * log_std))
    return jnp.sum(nll, axis=-1)
