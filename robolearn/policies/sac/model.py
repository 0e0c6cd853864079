"""The off-policy learner's critics: an ensemble of Q(image, proprio, action) in Flax NNX (model
only). One image encoder feeds every member; each member is an MLP with LayerNorm after every
hidden layer (WSRL, RLPD: LayerNorm keeps an ensemble's Q from diverging off the data). The
members' weights are stacked on a leading ensemble axis, so all of them run as one einsum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robolearn.policies.bc.config import ModelConfig
from robolearn.policies.bc.model import Encoder, image_to_float


class EnsembleLinear(nnx.Module):
    """E independent linear layers: x [B, I] (shared) or [E, B, I] -> [E, B, O]."""

    def __init__(self, members: int, d_in: int, d_out: int, rngs: nnx.Rngs, zero: bool = False):
        init = nnx.initializers.zeros if zero else nnx.initializers.lecun_normal()
        keys = jax.random.split(rngs.params(), members)
        self.kernel = nnx.Param(jax.vmap(lambda k: init(k, (d_in, d_out)))(keys))
        self.bias = nnx.Param(jnp.zeros((members, d_out)))

    def __call__(self, x: jax.Array) -> jax.Array:
        spec = "bi,eio->ebo" if x.ndim == 2 else "ebi,eio->ebo"
        return jnp.einsum(spec, x, self.kernel[...]) + self.bias[...][:, None]


class EnsembleLayerNorm(nnx.Module):
    """LayerNorm over the last axis with each member's own scale and offset: [E, B, D]."""

    def __init__(self, members: int, dim: int):
        self.scale = nnx.Param(jnp.ones((members, dim)))
        self.offset = nnx.Param(jnp.zeros((members, dim)))

    def __call__(self, x: jax.Array) -> jax.Array:
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.var(x, axis=-1, keepdims=True)
        x = (x - mean) * jax.lax.rsqrt(var + 1e-6)
        return x * self.scale[...][:, None] + self.offset[...][:, None]


class EnsembleCritic(nnx.Module):
    """image uint8 [B, H, W, 3], normalized proprio [B, P], action [B, A] -> Q [E, B].

    `features` and `heads` split the call so several action sets can be scored on one encoding
    (CQL scores 3 x cql_actions actions per state)."""

    def __init__(self, cfg: ModelConfig, members: int, rngs: nnx.Rngs):
        self.encoder = Encoder(cfg, rngs)
        self.layers = nnx.List()
        self.norms = nnx.List()
        width = cfg.feature_dim + cfg.proprio_dim + cfg.action_dim
        for h in cfg.hidden:
            self.layers.append(EnsembleLinear(members, width, h, rngs))
            self.norms.append(EnsembleLayerNorm(members, h))
            width = h
        self.head = EnsembleLinear(members, width, 1, rngs)

    def features(self, image: jax.Array, proprio: jax.Array) -> jax.Array:
        """[B, F + P]: the encoded frame beside the normalized proprio."""
        return jnp.concatenate([self.encoder(image_to_float(image)), proprio], axis=-1)

    def heads(self, features: jax.Array, action: jax.Array) -> jax.Array:
        """features [B, F + P], action [B, A] -> Q [E, B]."""
        x = jnp.concatenate([features, action], axis=-1)
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = jax.nn.relu(norm(layer(x)))
        return self.head(x)[..., 0]

    def __call__(self, image: jax.Array, proprio: jax.Array, action: jax.Array) -> jax.Array:
        return self.heads(self.features(image, proprio), action)
