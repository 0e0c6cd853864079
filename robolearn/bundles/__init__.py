"""Model bundles shipped inside the package: trained parts per task, with a card.

    robolearn/bundles/<task>/card.md       how every part was made: commands, data, steps,
                                           hardware, measured numbers
    robolearn/bundles/<task>/<part>/       a checkpoint directory (world-model, bc, ...)

Every command that takes a checkpoint also takes `bundle:<task>/<part>`, e.g. `bundle:drawer/bc`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robolearn.core.errors import RobolearnError

PREFIX = "bundle:"
ROOT = Path(__file__).parent


class BundleError(RobolearnError, ValueError):
    """A `bundle:` reference to a part that is not shipped."""


@dataclasses.dataclass(frozen=True)
class BundlePart:
    task: str
    part: str
    path: Path

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.task}/{self.part}"

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def is_bundle(spec: str) -> bool:
    return str(spec).startswith(PREFIX)


def list_parts() -> list[BundlePart]:
    """Every shipped part, sorted by task then part."""
    parts = []
    for task_dir in sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name[0] not in "._"):
        for part in sorted(p for p in task_dir.iterdir() if p.is_dir() and p.name[0] != "."):
            parts.append(BundlePart(task_dir.name, part.name, part))
    return parts


def card(task: str) -> str:
    """The card (markdown) of a task's bundle; '' if it has none."""
    path = ROOT / task / "card.md"
    return path.read_text() if path.is_file() else ""


def resolve(spec: str | Path) -> str:
    """The directory of `bundle:<task>/<part>`; any other spec is returned unchanged."""
    spec = str(spec)
    if not is_bundle(spec):
        return spec
    name = spec[len(PREFIX) :].strip("/")
    task, _, part = name.partition("/")
    path = ROOT / task / part
    if not task or not part or not path.is_dir():
        shipped = ", ".join(p.name for p in list_parts()) or "none"
        raise BundleError(f"no shipped bundle part {spec!r}; shipped: {shipped}")
    return str(path)
