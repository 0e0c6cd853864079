"""The packed form of an episode store: decoded arrays in flat files, read one window at a time.

A store's episodes are compressed .npz files: reading one 4-step window means decompressing its
whole episode (~1-2 ms). For data larger than memory the input pipeline instead reads the packed
form, built from the store by `robolearn data pack STORE` (or automatically by a trainer whose data
does not fit its memory budget). The store stays the crash-safe source of truth; the pack is a
read-optimized copy that can always be rebuilt from it.

    PACK/packed.json                 {"format": "robolearn-packed", "version": 1,
                                      "shards": ["shard-000000", ...]}
    PACK/shard-000000/episodes.json  the episodes of this shard, in order: store file name, size,
                                     steps and EpisodeMeta; the image shape, proprio and action size
    PACK/shard-000000/image.bin      uint8   [F, H, W, 3]   F = sum over episodes of T+1 frames
                     /proprio.bin    float32 [F, P]
                     /success.bin    bool    [F]
                     /action.bin     float32 [S, A]         S = sum over episodes of T steps
                     /reward.bin     float32 [S]

The default PACK is STORE/packed. A window of T+1 consecutive frames is one contiguous range of
each frame file, read with one positioned read (`os.preadv` straight into the batch array): no
decompression, no memory map (reads go through the page cache, which the kernel bounds and which
does not count against the process), so a reader's memory is its batches, whatever the data size.

Appending: packing a store that grew adds one shard holding the new episodes (store order);
existing shards are never rewritten. A shard is written under a temporary name, made durable and
renamed into place, then the manifest is replaced atomically: a crash while packing leaves the
previous pack intact (and a `.tmp` folder the next pack removes). One packer at a time (a lock
file); readers need no lock. Every shard holds episodes of one image shape.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.store import (
    EpisodeError,
    fsync_dir,
    list_episodes,
    open_store,
    read_episode,
)

FORMAT = "robolearn-packed"
VERSION = 1
MANIFEST = "packed.json"
FRAME_KEYS = {"image": np.uint8, "proprio": np.float32, "success": np.bool_}
STEP_KEYS = {"action": np.float32, "reward": np.float32}


class PackError(EpisodeError):
    """A packed form that is missing, damaged, or does not match its store."""


@dataclasses.dataclass(frozen=True)
class PackedEpisode:
    """One episode of a pack: where it came from and where its rows are in its shard."""

    file: str  # the store's episode file name (ep-000123.npz)
    bytes: int  # that file's size when packed
    steps: int
    meta: EpisodeMeta
    shard: int
    frame: int  # first frame row in the shard's frame files
    step: int  # first step row in the shard's step files


def default_pack_dir(store: str | Path) -> Path:
    return Path(store) / "packed"


def read_pack(pack: str | Path) -> tuple[list[PackedEpisode], list[dict]]:
    """(every packed episode in store order, each shard's shapes); one-line PackError when the
    manifest or a shard's table is missing or malformed."""
    pack = Path(pack)
    manifest = _read_json(pack / MANIFEST)
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("shards"), list)
    ):
        raise PackError(f"{pack / MANIFEST}: not a robolearn pack manifest")
    if manifest.get("version") != VERSION:
        raise PackError(f"{pack / MANIFEST}: pack version {manifest.get('version')!r} unknown")
    episodes: list[PackedEpisode] = []
    shards: list[dict] = []
    for index, name in enumerate(manifest["shards"]):
        table = _read_json(pack / str(name) / "episodes.json")
        try:
            shape = {
                "dir": pack / str(name),
                "image": tuple(int(x) for x in table["image_shape"]),
                "proprio": int(table["proprio_dim"]),
                "action": int(table["action_dim"]),
                "frames": int(table["frames"]),
                "steps": int(table["steps"]),
            }
            frame = step = 0
            for row in table["episodes"]:
                meta = _meta(row["meta"])
                episodes.append(
                    PackedEpisode(
                        str(row["file"]),
                        int(row["bytes"]),
                        int(row["steps"]),
                        meta,
                        index,
                        frame,
                        step,
                    )
                )
                frame += int(row["steps"]) + 1
                step += int(row["steps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PackError(f"{pack / str(name) / 'episodes.json'}: malformed ({exc})") from exc
        if (frame, step) != (shape["frames"], shape["steps"]):
            raise PackError(f"{pack / str(name)}: episode table does not add up to its rows")
        _check_sizes(shape)
        shards.append(shape)
    return episodes, shards


def pack_store(
    store: str | Path,
    pack: str | Path | None = None,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Pack the store's episodes that the pack does not hold yet (all of them the first time).

    Returns {"episodes": packed now, "total": episodes in the pack, "shards", "bytes" of the new
    shard(s), "pack": the directory}. Episodes are decoded in `workers` processes (default: the
    CPU count) and written in store order. Raises PackError when the pack holds an episode the
    store no longer has (rebuild: delete the pack folder and pack again).
    """
    store = open_store(store)
    pack = Path(pack) if pack is not None else default_pack_dir(store)
    pack.mkdir(parents=True, exist_ok=True)
    with _lock(pack):
        for leftover in pack.glob("*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        have: list[PackedEpisode] = []
        names: list[str] = []
        if (pack / MANIFEST).exists():
            have, _ = read_pack(pack)
            names = json.loads((pack / MANIFEST).read_text())["shards"]
        todo = missing_episodes(store, have, pack)
        written = 0
        if todo:
            for shard_paths in _by_shape(todo):
                name = f"shard-{len(names):06d}"
                written += _write_shard(pack, name, shard_paths, workers, progress, len(todo))
                names.append(name)
                _write_manifest(pack, names)
        elif not (pack / MANIFEST).exists():
            _write_manifest(pack, names)
    return {
        "episodes": len(todo),
        "total": len(have) + len(todo),
        "shards": len(names),
        "bytes": written,
        "pack": str(pack),
    }


def missing_episodes(store: Path, have: list[PackedEpisode], pack: Path) -> list[Path]:
    """The store's complete episodes that are not in the pack, in store order; PackError when the
    pack holds one the store does not (or one whose file changed)."""
    paths = list_episodes(store)
    by_name = {p.name: p for p in paths}
    for ep in have:
        path = by_name.get(ep.file)
        if path is None or path.stat().st_size != ep.bytes:
            what = "no longer holds" if path is None else "holds with a different size"
            raise PackError(
                f"{pack}: packs {ep.file}, which {store} {what}; delete {pack} and pack again "
                f"(`robolearn data pack {store}`)"
            )
    packed = {ep.file for ep in have}
    return [p for p in paths if p.name not in packed]


def _by_shape(paths: list[Path]) -> Iterator[list[Path]]:
    """One group per shard: consecutive episodes of one image/proprio/action shape."""
    group: list[Path] = []
    shape = None
    for path in paths:
        this = read_shapes(path)
        if group and this != shape:
            yield group
            group = []
        group.append(path)
        shape = this
    if group:
        yield group


def _write_shard(pack: Path, name: str, paths: list[Path], workers, progress, total: int) -> int:
    tmp = pack / f"{name}.tmp"
    tmp.mkdir()
    files = {key: open(tmp / f"{key}.bin", "wb") for key in (*FRAME_KEYS, *STEP_KEYS)}  # noqa: SIM115
    rows: list[dict] = []
    first: Episode | None = None
    frames = steps = 0
    try:
        for path, episode in _decoded(paths, workers):
            if first is None:
                first = episode
            for key in FRAME_KEYS:
                files[key].write(np.ascontiguousarray(getattr(episode, key)).tobytes())
            for key in STEP_KEYS:
                files[key].write(np.ascontiguousarray(getattr(episode, key)).tobytes())
            rows.append(
                {
                    "file": path.name,
                    "bytes": path.stat().st_size,
                    "steps": episode.num_steps,
                    "meta": dataclasses.asdict(episode.meta),
                }
            )
            frames += episode.num_steps + 1
            steps += episode.num_steps
            if progress is not None:
                progress(len(rows), total)
        for f in files.values():
            f.flush()
            os.fsync(f.fileno())
    finally:
        for f in files.values():
            f.close()
    table = {
        "image_shape": list(first.image.shape[1:]),
        "proprio_dim": int(first.proprio.shape[1]),
        "action_dim": int(first.action.shape[1]),
        "frames": frames,
        "steps": steps,
        "episodes": rows,
    }
    _write_json(tmp / "episodes.json", table)
    os.rename(tmp, pack / name)
    fsync_dir(pack)
    return sum((pack / name / f"{key}.bin").stat().st_size for key in files)


def _decoded(paths: list[Path], workers: int | None) -> Iterator[tuple[Path, Episode]]:
    """(path, episode) in order, decoded by a pool with a bounded number in flight."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 8:
        for path in paths:
            yield path, read_episode(path)
        return
    window = 4 * workers
    with ProcessPoolExecutor(workers) as pool:
        pending = []
        it = iter(paths)
        for path in it:
            pending.append((path, pool.submit(read_episode, path)))
            if len(pending) >= window:
                break
        while pending:
            path, future = pending.pop(0)
            yield path, future.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(read_episode, nxt)))


def _write_manifest(pack: Path, names: list[str]) -> None:
    _write_json(pack / MANIFEST, {"format": FORMAT, "version": VERSION, "shards": names})


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _read_json(path: Path):
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise PackError(f"{path}: missing; pack the store with `robolearn data pack`") from exc
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PackError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc


def _meta(data) -> EpisodeMeta:
    from robolearn.core.config import from_dict

    data = dict(data)
    data["action_names"] = tuple(data.get("action_names", ()))
    data["layout"] = tuple(data.get("layout", ()))
    return from_dict(EpisodeMeta, data, where="packed meta")


def _check_sizes(shard: dict) -> None:
    h, w, c = shard["image"]
    expect = {
        "image": shard["frames"] * h * w * c,
        "proprio": shard["frames"] * shard["proprio"] * 4,
        "success": shard["frames"],
        "action": shard["steps"] * shard["action"] * 4,
        "reward": shard["steps"] * 4,
    }
    for key, size in expect.items():
        path = shard["dir"] / f"{key}.bin"
        try:
            got = path.stat().st_size
        except OSError as exc:
            raise PackError(f"{path}: missing ({exc.strerror})") from exc
        if got != size:
            raise PackError(f"{path}: {got} bytes, the episode table says {size}; pack damaged")


@contextlib.contextmanager
def _lock(pack: Path):
    with open(pack / ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class ShardReader:
    """Positioned reads of rows of one shard's files (thread-safe: preadv has no file offset)."""

    def __init__(self, shard: dict):
        self.dir = shard["dir"]
        h, w, c = shard["image"]
        self.row_shape = {
            "image": (h, w, c),
            "proprio": (shard["proprio"],),
            "success": (),
            "action": (shard["action"],),
            "reward": (),
        }
        self.dtype = {**FRAME_KEYS, **STEP_KEYS}
        self.row_bytes = {
            k: int(np.prod(s, dtype=np.int64)) * np.dtype(self.dtype[k]).itemsize
            for k, s in self.row_shape.items()
        }
        self.fds = {k: os.open(self.dir / f"{k}.bin", os.O_RDONLY) for k in self.row_shape}

    def read_into(self, key: str, first_row: int, out: np.ndarray) -> None:
        """Fill `out` (len(out) consecutive rows, C-contiguous) from row `first_row` on."""
        size = self.row_bytes[key] * len(out)
        if size == 0:
            return
        got = os.preadv(self.fds[key], [memoryview(out).cast("B")], self.row_bytes[key] * first_row)
        if got != size:
            raise PackError(f"{self.dir / key}.bin: short read at row {first_row}; pack damaged")

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def read_shapes(path: Path) -> tuple[tuple[int, ...], ...]:
    """(image, proprio, action) shapes of an episode file from its .npy headers alone (a few
    hundred bytes decompressed, not the arrays): sizes a store without decoding it."""
    try:
        with zipfile.ZipFile(path) as zf:
            return tuple(_npy_shape(zf, key) for key in ("image", "proprio", "action"))
    except EpisodeError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy's header parser raise many types
        raise EpisodeError(f"{path}: torn or corrupt episode file ({type(exc).__name__})") from exc


def _npy_shape(zf: zipfile.ZipFile, key: str) -> tuple[int, ...]:
    with zf.open(f"{key}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else (np.lib.format.read_array_header_2_0)
        )
        shape, _, _ = read(f)
    return tuple(int(x) for x in shape)
