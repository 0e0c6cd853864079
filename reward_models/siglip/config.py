"""SigLIP (v1, Hugging Face `SiglipModel`) architecture configs and their `config.json` form.

The field names and defaults are those of HF's `SiglipTextConfig` / `SiglipVisionConfig` (which
describe google/siglip-base-patch16-224), so a `config.json` that leaves a key out means HF's
default. Keys HF keeps for training or bookkeeping (dropout, initializer ranges, token ids,
`torch_dtype`, ...) are ignored; a key we need with the wrong type is an error naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from robolearn.core.errors import RobolearnError


class SiglipFormatError(RobolearnError, ValueError):
    """A SigLIP checkpoint or tokenizer directory that cannot be read: the message names the file,
    the key or tensor at fault, and what was expected."""


# HF `hidden_act` names -> how model.py computes them. SigLIP checkpoints use gelu_pytorch_tanh.
ACTIVATIONS = ("gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu", "quick_gelu")


@dataclasses.dataclass(frozen=True)
class SiglipTextConfig:
    """Text tower: token + learned position embeddings, pre-LN encoder, final LN, linear head
    on the last token. `projection_size` is the head's output width (newer HF releases write it;
    None means hidden_size, as in every released SigLIP v1 checkpoint)."""

    vocab_size: int = 32000
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 64
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6
    projection_size: int | None = None

    @property
    def output_size(self) -> int:
        return self.hidden_size if self.projection_size is None else self.projection_size


@dataclasses.dataclass(frozen=True)
class SiglipVisionConfig:
    """Vision tower: non-overlapping patch conv, learned position embeddings, pre-LN encoder,
    post LN, multihead-attention-pooling head (probe query). Images are square `image_size`."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass(frozen=True)
class SiglipConfig:
    """Both towers. The image and text embeddings share a space, so the vision width must equal
    the text head's output width (true of all released checkpoints)."""

    text: SiglipTextConfig = SiglipTextConfig()
    vision: SiglipVisionConfig = SiglipVisionConfig()

    def __post_init__(self):
        for name, tower in (("text_config", self.text), ("vision_config", self.vision)):
            if tower.hidden_size % tower.num_attention_heads:
                raise SiglipFormatError(
                    f"{name}: hidden_size {tower.hidden_size} is not divisible by "
                    f"num_attention_heads {tower.num_attention_heads}"
                )
            if tower.hidden_act not in ACTIVATIONS:
                raise SiglipFormatError(
                    f"{name}: hidden_act {tower.hidden_act!r} is not supported "
                    f"(one of {', '.join(ACTIVATIONS)})"
                )
        if self.vision.image_size % self.vision.patch_size:
            raise SiglipFormatError(
                f"vision_config: image_size {self.vision.image_size} is not a multiple of "
                f"patch_size {self.vision.patch_size}"
            )
        if self.text.output_size != self.vision.hidden_size:
            raise SiglipFormatError(
                f"text head width {self.text.output_size} != vision hidden_size "
                f"{self.vision.hidden_size}: image and text embeddings must have the same size"
            )

    def to_hf_dict(self) -> dict[str, Any]:
        """The `config.json` HF's `SiglipModel.from_pretrained` reads."""
        text = dataclasses.asdict(self.text)
        if text["projection_size"] is None:
            del text["projection_size"]
        text["model_type"] = "siglip_text_model"
        vision = dataclasses.asdict(self.vision)
        vision["model_type"] = "siglip_vision_model"
        return {
            "architectures": ["SiglipModel"],
            "model_type": "siglip",
            "text_config": text,
            "vision_config": vision,
        }

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> SiglipConfig:
        """Parse HF's `SiglipConfig` dict; missing keys take HF's defaults, unknown keys are
        ignored, a wrong type or another architecture is a `SiglipFormatError`."""
        if not isinstance(d, dict):
            raise SiglipFormatError(f"{source}: expected a JSON object")
        model_type = d.get("model_type", "siglip")
        if model_type != "siglip":
            raise SiglipFormatError(
                f"{source}: model_type is {model_type!r}; only SigLIP ('siglip', HF SiglipModel) "
                "checkpoints are supported"
            )
        vision_d = _section(d, "vision_config", source)
        if not vision_d.get("vision_use_head", True):
            raise SiglipFormatError(
                f"{source}: vision_config.vision_use_head is false; the attention-pooling head is "
                "needed for image embeddings"
            )
        return cls(
            text=_parse(SiglipTextConfig, _section(d, "text_config", source), source),
            vision=_parse(SiglipVisionConfig, vision_d, source),
        )


def _section(d: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    section = d.get(key)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise SiglipFormatError(f"{source}: {key} must be a JSON object")
    return section


def _parse(kind: type, d: dict[str, Any], source: str):
    section = "text_config" if kind is SiglipTextConfig else "vision_config"
    values = {}
    for field in dataclasses.fields(kind):
        if field.name not in d or (d[field.name] is None and field.name == "projection_size"):
            continue
        value = d[field.name]
        expected = type(getattr(kind(), field.name)) if field.name != "projection_size" else int
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise SiglipFormatError(
                f"{source}: {section}.{field.name} is {value!r}, expected {expected.__name__}"
            )
        values[field.name] = value
    return kind(**values)
