"""Tiny SigLIP checkpoints for tests and examples: files in Hugging Face's exact format (the
`config.json`, `model.safetensors` and SentencePiece tokenizer files HF's SiglipModel and
SiglipTokenizer read) holding small random weights.

    directory = write_tiny_siglip(tmp_path / "siglip")    # checkpoint + tokenizer, seconds
    towers, tokenizer = load_hf(directory), load_tokenizer(directory)

The sizes are the module constants (width D, image IMAGE with patch PATCH, LAYERS layers per
tower unless `layers` says otherwise); hf_shapes() writes out HF's state-dict names and torch
shapes for them by hand, independently of load.py.
"""

from __future__ import annotations

import io
import json
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

SENTENCES = (
    "open the drawer",
    "close the drawer",
    "pick up the red block",
    "put the red block in the top drawer",
    "push the green button",
    "the robot opens the drawer",
)


def hf_shapes(layers: int = LAYERS) -> dict[str, tuple[int, ...]]:
    """HF SiglipModel's state-dict names and torch shapes for hf_config(layers), written out by
    hand."""
    shapes = {"logit_scale": (1,), "logit_bias": (1,)}

    def layer_norm(name):
        shapes[f"{name}.weight"] = (D,)
        shapes[f"{name}.bias"] = (D,)

    def linear(name, n_out, n_in):
        shapes[f"{name}.weight"] = (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)

    def mlp(name):
        linear(f"{name}.fc1", INTER, D)
        linear(f"{name}.fc2", D, INTER)

    for tower in ("vision_model", "text_model"):
        for i in range(layers):
            p = f"{tower}.encoder.layers.{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                linear(f"{p}.self_attn.{proj}", D, D)
            layer_norm(f"{p}.layer_norm1")
            layer_norm(f"{p}.layer_norm2")
            mlp(f"{p}.mlp")
    shapes["vision_model.embeddings.patch_embedding.weight"] = (D, 3, PATCH, PATCH)
    shapes["vision_model.embeddings.patch_embedding.bias"] = (D,)
    shapes["vision_model.embeddings.position_embedding.weight"] = ((IMAGE // PATCH) ** 2, D)
    layer_norm("vision_model.post_layernorm")
    shapes["vision_model.head.probe"] = (1, 1, D)
    shapes["vision_model.head.attention.in_proj_weight"] = (3 * D, D)
    shapes["vision_model.head.attention.in_proj_bias"] = (3 * D,)
    linear("vision_model.head.attention.out_proj", D, D)
    layer_norm("vision_model.head.layernorm")
    mlp("vision_model.head.mlp")
    shapes["text_model.embeddings.token_embedding.weight"] = (VOCAB, D)
    shapes["text_model.embeddings.position_embedding.weight"] = (MAX_POS, D)
    layer_norm("text_model.final_layer_norm")
    linear("text_model.head", D, D)
    return shapes


def random_tensors(seed: int = 0, layers: int = LAYERS) -> dict[str, np.ndarray]:
    """Random float32 weights for every tensor of hf_shapes(layers); logit scale log(10),
    bias -2."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in hf_shapes(layers).items():
        x = rng.normal(0.0, 0.3, shape)
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
