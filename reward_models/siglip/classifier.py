"""A success classifier on SigLIP: logit of P(success | image, instruction).

    clf = VLMSuccessClassifier(load_hf(ckpt_dir), rngs=nnx.Rngs(0))
    logits = clf(images_uint8, ids)                     # [B]
    opt = nnx.Optimizer(clf, optax.adamw(1e-4), wrt=trainable_filter())  # head only

The towers are frozen by default: `trainable_filter()` selects only the head's parameters,
`trainable_filter(finetune_towers=True)` every `nnx.Param`. The head sees the unit-normalized
image and text embeddings i, t [B, D] and adds an MLP over [i, t, i * t] to SigLIP's own
similarity logit:

    logit = exp(s) * <i, t> + b + fc2(gelu(fc1([i, t, i * t])))

with s, b the head's own copies of the checkpoint's logit_scale and logit_bias and fc2
initialised to zero, so an untrained classifier gives exactly SigLIP's image-text logit (its
zero-shot answer) and training starts from it rather than from chance.

Images are uint8 [B, H, W, 3] of any size: resized inside to the tower's image_size with
`jax.image.resize` bilinear (antialiased when shrinking; HF uses PIL bicubic), then
x / 255 -> (x - 0.5) / 0.5 as SigLIP's image processor does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from robolearn.reward_models.siglip.model import SiglipModel, normalize, similarity_logits


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """hidden: width of the head's MLP."""

    hidden: int = 256


class SuccessHead(nnx.Module):
    """(image_emb [B, D], text_emb [B or 1, D], unit norm) -> success logit [B]."""

    def __init__(
        self,
        width: int,
        cfg: HeadConfig,
        logit_scale: jax.Array,
        logit_bias: jax.Array,
        rngs: nnx.Rngs,
    ):
        self.logit_scale = nnx.Param(jnp.asarray(logit_scale, jnp.float32).reshape(()))
        self.logit_bias = nnx.Param(jnp.asarray(logit_bias, jnp.float32).reshape(()))
        self.fc1 = nnx.Linear(3 * width, cfg.hidden, rngs=rngs)
        zeros = jax.nn.initializers.zeros
        self.fc2 = nnx.Linear(cfg.hidden, 1, kernel_init=zeros, bias_init=zeros, rngs=rngs)

    def __call__(self, image_emb: jax.Array, text_emb: jax.Array) -> jax.Array:
        text_emb = jnp.broadcast_to(text_emb, image_emb.shape)
        cosine = jnp.sum(image_emb * text_emb, axis=-1)
        base = similarity_logits(cosine, self.logit_scale[...], self.logit_bias[...])
        features = jnp.concatenate([image_emb, text_emb, image_emb * text_emb], axis=-1)
        return base + self.fc2(jax.nn.gelu(self.fc1(features)))[:, 0]


class VLMSuccessClassifier(nnx.Module):
    """SigLIP towers + `SuccessHead`. images uint8 [B, H, W, 3], ids int [B, L] -> logits [B]."""

    def __init__(self, towers: SiglipModel, cfg: HeadConfig = HeadConfig(), *, rngs: nnx.Rngs):
        self.towers = towers
        self.image_size = towers.config.vision.image_size
        self.success_head = SuccessHead(
            towers.config.vision.hidden_size,
            cfg,
            towers.logit_scale[...],
            towers.logit_bias[...],
            rngs,
        )

    def preprocess(self, images: jax.Array) -> jax.Array:
        """uint8 (or float in [0, 255]) [B, H, W, 3] -> float32 [B, S, S, 3] in [-1, 1]."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B, H, W, 3] (uint8 RGB), got {images.shape}")
        x = images.astype(jnp.float32) / 255.0
        size = self.image_size
        if x.shape[1:3] != (size, size):
            x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bilinear")
        return (x - 0.5) / 0.5

    def embed_image(self, images: jax.Array) -> jax.Array:
        """uint8 [B, H, W, 3] -> unit-norm image embedding [B, D]."""
        return normalize(self.towers.image_features(self.preprocess(images)))

    def embed_text(self, ids: jax.Array) -> jax.Array:
        """token ids int [B, L] -> unit-norm text embedding [B, D]."""
        return normalize(self.towers.text_features(jnp.asarray(ids, jnp.int32)))

    def logits_from_embeddings(self, image_emb: jax.Array, text_emb: jax.Array) -> jax.Array:
        """Unit-norm image_emb [B, D] and text_emb [B, D] (or [1, D], broadcast) -> [B]."""
        return self.success_head(image_emb, text_emb)

    def __call__(self, images: jax.Array, ids: jax.Array) -> jax.Array:
        return self.logits_from_embeddings(self.embed_image(images), self.embed_text(ids))


def trainable_filter(finetune_towers: bool = False) -> nnx.filterlib.Filter:
    """The parameters to train: the head only (default) or every `nnx.Param`. For
    `nnx.split(clf, filter, ...)`, `nnx.DiffState(0, filter)`, `nnx.Optimizer(..., wrt=filter)`."""
    if finetune_towers:
        return nnx.Param
    return nnx.All(nnx.Param, nnx.PathContains("success_head"))


def make_success_logit_fn(
    classifier: VLMSuccessClassifier, ids: jax.Array
) -> Callable[[jax.Array], jax.Array]:
    """A jitted reward for one instruction: `fn(images uint8 [B, H, W, 3]) -> logits [B]`.
    The text embedding of `ids` ([L] or [1, L]) is computed once here, so each call costs only
    the image tower and the head. The function holds a snapshot of the current weights."""
    ids = jnp.asarray(ids, jnp.int32)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ValueError(f"ids must be one instruction, [L] or [1, L], got {ids.shape}")
    text_emb = nnx.jit(lambda c, i: c.embed_text(i))(classifier, ids)
    graphdef, state = nnx.split(classifier)

    @jax.jit
    def logits(state, text_emb, images):
        model = nnx.merge(graphdef, state)
        return model.logits_from_embeddings(model.embed_image(images), text_emb)

    return lambda images: logits(state, text_emb, images)
