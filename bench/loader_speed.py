"""Loader throughput (samples/s) of TransitionLoader and WindowLoader at batch 32 and 256.

Uses a synthetic store of 64x64 episodes (random pixels, 50 steps each) in a temporary
directory, so it measures gathering from the in-memory cache, not simulation or decoding; the
one-time decode of the store is reported as `load_s`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from robolearn.data.loader import TransitionLoader, WindowLoader
from robolearn.data.synthetic import write_random_store


def run(quick: bool = False) -> list[dict]:
    """Rows: loader, batch, context, samples_per_s, batches_per_s, load_s."""
    episodes, seconds = (20, 0.5) if quick else (100, 2.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        write_random_store(root, episodes)
        for name, make in (
            ("transition", lambda b: TransitionLoader(root, b, seed=0)),
            ("window T=4", lambda b: WindowLoader(root, b, seed=0, context=4)),
        ):
            for batch in (32, 256):
                start = time.perf_counter()
                loader = make(batch)
                load_s = time.perf_counter() - start
                next(loader)
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    next(loader)
                    count += 1
                elapsed = time.perf_counter() - start
                rows.append(
                    {
                        "loader": name,
                        "episodes": episodes,
                        "batch": batch,
                        "samples_per_s": count * batch / elapsed,
                        "batches_per_s": count / elapsed,
                        "load_s": load_s,
                    }
                )
    return rows
