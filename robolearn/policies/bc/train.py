"""BC training state, optimizer and the pure, jitted `train_step(state, batch) -> (state, metrics)`.

graphdef, state = init_train_state(cfg, rng)
step = make_train_step(cfg, graphdef, stats)
state, metrics = step(state, batch)   # batch: image uint8 [B, H, W, 3], proprio [B, P],
                                      #        action float32 [B, A] in [-1, 1]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from robolearn.core.augment import random_shift
from robolearn.core.optim import warmup_cosine_adamw
from robolearn.policies.bc.config import BCConfig, OptimConfig
from robolearn.policies.bc.model import GaussianActor, gaussian_nll

STD_FLOOR = 1e-2  # m or rad: dims the demos barely move are not blown up at test time
NORM_CLIP = 5.0  # normalized proprio is clipped to +-5 std, so off-data states stay bounded


@dataclasses.dataclass(frozen=True)
class ProprioStats:
    """Dataset mean and std of proprio, float32 [P] each; models see normalize(proprio).

    Without the floor a dimension the demonstrations keep constant (the WidowX roll: std 5e-4
    rad) turns the first small deviation in closed loop into a 20-sigma input.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, mean: np.ndarray, std: np.ndarray) -> ProprioStats:
        """From dataset moments, std floored at STD_FLOOR."""
        return cls(np.asarray(mean, np.float32), np.maximum(std, STD_FLOOR).astype(np.float32))

    def normalize(self, proprio: jax.Array) -> jax.Array:
        """clip((proprio - mean) / std, +-NORM_CLIP): [..., P] -> [..., P]."""
        return jnp.clip((proprio - self.mean) / self.std, -NORM_CLIP, NORM_CLIP)

    def to_json(self) -> dict:
        """Plain lists, for the checkpoint's stats.json."""
        return {"proprio_mean": self.mean.tolist(), "proprio_std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> ProprioStats:
        """Inverse of to_json."""
        return cls(
            np.asarray(data["proprio_mean"], np.float32),
            np.asarray(data["proprio_std"], np.float32),
        )


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree (what the checkpoint holds)."""

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW on a warm-up + cosine schedule (robolearn.core.optim)."""
    return warmup_cosine_adamw(
        cfg.learning_rate, cfg.warmup_steps, cfg.decay_steps, cfg.grad_clip, cfg.weight_decay
    )


def init_train_state(cfg: BCConfig, rng: jax.Array) -> tuple[nnx.GraphDef, TrainState]:
    """A fresh actor and optimizer state; the graphdef is the static half of the model."""
    init_rng, rng = jax.random.split(rng)
    model = GaussianActor(cfg.model, nnx.Rngs(params=init_rng))
    graphdef, params = nnx.split(model)
    opt_state = make_optimizer(cfg.optim).init(params)
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, opt_state, rng)


def make_train_step(
    cfg: BCConfig, graphdef: nnx.GraphDef, stats: ProprioStats
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted (beta-)NLL step. Metrics: loss, nll, mse (of the mean action), std, grad_norm."""
    tx = make_optimizer(cfg.optim)

    def loss_fn(params, image, proprio, action):
        mu, log_std = nnx.merge(graphdef, params)(image, proprio)
        loss = gaussian_nll(mu, log_std, action, cfg.optim.nll_beta).mean()
        return loss, (mu, log_std)

    @jax.jit
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng, shift_rng = jax.random.split(state.rng)
        image = batch["image"]
        if cfg.optim.shift_pad:
            image = random_shift(shift_rng, image, cfg.optim.shift_pad)
        proprio = stats.normalize(batch["proprio"])
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (mu, log_std)), grads = grad_fn(state.params, image, proprio, batch["action"])
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "nll": gaussian_nll(mu, log_std, batch["action"]).mean(),
            "mse": jnp.mean((mu - batch["action"]) ** 2),
            "std": jnp.mean(jnp.exp(log_std)),
            "grad_norm": optax.tree.norm(grads),
        }
        return TrainState(state.step + 1, params, opt_state, rng), metrics

    return train_step


def make_act_fn(graphdef: nnx.GraphDef, stats: ProprioStats):
    """Jitted (params, image [B, H, W, 3], proprio [B, P]) -> (mean [B, A], log_std [B, A])."""

    @jax.jit
    def act(params, image, proprio):
        return nnx.merge(graphdef, params)(image, stats.normalize(proprio))

    return act
