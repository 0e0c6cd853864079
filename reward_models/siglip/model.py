"""SigLIP v1 towers in Flax NNX, laid out like Hugging Face's `SiglipModel` so that its weights
load one-to-one (see load.py for the name map).

Shapes: images are float NHWC `[B, S, S, C]` already scaled to [-1, 1] (classifier.py does the
uint8 -> [-1, 1] preprocessing), token ids int `[B, L]`, embeddings `[B, D]`.

Where this departs from HF `SiglipModel`:
- images are NHWC, not NCHW (the patch conv's kernel is transposed on load);
- the vision head's `nn.MultiheadAttention` is held as separate q/k/v projections (its
  `in_proj_weight` is split on load), and every attention computes q k^T * head_dim**-0.5 with the
  softmax in float32, as HF's eager attention does;
- no attention mask and no position-embedding interpolation: the text tower attends over the
  whole padded sequence (what HF does when the SigLIP tokenizer returns no mask, and how SigLIP
  was trained), and images must be exactly `image_size`;
- no dropout (attention_dropout is 0 in every released checkpoint), parameters in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from robolearn.reward_models.siglip.config import SiglipConfig, SiglipTextConfig, SiglipVisionConfig


def activation(name: str, x: jax.Array) -> jax.Array:
    """HF's `ACT2FN[name](x)`: gelu_pytorch_tanh/gelu_new/gelu_fast are the tanh approximation,
    gelu the exact erf form, quick_gelu x * sigmoid(1.702 x)."""
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return jax.nn.gelu(x, approximate=True)
    if name == "gelu":
        return jax.nn.gelu(x, approximate=False)
    if name == "quick_gelu":
        return x * jax.nn.sigmoid(1.702 * x)
    raise ValueError(f"unknown activation {name!r}")


def _layer_norm(width: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, as torch.nn.LayerNorm computes it.
    return nnx.LayerNorm(width, epsilon=eps, use_fast_variance=False, rngs=rngs)


class Attention(nnx.Module):
    """Multi-head attention with q/k/v/out projections (HF `SiglipAttention`; with queries from a
    probe it is also the vision head's `nn.MultiheadAttention`).
    queries [B, Q, D], keys_values [B, K, D] -> [B, Q, D]."""

    def __init__(self, width: int, num_heads: int, rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.q_proj = nnx.Linear(width, width, rngs=rngs)
        self.k_proj = nnx.Linear(width, width, rngs=rngs)
        self.v_proj = nnx.Linear(width, width, rngs=rngs)
        self.out_proj = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, queries: jax.Array, keys_values: jax.Array) -> jax.Array:
        b, q_len, width = queries.shape
        k_len, heads = keys_values.shape[1], self.num_heads
        head_dim = width // heads
        q = self.q_proj(queries).reshape(b, q_len, heads, head_dim)
        k = self.k_proj(keys_values).reshape(b, k_len, heads, head_dim)
        v = self.v_proj(keys_values).reshape(b, k_len, heads, head_dim)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) * head_dim**-0.5
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, q_len, width)
        return self.out_proj(out)


class MLP(nnx.Module):
    """fc1 -> activation -> fc2 (HF `SiglipMLP`). [..., D] -> [..., D]."""

    def __init__(self, width: int, hidden: int, act: str, rngs: nnx.Rngs):
        self.act = act
        self.fc1 = nnx.Linear(width, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, width, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(activation(self.act, self.fc1(x)))


class EncoderLayer(nnx.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)). [B, T, D] -> [B, T, D]."""

    def __init__(self, cfg: SiglipTextConfig | SiglipVisionConfig, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.layer_norm1 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.self_attn = Attention(d, cfg.num_attention_heads, rngs)
        self.layer_norm2 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.mlp = MLP(d, cfg.intermediate_size, cfg.hidden_act, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.layer_norm1(x)
        x = x + self.self_attn(h, h)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nnx.Module):
    """`num_hidden_layers` encoder layers. [B, T, D] -> [B, T, D]."""

    def __init__(self, cfg: SiglipTextConfig | SiglipVisionConfig, rngs: nnx.Rngs):
        self.layers = nnx.List([EncoderLayer(cfg, rngs) for _ in range(cfg.num_hidden_layers)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class VisionEmbeddings(nnx.Module):
    """Patch conv (kernel = stride = patch_size, no padding) plus a learned position embedding
    per patch, patches in row-major order. [B, S, S, C] -> [B, (S/p)^2, D]."""

    def __init__(self, cfg: SiglipVisionConfig, rngs: nnx.Rngs):
        p = cfg.patch_size
        self.image_size = cfg.image_size
        self.patch_embedding = nnx.Conv(
            cfg.num_channels,
            cfg.hidden_size,
            kernel_size=(p, p),
            strides=(p, p),
            padding="VALID",
            rngs=rngs,
        )
        self.position_embedding = nnx.Embed(cfg.num_patches, cfg.hidden_size, rngs=rngs)

    def __call__(self, pixels: jax.Array) -> jax.Array:
        if pixels.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"images must be [B, {self.image_size}, {self.image_size}, C], got {pixels.shape}"
            )
        x = self.patch_embedding(pixels)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        return x + self.position_embedding.embedding[...][None]


class AttentionPoolingHead(nnx.Module):
    """Multihead attention pooling (HF `SiglipMultiheadAttentionPoolingHead`): a learned probe
    [1, 1, D] attends over the tokens, then h + mlp(layernorm(h)). [B, T, D] -> [B, D]."""

    def __init__(self, cfg: SiglipVisionConfig, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.probe = nnx.Param(jax.nn.initializers.xavier_uniform()(rngs.params(), (1, 1, d)))
        self.attention = Attention(d, cfg.num_attention_heads, rngs)
        self.layernorm = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.mlp = MLP(d, cfg.intermediate_size, cfg.hidden_act, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        probe = jnp.broadcast_to(self.probe[...], (tokens.shape[0], 1, tokens.shape[-1]))
        h = self.attention(probe, tokens)
        h = h + self.mlp(self.layernorm(h))
        return h[:, 0]


class VisionTransformer(nnx.Module):
    """HF `SiglipVisionTransformer`: embeddings, encoder, post_layernorm, attention-pooling head.
    pixels [B, S, S, C] in [-1, 1] -> pooled [B, D]."""

    def __init__(self, cfg: SiglipVisionConfig, rngs: nnx.Rngs):
        self.embeddings = VisionEmbeddings(cfg, rngs)
        self.encoder = Encoder(cfg, rngs)
        self.post_layernorm = _layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs)
        self.head = AttentionPoolingHead(cfg, rngs)

    def tokens(self, pixels: jax.Array) -> jax.Array:
        """The last hidden state after post_layernorm, [B, (S/p)^2, D]."""
        return self.post_layernorm(self.encoder(self.embeddings(pixels)))

    def __call__(self, pixels: jax.Array) -> jax.Array:
        return self.head(self.tokens(pixels))


class TextEmbeddings(nnx.Module):
    """Token embedding plus learned absolute position embedding. ids [B, L] -> [B, L, D]."""

    def __init__(self, cfg: SiglipTextConfig, rngs: nnx.Rngs):
        self.token_embedding = nnx.Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs)
        self.position_embedding = nnx.Embed(cfg.max_position_embeddings, cfg.hidden_size, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        length = ids.shape[-1]
        max_len = self.position_embedding.num_embeddings
        if length > max_len:
            raise ValueError(f"token ids have length {length}, the text tower takes <= {max_len}")
        return self.token_embedding(ids) + self.position_embedding.embedding[...][:length][None]


class TextTransformer(nnx.Module):
    """HF `SiglipTextTransformer`: embeddings, encoder (no mask, not causal), final_layer_norm;
    pooled = the last position's hidden state (the tokenizer ends every sequence with eos or
    pad), then the `head` linear. ids [B, L] -> pooled [B, P]."""

    def __init__(self, cfg: SiglipTextConfig, rngs: nnx.Rngs):
        self.embeddings = TextEmbeddings(cfg, rngs)
        self.encoder = Encoder(cfg, rngs)
        self.final_layer_norm = _layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs)
        self.head = nnx.Linear(cfg.hidden_size, cfg.output_size, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        h = self.final_layer_norm(self.encoder(self.embeddings(ids)))
        return self.head(h[:, -1])


class SiglipModel(nnx.Module):
    """Both towers plus the learned logit_scale and logit_bias (each [1]).

    `image_features` / `text_features` are HF's `get_image_features` / `get_text_features`
    (un-normalized); `__call__` gives HF's `logits_per_image`:
    exp(logit_scale) * cos(image, text) + logit_bias, [B_image, B_text]."""

    def __init__(self, cfg: SiglipConfig, rngs: nnx.Rngs):
        self.config = cfg
        self.text_model = TextTransformer(cfg.text, rngs)
        self.vision_model = VisionTransformer(cfg.vision, rngs)
        # HF's initial values (log 1 and 0); every checkpoint overwrites them.
        self.logit_scale = nnx.Param(jnp.zeros((1,), jnp.float32))
        self.logit_bias = nnx.Param(jnp.zeros((1,), jnp.float32))

    def image_features(self, pixels: jax.Array) -> jax.Array:
        """pixels [B, S, S, C] float in [-1, 1] -> [B, D]."""
        return self.vision_model(pixels)

    def text_features(self, ids: jax.Array) -> jax.Array:
        """ids int [B, L] -> [B, D]."""
        return self.text_model(ids)

    def __call__(self, pixels: jax.Array, ids: jax.Array) -> jax.Array:
        image = normalize(self.image_features(pixels))
        text = normalize(self.text_features(ids))
        return similarity_logits(image @ text.T, self.logit_scale[...], self.logit_bias[...])


def normalize(x: jax.Array) -> jax.Array:
    """Unit L2 norm along the last axis (HF divides by the norm with no epsilon)."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def similarity_logits(cosine: jax.Array, logit_scale: jax.Array, logit_bias: jax.Array):
    """SigLIP's pairwise logit exp(logit_scale) * cos + logit_bias (scale and bias [1] or [])."""
    return cosine * jnp.exp(logit_scale.reshape(())) + logit_bias.reshape(())
