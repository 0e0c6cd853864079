"""Task registry: names to factories, with listings and helpful errors for unknown names.

Factories import their simulator only when called, so `robolearn tasks` and importing
robolearn.envs never pull in Meta-World or robosuite.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable

import numpy as np

from robolearn.core.errors import UnknownTaskError
from robolearn.core.optional import missing_extra
from robolearn.envs.base import Task, TaskConfig, TaskInfo


@dataclasses.dataclass(frozen=True)
class _Entry:
    info: TaskInfo
    factory: str  # "module:callable", called as factory(info, config) -> Task


_REGISTRY: dict[str, _Entry] = {}


def register(info: TaskInfo, factory: str) -> None:
    """Register a task under `info.name`; `factory` is "module:callable"."""
    if info.name in _REGISTRY:
        raise ValueError(f"task {info.name!r} is registered twice")
    _REGISTRY[info.name] = _Entry(info, factory)


def task_names() -> list[str]:
    """All registered task names, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def task_info(name: str) -> TaskInfo:
    """Static description of a task; unknown names raise UnknownTaskError with close matches."""
    return _entry(name).info


def make(name: str, config: TaskConfig | None = None, **overrides) -> Task:
    """Build task `name`. Keyword overrides set TaskConfig fields (e.g. image_size=128)."""
    entry = _entry(name)
    config = dataclasses.replace(config or TaskConfig(), **overrides)
    module, _, attr = entry.factory.partition(":")
    factory: Callable[[TaskInfo, TaskConfig], Task] = getattr(importlib.import_module(module), attr)
    try:
        return factory(entry.info, config)
    except ImportError as exc:  # Meta-World or robosuite on a robot install: name the extra
        if (error := missing_extra(exc)) is None:
            raise
        raise error from exc


def reset_observations(name: str, image_size: int, seeds) -> tuple[np.ndarray, np.ndarray]:
    """First observations of task `name` reset with each of `seeds` (one simulator, closed
    after): images uint8 [N, H, W, 3], proprio float32 [N, P]."""
    task = make(name, image_size=image_size)
    try:
        obs = [task.reset(seed=s)[0] for s in seeds]
    finally:
        task.close()
    return (
        np.stack([o["image"] for o in obs]),
        np.stack([o["proprio"] for o in obs]).astype(np.float32),
    )


def _entry(name: str) -> _Entry:
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
    close += [n for n in _REGISTRY if name and name in n and n not in close]
    hint = (
        f"did you mean: {', '.join(close[:5])}?" if close else "run `robolearn tasks` to list tasks"
    )
    raise UnknownTaskError(f"unknown task {name!r}; {hint}")


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in (
        "robolearn.envs.widowx.tasks",
        "robolearn.envs.metaworld",
        "robolearn.envs.robosuite",
    ):
        importlib.import_module(module).register_all(register)
