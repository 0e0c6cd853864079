"""Fitting a success classifier to labelled frames (binary cross-entropy, AdamW), in memory.

classify = fit_success_cnn(images uint8 [N, H, W, 3], labels bool [N], steps=400)
p = classify(frames)   # float32 [M] = P(success | frame)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import optax
from flax import nnx

from reward_models.cnn import CNNConfig, SuccessCNN


def fit_success_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    steps: int = 400,
    batch_size: int = 64,
    seed: int = 0,
    learning_rate: float = 1e-3,
) -> Callable[[np.ndarray], np.ndarray]:
    """Train a SuccessCNN on (images, labels), batches balanced 50/50 between the classes (so a
    rare class is not ignored); returns a function frames -> P(success). Needs both classes."""
    labels = np.asarray(labels, bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if not len(pos) or not len(neg):
        raise ValueError("a success classifier needs frames of both classes")
    cfg = CNNConfig(image_size=int(images.shape[1]))
    graphdef, params = nnx.split(SuccessCNN(cfg, nnx.Rngs(params=seed)))
    tx = optax.adamw(learning_rate, weight_decay=1e-4)
    opt_state = tx.init(params)

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    half = batch_size // 2
    y = np.concatenate([np.ones(half), np.zeros(batch_size - half)]).astype(np.float32)
    for _ in range(steps):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])
        params, opt_state, _ = step(params, opt_state, images[idx], y)

    @jax.jit
    def prob(params, x):
        return jax.nn.sigmoid(nnx.merge(graphdef, params)(x))

    def classify(frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        out = [np.asarray(prob(params, frames[i : i + 256])) for i in range(0, len(frames), 256)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return classify
