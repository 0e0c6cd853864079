"""The value network of PPO refinement: V(image, proprio, time) in Flax NNX (model only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robolearn.policies.bc.config import ModelConfig
from robolearn.policies.bc.model import Encoder, image_to_float


class Critic(nnx.Module):
    """image uint8 [B, H, W, 3], normalized proprio [B, P], time left in [0, 1] [B] -> value [B].

    The imagined episode has a fixed horizon, so the value depends on how many steps are left;
    the fraction of the horizon still ahead is an input (otherwise the last steps' values are
    aliased with the first ones').
    """

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.encoder = Encoder(cfg, rngs)
        self.layers = nnx.List()
        width = cfg.feature_dim + cfg.proprio_dim + 1
        for h in cfg.hidden:
            self.layers.append(nnx.Linear(width, h, rngs=rngs))
            width = h
        self.head = nnx.Linear(width, 1, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, image: jax.Array, proprio: jax.Array, time_left: jax.Array) -> jax.Array:
        x = self.encoder(image_to_float(image))
        x = jnp.concatenate([x, proprio, time_left[:, None]], axis=-1)
        for layer in self.layers:
            x = jax.nn.gelu(layer(x))
        return self.head(x)[:, 0]
