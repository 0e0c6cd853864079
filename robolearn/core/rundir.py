"""Run directories: every command that writes files writes them under one directory."""

from __future__ import annotations

import datetime
import re
from pathlib import Path


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
