"""Image augmentation shared by every trainer that learns from camera frames (BC, reward)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_shift(rng: jax.Array, image: jax.Array, pad: int) -> jax.Array:
    """Shift each image by up to `pad` pixels (edges replicated): [B, H, W, C] -> same."""
    b, h, w, _ = image.shape
    padded = jnp.pad(image, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(rng, (b, 2), 0, 2 * pad + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)
