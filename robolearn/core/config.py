"""Typed configs: frozen dataclasses loaded strictly from mappings and YAML, presets from
`configs/`, and layered resolution (defaults < a config file < flags < dotted overrides).

Unknown keys and values of the wrong type are errors that name the key, so a typo in a preset
fails at load time instead of silently falling back to a default.

Presets: a config class that declares `PRESET_KIND: ClassVar[str] = "<kind>"` has named presets in
`configs/<kind>/<name>.yaml` (shipped inside the package in a wheel). In a mapping resolved for
such a class, `preset: NAME` (or the bare string NAME) means "that preset, then the other keys of
this mapping over it".
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robolearn.core.errors import ConfigError, one_line

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`, checking every key and value type (nested too)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields, hints = _fields_and_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    values = {
        name: _convert(hints[name], _over_default(fields[name], value), f"{where}.{name}")
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _over_default(field: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a nested config, on top of the field's own default instance: keys it
    does not give keep that default's values, not the nested class's. (SACConfig's field of
    FinetuneConfig defaults to init_temperature 1e-4; before, a `--utd 2` rebuilt SACConfig from
    its class defaults and alpha silently started at 0.1.)"""
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    if not isinstance(value, Mapping) or not _is_instance(default):
        return value
    return deep_merge(_as_mapping(default), value)


def _is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _as_mapping(config: Any) -> dict[str, Any]:
    """A config instance's init fields as a mapping, nested instances as mappings too (so
    deep_merge merges into them)."""
    return {
        f.name: _as_mapping(v) if _is_instance(v := getattr(config, f.name)) else v
        for f in dataclasses.fields(config)
        if f.init
    }


@functools.cache
def _fields_and_hints(cls: type) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    """A dataclass's fields and resolved type hints, once per class (resolving the hints costs
    ~0.3 ms, and a pack's manifest builds an EpisodeMeta per episode)."""
    return {f.name: f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a (nested) config dataclass; the class's own fields before
    those it inherits (as its --help lists them)."""
    data = dataclasses.asdict(config)
    own = type(config).__dict__.get("__annotations__", {})
    return {k: data[k] for k in sorted(data, key=lambda k: k not in own)}


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load dataclass `cls` from a YAML file, strictly (see from_dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return from_dict(cls, read_yaml(path) or {}, where=str(path))


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a config dataclass as YAML (the resolved config stored beside every run's outputs)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            shown = ", ".join(map(str, choices))
            raise ConfigError(f"{where}: expected one of {shown}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return origin(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 (PyYAML) reads 3e-4 as a string: it wants 3.0e-4. Accept what a person writes.
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(
            f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


# Bounds on what a model config may build, checked (require_size) before anything is allocated:
# far above any useful policy or reward CNN (the base BC actor has 0.49 M parameters and 67 k
# floats per image through its encoder), far below what would exhaust a machine's memory (a config
# read from a damaged or hostile file).
MAX_PARAMS = 2**30  # 4 GiB of float32 weights
MAX_ACTIVATIONS = 2**27  # floats per image through a network: 512 MiB


def require_size(params: int, activations: int, shape: str) -> None:
    """A one-line ConfigError when a model of `params` parameters and `activations` floats per
    image (counted from its config's shapes) is over MAX_PARAMS or MAX_ACTIVATIONS; `shape`
    lists the fields that set them, for the message."""
    for what, count, limit in (
        ("parameters", params, MAX_PARAMS),
        ("activations per image", activations, MAX_ACTIVATIONS),
    ):
        if count > limit:
            raise ConfigError(
                f"model too large: {count:.3g} {what} (limit {limit:.3g}) from {shape}"
            )


def require_positive(config: Any, *names: str) -> None:
    """One-line ConfigError unless every named integer field of `config` is >= 1."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def configs_dir() -> Path:
    """The `configs/` presets: inside the package in a wheel, beside it in a source checkout."""
    here = Path(__file__).resolve().parent.parent  # robolearn/
    for candidate in (here / "configs", here.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"no configs/ directory beside or inside {here}; reinstall robolearn")


def preset_names(kind: str) -> list[str]:
    """The names of the presets of `kind` (configs/<kind>/*.yaml), sorted."""
    return sorted(p.stem for p in (configs_dir() / kind).glob("*.yaml"))


def preset_dict(kind: str, name: str) -> dict[str, Any]:
    """The mapping of preset `name` of `kind`; a one-line error naming the choices."""
    path = configs_dir() / kind / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(preset_names(kind)) or "none"
        raise ConfigError(f"unknown {kind} preset {name!r}; choose from {choices}")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return data


def load_preset(cls: type[T], name: str) -> T:
    """Preset `name` of config class `cls` (which declares PRESET_KIND), loaded strictly."""
    return resolve(cls, {"preset": name}, where=f"{_kind(cls)} preset {name!r}")


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; nested mappings merge key by key, anything else is replaced."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = deep_merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Dotted overrides `KEY.SUB=VALUE` -> a nested mapping; each VALUE is read as YAML (so
    `steps=10`, `lr=3e-4`, `channels=[32,64]`, `init=null` have their types)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. model.optim.lr=3e-4)")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part}")
        node[leaf] = value
    return out


def resolve(cls: type[T], *layers: Mapping[str, Any], where: str = "config") -> T:
    """`cls` from mapping layers (later ones win), presets expanded, loaded strictly."""
    return from_dict(cls, _expand(cls, deep_merge(*layers), where), where)


def load_layers(cls: type[T], path: str | Path | None, *layers: Mapping[str, Any]) -> T:
    """`cls` from a YAML file (None: none) under the given layers, e.g. flags then overrides."""
    base = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        base = read_yaml(path) or {}
        if not isinstance(base, dict):
            raise ConfigError(f"{path}: expected a mapping of {cls.__name__} keys")
    return resolve(cls, base, *layers, where=str(path) if path else "config")


def field_docs(cls: type) -> dict[str, str]:
    """{field: its attribute docstring} of a dataclass (the string literal under each field),
    its bases' too; '' for an undocumented field. What `--help` shows for each flag."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_attribute_docs(klass))
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


@functools.cache
def _attribute_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _kind(cls: type) -> str | None:
    return getattr(cls, "PRESET_KIND", None)


def _expand(cls: type, data: Any, where: str) -> Any:
    """Expand `preset:` keys (and bare preset names) of presettable configs, recursively."""
    kind = _kind(cls)
    if kind and isinstance(data, str):
        data = {"preset": data}
    if not isinstance(data, dict):
        return data
    if kind and isinstance(data.get("preset"), str):
        data = deep_merge(preset_dict(kind, data["preset"]), data)
        if "preset" not in {f.name for f in dataclasses.fields(cls)}:
            data.pop("preset")  # a class that does not record its preset's name
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for f in dataclasses.fields(cls):
        hint = _dataclass_of(hints[f.name])
        if hint is not None and f.name in out:
            out[f.name] = _expand(hint, out[f.name], f"{where}.{f.name}")
    return out


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass of a field hint (`X` or `X | None`), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def read_yaml(path: Path) -> Any:
    """The YAML value in `path` (safe_load: no Python objects); a one-line ConfigError naming
    the file when it is not UTF-8 text or not YAML. OSError (missing, a directory) passes."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({one_line(exc)})") from exc


def fitted(model_cfg: T, steps: int, **model_fields: Any) -> T:
    """A trainer's model config fitted to its run: fields of `model_cfg.model` replaced by what
    the data says (image_size, action_dim, ...), and the learning rate decaying over the run's
    `steps` (`model_cfg.optim.decay_steps`)."""
    replace = dataclasses.replace
    model = replace(model_cfg.model, **model_fields) if model_fields else model_cfg.model
    return replace(model_cfg, model=model, optim=replace(model_cfg.optim, decay_steps=steps))
