"""Hostile world-model checkpoints: the readers shared with policies (robolearn.core.checkpoint)
refuse a malformed marker, config, statistics or weights with one CheckpointError line naming
the file, as tests/policies/test_policy_checkpoint_hostile.py checks in depth for policies."""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from corruptions import edit_json, edit_yaml, write
from flax import nnx
from robolearn.world_models import checkpoint as ckpt
from robolearn.world_models.config import preset
from robolearn.world_models.train import init_model

from robolearn.core.checkpoint import save_tree
from robolearn.core.normalize import NormStats

SIZE, P = 16, 7
CFG = preset("tiny", image_size=SIZE)
STATS = NormStats(np.zeros(P, np.float32), np.ones(P, np.float32), np.ones(P, np.float32))
INFO = ckpt.WorldModelInfo(("drawer",), SIZE, CFG.model.context, 7, P, weights="ema")
NOT_UTF8 = b"\xff\xfe\x80 not utf-8\n"


def _save_ema(root: Path, fill: float | None = None) -> None:
    _, state = nnx.split(init_model(CFG, jax.random.key(0)))
    if fill is not None:
        state = jax.tree.map(
            lambda x: jnp.full_like(x, fill) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            state,
        )
    shutil.rmtree(root / "checkpoints", ignore_errors=True)
    save_tree(root, {"step": jnp.asarray(0, jnp.int32), "ema": state}, 0)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A tiny world model's EMA export (what bundles ship)."""
    root = tmp_path_factory.mktemp("world-model") / "ck"
    ckpt.write_info(root, INFO, CFG, STATS)
    _save_ema(root)
    return root


def _truncate_arrays(root):
    for path in (root / "checkpoints").rglob("d/*"):
        path.write_bytes(path.read_bytes()[:10])


MARKER = ckpt.MARKER
NAN = float("nan")
CASES = {
    "marker-not-utf8": (write(MARKER, NOT_UTF8), MARKER),
    "marker-list": (write(MARKER, "[]"), MARKER),
    "marker-nan": (edit_json(MARKER, image_size=NAN), MARKER),
    "config-not-utf8": (write("config.yaml", NOT_UTF8), "config.yaml"),
    "config-empty": (write("config.yaml", ""), "config.yaml"),
    "config-negative-channels": (edit_yaml("model", channels=[-8, 16]), "config.yaml"),
    "config-zero-proprio-dim": (edit_yaml("model", proprio_dim=0), "config.yaml"),
    "config-typo": (edit_yaml("model", chanels=[8]), "config.yaml"),
    "stats-not-utf8": (write("stats.json", NOT_UTF8), "stats.json"),
    "stats-list": (write("stats.json", "[[0.0], [1.0]]"), "stats.json"),
    "stats-nan": (edit_json("stats.json", std=[NAN] * P), "stats.json"),
    "stats-zero-delta-std": (edit_json("stats.json", delta_std=[0.0] * P), "stats.json"),
    "stats-short": (
        edit_json("stats.json", mean=[0.0] * 6, std=[1.0] * 6, delta_std=[1.0] * 6),
        "stats.json",
    ),
    "weights-nan": (lambda root: _save_ema(root, NAN), "checkpoints"),
    "weights-truncated": (_truncate_arrays, "checkpoints"),
}


def test_the_intact_export_loads(export):
    model = ckpt.load_world_model(export, "drawer", 7)
    assert model.step == 0 and model.stats.delta_std.shape == (P,)


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_world_model_is_one_checkpoint_error_line(export, tmp_path, case):
    corrupt, name = CASES[case]
    root = shutil.copytree(export, tmp_path / "ck")
    corrupt(root)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_world_model(root, "drawer", 7)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and name in message, message
