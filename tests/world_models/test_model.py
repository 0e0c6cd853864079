"""The world model's shapes, space-to-depth, config checks and the sampler (tiny preset)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from robolearn.world_models import edm, sampler
from robolearn.world_models.config import SamplerConfig, preset
from robolearn.world_models.model import count_params, depth_to_space, space_to_depth
from robolearn.world_models.train import init_model

from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats

SIZE, T, A, P, B = 16, 4, 7, 7, 2
CFG = preset("tiny", image_size=SIZE)


@pytest.fixture(scope="module")
def model():
    return init_model(CFG, jax.random.key(0))


def _inputs(seed=0, batch=B, size=SIZE):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    frames = jax.random.uniform(k1, (batch, T, size, size, 3), minval=-1, maxval=1)
    actions = jax.random.uniform(k2, (batch, T, A), minval=-1, maxval=1)
    noisy = jax.random.normal(k3, (batch, size, size, 3))
    return noisy, jnp.full((batch,), 0.7), frames, actions


def _stats():
    return NormStats(np.zeros(P, np.float32), np.ones(P, np.float32), np.full(P, 0.1, np.float32))


def test_tiny_preset_is_tiny(model):
    """The test preset stays small enough for CPU unit tests."""
    assert CFG.preset == "tiny" and CFG.model.context == T
    assert 1_000 < count_params(model) < 100_000


def test_denoise_network_and_proprio_shapes(model):
    """denoise/network: [B, H, W, 3] float32; proprio_delta: [B, P]."""
    noisy, sigma, frames, actions = _inputs()
    for fn in (model.denoise, model.network):
        out = fn(noisy, sigma, frames, actions)
        assert out.shape == (B, SIZE, SIZE, 3) and out.dtype == jnp.float32
        assert np.isfinite(np.asarray(out)).all()
    delta = model.proprio_delta(jnp.zeros((B, T, P)), actions)
    assert delta.shape == (B, P)


def test_denoise_at_init_is_the_skip_connection(model):
    """conv_out starts at zero, so a fresh model's D(x) = c_skip * x (EDM's safe start)."""
    noisy, sigma, frames, actions = _inputs()
    _, c_skip, _, _ = edm.coefficients(sigma, CFG.edm)
    out = model.denoise(noisy, sigma, frames, actions)
    np.testing.assert_allclose(out, c_skip[:, None, None, None] * noisy, atol=1e-6)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_space_to_depth_round_trip(p):
    """depth_to_space inverts space_to_depth; each output pixel holds one p x p block."""
    x = jax.random.normal(jax.random.key(p), (2, 8, 8, 3))
    y = space_to_depth(x, p)
    assert y.shape == (2, 8 // p, 8 // p, 3 * p * p)
    np.testing.assert_array_equal(depth_to_space(y, p), x)
    block = np.asarray(x[0, :p, :p, :]).reshape(-1)
    np.testing.assert_array_equal(np.asarray(y[0, 0, 0]), block)


def test_image_size_must_divide_by_the_unet_scale():
    """An image size the U-Net cannot halve (or patch) evenly is a ConfigError up front."""
    with pytest.raises(ConfigError, match="image_size 63 must be divisible"):
        preset("tiny", image_size=63)
    with pytest.raises(ConfigError, match=r"= 8"):
        preset("small", image_size=60)  # patch 2 * 2^(3-1) = 8
    with pytest.raises(ConfigError, match="unknown world_model preset 'huge'"):
        preset("huge")


def test_sample_next_is_deterministic_per_key(model):
    """Same key -> identical frame; another key -> another frame; always clamped to [-1, 1]."""
    _, _, frames, actions = _inputs()
    cfg = SamplerConfig(steps=2)
    a = sampler.sample_next(model, jax.random.key(1), frames, actions, cfg)
    b = sampler.sample_next(model, jax.random.key(1), frames, actions, cfg)
    c = sampler.sample_next(model, jax.random.key(2), frames, actions, cfg)
    assert a.shape == (B, SIZE, SIZE, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0


def test_heun_sampler_runs(model):
    """The Heun variant gives a finite, clamped frame of the same shape."""
    _, _, frames, actions = _inputs()
    x = sampler.sample_next(model, jax.random.key(1), frames, actions, SamplerConfig(3, "heun"))
    assert x.shape == (B, SIZE, SIZE, 3)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0


def test_open_loop_shapes_and_determinism(model):
    """open_loop: uint8 frames [B, N, H, W, 3] and proprio [B, N, P]; same key, same rollout."""
    graphdef, params = nnx.split(model)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (B, T, SIZE, SIZE, 3), dtype=np.uint8)
    actions = np.zeros((B, T, A), np.float32)
    proprio = rng.normal(size=(B, T, P)).astype(np.float32)
    future = rng.uniform(-1, 1, (B, 3, A)).astype(np.float32)
    cfg = SamplerConfig(steps=2)
    run = jax.jit(sampler.open_loop, static_argnums=(0, 7))
    args = (frames, actions, proprio, future, cfg, _stats())
    imagined, prop = run(graphdef, params, jax.random.key(3), *args)
    assert imagined.shape == (B, 3, SIZE, SIZE, 3) and imagined.dtype == jnp.uint8
    assert prop.shape == (B, 3, P) and prop.dtype == jnp.float32
    again, prop_again = run(graphdef, params, jax.random.key(3), *args)
    np.testing.assert_array_equal(imagined, again)
    np.testing.assert_array_equal(prop, prop_again)
    other, _ = run(graphdef, params, jax.random.key(4), *args)
    assert not np.array_equal(imagined, other)
    # The proprio head starts at zero: a fresh model predicts no change.
    np.testing.assert_allclose(prop, np.repeat(proprio[:, -1:], 3, axis=1), atol=1e-6)


@pytest.mark.slow
def test_small_preset_with_patch_2_runs_denoise():
    """The shipped CPU preset (2x2 space-to-depth, 3 levels) builds and denoises a 64x64 frame."""
    cfg = preset("small")
    assert cfg.model.patch == 2
    model = nnx.jit(lambda key: init_model(cfg, key))(jax.random.key(0))
    assert 3_000_000 < count_params(model) < 5_000_000
    noisy, sigma, frames, actions = _inputs(batch=1, size=64)
    out = nnx.jit(lambda m, *x: m.denoise(*x))(model, noisy, sigma, frames, actions)
    assert out.shape == (1, 64, 64, 3) and np.isfinite(np.asarray(out)).all()


def test_bfloat16_compute_runs_and_stays_close_to_float32():
    """--dtype bfloat16 (the accelerator default) builds and denoises; weights stay float32 and
    the output is close to the float32 model with the same weights."""
    cfg = preset("tiny", image_size=SIZE, patch=1)  # full resolution: the patch-1 path too
    f32 = nnx.jit(lambda key: init_model(cfg, key))(jax.random.key(3))
    bf16 = nnx.jit(lambda key: init_model(cfg, key, dtype=jnp.bfloat16))(jax.random.key(3))
    params = nnx.state(bf16, nnx.Param)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    noisy, sigma, frames, actions = _inputs(seed=4)
    # Break the zero-initialised output layers so the comparison sees the network, not c_skip.
    for m in (f32, bf16):
        m.unet.conv_out.kernel[...] = jnp.full_like(m.unet.conv_out.kernel[...], 0.01)
    denoise = nnx.jit(lambda m, *x: m.denoise(*x))
    out32 = denoise(f32, noisy, sigma, frames, actions)
    out16 = denoise(bf16, noisy, sigma, frames, actions)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out16), np.asarray(out32), atol=0.05)


@pytest.mark.parametrize(
    "name, low, high",
    [("tiny", 1e4, 1e5), ("small", 3.5e6, 4.5e6), ("base", 4e6, 5e6), ("large", 1e8, 2e8)],
)
def test_presets_have_their_documented_sizes(name, low, high):
    """Parameter counts as documented (large: 100M+ for GPUs/TPUs), counted without allocating."""
    cfg = preset(name)
    shapes = jax.eval_shape(
        lambda key: nnx.state(init_model(cfg, key), nnx.Param), jax.random.key(0)
    )
    assert low <= sum(x.size for x in jax.tree.leaves(shapes)) <= high
