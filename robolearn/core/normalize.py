"""Normalization statistics of a model's low-dimensional inputs (proprio), with one floor policy.

Floor policy (applied when statistics are computed from data, in each dimension's own units: m,
rad, gripper fraction):

- value std >= VALUE_STD_FLOOR = 1e-2 (1 cm, 0.6 deg, 1 % of the gripper's travel). Values are
  model *inputs*: a dimension the data keeps nearly constant (the WidowX roll in the drawer
  demonstrations: std 5e-4 rad) would otherwise turn the first small deviation in closed loop, or
  in imagination, into a 20-sigma input the model never saw. Measured on BC; the world model's
  proprio head reads the same inputs, so it gets the same floor (its old 1e-3 changed nothing on
  the shipped data, whose smallest value std is 0.055).
- one-step delta std >= DELTA_STD_FLOOR = 1e-3. Deltas are the world model's proprio *targets*:
  the head predicts delta / delta_std and the sampler multiplies back, so the floor is the scale
  of the head's error in a dimension that does not move. A 1e-2 floor would let a still
  dimension drift ten times faster in imagination; the floor only has to keep a dimension the
  data never moves (a gripper held closed) from dividing by zero.

Statistics read from a checkpoint are used as stored, never floored again: a model always sees
the normalization it was trained with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from robolearn.core.errors import ConfigError

VALUE_STD_FLOOR = 1e-2
DELTA_STD_FLOOR = 1e-3
NORM_CLIP = 5.0  # normalized values are clipped to +-5 std, so off-data states stay bounded

_KEYS = ("mean", "std", "delta_std")


class NormStats(struct.PyTreeNode):
    """Mean and std of a vector input over a dataset, float32 [P] each, and optionally the std
    of its one-step change (delta_std, float32 [P] or None). A pytree, so it passes through jit
    (as arrays) and device_put; models see normalize(values).

    On disk (stats.json): {"mean": [P], "std": [P]} plus "delta_std": [P] when present. Older
    BC checkpoints wrote {"proprio_mean", "proprio_std"}; robolearn.policies.bc.checkpoint
    migrates those when reading.
    """

    mean: jax.Array
    std: jax.Array
    delta_std: jax.Array | None = None

    @classmethod
    def of(cls, values: np.ndarray, deltas: np.ndarray | None = None) -> NormStats:
        """From rows of values [N, P] and, optionally, their one-step deltas [M, P] (within
        episodes); stds floored per the module's policy. Moments in float64."""
        values = np.asarray(values, np.float64)
        if values.ndim != 2 or not len(values):
            raise ConfigError(f"statistics need values [N, P] with N > 0, got {values.shape}")
        if deltas is None:
            return cls.from_moments(values.mean(0), values.std(0))
        deltas = np.asarray(deltas, np.float64)
        if deltas.ndim != 2 or not len(deltas) or deltas.shape[1] != values.shape[1]:
            raise ConfigError(
                f"statistics need deltas [M, {values.shape[1]}] with M > 0, got {deltas.shape}"
            )
        return cls.from_moments(values.mean(0), values.std(0), deltas.std(0))

    @classmethod
    def from_moments(
        cls, mean: np.ndarray, std: np.ndarray, delta_std: np.ndarray | None = None
    ) -> NormStats:
        """From a dataset's mean and std [P] (and its one-step deltas' std), computed elsewhere
        (e.g. streamed over data larger than memory); floored per the module's policy."""
        mean = np.asarray(mean, np.float32)
        std = np.maximum(np.asarray(std, np.float64), VALUE_STD_FLOOR).astype(np.float32)
        if delta_std is None:
            return cls(mean, std)
        delta = np.maximum(np.asarray(delta_std, np.float64), DELTA_STD_FLOOR)
        return cls(mean, std, delta.astype(np.float32))

    def normalize(self, values: jax.Array) -> jax.Array:
        """clip((values - mean) / std, +-NORM_CLIP): [..., P] -> [..., P]."""
        return jnp.clip((values - self.mean) / self.std, -NORM_CLIP, NORM_CLIP)

    def to_json(self) -> dict:
        """Plain lists, for a checkpoint's stats.json (delta_std only when present)."""
        return {
            key: np.asarray(getattr(self, key)).tolist()
            for key in _KEYS
            if getattr(self, key) is not None
        }

    @classmethod
    def from_json(cls, data: dict) -> NormStats:
        """Inverse of to_json, strictly: a one-line ConfigError names an unknown or missing key,
        a value that is not a list of numbers, lists not all of one length P >= 1, a number that
        is NaN or inf (in float32), and a std or delta_std that is not > 0. Any of these would
        make every normalized input (and so every action) NaN or inf."""
        if not isinstance(data, dict):
            raise ConfigError(f"statistics: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"statistics: unknown key {unknown[0]!r}; valid keys: {', '.join(_KEYS)}"
            )
        for key in _KEYS[:2]:
            if data.get(key) is None:
                raise ConfigError(f"statistics: missing key {key!r}")
        arrays = {
            key: _finite_vector(key, value) for key, value in data.items() if value is not None
        }
        lengths = {key: len(array) for key, array in arrays.items()}
        if len(set(lengths.values())) != 1 or not lengths["mean"]:
            raise ConfigError(f"statistics: need lists of one length >= 1, got lengths {lengths}")
        for key in ("std", "delta_std"):
            if key in arrays and not (arrays[key] > 0).all():
                raise ConfigError(f"statistics: {key} must be > 0, got {arrays[key].tolist()}")
        return cls(**arrays)


def _finite_vector(key: str, value) -> np.ndarray:
    """float32 [P] of a JSON list of finite numbers; a one-line ConfigError naming `key`."""
    if not isinstance(value, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    ):
        raise ConfigError(f"statistics: {key} must be a list of numbers, got {value!r:.80}")
    with np.errstate(over="ignore"):  # 1e39 becomes inf in float32: refused just below
        array = np.asarray(value, np.float32)
    if not np.isfinite(array).all():
        raise ConfigError(f"statistics: {key} holds NaN or inf (as float32): {value!r:.80}")
    return array
