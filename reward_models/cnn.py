"""A small CNN success classifier C(x, task) -> logit of P(success | frame, task), trained from
scratch (World4RL-style; the light default for simulated tasks). Model only; see
robolearn.reward_models.train for training and robolearn.reward_models.checkpoint for loading."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from robolearn.reward_models.config import CNNConfig

from robolearn.core.conv import Conv

__all__ = ["CNNConfig", "SuccessCNN", "cnn_functions"]


class SuccessCNN(nnx.Module):
    """(image uint8 [B, H, W, 3], task int32 [B] or None) -> success logit float32 [B].

    Images are mapped to [-1, 1]; 3x3 stride-2 convs with GELU, a hidden layer whose
    pre-activation gets a learned vector of the task (task None = task 0), then the logit.
    """

    def __init__(self, cfg: CNNConfig, rngs: nnx.Rngs):
        self.convs = nnx.List()
        c_in, size = 3, cfg.image_size
        for c in cfg.channels:
            self.convs.append(Conv(c_in, c, (3, 3), strides=(2, 2), rngs=rngs))
            c_in, size = c, -(-size // 2)
        self.hidden = nnx.Linear(size * size * c_in, cfg.hidden, rngs=rngs)
        self.task = nnx.Embed(cfg.num_tasks, cfg.hidden, rngs=rngs)
        self.out = nnx.Linear(cfg.hidden, 1, rngs=rngs)

    def __call__(self, image: jax.Array, task: jax.Array | None = None) -> jax.Array:
        x = image.astype(jnp.float32) / 127.5 - 1.0
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        if task is None:
            task = jnp.zeros(x.shape[0], jnp.int32)
        x = jax.nn.gelu(self.hidden(x.reshape(x.shape[0], -1)) + self.task(task))
        return self.out(x)[:, 0]


def cnn_functions(cfg: CNNConfig):
    """(init, logits) of a SuccessCNN as pure functions of its parameters:

    init(rng) -> params (an nnx.State); logits(params, images uint8 [B, H, W, 3],
    task int32 [B]) -> float32 [B]. The graph is built abstractly, so nothing is allocated
    until init is called.
    """
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: SuccessCNN(cfg, nnx.Rngs(params=0))))

    def init(rng: jax.Array) -> nnx.State:
        return nnx.split(SuccessCNN(cfg, nnx.Rngs(params=rng)))[1]

    def logits(params: nnx.State, images: jax.Array, task: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, params)(images, task)

    return init, logits
