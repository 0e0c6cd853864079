"""The world model in Flax NNX (model only): an EDM-preconditioned U-Net denoiser of the next
frame, conditioned on the last T frames (channel-concatenated) and the last T actions (encoded,
embedded and added to the noise-level embedding that drives every AdaGroupNorm), plus a small
proprio head. Images are NHWC float in [-1, 1]; `dtype` is the computation dtype (bfloat16 on
accelerators), parameters stay float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from robolearn.world_models import edm
from robolearn.world_models.actions import encode_actions
from robolearn.world_models.config import EDMConfig, ModelConfig

from robolearn.core.conv import Conv


def _groups(channels: int) -> int:
    return max(1, min(32, channels // 8))


def space_to_depth(x: jax.Array, p: int) -> jax.Array:
    """[B, H, W, C] -> [B, H/p, W/p, C*p*p]."""
    if p == 1:
        return x
    b, h, w, c = x.shape
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // p, w // p, p * p * c)


def depth_to_space(x: jax.Array, p: int) -> jax.Array:
    """Inverse of space_to_depth: [B, h, w, C*p*p] -> [B, h*p, w*p, C]."""
    if p == 1:
        return x
    b, h, w, cpp = x.shape
    c = cpp // (p * p)
    x = x.reshape(b, h, w, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * p, w * p, c)


def fourier_features(x: jax.Array, dim: int, key: int = 0) -> jax.Array:
    """Fourier features of a scalar, [B] -> [B, dim]: cos and sin of dim/2 frequencies drawn
    once from N(0, 1) with the fixed key `key` (constants, not parameters)."""
    freqs = jax.random.normal(jax.random.key(key), (dim // 2,))
    f = 2 * math.pi * x[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(f), jnp.sin(f)], axis=-1)


class AdaGroupNorm(nnx.Module):
    """GroupNorm without affine parameters, then x * (1 + scale) + shift from the conditioning."""

    def __init__(self, channels: int, cond_dim: int, rngs: nnx.Rngs, dtype):
        self.norm = nnx.GroupNorm(
            channels, num_groups=_groups(channels), use_bias=False, use_scale=False, rngs=rngs
        )
        self.linear = nnx.Linear(cond_dim, 2 * channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        scale, shift = jnp.split(self.linear(cond)[:, None, None, :], 2, axis=-1)
        x = self.norm(x.astype(jnp.float32)).astype(x.dtype)
        return x * (1 + scale) + shift


class ResBlock(nnx.Module):
    """AdaGN -> SiLU -> conv3x3 -> AdaGN -> SiLU -> conv3x3, plus a (1x1-projected) skip."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, rngs: nnx.Rngs, dtype):
        self.norm1 = AdaGroupNorm(c_in, cond_dim, rngs, dtype)
        self.conv1 = Conv(c_in, c_out, (3, 3), padding="SAME", dtype=dtype, rngs=rngs)
        self.norm2 = AdaGroupNorm(c_out, cond_dim, rngs, dtype)
        self.conv2 = Conv(
            c_out,
            c_out,
            (3, 3),
            padding="SAME",
            dtype=dtype,
            kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )
        self.skip = Conv(c_in, c_out, (1, 1), dtype=dtype, rngs=rngs) if c_in != c_out else None

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        h = self.conv1(jax.nn.silu(self.norm1(x, cond)))
        h = self.conv2(jax.nn.silu(self.norm2(h, cond)))
        return (self.skip(x) if self.skip is not None else x) + h


class SelfAttention(nnx.Module):
    """Multi-head self-attention over all positions of a feature map, with a residual."""

    def __init__(self, channels: int, heads: int, rngs: nnx.Rngs, dtype):
        self.heads = heads
        self.norm = nnx.GroupNorm(channels, num_groups=_groups(channels), rngs=rngs)
        self.qkv = nnx.Linear(channels, 3 * channels, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(
            channels, channels, dtype=dtype, kernel_init=nnx.initializers.zeros_init(), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        qkv = self.qkv(self.norm(x.astype(jnp.float32)).astype(x.dtype))
        q, k, v = jnp.split(qkv.reshape(b, h * w, 3, self.heads, c // self.heads), 3, axis=2)
        y = jax.nn.dot_product_attention(q[:, :, 0], k[:, :, 0], v[:, :, 0])
        return x + self.out(y.reshape(b, h, w, c))


class UNet(nnx.Module):
    """F(x_in [B, H, W, C_in], cond [B, cond_dim]) -> [B, H, W, 3] (DIAMOND's inner model)."""

    def __init__(self, cfg: ModelConfig, c_in: int, rngs: nnx.Rngs, dtype):
        p, chans, cd = cfg.patch, cfg.channels, cfg.cond_dim
        self.patch = p
        self.conv_in = Conv(c_in * p * p, chans[0], (3, 3), dtype=dtype, rngs=rngs)
        self.down = nnx.List()
        self.downsample = nnx.List()
        skips = [chans[0]]
        c = chans[0]
        for level, width in enumerate(chans):
            blocks = nnx.List()
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(c, width, cd, rngs, dtype))
                c = width
                skips.append(c)
            self.down.append(blocks)
            if level < len(chans) - 1:
                self.downsample.append(Conv(c, c, (3, 3), strides=(2, 2), dtype=dtype, rngs=rngs))
                skips.append(c)
        self.mid1 = ResBlock(c, c, cd, rngs, dtype)
        self.attn = SelfAttention(c, cfg.attention_heads, rngs, dtype)
        self.mid2 = ResBlock(c, c, cd, rngs, dtype)
        self.up = nnx.List()
        self.upsample = nnx.List()
        for level, width in reversed(list(enumerate(chans))):
            blocks = nnx.List()
            for _ in range(cfg.res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), width, cd, rngs, dtype))
                c = width
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(Conv(c, c, (3, 3), dtype=dtype, rngs=rngs))
        self.norm_out = nnx.GroupNorm(c, num_groups=_groups(c), rngs=rngs)
        self.conv_out = Conv(
            c,
            3 * p * p,
            (3, 3),
            dtype=dtype,
            kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )

    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        h = self.conv_in(space_to_depth(x, self.patch))
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, cond)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.attn(self.mid1(h, cond)), cond)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(jnp.concatenate([h, skips.pop()], axis=-1), cond)
            if i < len(self.upsample):
                b, hh, ww, c = h.shape
                h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
                h = self.upsample[i](h)
        h = jax.nn.silu(self.norm_out(h.astype(jnp.float32)).astype(h.dtype))
        return depth_to_space(self.conv_out(h), self.patch).astype(jnp.float32)


class WorldModel(nnx.Module):
    """Denoiser D(noisy next frame | past T frames, past T actions, sigma) and proprio head.

    denoise(noisy [B, H, W, 3], sigma [B], frames [B, T, H, W, 3], actions [B, T, A],
            context_sigma [B] or None)
        -> the denoised next frame [B, H, W, 3] (floats in [-1, 1] scale; frames in [-1, 1]).
        context_sigma: the noise level of `frames` (cfg.context_noise > 0 only; None = 0).
    network(...) -> the raw network output F, the regression target of the EDM loss.
    proprio_delta(proprio [B, T, P] normalized, actions [B, T, A]) -> [B, P], the next proprio's
        change from the last one, in units of the data's per-dimension delta std.
    """

    def __init__(self, cfg: ModelConfig, edm_cfg: EDMConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg, self.edm_cfg, self.dtype = cfg, edm_cfg, dtype
        t, cd = cfg.context, cfg.cond_dim
        self.action_embed = nnx.Linear(
            cfg.action_features, cfg.action_embed, use_bias=False, rngs=rngs
        )
        # context_noise: the context frames' noise level joins the conditioning (Fourier
        # features beside the denoising level's); no extra parameters when off.
        extra = cd if cfg.context_noise > 0 else 0
        self.cond_in = nnx.Linear(cd + extra + t * cfg.action_embed, cd, rngs=rngs)
        self.cond_out = nnx.Linear(cd, cd, rngs=rngs)
        self.unet = UNet(cfg, 3 * (t + 1), rngs, dtype)
        self.proprio_layers = nnx.List()
        width = t * (cfg.proprio_dim + cfg.action_dim)
        for h in cfg.proprio_hidden:
            self.proprio_layers.append(nnx.Linear(width, h, rngs=rngs))
            width = h
        self.proprio_out = nnx.Linear(
            width, cfg.proprio_dim, kernel_init=nnx.initializers.zeros_init(), rngs=rngs
        )

    def condition(
        self, c_noise: jax.Array, actions: jax.Array, context_sigma: jax.Array | None = None
    ) -> jax.Array:
        """[B], [B, T, A], [B] or None -> the conditioning vector [B, cond_dim]."""
        cfg = self.cfg
        encoded = encode_actions(actions, cfg.action_encoding, cfg.action_bins)
        emb = self.action_embed(encoded).reshape(actions.shape[0], -1)
        features = [fourier_features(c_noise, cfg.cond_dim)]
        if cfg.context_noise > 0:
            if context_sigma is None:
                context_sigma = jnp.zeros(c_noise.shape, jnp.float32)
            # the level itself (not scaled to the trained range, so a model fine-tuned with
            # another range reads the same level the same way)
            features.append(fourier_features(context_sigma, cfg.cond_dim, key=1))
        cond = jnp.concatenate([*features, emb], axis=-1)
        return self.cond_out(jax.nn.silu(self.cond_in(cond))).astype(self.dtype)

    def network(self, noisy, sigma, frames, actions, context_sigma=None) -> jax.Array:
        c_in, _, _, c_noise = edm.coefficients(sigma, self.edm_cfg)
        b, t, h, w, _ = frames.shape
        context = (frames / self.edm_cfg.sigma_data).transpose(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        x = jnp.concatenate([noisy * c_in[:, None, None, None], context], axis=-1)
        return self.unet(x.astype(self.dtype), self.condition(c_noise, actions, context_sigma))

    def denoise(self, noisy, sigma, frames, actions, context_sigma=None) -> jax.Array:
        _, c_skip, c_out, _ = edm.coefficients(sigma, self.edm_cfg)
        out = self.network(noisy, sigma, frames, actions, context_sigma)
        return c_skip[:, None, None, None] * noisy + c_out[:, None, None, None] * out

    def proprio_delta(self, proprio: jax.Array, actions: jax.Array) -> jax.Array:
        b = proprio.shape[0]
        x = jnp.concatenate(
            [proprio.reshape(b, -1), jnp.clip(actions, -1, 1).reshape(b, -1)], axis=-1
        )
        for layer in self.proprio_layers:
            x = jax.nn.gelu(layer(x))
        return self.proprio_out(x)


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
