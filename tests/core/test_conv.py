"""robolearn.core.conv: the same convolution as lax.conv_general_dilated, values and both gradients,
for every case the models use (3x3 and 1x1, stride 1 and 2, SAME / VALID / explicit padding,
float32 and bfloat16), and lax's own path for the cases it does not implement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from robolearn.core import conv
from robolearn.core.conv import Conv, conv_general_dilated

NHWC = ("NHWC", "HWIO", "NHWC")


def _data(shape, kernel, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=kernel) * 0.1, jnp.float32)
    return x, w


def _loss(fn, strides, padding):
    # a nonlinear loss, so the upstream gradient differs at every output position
    return lambda x, w: jnp.sum(jnp.sin(fn(x, w, strides, padding, dimension_numbers=NHWC)))


@pytest.mark.parametrize(
    "shape, kernel, strides, padding",
    [
        ((2, 9, 9, 5), (3, 3, 5, 4), (1, 1), "SAME"),
        ((2, 9, 9, 5), (3, 3, 5, 4), (2, 2), "SAME"),  # odd size, stride 2
        ((2, 8, 8, 5), (3, 3, 5, 4), (2, 2), "SAME"),  # the world model's downsampling
        ((2, 8, 10, 5), (3, 3, 5, 4), (1, 2), "VALID"),
        ((2, 8, 8, 5), (3, 3, 5, 4), (1, 1), ((2, 0), (1, 1))),
        ((2, 8, 8, 5), (1, 1, 5, 7), (1, 1), "SAME"),  # the 1x1 skip projection
        ((1, 7, 7, 3), (2, 3, 3, 2), (1, 1), "SAME"),  # a non-square kernel
    ],
)
def test_values_and_gradients_equal_lax(shape, kernel, strides, padding):
    x, w = _data(shape, kernel)
    ours = _loss(conv_general_dilated, strides, padding)
    ref = _loss(lax.conv_general_dilated, strides, padding)
    y = conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
    y_ref = lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    grads = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, w)
    grads_ref = jax.jit(jax.grad(ref, argnums=(0, 1)))(x, w)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert g.shape == g_ref.shape and g.dtype == g_ref.dtype
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


def test_bfloat16_gradients_are_bfloat16_and_close():
    x, w = _data((2, 8, 8, 4), (3, 3, 4, 4))
    x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    g = jax.grad(_loss(conv_general_dilated, (1, 1), "SAME"), argnums=(0, 1))(x, w)
    g_ref = jax.grad(_loss(lax.conv_general_dilated, (1, 1), "SAME"), argnums=(0, 1))(x, w)
    for a, b in zip(g, g_ref, strict=True):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), rtol=0.05, atol=0.05)


def test_the_kernel_gradient_is_ours_on_cpu_and_lax_elsewhere(monkeypatch):
    """On CPU the custom rule runs (the jaxpr holds a custom_vjp call); a dilated or grouped
    convolution, or another backend, is lax.conv_general_dilated itself."""
    x, w = _data((1, 6, 6, 4), (3, 3, 4, 4))

    def prims(**kwargs):
        fn = lambda x, w: conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, **kwargs
        )  # noqa: E731
        return {e.primitive.name for e in jax.make_jaxpr(fn)(x, w).jaxpr.eqns}

    assert "custom_vjp_call" in " ".join(prims())
    assert prims(rhs_dilation=(2, 2)) == {"conv_general_dilated"}
    x2, w2 = _data((1, 6, 6, 4), (3, 3, 2, 4))
    grouped = jax.make_jaxpr(
        lambda x, w: conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2
        )
    )(x2, w2)
    assert {e.primitive.name for e in grouped.jaxpr.eqns} == {"conv_general_dilated"}
    monkeypatch.setattr(conv.jax, "default_backend", lambda: "gpu")
    assert prims() == {"conv_general_dilated"}


def test_conv_module_has_nnx_convs_parameters_and_results():
    ours = Conv(4, 6, (3, 3), strides=(2, 2), rngs=nnx.Rngs(0))
    theirs = nnx.Conv(4, 6, (3, 3), strides=(2, 2), rngs=nnx.Rngs(0))
    assert jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(theirs))
    x, _ = _data((2, 8, 8, 4), (1, 1, 1, 1))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # through nnx (which passes its own dimension numbers) the kernel gradient is the products
    graphdef, state = nnx.split(ours)
    grad = jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s)(x) ** 2))
    names = [e.primitive.name for e in jax.make_jaxpr(grad)(state).jaxpr.eqns]
    assert names.count("dot_general") == 9
    g_theirs = jax.grad(lambda s: jnp.sum(nnx.merge(*nnx.split(theirs)[:1], s)(x) ** 2))
    np.testing.assert_allclose(
        grad(state)["kernel"][...], g_theirs(nnx.state(theirs))["kernel"][...], rtol=1e-4, atol=1e-4
    )
