"""Noise-augmented context frames (model.context_noise, GameNGen's answer to autoregressive
drift): the config checks, the denoiser conditioned on the context's noise level, the training
augmentation, the sampler's inference level, and fine-tuning a model trained without it (tiny)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from robolearn.world_models import sampler
from robolearn.world_models import train as wt
from robolearn.world_models.config import (
    SamplerConfig,
    WorldModelConfig,
    preset,
    with_context_noise,
)
from robolearn.world_models.model import count_params

from robolearn.core.config import from_dict
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats

SIZE, T, A, B = 16, 4, 7, 3
PLAIN = preset("tiny", image_size=SIZE)
NOISY = with_context_noise(PLAIN, 0.5)


def _inputs(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    frames = jax.random.uniform(k1, (B, T, SIZE, SIZE, 3), minval=-1, maxval=1)
    actions = jax.random.uniform(k2, (B, T, A), minval=-1, maxval=1)
    noisy = jax.random.normal(k3, (B, SIZE, SIZE, 3))
    return noisy, jnp.full((B,), 0.7), frames, actions


def _live(model):
    """The model with every weight perturbed, so its output depends on all its inputs (a fresh
    denoiser's output layers and residual branches start at zero: D(x) = c_skip x whatever it
    is told)."""
    graphdef, params = nnx.split(model)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    leaves = [
        x + 0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)
    ]
    return nnx.merge(graphdef, jax.tree.unflatten(tree, leaves))


@pytest.mark.parametrize("value", [-0.1, float("nan"), 11.0])
def test_bad_context_noise_levels_are_config_errors(value):
    with pytest.raises(ConfigError, match="model.context_noise"):
        dataclasses.replace(PLAIN.model, context_noise=value)
    with pytest.raises(ConfigError, match="sampler.context_noise"):
        SamplerConfig(context_noise=value)


@pytest.mark.parametrize("value", [-0.1, float("nan"), 1.0])
def test_bad_clean_fractions_are_config_errors(value):
    with pytest.raises(ConfigError, match=r"model.context_clean must be in \[0, 1\)"):
        dataclasses.replace(NOISY.model, context_clean=value)
    with pytest.raises(ConfigError, match="context_clean needs model.context_noise > 0"):
        dataclasses.replace(PLAIN.model, context_clean=0.25)


def test_sampling_above_the_trained_level_is_refused():
    with pytest.raises(
        ConfigError, match=r"above the context noise .* \(model.context_noise 0.0\)"
    ):
        dataclasses.replace(PLAIN, sampler=SamplerConfig(context_noise=0.2))
    with pytest.raises(ConfigError, match="model.context_noise 0.5"):
        dataclasses.replace(NOISY, sampler=SamplerConfig(context_noise=0.6))
    ok = dataclasses.replace(NOISY, sampler=SamplerConfig(context_noise=0.5))
    assert ok.sampler.context_noise == 0.5
    # the same check when loaded from a config file (a checkpoint's config.yaml)
    data = {"model": {"context_noise": 0.1}, "sampler": {"context_noise": 0.3}}
    with pytest.raises(ConfigError, match="above the context noise"):
        from_dict(WorldModelConfig, data)


def test_off_adds_nothing_and_on_adds_one_conditioning_input_block():
    plain = wt.init_model(PLAIN, jax.random.key(0))
    noisy = wt.init_model(NOISY, jax.random.key(0))
    cd = PLAIN.model.cond_dim
    assert count_params(noisy) - count_params(plain) == cd * cd
    assert noisy.cond_in.kernel[...].shape[0] == plain.cond_in.kernel[...].shape[0] + cd


def test_the_denoiser_is_told_the_context_level():
    model = _live(wt.init_model(NOISY, jax.random.key(0)))
    noisy, sigma, frames, actions = _inputs()
    clean = model.denoise(noisy, sigma, frames, actions)
    told_zero = model.denoise(noisy, sigma, frames, actions, context_sigma=jnp.zeros(B))
    told_half = model.denoise(noisy, sigma, frames, actions, context_sigma=jnp.full(B, 0.5))
    np.testing.assert_array_equal(clean, told_zero)  # None means a clean context
    assert float(jnp.abs(told_half - told_zero).max()) > 1e-4


def test_training_noises_each_sample_s_context_at_its_own_level():
    frames = jnp.zeros((64, T, SIZE, SIZE, 3))
    same, none = wt.augment_context(jax.random.key(0), frames, 0.0)
    assert none is None and same is frames
    noised, level = wt.augment_context(jax.random.key(0), frames, 0.5)
    level = np.asarray(level)
    assert level.shape == (64,) and (level >= 0).all() and (level <= 0.5).all()
    assert level.std() > 0.1  # levels differ between samples (uniform on [0, 0.5]: std 0.14)
    spread = np.asarray(noised).reshape(64, -1).std(axis=1)
    np.testing.assert_allclose(spread, level, rtol=0.05, atol=1e-3)


def test_a_clean_fraction_keeps_that_share_of_contexts_at_level_zero():
    """model.context_clean: about that share of the samples get level exactly 0 and their frames
    untouched; the others keep the levels the plain augmentation draws (the same key)."""
    frames = jax.random.uniform(jax.random.key(1), (512, T, SIZE, SIZE, 3), minval=-1, maxval=1)
    _, uniform = wt.augment_context(jax.random.key(0), frames, 0.5)
    noised, level = wt.augment_context(jax.random.key(0), frames, 0.5, clean=0.25)
    level, uniform = np.asarray(level), np.asarray(uniform)
    zero = level == 0
    assert 0.18 < zero.mean() < 0.32 and (uniform > 0).all()
    np.testing.assert_array_equal(level[~zero], uniform[~zero])
    np.testing.assert_array_equal(np.asarray(noised)[zero], np.asarray(frames)[zero])
    assert (np.abs(np.asarray(noised - frames)[~zero]).reshape((~zero).sum(), -1).max(1) > 0).all()


def test_training_with_it_feeds_the_model_noisy_context():
    """One loss evaluation passes the network frames that differ from the batch's by noise, and
    the levels; a model trained without it gets the batch's frames untouched."""
    seen = {}

    class Spy:
        def __init__(self, model):
            self.model = model

        def network(self, noisy, sigma, frames, actions, context_sigma=None):
            seen.update(frames=frames, context_sigma=context_sigma)
            return self.model.network(noisy, sigma, frames, actions, context_sigma)

        def proprio_delta(self, proprio, actions):
            return self.model.proprio_delta(proprio, actions)

    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (B, T + 1, SIZE, SIZE, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (B, T, A)).astype(np.float32),
        "proprio": rng.normal(size=(B, T + 1, 7)).astype(np.float32),
    }
    stats = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32), np.ones(7, np.float32))
    clean = sampler.to_float(batch["image"][:, :T])
    for cfg in (PLAIN, NOISY):
        model = Spy(wt.init_model(cfg, jax.random.key(0)))
        total, _ = wt.losses(model, cfg, stats, batch, jax.random.key(1))
        assert np.isfinite(float(total))
        if cfg is PLAIN:
            assert seen["context_sigma"] is None
            np.testing.assert_array_equal(seen["frames"], clean)
        else:
            levels = np.asarray(seen["context_sigma"])
            assert levels.shape == (B,) and (levels > 0).all()
            assert float(jnp.abs(seen["frames"] - clean).max()) > 0.01


def test_the_sampler_noises_the_context_at_its_level_and_tells_the_model():
    calls = []

    class Recorder:
        def denoise(self, x, sigma, frames, actions, context_sigma=None):
            calls.append((frames, context_sigma))
            return jnp.zeros_like(x)

    _, _, frames, actions = _inputs()
    sampler.sample_next(Recorder(), jax.random.key(0), frames, actions, SamplerConfig())
    assert all(level is None for _, level in calls)
    assert all(np.array_equal(f, frames) for f, _ in calls)
    calls.clear()
    cfg = SamplerConfig(context_noise=0.3)
    sampler.sample_next(Recorder(), jax.random.key(0), frames, actions, cfg)
    assert len(calls) == cfg.steps
    for seen, level in calls:
        np.testing.assert_array_equal(level, np.full(B, 0.3, np.float32))
        np.testing.assert_allclose(float(jnp.std(seen - frames)), 0.3, rtol=0.05)
    # the same noisy context at every denoising step of one frame
    assert all(np.array_equal(calls[0][0], seen) for seen, _ in calls)


def test_a_model_trained_without_it_is_fine_tuned_with_it_from_the_same_function():
    """adopt_weights: the grown model, told any level, computes what the source did (the new
    conditioning inputs start at zero weight); shapes that cannot be grown are refused."""
    source = _live(wt.init_model(PLAIN, jax.random.key(0)))
    graphdef, target = nnx.split(wt.init_model(NOISY, jax.random.key(1)))
    grown = nnx.merge(graphdef, wt.adopt_weights(nnx.state(source), target, PLAIN.model.cond_dim))
    noisy, sigma, frames, actions = _inputs()
    want = source.denoise(noisy, sigma, frames, actions)
    for level in (None, jnp.full(B, 0.4)):
        got = grown.denoise(noisy, sigma, frames, actions, context_sigma=level)
        np.testing.assert_allclose(got, want, atol=1e-5)
    other = preset("tiny", image_size=SIZE, channels=(8, 24))
    _, wrong = nnx.split(wt.init_model(other, jax.random.key(0)))
    with pytest.raises(ValueError, match="does not fit"):
        wt.adopt_weights(nnx.state(source), wrong, PLAIN.model.cond_dim)
