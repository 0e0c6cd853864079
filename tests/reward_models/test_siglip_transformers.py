"""Our SigLIP against the reference implementation: transformers' SiglipModel, SiglipTokenizer
and SiglipProcessor (torch, CPU, eval mode, eager attention) reading the same Hugging Face
directory as load_hf and load_tokenizer.

The directory (testing.write_base_siglip) is google/siglip-base-patch16-224's file set scaled
down: its config.json keys (hidden_act, layer_norm_eps and the 64 text positions left to HF's
defaults as there), patch 16 on 64 x 64 images, 2 layers of width 64 with 4 heads, a
SentencePiece tokenizer with model_max_length 64, its preprocessor config; random weights.

Tolerances, float32 on both sides: atol 1e-5 + rtol 1e-5 on the embeddings (entries up to ~4)
and atol 1e-5 on the logits (10 * cos - 2). torch and XLA sum in different orders: measured worst
2.7e-6 on the embeddings and 1.2e-6 on the logits. Eager and SDPA attention in transformers agree
with ours equally.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from robolearn.reward_models.siglip import VLMSuccessClassifier, load_hf, load_tokenizer, testing
from transformers import AutoProcessor, SiglipTokenizer
from transformers import SiglipModel as HFSiglipModel

TEXTS = [
    "Open the Drawer!",
    "  close   the\tdrawer.  ",
    "pick up the RED block, then push the green button?",
    "zebra xylophone café don't",  # pieces outside the tiny vocabulary, an apostrophe
    "",
    " ".join(testing.SENTENCES) * 3,  # longer than the 64 tokens: truncated, eos kept
]
IMAGES = 3


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return testing.write_base_siglip(tmp_path_factory.mktemp("siglip-base"))


@pytest.fixture(scope="module")
def hf(base_dir):
    model, info = HFSiglipModel.from_pretrained(
        base_dir, attn_implementation="eager", output_loading_info=True
    )
    # A tensor transformers did not read would be left at its random init: none may be.
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    return model.eval()


@pytest.fixture(scope="module")
def ours(base_dir):
    return load_hf(base_dir)


@nnx.jit
def _forward(model, pixels, ids):
    """(image features, text features, logits_per_image): one compiled call for every test."""
    return model.image_features(pixels), model.text_features(ids), model(pixels, ids)


def _hf_ids(base_dir) -> np.ndarray:
    tokenizer = SiglipTokenizer.from_pretrained(base_dir)
    # As SigLIP was trained and HF's model card calls it: padded to max_length, no mask.
    encoded = tokenizer(TEXTS, padding="max_length", truncation=True, return_tensors="np")
    assert list(encoded) == ["input_ids"]
    return encoded["input_ids"]


def _close(got, want, atol=1e-5, rtol=1e-5):
    np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=atol)


def test_both_read_the_base_models_settings(hf, ours, base_dir):
    """The defaults the real config.json relies on resolve the same way in both readers."""
    for tower in (hf.config.text_config, hf.config.vision_config):
        assert tower.hidden_act == "gelu_pytorch_tanh" and tower.layer_norm_eps == 1e-6
    assert hf.config.vision_config.patch_size == 16
    max_length = SiglipTokenizer.from_pretrained(base_dir).model_max_length
    assert hf.config.text_config.max_position_embeddings == max_length == 64
    pairs = (
        (ours.config.text, hf.config.text_config),
        (ours.config.vision, hf.config.vision_config),
    )
    for mine, theirs in pairs:
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "hidden_act"):
            assert getattr(mine, key) == getattr(theirs, key), key
        assert mine.layer_norm_eps == theirs.layer_norm_eps
    assert load_tokenizer(base_dir).max_length == max_length


def test_token_ids_match_siglip_tokenizer(base_dir):
    """Case, punctuation, runs of whitespace, unknown pieces, an empty and an over-long text."""
    want = _hf_ids(base_dir)
    untruncated = SiglipTokenizer.from_pretrained(base_dir)(TEXTS[-1])["input_ids"]
    assert len(untruncated) > 64 and want.shape == (len(TEXTS), 64)
    np.testing.assert_array_equal(load_tokenizer(base_dir).tokenize(TEXTS), want)


def test_embeddings_and_logits_match_transformers(hf, ours, base_dir):
    """get_image_features / get_text_features (pooler outputs) and logits_per_image on the
    same inputs: pixels in [-1, 1], ours NHWC, transformers' pixel_values NCHW."""
    pixels = np.random.default_rng(0).uniform(-1, 1, (IMAGES, 64, 64, 3)).astype(np.float32)
    ids = _hf_ids(base_dir)
    image, text, logits = _forward(ours, jnp.asarray(pixels), jnp.asarray(ids))
    with torch.no_grad():
        pixel_values = torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy())
        input_ids = torch.from_numpy(ids).long()
        want_image = hf.get_image_features(pixel_values=pixel_values).pooler_output.numpy()
        want_text = hf.get_text_features(input_ids=input_ids).pooler_output.numpy()
        want_logits = hf(input_ids=input_ids, pixel_values=pixel_values).logits_per_image
    assert np.abs(want_image).mean() > 0.1 and np.abs(want_text).mean() > 0.1
    _close(image, want_image)
    _close(text, want_text)
    assert want_logits.shape == (IMAGES, len(TEXTS)) and float(want_logits.std()) > 0.2
    _close(logits, want_logits.numpy(), rtol=0)


def test_uint8_images_through_our_preprocessing_match_siglip_processor(hf, ours, base_dir):
    """uint8 frames at the model's size: VLMSuccessClassifier.preprocess == SiglipProcessor's
    pixel_values (x / 255, then (x - 0.5) / 0.5; no resize is involved: ours is bilinear, HF's
    bicubic, see classifier.py), and the logits of the whole pipeline agree."""
    images = np.random.default_rng(1).integers(0, 256, (IMAGES, 64, 64, 3), dtype=np.uint8)
    processor = AutoProcessor.from_pretrained(base_dir)
    inputs = processor(
        text=TEXTS, images=list(images), padding="max_length", truncation=True, return_tensors="pt"
    )
    assert sorted(inputs) == ["input_ids", "pixel_values"]  # no attention mask, as ours
    pixels = VLMSuccessClassifier(ours, rngs=nnx.Rngs(0)).preprocess(jnp.asarray(images))
    want_pixels = inputs["pixel_values"].numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(pixels), want_pixels, rtol=0, atol=1e-6)
    ids = load_tokenizer(base_dir).tokenize(TEXTS)
    np.testing.assert_array_equal(ids, inputs["input_ids"].numpy())
    with torch.no_grad():
        want = hf(**inputs).logits_per_image.numpy()
    _close(_forward(ours, pixels, jnp.asarray(ids))[2], want, rtol=0)
