"""A drop-in `conv_general_dilated` for nnx.Conv whose kernel gradient is fast on XLA's CPU backend.

On CPU (jaxlib 0.10), XLA lowers the gradient of a convolution with respect to its kernel to a
slow path: for the base world model's 3x3, 64 -> 64 convolution on 16 x 64 x 64 maps the forward
takes ~80 ms and the input gradient ~130 ms, but the kernel gradient ~800 ms, and it dominated
the `base` world model's CPU train step (docs/benchmarks.md, "Why XLA on this CPU was slower
than PyTorch"; PyTorch/oneDNN does forward and both gradients in ~125 ms). Stride-2 and 32x32
convolutions (the BC and reward encoders, `small`) were not measurably slow, and are no slower
here.

`conv_general_dilated` computes the same convolution with the same forward and input gradient
(XLA's own), and the kernel gradient as one matrix product per kernel tap: dW[i, j] = sum over
batch and output positions of x_padded[b, i + s*y, j + s*x, :]^T dY[b, y, x, :], which XLA's CPU
matrix kernels run fast. It applies only on the CPU backend and only to the case it implements
(2-D, NHWC / HWIO, no dilation, no feature groups); everything else is lax.conv_general_dilated
unchanged. The parameters, their layout and the results are the same as nnx.Conv's default
(checked against it to float32 rounding in tests/core/test_conv.py), so checkpoints do not change.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def _is_nhwc(dimension_numbers) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        want = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), NHWC)
        return tuple(dimension_numbers) == tuple(want)
    return tuple(dimension_numbers) == NHWC


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
    out_sharding=None,
):
    """lax.conv_general_dilated with a fast kernel gradient on CPU (see the module doc)."""
    plain = functools.partial(
        lax.conv_general_dilated,
        window_strides=window_strides,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    if out_sharding is not None:
        plain = functools.partial(plain, out_sharding=out_sharding)
    undilated = all(d == 1 for d in (lhs_dilation or (1, 1))) and all(
        d == 1 for d in (rhs_dilation or (1, 1))
    )
    ours = (
        jax.default_backend() == "cpu"
        and lhs.ndim == 4
        and rhs.ndim == 4
        and _is_nhwc(dimension_numbers)
        and undilated
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and out_sharding is None
    )
    if not ours:
        return plain(lhs, rhs)
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    else:
        pads = padding
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if any(p < 0 for pair in pads for p in pair):
        return plain(lhs, rhs)
    return _conv(lhs, rhs, strides, pads, precision)


def _forward(x, w, strides, pads, precision):
    return lax.conv_general_dilated(
        x, w, strides, pads, dimension_numbers=NHWC, precision=precision
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
    return _forward(x, w, strides, pads, precision)


def _conv_fwd(x, w, strides, pads, precision):
    return _forward(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, residuals, dy):
    x, w = residuals
    # the input gradient: XLA's own (a transposed convolution; fast on CPU)
    _, vjp_x = jax.vjp(lambda x: _forward(x, w, strides, pads, precision), x)
    (dx,) = vjp_x(dy)
    # the kernel gradient: one matrix product per kernel tap, [B*Ho*Wo, C]^T [B*Ho*Wo, D]
    kh, kw = w.shape[:2]
    b, ho, wo, d = dy.shape
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    c = xp.shape[3]
    sy, sx = strides
    dy2 = dy.reshape(b * ho * wo, d)
    taps = []
    for i in range(kh):
        for j in range(kw):
            patch = lax.slice(
                xp,
                (0, i, j, 0),
                (b, i + sy * (ho - 1) + 1, j + sx * (wo - 1) + 1, c),
                (1, sy, sx, 1),
            )
            taps.append(
                lax.dot_general(
                    patch.reshape(b * ho * wo, c),
                    dy2,
                    (((0,), (0,)), ((), ())),
                    precision=precision,
                )
            )
    dw = jnp.stack(taps).reshape(w.shape).astype(w.dtype)
    return dx.astype(x.dtype), dw


_conv.defvjp(_conv_fwd, _conv_bwd)


def Conv(*args, **kwargs) -> nnx.Conv:  # noqa: N802 - a constructor, named like the class
    """nnx.Conv with this module's conv_general_dilated (same parameters, same results)."""
    return nnx.Conv(*args, conv_general_dilated=conv_general_dilated, **kwargs)
