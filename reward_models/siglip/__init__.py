"""SigLIP (v1, Hugging Face `SiglipModel` format) towers in Flax NNX and a VLM success classifier.

    towers = load_hf("siglip-base-patch16-224/")          # config.json + model.safetensors
    tokenizer = load_tokenizer("siglip-base-patch16-224/")  # spiece.model or tokenizer.json
    clf = VLMSuccessClassifier(towers, rngs=nnx.Rngs(0))
    logits = clf(images_uint8, tokenizer.tokenize(["open the drawer"]))   # [B]

Modules: config (dataclasses, config.json), model (towers), load (safetensors <-> NNX),
tokenizer, classifier (head, trainable filter, per-instruction reward function), testing (tiny
HF-format checkpoints for tests and examples; not imported here).
"""

from robolearn.reward_models.siglip.classifier import (
    HeadConfig,
    SuccessHead,
    VLMSuccessClassifier,
    make_success_logit_fn,
    trainable_filter,
)
from robolearn.reward_models.siglip.config import (
    SiglipConfig,
    SiglipFormatError,
    SiglipTextConfig,
    SiglipVisionConfig,
)
from robolearn.reward_models.siglip.load import (
    copy_hf,
    hf_state_dict,
    load_hf,
    read_config,
    save_hf,
)
from robolearn.reward_models.siglip.model import SiglipModel
from robolearn.reward_models.siglip.tokenizer import (
    JsonTokenizer,
    SentencePieceTokenizer,
    canonicalize_text,
    load_tokenizer,
)

__all__ = [
    "HeadConfig",
    "JsonTokenizer",
    "SentencePieceTokenizer",
    "SiglipConfig",
    "SiglipFormatError",
    "SiglipModel",
    "SiglipTextConfig",
    "SiglipVisionConfig",
    "SuccessHead",
    "VLMSuccessClassifier",
    "canonicalize_text",
    "copy_hf",
    "hf_state_dict",
    "load_hf",
    "load_tokenizer",
    "make_success_logit_fn",
    "read_config",
    "save_hf",
    "trainable_filter",
]
