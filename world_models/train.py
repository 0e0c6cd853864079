"""World-model training state, the EDM loss and the pure, jitted `train_step(state, batch)`,
data-parallel over a device mesh.

    graphdef, state = init_train_state(cfg, rng)
    mesh = data_mesh()                       # all local devices on one "data" axis
    step = make_train_step(cfg, graphdef, stats, mesh)
    state = replicate(state, mesh)
    state, metrics = step(state, shard_batch(batch, mesh))

batch (B = global batch, T = context): image uint8 [B, T+1, H, W, 3], action float32 [B, T, A],
proprio float32 [B, T+1, P]. The first T frames and the T actions (action k leads from frame k
to k+1) condition the denoiser; frame T is the target. The same code runs on one CPU, on 8 forced
host devices and on 8 GPUs: the batch is sharded over the mesh's "data" axis, the state is
replicated, and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from robolearn.world_models import edm
from robolearn.world_models.config import OptimConfig, WorldModelConfig
from robolearn.world_models.model import WorldModel
from robolearn.world_models.sampler import to_float

from robolearn.core.optim import warmup_cosine_adamw

STD_FLOOR = 1e-3  # proprio units (m, rad): dims the data never moves are not blown up
NORM_CLIP = 5.0


class ProprioStats(struct.PyTreeNode):
    """Proprio normalization of the training data: mean and std of proprio and std of its
    one-step change, float32 [P] each. A pytree, so it passes through jit as arrays."""

    mean: jax.Array
    std: jax.Array
    delta_std: jax.Array

    @classmethod
    def of(cls, proprio: np.ndarray, deltas: np.ndarray) -> ProprioStats:
        """From proprio rows [N, P] and one-step deltas [M, P], stds floored at STD_FLOOR."""
        floor = lambda x: np.maximum(x, STD_FLOOR).astype(np.float32)  # noqa: E731
        return cls(proprio.mean(0).astype(np.float32), floor(proprio.std(0)), floor(deltas.std(0)))

    def normalize(self, proprio: jax.Array) -> jax.Array:
        return jnp.clip((proprio - self.mean) / self.std, -NORM_CLIP, NORM_CLIP)

    def to_json(self) -> dict:
        return {k: np.asarray(getattr(self, k)).tolist() for k in ("mean", "std", "delta_std")}

    @classmethod
    def from_json(cls, data: dict) -> ProprioStats:
        return cls(*(np.asarray(data[k], np.float32) for k in ("mean", "std", "delta_std")))


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree (what the checkpoint holds)."""

    step: jax.Array
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW on a warm-up + cosine schedule (robolearn.core.optim)."""
    return warmup_cosine_adamw(
        cfg.learning_rate, cfg.warmup_steps, cfg.decay_steps, cfg.grad_clip, cfg.weight_decay
    )


def init_model(cfg: WorldModelConfig, rng: jax.Array, dtype=jnp.float32) -> WorldModel:
    return WorldModel(cfg.model, cfg.edm, nnx.Rngs(params=rng), dtype=dtype)


def init_train_state(
    cfg: WorldModelConfig, rng: jax.Array, dtype=jnp.float32
) -> tuple[nnx.GraphDef, TrainState]:
    """A fresh model (EMA = a copy of its weights) and optimizer state."""
    init_rng, rng = jax.random.split(rng)
    graphdef, params = nnx.split(init_model(cfg, init_rng, dtype))
    opt_state = make_optimizer(cfg.optim).init(params)
    ema = jax.tree.map(jnp.copy, params)
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, ema, opt_state, rng)


def losses(model: WorldModel, cfg: WorldModelConfig, stats: ProprioStats, batch, rng):
    """(total loss, metrics) of one batch; see the module doc for the batch layout."""
    t = cfg.model.context
    images = to_float(batch["image"])
    frames, target = images[:, :t], images[:, t]
    actions = batch["action"]
    rng_sigma, rng_noise = jax.random.split(rng)
    sigma = edm.sample_sigma(rng_sigma, (target.shape[0],), cfg.edm)
    noisy = edm.add_noise(rng_noise, target, sigma, cfg.edm)
    out = model.network(noisy, sigma, frames, actions)
    wanted = edm.loss_weighted_target(target, noisy, sigma, cfg.edm)
    denoise_loss = jnp.mean((out - wanted) ** 2)
    proprio = batch["proprio"]
    delta = (proprio[:, t] - proprio[:, t - 1]) / stats.delta_std
    pred = model.proprio_delta(stats.normalize(proprio[:, :t]), actions)
    proprio_loss = jnp.mean((pred - delta) ** 2)
    total = denoise_loss + cfg.optim.proprio_weight * proprio_loss
    return total, {"loss": total, "denoise_loss": denoise_loss, "proprio_loss": proprio_loss}


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named "data" over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), ("data",))


def replicate(tree, mesh: Mesh):
    """Place a pytree on every device of the mesh (fully replicated)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Split this process's part of the global batch over the mesh's "data" axis.

    With several processes each passes its own rows (the loaders shard by process index); the
    global batch is their concatenation. Its size must divide by the number of devices.
    """
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }


def make_train_step(
    cfg: WorldModelConfig, graphdef: nnx.GraphDef, stats: ProprioStats, mesh: Mesh
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted step: EDM loss + proprio loss, AdamW, EMA update. Metrics are scalars."""
    tx = make_optimizer(cfg.optim)
    replicated = NamedSharding(mesh, PartitionSpec())
    stats = replicate(stats, mesh)

    def loss_fn(params, batch, rng):
        return losses(nnx.merge(graphdef, params), cfg, stats, batch, rng)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng, step_rng = jax.random.split(state.rng)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(state.params, batch, step_rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # EMA with warm-up: the decay ramps from 0 so early EMA weights are not the init.
        step = state.step + 1
        decay = jnp.minimum(cfg.optim.ema_decay, (1.0 + step) / (10.0 + step))
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, params)
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
        return TrainState(step, params, ema, opt_state, rng), metrics

    return jax.jit(train_step, out_shardings=(replicated, replicated), donate_argnums=0)


def start_window(image: np.ndarray, proprio: np.ndarray, context: int, action_dim: int):
    """The context window of an episode's first frame, as imagination starts from it: the frame
    and proprio repeated T times, and T zero actions. image [B, H, W, 3], proprio [B, P] ->
    (frames [B, T, H, W, 3], actions [B, T, A], proprio [B, T, P])."""
    frames = np.repeat(np.asarray(image)[:, None], context, axis=1)
    prop = np.repeat(np.asarray(proprio, np.float32)[:, None], context, axis=1)
    actions = np.zeros((image.shape[0], context, action_dim), np.float32)
    return frames, actions, prop
