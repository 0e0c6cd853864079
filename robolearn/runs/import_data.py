"""`robolearn data import rlds`: RLDS TFRecord files -> an episode store, with progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from robolearn.core.errors import RobolearnError
from robolearn.core.progress import Progress
from robolearn.core.rundir import make_run_dir
from robolearn.data.rlds import RldsConfig, iter_rlds_episodes
from robolearn.data.store import create_store, write_episode
from robolearn.data.tfrecord import TFRecordError, iter_records


def check_inputs(paths: list[str | Path]) -> dict[Path, int]:
    """Check every file exists and is an intact TFRecord (framing and both CRCs of every record).

    Cheap next to decoding (checksums run at GB/s), and it means a corrupt, truncated or
    non-TFRecord file fails before anything is written. Returns the record count per file.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise RobolearnError(f"{path}: no such file")
    counts = {path: sum(1 for _ in iter_records(path)) for path in paths}
    for path, count in counts.items():
        if count == 0:
            raise TFRecordError(f"{path}: empty file, no records to import")
    return counts


def import_rlds(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RldsConfig, progress: bool = True
) -> dict:
    """Convert every episode of every RLDS file in `paths` into the store at `out_dir`.

    The inputs are checked (`check_inputs`) before the store is created; `out_dir` None makes a
    new run directory under ./runs/. An existing store is appended to.

    Returns a summary: episodes, steps (actions), skipped records, clipped action values,
    seconds, episodes per second and the store directory. An error while decoding an episode
    names how many episodes were already written (each one complete, as the store guarantees).
    """
    counts = check_inputs(paths)
    store = create_store(make_run_dir(out_dir, "import", f"rlds-{cfg.task}"))
    summary = {"episodes": 0, "steps": 0, "skipped": 0, "clipped_action_values": 0}
    start = time.perf_counter()
    bar = Progress(sum(counts.values()), "record", enabled=progress)
    try:
        for path in counts:
            try:
                _import_file(path, store, cfg, summary, bar)
            except TFRecordError as exc:
                raise TFRecordError(
                    f"{exc} ({summary['episodes']} episodes before it were written to {store})"
                ) from exc
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    summary["seconds"] = round(elapsed, 3)
    summary["episodes_per_second"] = summary["episodes"] / elapsed if elapsed > 0 else 0.0
    summary["out"] = str(store)
    return summary


def _import_file(path: Path, store: Path, cfg: RldsConfig, summary: dict, bar: Progress) -> None:
    for _, episode, note in iter_rlds_episodes(path, cfg):
        if episode is None:
            summary["skipped"] += 1
            print(f"skipped: {note}", file=sys.stderr)
        else:
            write_episode(store, episode)
            summary["episodes"] += 1
            summary["steps"] += episode.num_steps
            summary["clipped_action_values"] += episode.meta.extra["clipped_action_values"]
        bar.update(
            summary["episodes"] + summary["skipped"],
            f"{path.name}: {summary['episodes']} episodes, {summary['steps']} steps",
        )
