"""`robolearn data info` and `robolearn data validate`: what is in an episode store, and whether
every episode of it reads."""

from __future__ import annotations

import dataclasses

from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """The store a data command reads."""

    dir: str = dataclasses.field(default="", metadata=flag(positional=True, metavar="DIR"))
    """episode store directory"""


def info(cfg: StoreConfig, options: RunOptions) -> None:
    """Episodes, steps, success rate per task and source, size on disk; then one `problem:` line
    per unreadable or torn episode (not counted above). Exits 0 with problems: `validate` is the
    check (summarize_store says what info reads and what only validate does)."""
    from robolearn.data.inspect import store_size, summarize_store

    groups, problems = summarize_store(cfg.dir)
    episodes = sum(g.episodes for g in groups)
    steps = sum(g.steps for g in groups)
    print(
        f"{cfg.dir}: {episodes} episodes, {steps} steps, {store_size(cfg.dir) / 1e6:.1f} MB on disk"
    )
    if groups:
        width = max(len(g.task) for g in groups)
        header = ("task", "source", "episodes", "steps", "success", "MB")
        print("  {:<{w}}  {:<8}  {:>8}  {:>7}  {:>7}  {:>6}".format(*header, w=width))
        for g in groups:
            print(
                f"  {g.task:<{width}}  {g.source:<8}  {g.episodes:>8}  {g.steps:>7}  "
                f"{g.success_rate:>7.0%}  {g.bytes / 1e6:>6.1f}"
            )
    for line in problems:
        print(f"  problem: {line}")
    if problems:
        print(
            f"{len(problems)} problem(s): `robolearn data validate {cfg.dir}` reads every episode "
            "in full"
        )


def validate(cfg: StoreConfig, options: RunOptions) -> int:
    """Read every episode; exit 1 if any is torn or malformed."""
    from robolearn.data.inspect import validate_store

    report = validate_store(cfg.dir)
    for line in report.bad:
        print(f"bad: {line}")
    for path in report.torn:
        print(f"torn: {path}: its writer stopped mid-episode; readers ignore it (delete it)")
    verdict = "ok" if report.ok else "problems"
    print(
        f"{verdict}: {report.episodes} readable episodes ({report.steps} steps), "
        f"{len(report.bad)} bad, {len(report.torn)} torn"
    )
    return 0 if report.ok else 1
