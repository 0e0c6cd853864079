"""SigLIP in NNX against checkpoints written in HF's exact format with tiny random weights, and
against a NumPy forward pass written from HF's tensor names (torch layouts, NCHW images)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from robolearn.reward_models.siglip import (
    SiglipFormatError,
    VLMSuccessClassifier,
    load_hf,
    load_tokenizer,
    make_success_logit_fn,
    read_config,
    save_hf,
    testing,
    trainable_filter,
)
from robolearn.reward_models.siglip.testing import (
    CONFIG,
    HEADS,
    IMAGE,
    LAYERS,
    MAX_POS,
    PATCH,
    VOCAB,
    D,
    random_tensors,
    write_checkpoint,
    write_spiece_tokenizer,
)
from safetensors.numpy import load_file

EPS = 1e-6  # HF's default layer_norm_eps; testing.CONFIG leaves it out on purpose


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    tensors = random_tensors()
    return write_checkpoint(tmp_path_factory.mktemp("siglip"), tensors), tensors


@pytest.fixture(scope="module")
def model(ckpt):
    return load_hf(ckpt[0])


# NumPy reference, float64, straight from HF names and torch layouts.


def _ln(x, t, name):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * t[f"{name}.weight"] + t[f"{name}.bias"]


def _lin(x, t, name):
    return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _mha(q_in, kv_in, wq, bq, wk, bk, wv, bv, wo, bo):
    def heads(x):
        b, n, _ = x.shape
        return x.reshape(b, n, HEADS, D // HEADS).transpose(0, 2, 1, 3)

    q, k, v = heads(q_in @ wq.T + bq), heads(kv_in @ wk.T + bk), heads(kv_in @ wv.T + bv)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D // HEADS)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    o = (w @ v).transpose(0, 2, 1, 3).reshape(q_in.shape[0], q_in.shape[1], D)
    return o @ wo.T + bo


def _mlp(x, t, name):
    return _lin(_gelu_tanh(_lin(x, t, f"{name}.fc1")), t, f"{name}.fc2")


def _encoder(x, t, tower):
    for i in range(LAYERS):
        p = f"{tower}.encoder.layers.{i}"
        h = _ln(x, t, f"{p}.layer_norm1")
        a = f"{p}.self_attn"
        args = [t[f"{a}.{n}_proj.{w}"] for n in ("q", "k", "v", "out") for w in ("weight", "bias")]
        x = x + _mha(h, h, *args)
        x = x + _mlp(_ln(x, t, f"{p}.layer_norm2"), t, f"{p}.mlp")
    return x


def _np_vision_embeddings(pixels_nchw, t):
    w = t["vision_model.embeddings.patch_embedding.weight"]  # [D, C, p, p]
    g = IMAGE // PATCH
    patches = []
    for i in range(g):  # row-major over the patch grid, as torch's flatten(2)
        for j in range(g):
            crop = pixels_nchw[:, :, i * PATCH : (i + 1) * PATCH, j * PATCH : (j + 1) * PATCH]
            patches.append(np.einsum("bchw,dchw->bd", crop, w))
    x = np.stack(patches, 1) + t["vision_model.embeddings.patch_embedding.bias"]
    return x + t["vision_model.embeddings.position_embedding.weight"]


def _np_image_features(pixels_nchw, t):
    t = {k: v.astype(np.float64) for k, v in t.items()}
    x = _encoder(_np_vision_embeddings(pixels_nchw.astype(np.float64), t), t, "vision_model")
    x = _ln(x, t, "vision_model.post_layernorm")
    h = "vision_model.head"
    wq, wk, wv = np.split(t[f"{h}.attention.in_proj_weight"], 3)
    bq, bk, bv = np.split(t[f"{h}.attention.in_proj_bias"], 3)
    wo, bo = t[f"{h}.attention.out_proj.weight"], t[f"{h}.attention.out_proj.bias"]
    probe = np.repeat(t[f"{h}.probe"], x.shape[0], 0)
    y = _mha(probe, x, wq, bq, wk, bk, wv, bv, wo, bo)
    y = y + _mlp(_ln(y, t, f"{h}.layernorm"), t, f"{h}.mlp")
    return y[:, 0]


def _np_text_features(ids, t):
    t = {k: v.astype(np.float64) for k, v in t.items()}
    x = t["text_model.embeddings.token_embedding.weight"][ids]
    x = x + t["text_model.embeddings.position_embedding.weight"][: ids.shape[1]]
    x = _ln(_encoder(x, t, "text_model"), t, "text_model.final_layer_norm")
    return _lin(x[:, -1], t, "text_model.head")


@nnx.jit
def _forward(model, pixels, ids):
    """(image features, text features, logits) in one compiled call; tests share its cache."""
    return model.image_features(pixels), model.text_features(ids), model(pixels, ids)


def _pixels(b=2, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (b, IMAGE, IMAGE, 3)).astype(np.float32)


def _ids(b=2, seed=2):
    return np.random.default_rng(seed).integers(0, VOCAB, (b, MAX_POS)).astype(np.int32)


def test_vision_embeddings_match_a_hand_written_patch_conv(model, ckpt):
    pixels = _pixels()
    got = model.vision_model.embeddings(jnp.asarray(pixels))
    want = _np_vision_embeddings(pixels.transpose(0, 3, 1, 2).astype(np.float64), ckpt[1])
    assert got.shape == (2, (IMAGE // PATCH) ** 2, D)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_towers_and_logits_match_numpy_reference(model, ckpt):
    tensors = ckpt[1]
    pixels, ids = _pixels(), _ids()
    image = _np_image_features(pixels.transpose(0, 3, 1, 2), tensors)
    text = _np_text_features(ids, tensors)
    got_image, got_text, got_logits = _forward(model, jnp.asarray(pixels), jnp.asarray(ids))
    np.testing.assert_allclose(got_image, image, atol=2e-4)
    np.testing.assert_allclose(got_text, text, atol=2e-4)
    image /= np.linalg.norm(image, axis=-1, keepdims=True)
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    np.testing.assert_allclose(got_logits, image @ text.T * 10.0 - 2.0, atol=1e-4)


def test_pooling_and_attention_shapes(model):
    pixels = jax.ShapeDtypeStruct((3, IMAGE, IMAGE, 3), jnp.float32)
    ids = jax.ShapeDtypeStruct((2, 5), jnp.int32)
    tokens = nnx.eval_shape(lambda m, x: m.vision_model.tokens(x), model, pixels)
    assert tokens.shape == (3, (IMAGE // PATCH) ** 2, D)
    assert nnx.eval_shape(lambda m, t: m.vision_model.head(t), model, tokens).shape == (3, D)
    assert model.vision_model.head.probe.shape == (1, 1, D)
    assert nnx.eval_shape(lambda m, i: m.text_features(i), model, ids).shape == (2, D)
    assert nnx.eval_shape(lambda m, x, i: m(x, i), model, pixels, ids).shape == (3, 2)


def test_save_reload_is_bit_exact(model, ckpt, tmp_path):
    directory, tensors = ckpt
    save_hf(model, tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert saved.keys() == tensors.keys()
    for name, value in tensors.items():
        assert saved[name].dtype == np.float32
        np.testing.assert_array_equal(saved[name], value, err_msg=name)
    assert read_config(tmp_path) == read_config(directory)
    pixels, ids = jnp.asarray(_pixels()), jnp.asarray(_ids())
    reloaded = _forward(load_hf(tmp_path), pixels, ids)
    for got, want in zip(reloaded, _forward(model, pixels, ids), strict=True):
        np.testing.assert_array_equal(got, want)


def test_half_precision_tensors_are_cast_to_float32(ckpt, tmp_path):
    import ml_dtypes

    half = {
        k: v.astype(ml_dtypes.bfloat16 if i % 2 else np.float16)
        for i, (k, v) in enumerate(ckpt[1].items())
    }
    loaded = load_hf(write_checkpoint(tmp_path, half))
    saved = save_hf(loaded, tmp_path / "out") / "model.safetensors"
    for name, value in load_file(str(saved)).items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, half[name].astype(np.float32), err_msg=name)


@pytest.fixture(scope="module")
def classifier(model):
    return VLMSuccessClassifier(model, rngs=nnx.Rngs(0))


def _images(b=2, h=20, w=28, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def test_classifier_resizes_and_starts_at_the_siglip_logit(classifier, model):
    images, ids = jnp.asarray(_images()), jnp.asarray(np.repeat(_ids(1), 2, 0))
    pixels = classifier.preprocess(images)
    assert pixels.shape == (2, IMAGE, IMAGE, 3)
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
    same_size = jnp.asarray(_images(2, IMAGE, IMAGE))
    expected = same_size.astype(jnp.float32) / 127.5 - 1.0
    np.testing.assert_allclose(classifier.preprocess(same_size), expected, atol=1e-6)
    logits = make_success_logit_fn(classifier, ids[0])(images)
    assert logits.shape == (2,) and bool(jnp.all(jnp.isfinite(logits)))
    np.testing.assert_allclose(logits, np.diag(_forward(model, pixels, ids)[2]), atol=1e-5)


def _paths(module, flt):
    return {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(module, flt))}


def test_trainable_filter_selects_the_head_or_everything(classifier):
    head = _paths(classifier, trainable_filter())
    everything = _paths(classifier, nnx.Param)
    assert head and all(p.startswith("success_head.") for p in head)
    assert head == {p for p in everything if p.startswith("success_head.")}
    assert _paths(classifier, trainable_filter(finetune_towers=True)) == everything


def test_gradient_step_changes_only_the_head(model):
    clf = VLMSuccessClassifier(model, rngs=nnx.Rngs(1))
    towers_before = nnx.to_pure_dict(nnx.state(clf.towers, nnx.Param))
    head_before = nnx.to_pure_dict(nnx.state(clf.success_head, nnx.Param))
    optimizer = nnx.Optimizer(clf, optax.sgd(0.1), wrt=trainable_filter())
    images, ids = jnp.asarray(_images()), jnp.asarray(_ids())

    @nnx.jit
    def step(clf, optimizer, labels):
        def loss(m):
            logits = m(images, ids)
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean(), logits

        diff = nnx.DiffState(0, trainable_filter())
        grads, logits = nnx.grad(loss, argnums=diff, has_aux=True)(clf)
        optimizer.update(clf, grads)
        return logits

    logits = step(clf, optimizer, jnp.array([1.0, 0.0]))
    siglip = np.diag(_forward(model, clf.preprocess(images), ids)[2])
    np.testing.assert_allclose(logits, siglip, atol=1e-5)  # the head starts at SigLIP's logit
    towers_after = nnx.to_pure_dict(nnx.state(clf.towers, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, towers_after, towers_before)
    head_after = nnx.to_pure_dict(nnx.state(clf.success_head, nnx.Param))
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), head_after, head_before)
    assert changed["fc2"]["kernel"] and changed["logit_bias"]


# Tokenizers in the shipped formats.

SENTENCES = list(testing.SENTENCES) * 3


@pytest.fixture(scope="module")
def spiece_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("spiece")
    return directory, write_spiece_tokenizer(directory)


def test_sentencepiece_tokenizer_follows_siglip_tokenizer(spiece_dir):
    import sentencepiece as spm

    directory, proto = spiece_dir
    tok = load_tokenizer(directory)
    ids = tok.tokenize(["Open the  DRAWER!", "open the drawer", "close, the drawer."])
    assert ids.dtype == np.int32 and ids.shape == (3, MAX_POS)
    # Canonical text through the model's own dummy prefix, then eos, then pad (= eos, id 1).
    plain = spm.SentencePieceProcessor()
    plain.LoadFromSerializedProto(proto)
    want = plain.encode("open the drawer") + [1]
    np.testing.assert_array_equal(ids[0], want + [1] * (MAX_POS - len(want)))
    np.testing.assert_array_equal(ids[0], ids[1])
    assert ids[2, : len(plain.encode("close the drawer"))].tolist() == plain.encode(
        "close the drawer"
    )
    long = tok.tokenize(" ".join(SENTENCES))
    assert long.shape == (1, MAX_POS) and long[0, -1] == 1 and (long[0, :-1] != 1).all()
    assert load_tokenizer(directory, max_length=8).tokenize("open").shape == (1, 8)


def test_tokenizer_json_pads_and_truncates(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = sorted({w for s in SENTENCES for w in s.split()})
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", special_tokens=[("<eos>", 1)]
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<pad>"}))
    ids = load_tokenizer(tmp_path, max_length=6).tokenize(["open the drawer", "Open"])
    o, t, d = vocab["open"], vocab["the"], vocab["drawer"]
    np.testing.assert_array_equal(ids, [[o, t, d, 1, 0, 0], [2, 1, 0, 0, 0, 0]])
    lowered = load_tokenizer(tmp_path, max_length=3, lowercase=True).tokenize("Open the drawer")
    np.testing.assert_array_equal(lowered, [[o, t, 1]])


# Bad inputs: one line naming the problem.


def _one_line_error(fn, *needles):
    with pytest.raises(SiglipFormatError) as e:
        fn()
    message = str(e.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_missing_files_are_named(ckpt, tmp_path):
    _one_line_error(lambda: load_hf(tmp_path), "config.json", "not found")
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    _one_line_error(lambda: load_hf(tmp_path), "model.safetensors", "not found")
    _one_line_error(lambda: load_tokenizer(tmp_path), "no tokenizer", "spiece.model")
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    _one_line_error(lambda: load_hf(tmp_path), "model.safetensors", "not a readable")


def test_bad_tensors_are_named(ckpt, tmp_path):
    tensors = dict(ckpt[1])
    name = "vision_model.encoder.layers.1.mlp.fc1.weight"
    tensors[name] = tensors[name].T.copy()
    write_checkpoint(tmp_path / "shape", tensors)
    _one_line_error(lambda: load_hf(tmp_path / "shape"), name, "(32, 64)", "(64, 32)")

    tensors = dict(ckpt[1])
    del tensors["vision_model.head.attention.in_proj_bias"]
    write_checkpoint(tmp_path / "missing", tensors)
    _one_line_error(lambda: load_hf(tmp_path / "missing"), "missing 1", "in_proj_bias")

    tensors = dict(ckpt[1]) | {"classifier.weight": np.zeros((2, D), np.float32)}
    write_checkpoint(tmp_path / "extra", tensors)
    _one_line_error(lambda: load_hf(tmp_path / "extra"), "unexpected", "classifier.weight")
    assert load_hf(tmp_path / "extra", strict=False) is not None

    bad = json.loads(json.dumps(CONFIG))
    bad["vision_config"]["patch_size"] = "8"
    write_checkpoint(tmp_path / "config", ckpt[1], bad)
    _one_line_error(lambda: load_hf(tmp_path / "config"), "vision_config.patch_size")
