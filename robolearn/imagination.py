"""Rollouts of a policy inside a frozen world model: the policy sees imagined frames and proprio,
its actions drive the model, all in one `lax.scan` (batched over rollouts, jitted once).

    rollout = make_policy_rollout(wm, policy_apply, horizon, deterministic=True)
    out = rollout(wm_params, policy_params, rng, first_image, first_proprio)
    out["image"]   uint8   [B, horizon + 1, H, W, 3]   frame 0 is the real first frame
    out["proprio"] float32 [B, horizon + 1, P]
    out["action"]  float32 [B, horizon, A]

policy_apply(params, image uint8 [B, H, W, 3], proprio [B, P]) -> (mean [B, A], log_std [B, A]),
e.g. a loaded BC policy's `apply`. With deterministic=False actions are sampled from
N(mean, exp(log_std)^2) and clipped to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from robolearn.core.errors import ConfigError
from world_models import sampler


def check_pair(wm_info, policy_info, task: str | None = None) -> None:
    """One-line errors for a world model and a policy that cannot work together."""
    if wm_info.image_size != policy_info.image_size:
        raise ConfigError(
            f"the policy sees {policy_info.image_size}x{policy_info.image_size} images but the "
            f"world model imagines {wm_info.image_size}x{wm_info.image_size}"
        )
    if wm_info.action_dim != policy_info.action_dim:
        raise ConfigError(
            f"the policy outputs {policy_info.action_dim}-D actions but the world model takes "
            f"{wm_info.action_dim}-D"
        )
    if wm_info.proprio_dim != policy_info.proprio_dim:
        raise ConfigError(
            f"the policy reads {policy_info.proprio_dim}-D proprio but the world model "
            f"predicts {wm_info.proprio_dim}-D"
        )
    if task is not None and task not in wm_info.tasks:
        raise ConfigError(
            f"the world model was trained on {', '.join(wm_info.tasks)}, not {task!r}"
        )
    if task is not None and policy_info.task != task:
        raise ConfigError(f"the policy was trained for {policy_info.task!r}, not {task!r}")


def make_policy_rollout(
    wm, policy_apply: Callable, horizon: int, deterministic: bool = True
) -> Callable:
    """The jitted rollout function described in the module doc; `wm` is a FrozenWorldModel."""
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon}")
    graphdef, cfg, stats = wm.graphdef, wm.sampler, wm.stats
    t = wm.info.context

    @jax.jit
    def rollout(wm_params, policy_params, rng, first_image, first_proprio):
        model = nnx.merge(graphdef, wm_params)
        b = first_image.shape[0]
        frames = jnp.repeat(first_image[:, None], t, axis=1)
        proprio = jnp.repeat(first_proprio.astype(jnp.float32)[:, None], t, axis=1)
        actions = jnp.zeros((b, t, wm.info.action_dim), jnp.float32)

        def body(carry, key):
            frames, actions, proprio = carry
            key_policy, key_model = jax.random.split(key)
            mean, log_std = policy_apply(policy_params, frames[:, -1], proprio[:, -1])
            if deterministic:
                action = mean
            else:
                noise = jax.random.normal(key_policy, mean.shape)
                action = jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)
            frames, actions, proprio, nxt, nxt_p = sampler.step(
                model, key_model, frames, actions, proprio, action, cfg, stats
            )
            return (frames, actions, proprio), (nxt, nxt_p, action)

        keys = jax.random.split(rng, horizon)
        _, (images, props, acts) = jax.lax.scan(body, (frames, actions, proprio), keys)
        images = jnp.concatenate([first_image[:, None], jnp.swapaxes(images, 0, 1)], axis=1)
        props = jnp.concatenate(
            [first_proprio.astype(jnp.float32)[:, None], jnp.swapaxes(props, 0, 1)], axis=1
        )
        return {"image": images, "proprio": props, "action": jnp.swapaxes(acts, 0, 1)}

    return rollout
