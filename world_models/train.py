"""World-model training state, the EDM loss and the pure, jitted `train_step(state, batch)`,
data-parallel over a device mesh.

    graphdef, state = init_train_state(cfg, rng)
    mesh = data_mesh()                       # robolearn.core.mesh: every device, one "data" axis
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
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from robolearn.world_models import edm
from robolearn.world_models.config import WorldModelConfig
from robolearn.world_models.model import WorldModel
from robolearn.world_models.sampler import sample_next, to_float

from robolearn.core import train_state
from robolearn.core.mesh import replicate
from robolearn.core.normalize import NormStats
from robolearn.core.optim import make_optimizer


class TrainState(train_state.TrainState):
    """robolearn.core's TrainState plus `ema`, the moving average of params (the weights that
    are evaluated and shipped); a subclass because only the world model keeps one."""

    ema: nnx.State


def init_model(cfg: WorldModelConfig, rng: jax.Array, dtype=jnp.float32) -> WorldModel:
    return WorldModel(cfg.model, cfg.edm, nnx.Rngs(params=rng), dtype=dtype)


def init_train_state(
    cfg: WorldModelConfig, rng: jax.Array, dtype=jnp.float32
) -> tuple[nnx.GraphDef, TrainState]:
    """A fresh model (EMA = a copy of its weights) and optimizer state, made by one compiled
    program (train_state.run_init)."""

    def init(rng):
        init_rng, rng = jax.random.split(rng)
        graphdef, params = nnx.split(init_model(cfg, init_rng, dtype))
        opt_state = make_optimizer(cfg.optim).init(params)
        ema = jax.tree.map(jnp.copy, params)
        step = jnp.zeros((), jnp.int32)
        return graphdef, TrainState(step=step, params=params, opt_state=opt_state, rng=rng, ema=ema)

    return train_state.run_init(init, rng)


def adopt_weights(source: nnx.State, target: nnx.State, cond_dim: int) -> nnx.State:
    """`source`'s weights in `target`'s shapes, for fine-tuning a model trained without context
    noise with it (model.context_noise): every weight is copied, and the conditioning's input
    layer (cond_in), which gains cond_dim inputs for the context level's features after the
    denoising level's, keeps the source's rows with zeros for the new inputs, so the model
    starts out computing exactly what the source did."""

    def adopt(path, src, dst):
        if src.shape == dst.shape:
            return src
        name = jax.tree_util.keystr(path)
        if "cond_in" in name and "kernel" in name and dst.shape[0] == src.shape[0] + cond_dim:
            new = jnp.zeros((cond_dim, src.shape[1]), src.dtype)
            return jnp.concatenate([src[:cond_dim], new, src[cond_dim:]], axis=0)
        raise ValueError(f"weight {name}: {src.shape} does not fit {dst.shape}")

    return jax.tree_util.tree_map_with_path(adopt, source, target)


def augment_context(rng: jax.Array, frames: jax.Array, max_level: float, clean: float = 0.0):
    """Noise augmentation of the context frames (model.context_noise; GameNGen): each sample's
    frames [B, T, H, W, 3] plus Gaussian noise of one level ~ U(0, max_level), or of level 0
    with probability `clean` (model.context_clean), and the levels [B]; (frames, None) when
    max_level is 0."""
    if max_level <= 0:
        return frames, None
    rng_level, rng_noise = jax.random.split(rng)
    level = jax.random.uniform(rng_level, frames.shape[:1], jnp.float32, 0.0, max_level)
    if clean > 0:  # its own key, so runs without it draw exactly what they drew before
        keep = jax.random.bernoulli(jax.random.fold_in(rng_level, 1), clean, level.shape)
        level = jnp.where(keep, 0.0, level)
    noise = jax.random.normal(rng_noise, frames.shape, frames.dtype)
    return frames + noise * level[:, None, None, None, None], level


def losses(model: WorldModel, cfg: WorldModelConfig, stats: NormStats, batch, rng):
    """(total loss, metrics) of one batch; see the module doc for the batch layout."""
    t = cfg.model.context
    images = to_float(batch["image"])
    frames, target = images[:, :t], images[:, t]
    actions = batch["action"]
    rng_sigma, rng_noise = jax.random.split(rng)
    sigma = edm.sample_sigma(rng_sigma, (target.shape[0],), cfg.edm)
    noisy = edm.add_noise(rng_noise, target, sigma, cfg.edm)
    # (its own key from rng_sigma, so runs without it draw exactly what they drew before)
    frames, context_sigma = augment_context(
        jax.random.fold_in(rng_sigma, 1), frames, cfg.model.context_noise, cfg.model.context_clean
    )
    out = model.network(noisy, sigma, frames, actions, context_sigma)
    wanted = edm.loss_weighted_target(target, noisy, sigma, cfg.edm)
    denoise_loss = jnp.mean((out - wanted) ** 2)
    proprio_loss = _proprio_loss(model, cfg, stats, batch)
    total = denoise_loss + cfg.training.proprio_weight * proprio_loss
    return total, {"loss": total, "denoise_loss": denoise_loss, "proprio_loss": proprio_loss}


def distill_losses(
    model: WorldModel, teacher: WorldModel, cfg: WorldModelConfig, teacher_cfg, stats, batch, rng
):
    """(total loss, metrics) of one batch for a few-step student: from the same starting noise
    and (noisy) context, its cfg.sampler.steps euler steps should land where the teacher's
    sampler (teacher_cfg, a SamplerConfig) lands. The student's output is not clamped, so an
    overshoot is penalized; the teacher's is, as when it imagines. The proprio head keeps its
    loss (it does not see the frames)."""
    t = cfg.model.context
    images = to_float(batch["image"])
    frames, actions = images[:, :t], batch["action"]
    target = jax.lax.stop_gradient(sample_next(teacher, rng, frames, actions, teacher_cfg))
    out = sample_next(model, rng, frames, actions, cfg.sampler, clip=False)
    distill_loss = jnp.mean((out - target) ** 2)
    proprio_loss = _proprio_loss(model, cfg, stats, batch)
    total = distill_loss + cfg.training.proprio_weight * proprio_loss
    return total, {"loss": total, "distill_loss": distill_loss, "proprio_loss": proprio_loss}


def _proprio_loss(model: WorldModel, cfg: WorldModelConfig, stats, batch):
    t = cfg.model.context
    proprio = batch["proprio"]
    delta = (proprio[:, t] - proprio[:, t - 1]) / stats.delta_std
    pred = model.proprio_delta(stats.normalize(proprio[:, :t]), batch["action"])
    return jnp.mean((pred - delta) ** 2)


def make_train_step(
    cfg: WorldModelConfig,
    graphdef: nnx.GraphDef,
    stats: NormStats,
    mesh: Mesh,
    teacher: tuple | None = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted step: EDM loss + proprio loss, AdamW, EMA update. Metrics are scalars.

    teacher: (graphdef, params, SamplerConfig) of the model a few-step student is distilled
    from (distill_losses instead of the EDM loss); its params are replicated once and passed to
    every step (not baked into the program)."""
    tx = make_optimizer(cfg.optim)
    replicated = NamedSharding(mesh, PartitionSpec())
    stats = replicate(stats, mesh)

    def loss_fn(params, batch, rng, teacher_params):
        model = nnx.merge(graphdef, params)
        if teacher is None:
            return losses(model, cfg, stats, batch, rng)
        teacher_model = nnx.merge(teacher[0], teacher_params)
        return distill_losses(model, teacher_model, cfg, teacher[2], stats, batch, rng)

    def train_step(state: TrainState, batch: dict, teacher_params) -> tuple[TrainState, dict]:
        rng, step_rng = jax.random.split(state.rng)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(state.params, batch, step_rng, teacher_params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # EMA with warm-up: the decay ramps from 0 so early EMA weights are not the init.
        step = state.step + 1
        decay = jnp.minimum(cfg.training.ema_decay, (1.0 + step) / (10.0 + step))
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, params)
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
        return TrainState(step=step, params=params, opt_state=opt_state, rng=rng, ema=ema), metrics

    jit = dict(out_shardings=(replicated, replicated), donate_argnums=0)
    if teacher is None:  # a jitted (state, batch) function, as the benches lower it
        return jax.jit(lambda state, batch: train_step(state, batch, None), **jit)
    step = jax.jit(train_step, **jit)
    teacher_params = replicate(teacher[1], mesh)
    return lambda state, batch: step(state, batch, teacher_params)
