"""`robolearn data import lerobot` and `robolearn data export lerobot`: LeRobot datasets (v2.1 and
v3.0, a local directory) into an episode store, and an episode store out as LeRobot v3.0.

Import: every selected episode becomes one store episode: the camera's frames resized to N x N, the
state feature as proprio, the actions (all but the last frame's) kept exactly where the dataset's
actions lie in [-1, 1], else mapped per dimension to [-1, 1] with the dataset's min/max (offset and
scale in meta.extra), next.reward / next.success where present. The dataset is checked first
(info.json, features, every data and video file), so bad input fails before the store is created.

Export: LeRobot v3.0 (meta/info.json, data/chunk-000/file-000.parquet, meta/episodes, tasks,
stats.json, H.264 mp4 or PNG frames in the parquet) that lerobot's LeRobotDataset loads; importing
it back gives every non-image array and the episode metadata exactly. docs/data-formats.md has
the details.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Literal

from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions, make_run_dir


@dataclasses.dataclass(frozen=True)
class ImportLeRobotConfig:
    """What `robolearn data import lerobot` converts (see the module docstring)."""

    dir: str = dataclasses.field(default="", metadata=flag(positional=True, metavar="DIR"))
    """LeRobot dataset directory (meta/info.json, data/, videos/), codebase v2.1 or v3.0"""
    camera: str | None = None
    """camera feature (default: the first video or image feature of meta/info.json)"""
    state_key: str = "observation.state"
    """feature read as proprio; 'none' for no proprio"""
    action_key: str = "action"
    """feature read as the action"""
    image_size: int = 64
    """resize frames to N x N pixels; 0 keeps the source size"""
    crop: bool = False
    """center-crop non-square frames to a square before resizing (default: stretch)"""
    task: str | None = None
    """task name written into each episode (default: the dataset folder's name)"""
    episodes: str = ""
    """episode indices to import, e.g. 0,3-5 (default: every episode the metadata lists)"""
    skip_missing: bool = False
    """import the episodes whose files are present, skipping the others (default: refuse)"""
    workers: int = 2
    """episodes decoded at once (each by its own ffmpeg)"""

    def __post_init__(self):
        if not self.dir:
            raise ConfigError("give the LeRobot dataset directory")
        if self.image_size < 0:
            raise ConfigError(f"--image-size must be >= 0, got {self.image_size}")

    def lerobot(self):
        """The importer's config."""
        from robolearn.data.lerobot import LeRobotConfig, parse_episodes

        return LeRobotConfig(
            camera=self.camera,
            state_key="" if self.state_key.lower() in ("", "none") else self.state_key,
            action_key=self.action_key,
            image_size=self.image_size or None,
            fit="crop" if self.crop else "stretch",
            task=self.task,
            episodes=parse_episodes(self.episodes),
            skip_missing=self.skip_missing,
            workers=self.workers,
        )


@dataclasses.dataclass(frozen=True)
class ExportLeRobotConfig:
    """What `robolearn data export lerobot` writes (see the module docstring)."""

    store: str = dataclasses.field(default="", metadata=flag(positional=True, metavar="STORE"))
    """episode store directory"""
    fps: float | None = None
    """frames per second of the dataset (default: the episodes' own, which must agree)"""
    images: Literal["video", "png"] = "video"
    """video: an mp4 per camera file (small, lossy); png: PNG bytes in the parquet (lossless)"""
    codec: Literal["h264", "av1"] = "h264"
    """video codec: h264 (libx264) or av1 (SVT-AV1, LeRobot's own default; even sizes only)"""
    crf: int = 18
    """video quality: the encoder's constant rate factor (lower is closer to the source)"""
    robot_type: str | None = None
    """robot_type in meta/info.json (default: the episodes' meta.extra robot_type, if any)"""

    def __post_init__(self):
        if not self.store:
            raise ConfigError("give the episode store directory")


def import_lerobot(
    root: str | Path, out_dir: str | Path | None, cfg, progress: bool = True
) -> dict:
    """Import the LeRobot dataset at `root` into the store at `out_dir` (None: a new run
    directory under ./runs/; an existing store is appended to). The dataset is opened and
    checked (metadata, parquet footers and columns, video frame counts) before anything is
    written, and the store is created only once the first episode is decoded, so bad input
    leaves no store behind; an error in a later episode says how many were written (each
    complete). Returns a summary: episodes, steps, frames, skipped (under 2 frames), missing
    (--skip-missing), clipped action values, input bytes, seconds, rates and the store."""
    from robolearn.core.errors import RobolearnError
    from robolearn.data.lerobot import iter_lerobot_episodes, open_dataset
    from robolearn.data.store import create_store, write_episode

    start = time.perf_counter()
    ds = open_dataset(root, cfg)
    if out_dir is not None and Path(out_dir).exists():
        create_store(out_dir)  # an existing --out must be a store (or empty) before decoding
    if ds.missing:
        index, path = ds.missing[0]
        print(
            f"skipped {len(ds.missing)} episode(s) whose files are missing (the first: episode "
            f"{index}, {path})",
            file=sys.stderr,
        )
    store = None
    summary = {"episodes": 0, "steps": 0, "frames": 0, "skipped": 0, "clipped_action_values": 0}
    summary["missing"] = len(ds.missing)
    bar = Progress(len(ds.episodes), "episode", enabled=progress)
    items = iter_lerobot_episodes(ds, cfg)
    try:
        for done in range(1, len(ds.episodes) + 1):
            try:
                item = next(items)
            except RobolearnError as exc:
                if store is None:
                    raise
                raise type(exc)(
                    f"{exc} ({summary['episodes']} episodes before it were written to {store})"
                ) from exc
            if item.episode is None:
                summary["skipped"] += 1
                print(f"skipped: {item.note}", file=sys.stderr)
            else:
                if store is None:
                    store = _store(out_dir, cfg, ds)
                write_episode(store, item.episode)
                summary["episodes"] += 1
                summary["steps"] += item.episode.num_steps
                summary["frames"] += item.episode.num_steps + 1
                summary["clipped_action_values"] += item.clipped
            bar.update(done, f"{summary['episodes']} episodes, {summary['frames']} frames")
    finally:
        items.close()
        bar.close()
    if store is None:
        store = _store(out_dir, cfg, ds)
    elapsed = time.perf_counter() - start
    summary["input_bytes"] = ds.input_bytes
    summary["seconds"] = round(elapsed, 3)
    summary["episodes_per_second"] = summary["episodes"] / elapsed if elapsed > 0 else 0.0
    summary["frames_per_second"] = summary["frames"] / elapsed if elapsed > 0 else 0.0
    summary["mb_per_second"] = ds.input_bytes / 1e6 / elapsed if elapsed > 0 else 0.0
    summary["action_scaled"] = ds.action_offset is not None
    summary["version"] = ds.version
    summary["out"] = str(store)
    return summary


def _store(out_dir, cfg, ds) -> Path:
    from robolearn.data.store import create_store

    return create_store(make_run_dir(out_dir, "import", f"lerobot-{cfg.task or ds.name}"))


def main_import(cfg: ImportLeRobotConfig, options: RunOptions) -> None:
    """`robolearn data import lerobot`: import and print what was written."""
    result = import_lerobot(cfg.dir, options.out, cfg.lerobot(), progress=options.progress)
    scaled = "scaled to [-1, 1] by the dataset's min/max" if result["action_scaled"] else "kept"
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps from LeRobot "
        f"{result['version']} ({result['episodes_per_second']:.2f} episodes/s, "
        f"{result['frames_per_second']:.0f} frames/s; actions {scaled}, "
        f"{result['clipped_action_values']} values clipped; {result['missing']} missing and "
        f"{result['skipped']} too short skipped)"
    )
    print(f"store: {result['out']}")


def main_export(cfg: ExportLeRobotConfig, options: RunOptions) -> None:
    """`robolearn data export lerobot`: write the dataset and say where it is."""
    from robolearn.data.lerobot_export import ExportConfig, export_lerobot
    from robolearn.data.store import list_episodes

    export = ExportConfig(fps=cfg.fps, images=cfg.images, codec=cfg.codec, crf=cfg.crf,
                          robot_type=cfg.robot_type)  # fmt: skip
    total = len(list_episodes(cfg.store))
    bar = Progress(total, "episode", enabled=options.progress)
    start = time.perf_counter()
    try:
        result = export_lerobot(
            cfg.store, options.out, export, progress=lambda done, _: bar.update(done)
        )
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    images = f"{cfg.codec} video" if cfg.images == "video" else "PNG frames in the parquet"
    print(
        f"exported {result['episodes']} episodes, {result['frames']} frames, {result['tasks']} "
        f"task(s) at {result['fps']:g} fps as LeRobot v3.0 with {images} ({elapsed:.1f} s)"
    )
    print(f"dataset: {result['out']}")
