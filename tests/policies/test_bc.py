"""BC actor: shapes, the log-std bound, NLL by hand, learning, checkpoint round trip."""

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

from robolearn import bundles
from robolearn.core.augment import random_shift
from robolearn.core.config import preset_names
from robolearn.core.normalize import NormStats
from robolearn.policies.bc import checkpoint as ckpt
from robolearn.policies.bc.config import preset
from robolearn.policies.bc.model import GaussianActor, gaussian_nll, image_to_float
from robolearn.policies.bc.train import init_train_state, make_train_step

STATS = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32))


def _batch(rng, b=16, size=16):
    """Actions are a fixed function of the image and proprio, so they can be learned."""
    image = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
    proprio = rng.normal(size=(b, 7)).astype(np.float32)
    action = np.tanh(proprio * 0.8 + (image.mean((1, 2, 3)) / 128 - 1)[:, None])
    return {"image": image, "proprio": proprio, "action": action.astype(np.float32)}


@pytest.mark.parametrize("state_dependent", [True, False])
def test_shapes_and_bounds(state_dependent):
    cfg = preset("tiny", image_size=16, action_dim=5, state_dependent_std=state_dependent)
    model = GaussianActor(cfg.model, nnx.Rngs(0))
    image = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)), jnp.uint8)
    mean, log_std = model(image, jnp.full((3, 7), 100.0))
    assert mean.shape == log_std.shape == (3, 5)
    assert jnp.all(jnp.abs(mean) <= 1.0)
    assert jnp.all(log_std <= 0.0) and jnp.all(log_std >= cfg.model.log_std_min)


def test_image_scaling_and_nll_by_hand():
    img = jnp.array([0, 255], jnp.uint8)
    assert jnp.allclose(image_to_float(img), jnp.array([-1.0, 1.0]))
    mean, log_std, action = jnp.zeros((1, 2)), jnp.log(jnp.array([[1.0, 0.5]])), jnp.ones((1, 2))
    expect = 0.5 + 0.5 * math.log(2 * math.pi) + 2.0 + math.log(0.5) + 0.5 * math.log(2 * math.pi)
    assert jnp.allclose(gaussian_nll(mean, log_std, action), expect)


def test_beta_nll_weights_each_dimension_by_its_variance():
    mean, log_std, action = jnp.zeros((1, 2)), jnp.log(jnp.array([[1.0, 0.5]])), jnp.ones((1, 2))
    per_dim = jnp.array([0.5, 2.0 + math.log(0.5)]) + 0.5 * math.log(2 * math.pi)
    weighted = gaussian_nll(mean, log_std, action, beta=0.5)
    assert jnp.allclose(weighted, jnp.sum(per_dim * jnp.array([1.0, 0.5])))


def test_proprio_stats_floor_and_clip():
    stats = NormStats.of(np.array([[0.0, -1.0], [0.0, 3.0]]))  # stds 0 and 2
    assert np.allclose(stats.std, [1e-2, 2.0])
    out = stats.normalize(jnp.array([[1.0, 3.0]]))
    assert jnp.allclose(out, jnp.array([[5.0, 1.0]]))  # 100 sigma clipped to 5


def test_random_shift_moves_by_at_most_pad():
    image = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.int32).reshape(2, 6, 6, 1)
    shifted = random_shift(jax.random.key(0), image, 2)
    assert shifted.shape == image.shape
    assert jnp.array_equal(random_shift(jax.random.key(0), image, 0), image)


def test_nll_decreases_on_a_tiny_dataset():
    cfg = preset("tiny", image_size=16)
    graphdef, state = init_train_state(cfg, jax.random.key(0))
    step = make_train_step(cfg, graphdef, STATS)
    batch = _batch(np.random.default_rng(0))
    first = None
    for _ in range(60):
        state, metrics = step(state, batch)
        first = float(metrics["nll"]) if first is None else first
    assert int(state.step) == 60
    assert float(metrics["nll"]) < first - 1.0
    assert np.isfinite(float(metrics["grad_norm"]))


def _save(tmp_path, steps=2, task="drawer"):
    cfg = preset("tiny", image_size=16)
    graphdef, state = init_train_state(cfg, jax.random.key(1))
    step = make_train_step(cfg, graphdef, STATS)
    for _ in range(steps):
        state, _ = step(state, _batch(np.random.default_rng(1)))
    info = ckpt.PolicyInfo(task=task, action_dim=7, proprio_dim=7, image_size=16)
    ckpt.write_info(tmp_path, info, cfg, STATS)
    manager = ckpt.make_manager(tmp_path)
    ckpt.save_state(manager, state)
    manager.close()
    return cfg, graphdef, state


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    cfg, graphdef, state = _save(tmp_path)
    policy = ckpt.load_policy(tmp_path, task="drawer", action_dim=7)
    assert policy.step == 2 and policy.config == cfg
    saved = jax.tree.leaves(state.params)
    assert all(
        np.array_equal(a, b) for a, b in zip(saved, jax.tree.leaves(policy.params), strict=True)
    )
    rng = np.random.default_rng(2)
    obs = {"image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "proprio": np.ones(7)}
    action = policy(obs)
    mean, _ = nnx.merge(graphdef, state.params)(
        obs["image"][None], STATS.normalize(np.ones((1, 7)))
    )
    assert action.dtype == np.float32 and action.shape == (7,)
    np.testing.assert_allclose(action, np.asarray(mean[0]), atol=1e-6)
    stochastic = ckpt.load_policy(tmp_path, deterministic=False)
    stochastic.reset(5)
    first = stochastic(obs)
    stochastic.reset(5)
    assert np.array_equal(first, stochastic(obs)) and not np.array_equal(first, action)


def test_checkpoint_errors_are_one_line(tmp_path):
    _save(tmp_path / "ck")
    with pytest.raises(ckpt.CheckpointError, match="trained for task 'drawer', not 'push'"):
        ckpt.load_policy(tmp_path / "ck", task="push")
    with pytest.raises(ckpt.CheckpointError, match="outputs 7-D actions, the task takes 4-D"):
        ckpt.load_policy(tmp_path / "ck", action_dim=4)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="not a policy checkpoint"):
        ckpt.load_policy(tmp_path / "plain")
    with pytest.raises(ckpt.CheckpointError, match="no such policy checkpoint directory"):
        ckpt.load_policy(tmp_path / "missing")
    policy = ckpt.load_policy(tmp_path / "ck")
    with pytest.raises(ckpt.CheckpointError, match=r"expects image uint8 \[16, 16, 3\]"):
        policy({"image": np.zeros((64, 64, 3), np.uint8), "proprio": np.zeros(7)})


def test_presets_are_valid():
    assert set(preset_names("policy")) == {"tiny", "base"}
    for name in preset_names("policy"):
        assert preset(name).model.log_std_max <= 0.0


def _old_layout(root):
    """Rewrite a checkpoint's config.yaml and stats.json as robolearn wrote them before
    robolearn.core.optim and robolearn.core.normalize (what users' runs and the bundles hold)."""
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    cfg["optim"].update(cfg.pop("training"))
    (root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    stats = json.loads((root / "stats.json").read_text())
    (root / "stats.json").write_text(
        json.dumps({"proprio_mean": stats["mean"], "proprio_std": stats["std"]})
    )


def test_old_layout_checkpoint_loads_like_the_new_one(tmp_path):
    cfg, graphdef, state = _save(tmp_path)
    obs = {"image": np.zeros((16, 16, 3), np.uint8), "proprio": np.full(7, 0.5)}
    new = ckpt.load_policy(tmp_path)(obs)
    _old_layout(tmp_path)
    assert "nll_beta" in (tmp_path / "config.yaml").read_text().split("optim:")[1]
    loaded_cfg, stats = ckpt.read_config(tmp_path)
    assert loaded_cfg == cfg
    np.testing.assert_array_equal(stats.std, STATS.std)
    np.testing.assert_array_equal(ckpt.load_policy(tmp_path)(obs), new)


@pytest.mark.parametrize("part", ["bc", "bc-3demos", "refined"])
def test_shipped_policies_are_actor_only_exports(part):
    """The bundle's policies hold the actor's parameters only (no optimizer state, no critic) and
    load as policies; the refined one needs no PPO code to load."""
    import orbax.checkpoint as ocp

    root = Path(bundles.resolve(f"bundle:drawer/{part}"))
    assert ckpt.read_info(root).weights == "actor"
    step_dir = next((root / "checkpoints").iterdir()) / "default"
    assert set(ocp.StandardCheckpointer().metadata(step_dir).item_metadata.tree) == {
        "step",
        "params",
    }
    policy = ckpt.load_policy(root, "drawer", 7)
    action = policy({"image": np.zeros((64, 64, 3), np.uint8), "proprio": np.zeros(7)})
    assert action.shape == (7,) and np.all(np.abs(action) <= 1)
