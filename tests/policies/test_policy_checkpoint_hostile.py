"""Hostile policy checkpoints: a small real policy export, corrupted one way per case (every
config field huge, negative, zero, mistyped or NaN; non-UTF-8 bytes; JSON of the wrong shape;
truncated or missing files; NaN, inf or wrong-length statistics; damaged orbax files). Each entry
point (the bridge's loader, load_policy, export_actor) must refuse each case with one
CheckpointError line naming the file at fault: never another exception, never a loaded policy
(which would act on NaN). Model sizes are checked before anything is built, so the 1e12-wide
cases allocate nothing."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from hardware.policy_loader import load_policy as bridge_load_policy
from robolearn.core.checkpoint import CheckpointError
from robolearn.core.config import load_yaml, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats
from robolearn.policies.bc import checkpoint as ckpt
from robolearn.policies.bc.config import BCConfig, preset
from robolearn.policies.bc.train import init_train_state
from robolearn.policies.ppo import checkpoint as ppo_ckpt
from robolearn.policies.ppo.config import PPOConfig

SIZE = 16
STATS = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32))
HUGE = 10**12
NOT_UTF8 = b"\xff\xfe\x80 not utf-8 \xc3\x28\n"
MARKER = ckpt.MARKER


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A tiny BC policy's actor-only export (what bundles ship and the robot PC loads)."""
    base = tmp_path_factory.mktemp("policy")
    cfg = preset("tiny", image_size=SIZE)
    _, state = init_train_state(cfg, jax.random.key(0))
    info = ckpt.PolicyInfo(task="drawer", action_dim=7, proprio_dim=7, image_size=SIZE)
    ckpt.write_info(base / "run", info, cfg, STATS)
    manager = ckpt.make_manager(base / "run")
    ckpt.save_state(manager, state)
    manager.close()
    return ckpt.export_actor(base / "run", base / "export")


def _config(**sections):
    """Corrupt config.yaml: sections = {"model": {"feature_dim": HUGE}, ...} (None: delete it)."""

    def corrupt(root):
        data = yaml.safe_load((root / "config.yaml").read_text())
        for section, fields in sections.items():
            if fields is None:
                del data[section]
            elif isinstance(fields, dict) and isinstance(data.get(section), dict):
                data[section].update(fields)
            else:
                data[section] = fields
        (root / "config.yaml").write_text(yaml.safe_dump(data))

    return corrupt


def _json(name, **fields):
    """Corrupt a JSON file by setting (or, with value ..., deleting) its top-level keys."""

    def corrupt(root):
        data = json.loads((root / name).read_text())
        for key, value in fields.items():
            if value is ...:
                del data[key]
            else:
                data[key] = value
        (root / name).write_text(json.dumps(data))  # json writes NaN/Infinity literals

    return corrupt


def _write(name, content):
    """Replace a file's bytes (or text)."""

    def corrupt(root):
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return corrupt


def _truncate(name):
    def corrupt(root):
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])

    return corrupt


def _remove(name):
    def corrupt(root):
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return corrupt


def _directory(name):
    def corrupt(root):
        (root / name).unlink()
        (root / name).mkdir()

    return corrupt


def _orbax_files(pattern, content=None):
    """Overwrite (content) or truncate to half every file of the saved step matching `pattern`."""

    def corrupt(root):
        files = sorted(p for p in (root / "checkpoints").rglob(pattern) if p.is_file())
        assert files, pattern
        for path in files:
            data = path.read_bytes()
            path.write_bytes(content if content is not None else data[: len(data) // 2])

    return corrupt


def _rename_step(root):
    (step,) = (root / "checkpoints").iterdir()
    step.rename(step.with_name("latest"))


def _checkpoints_is_a_file(root):
    shutil.rmtree(root / "checkpoints")
    (root / "checkpoints").write_text("not a directory\n")


def _weights(fill=None, hidden=None):
    """Replace the saved actor with NaN-filled weights, or with another architecture's."""

    def corrupt(root):
        cfg = preset("tiny", image_size=SIZE)
        if hidden is not None:
            cfg = preset("tiny", image_size=SIZE, hidden=hidden)
        _, state = init_train_state(cfg, jax.random.key(1))
        params = state.params
        if fill is not None:
            params = jax.tree.map(lambda x: x.at[...].set(fill), params)
        shutil.rmtree(root / "checkpoints")
        ckpt.save_tree(root, {"step": state.step, "params": params}, 0)

    return corrupt


MODEL_INT = ("image_size", "proprio_dim", "action_dim", "feature_dim")
MODEL_TUPLE = ("channels", "strides", "hidden")
BAD_INTS = {"huge": HUGE, "negative": -8, "zero": 0, "str": "8", "float": 8.5, "bool": True}
BAD_INTS |= {"null": None, "list": [8], "nan": float("nan")}
BAD_TUPLES = {
    "huge": [HUGE, 8],
    "negative": [-8, 8],
    "zero": [0, 8],
    "str-item": ["8", 8],
    "float-item": [8.5, 8],
    "scalar": 8,
    "empty": [],
    "null": None,
}

CASES = {}
for field in MODEL_INT:
    for how, value in BAD_INTS.items():
        CASES[f"config-{field}-{how}"] = (_config(model={field: value}), ("config.yaml", field))
for field in MODEL_TUPLE:
    for how, value in BAD_TUPLES.items():
        CASES[f"config-{field}-{how}"] = (_config(model={field: value}), ("config.yaml", field))
# No hidden layers is a valid actor, just not the one whose weights were saved.
CASES["config-hidden-empty"] = (_config(model={"hidden": []}), ("checkpoints",))
CASES |= {
    "config-strides-wider-than-image": (
        _config(model={"strides": [HUGE, 2]}),
        ("config.yaml", "strides"),
    ),
    "config-model-too-many-params": (
        _config(model={"hidden": [100_000, 100_000]}),
        ("config.yaml", "parameters"),
    ),
    "config-conv-too-many-params": (
        _config(model={"channels": [1_000_000, 1_000_000]}),
        ("config.yaml", "parameters"),
    ),
    "config-conv-too-many-activations": (
        _config(model={"channels": [4_000_000, 8], "strides": [1, 16]}),
        ("config.yaml", "activations"),
    ),
    "config-log-std-min-minus-inf": (
        _config(model={"log_std_min": float("-inf")}),
        ("config.yaml", "log_std_min"),
    ),
    "config-log-std-min-nan": (
        _config(model={"log_std_min": float("nan")}),
        ("config.yaml", "log_std"),
    ),
    "config-log-std-max-str": (_config(model={"log_std_max": "zero"}), ("config.yaml",)),
    "config-state-dependent-std-str": (
        _config(model={"state_dependent_std": "yes"}),
        ("config.yaml", "state_dependent_std"),
    ),
    "config-model-typo": (_config(model={"hiden": [32]}), ("config.yaml", "hiden")),
    "config-section-typo": (_config(modle={}), ("config.yaml", "modle")),
    "config-model-not-mapping": (_config(model=5), ("config.yaml", "model")),
    "config-model-missing": (_config(model=None), ("config.yaml", "model")),
    "config-lr-nan": (
        _config(optim={"learning_rate": float("nan")}),
        ("config.yaml", "learning_rate"),
    ),
    "config-lr-inf": (
        _config(optim={"learning_rate": float("inf")}),
        ("config.yaml", "learning_rate"),
    ),
    "config-shift-pad-negative": (
        _config(training={"shift_pad": -1}),
        ("config.yaml", "shift_pad"),
    ),
    "config-nll-beta-nan": (
        _config(training={"nll_beta": float("nan")}),
        ("config.yaml", "nll_beta"),
    ),
    "config-image-size-not-the-markers": (
        _config(model={"image_size": 32}),
        ("config.yaml", "image_size"),
    ),
    "config-action-dim-not-the-markers": (
        _config(model={"action_dim": 6}),
        ("config.yaml", "action_dim"),
    ),
    "config-proprio-dim-not-the-markers": (
        _config(model={"proprio_dim": 6}),
        ("config.yaml", "proprio_dim"),
    ),
    "config-hidden-not-the-weights": (_config(model={"hidden": [64]}), ("checkpoints",)),
    "config-not-utf8": (_write("config.yaml", NOT_UTF8), ("config.yaml", "UTF-8")),
    "config-list": (_write("config.yaml", "- 1\n- 2\n"), ("config.yaml", "mapping")),
    "config-empty": (_write("config.yaml", ""), ("config.yaml", "mapping")),
    "config-null": (_write("config.yaml", "null\n"), ("config.yaml", "mapping")),
    "config-number": (_write("config.yaml", "3\n"), ("config.yaml", "mapping")),
    "config-not-yaml": (_write("config.yaml", "model: [1, 2\n  x: {\n"), ("config.yaml",)),
    "config-python-tag": (
        _write("config.yaml", "model: !!python/object/apply:os.system ['true']\n"),
        ("config.yaml",),
    ),
    "config-truncated": (_truncate("config.yaml"), ("config.yaml",)),
    "config-missing": (_remove("config.yaml"), ("config.yaml",)),
    "config-is-a-directory": (_directory("config.yaml"), ("config.yaml",)),
}

MARKER_FIELDS = {
    "image_size": {"huge": HUGE, "negative": -16, "zero": 0, "str": "16", "float": 16.5},
    "action_dim": {"huge": HUGE, "negative": -7, "zero": 0, "bool": True},
    "proprio_dim": {"huge": HUGE, "negative": -7, "zero": 0, "nan": float("nan")},
    "task": {"int": 5, "null": None, "list": ["drawer"]},
    "kind": {"unknown": "dqn", "int": 1},
    "weights": {"unknown": "all"},
    "format": {"other": "robolearn-reward", "missing": ...},
    "version": {"2": 2, "str": "1", "bool": True, "missing": ...},
}
for field, values in MARKER_FIELDS.items():
    for how, value in values.items():
        CASES[f"marker-{field}-{how}"] = (_json(MARKER, **{field: value}), (MARKER,))
CASES |= {
    "marker-unknown-key": (_json(MARKER, taks="drawer"), (MARKER, "taks")),
    "marker-missing-key": (_json(MARKER, task=...), (MARKER, "task")),
    "marker-not-utf8": (_write(MARKER, NOT_UTF8), (MARKER, "UTF-8")),
    "marker-list": (_write(MARKER, "[1, 2]"), (MARKER,)),
    "marker-null": (_write(MARKER, "null"), (MARKER,)),
    "marker-number": (_write(MARKER, "3"), (MARKER,)),
    "marker-empty": (_write(MARKER, ""), (MARKER,)),
    "marker-truncated": (_truncate(MARKER), (MARKER,)),
    "marker-missing": (_remove(MARKER), (MARKER,)),
    "marker-is-a-directory": (_directory(MARKER), (MARKER,)),
}

NAN, INF = float("nan"), float("inf")
STATS_CASES = {
    "mean-nan": {"mean": [NAN] + [0.0] * 6},
    "std-nan": {"std": [1.0] * 6 + [NAN]},
    "mean-inf": {"mean": [INF] * 7},
    "std-inf": {"std": [1.0, INF] + [1.0] * 5},
    "mean-minus-inf": {"mean": [-INF] * 7},
    "std-zero": {"std": [0.0] * 7},
    "std-negative": {"std": [-1.0] * 7},
    "mean-overflows-float32": {"mean": [1e39] * 7},
    "mean-short": {"mean": [0.0] * 6},
    "both-short": {"mean": [0.0] * 6, "std": [1.0] * 6},
    "both-long": {"mean": [0.0] * 8, "std": [1.0] * 8},
    "both-empty": {"mean": [], "std": []},
    "mean-2d": {"mean": [[0.0] * 7]},
    "both-2d": {"mean": [[0.0] * 7], "std": [[1.0] * 7]},
    "mean-strings": {"mean": ["0"] * 7},
    "mean-bools": {"mean": [False] * 7},
    "mean-scalar": {"mean": 0.0},
    "mean-mapping": {"mean": {"x": 1}},
    "std-null": {"std": None},
    "std-missing": {"std": ...},
    "delta-std-nan": {"delta_std": [NAN] * 7},
    "delta-std-short": {"delta_std": [1.0] * 3},
    "unknown-key": {"median": [0.0] * 7},
}
for how, fields in STATS_CASES.items():
    CASES[f"stats-{how}"] = (_json("stats.json", **fields), ("stats.json",))
CASES |= {
    "stats-not-utf8": (_write("stats.json", NOT_UTF8), ("stats.json", "UTF-8")),
    "stats-list": (_write("stats.json", "[0, 1, 2]"), ("stats.json", "mapping")),
    "stats-list-of-lists": (
        _write("stats.json", json.dumps([[0.0] * 7, [1.0] * 7])),
        ("stats.json", "mapping"),
    ),
    "stats-null": (_write("stats.json", "null"), ("stats.json", "mapping")),
    "stats-number": (_write("stats.json", "7"), ("stats.json", "mapping")),
    "stats-string": (_write("stats.json", '"mean"'), ("stats.json", "mapping")),
    "stats-nan-literal": (_write("stats.json", "NaN"), ("stats.json",)),
    "stats-empty": (_write("stats.json", ""), ("stats.json",)),
    "stats-truncated": (_truncate("stats.json"), ("stats.json",)),
    "stats-missing": (_remove("stats.json"), ("stats.json",)),
    "stats-is-a-directory": (_directory("stats.json"), ("stats.json",)),
}

CASES |= {
    "orbax-no-checkpoints": (_remove("checkpoints"), ("checkpoints",)),
    "orbax-checkpoints-is-a-file": (_checkpoints_is_a_file, ("checkpoints",)),
    "orbax-step-renamed": (_rename_step, ("checkpoints",)),
    "orbax-array-data-garbage": (_orbax_files("d/*", b"\x00garbage" * 64), ("checkpoints",)),
    "orbax-array-data-truncated": (_orbax_files("d/*"), ("checkpoints",)),
    "orbax-manifest-garbage": (_orbax_files("manifest.ocdbt", b"\xffnot"), ("checkpoints",)),
    "orbax-metadata-not-utf8": (_orbax_files("_METADATA", NOT_UTF8), ("checkpoints",)),
    "orbax-metadata-list": (_orbax_files("_METADATA", b"[1, 2]"), ("checkpoints",)),
    "orbax-metadata-truncated": (_orbax_files("_METADATA"), ("checkpoints",)),
    "orbax-array-metadata-garbage": (
        _orbax_files("array_metadatas/*", b"{not json"),
        ("checkpoints",),
    ),
    "orbax-step-metadata-list": (
        _orbax_files("_CHECKPOINT_METADATA", b"[1, 2]"),
        ("checkpoints",),
    ),
    "orbax-step-metadata-wrong-type": (
        _orbax_files("_CHECKPOINT_METADATA", b'{"init_timestamp_nsecs": "x"}'),
        ("checkpoints",),
    ),
    "orbax-weights-nan": (_weights(fill=NAN), ("checkpoints", "NaN")),
    "orbax-weights-inf": (_weights(fill=INF), ("checkpoints", "NaN")),
    "orbax-weights-other-architecture": (_weights(hidden=(64,)), ("checkpoints",)),
}


def _bridge(root, tmp_path):
    return bridge_load_policy(str(root), "drawer", image_size=SIZE)


def _load(root, tmp_path):
    return ckpt.load_policy(root, "drawer", 7)


def _export(root, tmp_path):
    return ckpt.export_actor(root, tmp_path / "re-export")


ENTRIES = {"bridge": _bridge, "load_policy": _load, "export_actor": _export}


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_intact_export_loads_and_acts(export, tmp_path, entry):
    """The control: the uncorrupted copy loads through every entry point."""
    root = shutil.copytree(export, tmp_path / "ck")
    loaded = ENTRIES[entry](root, tmp_path)
    if entry == "export_actor":
        loaded = ckpt.load_policy(loaded)
    action = loaded({"image": np.zeros((SIZE, SIZE, 3), np.uint8), "proprio": np.zeros(7)})
    assert action.shape == (7,) and np.all(np.isfinite(action))


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("case", CASES)
def test_a_malformed_checkpoint_is_one_checkpoint_error_line(export, tmp_path, case, entry):
    corrupt, names = CASES[case]
    root = shutil.copytree(export, tmp_path / "ck")
    corrupt(root)
    with pytest.raises(CheckpointError) as err:
        ENTRIES[entry](root, tmp_path)
    message = str(err.value)
    assert message and len(message.splitlines()) == 1, message
    for name in names:
        assert name in message, message
    assert not (tmp_path / "re-export").exists()


PPO_CASES = {
    "not-utf8": NOT_UTF8,
    "list": b"- 1\n",
    "null": b"null\n",
    "critic-zero-stride": {"critic": {"strides": [0, 2, 2, 2]}},
    "critic-negative-width": {"critic": {"hidden": [-128, 128]}},
    "critic-huge": {"critic": {"feature_dim": HUGE}},
    "critic-typo": {"critic": {"hiden": [128]}},
    "rollouts-huge-str": {"rollouts": "1e12"},
    "gamma-nan": {"gamma": NAN},
    "target-kl-inf": {"target_kl": INF},
}


@pytest.mark.parametrize("case", PPO_CASES)
def test_a_malformed_ppo_config_is_one_checkpoint_error_line(tmp_path, case):
    ppo_ckpt.write_ppo_config(tmp_path, PPOConfig())
    content = PPO_CASES[case]
    path = tmp_path / ppo_ckpt.PPO_CONFIG
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        data = yaml.safe_load(path.read_text())
        for key, value in content.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) else value
        path.write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError) as err:
        ppo_ckpt.read_ppo_config(tmp_path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "ppo.yaml" in message, message


def test_the_intact_ppo_config_reads_back(tmp_path):
    ppo_ckpt.write_ppo_config(tmp_path, PPOConfig())
    assert ppo_ckpt.read_ppo_config(tmp_path) == PPOConfig()


def test_a_config_file_with_a_huge_model_is_refused_before_anything_is_built(tmp_path):
    """The size check is the config's: loading the YAML alone refuses it."""
    save_yaml(preset("tiny", image_size=SIZE), tmp_path / "config.yaml")
    _config(model={"feature_dim": HUGE})(tmp_path)
    with pytest.raises(ConfigError, match="parameters"):
        load_yaml(BCConfig, tmp_path / "config.yaml")
