"""`robolearn tasks`: every registered task with its suite, rate, length and instruction, and
what the normalized 7-D action means physically in each suite (and at each rate)."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

from robolearn.core.rundir import RunOptions

SUITES = ("widowx", "metaworld", "robosuite")


@dataclasses.dataclass(frozen=True)
class TasksConfig:
    """What `robolearn tasks` lists."""

    suite: Literal["widowx", "metaworld", "robosuite"] | None = None
    """only the tasks of this suite"""
    json: bool = False
    """print the task table as JSON"""


def table(cfg: TasksConfig) -> str:
    """The task table and the action meanings, as printed."""
    from robolearn import envs

    infos = sorted(
        (envs.task_info(n) for n in envs.task_names()),
        key=lambda i: (SUITES.index(i.suite) if i.suite in SUITES else 9, i.name),
    )
    infos = [i for i in infos if cfg.suite is None or i.suite == cfg.suite]
    if cfg.json:
        return json.dumps([dataclasses.asdict(i) for i in infos], indent=2)
    width = max(len(i.name) for i in infos)
    lines = [f"{'task':<{width}}  {'suite':<9}  {'rate':>6}  {'steps':>5}  instruction"]
    for i in infos:
        rate = f"{i.control_hz:>4.0f}Hz"
        lines.append(f"{i.name:<{width}}  {i.suite:<9}  {rate}  {i.max_steps:>5}  {i.instruction}")
    lines += [
        "",
        "action (7-D, normalized to [-1, 1]): delta xyz, delta roll/pitch/yaw, gripper (+1 open)",
    ]
    # One line per distinct meaning; a suite whose meaning depends on the rate (Meta-World at 80
    # and 40 Hz) names the rate, so no two lines carry the same label.
    meanings: dict[str, dict[str, list[float]]] = {}
    for i in infos:
        meanings.setdefault(i.suite, {}).setdefault(i.action_meaning, []).append(i.control_hz)
    for suite, by_meaning in meanings.items():
        for meaning, rates in by_meaning.items():
            rate = sorted(set(rates))
            label = (
                suite
                if len(by_meaning) == 1
                else f"{suite} at {', '.join(f'{r:g}' for r in rate)} Hz"
            )
            lines.append(f"  {label}: {meaning}")
    return "\n".join(lines)


def main(cfg: TasksConfig, options: RunOptions) -> None:
    """Print the table."""
    print(table(cfg))
