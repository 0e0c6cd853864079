"""robolearn.core.normalize: the floor policy by hand, clipping, jit, and the strict JSON form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robolearn.core.errors import ConfigError
from robolearn.core.normalize import DELTA_STD_FLOOR, VALUE_STD_FLOOR, NormStats


def test_floor_policy_values_at_1e_2_deltas_at_1e_3():
    # dim 0 never moves (the WidowX roll of clean demos), dim 1 has std 2 (values) / 0.5 (deltas)
    values = np.array([[0.3, -1.0], [0.3, 3.0], [0.3, -1.0], [0.3, 3.0]])
    deltas = np.array([[0.0, 0.5], [0.0, -0.5]])
    stats = NormStats.of(values, deltas)
    assert (VALUE_STD_FLOOR, DELTA_STD_FLOOR) == (1e-2, 1e-3)
    np.testing.assert_allclose(stats.mean, [0.3, 1.0])
    np.testing.assert_allclose(stats.std, [1e-2, 2.0])
    np.testing.assert_allclose(stats.delta_std, [1e-3, 0.5])
    assert stats.std.dtype == stats.delta_std.dtype == np.float32
    # a 2 mm drift of the still dimension is 0.2 sigma, not 40 sigma without the floor
    np.testing.assert_allclose(stats.normalize(np.array([0.302, 1.0])), [0.2, 0.0], atol=1e-5)
    assert NormStats.of(values).delta_std is None


def test_normalize_clips_at_5_sigma():
    stats = NormStats(np.zeros(2, np.float32), np.ones(2, np.float32))
    out = stats.normalize(jnp.array([[100.0, -3.0]]))
    np.testing.assert_allclose(out, [[5.0, -3.0]])


def test_stats_pass_through_jit_as_a_pytree():
    stats = NormStats.of(np.arange(6.0).reshape(3, 2), np.ones((2, 2)))
    leaves = jax.tree.leaves(stats)
    assert len(leaves) == 3
    fn = jax.jit(lambda s, x: s.normalize(x) * s.delta_std)
    np.testing.assert_allclose(fn(stats, jnp.asarray(stats.mean)), [0.0, 0.0])
    assert len(jax.tree.leaves(NormStats.of(np.ones((2, 2))))) == 2  # no delta_std: no leaf


def test_json_round_trip_keeps_the_stored_values_unfloored():
    stats = NormStats(
        np.array([0.1, 0.2], np.float32),
        np.array([1e-4, 2.0], np.float32),  # computed under another floor: kept as stored
        np.array([1e-5, 0.5], np.float32),
    )
    back = NormStats.from_json(stats.to_json())
    assert set(stats.to_json()) == {"mean", "std", "delta_std"}
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(a, b)
    plain = NormStats(stats.mean, stats.std)
    assert set(plain.to_json()) == {"mean", "std"}
    assert NormStats.from_json(plain.to_json()).delta_std is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"mean": [0.0], "std": [1.0], "proprio_std": [1.0]}, "unknown key 'proprio_std'"),
        ({"mean": [0.0]}, "missing key 'std'"),
        ({"mean": [0.0, 1.0], "std": [1.0]}, "lists of one length"),
        ({"mean": [0.0], "std": ["x"]}, "std must be a list of numbers"),
        ({"mean": [False], "std": [1.0]}, "mean must be a list of numbers"),
        ({"mean": [[0.0]], "std": [[1.0]]}, "mean must be a list of numbers"),
        ({"mean": [], "std": []}, "lists of one length >= 1"),
        ({"mean": [float("nan")], "std": [1.0]}, "mean holds NaN or inf"),
        ({"mean": [0.0], "std": [float("inf")]}, "std holds NaN or inf"),
        ({"mean": [1e39], "std": [1.0]}, r"mean holds NaN or inf \(as float32\)"),
        ({"mean": [0.0], "std": [0.0]}, "std must be > 0"),
        ({"mean": [0.0], "std": [1.0], "delta_std": [-1.0]}, "delta_std must be > 0"),
        ([0.0], "expected a mapping"),
    ],
)
def test_malformed_json_is_a_one_line_error_naming_the_key(data, needle):
    with pytest.raises(ConfigError, match=needle):
        NormStats.from_json(data)


def test_statistics_of_no_rows_are_refused():
    with pytest.raises(ConfigError, match="N > 0"):
        NormStats.of(np.zeros((0, 3)))
    with pytest.raises(ConfigError, match=r"deltas \[M, 3\]"):
        NormStats.of(np.zeros((4, 3)), np.zeros((2, 2)))
