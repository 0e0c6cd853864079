"""Input pipeline throughput (samples/s) and peak memory: transitions and T=4 windows, batch 32
and 256, data in RAM and streamed from the packed form.

    python -m bench.run loader_speed [--quick]      # a synthetic store in a temp folder
    python -m bench.loader_speed --episodes 20000 --dir /tmp/bridge20k [--threads 2 4]
                                                    # BridgeData episodes, store >> RAM budget

The runner's table uses a synthetic store of random 64x64 episodes (50 steps): `ram` is every
episode decoded in memory, `stream` reads each window from the pack (page cache warm). The
`__main__` form builds (once, reused) a store of `--episodes` real BridgeData V2 episodes: the
shared RLDS shard imported at 64x64, its episode files hard-linked under new indices (the same
pixels repeat, which does not matter for reading speed), packs it, and measures each
configuration in a fresh process (so its peak RSS is its own) from a cold page cache when the
machine lets it drop (root), else says "warm".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bridge_debug.tfrecord"


def measure(root, kind: str, batch: int, mode: str, threads: int, seconds: float, budget=4096.0):
    """One configuration in this process: samples/s after the first batch, peak RSS (MB)."""
    from robolearn.data.pipeline import EpisodeData, PipelineConfig, TransitionLoader, WindowLoader

    start = time.perf_counter()
    pipeline = PipelineConfig(memory_mb=budget, mode=mode, threads=threads)
    data = EpisodeData(root, pipeline=pipeline, progress=False)
    if kind == "transition":
        loader = TransitionLoader(data, batch, seed=0)
    else:
        loader = WindowLoader(data, batch, seed=0, context=4)
    next(loader)
    open_s = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(loader)
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "loader": "transition" if kind == "transition" else "window T=4",
        "data": mode,
        "threads": threads,
        "batch": batch,
        "samples_per_s": count * batch / elapsed,
        "MB_per_s": count * loader.batch_bytes() / elapsed / 1e6,
        # VmHWM: this process's own peak (ru_maxrss would carry over the parent's across exec)
        "peak_rss_MB": _vm_hwm_kb() / 1024,
        "open_s": open_s,
    }


def _vm_hwm_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def run(quick: bool = False) -> list[dict]:
    """The runner's table on a synthetic store (see the module doc)."""
    from robolearn.data.packed import pack_store
    from robolearn.data.synthetic import write_random_store

    episodes, seconds = (20, 0.5) if quick else (100, 2.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_random_store(Path(tmp) / "store", episodes)
        pack_store(root)
        for kind in ("transition", "window"):
            for batch in (32, 256):
                for mode in ("memory", "stream"):
                    row = measure(root, kind, batch, mode, threads=2, seconds=seconds)
                    row.pop("peak_rss_MB")  # one process for all rows: not per configuration
                    rows.append({"episodes": episodes, **row})
    return rows


def build_bridge_store(root: Path, episodes: int) -> Path:
    """A store of `episodes` BridgeData episodes at 64x64 (see the module doc), packed."""
    from robolearn.data.packed import pack_store
    from robolearn.data.rlds import RldsConfig
    from robolearn.data.store import list_episodes
    from robolearn.runs.import_data import import_rlds

    if not (root / "robolearn-store.json").exists():
        import_rlds([SHARD], root, RldsConfig(image_size=64), progress=False)
    have = list_episodes(root)
    sources = have[: max(1, min(len(have), 64))]
    for index in range(len(have), episodes):
        source = sources[index % len(sources)]
        os.link(source, root / "episodes" / f"ep-{index:06d}.npz")
    start = time.perf_counter()
    result = pack_store(root)
    seconds = time.perf_counter() - start
    if result["episodes"]:
        print(
            f"packed {result['episodes']} episodes in {seconds:.0f} s "
            f"({result['episodes'] / seconds:.0f} episodes/s, {result['bytes'] / 1e9:.2f} GB)",
            flush=True,
        )
    return root


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loader_speed", description=__doc__)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, required=True, help="the store (built if absent)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--budget", type=float, default=512.0, help="memory budget, MB")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration
    args = parser.parse_args(argv)
    if args.one:
        kind, batch, threads = args.one.split(",")
        row = measure(args.dir, kind, int(batch), "stream", int(threads), args.seconds, args.budget)
        print("ROW " + json.dumps(row))
        return 0
    from bench.run import format_table
    from robolearn.data.pipeline import EpisodeData, PipelineConfig

    build_bridge_store(args.dir, args.episodes)
    data = EpisodeData(args.dir, pipeline=PipelineConfig(mode="stream"), progress=False)
    print(
        f"store: {len(data.paths)} episodes, {int(data.num_steps.sum())} steps, decoded "
        f"{data.decoded_bytes() / 1e9:.2f} GB; budget {args.budget:.0f} MB",
        flush=True,
    )
    rows = []
    for kind in ("transition", "window"):
        for batch in (32, 256):
            for threads in args.threads:
                cold = _drop_caches()
                one = f"{kind},{batch},{threads}"
                out = subprocess.run(
                    [sys.executable, "-m", "bench.loader_speed", "--dir", str(args.dir),
                     "--seconds", str(args.seconds), "--budget", str(args.budget), "--one", one],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                (line,) = [x for x in out.stdout.splitlines() if x.startswith("ROW ")]
                row = json.loads(line[4:])
                row["cache"] = "cold" if cold else "warm"
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
