"""EDM (Karras et al. 2022) preconditioning, training noise levels and sampler noise levels, with
DIAMOND's offset noise. Pure functions of arrays; see REFERENCES.md section 2 for the formulas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from robolearn.world_models.config import EDMConfig, SamplerConfig


def coefficients(sigma: jax.Array, cfg: EDMConfig) -> tuple[jax.Array, ...]:
    """(c_in, c_skip, c_out, c_noise) for noise level(s) sigma, each shaped like sigma.

    sigma' = sqrt(sigma^2 + sigma_offset^2); c_in = 1 / sqrt(sigma'^2 + sigma_data^2);
    c_skip = sigma_data^2 / (sigma'^2 + sigma_data^2); c_out = sigma' sqrt(c_skip);
    c_noise = ln(sigma') / 4.
    """
    s = jnp.sqrt(sigma**2 + cfg.sigma_offset**2)
    total = s**2 + cfg.sigma_data**2
    c_in = 1.0 / jnp.sqrt(total)
    c_skip = cfg.sigma_data**2 / total
    c_out = s * jnp.sqrt(c_skip)
    c_noise = jnp.log(s) / 4.0
    return c_in, c_skip, c_out, c_noise


def sample_sigma(rng: jax.Array, shape: tuple[int, ...], cfg: EDMConfig) -> jax.Array:
    """Training noise levels: exp(N(p_mean, p_std^2)) clipped to [sigma_min, sigma_max]."""
    log_sigma = cfg.p_mean + cfg.p_std * jax.random.normal(rng, shape)
    return jnp.clip(jnp.exp(log_sigma), cfg.sigma_min, cfg.sigma_max)


def add_noise(rng: jax.Array, x: jax.Array, sigma: jax.Array, cfg: EDMConfig) -> jax.Array:
    """x [B, H, W, C] + sigma * N(0, 1) + offset noise (sigma_offset * N(0, 1) per image and
    channel); sigma [B]."""
    rng_pixel, rng_offset = jax.random.split(rng)
    b, _, _, c = x.shape
    offset = cfg.sigma_offset * jax.random.normal(rng_offset, (b, 1, 1, c), x.dtype)
    noise = jax.random.normal(rng_pixel, x.shape, x.dtype)
    return x + offset + noise * sigma[:, None, None, None]


def loss_weighted_target(
    x: jax.Array, noisy: jax.Array, sigma: jax.Array, cfg: EDMConfig
) -> jax.Array:
    """The network's regression target (x - c_skip * noisy) / c_out (DIAMOND's loss: plain MSE
    of the network output against it, which is EDM's weighted denoising loss)."""
    _, c_skip, c_out, _ = coefficients(sigma, cfg)
    c_skip, c_out = c_skip[:, None, None, None], c_out[:, None, None, None]
    return (x - c_skip * noisy) / c_out


def karras_sigmas(cfg: SamplerConfig) -> jax.Array:
    """float32 [steps + 1]: (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho, then 0."""
    n = cfg.steps
    ramp = jnp.linspace(0.0, 1.0, n) if n > 1 else jnp.zeros(1)
    lo, hi = cfg.sigma_min ** (1.0 / cfg.rho), cfg.sigma_max ** (1.0 / cfg.rho)
    sigmas = (hi + ramp * (lo - hi)) ** cfg.rho
    return jnp.concatenate([sigmas, jnp.zeros(1)]).astype(jnp.float32)
