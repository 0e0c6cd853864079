"""The training state of a model trained by one optimizer: one pytree, what a checkpoint holds."""

from __future__ import annotations

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
