"""Tiny SigLIP checkpoints for tests and examples: files in Hugging Face's exact format (the
`config.json`, `model.safetensors` and SentencePiece tokenizer files HF's SiglipModel and
SiglipTokenizer read) holding small random weights.

    directory = write_tiny_siglip(tmp_path / "siglip")    # checkpoint + tokenizer, seconds
    towers, tokenizer = load_hf(directory), load_tokenizer(directory)

The sizes are the module constants (width D, image IMAGE with patch PATCH, LAYERS layers per
tower unless `layers` says otherwise); hf_shapes() writes out HF's state-dict names and torch
shapes for them by hand, independently of load.py.

    directory = write_base_siglip(tmp_path / "base")   # google/siglip-base-patch16-224's files,
                                                        # scaled down, for transformers to read

base_config() is google/siglip-base-patch16-224's config.json with the same keys, scaled down;
write_base_siglip() adds its tokenizer and preprocessor files, so that transformers' SiglipModel,
SiglipTokenizer and SiglipImageProcessorPil load the directory as they load the real one.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

D, INTER, HEADS, LAYERS = 32, 64, 2, 2
VOCAB, MAX_POS = 100, 16
IMAGE, PATCH = 32, 8


def hf_config(layers: int = LAYERS) -> dict:
    """The config.json of the tiny model (HF's layer_norm_eps default applies: it is left out
    on purpose)."""
    return {
        "model_type": "siglip",
        "architectures": ["SiglipModel"],
        "torch_dtype": "float32",
        "text_config": {
            "vocab_size": VOCAB,
            "hidden_size": D,
            "intermediate_size": INTER,
            "num_hidden_layers": layers,
            "num_attention_heads": HEADS,
            "max_position_embeddings": MAX_POS,
            "model_type": "siglip_text_model",
        },
        "vision_config": {
            "hidden_size": D,
            "intermediate_size": INTER,
            "num_hidden_layers": layers,
            "num_attention_heads": HEADS,
            "image_size": IMAGE,
            "patch_size": PATCH,
            "model_type": "siglip_vision_model",
        },
    }


CONFIG = hf_config()

# HF's SiglipTextConfig / SiglipVisionConfig defaults (google/siglip-base-patch16-224's sizes), for
# the keys a config.json may leave out.
HF_TEXT_DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "max_position_embeddings": 64,
}
HF_VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "image_size": 224,
    "patch_size": 16,
}
BASE_MAX_LENGTH = 64  # the tokenizer's model_max_length = the text max_position_embeddings


def base_config(
    width: int = 64, heads: int = 4, layers: int = 2, image: int = 64, vocab: int = VOCAB
) -> dict:
    """google/siglip-base-patch16-224's config.json (768 wide, 12 heads, 12 layers, 224 pixels,
    vocab 32000) with the same keys, scaled down; the MLP stays 4x the width and the patch 16.
    Like the real file it leaves hidden_act (gelu_pytorch_tanh), layer_norm_eps (1e-6) and
    max_position_embeddings (64, paired with the tokenizer's model_max_length) to HF's defaults;
    num_hidden_layers, absent there (12 by default), is written to scale the towers down."""
    tower = {"hidden_size": width, "intermediate_size": 4 * width, "num_attention_heads": heads}
    return {
        "architectures": ["SiglipModel"],
        "initializer_factor": 1.0,
        "model_type": "siglip",
        "text_config": {
            **tower,
            "model_type": "siglip_text_model",
            "num_hidden_layers": layers,
            "vocab_size": vocab,
        },
        "torch_dtype": "float32",
        "transformers_version": "4.37.0.dev0",
        "vision_config": {
            **tower,
            "image_size": image,
            "model_type": "siglip_vision_model",
            "num_hidden_layers": layers,
            "patch_size": 16,
        },
    }


SENTENCES = (
    "open the drawer",
    "close the drawer",
    "pick up the red block",
    "put the red block in the top drawer",
    "push the green button",
    "the robot opens the drawer",
)


def hf_shapes(layers: int = LAYERS, config: dict | None = None) -> dict[str, tuple[int, ...]]:
    """HF SiglipModel's state-dict names and torch shapes for `config` (default
    hf_config(layers)), written out by hand; keys the config leaves out take HF's defaults."""
    config = hf_config(layers) if config is None else config
    text = {**HF_TEXT_DEFAULTS, **config.get("text_config", {})}
    vision = {**HF_VISION_DEFAULTS, **config.get("vision_config", {})}
    shapes = {"logit_scale": (1,), "logit_bias": (1,)}

    def layer_norm(name, d):
        shapes[f"{name}.weight"] = (d,)
        shapes[f"{name}.bias"] = (d,)

    def linear(name, n_out, n_in):
        shapes[f"{name}.weight"] = (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)

    def mlp(name, d, inter):
        linear(f"{name}.fc1", inter, d)
        linear(f"{name}.fc2", d, inter)

    for tower, sizes in (("vision_model", vision), ("text_model", text)):
        d, inter = sizes["hidden_size"], sizes["intermediate_size"]
        for i in range(sizes["num_hidden_layers"]):
            p = f"{tower}.encoder.layers.{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                linear(f"{p}.self_attn.{proj}", d, d)
            layer_norm(f"{p}.layer_norm1", d)
            layer_norm(f"{p}.layer_norm2", d)
            mlp(f"{p}.mlp", d, inter)
    d, inter, patch = vision["hidden_size"], vision["intermediate_size"], vision["patch_size"]
    shapes["vision_model.embeddings.patch_embedding.weight"] = (d, 3, patch, patch)
    shapes["vision_model.embeddings.patch_embedding.bias"] = (d,)
    n_patches = (vision["image_size"] // patch) ** 2
    shapes["vision_model.embeddings.position_embedding.weight"] = (n_patches, d)
    layer_norm("vision_model.post_layernorm", d)
    shapes["vision_model.head.probe"] = (1, 1, d)
    shapes["vision_model.head.attention.in_proj_weight"] = (3 * d, d)
    shapes["vision_model.head.attention.in_proj_bias"] = (3 * d,)
    linear("vision_model.head.attention.out_proj", d, d)
    layer_norm("vision_model.head.layernorm", d)
    mlp("vision_model.head.mlp", d, inter)
    d = text["hidden_size"]
    shapes["text_model.embeddings.token_embedding.weight"] = (text["vocab_size"], d)
    shapes["text_model.embeddings.position_embedding.weight"] = (text["max_position_embeddings"], d)
    layer_norm("text_model.final_layer_norm", d)
    linear("text_model.head", d, d)
    return shapes


def random_tensors(
    seed: int = 0, layers: int = LAYERS, config: dict | None = None, std: float = 0.3
) -> dict[str, np.ndarray]:
    """Random float32 weights for every tensor of hf_shapes(layers, config): normal(0, std),
    norm weights 1 + normal(0, std / 10); logit scale log(10), bias -2."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in hf_shapes(layers, config).items():
        x = rng.normal(0.0, std, shape)
        if "norm" in name and name.endswith(".weight"):
            x = 1.0 + 0.1 * x
        out[name] = x.astype(np.float32)
    out["logit_scale"] = np.array([np.log(10.0)], np.float32)
    out["logit_bias"] = np.array([-2.0], np.float32)
    return out


def write_checkpoint(
    directory: str | Path, tensors: dict[str, np.ndarray], config: dict = CONFIG
) -> Path:
    """Write `config` as config.json and `tensors` as model.safetensors into `directory`."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def write_spiece_tokenizer(
    directory: str | Path, sentences: Sequence[str] = SENTENCES, max_length: int = MAX_POS
) -> bytes:
    """Train a tiny SentencePiece unigram model on `sentences` (pad 0, eos 1, unk 2, ids < VOCAB)
    and write it as HF SiglipTokenizer files: spiece.model, tokenizer_config.json,
    special_tokens_map.json. Returns the serialized model."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences) * 3),
        model_writer=model,
        vocab_size=60,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spiece.model").write_bytes(model.getvalue())
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "SiglipTokenizer",
                "do_lower_case": True,
                "model_max_length": max_length,
                "model_input_names": ["input_ids"],
                "eos_token": "</s>",
                "pad_token": "</s>",
                "unk_token": "<unk>",
            }
        )
    )
    special = {"content": "</s>", "lstrip": True, "rstrip": True, "normalized": False}
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": special, "pad_token": special, "unk_token": "<unk>"})
    )
    return model.getvalue()


def write_tiny_siglip(
    directory: str | Path,
    seed: int = 0,
    sentences: Sequence[str] = SENTENCES,
    layers: int = LAYERS,
) -> Path:
    """A complete tiny HF SigLIP directory (random_tensors(seed, layers) + a SentencePiece
    tokenizer trained on `sentences`), as `load_hf` and `load_tokenizer` read it."""
    directory = write_checkpoint(directory, random_tensors(seed, layers), hf_config(layers))
    write_spiece_tokenizer(directory, sentences)
    return directory


def write_preprocessor_config(directory: str | Path, image_size: int) -> Path:
    """google/siglip-base-patch16-224's preprocessor_config.json at `image_size`: bicubic
    resize to a square, x / 255, then (x - 0.5) / 0.5."""
    path = Path(directory) / "preprocessor_config.json"
    path.write_text(
        json.dumps(
            {
                "do_normalize": True,
                "do_rescale": True,
                "do_resize": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "SiglipImageProcessor",
                "image_std": [0.5, 0.5, 0.5],
                "processor_class": "SiglipProcessor",
                "resample": 3,
                "rescale_factor": 1 / 255,
                "size": {"height": image_size, "width": image_size},
            }
        )
    )
    return path


def write_base_siglip(
    directory: str | Path,
    seed: int = 0,
    config: dict | None = None,
    sentences: Sequence[str] = SENTENCES,
) -> Path:
    """A scaled-down google/siglip-base-patch16-224 directory: base_config() (or `config`),
    random weights with std 1 / sqrt(width) (so activations stay O(1) at any width), the
    SentencePiece tokenizer files with model_max_length BASE_MAX_LENGTH and the preprocessor
    config, as HF's SiglipModel / SiglipTokenizer / SiglipImageProcessorPil and our load_hf /
    load_tokenizer read them."""
    config = base_config() if config is None else config
    std = 1 / math.sqrt(config["vision_config"]["hidden_size"])
    directory = write_checkpoint(directory, random_tensors(seed, config=config, std=std), config)
    write_spiece_tokenizer(directory, sentences, max_length=BASE_MAX_LENGTH)
    write_preprocessor_config(directory, config["vision_config"]["image_size"])
    return directory
