"""Run directories: every command that writes files writes them under one directory."""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path

from robolearn.core.errors import ConfigError
from robolearn.core.tracking import WandbSettings


def make_run_dir(out: str | Path | None, command: str, tag: str = "") -> Path:
    """Create and return the output directory.

    `out` given: that directory (created if needed); else a new `./runs/<command>-<tag>-<time>`.
    """
    if out is not None:
        path = Path(out)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = "-".join(p for p in (command, re.sub(r"[^A-Za-z0-9_.-]+", "_", tag), stamp) if p)
        path = Path("runs") / name
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path("runs") / f"{name}-{suffix}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a command runs, beside what it computes (its run config): where it writes, whether it
    resumes, whether it shows progress, and how a multi-host job joins its peers.

    out: the output directory (None: a new one under ./runs/, see make_run_dir).
    distributed: join the other processes with jax.distributed.initialize() first; coordinator,
        num_processes, process_id: its arguments (None: auto-detected on TPU pods, SLURM, MPI).
    wandb: log the run's metrics, images and videos to a W&B run too (robolearn.core.tracking;
        offline unless WANDB_MODE says otherwise), in project wandb_project.
    """

    out: str | None = None
    resume: bool = False
    progress: bool = True
    distributed: bool = False
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    wandb: bool = False
    wandb_project: str = "robolearn"

    def run_dir(self, command: str, tag: str = "") -> Path:
        """The output directory of this run (created); `--resume` needs an explicit --out."""
        if self.resume and self.out is None:
            raise ConfigError("--resume needs --out DIR, the run to continue")
        return make_run_dir(self.out, command, tag)

    def tracking(self) -> WandbSettings | None:
        """The W&B settings of `--wandb` (None without it)."""
        return WandbSettings(self.wandb_project) if self.wandb else None
