"""Checkpoint-directory plumbing shared by every trained model (policies, world models, ...).

A checkpoint directory holds a JSON marker naming its format and version, the model's config and
statistics, and `checkpoints/<step>/` written by orbax. Orbax writes each step aside and renames it
when complete and lists only complete steps, so after a kill the latest step is the last complete
checkpoint. Nothing here unpickles.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from robolearn.core.config import from_dict, read_yaml, save_yaml
from robolearn.core.errors import ConfigError, RobolearnError, one_line
from robolearn.core.train_state import run_init


class CheckpointError(RobolearnError, ValueError):
    """A directory that is not the checkpoint asked for, or one that does not fit its use."""


CONFIG = "config.yaml"
STATS = "stats.json"
Info = TypeVar("Info")
Config = TypeVar("Config")
Stats = TypeVar("Stats")


@dataclasses.dataclass(frozen=True)
class CheckpointFormat(Generic[Info]):
    """One kind of checkpoint directory, declared once: the JSON marker that makes a directory
    that kind, root/<format>.json = {"format": format, "version": version, **info}.

    info_cls: the frozen dataclass of the marker's other fields, built strictly (robolearn.core.
        config.from_dict: unknown keys and wrong types are errors naming the key and the file;
        lists become tuples where the field is one).
    what / how_to_make: the checkpoint's name and the command that makes one, for the errors
        ("not a policy checkpoint ...; train one with `robolearn train bc`").
    """

    format: str
    version: int
    info_cls: type[Info]
    what: str
    how_to_make: str

    @property
    def marker(self) -> str:
        """The marker's file name."""
        return f"{self.format}.json"

    def write_info(self, root: Path, info: Info) -> None:
        """Write root/marker from `info` (an info_cls)."""
        data = {"format": self.format, "version": self.version, **dataclasses.asdict(info)}
        (Path(root) / self.marker).write_text(json.dumps(data, indent=1) + "\n")

    def read_info(self, root: str | Path) -> Info:
        """The info_cls of root/marker; a one-line CheckpointError for a missing directory, a
        directory without the marker (naming the kind of checkpoint it is, if it is another),
        an unreadable marker (not UTF-8, not JSON), another format or version, and unknown,
        missing or mistyped keys."""
        root = Path(root)
        path = root / self.marker
        if not root.is_dir():
            raise CheckpointError(f"{root}: no such {self.what} checkpoint directory")
        if not path.exists():
            raise CheckpointError(
                f"{root}: not a {self.what} checkpoint{_other_kind(root, self.marker)}; "
                f"train one with `{self.how_to_make}`"
            )
        data = read_json(path)
        if not isinstance(data, dict):
            data = {}
        fmt, version = data.pop("format", None), data.pop("version", None)
        # isinstance(version, bool): true == 1 in Python, not in a version field
        if fmt != self.format or version != self.version or isinstance(version, bool):
            raise CheckpointError(f"{path}: not a version-{self.version} {self.format} checkpoint")
        try:
            return from_dict(self.info_cls, data, where=str(path))
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class CheckpointFiles(Generic[Config, Stats]):
    """A checkpoint's config.yaml (a config_cls dataclass) and stats.json (a stats_cls with
    to_json / from_json), declared once.

    migrate_config / migrate_stats: map the raw mapping of an older layout of config.yaml /
        stats.json onto the current one before it is built strictly (None: no older layout).
        They live in the package's checkpoint.py, the one place that knows old formats.
    """

    config_cls: type[Config]
    stats_cls: type[Stats]
    migrate_config: Callable[[Any], Any] | None = None
    migrate_stats: Callable[[Any], Any] | None = None

    def write(self, root: Path, cfg: Config, stats: Stats) -> None:
        """Create `root` with config.yaml (`cfg`) and stats.json (`stats.to_json()`)."""
        root.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, root / CONFIG)
        (root / STATS).write_text(json.dumps(stats.to_json(), indent=1) + "\n")

    def read(self, root: str | Path) -> tuple[Config, Stats]:
        """(config, stats) of a checkpoint directory, old layouts migrated, built strictly; a
        one-line CheckpointError naming the directory and the file when either is missing or
        malformed (the config's own checks included: sizes, ranges)."""
        root = Path(root)
        try:
            cfg = load_config(self.config_cls, root / CONFIG, self.migrate_config)
            stats = read_json(root / STATS)
            if self.migrate_stats is not None:
                stats = self.migrate_stats(stats)
            try:
                stats = self.stats_cls.from_json(stats)
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{root / STATS}: {one_line(exc)}") from exc
        except (ConfigError, CheckpointError) as exc:
            raise CheckpointError(f"{root}: broken checkpoint ({exc})") from exc
        return cfg, stats


def load_config(cls: type, path: Path, migrate: Callable[[Any], Any] | None = None) -> Any:
    """`cls` built strictly from the YAML mapping in `path` (a checkpoint's config), `migrate`
    applied to it first (old layouts). A one-line ConfigError naming the file when it is
    missing, unreadable, not UTF-8 or YAML, not a mapping (an empty file included: a saved
    config never is), or its keys and values do not build `cls`."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: missing") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({one_line(exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of {cls.__name__} keys, got {type(data).__name__}"
        )
    if migrate is not None:
        data = migrate(data)
    return from_dict(cls, data, where=str(path))


def read_json(path: Path) -> Any:
    """The JSON value in `path` (a marker or stats.json), strictly: a one-line CheckpointError
    naming the file when it is missing or unreadable, not UTF-8 text, or not JSON, NaN and
    Infinity included (Python writes them; JSON has no such numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing") from exc
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({one_line(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{path}: unreadable (not UTF-8 text: {exc.reason} at byte {exc.start})"
        ) from exc
    try:
        return json.loads(text, parse_constant=_not_a_json_number)
    except ValueError as exc:  # json.JSONDecodeError is one
        raise CheckpointError(f"{path}: unreadable (not valid JSON: {one_line(exc)})") from exc


def _not_a_json_number(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def move_keys(data: Any, source: str, target: str, keys: tuple[str, ...]) -> Any:
    """A copy of mapping `data` with `keys` moved from its section `source` into its section
    `target` (created if needed): how a config migrates fields that changed section. Anything
    that is not laid out that way is returned as it is, for the strict load to report."""
    if not isinstance(data, dict) or not isinstance(data.get(source), dict):
        return data
    section = dict(data[source])
    moved = {key: section.pop(key) for key in keys if key in section}
    if not moved:
        return data
    existing = data.get(target, {})
    if not isinstance(existing, dict):
        return data
    return {**data, source: section, target: {**moved, **existing}}


def _other_kind(root: Path, marker: str) -> str:
    """' (it is a <kind> checkpoint)' when `root` holds another robolearn checkpoint's marker
    (robolearn-<kind>.json whose "format" is robolearn-<kind>), else ' (no <marker>)'."""
    for path in sorted(root.glob("robolearn-*.json")):
        if path.name == marker:
            continue
        try:
            other = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: not a marker
            continue
        if isinstance(other, dict) and other.get("format") == path.stem:
            return f" (it is a {path.stem.removeprefix('robolearn-')} checkpoint)"
    return f" (no {marker})"


def abstract_init(init: Callable) -> tuple[Any, Any]:
    """(graphdef, abstract state) of `init(rng) -> (graphdef, state)` without allocating: the
    shapes orbax restores into."""
    graphdef, abstract = run_init(init, jax.random.key(0), shapes_only=True)
    return graphdef, on_this_device(abstract)


def on_this_device(abstract: Any) -> Any:
    """`abstract` (arrays or ShapeDtypeStructs) as ShapeDtypeStructs placed on this process's
    first device: what a restore reads into, whatever topology saved it (a checkpoint written by
    a multi-host job loads on one machine, and each process of a multi-host job reads its own
    whole replica)."""
    device = _this_device()
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)


def _this_device() -> jax.sharding.SingleDeviceSharding:
    """Where restores put arrays: this process's first device."""
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def restore_latest(
    manager: ocp.CheckpointManager, init: Callable, step: int | None = None
) -> tuple[Any, Any]:
    """(graphdef, state) of `step` (default: the latest complete one), restored into the
    shapes of `init(rng) -> (graphdef, state)`; a one-line CheckpointError when none is there."""
    step = manager.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: holds no complete checkpoint")
    graphdef, abstract = abstract_init(init)
    return graphdef, restore(manager, step, ocp.args.StandardRestore(abstract))


def restore_part(manager: ocp.CheckpointManager, abstract: dict, step: int | None = None) -> dict:
    """Only the top-level entries of `abstract` (e.g. {"step", "params"}) of a saved pytree,
    restored into those shapes; the rest (optimizer state, a critic) is never read from disk.
    A one-line CheckpointError when there is no complete checkpoint or the entries differ."""
    step = manager.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: holds no complete checkpoint")
    device = _this_device()
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
    args = ocp.args.PyTreeRestore(item=abstract, restore_args=restore_args, partial_restore=True)
    return restore(manager, step, args)


def restore(manager: ocp.CheckpointManager, step: int, args: Any) -> Any:
    """manager.restore(step, args=args); a one-line CheckpointError naming the step's directory
    when its files are damaged or do not fit the shapes asked for."""
    try:
        return manager.restore(step, args=args)
    except Exception as exc:  # orbax and tensorstore raise many types; all mean the same here
        raise CheckpointError(
            f"{manager.directory}/{step}: damaged, or does not fit the config "
            f"({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc


def require_finite(tree: Any, where: str) -> None:
    """A one-line CheckpointError naming `where` unless every floating-point array of `tree` is
    finite: a restored model with NaN or inf weights computes NaN on every call."""
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not bool(jnp.isfinite(leaf).all()):
            raise CheckpointError(f"{where}: weights hold NaN or inf")


def save_tree(root: str | Path, tree: dict, step: int) -> None:
    """Write `tree` (a pytree of arrays) as root/checkpoints/<step>/, the only step kept. This
    process writes it alone (in a multi-host job: the one that exports, without the others)."""
    from robolearn.core.mesh import local

    manager = make_manager(root, max_to_keep=1, alone=True)
    try:
        manager.save(int(step), args=ocp.args.StandardSave(local(tree)), force=True)
        manager.wait_until_finished()
    finally:
        manager.close()


def make_manager(
    root: str | Path, max_to_keep: int = 2, alone: bool = False
) -> ocp.CheckpointManager:
    """The orbax manager of root/checkpoints (keeps the newest `max_to_keep` steps); a one-line
    CheckpointError when orbax cannot read what is there (a step's metadata damaged).

    In a multi-host job a manager is collective (every process saves its shards of the same
    step together) unless `alone`: then only this process uses it (an export of host arrays)."""
    directory = Path(root).absolute() / "checkpoints"
    extra = {"create": True}
    if alone and jax.process_count() > 1:
        me = jax.process_index()
        extra["multiprocessing_options"] = ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}
        )
        extra["create"] = False  # orbax leaves it to the caller then
        directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, **extra)
    try:
        return ocp.CheckpointManager(directory, options=options)
    except Exception as exc:  # orbax raises many types; all mean the same here
        raise CheckpointError(
            f"{directory}: damaged ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc


def save_state(manager: ocp.CheckpointManager, state: Any) -> None:
    """Save a pytree with a `step` under that step and wait until it is complete on disk."""
    manager.save(int(state.step), args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()


def check_run_dir(out: Path, resume: bool, marker: str, read_info: Callable) -> bool:
    """Whether a training run resumes from `out`; one-line errors for a directory that cannot be
    (re)used: not empty without --resume, or not a checkpoint of this kind with it."""
    if not out.exists() or not any(out.iterdir()):
        return False
    if resume:
        read_info(out)  # raises unless `out` is a checkpoint directory of this kind
        return True
    if (out / marker).exists():
        raise ConfigError(f"{out}: already holds a checkpoint; pass --resume or choose a new --out")
    raise ConfigError(f"{out}: exists and is not empty; choose a new --out")


def check_same(out: Path, saved: Any, data: Any, fields: Iterable[str]) -> None:
    """One-line error when a resumed checkpoint and the new data disagree on any of `fields`."""
    for field in fields:
        if getattr(saved, field) != getattr(data, field):
            raise CheckpointError(
                f"{out}: checkpoint has {field} {getattr(saved, field)!r} but the data has "
                f"{getattr(data, field)!r}; resume with matching data or train into a new --out"
            )
