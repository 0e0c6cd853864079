"""LeRobot dataset layouts (codebase v2.1 and v3.0): opening a local dataset directory, checking
it, and reading an episode's rows. Only pyarrow is needed, not the lerobot package.

    v2.1  meta/info.json            codebase_version, fps, features (dtype, shape, names),
                                    data_path, video_path, chunks_size
          meta/episodes.jsonl       {"episode_index", "tasks", "length"}, one line per episode
          meta/tasks.jsonl          {"task_index", "task"}, one line per task
          meta/episodes_stats.jsonl per-episode min/max/mean/std of every feature
          data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet          one episode
          videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
    v3.0  meta/info.json            as v2.1; data_path / video_path use chunk_index, file_index
          meta/episodes/chunk-*/file-*.parquet   one row per episode: length, tasks, its data file
                                    (data/chunk_index, data/file_index) and rows
                                    (dataset_from_index, dataset_to_index), per camera its
                                    video file (videos/<key>/chunk_index, file_index) and the
                                    episode's span in it (videos/<key>/from_timestamp, to_timestamp)
          meta/tasks.parquet        task strings (pandas index or a "task" column), task_index
          meta/stats.json           min/max/mean/std/count of every feature over the dataset
          data/chunk-*/file-*.parquet            many episodes, one row per frame
          videos/<key>/chunk-*/file-*.mp4        many episodes back to back

A frame row holds the features (observation.state, action: lists of numbers; next.reward: a
number ...) and timestamp, frame_index, episode_index, index, task_index. A camera is dtype
"video" (an episode's frame i is the mp4's frame at from_timestamp + timestamp_i) or "image"
(PNG/JPEG bytes in a {bytes, path} struct column of the parquet).
"""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.data import ffmpeg

VERSIONS = ("v2.1", "v3.0")
CAMERA_DTYPES = ("video", "image")
SIM_STATE_KEY = "robolearn.sim_state"
META_COLUMN = "robolearn/meta"
FITS = ("stretch", "crop")


class LeRobotError(RobolearnError, ValueError):
    """A LeRobot dataset that cannot be read or written; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class LeRobotConfig:
    """How a LeRobot dataset becomes store episodes.

    camera: the image feature (None: the first video or image feature of info.json).
    state_key: the proprio feature; "" for none (P = 0).
    image_size: frames become image_size x image_size; None keeps the source size.
    fit: "stretch" (resize, as the RLDS import does) or "crop" (center square, then resize).
    task: meta.task of every episode (None: the dataset folder's name, or a robolearn export's own).
    episodes: episode_index values to import (None: every episode of the metadata).
    skip_missing: skip episodes whose data or video file is absent instead of refusing.
    workers: episodes decoded at once (threads; each drives an ffmpeg process).
    """

    camera: str | None = None
    state_key: str = "observation.state"
    action_key: str = "action"
    image_size: int | None = 64
    fit: str = "stretch"
    task: str | None = None
    episodes: tuple[int, ...] | None = None
    skip_missing: bool = False
    workers: int = 1

    def __post_init__(self):
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be in 8..1024 pixels, got {self.image_size}")
        if self.fit not in FITS:
            raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.task is not None and not self.task:
            raise ConfigError("task name must not be empty")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


@dataclasses.dataclass(frozen=True)
class EpisodeRef:
    """Where one episode is: its rows (data file, from..to) and frames (video file, start s)."""

    index: int
    length: int
    tasks: tuple[str, ...]
    data_file: Path
    video_file: Path | None
    video_from: float
    exported_meta: str | None


@dataclasses.dataclass
class LeRobotDataset:
    """An opened, validated dataset: its metadata and the episodes selected for import."""

    root: Path
    version: str
    info: dict
    fps: float
    camera: str
    camera_dtype: str
    source_hw: tuple[int, int]
    state_key: str
    state_names: tuple[str, ...]
    action_key: str
    action_names: tuple[str, ...]
    action_offset: np.ndarray | None
    action_scale: np.ndarray | None
    action_stats: str
    tasks: dict[int, str]
    episodes: list[EpisodeRef]
    missing: list[tuple[int, Path]]
    input_bytes: int

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def columns(self) -> list[str]:
        """The parquet columns an episode needs (those present)."""
        cols = [self.action_key, "timestamp", "frame_index", "task_index"]
        cols += [k for k in (self.state_key, SIM_STATE_KEY, "next.reward", "next.success") if k]
        if self.camera_dtype == "image":
            cols.append(self.camera)
        return [c for c in dict.fromkeys(cols) if c in self.info["features"]]


def open_dataset(root: str | Path, cfg: LeRobotConfig) -> LeRobotDataset:
    """Read the metadata of the LeRobot dataset at `root` and check everything the selected
    episodes need: info.json, the features, and every data and video file (parquet footers and
    columns, mp4 frame counts by packet, no decoding). Nothing is written. Errors are one line
    naming the file and the key."""
    root = Path(root)
    if not root.is_dir():
        raise LeRobotError(f"{root}: no such dataset directory")
    info, info_path = _read_info(root)
    features = info["features"]
    camera, camera_dtype, source_hw = _camera(features, cfg.camera, info_path)
    if camera_dtype == "video" and not isinstance(info.get("video_path"), str):
        raise LeRobotError(f"{info_path}: key 'video_path' missing for video feature {camera!r}")
    action_dim = _vector_dim(features, cfg.action_key, info_path, "--action-key")
    state_names: tuple[str, ...] = ()
    if cfg.state_key:
        state_dim = _vector_dim(features, cfg.state_key, info_path, "--state-key")
        state_names = _names(features[cfg.state_key], state_dim, "state")
    for key in ("next.reward", "next.success"):
        if key in features and int(np.prod(features[key]["shape"])) != 1:
            raise LeRobotError(f"{info_path}: feature {key!r} should hold one value per frame")
    if SIM_STATE_KEY in features:
        _vector_dim(features, SIM_STATE_KEY, info_path, "")

    video_key = camera if camera_dtype == "video" else None
    version = info["codebase_version"]
    if version == "v2.1":
        tasks, listed = _tasks_v21(root), _episodes_v21(root, info, video_key)
    else:
        tasks, listed = _tasks_v30(root), _episodes_v30(root, info, video_key)
    selected = _select(listed, cfg.episodes, root, version)
    present, missing = _present(selected, cfg.skip_missing, root)
    ds = LeRobotDataset(
        root=root,
        version=version,
        info=info,
        fps=float(info["fps"]),
        camera=camera,
        camera_dtype=camera_dtype,
        source_hw=source_hw,
        state_key=cfg.state_key,
        state_names=state_names,
        action_key=cfg.action_key,
        action_names=_names(features[cfg.action_key], action_dim, "action"),
        action_offset=None,
        action_scale=None,
        action_stats="",
        tasks=tasks,
        episodes=present,
        missing=missing,
        input_bytes=0,
    )
    _check_files(ds)
    lo, hi, ds.action_stats = _action_range(ds, action_dim)
    if not (np.all(lo >= -1.0) and np.all(hi <= 1.0)):
        ds.action_offset = (hi + lo) / 2.0
        scale = (hi - lo) / 2.0
        ds.action_scale = np.where(scale > 1e-9, scale, 1.0)
    files = {r.data_file for r in present} | {r.video_file for r in present if r.video_file}
    ds.input_bytes = sum(p.stat().st_size for p in files)
    return ds


def _read_info(root: Path) -> tuple[dict, Path]:
    path = root / "meta" / "info.json"
    info = _read_json(path, "not a LeRobot dataset (no meta/info.json)")
    if not isinstance(info, dict):
        raise LeRobotError(f"{path}: expected a JSON object")
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise LeRobotError(
            f"{path}: codebase_version {version!r} is not supported (only "
            f"{' and '.join(VERSIONS)}; lerobot's convert_dataset_* scripts upgrade older ones)"
        )
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        raise LeRobotError(f"{path}: key 'features' missing or empty")
    for key, ft in features.items():
        if not isinstance(ft, dict) or "dtype" not in ft or not isinstance(ft.get("shape"), list):
            raise LeRobotError(f"{path}: feature {key!r} needs 'dtype' and a 'shape' list")
    fps = info.get("fps")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not fps > 0:
        raise LeRobotError(f"{path}: key 'fps' should be a positive number, got {fps!r}")
    if not isinstance(info.get("data_path"), str):
        raise LeRobotError(f"{path}: key 'data_path' missing or not a string")
    return info, path


def _present(
    selected: list[EpisodeRef], skip_missing: bool, root: Path
) -> tuple[list[EpisodeRef], list[tuple[int, Path]]]:
    """The selected episodes whose files exist, and (index, first absent file) of the others;
    an absent file is an error unless skip_missing."""
    present, missing = [], []
    for ref in selected:
        absent = next((p for p in (ref.data_file, ref.video_file) if p and not p.is_file()), None)
        if absent is None:
            present.append(ref)
        else:
            missing.append((ref.index, absent))
    if missing and not skip_missing:
        index, absent = missing[0]
        raise LeRobotError(
            f"{absent}: missing (episode {index}; {len(missing)} of the {len(selected)} selected "
            "episodes lack a file: pass --skip-missing to import the others, or choose "
            "--episodes)"
        )
    if not present:
        raise LeRobotError(f"{root}: none of the selected episodes has its files")
    return present, missing


def _read_json(path: Path, absent: str) -> Any:
    if not path.is_file():
        raise LeRobotError(f"{path.parent.parent if path.name == 'info.json' else path}: {absent}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeRobotError(f"{path}: not valid JSON ({short(exc)})") from exc


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise LeRobotError(f"{path}: missing (a v2.1 dataset lists its episodes and tasks there)")
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LeRobotError(f"{path}: unreadable ({short(exc)})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LeRobotError(f"{path}: line {number} is not valid JSON ({short(exc)})") from exc
        if not isinstance(row, dict):
            raise LeRobotError(f"{path}: line {number} is not a JSON object")
        rows.append(row)
    return rows


def _camera(features: dict, wanted: str | None, where: Path) -> tuple[str, str, tuple[int, int]]:
    cameras = [k for k, ft in features.items() if ft["dtype"] in CAMERA_DTYPES]
    if wanted is None:
        if not cameras:
            raise LeRobotError(f"{where}: no video or image feature (a store episode needs frames)")
        wanted = cameras[0]
    if wanted not in cameras:
        raise LeRobotError(
            f"{where}: no camera feature {wanted!r}; use --camera with one of: "
            f"{', '.join(cameras) or 'none (this dataset has no video or image feature)'}"
        )
    ft = features[wanted]
    shape = ft["shape"]
    names = ft.get("names") or []
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise LeRobotError(f"{where}: feature {wanted!r} shape should be [H, W, 3], got {shape}")
    if names and names[0] in ("channel", "channels") or (shape[0] == 3 and shape[2] != 3):
        h, w = shape[1], shape[2]  # channels first
    else:
        h, w = shape[0], shape[1]
    return wanted, ft["dtype"], (h, w)


def _vector_dim(features: dict, key: str, where: Path, flag: str) -> int:
    if key not in features:
        numeric = [k for k, ft in features.items() if ft["dtype"].startswith(("float", "int"))]
        hint = f"; choose one with {flag}" if flag else ""
        raise LeRobotError(
            f"{where}: no feature {key!r}{hint} (numeric features: {', '.join(numeric) or 'none'})"
        )
    ft = features[key]
    if not str(ft["dtype"]).startswith(("float", "int")):
        raise LeRobotError(f"{where}: feature {key!r} has dtype {ft['dtype']!r}, need numbers")
    if len(ft["shape"]) != 1 or not isinstance(ft["shape"][0], int) or ft["shape"][0] < 1:
        raise LeRobotError(f"{where}: feature {key!r} shape should be [D], got {ft['shape']}")
    return ft["shape"][0]


def _names(ft: dict, dim: int, prefix: str) -> tuple[str, ...]:
    """A feature's per-dimension names: a list, a list holding one list (older ports), or a
    dict {"motors": [...]}; numbered names where they are absent or do not fit."""
    names = ft.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == 1 and isinstance(names[0], list):
        names = names[0]
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        return tuple(names)
    return tuple(f"{prefix}_{i}" for i in range(dim))


def _format(template: str, where: Path, key: str, **fields) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise LeRobotError(f"{where}: key {key!r} template {template!r} ({short(exc)})") from exc


def _tasks_v21(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.jsonl"
    out = {}
    for row in _read_jsonl(path):
        if not isinstance(row.get("task_index"), int) or not isinstance(row.get("task"), str):
            raise LeRobotError(f"{path}: every line needs 'task_index' and 'task'")
        out[row["task_index"]] = row["task"]
    return out


def _episodes_v21(root: Path, info: dict, video_key: str | None) -> list[EpisodeRef]:
    path = root / "meta" / "episodes.jsonl"
    info_path = root / "meta" / "info.json"
    chunks = info.get("chunks_size", 1000)
    if not isinstance(chunks, int) or chunks < 1:
        raise LeRobotError(f"{info_path}: key 'chunks_size' should be a positive integer")
    refs = []
    for row in _read_jsonl(path):
        index, length = row.get("episode_index"), row.get("length")
        if not isinstance(index, int) or not isinstance(length, int):
            raise LeRobotError(f"{path}: every line needs integer 'episode_index' and 'length'")
        fields = {"episode_chunk": index // chunks, "episode_index": index}
        data = root / _format(info["data_path"], info_path, "data_path", **fields)
        video = None
        if video_key:
            video = root / _format(
                info["video_path"], info_path, "video_path", video_key=video_key, **fields
            )
        tasks = tuple(t for t in row.get("tasks") or () if isinstance(t, str))
        refs.append(EpisodeRef(index, length, tasks, data, video, 0.0, None))
    return refs


def _tasks_v30(root: Path) -> dict[int, str]:
    path = root / "meta" / "tasks.parquet"
    table = _read_parquet(path, None)
    if "task_index" not in table.column_names:
        raise LeRobotError(f"{path}: column 'task_index' missing")
    strings = [
        n
        for n in table.column_names
        if n != "task_index" and pa.types.is_string(table.schema.field(n).type)
    ]
    if not strings:
        raise LeRobotError(f"{path}: no column of task strings (expected 'task' or the index)")
    key = "task" if "task" in strings else strings[0]
    indices = table.column("task_index").to_pylist()
    return dict(zip(indices, table.column(key).to_pylist(), strict=True))


def _episodes_v30(root: Path, info: dict, video_key: str | None) -> list[EpisodeRef]:
    folder = root / "meta" / "episodes"
    info_path = root / "meta" / "info.json"
    paths = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not paths:
        raise LeRobotError(f"{folder}: no episodes parquet (chunk-*/file-*.parquet)")
    need = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    if video_key:
        need += [f"videos/{video_key}/{k}" for k in ("chunk_index", "file_index", "from_timestamp")]
    refs = []
    for path in paths:
        schema = _read_schema(path)
        missing = [c for c in need if c not in schema.names]
        if missing:
            raise LeRobotError(f"{path}: column {missing[0]!r} missing")
        extra = [c for c in ("tasks", META_COLUMN) if c in schema.names]
        table = _read_parquet(path, need + extra)
        cols = {name: table.column(name).to_pylist() for name in table.column_names}
        for i in range(table.num_rows):
            fields = {"chunk_index": cols["data/chunk_index"][i]}
            fields["file_index"] = cols["data/file_index"][i]
            data = root / _format(info["data_path"], info_path, "data_path", **fields)
            video, start = None, 0.0
            if video_key:
                vfields = {
                    "chunk_index": cols[f"videos/{video_key}/chunk_index"][i],
                    "file_index": cols[f"videos/{video_key}/file_index"][i],
                }
                video = root / _format(
                    info["video_path"], info_path, "video_path", video_key=video_key, **vfields
                )
                start = float(cols[f"videos/{video_key}/from_timestamp"][i])
            ep_tasks = tuple(t for t in (cols.get("tasks") or [()] * table.num_rows)[i] or ())
            meta = cols[META_COLUMN][i] if META_COLUMN in cols else None
            refs.append(
                EpisodeRef(
                    int(cols["episode_index"][i]),
                    int(cols["length"][i]),
                    ep_tasks,
                    data,
                    video,
                    start,
                    meta,
                )
            )
    return refs


def _select(
    listed: list[EpisodeRef], wanted: tuple[int, ...] | None, root: Path, version: str
) -> list[EpisodeRef]:
    if wanted is None:
        return listed
    by_index = {r.index: r for r in listed}
    where = "meta/episodes.jsonl" if version == "v2.1" else "meta/episodes/"
    for index in wanted:
        if index not in by_index:
            span = f"{min(by_index)}-{max(by_index)}" if by_index else "none"
            raise LeRobotError(f"{root / where}: lists no episode {index} (episodes: {span})")
    return [by_index[i] for i in dict.fromkeys(wanted)]


def _check_files(ds: LeRobotDataset) -> None:
    """Every selected episode's parquet (footer, columns) and video (frame count) is usable."""
    features = ds.info["features"]
    need = [ds.action_key] + ([ds.state_key] if ds.state_key else [])
    if ds.camera_dtype == "image":
        need.append(ds.camera)
    checked: set[Path] = set()
    for ref in ds.episodes:
        if ref.data_file in checked:
            continue
        checked.add(ref.data_file)
        schema = _read_schema(ref.data_file)
        for key in need + [k for k in ds.columns if k in features]:
            if key not in schema.names:
                raise LeRobotError(f"{ref.data_file}: column {key!r} missing")
        if ds.version == "v3.0" and "episode_index" not in schema.names:
            raise LeRobotError(f"{ref.data_file}: column 'episode_index' missing")
        if ds.version == "v2.1":
            rows = pq.ParquetFile(ref.data_file).metadata.num_rows
            if rows != ref.length:
                raise LeRobotError(
                    f"{ref.data_file}: {rows} rows, meta/episodes.jsonl says episode "
                    f"{ref.index} has {ref.length} frames"
                )
    if ds.camera_dtype != "video":
        return
    needed: dict[Path, int] = collections.defaultdict(int)
    for ref in ds.episodes:
        end = round(ref.video_from * ds.fps) + ref.length
        needed[ref.video_file] = max(needed[ref.video_file], end)
    for path, frames in needed.items():
        have = ffmpeg.count_frames(path)
        if have < frames:
            raise LeRobotError(
                f"{path}: {have} video frames, the episodes in it need {frames} (truncated "
                "file, or a video shorter than its episodes)"
            )


def _action_range(ds: LeRobotDataset, dim: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The dataset's per-dimension action min and max, and where they come from."""
    key = ds.action_key
    stats_path = ds.root / "meta" / "stats.json"
    if stats_path.is_file():
        stats = _read_json(stats_path, "")
        entry = stats.get(key) if isinstance(stats, dict) else None
        if isinstance(entry, dict) and "min" in entry and "max" in entry:
            lo = _stat_vector(entry["min"], dim, stats_path, f"{key}.min")
            hi = _stat_vector(entry["max"], dim, stats_path, f"{key}.max")
            return lo, hi, "meta/stats.json"
    ep_stats = ds.root / "meta" / "episodes_stats.jsonl"
    if ds.version == "v2.1" and ep_stats.is_file():
        lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
        for row in _read_jsonl(ep_stats):
            entry = (row.get("stats") or {}).get(key)
            if not isinstance(entry, dict) or "min" not in entry or "max" not in entry:
                raise LeRobotError(
                    f"{ep_stats}: episode {row.get('episode_index')}: no {key} min/max"
                )
            lo = np.minimum(lo, _stat_vector(entry["min"], dim, ep_stats, f"{key}.min"))
            hi = np.maximum(hi, _stat_vector(entry["max"], dim, ep_stats, f"{key}.max"))
        if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
            return lo, hi, "meta/episodes_stats.jsonl"
    lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
    for ref in ds.episodes:
        table = episode_rows(ds, ref, [key])
        values = read_columns(table, key, dim, ref.data_file).astype(np.float64)
        lo, hi = np.minimum(lo, values.min(axis=0)), np.maximum(hi, values.max(axis=0))
    return lo, hi, "the selected episodes"


def _stat_vector(value: Any, dim: int, path: Path, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise LeRobotError(f"{path}: {key} is not a list of numbers") from exc
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        raise LeRobotError(f"{path}: {key} should be {dim} finite numbers, got {arr.size}")
    return arr


def episode_rows(ds: LeRobotDataset, ref: EpisodeRef, columns: list[str]) -> pa.Table:
    """The rows of one episode, in frame order: the whole file (v2.1) or, in a v3.0 file of many
    episodes, only the row groups and rows whose episode_index is this episode's."""
    filters = None
    if ds.version == "v3.0":
        filters = [("episode_index", "=", ref.index)]
    cols = list(
        dict.fromkeys(
            [*columns, *(["frame_index"] if "frame_index" in ds.info["features"] else [])]
        )
    )
    table = _read_parquet(ref.data_file, cols, filters)
    if "frame_index" in table.column_names and table.num_rows > 1:
        order = np.argsort(
            read_columns(table, "frame_index", 1, ref.data_file)[:, 0], kind="stable"
        )
        if np.any(order != np.arange(len(order))):
            table = table.take(pa.array(order))
    return table


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise LeRobotError(f"{path}: not a readable parquet file ({short(exc)})") from exc


def _read_parquet(path: Path, columns: list[str] | None, filters=None) -> pa.Table:
    if not path.is_file():
        raise LeRobotError(f"{path}: missing")
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise LeRobotError(f"{path}: not a readable parquet file ({short(exc)})") from exc


def read_columns(table: pa.Table, key: str, dim: int, where) -> np.ndarray:
    """Column `key` as an array [rows, dim]: list / fixed-size-list columns or scalars (dim 1)."""
    if key not in table.column_names:
        raise LeRobotError(f"{where}: column {key!r} missing")
    col = table.column(key).combine_chunks() if table.num_rows else table.column(key)
    if isinstance(col, pa.ChunkedArray):
        col = pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type)
    if col.null_count:
        raise LeRobotError(f"{where}: column {key!r} has missing values")
    rows = len(col)
    kind = col.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        if pa.types.is_fixed_size_list(kind):
            lengths = np.full(rows, kind.list_size)
        else:
            lengths = col.value_lengths().to_numpy(zero_copy_only=False)
        if rows and np.any(lengths != dim):
            bad = int(np.flatnonzero(lengths != dim)[0])
            raise LeRobotError(
                f"{where}: column {key!r} row {bad} holds {lengths[bad]} values, info.json "
                f"says {dim}"
            )
        values = col.flatten()
        if values.null_count:
            raise LeRobotError(f"{where}: column {key!r} has missing values")
        if not _numeric(values.type):
            raise LeRobotError(f"{where}: column {key!r} holds {values.type}, need numbers")
        return values.to_numpy(zero_copy_only=False).reshape(rows, dim)
    if not _numeric(kind):
        raise LeRobotError(f"{where}: column {key!r} holds {kind}, need numbers")
    if dim != 1:
        raise LeRobotError(f"{where}: column {key!r} holds one value per row, info.json says {dim}")
    return col.to_numpy(zero_copy_only=False).reshape(rows, 1)


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def short(exc: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_episodes(spec: str) -> tuple[int, ...] | None:
    """ "0,3-5" -> (0, 3, 4, 5); "" -> None (all). ConfigError on anything else."""
    if not spec.strip():
        return None
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            start, stop = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ConfigError(f"--episodes: {part!r} is not N or N-M (e.g. 0,3-5)") from None
        if start < 0 or stop < start:
            raise ConfigError(f"--episodes: {part!r} is not an increasing range of indices >= 0")
        out.extend(range(start, stop + 1))
    return tuple(dict.fromkeys(out))
