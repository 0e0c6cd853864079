"""The off-policy learner's replay buffer: flashbax's item buffer (a device-resident ring of
transitions with jittable add and sample) holding `Transitions`, filled an episode at a time.

Why flashbax and not the episode store's input pipeline: online fine-tuning samples
utd x batch_size transitions for every environment step, from a buffer that grows by one
transition a step; a device-resident buffer sampled inside jit costs microseconds, where the
pipeline re-indexes files written moments ago. The store stays the record (crash-safe,
resumable): the online loop writes every episode there and rebuilds this buffer from it.

Memory: each transition keeps both of its frames (s and s'), 2 x 12 KiB at 64 x 64: 30k
transitions are ~0.75 GB.
"""

from __future__ import annotations

import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np

from robolearn.core.errors import ConfigError
from robolearn.policies.sac.losses import mc_returns
from robolearn.policies.sac.train import Transitions


def episode_transitions(
    image: np.ndarray, proprio: np.ndarray, action: np.ndarray, reward: np.ndarray,
    gamma: float, terminal: bool = False,
) -> Transitions:  # fmt: skip
    """The T transitions of one episode: image uint8 [T + 1, H, W, 3] and proprio [T + 1, P]
    (every observation, the one after the last action included), action [T, A], reward [T] (for
    the observation after each action). `terminal`: the episode ended in a terminal state (its
    last transition does not bootstrap); a time limit or an interruption is not one."""
    image, proprio = np.asarray(image), np.asarray(proprio, np.float32)
    action, reward = np.asarray(action, np.float32), np.asarray(reward, np.float32)
    t = len(action)
    if t < 1 or len(image) != t + 1 or len(proprio) != t + 1 or len(reward) != t:
        raise ConfigError(
            f"an episode needs T >= 1 actions and rewards with T + 1 observations; got "
            f"{len(action)} actions, {len(reward)} rewards, {len(image)} images, "
            f"{len(proprio)} proprio"
        )
    if image.dtype != np.uint8:
        raise ConfigError(f"episode images must be uint8, got {image.dtype}")
    for name, value in (("proprio", proprio), ("action", action), ("reward", reward)):
        if not np.isfinite(value).all():
            raise ConfigError(f"episode {name} holds NaN or inf")
    done = np.zeros(t, np.float32)
    done[-1] = float(terminal)
    return Transitions(
        image=image[:-1],
        proprio=proprio[:-1],
        action=np.clip(action, -1.0, 1.0),
        reward=reward,
        next_image=image[1:],
        next_proprio=proprio[1:],
        terminal=done,
        mc_return=mc_returns(reward, gamma),
    )


class Replay:
    """A ring of up to `capacity` transitions; `sample(state, rng)` draws utd x batch_size
    uniformly (with replacement) as Transitions [utd, batch_size, ...] for `update`.

    replay = Replay(capacity, batch_size, utd, example_episode_transitions)
    state = replay.init()
    state = replay.add(state, episode_transitions(...))
    batch = replay.sample(state, rng)
    """

    def __init__(self, capacity: int, batch_size: int, utd: int, example: Transitions):
        if capacity < batch_size:
            raise ConfigError(
                f"replay capacity ({capacity}) must be at least the batch size ({batch_size})"
            )
        self.capacity, self.batch_size, self.utd = capacity, batch_size, utd
        self._example = jax.tree.map(lambda x: jnp.asarray(x[0]), example)
        self._buffer = fbx.make_item_buffer(
            max_length=capacity,
            min_length=1,
            sample_batch_size=batch_size,
            add_sequences=False,
            add_batches=True,
        )
        self._add = jax.jit(self._buffer.add, donate_argnums=0)
        sample = self._buffer.sample

        @jax.jit
        def draw(state, rng):  # utd independent minibatches: Transitions [utd, batch_size, ...]
            return jax.vmap(lambda key: sample(state, key).experience)(jax.random.split(rng, utd))

        self._sample = draw

    def init(self):
        return self._buffer.init(self._example)

    def add(self, state, transitions: Transitions):
        """`state` with `transitions` (leading axis: transitions) appended, the oldest dropped
        once full. Its previous arrays are donated: use only the returned state."""
        return self._add(state, jax.tree.map(jnp.asarray, transitions))

    def warm(self, state, transitions: Transitions) -> None:
        """Compile add (for transitions shaped as these), sample and sample's emptiness check
        ahead, without changing `state`: a real-time caller then compiles nothing when it adds
        or samples (a compile on the arm's time misses its deadlines)."""
        items = jax.tree.map(jnp.asarray, transitions)
        self._add.lower(state, items).compile()  # (lowered only: nothing is donated)
        self._sample.lower(state, jax.random.key(0)).compile()
        jax.block_until_ready(self._buffer.can_sample(state))

    def size(self, state) -> int:
        """Transitions held."""
        return self.capacity if bool(state.is_full) else int(state.current_index)

    def sample(self, state, rng: jax.Array) -> Transitions:
        """utd x batch_size transitions drawn uniformly: Transitions [utd, batch_size, ...]. A
        one-line error when the buffer is empty."""
        if not bool(self._buffer.can_sample(state)):
            raise ConfigError("the replay buffer is empty: add an episode before sampling")
        return self._sample(state, rng)
