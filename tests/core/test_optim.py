"""robolearn.core.optim: the chains equal the ones checkpoints were written with, the schedule by
hand, the settings checked, and the config importable without JAX."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig, make_optimizer

PARAMS = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}


def _old_adamw(lr, wd, warmup, decay, clip):
    """The chain of robolearn.core.optim.warmup_cosine_adamw (BC, world model, reward) as it was."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(decay, warmup + 1), end_value=0.1 * lr
    )
    return optax.chain(optax.clip_by_global_norm(clip), optax.adamw(schedule, weight_decay=wd))


def _old_ppo_adam(lr, clip):
    """The chain of robolearn.policies.ppo.train.make_optimizers as it was (actor and critic)."""
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))


def _run(tx, steps=5):
    """(state structure, params after `steps` updates with fixed gradients)."""
    state, params = tx.init(PARAMS), PARAMS
    grads = {"w": jnp.full((3, 2), 0.3), "b": jnp.array([2.0, -1.0])}
    for _ in range(steps):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return jax.tree.structure(state), params


@pytest.mark.parametrize(
    ("cfg", "old"),
    [
        (OptimConfig(3e-4, 1e-4, 100, 20_000, 1.0), _old_adamw(3e-4, 1e-4, 100, 20_000, 1.0)),
        (OptimConfig(2e-3, 1e-2, 0, 1000, 1.0), _old_adamw(2e-3, 1e-2, 0, 1000, 1.0)),
        (OptimConfig(1e-3, 1e-4, 50, 2, 1.0), _old_adamw(1e-3, 1e-4, 50, 2, 1.0)),
        (OptimConfig(1e-5, grad_clip=0.5), _old_ppo_adam(1e-5, 0.5)),
        (OptimConfig(3e-4, grad_clip=0.5), _old_ppo_adam(3e-4, 0.5)),
    ],
)
def test_chains_are_the_ones_old_checkpoints_hold(cfg, old):
    """Same optimizer-state pytree (what orbax restores into) and the same updates."""
    new_structure, new_params = _run(make_optimizer(cfg))
    old_structure, old_params = _run(old)
    assert new_structure == old_structure
    for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(old_params), strict=True):
        np.testing.assert_array_equal(a, b)


def _rates(cfg, steps):
    """The rate of each step: Adam without decay on a constant gradient of one sign moves every
    parameter by exactly the rate (m_hat / sqrt(v_hat) = 1, eps aside)."""
    tx = make_optimizer(cfg)
    params = jnp.zeros(1)
    state, rates = tx.init(params), []
    for _ in range(steps):
        updates, state = tx.update(jnp.ones(1) * 0.1, state, params)
        rates.append(-float(updates[0]))
    return np.asarray(rates)


def test_schedule_warms_up_linearly_then_decays_to_a_tenth_by_hand():
    rates = _rates(OptimConfig(1.0, warmup_steps=4, decay_steps=14), 20)
    np.testing.assert_allclose(rates[:5], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-5)
    # half-way through the cosine (step 9 of 4..14): 0.1 + 0.9 * (1 + cos(pi / 2)) / 2 = 0.55
    np.testing.assert_allclose(rates[9], 0.55, atol=1e-5)
    np.testing.assert_allclose(rates[14:], 0.1, atol=1e-5)


def test_no_schedule_is_a_constant_rate():
    np.testing.assert_allclose(_rates(OptimConfig(0.01), 6), 0.01, rtol=1e-4)


def test_weight_decay_zero_is_plain_adam_and_nonzero_is_adamw():
    adam = jax.tree.structure(make_optimizer(OptimConfig(1e-3)).init(PARAMS))
    adamw = jax.tree.structure(make_optimizer(OptimConfig(1e-3, weight_decay=0.1)).init(PARAMS))
    assert adam != adamw
    assert adam == jax.tree.structure(_old_ppo_adam(1e-3, 1.0).init(PARAMS))


@pytest.mark.parametrize(
    "fields",
    [
        {"learning_rate": 0.0},
        {"grad_clip": -1.0},
        {"weight_decay": -1e-4},
        {"warmup_steps": -1},
        {"decay_steps": -5},
    ],
)
def test_bad_settings_are_one_line_errors(fields):
    with pytest.raises(ConfigError, match="optim"):
        OptimConfig(**fields)


def test_the_config_imports_without_jax():
    """Configs holding an OptimConfig are read by the CLI before any model exists."""
    code = "import sys, robolearn.core.optim; print('jax' in sys.modules, 'optax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False", out.stdout + out.stderr
