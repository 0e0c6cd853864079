"""BC training: the pure, jitted `train_step(state, batch) -> (state, metrics)` over a
robolearn.core TrainState (params = the actor), with robolearn.core.optim's optimizer.

graphdef, state = init_train_state(cfg, rng)
step = make_train_step(cfg, graphdef, stats)
state, metrics = step(state, batch)   # batch: image uint8 [B, H, W, 3], proprio [B, P],
                                      #        action float32 [B, A] in [-1, 1]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from robolearn.core.augment import random_shift
from robolearn.core.normalize import NormStats
from robolearn.core.optim import make_optimizer
from robolearn.core.train_state import TrainState, run_init
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.model import GaussianActor, gaussian_nll


def init_train_state(cfg: BCConfig, rng: jax.Array) -> tuple[nnx.GraphDef, TrainState]:
    """A fresh actor and optimizer state, made by one compiled program (run_init); the
    graphdef is the static half of the model."""

    def init(rng):
        init_rng, rng = jax.random.split(rng)
        graphdef, params = nnx.split(GaussianActor(cfg.model, nnx.Rngs(params=init_rng)))
        opt_state = make_optimizer(cfg.optim).init(params)
        return graphdef, TrainState(jnp.zeros((), jnp.int32), params, opt_state, rng)

    return run_init(init, rng)


def make_train_step(
    cfg: BCConfig, graphdef: nnx.GraphDef, stats: NormStats
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted (beta-)NLL step. Metrics: loss, nll, mse (of the mean action), std, grad_norm."""
    tx = make_optimizer(cfg.optim)

    def loss_fn(params, image, proprio, action):
        mu, log_std = nnx.merge(graphdef, params)(image, proprio)
        loss = gaussian_nll(mu, log_std, action, cfg.training.nll_beta).mean()
        return loss, (mu, log_std)

    @jax.jit
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng, shift_rng = jax.random.split(state.rng)
        image = batch["image"]
        if cfg.training.shift_pad:
            image = random_shift(shift_rng, image, cfg.training.shift_pad)
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


def make_act_fn(graphdef: nnx.GraphDef, stats: NormStats):
    """Jitted (params, image [B, H, W, 3], proprio [B, P]) -> (mean [B, A], log_std [B, A])."""

    @jax.jit
    def act(params, image, proprio):
        return nnx.merge(graphdef, params)(image, stats.normalize(proprio))

    return act
