"""LeRobot datasets (codebase v2.1 and v3.0, a local directory) -> store episodes.

The layouts and their checks are in robolearn.data.lerobot_meta; the export (store -> LeRobot
v3.0) in robolearn.data.lerobot_export. Per episode, streaming (from a v3.0 file of many episodes
only the row groups and rows of that episode are read, filtered on episode_index; frames are
decoded by ffmpeg straight to the target size):

    image    the camera (default: the first video or image feature), resized to N x N ("area"
             scaling; non-square frames are stretched, or center-cropped to a square first)
    proprio  the state feature ("observation.state") as float32; its names in meta.extra
    state    float64 "robolearn.sim_state" where the dataset has it (a robolearn export), else S = 0
    action   the action feature ("action"), see below; action_names from the feature's names
    reward   "next.reward" if present, else 0;  success: "next.success" if present, else False
    meta     instruction: the episode's first task string (all of them in extra.instructions
             when there are several); task: a name given, else the dataset folder's name;
             fps from info.json; source "imported"

Time alignment. LeRobot frame i holds the observation o_i and the action a_i taken at it;
next.reward[i] and next.success[i] are the outcome of a_i. A store episode keeps all N frames
as observations and the first T = N-1 actions, as the RLDS import does: the last frame's action
has no observation after it and goes to meta.extra["dropped_final_action"] (source units).

    reward[i] = next.reward[i] for i < T, and reward[T-1] += next.reward[N-1] (the return is kept)
    success[i+1] = next.success[i] for i < T, success[T] |= next.success[N-1], success[0] = False

Actions. If the dataset's action min/max (meta/stats.json; for v2.1 the union of
meta/episodes_stats.jsonl; failing both, the selected episodes' action columns) all lie in
[-1, 1], actions are kept exactly. Otherwise every dimension is mapped to [-1, 1] with that
min/max: a = (source - offset) / scale, offset = (max + min) / 2, scale = (max - min) / 2 (1
where a dimension is constant); meta.extra holds action_offset and action_scale, so source =
a * scale + offset. Values outside [-1, 1] (stale stats) are clipped and counted.

A robolearn export (robolearn.data.lerobot_export) carries each episode's EpisodeMeta in the
episodes parquet; it is restored as it was, so store -> LeRobot -> store keeps every non-image
array and the meta.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from robolearn.core.config import from_dict
from robolearn.core.errors import RobolearnError
from robolearn.data import ffmpeg
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.lerobot_meta import (
    META_COLUMN,
    SIM_STATE_KEY,
    EpisodeRef,
    LeRobotConfig,
    LeRobotDataset,
    LeRobotError,
    episode_rows,
    open_dataset,
    parse_episodes,
    read_columns,
    short,
)

__all__ = [
    "Imported",
    "LeRobotConfig",
    "LeRobotDataset",
    "LeRobotError",
    "iter_lerobot_episodes",
    "open_dataset",
    "parse_episodes",
    "read_lerobot_episode",
]

_EPS = 1e-6


@dataclasses.dataclass
class Imported:
    """One episode read: the episode (None when skipped, `note` says why) and its clipped count."""

    ref: EpisodeRef
    episode: Episode | None
    note: str = ""
    clipped: int = 0


def iter_lerobot_episodes(ds: LeRobotDataset, cfg: LeRobotConfig) -> Iterator[Imported]:
    """Every selected episode of an opened dataset, in order, `cfg.workers` decoded at once
    (a bounded window: at most 2 x workers episodes in memory)."""
    if cfg.workers == 1:
        for ref in ds.episodes:
            yield read_lerobot_episode(ds, ref, cfg)
        return
    threads = max(1, (os.cpu_count() or 1) // cfg.workers)
    with concurrent.futures.ThreadPoolExecutor(cfg.workers) as pool:
        window: collections.deque = collections.deque()
        refs = iter(ds.episodes)
        try:
            for ref in refs:
                window.append(pool.submit(read_lerobot_episode, ds, ref, cfg, threads))
                if len(window) >= 2 * cfg.workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


def read_lerobot_episode(
    ds: LeRobotDataset, ref: EpisodeRef, cfg: LeRobotConfig, threads: int = 0
) -> Imported:
    """One LeRobot episode -> an Episode (see the module docstring for the mapping); `threads`:
    ffmpeg's decoding threads (0: its own choice)."""
    where = f"{ref.data_file}: episode {ref.index}"
    table = episode_rows(ds, ref, ds.columns)
    n = table.num_rows
    if n != ref.length:
        raise LeRobotError(f"{where}: {n} rows, the episode metadata says {ref.length} frames")
    if n < 2:
        return Imported(ref, None, f"{where}: {n} frame(s), need 2 or more; skipped")
    raw_action = _column(table, ds.action_key, len(ds.action_names), where)
    action, clipped = _normalize_action(ds, raw_action[:-1])
    arrays = _frame_arrays(ds, table, where)
    timestamps = arrays.pop("timestamp")
    image = _frames(ds, ref, table, cfg, timestamps, threads, where)
    task_indices = arrays.pop("task_index")
    instructions = [ds.tasks.get(t, "") for t in dict.fromkeys(task_indices)] or list(ref.tasks)
    instructions = [t for t in instructions if t]
    if ref.exported_meta is not None:
        meta, arrays["success"][0] = _exported_meta(ref, where)
        if cfg.task is not None:
            meta = dataclasses.replace(meta, task=cfg.task)
    else:
        meta = _meta(ds, ref, cfg, instructions, raw_action[-1], clipped)
    episode = Episode(image=image, action=action, meta=meta, **arrays)
    try:
        episode.check()
    except ValueError as exc:
        raise LeRobotError(f"{where}: {exc}") from exc
    return Imported(ref, episode, "", clipped)


def _frame_arrays(ds: LeRobotDataset, table: pa.Table, where: str) -> dict:
    """proprio, state, reward, success (aligned as the module docstring says), and the frames'
    timestamps (None without the column) and task indices."""
    n = table.num_rows
    names = table.column_names
    out = {"proprio": np.zeros((n, 0), np.float32), "state": np.zeros((n, 0), np.float64)}
    if ds.state_key:
        out["proprio"] = _column(table, ds.state_key, len(ds.state_names), where, np.float32)
    if SIM_STATE_KEY in names:
        dim = int(np.prod(ds.info["features"][SIM_STATE_KEY]["shape"]))
        out["state"] = _column(table, SIM_STATE_KEY, dim, where, np.float64)
    out["reward"] = np.zeros(n - 1, np.float32)
    if "next.reward" in names:
        src = _column(table, "next.reward", 1, where, np.float32)[:, 0]
        out["reward"] = src[:-1].copy()
        out["reward"][-1] += src[-1]
    out["success"] = np.zeros(n, bool)
    if "next.success" in names:
        src = _column(table, "next.success", 1, where, bool)[:, 0]
        out["success"][1:] = src[:-1]
        out["success"][-1] |= src[-1]
    out["timestamp"] = None
    if "timestamp" in names:
        out["timestamp"] = _column(table, "timestamp", 1, where, np.float64)[:, 0]
    out["task_index"] = []
    if "task_index" in names:
        out["task_index"] = _column(table, "task_index", 1, where, np.int64)[:, 0].tolist()
    return out


def _column(table: pa.Table, key: str, dim: int, where: str, dtype=None) -> np.ndarray:
    """Column `key` as [rows, dim] (`dtype` if given); NaN or inf is an error."""
    values = read_columns(table, key, dim, where)
    if dtype is not None:
        values = values.astype(dtype)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise LeRobotError(f"{where}: column {key!r} contains NaN or inf")
    return values


def _normalize_action(ds: LeRobotDataset, raw: np.ndarray) -> tuple[np.ndarray, int]:
    if ds.action_offset is None:
        out = raw.astype(np.float32)
    else:
        out = ((raw.astype(np.float64) - ds.action_offset) / ds.action_scale).astype(np.float32)
    clipped = int(np.count_nonzero(np.abs(out) > 1.0 + _EPS))
    return np.clip(out, -1.0, 1.0).astype(np.float32), clipped


def _meta(ds, ref, cfg, instructions, final_action, clipped) -> EpisodeMeta:
    robot = ds.info.get("robot_type") or "robot"
    if ds.action_offset is None:
        meaning = (
            f"LeRobot {robot} {ds.action_key!r} (imported from {ds.name}): the source values, "
            "already in [-1, 1]"
        )
    else:
        meaning = (
            f"LeRobot {robot} {ds.action_key!r} (imported from {ds.name}), each dimension "
            f"mapped to [-1, 1] by the dataset's min/max ({ds.action_stats}): source = "
            "a * extra.action_scale + extra.action_offset"
        )
    extra = {
        "lerobot_dataset": str(ds.root),
        "codebase_version": ds.version,
        "robot_type": ds.info.get("robot_type"),
        "episode_index": ref.index,
        "camera": ds.camera,
        "source_image_size": list(ds.source_hw),
        "image_fit": cfg.fit,
        "state_key": ds.state_key,
        "proprio_names": list(ds.state_names),
        "action_key": ds.action_key,
        "action_offset": None if ds.action_offset is None else ds.action_offset.tolist(),
        "action_scale": None if ds.action_scale is None else ds.action_scale.tolist(),
        "action_stats": ds.action_stats,
        "clipped_action_values": clipped,
        "dropped_final_action": np.asarray(final_action, np.float64).tolist(),
        "reward": "next.reward" if "next.reward" in ds.info["features"] else "none (0)",
        "success": "next.success" if "next.success" in ds.info["features"] else "none (False)",
    }
    if len(instructions) > 1:
        extra["instructions"] = instructions
    return EpisodeMeta(
        task=cfg.task or ds.name,
        instruction=instructions[0] if instructions else "",
        source="imported",
        fps=ds.fps,
        action_meaning=meaning,
        action_names=ds.action_names,
        policy=f"lerobot:{ds.name}",
        extra=extra,
    )


def _exported_meta(ref: EpisodeRef, where: str) -> tuple[EpisodeMeta, bool]:
    try:
        data = json.loads(ref.exported_meta)
        fields = dict(data["meta"])
        fields["action_names"] = tuple(fields.get("action_names", ()))
        fields["layout"] = tuple(fields.get("layout", ()))
        return from_dict(EpisodeMeta, fields, where=f"{where}: {META_COLUMN}"), bool(
            data.get("first_success", False)
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RobolearnError) as exc:
        raise LeRobotError(f"{where}: column {META_COLUMN!r} unreadable ({short(exc)})") from exc


def _out_size(ds: LeRobotDataset, cfg: LeRobotConfig) -> tuple[int, int]:
    if cfg.image_size is not None:
        return cfg.image_size, cfg.image_size
    h, w = ds.source_hw
    return (min(h, w),) * 2 if cfg.fit == "crop" else (h, w)


def _frames(ds, ref, table, cfg, timestamps, threads, where) -> np.ndarray:
    n = table.num_rows
    out_h, out_w = _out_size(ds, cfg)
    if ds.camera_dtype == "image":
        return _parquet_images(ds, table, (out_h, out_w), cfg.fit, where)
    if timestamps is None:
        picks = np.arange(n)
    else:
        picks = np.rint((timestamps - timestamps[0]) * ds.fps).astype(np.int64)
        if np.any(picks < 0) or np.any(np.diff(picks) < 0):
            raise LeRobotError(f"{where}: column 'timestamp' is not increasing")
        picks += int(round(timestamps[0] * ds.fps))
    count = int(picks[-1]) + 1
    frames = ffmpeg.decode(
        ref.video_file,
        ref.video_from,
        count,
        ds.fps,
        (out_h, out_w),
        crop=cfg.fit == "crop",
        threads=threads,
        where=f"{ref.video_file}: episode {ref.index}",
    )
    return np.ascontiguousarray(frames[picks])


def _parquet_images(ds, table, size, fit, where) -> np.ndarray:
    col = table.column(ds.camera).combine_chunks()
    if pa.types.is_struct(col.type):
        names = [col.type.field(i).name for i in range(col.type.num_fields)]
        if "bytes" not in names:
            raise LeRobotError(f"{where}: column {ds.camera!r} has no 'bytes' field")
        blobs = col.field("bytes").to_pylist()
        paths = col.field("path").to_pylist() if "path" in names else [None] * len(blobs)
    elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        blobs, paths = col.to_pylist(), [None] * len(col)
    else:
        raise LeRobotError(f"{where}: column {ds.camera!r} holds {col.type}, need image bytes")
    frames = []
    for i, (blob, rel) in enumerate(zip(blobs, paths, strict=True)):
        if blob is None and rel:
            file = Path(rel) if Path(rel).is_absolute() else ds.root / rel
            blob = file.read_bytes() if file.is_file() else None
        if blob is None:
            raise LeRobotError(f"{where}: column {ds.camera!r} row {i} has no image bytes")
        bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise LeRobotError(f"{where}: column {ds.camera!r} row {i} is not a decodable image")
        frames.append(fit_image(bgr[..., ::-1], size, fit == "crop"))
    return np.ascontiguousarray(np.stack(frames))


def fit_image(rgb: np.ndarray, size: tuple[int, int], crop: bool) -> np.ndarray:
    """An [H, W, 3] image center-cropped to a square (with `crop`) and resized (INTER_AREA)."""
    if crop:
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    if rgb.shape[:2] != tuple(size):
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return rgb
