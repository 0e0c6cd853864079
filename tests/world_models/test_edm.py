"""EDM preconditioning, training noise levels, offset noise, the loss target and Karras levels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from robolearn.world_models import edm
from robolearn.world_models.config import EDMConfig, SamplerConfig

CFG = EDMConfig(sigma_data=0.5, sigma_offset=0.3)


def test_coefficients_at_sigma_zero_by_hand():
    """sigma = 0: only the offset noise is left.

    sigma' = sqrt(0^2 + 0.3^2) = 0.3;  sigma'^2 + sigma_data^2 = 0.09 + 0.25 = 0.34
    c_in = 1 / sqrt(0.34) = 1.71499...;  c_skip = 0.25 / 0.34 = 0.73529...
    c_out = 0.3 * sqrt(0.25 / 0.34) = 0.25725...;  c_noise = ln(0.3) / 4 = -0.30099...
    """
    c_in, c_skip, c_out, c_noise = (float(c[0]) for c in edm.coefficients(jnp.zeros(1), CFG))
    assert c_in == pytest.approx(1 / math.sqrt(0.34), rel=1e-6)
    assert c_in == pytest.approx(1.714986, rel=1e-6)
    assert c_skip == pytest.approx(0.25 / 0.34, rel=1e-6)
    assert c_out == pytest.approx(0.3 * math.sqrt(0.25 / 0.34), rel=1e-6)
    assert c_noise == pytest.approx(math.log(0.3) / 4, rel=1e-6)


def test_coefficients_at_sigma_one_by_hand():
    """sigma = 1: sigma' = sqrt(1 + 0.09) = sqrt(1.09); sigma'^2 + 0.25 = 1.34.

    c_in = 1 / sqrt(1.34);  c_skip = 0.25 / 1.34;  c_out = sqrt(1.09) * sqrt(0.25 / 1.34)
    = sqrt(1.09 * 0.25 / 1.34) = 0.45095...;  c_noise = ln(sqrt(1.09)) / 4 = ln(1.09) / 8.
    """
    sigma = jnp.asarray([0.0, 1.0])
    c_in, c_skip, c_out, c_noise = (float(c[1]) for c in edm.coefficients(sigma, CFG))
    assert c_in == pytest.approx(1 / math.sqrt(1.34), rel=1e-6)
    assert c_skip == pytest.approx(0.25 / 1.34, rel=1e-6)
    assert c_out == pytest.approx(math.sqrt(1.09) * math.sqrt(0.25 / 1.34), rel=1e-6)
    assert c_out == pytest.approx(0.450953, rel=1e-5)
    assert c_noise == pytest.approx(math.log(1.09) / 8, rel=1e-5)


def test_coefficients_keep_the_shape_of_sigma():
    """Each coefficient is shaped like sigma (the model broadcasts them over [B, H, W, C])."""
    for c in edm.coefficients(jnp.ones((5,)), CFG):
        assert c.shape == (5,)


def test_sample_sigma_is_a_clipped_log_normal():
    """Training sigmas lie in [sigma_min, sigma_max]; log sigma has mean p_mean, std p_std.

    Clipping at [2e-3, 20] cuts log sigma at -6.2 (4.8 std below -0.4) and 3.0 (2.8 std above):
    0.2% of the mass, which moves the mean by < 0.001; the standard error on 20000 draws is
    1.2 / sqrt(20000) = 0.0085.
    """
    sigma = np.asarray(edm.sample_sigma(jax.random.key(0), (20_000,), CFG))
    assert sigma.min() >= 2e-3 and sigma.max() <= 20.0
    assert (sigma == 20.0).any()  # the upper clip is reached in 20000 draws (~46 expected)
    log = np.log(sigma)
    assert abs(log.mean() - (-0.4)) < 0.04
    assert abs(log.std() - 1.2) < 0.04


def test_add_noise_adds_a_per_image_per_channel_offset():
    """With sigma = 0 only the offset noise is left: one constant per image and channel."""
    x = jnp.zeros((4, 8, 8, 3))
    offset = np.asarray(edm.add_noise(jax.random.key(1), x, jnp.zeros(4), CFG))
    np.testing.assert_allclose(offset, offset[:, :1, :1, :] * np.ones_like(offset), atol=0)
    assert 0.05 < offset[:, 0, 0, :].std() < 1.0  # ~ sigma_offset = 0.3
    noisy = np.asarray(edm.add_noise(jax.random.key(1), x, jnp.full(4, 2.0), CFG))
    assert 1.5 < (noisy - offset).std() < 2.5  # pixel noise of std sigma = 2


def test_a_perfect_network_output_reconstructs_the_clean_frame():
    """If F equals the loss target, D = c_skip * noisy + c_out * F is exactly x."""
    kx, kn, ks = jax.random.split(jax.random.key(2), 3)
    x = jax.random.uniform(kx, (6, 8, 8, 3), minval=-1, maxval=1)
    sigma = edm.sample_sigma(ks, (6,), CFG)
    noisy = edm.add_noise(kn, x, sigma, CFG)
    target = edm.loss_weighted_target(x, noisy, sigma, CFG)
    _, c_skip, c_out, _ = edm.coefficients(sigma, CFG)
    rebuilt = c_skip[:, None, None, None] * noisy + c_out[:, None, None, None] * target
    np.testing.assert_allclose(rebuilt, x, atol=1e-5)


def test_karras_sigmas_by_hand():
    """steps 3, sigma_min 2e-3, sigma_max 5, rho 7: [5, mid, 2e-3, 0] with
    mid = ((5^(1/7) + 0.002^(1/7)) / 2)^7 (the ramp is i / (n - 1) = 0, 0.5, 1)."""
    sigmas = np.asarray(edm.karras_sigmas(SamplerConfig(3, "euler", 2e-3, 5.0, 7.0)))
    assert sigmas.shape == (4,) and sigmas.dtype == np.float32
    mid = ((5 ** (1 / 7) + 2e-3 ** (1 / 7)) / 2) ** 7  # = 0.2831...
    np.testing.assert_allclose(sigmas, [5.0, mid, 2e-3, 0.0], rtol=1e-5)
    assert sigmas[1] == pytest.approx(0.28308, rel=1e-4)


def test_karras_sigmas_with_one_step():
    """A single step goes straight from sigma_max to 0."""
    sigmas = np.asarray(edm.karras_sigmas(SamplerConfig(steps=1)))
    np.testing.assert_allclose(sigmas, [5.0, 0.0], rtol=1e-6)
