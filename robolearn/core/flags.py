"""Command-line flags derived from a typed config dataclass (the CLI's only source of truth).

    parser = argparse.ArgumentParser(prog="robolearn train bc")
    flags = add_config_flags(parser, TrainBCConfig, aliases=[Alias("--preset", "model.preset")])
    args, rest = parser.parse_known_args(argv)
    cfg = resolve(TrainBCConfig, flags.given(args))   # robolearn.core.config.resolve

Each top-level field of the config becomes a flag: `--field-name`, or the name in the field's
metadata (`flag("--task")`); its help is the field's attribute docstring (the string under the
field) and its default; its type comes from the annotation: str, int, float, bool (a switch),
`X | None`, `tuple[X, ...]` (a repeatable flag, or a positional list), `Literal[...]` (choices).
Nested config fields get no flags of their own (they are set by `--config FILE` and dotted
overrides) unless an `Alias` names one of their fields. Only flags the user gave are returned by
`given`, so a config file's values survive the flags' defaults. Why this and not tyro:
docs/architecture.md ("The CLI").
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from robolearn.core.config import field_docs


def flag(name: str | None = None, *, positional: bool = False, metavar: str | None = None) -> dict:
    """Field metadata for its command-line form: `dataclasses.field(default=..., metadata=flag(
    "--task"))`; `positional=True` makes it a positional argument."""
    return {"flag": name, "positional": positional, "metavar": metavar}


@dataclasses.dataclass(frozen=True)
class Alias:
    """A flag for a field inside a nested config (`--preset` -> `model.preset`). choices: a list,
    or a function returning one (called when the parser is built)."""

    flag: str
    path: str
    help: str = ""
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None


@dataclasses.dataclass
class FlagSet:
    """The flags a parser got from a config: {argparse dest: dotted field path}."""

    paths: dict[str, str]

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """A nested mapping of the values the user gave (flags left out are absent)."""
        out: dict[str, Any] = {}
        for dest, path in self.paths.items():
            if hasattr(args, dest):
                node = out
                *parents, leaf = path.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = getattr(args, dest)
        return out


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    aliases: Sequence[Alias] = (),
    skip: Sequence[str] = (),
) -> FlagSet:
    """Add a flag per top-level field of dataclass `cls` (and one per alias); see the module."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    paths: dict[str, str] = {}
    own = cls.__dict__.get("__annotations__", {})  # the command's own fields first, then inherited
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        if f.name in skip or _is_config(hints[f.name]):
            continue
        meta = f.metadata
        name = meta.get("flag") or "--" + f.name.replace("_", "-")
        kwargs = _kind(hints[f.name], positional=bool(meta.get("positional")))
        kwargs["help"] = _help(docs[f.name], _default(f), kwargs)
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("positional"):
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(name, dest=f.name, default=argparse.SUPPRESS, **kwargs)
        paths[f.name] = f.name
    for alias in aliases:
        hint, default, doc = _nested(cls, alias.path)
        kwargs = _kind(hint, positional=False)
        if alias.choices is not None:
            kwargs["choices"] = list(alias.choices() if callable(alias.choices) else alias.choices)
        kwargs["help"] = _help(alias.help or doc, default, kwargs)
        if kwargs.get("action") != "store_true" and "choices" not in kwargs:
            kwargs.setdefault("metavar", alias.flag.lstrip("-").replace("-", "_").upper())
        dest = "alias." + alias.path
        parser.add_argument(alias.flag, dest=dest, default=argparse.SUPPRESS, **kwargs)
        paths[dest] = alias.path
    return FlagSet(paths)


def _is_config(hint: Any) -> bool:
    args = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    )
    return dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(a) for a in args)


def _kind(hint: Any, positional: bool) -> dict[str, Any]:
    """argparse keyword arguments for a field annotation."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _kind(options[0], positional)
    if hint is bool:
        return {"action": "store_true"}
    if origin is Literal:
        values = typing.get_args(hint)
        return {"choices": list(values), "type": type(values[0])}
    if origin in (tuple, list):
        item = typing.get_args(hint)[0] if typing.get_args(hint) else str
        if positional:
            return {"nargs": "+", "type": item}
        return {"action": "append", "type": item}
    if hint in (int, float, str):
        return {"type": hint}
    return {"type": str}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _nested(cls: type, path: str) -> tuple[Any, Any, str]:
    """(annotation, default, doc) of the field at dotted `path` inside config class `cls`."""
    owner, default_owner = cls, None
    *parents, leaf = path.split(".")
    for part in parents:
        f = {f.name: f for f in dataclasses.fields(owner)}[part]
        default_owner = getattr(default_owner, part) if default_owner else _default(f)
        owner = typing.get_type_hints(owner)[part]
        owner = next(a for a in (owner, *typing.get_args(owner)) if dataclasses.is_dataclass(a))
    hint = typing.get_type_hints(owner)[leaf]
    default = getattr(default_owner, leaf, dataclasses.MISSING)
    return hint, default, field_docs(owner)[leaf]


def _help(doc: str, default: Any, kwargs: dict) -> str:
    text = (doc or "").replace("%", "%%")  # argparse formats help with %
    if kwargs.get("action") == "store_true" or default in (dataclasses.MISSING, None, (), ""):
        return text
    return f"{text} (default: {_show(default)})".strip()


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)
