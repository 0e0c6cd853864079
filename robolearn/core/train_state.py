"""The training state of a model trained by one optimizer: one pytree, what a checkpoint holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree.

    step: int32 [], optimizer steps taken; params: the trained parameters (an nnx.State or any
    pytree); opt_state: the optimizer's state for them (robolearn.core.optim.make_optimizer);
    rng: the key the next step splits. Orbax saves and restores it by field name, so the names
    are part of every checkpoint's format.
    """

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    rng: jax.Array


def run_init(
    init: Callable[[jax.Array], tuple[Any, Any]], rng: jax.Array, shapes_only: bool = False
) -> tuple[Any, Any]:
    """(graphdef, state) of `init(rng) -> (graphdef, state)`, its state computed as one
    compiled program (run eagerly, every initializer at every parameter shape compiles its own
    small programs: the tiny world model, 139 of them), or with shapes_only as
    ShapeDtypeStructs without allocating (jax.eval_shape)."""
    holder = {}

    def state_only(rng):
        holder["graphdef"], state = init(rng)
        return state

    state = jax.eval_shape(state_only, rng) if shapes_only else jax.jit(state_only)(rng)
    return holder["graphdef"], state
