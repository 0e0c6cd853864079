"""Checkpoint-directory plumbing shared by every trained model (policies, world models, ...).

A checkpoint directory holds a JSON marker naming its format and version, the model's config and
statistics, and `checkpoints/<step>/` written by orbax. Orbax writes each step aside and renames it
when complete and lists only complete steps, so after a kill the latest step is the last complete
checkpoint. Nothing here unpickles.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from robolearn.core.config import load_yaml, save_yaml
from robolearn.core.errors import ConfigError, RobolearnError


class CheckpointError(RobolearnError, ValueError):
    """A directory that is not the checkpoint asked for, or one that does not fit its use."""


def write_marker(root: Path, marker: str, fmt: str, version: int, fields: dict) -> None:
    """Write root/marker = {"format": fmt, "version": version, **fields}."""
    data = {"format": fmt, "version": version, **fields}
    (root / marker).write_text(json.dumps(data, indent=1) + "\n")


def write_config_and_stats(root: Path, cfg: Any, stats: Any) -> None:
    """Create `root` with config.yaml (a config dataclass) and stats.json (`stats.to_json()`)."""
    root.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, root / "config.yaml")
    (root / "stats.json").write_text(json.dumps(stats.to_json(), indent=1) + "\n")


def read_config_and_stats(root: str | Path, cfg_cls: type, stats_cls: type) -> tuple[Any, Any]:
    """(config, stats) of a checkpoint directory, loaded strictly; a one-line CheckpointError
    naming the directory when either file is missing or malformed."""
    root = Path(root)
    try:
        cfg = load_yaml(cfg_cls, root / "config.yaml")
        stats = stats_cls.from_json(json.loads((root / "stats.json").read_text()))
    except (ConfigError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{root}: broken checkpoint ({exc})") from exc
    return cfg, stats


def read_marker(
    root: str | Path, marker: str, fmt: str, version: int, missing: str, kind: str = ""
) -> dict:
    """The fields of root/marker (format and version checked and removed); one-line
    CheckpointErrors, `missing` being the message when the directory has no marker and `kind`
    naming the checkpoint in the message for a missing directory."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such {kind + ' ' if kind else ''}checkpoint directory")
    try:
        data = json.loads((root / marker).read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{root}: {missing}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{root / marker}: unreadable ({exc})") from exc
    if (
        not isinstance(data, dict)
        or data.pop("format", None) != fmt
        or data.pop("version", None) != version
    ):
        raise CheckpointError(f"{root / marker}: not a version-{version} {fmt} checkpoint")
    return data


def abstract_init(init: Callable) -> tuple[Any, Any]:
    """(graphdef, abstract state) of `init(rng) -> (graphdef, state)` without allocating: the
    shapes orbax restores into."""
    holder = {}

    def state_only(rng):
        holder["graphdef"], state = init(rng)
        return state

    abstract = jax.eval_shape(state_only, jax.random.key(0))
    return holder["graphdef"], abstract


def make_manager(root: str | Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The orbax manager of root/checkpoints (keeps the newest `max_to_keep` steps)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(root).absolute() / "checkpoints", options=options)


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
