"""What is in a store (`robolearn data info`) and whether all of it reads (`data validate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robolearn.data.store import (
    EpisodeError,
    list_episodes,
    list_partial,
    open_store,
    read_episode,
    read_outline,
)


@dataclasses.dataclass
class GroupSummary:
    """Counts for one (task, source) group of a store."""

    task: str
    source: str
    episodes: int = 0
    steps: int = 0
    successes: int = 0
    bytes: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


def summarize_store(root: str | Path) -> tuple[list[GroupSummary], list[str]]:
    """Per (task, source): episodes, steps, successes, bytes; plus problems met on the way.

    Reads each episode's meta and success flags only (cheap); `validate_store` reads everything.
    """
    groups: dict[tuple[str, str], GroupSummary] = {}
    problems = []
    for path in list_episodes(root):
        try:
            meta, steps, succeeded = read_outline(path)
        except EpisodeError as exc:
            problems.append(str(exc))
            continue
        key = (meta.task, meta.source)
        group = groups.setdefault(key, GroupSummary(*key))
        group.episodes += 1
        group.steps += steps
        group.successes += succeeded
        group.bytes += path.stat().st_size
    problems += [
        f"{p}: torn episode (its writer stopped before finishing it)" for p in list_partial(root)
    ]
    return sorted(groups.values(), key=lambda g: (g.task, g.source)), problems


@dataclasses.dataclass
class ValidationReport:
    """The outcome of reading every episode of a store in full."""

    episodes: int
    steps: int
    bad: list[str]  # one line per unreadable or malformed episode, naming its path
    torn: list[Path]  # .partial files left by writers that died mid-episode

    @property
    def ok(self) -> bool:
        return not self.bad and not self.torn


def validate_store(root: str | Path) -> ValidationReport:
    """Read and check every episode (CRC, keys, shapes, dtypes, finite values)."""
    open_store(root)
    episodes = steps = 0
    bad = []
    for path in list_episodes(root):
        try:
            steps += read_episode(path).num_steps
            episodes += 1
        except EpisodeError as exc:
            bad.append(str(exc))
    return ValidationReport(episodes, steps, bad, list_partial(root))


def store_size(root: str | Path) -> int:
    """Bytes on disk of everything under the store directory."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
