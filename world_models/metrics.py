"""Frame fidelity metrics (pure JAX): PSNR and SSIM of uint8 frames.

psnr: 10 log10(255^2 / MSE) per frame, MSE over all pixels and channels; identical frames would
    give +inf and are capped at PSNR_CAP. Averages over many frames are better taken as the PSNR
    of the mean MSE (psnr_from_mse), which a few identical frames cannot dominate.
ssim: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, dynamic
    range 255, computed per channel on 'valid' windows and averaged over positions and channels
    (the usual skimage `gaussian_weights=True` setting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PSNR_CAP = 100.0


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
    """uint8 [..., H, W, C] x2 -> mean squared error per frame [...] (0..255 scale)."""
    diff = a.astype(jnp.float32) - b.astype(jnp.float32)
    return jnp.mean(diff**2, axis=(-3, -2, -1))


def psnr_from_mse(value) -> jax.Array:
    """10 log10(255^2 / mse) in dB, capped at PSNR_CAP (mse 0 = identical frames)."""
    return jnp.minimum(10.0 * jnp.log10(255.0**2 / jnp.maximum(value, 1e-10)), PSNR_CAP)


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
    """uint8 [..., H, W, C] x2 -> float32 [...] in dB, capped at PSNR_CAP."""
    return psnr_from_mse(mse(a, b))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> jax.Array:
    x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    g = jnp.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: jax.Array, window: jax.Array) -> jax.Array:
    """Separable 'valid' Gaussian filter of [N, H, W, C] per channel."""
    n, h, w, c = x.shape
    k = window.shape[0]
    x = x.transpose(0, 3, 1, 2).reshape(n * c, 1, h, w)
    x = jax.lax.conv_general_dilated(x, window.reshape(1, 1, k, 1), (1, 1), "VALID")
    x = jax.lax.conv_general_dilated(x, window.reshape(1, 1, 1, k), (1, 1), "VALID")
    return x.reshape(n, c, h - k + 1, w - k + 1)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
    """uint8 [..., H, W, C] x2 (H, W >= 11) -> float32 [...] in [-1, 1]."""
    lead = a.shape[:-3]
    x = a.reshape(-1, *a.shape[-3:]).astype(jnp.float32)
    y = b.reshape(-1, *b.shape[-3:]).astype(jnp.float32)
    window = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    xx = _blur(x * x, window) - mu_x**2
    yy = _blur(y * y, window) - mu_y**2
    xy = _blur(x * y, window) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * xy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (xx + yy + c2)
    return jnp.mean(num / den, axis=(1, 2, 3)).reshape(lead)
