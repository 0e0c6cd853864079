"""`robolearn export world-model|policy`: inference-only copies of checkpoints, what bundles ship
and what the robot PC loads: a world model's EMA weights, a policy's actor parameters; no
optimizer state, no critic, no raw training weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robolearn.core.errors import ConfigError
from robolearn.core.rundir import RunOptions


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What an export command copies, and where to."""

    model: str = ""
    """training run (checkpoint directory) or shipped part to export"""
    out: str = ""
    """new checkpoint directory (a policy export there is replaced)"""

    def __post_init__(self):
        if not self.model or not self.out:
            raise ConfigError("export needs --model CHECKPOINT and --out DIR")


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def world_model(cfg: ExportConfig, options: RunOptions) -> None:
    """Keep only the latest EMA weights of a world model."""
    from robolearn import bundles
    from robolearn.world_models.checkpoint import export_ema

    path = export_ema(bundles.resolve(cfg.model), cfg.out)
    print(f"exported the EMA weights of {cfg.model} to {path} ({_size_mb(path):.1f} MB)")


def policy(cfg: ExportConfig, options: RunOptions) -> None:
    """Keep only the actor's parameters of a BC or refined policy."""
    from robolearn import bundles
    from robolearn.policies.bc.checkpoint import export_actor

    path = export_actor(bundles.resolve(cfg.model), cfg.out)
    print(f"exported the actor of {cfg.model} to {path} ({_size_mb(path):.1f} MB)")
