"""World-model training: the tiny model overfits a fixed batch, checkpoints round-trip (train
state and exported EMA), checkpoint errors, and 8-device data-parallel training matches 1 device."""

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from flax import nnx, struct
from robolearn.world_models import checkpoint as ckpt
from robolearn.world_models import train as wt
from robolearn.world_models.config import TrainingConfig, preset

from robolearn.core.mesh import data_mesh, replicate, shard_batch
from robolearn.core.normalize import NormStats
from robolearn.core.optim import OptimConfig

SIZE, T, A, P = 16, 4, 7, 7
CFG = preset("tiny", image_size=SIZE)


def _block_frame(rng) -> np.ndarray:
    """A 16x16 frame of four constant-colour 8x8 blocks (smooth, so learnable in few steps)."""
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    for i in range(2):
        for j in range(2):
            frame[i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8] = rng.integers(0, 256, 3)
    return frame


def _batch(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = np.stack([np.stack([_block_frame(rng) for _ in range(T + 1)]) for _ in range(size)])
    return {
        "image": image,
        "action": rng.uniform(-1, 1, (size, T, A)).astype(np.float32),
        "proprio": rng.normal(size=(size, T + 1, P)).astype(np.float32),
    }


def _stats() -> NormStats:
    rng = np.random.default_rng(1)
    return NormStats.of(rng.normal(size=(50, P)), rng.normal(size=(50, P)))


@pytest.fixture(scope="module")
def setup():
    """(graphdef, jitted train step on a 1-device mesh, mesh, stats); compiled once per module."""
    stats = _stats()
    graphdef, _ = wt.init_train_state(CFG, jax.random.key(0))
    mesh = data_mesh()
    return graphdef, wt.make_train_step(CFG, graphdef, stats, mesh), mesh, stats


def _fresh_state(mesh):
    _, state = wt.init_train_state(CFG, jax.random.key(0))
    return replicate(state, mesh)


def test_tiny_model_overfits_a_fixed_batch(setup):
    """200 steps on one batch of 4 windows cut the denoising loss to well under half its
    initial value (the step's loss is noisy, one noise draw per step, so the start is the mean of
    the first 5 steps, the end of the last 20; measured: 1.26 -> 0.25)."""
    _, step, mesh, _ = setup
    batch = shard_batch(_batch(4), mesh)
    state = _fresh_state(mesh)
    history = []
    for _ in range(200):
        state, metrics = step(state, batch)
        history.append([float(metrics[k]) for k in ("denoise_loss", "proprio_loss")])
    history = np.asarray(history)
    assert int(state.step) == 200 and np.isfinite(history).all()
    initial, final = history[:5].mean(0), history[-20:].mean(0)
    assert final[0] < 0.4 * initial[0], (initial, final)
    assert final[1] < 0.1 * initial[1], (initial, final)  # proprio: 1.0 -> ~1e-8


def _denoise(model):
    """The model's denoised frame for a fixed input (identical weights -> identical output);
    jitted (one compile for every model of this graph, where eagerly every op compiles)."""
    batch = _batch(2, seed=5)
    frames = batch["image"][:, :T].astype(np.float32) / 127.5 - 1
    noisy = jax.random.normal(jax.random.key(9), (2, SIZE, SIZE, 3))
    graphdef, params = nnx.split(model)
    return np.asarray(_jit_denoise(graphdef, params, noisy, frames, batch["action"]))


@functools.partial(jax.jit, static_argnums=0)
def _jit_denoise(graphdef, params, noisy, frames, actions):
    model = nnx.merge(graphdef, params)
    return model.denoise(noisy, jnp.full((noisy.shape[0],), 0.5), frames, actions)


def _save_trained(setup, root, tasks=("drawer",)):
    graphdef, step, mesh, stats = setup
    batch = shard_batch(_batch(4), mesh)
    state = _fresh_state(mesh)
    for _ in range(2):
        state, _ = step(state, batch)
    info = ckpt.WorldModelInfo(tasks, SIZE, T, A, P)
    ckpt.write_info(root, info, CFG, stats)
    manager = ckpt.make_manager(root)
    try:
        ckpt.save_state(manager, state)
    finally:
        manager.close()
    return state


def test_checkpoint_round_trip_and_ema_export(setup, tmp_path):
    """A saved train state loads as the same EMA model; export_ema's smaller directory too."""
    graphdef, _, _, stats = setup
    run = tmp_path / "run"
    state = _save_trained(setup, run)
    expected = _denoise(nnx.merge(graphdef, state.ema))
    assert not np.array_equal(
        expected, _denoise(nnx.merge(graphdef, state.params))
    )  # EMA != raw weights

    frozen = ckpt.load_world_model(run, task="drawer", action_dim=A)
    assert frozen.step == 2 and frozen.info.weights == "train"
    assert frozen.config == CFG
    np.testing.assert_array_equal(frozen.stats.delta_std, stats.delta_std)
    np.testing.assert_array_equal(_denoise(frozen.model()), expected)

    exported = ckpt.export_ema(run, tmp_path / "bundle")
    assert ckpt.read_info(exported).weights == "ema"
    again = ckpt.load_world_model(exported, task="drawer")
    assert again.step == 2
    np.testing.assert_array_equal(_denoise(again.model()), expected)


class _OldTrainState(struct.PyTreeNode):
    """The TrainState before robolearn.core.train_state: `ema` between params and opt_state."""

    step: jax.Array
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def test_old_layout_training_checkpoint_loads(setup, tmp_path):
    """config.yaml with ema_decay and proprio_weight under `optim`, and a train state saved in
    the old field order (orbax restores by name), load as the current ones."""
    graphdef, step, mesh, stats = setup
    state = _fresh_state(mesh)
    state, _ = step(state, shard_batch(_batch(4), mesh))
    run = tmp_path / "old"
    ckpt.write_info(run, ckpt.WorldModelInfo(("drawer",), SIZE, T, A, P), CFG, stats)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["optim"].update(cfg.pop("training"))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    manager = ckpt.make_manager(run)
    try:
        old = _OldTrainState(state.step, state.params, state.ema, state.opt_state, state.rng)
        ckpt.save_state(manager, old)
        assert ckpt.read_config(run)[0] == CFG
        _, restored = ckpt.restore_train_state(manager, CFG)
    finally:
        manager.close()
    assert type(restored) is wt.TrainState
    for name in ("step", "params", "ema", "opt_state", "rng"):
        ours, theirs = getattr(restored, name), getattr(state, name)
        if name == "rng":
            ours, theirs = jax.random.key_data(ours), jax.random.key_data(theirs)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_array_equal(a, b)


def test_stats_without_delta_std_are_refused(tmp_path):
    """The proprio head's outputs are scaled by delta_std: BC-style stats do not make a model."""
    ckpt.FILES.write(tmp_path, CFG, NormStats(np.zeros(P, np.float32), np.ones(P, np.float32)))
    assert "stats.json has no delta_std" in _one_line_error(ckpt.read_config, tmp_path)


def test_a_world_model_config_in_the_old_layout_loads():
    """The config.yaml and stats.json of the drawer world model shipped until 2026-12-04 (EMA
    decay under optim:, the layout before robolearn.core.optim), kept in tests/world_models/
    old_layout/."""
    root = Path(__file__).parent / "old_layout"
    assert "ema_decay" in (root / "config.yaml").read_text().split("optim:")[1]  # old layout
    cfg, stats = ckpt.read_config(root)
    assert cfg.training == TrainingConfig(ema_decay=0.998, proprio_weight=0.1)
    assert cfg.optim == OptimConfig(3e-4, weight_decay=1e-2, warmup_steps=200, decay_steps=5000)
    saved = json.loads((root / "stats.json").read_text())
    np.testing.assert_array_equal(stats.delta_std, np.float32(saved["delta_std"]))


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ckpt.CheckpointError) as exc:
        fn(*args, **kwargs)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_checkpoint_errors_are_one_line(setup, tmp_path):
    """Missing dirs, BC policy dirs, another task or action size: one-line CheckpointErrors."""
    missing = tmp_path / "missing"
    assert "no such world-model checkpoint directory" in _one_line_error(ckpt.read_info, missing)

    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "robolearn-policy.json").write_text(json.dumps({"format": "robolearn-policy"}))
    err = _one_line_error(ckpt.read_info, policy)
    assert "not a world-model checkpoint (it is a policy checkpoint)" in err

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / ckpt.MARKER).write_text("{not json")
    assert "unreadable" in _one_line_error(ckpt.read_info, garbage)

    run = tmp_path / "run"
    _save_trained(setup, run, tasks=("drawer", "door"))
    err = _one_line_error(ckpt.load_world_model, run, task="push")
    assert "trained on drawer, door, not 'push'" in err
    err = _one_line_error(ckpt.load_world_model, run, action_dim=4)
    assert "takes 7-D actions, the task has 4-D" in err


SHARDED = textwrap.dedent(
    """
    import jax
    import numpy as np

    from robolearn.world_models import train as wt
    from robolearn.world_models.config import preset

    from robolearn.core.mesh import data_mesh, replicate, shard_batch
    from robolearn.core.normalize import NormStats

    assert len(jax.devices()) == 8, jax.devices()
    cfg = preset("tiny", image_size=16)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (8, 5, 16, 16, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (8, 4, 7)).astype(np.float32),
        "proprio": rng.normal(size=(8, 5, 7)).astype(np.float32),
    }
    stats = NormStats.of(rng.normal(size=(50, 7)), rng.normal(size=(50, 7)))

    def train(devices):
        mesh = data_mesh(devices)
        graphdef, state = wt.init_train_state(cfg, jax.random.key(0))
        step = wt.make_train_step(cfg, graphdef, stats, mesh)
        state = replicate(state, mesh)
        sharded = shard_batch(batch, mesh)
        assert len(sharded["image"].sharding.device_set) == len(devices)
        assert sharded["image"].addressable_shards[0].data.shape[0] == 8 // len(devices)
        losses = []
        for _ in range(3):
            state, metrics = step(state, sharded)
            losses.append([float(metrics[k]) for k in ("denoise_loss", "proprio_loss")])
        return np.asarray(losses), jax.device_get(state.params), jax.device_get(state.ema)

    one, one_params, one_ema = train(jax.devices()[:1])
    eight, eight_params, eight_ema = train(jax.devices())
    np.testing.assert_allclose(eight, one, rtol=1e-4, atol=1e-5)
    worst = 0.0
    for tree_a, tree_b in ((one_params, eight_params), (one_ema, eight_ema)):
        for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    print("OK", eight.tolist(), "max param diff", worst)
    """
)


@pytest.mark.slow
def test_eight_device_data_parallel_training_matches_one_device():
    """The same global batch of 8 sharded over 8 forced CPU devices gives the same losses and
    weights after 3 steps as on 1 device (the gradient all-reduce is a mean, not a sum)."""
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8",
    }
    result = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=400
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
