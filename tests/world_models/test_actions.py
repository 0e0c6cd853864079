"""Action encodings: two-hot (World4RL), one-hot and linear, and the two-hot decoder."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from robolearn.world_models.actions import (
    bin_centres,
    decode_two_hot,
    encode_actions,
    one_hot,
    two_hot,
)

K = 21  # bins uniform on [-1, 1]: centres -1.0, -0.9, ..., 0.9, 1.0
CENTRES = np.linspace(-1.0, 1.0, K)

in_range = arrays(np.float32, (3, 7), elements=st.floats(-1.0, 1.0, width=32))
any_value = arrays(np.float32, (3, 7), elements=st.floats(-10.0, 10.0, width=32))


def test_bin_centres_are_uniform_and_include_both_ends():
    """The bins the encodings and the decoder share are linspace(-1, 1, K)."""
    np.testing.assert_allclose(bin_centres(K), CENTRES, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(any_value)
def test_two_hot_sums_to_one_per_dimension(action):
    """Every action dimension's weights are non-negative and sum to 1, clipped or not."""
    w = np.asarray(two_hot(jnp.asarray(action), K))
    assert w.shape == (3, 7, K)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert ((w > 0).sum(-1) <= 2).all()


@settings(max_examples=25, deadline=None)
@given(in_range)
def test_decode_two_hot_inverts_two_hot(action):
    """On [-1, 1] the weighted mean of the bins gives the value back."""
    decoded = np.asarray(decode_two_hot(two_hot(jnp.asarray(action), K)))
    np.testing.assert_allclose(decoded, action, atol=1e-5)


def test_two_hot_is_exactly_one_hot_at_bin_centres():
    """A value at centre b_k puts all its weight on bin k (both ends included)."""
    w = np.asarray(two_hot(jnp.asarray(CENTRES[:, None], jnp.float32), K))[:, 0]
    np.testing.assert_allclose(w, np.eye(K), atol=1e-5)


def test_two_hot_interpolates_linearly_between_centres():
    """30% of the way from b_5 = -0.5 to b_6 = -0.4 (a = -0.47) gives 0.7 on b_5, 0.3 on b_6."""
    w = np.asarray(two_hot(jnp.asarray([-0.47, 0.25]), K))
    expected = np.zeros((2, K))
    expected[0, 5], expected[0, 6] = 0.7, 0.3
    expected[1, 12], expected[1, 13] = 0.5, 0.5  # 0.25 is half way from 0.2 to 0.3
    np.testing.assert_allclose(w, expected, atol=1e-5)


def test_two_hot_clips_values_outside_the_range():
    """Values beyond [-1, 1] encode as -1 / +1 exactly."""
    outside = np.asarray(two_hot(jnp.asarray([-3.0, -1.0001, 1.5, 100.0]), K))
    ends = np.asarray(two_hot(jnp.asarray([-1.0, -1.0, 1.0, 1.0]), K))
    np.testing.assert_array_equal(outside, ends)
    assert outside[0, 0] == 1.0 and outside[2, -1] == 1.0


def test_one_hot_picks_the_nearest_bin():
    """One-hot puts 1 on the nearest centre (clipped outside [-1, 1])."""
    values = jnp.asarray([-0.47, -0.43, 0.04, 0.96, 5.0, -5.0])
    w = np.asarray(one_hot(values, K))
    np.testing.assert_array_equal(w.sum(-1), 1.0)
    assert list(w.argmax(-1)) == [5, 6, 10, 20, 20, 0]


@pytest.mark.parametrize(
    ("encoding", "features"), [("two_hot", 7 * K), ("one_hot", 7 * K), ("linear", 7)]
)
def test_encode_actions_shapes(encoding, features):
    """[..., D] -> [..., D*K] for two_hot/one_hot and [..., D] for linear, float32."""
    action = jnp.linspace(-1.5, 1.5, 2 * 4 * 7).reshape(2, 4, 7)
    out = encode_actions(action, encoding, K)
    assert out.shape == (2, 4, features) and out.dtype == jnp.float32
    if encoding == "linear":
        np.testing.assert_allclose(out, np.clip(action, -1, 1))
    else:
        per_dim = np.asarray(out).reshape(2, 4, 7, K)
        np.testing.assert_allclose(per_dim.sum(-1), 1.0, atol=1e-5)


def test_encode_actions_rejects_unknown_encodings():
    """A typo in the encoding name is an error, not a silent fallback."""
    with pytest.raises(ValueError, match="unknown action encoding 'three_hot'"):
        encode_actions(jnp.zeros((1, 7)), "three_hot", K)
