"""The episode store: a directory of episode files that never exposes a half-written episode.

Layout of a store directory DIR:

    DIR/robolearn-store.json         {"format": "robolearn-episodes", "version": 1}
    DIR/episodes/ep-000000.npz       complete episodes (NumPy .npz: a zip, one member per array)
    DIR/episodes/ep-000007.partial   an episode being written, or torn by a crash

An episode file holds the arrays of `Episode` (images zlib-compressed: a 51-frame 64x64 WidowX
episode takes ~20 kB instead of 630 kB) and `meta`, the EpisodeMeta as JSON; it is read without
pickle. Crash safety: a writer claims the next index by creating `ep-N.partial` exclusively, buffers
the episode in memory, writes it into the .partial file, fsyncs, and renames it to `ep-N.npz`.
Readers list only `*.npz`, so an episode becomes visible complete or not at all; a crash loses the
episode being written and leaves its `.partial`, which `validate` reports. The zip's per-member
CRC-32 detects a torn or corrupted file at read time, reported with its path. Writers never
overwrite, so training can read older episodes while new ones are appended.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from robolearn.core.config import from_dict
from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.data.episode import ARRAY_KEYS, Episode, EpisodeMeta

FORMAT = "robolearn-episodes"
VERSION = 1
MARKER = "robolearn-store.json"
_NAME = re.compile(r"^ep-(\d{6,})\.(npz|partial)$")


class EpisodeError(RobolearnError, ValueError):
    """An episode file or store directory that cannot be read as data."""


def create_store(root: str | Path) -> Path:
    """Create (or reuse) a store directory; refuses a directory holding another kind of data."""
    root = Path(root)
    marker = root / MARKER
    if marker.is_file():
        _check_marker(root)
    else:
        if root.exists() and any(p.name != "episodes" for p in root.iterdir()):
            raise EpisodeError(f"{root}: not empty and not an episode store; choose a new --out")
        (root / "episodes").mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    (root / "episodes").mkdir(exist_ok=True)
    return root


def open_store(root: str | Path) -> Path:
    """Check that `root` is an existing episode store and return it."""
    root = Path(root)
    if not root.exists():
        raise EpisodeError(f"{root}: no such dataset directory")
    if not (root / MARKER).is_file():
        raise EpisodeError(
            f"{root}: not an episode store (no {MARKER}); create one with `robolearn collect` "
            "or `robolearn data import`"
        )
    _check_marker(root)
    return root


def list_episodes(root: str | Path) -> list[Path]:
    """Paths of the complete episodes of a store, in index order."""
    return [p for p in _entries(open_store(root)) if p.suffix == ".npz"]


def list_partial(root: str | Path) -> list[Path]:
    """Episodes whose writer never finished them (crash or kill), in index order."""
    return [p for p in _entries(open_store(root)) if p.suffix == ".partial"]


def write_episode(root: str | Path, episode: Episode) -> Path:
    """Write one complete episode atomically; returns its path. Never overwrites."""
    episode.check()
    slot = claim_slot(root)
    try:
        return commit_slot(slot, episode)
    except BaseException:
        slot.unlink(missing_ok=True)
        raise


def claim_slot(root: str | Path) -> Path:
    """Reserve the next episode index by creating `ep-N.partial` exclusively."""
    episodes = Path(root) / "episodes"
    while True:
        index = next_index(root)
        slot = episodes / f"ep-{index:06d}.partial"
        try:
            os.close(os.open(slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return slot
        except FileExistsError:
            continue  # another writer took it


def next_index(root: str | Path) -> int:
    """1 + the highest episode index in the store (complete or partial), 0 for an empty store."""
    indices = [int(_NAME.match(p.name).group(1)) for p in _entries(Path(root))]
    return max(indices, default=-1) + 1


def commit_slot(slot: Path, episode: Episode) -> Path:
    """Write `episode` into its claimed slot, make it durable, and rename it into place."""
    episode.check()
    buffer = io.BytesIO()
    arrays = {key: getattr(episode, key) for key in ARRAY_KEYS}
    meta = json.dumps(dataclasses.asdict(episode.meta))
    np.savez_compressed(buffer, meta=np.array(meta), **arrays)
    with open(slot, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    final = slot.with_suffix(".npz")
    os.rename(slot, final)
    _fsync_dir(slot.parent)
    return final


def read_meta(path: str | Path) -> EpisodeMeta:
    """Only the EpisodeMeta of an episode file (cheap: the arrays are not decompressed)."""
    path = Path(path)
    with _open_npz(path) as npz:
        return _parse_meta(path, npz)


def read_outline(path: str | Path) -> tuple[EpisodeMeta, int, bool]:
    """(meta, number of steps, succeeded at any step) without decompressing the images."""
    path = Path(path)
    with _open_npz(path) as npz:
        meta = _parse_meta(path, npz)
        if "success" not in npz.files or "reward" not in npz.files:
            raise EpisodeError(f"{path}: malformed episode, missing key 'success' or 'reward'")
        try:
            return meta, int(npz["reward"].shape[0]), bool(np.any(npz["success"]))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise EpisodeError(f"{path}: torn or corrupt episode file ({exc})") from exc


def read_episode(path: str | Path) -> Episode:
    """Read and validate one episode file; errors name the file and the key at fault."""
    path = Path(path)
    with _open_npz(path) as npz:
        meta = _parse_meta(path, npz)
        missing = [k for k in ARRAY_KEYS if k not in npz.files]
        if missing:
            raise EpisodeError(f"{path}: malformed episode, missing key {missing[0]!r}")
        try:
            arrays = {key: npz[key] for key in ARRAY_KEYS}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise EpisodeError(f"{path}: torn or corrupt episode file ({exc})") from exc
    episode = Episode(meta=meta, **arrays)
    try:
        episode.check()
    except ValueError as exc:
        raise EpisodeError(f"{path}: malformed episode, {exc}") from exc
    return episode


def iter_episodes(root: str | Path) -> Iterator[tuple[Path, Episode]]:
    """(path, episode) for every complete episode of a store, in index order."""
    for path in list_episodes(root):
        yield path, read_episode(path)


def _entries(root: Path) -> list[Path]:
    folder = root / "episodes"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: (int(_NAME.match(p.name).group(1)), p.suffix))


def _check_marker(root: Path) -> None:
    try:
        info = json.loads((root / MARKER).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EpisodeError(f"{root / MARKER}: unreadable store marker ({exc})") from exc
    if info.get("format") != FORMAT or not isinstance(info.get("version"), int):
        raise EpisodeError(f"{root / MARKER}: not a robolearn episode store")
    if info["version"] > VERSION:
        raise EpisodeError(
            f"{root}: store version {info['version']} is newer than this robolearn reads "
            f"({VERSION}); upgrade robolearn"
        )


def _open_npz(path: Path):
    if not path.is_file():
        raise EpisodeError(f"{path}: no such episode file")
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise EpisodeError(f"{path}: torn or corrupt episode file ({exc})") from exc


def _parse_meta(path: Path, npz) -> EpisodeMeta:
    if "meta" not in npz.files:
        raise EpisodeError(f"{path}: malformed episode, missing key 'meta'")
    try:
        data = json.loads(str(npz["meta"]))
        data["action_names"] = tuple(data.get("action_names", ()))
        data["layout"] = tuple(data.get("layout", ()))
        return from_dict(EpisodeMeta, data, where=f"{path}: meta")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise EpisodeError(f"{path}: torn or corrupt episode file ({exc})") from exc
    except (json.JSONDecodeError, ConfigError, ValueError, TypeError) as exc:
        raise EpisodeError(f"{path}: malformed episode meta ({exc})") from exc


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
