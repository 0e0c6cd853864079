"""A small CNN success classifier C(x) -> logit of P(success | frame), trained from scratch
(World4RL-style; the light default for simulated tasks). Model only; see reward_models.train."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """image_size: input side; channels: 3x3 stride-2 conv widths; hidden: MLP width."""

    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)
    hidden: int = 128


class SuccessCNN(nnx.Module):
    """uint8 [B, H, W, 3] -> success logit [B]."""

    def __init__(self, cfg: CNNConfig, rngs: nnx.Rngs):
        self.convs = nnx.List()
        c_in, size = 3, cfg.image_size
        for c in cfg.channels:
            self.convs.append(nnx.Conv(c_in, c, (3, 3), strides=(2, 2), rngs=rngs))
            c_in, size = c, -(-size // 2)
        self.hidden = nnx.Linear(size * size * c_in, cfg.hidden, rngs=rngs)
        self.out = nnx.Linear(cfg.hidden, 1, rngs=rngs)

    def __call__(self, image: jax.Array) -> jax.Array:
        x = image.astype(jnp.float32) / 127.5 - 1.0
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        x = jax.nn.gelu(self.hidden(x.reshape(x.shape[0], -1)))
        return self.out(x)[:, 0]
