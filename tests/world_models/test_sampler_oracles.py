"""The sampler's mathematics against independent references.

- diffusers' `EDMEulerScheduler` (torch, CPU) for the Karras noise levels, the EDM
  preconditioning at sigma_offset = 0 (diffusers has no offset noise) and the Euler loop, driven
  with the tiny WorldModel's own U-Net as the network F.
- Denoisers that are exact for known data, whose probability-flow ODE has a closed-form or a
  many-step float64 solution, for Heun against Euler.

diffusers' conventions, read from its source (0.42): `set_timesteps(n)` builds the Karras levels
from torch.linspace(0, 1, n) in float64, casts them to float32 and appends a final 0
(final_sigmas_type="zero"); `timesteps` = precondition_noise(sigma) = ln(sigma) / 4 (our
c_noise); prediction_type="epsilon" is EDM's F-prediction, c_out = sigma * sigma_data /
sqrt(sigma^2 + sigma_data^2) ("v_prediction" only flips its sign); `scale_model_input` multiplies
by c_in; `step` without churn is x + (x - D) / sigma * (sigma_next - sigma) in float32. Its
`init_noise_sigma` = sqrt(sigma_max^2 + 1) is not EDM's start (sigma_max): the loops are compared
from the same x_T, and our start is checked on its own.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import EDMEulerScheduler
from flax import nnx
from robolearn.world_models import edm, sampler
from robolearn.world_models.config import EDMConfig, SamplerConfig, preset
from robolearn.world_models.train import init_model

SIZE, T, A, B = 16, 4, 7, 2


def _scheduler(cfg: SamplerConfig, sigma_data: float = 0.5) -> EDMEulerScheduler:
    sched = EDMEulerScheduler(
        sigma_min=cfg.sigma_min,
        sigma_max=cfg.sigma_max,
        sigma_data=sigma_data,
        sigma_schedule="karras",
        prediction_type="epsilon",
        rho=cfg.rho,
        final_sigmas_type="zero",
    )
    sched.set_timesteps(cfg.steps)
    return sched


@pytest.mark.parametrize(
    "cfg",
    [
        SamplerConfig(1),
        SamplerConfig(3),
        SamplerConfig(10, sigma_min=2e-3, sigma_max=80.0, rho=7.0),
        SamplerConfig(40, sigma_min=0.01, sigma_max=20.0, rho=3.0),
    ],
    ids=lambda c: f"{c.steps}-{c.sigma_min}-{c.sigma_max}-{c.rho}",
)
def test_karras_sigmas_match_diffusers(cfg):
    """karras_sigmas == diffusers' set_timesteps levels, the final 0 included, and our c_noise
    (offset 0) == its timesteps.

    Tolerance rtol 1e-5: diffusers computes in float64 and rounds once to float32; we compute
    in float32, where the base a + r (b - a) carries a rounding error of about one ulp of
    sigma_max^(1/rho), which the power rho multiplies (measured worst over 48 step counts,
    ranges and rho: 4.6e-6). A 1% error in rho moves the middle levels by several percent.
    """
    ours = np.asarray(edm.karras_sigmas(cfg))
    sched = _scheduler(cfg)
    theirs = sched.sigmas.numpy()
    assert ours.shape == theirs.shape == (cfg.steps + 1,)
    assert ours[-1] == theirs[-1] == 0.0
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=0)
    *_, c_noise = edm.coefficients(jnp.asarray(ours[:-1]), EDMConfig(sigma_offset=0.0))
    np.testing.assert_allclose(c_noise, sched.timesteps.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sigma_data", [0.5, 0.25])
def test_preconditioning_matches_diffusers_at_offset_zero(sigma_data):
    """c_in, c_skip, c_out, c_noise == diffusers' precondition_inputs / _outputs / _noise, over
    sigma from 1e-3 to 100.

    diffusers is run in float64 (its formulas are exact there); ours is float32: rtol 1e-6 is a
    few float32 ulps. Each coefficient is read off diffusers' public calls: precondition_inputs(1)
    = c_in, precondition_outputs(sample=1, F=0) = c_skip, (sample=0, F=1) = c_out.
    """
    sigma = np.geomspace(1e-3, 100.0, 41)
    cfg = EDMConfig(sigma_data=sigma_data, sigma_offset=0.0)
    c_in, c_skip, c_out, c_noise = (np.asarray(c) for c in edm.coefficients(sigma, cfg))
    sched = EDMEulerScheduler(sigma_data=sigma_data, prediction_type="epsilon")
    s = torch.from_numpy(sigma)
    ones, zeros = torch.ones_like(s), torch.zeros_like(s)
    np.testing.assert_allclose(c_in, sched.precondition_inputs(ones, s).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        c_skip, sched.precondition_outputs(ones, zeros, s).numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(c_out, sched.precondition_outputs(zeros, ones, s).numpy(), rtol=1e-6)
    np.testing.assert_allclose(c_noise, sched.precondition_noise(s).numpy(), rtol=1e-6, atol=1e-7)


@nnx.jit
def _denoise(model, x, sigma, frames, actions):
    return model.denoise(x, sigma, frames, actions)


@nnx.jit
def _network_on_preconditioned(model, u, c_noise, frames, actions):
    """The network F as diffusers' pipelines call it, F(c_in * x, c_noise): the WorldModel's
    U-Net fed u = c_in * x and c_noise from diffusers, with the context frames and conditioning
    that WorldModel.network builds (the same on both sides, not under test)."""
    b, t, h, w, _ = frames.shape
    context = (frames / model.edm_cfg.sigma_data).transpose(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    x = jnp.concatenate([u, context], axis=-1)
    return model.unet(x, model.condition(jnp.full((b,), c_noise, jnp.float32), actions))


class _FirstInput:
    """Delegates denoise to `model` (compiled) and keeps the first x it is given: sample_next's
    initial noise x_T, so that diffusers' loop starts from the same x_T without this test
    knowing how sample_next draws it."""

    def __init__(self, model):
        self.model, self.x_T = model, None

    def denoise(self, x, sigma, frames, actions):
        if self.x_T is None:
            self.x_T = np.array(x)
        return _denoise(self.model, x, sigma, frames, actions)


def _random_params(path, leaf):
    """Deterministic random weights per parameter (seeded by its name)."""
    name = jax.tree_util.keystr(path)
    rng = np.random.default_rng(sum(name.encode()))
    if "scale" in name:
        value = 1.0 + 0.1 * rng.standard_normal(leaf.shape)
    elif "kernel" in name:
        value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    else:
        value = 0.1 * rng.standard_normal(leaf.shape)
    return jnp.asarray(value, leaf.dtype)


@pytest.fixture(scope="module")
def world_model():
    """The tiny WorldModel at one U-Net level (half the compile time of two), without offset
    noise (diffusers has none), every weight random (a fresh model's conv_out is zero, so F = 0
    and the loop would only test c_skip). Built from its abstract shapes: initializing it
    eagerly costs ~1 min on two busy cores."""
    cfg = preset("tiny", image_size=SIZE, channels=(8,))
    cfg = dataclasses.replace(cfg, edm=dataclasses.replace(cfg.edm, sigma_offset=0.0))
    graphdef, shapes = nnx.split(nnx.eval_shape(lambda: init_model(cfg, jax.random.key(0))))
    model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(_random_params, shapes))
    rng = np.random.default_rng(2)
    frames = rng.uniform(-1, 1, (B, T, SIZE, SIZE, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, (B, T, A)).astype(np.float32)
    return model, jnp.asarray(frames), jnp.asarray(actions)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_euler_loop_matches_diffusers_edm_euler_scheduler(world_model, steps):
    """sample_next(euler) == diffusers' loop (scale_model_input -> F -> step) from the same x_T,
    with the same network F, after clamping to [-1, 1].

    Both run in float32 (diffusers' step casts the sample to float32). atol 1e-5 on samples in
    [-1, 1]: the two sides' c_in, c_noise and sigmas differ by float32 rounding, which the U-Net
    and the steps carry through (measured worst 1.9e-6 at 1 to 10 steps). A 0.1% error in c_skip
    alone moves the samples by 2e-4 (1 step) to 3e-3 (5 steps), c_noise = ln(sigma) / 4.5 by
    0.06 to 0.14.
    """
    model, frames, actions = world_model
    cfg = SamplerConfig(steps, "euler", sigma_min=2e-3, sigma_max=5.0, rho=7.0)
    spy = _FirstInput(model)
    ours = np.asarray(sampler.sample_next(spy, jax.random.key(3), frames, actions, cfg))

    sched = _scheduler(cfg, model.edm_cfg.sigma_data)
    # diffusers' pipelines draw x_T * init_noise_sigma = sqrt(sigma_max^2 + 1) (its VP
    # schedulers' convention); EDM's Algorithm 1, DIAMOND and ours start at sigma_max. The loop
    # is compared from the same x_T, and the start is checked to be sigma_max on our side.
    assert sched.init_noise_sigma == pytest.approx((5.0**2 + 1) ** 0.5)
    assert 4.5 < spy.x_T.std() < 5.5
    x = torch.from_numpy(spy.x_T)
    for t in sched.timesteps:
        u = jnp.asarray(sched.scale_model_input(x, t).numpy())
        f = _network_on_preconditioned(model, u, float(t), frames, actions)
        x = sched.step(torch.from_numpy(np.array(f)), t, x).prev_sample
    theirs = np.clip(x.numpy(), -1.0, 1.0)

    inside = np.abs(theirs) < 1.0
    assert inside.mean() > 0.5, "most of the sample must be unclamped for this to test anything"
    assert np.abs(ours).max() > 0.1, "F must move the sample"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


class _ExactDenoiser:
    """Stand-in for a WorldModel: sample_next only calls model.denoise(x, sigma [B], frames,
    actions). D(x, sigma) is the exact posterior mean E[x0 | x0 + sigma n = x] of known data,
    elementwise, so the sampler's only error is the ODE solver's. Keeps the first x (x_T)."""

    def __init__(self, posterior_mean):
        self.posterior_mean, self.x_T = posterior_mean, None

    def denoise(self, x, sigma, frames, actions):
        if self.x_T is None:
            self.x_T = np.asarray(x, np.float64)
        return self.posterior_mean(x, sigma[:, None, None, None])


SD = 0.5  # std of the Gaussian data


def _gaussian_mean(x, sigma):
    """x0 ~ N(0, SD^2): E[x0 | x] = x SD^2 / (sigma^2 + SD^2)."""
    return x * SD**2 / (sigma**2 + SD**2)


def _gaussian_exact(x_T, sigma_max):
    """The ODE dx/dsigma = (x - D) / sigma = x sigma / (sigma^2 + SD^2) integrates to
    ln x = ln sqrt(sigma^2 + SD^2) + const, so x(0) = x_T SD / sqrt(sigma_max^2 + SD^2)."""
    return x_T * SD / np.sqrt(sigma_max**2 + SD**2)


MIX_A, MIX_W = 0.3, 0.1  # x0 ~ (N(-a, w^2) + N(a, w^2)) / 2


def _mixture_mean(x, sigma):
    """E[x0 | x] for the two-Gaussian mixture: with v = w^2 + sigma^2 the component
    responsibilities give m = a tanh(a x / v), and E[x0 | x] = m + w^2 / v (x - m)."""
    v = MIX_W**2 + sigma**2
    tanh = jnp.tanh if isinstance(x, jax.Array) else np.tanh  # float64 for the reference
    m = MIX_A * tanh(MIX_A * x / v)
    return m + MIX_W**2 / v * (x - m)


def _euler_reference(mean, x_T, cfg, steps=20_000):
    """float64 NumPy Euler over `steps` Karras levels (written here from EDM's eq. 5): global
    error ~1.6 / steps relative on the Gaussian, 1e-4 at 20000 steps."""
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = cfg.sigma_min ** (1 / cfg.rho), cfg.sigma_max ** (1 / cfg.rho)
    sigmas = np.append((hi + ramp * (lo - hi)) ** cfg.rho, 0.0)
    x = x_T.copy()
    for sigma, nxt in zip(sigmas[:-1], sigmas[1:], strict=True):
        x = x + (x - np.asarray(mean(x, sigma))) / sigma * (nxt - sigma)
    return x


def _sample(mean, method, steps, frames, seed=5):
    cfg = SamplerConfig(steps, method)
    model = _ExactDenoiser(mean)
    rng = jax.random.key(seed)
    out = np.asarray(sampler.sample_next(model, rng, frames, None, cfg), np.float64)
    return out, model.x_T


@pytest.fixture(scope="module")
def frames():
    """Only the shape matters to the stand-in: that of the world-model test (its compiled
    random draws are shared)."""
    return jnp.zeros((B, T, SIZE, SIZE, 3))


def test_sampling_starts_at_sigma_max(frames):
    """x_T ~ N(0, sigma_max^2), EDM's Algorithm 1 (and DIAMOND's config; diffusers' pipelines
    draw x_T * init_noise_sigma = sqrt(sigma_max^2 + 1) instead). 128 keys x 1536 draws pin the
    std to +-0.03 (3 standard errors), against sqrt(5^2 + 1) - 5 = 0.099."""
    x_T = np.stack([_sample(_gaussian_mean, "euler", 1, frames, seed)[1] for seed in range(128)])
    assert abs(x_T.mean()) < 0.035 and abs(x_T.std() - SamplerConfig().sigma_max) < 0.03


def test_the_gaussian_closed_form_is_the_many_step_solution(frames):
    """The closed form used below agrees with a 20000-step float64 Euler integration."""
    _, x_T = _sample(_gaussian_mean, "euler", 1, frames)
    x_T = x_T[:, :4, :4]
    reference = _euler_reference(_gaussian_mean, x_T, SamplerConfig())
    exact = _gaussian_exact(x_T, SamplerConfig().sigma_max)
    np.testing.assert_allclose(reference, exact, rtol=2e-4)


def test_heun_corrects_every_step_but_the_last(frames):
    """At 1 step (straight into sigma = 0) Heun has no correction and is Euler bit for bit; at
    2 and 3 steps the correction into sigma_min and the middle level changes the sample."""
    euler, _ = _sample(_gaussian_mean, "euler", 1, frames)
    heun, _ = _sample(_gaussian_mean, "heun", 1, frames)
    np.testing.assert_array_equal(euler, heun)
    for steps in (2, 3):
        euler, _ = _sample(_gaussian_mean, "euler", steps, frames)
        heun, _ = _sample(_gaussian_mean, "heun", steps, frames)
        assert np.abs(euler - heun).max() > 0.1, steps


def _gaussian_errors(steps, frames):
    """Max |x(0) - exact| of euler and heun over the same elements for every step count: those
    with |x_T| < 1.9, which no sample clamps (the largest gain x(0) / x_T, heun's at 2 steps,
    is 0.51)."""
    euler, x_T = _sample(_gaussian_mean, "euler", steps, frames)
    heun, _ = _sample(_gaussian_mean, "heun", steps, frames)
    exact = _gaussian_exact(x_T, SamplerConfig().sigma_max)
    keep = np.abs(x_T) < 1.9
    assert keep.mean() > 0.2 and np.abs(heun[keep]).max() < 1 and np.abs(euler[keep]).max() < 1
    return np.abs(euler - exact)[keep].max(), np.abs(heun - exact)[keep].max()


def test_heun_is_second_order_on_gaussian_data(frames):
    """Against the exact solution: Heun's error falls ~4x per doubling of the steps (order 2),
    Euler's ~2x (order 1), and Heun is closer from 8 steps. At 2-3 steps Heun is *farther*
    (why euler is the default; sampler.sample_next's docstring): one step spans the bend of the
    trajectory near sigma_data and the trapezoid rule overshoots it.

    Measured in float64 NumPy with these levels (relative error of x(0), euler / heun):
    2 steps 0.90 / 4.1, 3: 0.50 / 2.5, 8: 0.21 / 0.11, 16: 0.10 / 0.023, 32: 0.052 / 0.0051.
    """
    errors = {n: _gaussian_errors(n, frames) for n in (2, 3, 8, 16, 32)}
    for n in (2, 3):
        assert errors[n][1] > 2 * errors[n][0], (n, errors[n])
    for n in (8, 16, 32):
        assert errors[n][1] < 0.7 * errors[n][0], (n, errors[n])
    for n in (8, 16):
        euler_ratio = errors[n][0] / errors[2 * n][0]
        heun_ratio = errors[n][1] / errors[2 * n][1]
        assert 1.7 < euler_ratio < 2.4, (n, euler_ratio)
        assert heun_ratio > 3.5, (n, heun_ratio)


def test_heun_beats_euler_on_a_nonlinear_posterior_mean(frames):
    """Two-Gaussian data (D is a tanh of x): against a 20000-step float64 Euler reference, Heun
    at 8 and 16 steps lands closer than Euler at the same steps, and at 16 steps (31 denoiser
    calls) closer than Euler at 32 (32 calls).

    Measured in float64 NumPy (rms error, euler / heun): 8 steps 0.051 / 0.034, 16: 0.024 /
    0.0056, 32: 0.012 / 0.0012; so at 8 steps heun does not yet beat euler at 16 (0.024)."""
    cfg = SamplerConfig()
    rms = {}
    for method, steps in (("euler", 8), ("euler", 16), ("euler", 32), ("heun", 8), ("heun", 16)):
        out, x_T = _sample(_mixture_mean, method, steps, frames)
        if not rms:
            reference = _euler_reference(_mixture_mean, x_T, cfg)
        rms[method, steps] = np.sqrt(np.mean((out - reference) ** 2))
    assert np.abs(reference).max() < 0.7  # no clamping in the reference
    for steps in (8, 16):
        assert rms["heun", steps] < 0.8 * rms["euler", steps], rms
    assert rms["heun", 16] < 0.7 * rms["euler", 32], rms
