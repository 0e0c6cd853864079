"""The optimizer settings every trainer shares, and the optax chain built from them.

Importing this module does not import JAX (the configs that hold an OptimConfig are read by the
CLI before any model is built); make_optimizer imports optax when called.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from robolearn.core.errors import ConfigError

if TYPE_CHECKING:
    import optax

END_FRACTION = 0.1  # the cosine decay ends at this fraction of the peak rate


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Global-norm gradient clipping, then Adam(W) on a linear warm-up + cosine decay.

    learning_rate: the peak rate (the constant one when there is no schedule).
    weight_decay: AdamW's decoupled weight decay; 0 = plain Adam (a different optax chain: its
        optimizer state has no slot for the decay, so the two do not restore into each other).
    warmup_steps: linear ramp from 0 to learning_rate over these optimizer steps.
    decay_steps: the step at which the cosine decay reaches END_FRACTION x learning_rate (counted
        from step 0, warm-up included; at least warmup_steps + 1), where it then stays.
        warmup_steps == decay_steps == 0: a constant learning_rate, no schedule.
    grad_clip: the largest global gradient norm (larger gradients are scaled down to it).

    The defaults are constant-rate Adam; each trainer's config holds its own values.
    """

    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0
    grad_clip: float = 1.0

    def __post_init__(self):
        rates = (self.learning_rate, self.weight_decay, self.grad_clip)
        if not all(math.isfinite(value) for value in rates):
            raise ConfigError(
                f"optim.learning_rate, weight_decay and grad_clip must be finite, got "
                f"{self.learning_rate}, {self.weight_decay}, {self.grad_clip}"
            )
        if not self.learning_rate > 0 or not self.grad_clip > 0:
            raise ConfigError(
                f"optim.learning_rate and optim.grad_clip must be > 0, got "
                f"{self.learning_rate}, {self.grad_clip}"
            )
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.decay_steps < 0:
            raise ConfigError(
                f"optim.weight_decay, warmup_steps and decay_steps must be >= 0, got "
                f"{self.weight_decay}, {self.warmup_steps}, {self.decay_steps}"
            )

    @property
    def scheduled(self) -> bool:
        """Whether the rate follows warm-up + cosine decay (False: constant)."""
        return bool(self.warmup_steps or self.decay_steps)


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """chain(clip_by_global_norm(grad_clip), adamw(rate, weight_decay)), or adam(rate) when
    weight_decay is 0; rate is the warm-up + cosine schedule, or the constant learning_rate.

    The chain's structure is what a checkpoint's optimizer state is restored into: BC, world
    models and reward classifiers have always used the AdamW form on a schedule, PPO the Adam
    form at a constant rate, and checkpoints of each restore only into that form.
    """
    import optax

    rate = cfg.learning_rate
    if cfg.scheduled:
        rate = optax.warmup_cosine_decay_schedule(
            0.0,
            cfg.learning_rate,
            cfg.warmup_steps,
            max(cfg.decay_steps, cfg.warmup_steps + 1),
            end_value=END_FRACTION * cfg.learning_rate,
        )
    if cfg.weight_decay:
        adam = optax.adamw(rate, weight_decay=cfg.weight_decay)
    else:
        adam = optax.adam(rate)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adam)
