"""`robolearn data pack`: build or update a store's packed form for streaming training data."""

from __future__ import annotations

import dataclasses
import time

from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions


@dataclasses.dataclass(frozen=True)
class PackConfig:
    """Which store to pack and where. Packing decodes every episode not packed yet into flat
    files a trainer reads one window at a time (robolearn.data.packed); the store is unchanged.
    A trainer whose data does not fit its memory budget packs by itself; this does it ahead of
    time (e.g. once, before many runs or hosts read the same store)."""

    dir: str = dataclasses.field(default="", metadata=flag(positional=True, metavar="DIR"))
    """episode store directory"""
    pack: str = ""
    """where the pack goes (default: DIR/packed; a trainer given input.pack_dir finds it under
    that folder)"""
    workers: int = 0
    """decoding processes (0: one per CPU core)"""


def main(cfg: PackConfig, options: RunOptions) -> None:
    """Pack the store's new episodes and print what the pack holds."""
    from robolearn.core.progress import Progress
    from robolearn.data.packed import pack_store

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(total, "episode", enabled=options.progress)
        bar.update(done)

    start = time.perf_counter()
    try:
        result = pack_store(
            cfg.dir, cfg.pack or None, workers=cfg.workers or None, progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    rate = result["episodes"] / seconds if seconds > 0 else 0.0
    print(
        f"packed {result['episodes']} new episodes ({result['bytes'] / 1e6:.1f} MB, "
        f"{rate:.0f} episodes/s); the pack holds {result['total']} episodes in "
        f"{result['shards']} shard(s): {result['pack']}"
    )
