"""`robolearn train reward --kind siglip` end to end on a tiny HF-format SigLIP
(robolearn.reward_models.siglip.testing) and a tiny random store: a self-contained checkpoint, the
jitted
reward function, frozen or fine-tuned towers, one-line errors for bad SigLIP directories."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from robolearn.reward_models.checkpoint import (
    load_reward_model,
    make_checkpoint_classifier,
    read_config,
    read_info,
)
from robolearn.reward_models.siglip import SiglipModel, hf_state_dict
from robolearn.reward_models.siglip import read_config as read_siglip_config
from robolearn.reward_models.siglip.testing import SENTENCES, random_tensors, write_tiny_siglip

from robolearn.cli import main
from robolearn.data.synthetic import write_random_store

SIZE = 16  # frames are resized to the towers' 32 px inside the classifier
SHAPE = (SIZE, SIZE, 3)
INSTRUCTION = "synthetic data"  # write_random_store's instruction
LAYERS = 1  # per tower: compiling the backward pass through the towers dominates the run time


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("siglip_reward")
    source = write_tiny_siglip(root / "hf", sentences=(*SENTENCES, INSTRUCTION), layers=LAYERS)
    data = write_random_store(root / "data", 6, steps=16, image_size=SIZE, successes=True)
    return root, source, data


def train(out, source, data, extra=()):
    argv = ["train", "reward", "--kind", "siglip", "--preset", "tiny", "--steps", "3"]
    argv += ["--batch-size", "8", "--val-fraction", "0.3", "--data", str(data)]
    if source is not None:
        argv += ["--siglip", str(source)]
    return main([*argv, "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def frozen(stores):
    """Trained with frozen towers from a copy of the SigLIP directory, which is then deleted."""
    root, source, data = stores
    copy = shutil.copytree(source, root / "hf_copy")
    assert train(root / "frozen", copy, data) == 0
    shutil.rmtree(copy)
    return root / "frozen"


def _towers(run, params) -> dict[str, np.ndarray]:
    """HF state dict of the towers in the params of siglip reward checkpoint `run`."""
    state = params["towers"]["towers"]
    config = read_siglip_config(run / "siglip")
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: SiglipModel(config, nnx.Rngs(0))))
    return hf_state_dict(nnx.merge(graphdef, state))


def _frames(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def test_checkpoint_is_self_contained_and_its_jitted_logit_fn_matches_prob(frozen):
    info = read_info(frozen)
    cfg, _ = read_config(frozen)
    assert info.kind == "siglip" and info.instructions == {"drawer": INSTRUCTION}
    assert cfg.siglip.max_text_length == 16 and not cfg.siglip.finetune_towers
    assert cfg.siglip.source.endswith("hf_copy")  # recorded, deleted, not needed
    for name in ("config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"):
        assert (frozen / "siglip" / name).is_file()
    model = load_reward_model(frozen)
    frames = _frames()
    prob = model.prob(frames)
    assert prob.shape == (4,) and np.all((prob > 0) & (prob < 1))
    fn = model.make_logit_fn()

    @jax.jit
    def scanned(params, images):  # as PPO refinement runs it: inside lax.scan, params passed in
        return jax.lax.scan(lambda c, x: (c, fn(params, x)), 0, images.reshape(2, 2, *SHAPE))[1]

    logits = np.asarray(scanned(model.params, frames)).reshape(4)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(1 / (1 + np.exp(-logits.astype(np.float64))), prob, atol=1e-6)
    # The precomputed instruction embedding gives the classifier's plain-instruction logits;
    # training prompts are paraphrases drawn with the step's rng: other texts, other logits.
    classifier = make_checkpoint_classifier(frozen, cfg, info)

    @jax.jit
    def plain_and_drawn(params, images, task, rng):
        return classifier.logits(params, images, task), classifier.logits(params, images, task, rng)

    plain, drawn = plain_and_drawn(model.params, frames, jnp.zeros(4, jnp.int32), jax.random.key(3))
    plain, drawn = np.asarray(plain) / info.temperature, np.asarray(drawn) / info.temperature
    np.testing.assert_allclose(logits, plain, rtol=1e-5, atol=1e-5)
    assert not np.allclose(drawn, plain)


def test_frozen_towers_stay_bit_identical_while_the_head_trains(frozen):
    params = load_reward_model(frozen).params
    assert set(params) == {"head", "towers"}
    source = random_tensors(layers=LAYERS)  # what write_tiny_siglip wrote
    towers = _towers(frozen, params)
    assert towers.keys() == source.keys()
    for name, value in towers.items():
        np.testing.assert_array_equal(value, source[name], err_msg=name)
    fc2 = np.asarray(params["head"]["success_head"]["fc2"]["kernel"][...])
    assert np.any(fc2 != 0)  # initialised to zero: trained


def test_finetune_towers_trains_a_tower_weight(stores):
    root, source, data = stores
    run = root / "finetuned"
    assert train(run, source, data, extra=["--finetune-towers", "--steps", "2"]) == 0
    assert read_config(run)[0].siglip.finetune_towers
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    towers = _towers(run, load_reward_model(run).params)
    assert not np.array_equal(towers[name], random_tensors(layers=LAYERS)[name])
    assert (run / "siglip" / "model.safetensors").read_bytes() == (
        source / "model.safetensors"
    ).read_bytes()  # the starting point, kept; the fine-tuned towers are in orbax


def _error(out, source, data, capsys, extra=()):
    assert train(out, source, data, extra=extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_bad_siglip_inputs_are_one_line_errors(stores, tmp_path, capsys):
    root, source, data = stores
    assert "--kind siglip needs --siglip DIR" in _error(tmp_path / "o1", None, data, capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _error(tmp_path / "o2", empty, data, capsys)
    assert "config.json: not found" in err and "SigLIP checkpoint directory" in err
    (empty / "config.json").write_text(json.dumps({"model_type": "clip"}))
    assert "only SigLIP" in _error(tmp_path / "o2", empty, data, capsys)
    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(source / name, no_tokenizer / name)
    err = _error(tmp_path / "o3", no_tokenizer, data, capsys)
    assert "no tokenizer found" in err and "spiece.model" in err
    assert not any((tmp_path / "o3").iterdir())  # checked before anything is written
    err = _error(tmp_path / "o4", source, data, capsys, extra=["--kind", "cnn"])
    assert "go with --kind siglip" in err
