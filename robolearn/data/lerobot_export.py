"""An episode store -> a LeRobot v3.0 dataset, laid out as lerobot 0.6 writes it (so its
LeRobotDataset loads it):

    meta/info.json                      codebase_version "v3.0", fps, features, path templates
    meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, data file and rows,
                                        video file and from/to timestamps, stats/<feature>/*,
                                        and "robolearn/meta" (the EpisodeMeta as JSON)
    meta/tasks.parquet                  task strings (the pandas index) -> task_index
    meta/stats.json                     min/max/mean/std/count per feature (images per channel)
    data/chunk-000/file-000.parquet     one row per frame, every episode (a new file past 100 MB)
    videos/observation.image/chunk-000/file-000.mp4   every episode back to back (past 500 MB,
                                        a new file); or, with images="png", PNG bytes in the parquet

One row per observation: T+1 rows for an episode of T steps. LeRobot has an action per frame, so
the last frame repeats the last action (a hold) and is the frame with next.done = True.

    observation.image    video (H.264 by default; AV1 = LeRobot's own default, even sizes only)
                         or image (PNG in the parquet: lossless)
    observation.state    float32 [P]   proprio (names: meta.extra proprio_names, or the WidowX's)
    action               float32 [A]   the store's actions in [-1, 1]; their units: the meta
    next.reward          float32       reward[i] (the reward after action i); 0 on the last frame
    next.success         bool          success[i+1]; success[T] on the last frame
    next.done            bool          True on the last frame
    robolearn.sim_state  float64 [S]   state (simulator qpos/qvel), only where S > 0
    timestamp, frame_index, episode_index, index, task_index     as LeRobot defines them

The task string of an episode is its instruction (its task name where it has none). Names not
starting with "observation." or "action" are not taken as policy inputs by lerobot. The success
at the first frame, which next.success cannot hold, is in "robolearn/meta" with the meta, so
robolearn.data.lerobot imports an export back exactly (every non-image array and the meta).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.core.errors import ConfigError
from robolearn.core.spec import PROPRIO_NAMES
from robolearn.data import ffmpeg
from robolearn.data.episode import Episode
from robolearn.data.lerobot_meta import META_COLUMN, SIM_STATE_KEY, LeRobotError
from robolearn.data.store import list_episodes, read_episode

IMAGE_KEY = "observation.image"
IMAGE_MODES = ("video", "png")
CHUNKS_SIZE = 1000
ROW_GROUP_ROWS = 10_000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
FRAME_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How a store becomes a LeRobot v3.0 dataset.

    fps: frames per second written (None: the episodes' meta.fps, which must agree).
    images: "video" (mp4, `codec`) or "png" (PNG bytes in the parquet, lossless).
    codec: "h264" (libx264) or "av1" (libsvtav1).
    crf: the encoder's constant rate factor (lower: closer to the source, bigger files).
    robot_type: info.json's robot_type (None: the first episode's meta.extra robot_type, if any).
    data_file_mb, video_file_mb: a new data / video file once one passes this size.
    """

    fps: float | None = None
    images: str = "video"
    codec: str = "h264"
    crf: int = 18
    robot_type: str | None = None
    data_file_mb: int = 100
    video_file_mb: int = 500

    def __post_init__(self):
        if self.images not in IMAGE_MODES:
            raise ConfigError(
                f"images must be one of {', '.join(IMAGE_MODES)}, got {self.images!r}"
            )
        if self.codec not in ffmpeg.ENCODERS:
            raise ConfigError(
                f"codec must be one of {', '.join(ffmpeg.ENCODERS)}, got {self.codec!r}"
            )
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")
        if not 0 <= self.crf <= 63:
            raise ConfigError(f"crf must be in 0..63, got {self.crf}")


def export_lerobot(store: str | Path, out: str | Path, cfg: ExportConfig, progress=None) -> dict:
    """Write every episode of `store` as a LeRobot v3.0 dataset at `out` (a new or empty
    directory). Episodes are read one at a time; the dataset is assembled in a hidden folder
    beside `out` and renamed into place when complete, so a failure leaves nothing behind.
    `progress(done, total)` is called after each episode. Returns {"episodes", "frames",
    "tasks", "fps", "out"}."""
    paths = list_episodes(store)
    if not paths:
        raise LeRobotError(f"{store}: holds no complete episodes to export")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LeRobotError(f"{out}: exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        first = read_episode(paths[0])
        writer = _Writer(tmp, first, cfg)
        try:
            for done, path in enumerate(paths, 1):
                writer.add(path, first if done == 1 else read_episode(path))
                if progress is not None:
                    progress(done, len(paths))
        finally:
            writer.close()
        summary = writer.finish()
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "out": str(out)}


class _Writer:
    """Appends episodes to the data parquet and the video, keeps the per-episode rows and the
    running stats, and writes the metadata at the end."""

    def __init__(self, root: Path, first: Episode, cfg: ExportConfig):
        self.root, self.cfg, self.first = root, cfg, first
        self.fps = float(cfg.fps or first.meta.fps)
        self.dims = {k: getattr(first, k).shape[1] for k in ("proprio", "state", "action")}
        self.features = _features(first, self.dims, self.fps, cfg)
        self.schema = _schema(self.features)
        self.data = _DataFiles(root, self.schema, cfg.data_file_mb)
        self.video: ffmpeg.Encoder | None = None
        self.video_pos = (0, 0)
        self.stats = _Stats()
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.frames = 0

    def add(self, path: Path, ep: Episode) -> None:
        """Append one episode (checked against the first: one size, one set of dimensions)."""
        _check_alike(path, ep, self.first, self.dims, self.cfg.fps)
        n, number = ep.num_steps + 1, len(self.episodes)
        task = ep.meta.instruction or ep.meta.task
        columns = _frame_columns(
            ep, number, self.frames, self.tasks.setdefault(task, len(self.tasks)), self.fps
        )
        row = {"episode_index": number, "tasks": [task], "length": n}
        if self.cfg.images == "png":
            columns[IMAGE_KEY] = [{"bytes": _png(frame), "path": None} for frame in ep.image]
        else:
            row.update(self._append_video(ep.image))
        table = pa.Table.from_arrays(
            [_arrow(columns[f.name], f.type) for f in self.schema], schema=self.schema
        )
        chunk, file = self.data.append(table)
        row.update({"data/chunk_index": chunk, "data/file_index": file})
        row.update({"dataset_from_index": self.frames, "dataset_to_index": self.frames + n})
        for key in self.features:
            values = ep.image if key == IMAGE_KEY else np.asarray(columns[key]).reshape(n, -1)
            own = self.stats.add(key, values)
            row.update({f"stats/{key}/{k}": v for k, v in own.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        row[META_COLUMN] = json.dumps(
            {"meta": dataclasses.asdict(ep.meta), "first_success": bool(ep.success[0])}
        )
        self.episodes.append(row)
        self.frames += n

    def _append_video(self, frames: np.ndarray) -> dict:
        cfg = self.cfg
        if self.video is not None and self.video.size() >= cfg.video_file_mb * 1e6:
            self.video.close()
            self.video, self.video_pos = None, _next_file(*self.video_pos)
        if self.video is None:
            chunk, file = self.video_pos
            path = self.root / VIDEO_PATH.format(
                video_key=IMAGE_KEY, chunk_index=chunk, file_index=file
            )
            h, w = frames.shape[1:3]
            self.video = ffmpeg.Encoder(path, self.fps, h, w, cfg.codec, cfg.crf)
        start = self.video.frames / self.fps
        self.video.write(frames)
        prefix = f"videos/{IMAGE_KEY}/"
        return {
            prefix + "chunk_index": self.video_pos[0],
            prefix + "file_index": self.video_pos[1],
            prefix + "from_timestamp": start,
            prefix + "to_timestamp": self.video.frames / self.fps,
        }

    def close(self) -> None:
        """Close the open data and video files."""
        self.data.close()
        if self.video is not None:
            video, self.video = self.video, None
            video.close()

    def finish(self) -> dict:
        """Write the episodes, tasks, stats and info; returns the summary."""
        _write_episodes(self.root / EPISODES_PATH, self.episodes)
        _write_tasks(self.root / "meta" / "tasks.parquet", self.tasks)
        stats = {
            key: self.stats.result(key, ft["dtype"] in ("image", "video"))
            for key, ft in self.features.items()
        }
        _write_json(self.root / "meta" / "stats.json", stats)
        robot_type = self.cfg.robot_type or (self.first.meta.extra or {}).get("robot_type")
        info = {
            "codebase_version": "v3.0",
            "robot_type": robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": self.cfg.data_file_mb,
            "video_files_size_in_mb": self.cfg.video_file_mb,
            "fps": _json_fps(self.fps),
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cfg.images == "video" else None,
            "features": self.features,
        }
        _write_json(self.root / "meta" / "info.json", info)
        return {
            "episodes": len(self.episodes),
            "frames": self.frames,
            "tasks": len(self.tasks),
            "fps": self.fps,
        }


def _features(first: Episode, dims: dict, fps: float, cfg: ExportConfig) -> dict[str, dict]:
    height, width = first.image.shape[1:3]
    image = {"dtype": cfg.images if cfg.images == "video" else "image"}
    image |= {"shape": [height, width, 3], "names": ["height", "width", "channels"]}
    if cfg.images == "video":
        image["info"] = {
            "video.height": height,
            "video.width": width,
            "video.codec": cfg.codec,
            "video.pix_fmt": ffmpeg.pixel_format(height, width),
            "video.is_depth_map": False,
            "video.fps": _json_fps(fps),
            "video.channels": 3,
            "has_audio": False,
        }
    features = {IMAGE_KEY: image}
    if dims["proprio"]:
        features["observation.state"] = _feature(
            "float32", dims["proprio"], _proprio_names(first), fps
        )
    features["action"] = _feature("float32", dims["action"], list(first.meta.action_names), fps)
    features["next.reward"] = _feature("float32", 1, None, fps)
    features["next.success"] = _feature("bool", 1, None, fps)
    features["next.done"] = _feature("bool", 1, None, fps)
    if dims["state"]:
        features[SIM_STATE_KEY] = _feature("float64", dims["state"], None, fps)
    for key in FRAME_KEYS:
        features[key] = _feature("float32" if key == "timestamp" else "int64", 1, None, fps)
    return features


def _feature(dtype: str, dim: int, names, fps: float) -> dict:
    return {"dtype": dtype, "shape": [dim], "names": names, "fps": _json_fps(fps)}


def _proprio_names(first: Episode) -> list[str]:
    names = (first.meta.extra or {}).get("proprio_names")
    dim = first.proprio.shape[1]
    if isinstance(names, list) and len(names) == dim:
        return names
    return list(PROPRIO_NAMES) if dim == len(PROPRIO_NAMES) else [f"state_{i}" for i in range(dim)]


def _schema(features: dict[str, dict]) -> pa.Schema:
    fields = []
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if ft["dtype"] == "image":
            kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        elif ft["shape"] == [1] and ft["names"] is None:
            kind = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
        else:
            kind = pa.list_(pa.from_numpy_dtype(np.dtype(ft["dtype"])))
        fields.append(pa.field(key, kind))
    return pa.schema(fields)


def _frame_columns(ep: Episode, number: int, start: int, task_index: int, fps: float) -> dict:
    """The non-image columns of one episode's T+1 rows."""
    n = ep.num_steps + 1
    return {
        "observation.state": ep.proprio,
        "action": np.concatenate([ep.action, ep.action[-1:]]),
        "next.reward": np.concatenate([ep.reward, np.zeros(1, np.float32)]),
        "next.success": np.concatenate([ep.success[1:], ep.success[-1:]]),
        "next.done": np.arange(n) == n - 1,
        SIM_STATE_KEY: ep.state,
        "timestamp": (np.arange(n) / fps).astype(np.float32),
        "frame_index": np.arange(n, dtype=np.int64),
        "episode_index": np.full(n, number, np.int64),
        "index": np.arange(start, start + n, dtype=np.int64),
        "task_index": np.full(n, task_index, np.int64),
    }


def _arrow(values, kind: pa.DataType) -> pa.Array:
    """A column of `kind` from numpy: [N, D] arrays become list columns, [N] ones scalars."""
    if pa.types.is_list(kind):
        values = np.ascontiguousarray(values)
        rows, dim = values.shape
        offsets = pa.array(np.arange(0, rows * dim + 1, dim, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), kind.value_type))
    if pa.types.is_struct(kind):
        return pa.array(values, kind)
    return pa.array(np.asarray(values).reshape(-1), kind)


def _check_alike(path: Path, ep: Episode, first: Episode, dims: dict, fps: float | None) -> None:
    if ep.image.shape[1:] != first.image.shape[1:]:
        raise LeRobotError(
            f"{path}: key 'image' is {ep.image.shape[2]}x{ep.image.shape[1]}, the first "
            f"episode's is {first.image.shape[2]}x{first.image.shape[1]}; a LeRobot dataset "
            "has one frame size"
        )
    for key, dim in dims.items():
        if getattr(ep, key).shape[1] != dim:
            raise LeRobotError(
                f"{path}: key {key!r} has {getattr(ep, key).shape[1]} dimensions, the first "
                f"episode's has {dim}"
            )
    if ep.meta.action_names != first.meta.action_names:
        raise LeRobotError(f"{path}: meta action_names differ from the first episode's")
    if fps is None and ep.meta.fps != first.meta.fps:
        raise LeRobotError(
            f"{path}: meta fps {ep.meta.fps:g}, the first episode's is {first.meta.fps:g}; "
            "pass --fps to write one rate"
        )


class _Stats:
    """Running min/max/mean/std/count per feature: per dimension, images per channel in [0, 1]
    with shape [3, 1, 1], as lerobot's stats.json has them."""

    def __init__(self):
        self.acc: dict[str, list] = {}

    def add(self, key: str, values: np.ndarray) -> dict:
        """Fold in values [N, D] or images [N, H, W, 3]; returns this batch's own stats."""
        image = values.ndim == 4
        flat = values.reshape(-1, 3) / 255.0 if image else values.astype(np.float64)
        flat = flat.astype(np.float64)
        own = [flat.min(0), flat.max(0), flat.sum(0), (flat**2).sum(0), len(flat), len(values)]
        if key not in self.acc:
            self.acc[key] = own
        else:
            acc = self.acc[key]
            acc[0], acc[1] = np.minimum(acc[0], own[0]), np.maximum(acc[1], own[1])
            for i in (2, 3, 4, 5):
                acc[i] = acc[i] + own[i]
        return self._finish(own, image)

    def result(self, key: str, image: bool) -> dict:
        """The stats over everything added under `key`."""
        return self._finish(self.acc[key], image)

    @staticmethod
    def _finish(acc: list, image: bool) -> dict:
        mean = acc[2] / acc[4]
        std = np.sqrt(np.maximum(acc[3] / acc[4] - mean**2, 0.0))
        shape = (3, 1, 1) if image else (-1,)
        out = {"min": acc[0], "max": acc[1], "mean": mean, "std": std}
        out = {k: v.reshape(shape).tolist() for k, v in out.items()}
        return {**out, "count": [int(acc[5])]}


class _DataFiles:
    """Frame rows into data/chunk-*/file-*.parquet: row groups of ~10k rows, a new file once one
    passes the size limit (an episode never spans two files)."""

    def __init__(self, root: Path, schema: pa.Schema, limit_mb: int):
        self.root, self.schema, self.limit = root, schema, limit_mb * 1e6
        self.pos = (0, 0)
        self.writer: pq.ParquetWriter | None = None
        self.buffer: list[pa.Table] = []

    def append(self, table: pa.Table) -> tuple[int, int]:
        """Buffer one episode's rows; returns the (chunk, file) they go to."""
        if self.writer is not None and self._size() >= self.limit:
            self.close()
            self.pos = _next_file(*self.pos)
        if self.writer is None:
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")
        self.buffer.append(table)
        if sum(t.num_rows for t in self.buffer) >= ROW_GROUP_ROWS:
            self._flush()
        return self.pos

    def _path(self) -> Path:
        return self.root / DATA_PATH.format(chunk_index=self.pos[0], file_index=self.pos[1])

    def _size(self) -> int:
        path = self._path()
        return (path.stat().st_size if path.exists() else 0) + sum(t.nbytes for t in self.buffer)

    def _flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.concat_tables(self.buffer), row_group_size=1 << 20)
            self.buffer = []

    def close(self) -> None:
        """Write what is buffered and close the file."""
        if self.writer is not None:
            self._flush()
            self.writer.close()
            self.writer = None


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise LeRobotError("could not encode a frame as PNG")
    return buf.tobytes()


def _json_fps(fps: float) -> float | int:
    return int(fps) if float(fps).is_integer() else fps


def _write_episodes(path: Path, rows: list[dict]) -> None:
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    table = pa.table(
        {key: pa.array(values, _episode_type(key, values[0])) for key, values in columns.items()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _episode_type(key: str, probe) -> pa.DataType:
    if key == "tasks":
        return pa.list_(pa.string())
    if key == META_COLUMN:
        return pa.string()
    if key.endswith("_timestamp"):
        return pa.float64()
    if key.startswith("stats/"):
        kind = pa.int64() if key.endswith("/count") else pa.float64()
        while isinstance(probe, list):
            kind, probe = pa.list_(kind), probe[0]
        return kind
    return pa.int64()


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as pandas writes it: the task strings are the index (lerobot reads it
    with pandas.read_parquet and looks a task_index up by its string)."""
    column = {"field_name": None, "metadata": None}
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {**column, "name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64"},
            {**column, "name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object"},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }  # fmt: skip
    schema = pa.schema(
        [("task_index", pa.int64()), ("task", pa.string())],
        metadata={b"pandas": json.dumps(pandas_meta).encode()},
    )
    table = pa.table({"task_index": list(tasks.values()), "task": list(tasks)}, schema=schema)
    pq.write_table(table, path)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")
