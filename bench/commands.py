"""Benchmarks that drive robolearn through its CLI, one command per process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def robolearn(*args: str, log: Path) -> None:
    """Run a robolearn command in its own process; its output goes to `log`. A failure raises
    with the log's last line."""
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    with log.open("a") as f:
        f.write(f"$ robolearn {' '.join(args)}\n")
        f.flush()
        argv = [sys.executable, "-m", "robolearn.cli", *args]
        done = subprocess.run(argv, stdout=f, stderr=f, env=env)
    if done.returncode != 0:
        last = (log.read_text().strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"robolearn {args[0]} {args[1]} failed: {last}")
