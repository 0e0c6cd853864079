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

Recorded episodes replayed open loop (the model imagines, the recorded actions drive it):
`Imaginer` batches `robolearn.world_models.sampler.open_loop`, `context_window` cuts a real context
out of an episode, `imagine_episodes` imagines whole episodes from their first frames.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robolearn.core.errors import ConfigError
from robolearn.world_models import sampler


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


def check_reward(wm_info, reward_info) -> None:
    """One-line error for a reward classifier that cannot score the world model's frames (the
    task itself is checked when the classifier is loaded for it)."""
    if reward_info.image_size != wm_info.image_size:
        raise ConfigError(
            f"the reward classifier sees {reward_info.image_size}x{reward_info.image_size} "
            f"images but the world model imagines {wm_info.image_size}x{wm_info.image_size}"
        )


def start_window(first_image, first_proprio, context: int, action_dim: int):
    """The world model's context at an episode start, as it was trained on padded starts: the
    first frame and proprio repeated `context` times, zero actions. first_image [B, H, W, 3],
    first_proprio [B, P] -> (frames [B, T, H, W, 3] of the image's dtype, actions float32
    [B, T, A], proprio float32 [B, T, P]). NumPy in, NumPy out (host-side starts, e.g. refine's);
    JAX arrays (or tracers inside a jitted rollout) in, JAX arrays out."""
    xp = np if isinstance(first_image, np.ndarray) else jnp
    frames = xp.repeat(first_image[:, None], context, axis=1)
    proprio = xp.repeat(xp.asarray(first_proprio, xp.float32)[:, None], context, axis=1)
    actions = xp.zeros((first_image.shape[0], context, action_dim), xp.float32)
    return frames, actions, proprio


class Imaginer:
    """Batched open-loop rollouts of a frozen world model (a FrozenWorldModel) under given actions,
    jitted once per (batch, horizon) shape."""

    def __init__(self, wm, batch_size: int):
        self.wm, self.batch_size = wm, batch_size
        graphdef, cfg, stats = wm.graphdef, wm.sampler, wm.stats
        self._fn = jax.jit(
            lambda params, rng, f, a, p, fa: sampler.open_loop(
                graphdef, params, rng, f, a, p, fa, cfg, stats
            )
        )

    def __call__(self, rng, frames, actions, proprio, future, first: int = 0):
        """Numpy in, numpy out; any number of rows (padded to whole batches). The rows starting
        at row i are imagined with key fold_in(rng, first + i): a long input imagined in parts
        (`first` = each part's offset) gets the keys it gets imagined at once."""
        n, b = len(frames), self.batch_size
        out_f, out_p = [], []
        for i in range(0, n, b):
            chunk = [x[i : i + b] for x in (frames, actions, proprio, future)]
            pad = b - len(chunk[0])
            if pad:
                chunk = [np.concatenate([x, np.repeat(x[-1:], pad, 0)]) for x in chunk]
            f, p = self._fn(self.wm.params, jax.random.fold_in(rng, first + i), *chunk)
            out_f.append(np.asarray(f)[: b - pad])
            out_p.append(np.asarray(p)[: b - pad])
        return np.concatenate(out_f), np.concatenate(out_p)


def context_window(images, actions, proprio, s: int, t: int):
    """The T-frame context ending at frame s of one episode, padded before frame 0.

    images [N+1, H, W, 3], actions [N, A], proprio [N+1, P] -> frames [T, H, W, 3], the T actions
    that led into them [T, A] (zeros before the episode), proprio [T, P].
    """
    idx = np.arange(s - t + 1, s + 1)
    frames = images[np.maximum(idx, 0)]
    act_idx = idx - 1
    acts = np.where((act_idx >= 0)[:, None], actions[np.maximum(act_idx, 0)], 0.0)
    return frames, acts.astype(np.float32), proprio[np.maximum(idx, 0)]


def imagine_episodes(imaginer: Imaginer, rng, episodes, first: int = 0) -> list:
    """Every recorded episode imagined in full, open loop: from its first frame (padded the way
    training pads an episode start) under all its recorded actions.

    episodes: (image [N+1, H, W, 3], action [N, A], proprio [N+1, P]) per episode. Returns the
    imagined frames uint8 [N, H, W, 3] of each episode, in order (frame k is imagined after
    action k-1, beside the recorded frame k). Episodes of one length go in one batch, with the
    key `rng` folded with that length; `first`: the episodes' row offset within their length's
    group when a group is imagined in parts (Imaginer's `first`).
    """
    t = imaginer.wm.info.context
    by_length: dict[int, list[int]] = {}
    for e, (_, action, _) in enumerate(episodes):
        by_length.setdefault(len(action), []).append(e)
    out: list = [None] * len(episodes)
    for n, group in by_length.items():
        ctx = [context_window(*episodes[e], 0, t) for e in group]
        frames, acts, prop = (np.stack(x) for x in zip(*ctx, strict=True))
        future = np.stack([episodes[e][1] for e in group]).astype(np.float32)
        imagined, _ = imaginer(jax.random.fold_in(rng, n), frames, acts, prop, future, first)
        for e, frames_e in zip(group, imagined, strict=True):
            out[e] = frames_e
    return out


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
        frames, actions, proprio = start_window(first_image, first_proprio, t, wm.info.action_dim)

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


def make_scored_rollout(
    wm,
    actor_apply: Callable,
    reward_logit: Callable,
    horizon: int,
    std_floor: float,
    threshold: float,
    reward: str = "binary",
) -> Callable:
    """Imagined episodes for PPO: the policy samples, the world model imagines, the reward
    classifier scores each imagined frame. One jitted `lax.scan`.

    rollout(wm_params, actor_params, reward_params, rng, frames uint8 [B, T, H, W, 3],
            actions [B, T, A], proprio [B, T, P], floor=None) -> Trajectory (time-major, see
            robolearn.policies.ppo.train); `floor` (a scalar, PPOConfig.floor_at's) replaces
            std_floor for this call

    The episodes start from real context windows: `start_window` of first frames, or a window
    from the middle of a recorded episode (`context_window`).

    actor_apply(params, image, proprio) -> (mean, log_std) as for make_policy_rollout; actions
    are sampled from N(mean, max(std, std_floor)^2), clipped to [-1, 1] for the world model, and
    their log-probabilities are of the unclipped sample. reward_logit(params, image) -> calibrated
    logits [B]; the reward of step t is 1[sigmoid(logit(x_{t+1})) >= threshold] ("binary",
    World4RL) or the probability itself ("prob").
    """
    from robolearn.policies.ppo.losses import gaussian_log_prob
    from robolearn.policies.ppo.train import Trajectory, effective_log_std

    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon}")
    graphdef, cfg, stats = wm.graphdef, wm.sampler, wm.stats

    @jax.jit
    def rollout(wm_params, actor_params, reward_params, rng, frames, actions, proprio, floor=None):
        model = nnx.merge(graphdef, wm_params)
        proprio = proprio.astype(jnp.float32)
        floor = std_floor if floor is None else floor

        def body(carry, key):
            frames, actions, proprio = carry
            key_policy, key_model = jax.random.split(key)
            image, prop = frames[:, -1], proprio[:, -1]
            mean, log_std = actor_apply(actor_params, image, prop)
            log_std = effective_log_std(log_std, floor)
            action = mean + jnp.exp(log_std) * jax.random.normal(key_policy, mean.shape)
            log_prob = gaussian_log_prob(mean, log_std, action)
            frames, actions, proprio, nxt, _ = sampler.step(
                model, key_model, frames, actions, proprio, jnp.clip(action, -1, 1), cfg, stats
            )
            prob = jax.nn.sigmoid(reward_logit(reward_params, nxt))
            r = (prob >= threshold).astype(jnp.float32) if reward == "binary" else prob
            return (frames, actions, proprio), (image, prop, action, log_prob, r, prob)

        keys = jax.random.split(rng, horizon)
        _, out = jax.lax.scan(body, (frames, actions, proprio), keys)
        return Trajectory(*out)

    return rollout
