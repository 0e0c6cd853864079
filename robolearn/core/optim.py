"""The optimizer every trainer uses: global-norm clipping, then AdamW on linear warm-up followed by
cosine decay to a tenth of the peak learning rate."""

from __future__ import annotations

import optax


def warmup_cosine_adamw(
    learning_rate: float,
    warmup_steps: int,
    decay_steps: int,
    grad_clip: float,
    weight_decay: float,
) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        warmup_steps,
        max(decay_steps, warmup_steps + 1),
        end_value=0.1 * learning_rate,
    )
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.adamw(schedule, weight_decay=weight_decay),
    )
