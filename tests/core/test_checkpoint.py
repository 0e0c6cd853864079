"""robolearn.core.checkpoint: the declarative checkpoint format (marker, info, config, stats), its
one-line errors, and the helpers old layouts are migrated with."""

import dataclasses
import json

import pytest

from robolearn.core.checkpoint import (
    CheckpointError,
    CheckpointFiles,
    CheckpointFormat,
    load_config,
    move_keys,
)
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats


@dataclasses.dataclass(frozen=True)
class Info:
    tasks: tuple[str, ...]
    size: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Training:
    pad: int = 4


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class Config:
    optim: Optim = Optim()
    training: Training = Training()


def _old_layout(data):
    return move_keys(data, "optim", "training", ("pad",))


def _old_stats(data):
    return {{"m": "mean", "s": "std"}.get(k, k): v for k, v in data.items()}


FMT = CheckpointFormat("robolearn-thing", 2, Info, "thing", "robolearn train thing")
FILES = CheckpointFiles(Config, NormStats, _old_layout, _old_stats)
INFO = Info(("drawer", "push"), 64)


def _error(fn, *args) -> str:
    with pytest.raises(CheckpointError) as err:
        fn(*args)
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    return message


def _marker(root, **fields):
    root.mkdir(exist_ok=True)
    data = {"format": "robolearn-thing", "version": 2, "tasks": ["drawer"], "size": 8, **fields}
    (root / FMT.marker).write_text(json.dumps(data))
    return root


def test_info_round_trip_builds_tuples_from_lists(tmp_path):
    FMT.write_info(tmp_path, INFO)
    saved = json.loads((tmp_path / "robolearn-thing.json").read_text())
    assert saved == {"format": "robolearn-thing", "version": 2, **dataclasses.asdict(INFO)} | {
        "tasks": ["drawer", "push"]
    }
    assert FMT.read_info(tmp_path) == INFO


def test_missing_directory_and_marker(tmp_path):
    assert _error(FMT.read_info, tmp_path / "nope").endswith("no such thing checkpoint directory")
    err = _error(FMT.read_info, tmp_path)
    assert err == (
        f"{tmp_path}: not a thing checkpoint (no robolearn-thing.json); "
        "train one with `robolearn train thing`"
    )
    (tmp_path / "robolearn-policy.json").write_text('{"format": "robolearn-policy"}')
    assert "not a thing checkpoint (it is a policy checkpoint)" in _error(FMT.read_info, tmp_path)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"version": 1}, "not a version-2 robolearn-thing checkpoint"),
        ({"format": "robolearn-other"}, "not a version-2 robolearn-thing checkpoint"),
        ({"colour": "red"}, "unknown key 'colour' for Info; valid keys: note, size, tasks"),
        ({"size": "big"}, r"robolearn-thing.json.size: expected int, got str"),
    ],
)
def test_bad_markers_are_named(tmp_path, fields, needle):
    root = _marker(tmp_path / "ck", **fields)
    err = _error(FMT.read_info, root)
    assert needle in err and str(root / FMT.marker) in err


def test_missing_key_and_unreadable_marker(tmp_path):
    root = tmp_path / "ck"
    root.mkdir()
    (root / FMT.marker).write_text(json.dumps({"format": "robolearn-thing", "version": 2}))
    assert "'tasks'" in _error(FMT.read_info, root)
    (root / FMT.marker).write_text("{not json")
    assert "robolearn-thing.json: unreadable" in _error(FMT.read_info, root)


def test_config_and_stats_round_trip_and_old_layouts_migrate(tmp_path):
    cfg, stats = Config(Optim(3e-4), Training(2)), NormStats([0.0, 1.0], [1.0, 2.0])
    FILES.write(tmp_path / "new", cfg, stats)
    got_cfg, got_stats = FILES.read(tmp_path / "new")
    assert got_cfg == cfg and got_stats.to_json() == stats.to_json()

    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text("optim:\n  lr: 3.0e-4\n  pad: 2\n")
    (old / "stats.json").write_text(json.dumps({"m": [0.0, 1.0], "s": [1.0, 2.0]}))
    got_cfg, got_stats = FILES.read(old)
    assert got_cfg == cfg and got_stats.to_json() == stats.to_json()


def test_broken_config_or_stats_name_the_directory(tmp_path):
    FILES.write(tmp_path, Config(), NormStats([0.0], [1.0]))
    (tmp_path / "stats.json").write_text(json.dumps({"mean": [0.0], "sd": [1.0]}))
    err = _error(FILES.read, tmp_path)
    assert err.startswith(f"{tmp_path}: broken checkpoint") and "unknown key 'sd'" in err
    (tmp_path / "config.yaml").write_text("optim:\n  lr: 1.0\n  momentum: 0.9\n")
    assert "unknown key 'momentum'" in _error(FILES.read, tmp_path)
    (tmp_path / "config.yaml").unlink()
    assert "broken checkpoint" in _error(FILES.read, tmp_path)


def test_move_keys_moves_only_what_is_there():
    old = {"optim": {"lr": 1.0, "pad": 3}, "other": 1}
    assert move_keys(old, "optim", "training", ("pad", "beta")) == {
        "optim": {"lr": 1.0},
        "training": {"pad": 3},
        "other": 1,
    }
    assert old == {"optim": {"lr": 1.0, "pad": 3}, "other": 1}  # not modified in place
    new = {"optim": {"lr": 1.0}, "training": {"pad": 3}}
    assert move_keys(new, "optim", "training", ("pad",)) == new
    assert move_keys(["not", "a", "mapping"], "optim", "training", ("pad",)) == [
        "not",
        "a",
        "mapping",
    ]


def test_load_config_migrates_then_loads_strictly(tmp_path):
    save_yaml(Config(), tmp_path / "c.yaml")
    assert load_config(Config, tmp_path / "c.yaml") == Config()
    (tmp_path / "old.yaml").write_text("optim:\n  pad: 7\n")
    assert load_config(Config, tmp_path / "old.yaml", _old_layout) == Config(training=Training(7))
    with pytest.raises(ConfigError, match="unknown key 'pad'"):
        load_config(Config, tmp_path / "old.yaml")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe{}", "unreadable (not UTF-8 text"),
        (b'{"format": "robolearn-thing", "version": 2, "tasks": [], "size": NaN}', "NaN is not"),
        (b"[1, 2]", "not a version-2 robolearn-thing checkpoint"),
        (b"null", "not a version-2 robolearn-thing checkpoint"),
    ],
)
def test_hostile_markers_are_one_line_errors_naming_the_file(tmp_path, content, needle):
    root = _marker(tmp_path / "ck")
    (root / FMT.marker).write_bytes(content)
    err = _error(FMT.read_info, root)
    assert needle in err and str(root / FMT.marker) in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "robolearn-other.json").write_bytes(b"\xff")  # not read as a marker
    assert "(no robolearn-thing.json)" in _error(FMT.read_info, tmp_path / "other")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("config.yaml", b"\xff\xfe", "config.yaml: not UTF-8 text"),
        ("config.yaml", b"", "config.yaml: expected a mapping of Config keys, got NoneType"),
        ("config.yaml", b"optim: [1, 2\n x: {\n", "config.yaml: not valid YAML"),
        ("stats.json", b"\xff", "stats.json: unreadable (not UTF-8 text"),
        ("stats.json", b'{"mean": [NaN], "std": [1.0]}', "NaN is not a JSON number"),
        ("stats.json", b'{"mean": [0.0], "std": [0.0]}', "stats.json: statistics: std must be"),
    ],
)
def test_hostile_config_and_stats_are_one_line_errors_naming_the_file(
    tmp_path, name, content, needle
):
    FILES.write(tmp_path, Config(), NormStats([0.0], [1.0]))
    (tmp_path / name).write_bytes(content)
    assert needle in _error(FILES.read, tmp_path)
