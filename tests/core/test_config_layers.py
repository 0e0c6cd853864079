"""Layered config resolution: presets from configs/, a file, flags and dotted overrides, and the
flags derived from a config dataclass (robolearn.core.config, robolearn.core.flags)."""

import argparse
import dataclasses
from typing import ClassVar, Literal

import pytest

from robolearn.core import config as config_mod
from robolearn.core.config import (
    field_docs,
    load_layers,
    load_preset,
    parse_overrides,
    resolve,
)
from robolearn.core.errors import ConfigError
from robolearn.core.flags import Alias, add_config_flags, flag


@dataclasses.dataclass(frozen=True)
class Optim:
    learning_rate: float = 1e-3
    """peak learning rate"""
    warmup: int = 10


@dataclasses.dataclass(frozen=True)
class Model:
    PRESET_KIND: ClassVar[str] = "toy"
    preset: str = "base"
    """named preset"""
    width: int = 8
    optim: Optim = Optim()


@dataclasses.dataclass(frozen=True)
class Run:
    data: tuple[str, ...] = ()
    """episode store directory (repeat for several)"""
    tasks: tuple[str, ...] = dataclasses.field(default=(), metadata=flag("--task"))
    """only this task's episodes"""
    steps: int = 100
    """total optimizer steps"""
    dtype: Literal["auto", "float32"] = "auto"
    """computation dtype"""
    quiet: bool = False
    """no progress line"""
    model: Model = Model()


@pytest.fixture
def presets(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "big.yaml").write_text(
        "preset: big\nwidth: 64\noptim: {learning_rate: 3e-4}\n"
    )
    (tmp_path / "toy" / "base.yaml").write_text("preset: base\n")
    monkeypatch.setattr(config_mod, "configs_dir", lambda: tmp_path)
    return tmp_path


def test_preset_then_keys_over_it(presets):
    assert load_preset(Model, "big") == Model("big", 64, Optim(3e-4, 10))
    run = resolve(Run, {"model": {"preset": "big", "optim": {"warmup": 0}}})
    assert run.model == Model("big", 64, Optim(3e-4, 0))
    assert resolve(Run, {"model": "big"}).model.width == 64  # a bare name is the preset


def test_unknown_preset_names_the_choices(presets):
    with pytest.raises(ConfigError, match=r"unknown toy preset 'huge'; choose from base, big"):
        resolve(Run, {"model": {"preset": "huge"}})


def test_layers_file_then_flags_then_overrides(presets, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\ndata: [a]\nmodel: {preset: big}\n")
    run = load_layers(Run, path, {"steps": 9}, parse_overrides(["model.optim.learning_rate=1e-2"]))
    assert run.steps == 9 and run.data == ("a",)
    assert run.model.width == 64 and run.model.optim.learning_rate == 1e-2


def test_overrides_are_typed_and_checked(presets):
    assert parse_overrides(["a.b=3", "a.c=[1, 2]", "d=null", "e=3e-4", "f=x"]) == {
        "a": {"b": 3, "c": [1, 2]},
        "d": None,
        "e": "3e-4",
        "f": "x",
    }
    assert resolve(Run, parse_overrides(["model.optim.learning_rate=3e-4"])).model.optim == Optim(
        3e-4, 10
    )
    for bad in ("steps", "=3", "a..b=1", "a-b=1"):
        with pytest.raises(ConfigError, match="is not KEY=VALUE"):
            parse_overrides([bad])
    with pytest.raises(ConfigError, match=r"unknown key 'lr'.*valid keys: learning_rate, warmup"):
        resolve(Run, parse_overrides(["model.optim.lr=1"]))
    with pytest.raises(ConfigError, match=r"config\.dtype: expected one of auto, float32"):
        resolve(Run, {"dtype": "float16"})


def test_missing_or_malformed_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_layers(Run, tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping of Run keys"):
        load_layers(Run, tmp_path / "list.yaml")


def test_field_docs_are_the_attribute_docstrings():
    docs = field_docs(Run)
    assert docs["steps"] == "total optimizer steps" and docs["model"] == ""


def test_flags_from_the_dataclass(presets):
    parser = argparse.ArgumentParser(prog="x")
    flags = add_config_flags(
        parser, Run, aliases=[Alias("--preset", "model.preset", choices=["big"])]
    )
    args = parser.parse_args(
        ["--data", "a", "--data", "b", "--task", "t", "--preset", "big", "--quiet"]
    )
    given = flags.given(args)
    assert given == {"data": ["a", "b"], "tasks": ["t"], "quiet": True, "model": {"preset": "big"}}
    run = resolve(Run, given)
    assert run.data == ("a", "b") and run.tasks == ("t",) and run.model.width == 64
    assert flags.given(parser.parse_args([])) == {}  # defaults come from the dataclass, not flags
    text = parser.format_help()
    assert "total optimizer steps (default: 100)" in text and "--task" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--dtype", "float16"])
