"""Reward-classifier training pieces: the optimizer with per-part rates keeps the chains old
checkpoints were written with, and the shipped classifier's old-layout config loads."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from robolearn.reward_models import checkpoint as ckpt
from robolearn.reward_models.config import OPTIM, TrainingConfig
from robolearn.reward_models.train import make_optimizer

from robolearn import bundles
from robolearn.core.optim import OptimConfig


def _old_adamw(lr):
    """robolearn.core.optim.warmup_cosine_adamw at OPTIM's settings, as it was."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, 50, 2000, end_value=0.1 * lr)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4))


def test_per_part_rates_keep_the_old_chain_and_their_own_rate():
    params = {"head": {"w": jnp.zeros(3)}, "towers": {"w": jnp.zeros(3)}}
    rates = {"towers": 1e-5}
    new = make_optimizer(OPTIM, rates)
    old = optax.multi_transform(
        {"": _old_adamw(1e-3), "towers": _old_adamw(1e-5)},
        lambda p: {
            k: jax.tree.map(lambda _, k=k: k if k in rates else "", v) for k, v in p.items()
        },
    )
    assert jax.tree.structure(new.init(params)) == jax.tree.structure(old.init(params))
    grads = jax.tree.map(jnp.ones_like, params)
    state, moved = new.init(params), params
    for _ in range(60):  # past the warm-up: each part moves at its own peak rate
        updates, state = new.update(grads, state, moved)
        moved = optax.apply_updates(moved, updates)
    ratio = float(updates["head"]["w"][0] / updates["towers"]["w"][0])
    assert abs(ratio - 100.0) < 1.0
    assert jax.tree.structure(make_optimizer(OPTIM).init(params)) == jax.tree.structure(
        _old_adamw(1e-3).init(params)
    )


def test_shipped_classifier_in_the_old_layout_loads():
    root = Path(bundles.resolve("bundle:drawer/reward"))
    assert "shift_pad" in (root / "config.yaml").read_text().split("optim:")[1]  # old layout
    cfg, stats = ckpt.read_config(root)
    assert cfg.training == TrainingConfig(shift_pad=4)
    assert cfg.optim == OptimConfig(1e-3, weight_decay=1e-4, warmup_steps=50, decay_steps=1500)
    assert stats.episodes == json.loads((root / "stats.json").read_text())["episodes"]
    assert ckpt.load_reward_model(root).step > 0
