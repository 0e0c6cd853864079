"""What is in a store (`robolearn data info`) and whether all of it reads (`data validate`)."""

from __future__ import annotations

import dataclasses
import os
import stat
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
    """Per (task, source): episodes, steps, successes, bytes; plus problems met on the way (one
    line each, naming the file).

    Counts the episodes that `read_outline` accepts: their zip directory, every array's .npy
    header (dtype, shape, and size against its zip entry), the shapes and dtypes against each
    other, the meta (JSON, every field's type), and the data of reward and success (zip CRC,
    finite rewards). It does not decompress image, proprio, state and action, so an episode it
    counts can still fail `validate_store` for their data only: a zip CRC or deflate error in one
    of them, or NaN/inf in proprio, state or action. Every other reason validate has to reject a
    file is one this reports too.
    """
    groups: dict[tuple[str, str], GroupSummary] = {}
    problems = []
    for path in list_episodes(root):
        try:
            meta, steps, succeeded = read_outline(path)
            size = os.stat(path).st_size
        except EpisodeError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:  # removed since it was listed
            problems.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        key = (meta.task, meta.source)
        group = groups.setdefault(key, GroupSummary(*key))
        group.episodes += 1
        group.steps += steps
        group.successes += succeeded
        group.bytes += size
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
    """Read and check every episode in full: everything `summarize_store` checks, plus the data
    (zip CRC) of every array and finite proprio, state and action. Every bad file is reported
    (one line naming it), not just the first."""
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
    """Bytes on disk of the regular files under the store directory (symlinks not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we walked
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total
