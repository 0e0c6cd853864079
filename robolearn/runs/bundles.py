"""`robolearn bundles`: the model bundles shipped in the package, one line per part; a task's
card (how every part was made) on request."""

from __future__ import annotations

import dataclasses

from robolearn.core.rundir import RunOptions


@dataclasses.dataclass(frozen=True)
class BundlesConfig:
    """What `robolearn bundles` prints."""

    card: str | None = None
    """also print this task's card: the commands, data and measurements behind its parts"""
    brief: bool = False
    """deprecated: one line per part is the default now (kept so old scripts still run)"""


def main(cfg: BundlesConfig, options: RunOptions) -> None:
    """Print the listing (and the card)."""
    import sys

    from robolearn import bundles

    if cfg.brief:
        print("note: --brief is the default now; it will be removed", file=sys.stderr)
    print(bundles.listing(card=cfg.card))
