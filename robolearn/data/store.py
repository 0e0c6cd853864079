"""The episode store: a directory of episode files that never exposes a half-written episode.

Layout of a store directory DIR:

    DIR/robolearn-store.json         {"format": "robolearn-episodes", "version": 1}
    DIR/episodes/ep-000000.npz       complete episodes (NumPy .npz: a zip, one member per array)
    DIR/episodes/ep-000007.partial   an episode being written, or torn by a crash
    DIR/episodes/.commit-lock        only on filesystems without hard links (see below)

An episode file holds the arrays of `Episode` (images zlib-compressed: a 51-frame 64x64 WidowX
episode takes ~20 kB instead of 630 kB) and `meta`, the EpisodeMeta as JSON; it is read without
pickle.

Writing (any number of writer processes may append to one store at once): a writer claims an
index N by creating `ep-N.partial` exclusively (O_EXCL) and checking that `ep-N.npz` does not
exist yet (a writer that listed the directory before another's commit would otherwise reuse N),
buffers the episode in memory, writes it into the .partial, fsyncs it, and publishes it with
`os.link(partial, ep-N.npz)`, which fails if that name exists: a finished episode is never
replaced. If it fails (N was taken anyway, e.g. by a writer that does not follow this protocol),
the writer reserves a fresh index and links there. Then it fsyncs the directory and removes the
.partial name. On a filesystem without hard links (FAT, some SMB and FUSE mounts) the publish is
"check that ep-N.npz is free, then rename", made atomic by an exclusive flock on
`episodes/.commit-lock`; where flock fails too, it is unguarded, which is safe for one writer at
a time only.

Readers list only `*.npz`, so an episode becomes visible complete or not at all; a crash loses the
episode being written and leaves its `.partial`, which `validate` reports (a crash after the
link and before the `.partial` name is removed leaves a second name of a published episode:
nothing is lost, and it is not reported). Reading never trusts
the file: the zip directory, every array's .npy header (checked against the zip entry's size
before anything is allocated), the zip CRC of every member read, and the meta JSON's types are
checked, and every failure is one EpisodeError line naming the file (and the key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import math
import os
import re
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: the fallback publish below is unguarded
    fcntl = None

from robolearn.core.config import from_dict
from robolearn.core.errors import ConfigError, RobolearnError, one_line
from robolearn.data.episode import ARRAY_KEYS, Episode, EpisodeMeta

FORMAT = "robolearn-episodes"
VERSION = 1
MARKER = "robolearn-store.json"
_NAME = re.compile(r"^ep-(\d{6,})\.(npz|partial)$")
_LOCK = ".commit-lock"
_MAX_MARKER_BYTES = 1 << 16
_MAX_DIM = 1 << 31
# Deflate cannot expand more than ~1032:1: a zip entry claiming more is forged or damaged.
_MAX_DEFLATE_RATIO = 1032
# What decoding a damaged zip entry or .npy header can raise (zipfile, zlib, numpy's header
# parser; UnicodeDecodeError and JSONDecodeError are ValueErrors, RecursionError and
# NotImplementedError RuntimeErrors).
_DECODE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RuntimeError,
    SyntaxError,
    struct.error,
    zlib.error,
    tokenize.TokenError,
)


class EpisodeError(RobolearnError, ValueError):
    """An episode file or store directory that cannot be read as data."""


def create_store(root: str | Path) -> Path:
    """Create (or reuse) a store directory; refuses a directory holding another kind of data.

    Safe to call from several processes at once: the marker is written aside and renamed."""
    root = Path(root)
    marker = root / MARKER
    try:
        if not os.path.lexists(marker):
            if root.exists() and not root.is_dir():
                raise EpisodeError(f"{root}: not a directory; choose a new --out")
            # The marker itself may appear between the check above and this listing: another
            # process finished creating the same store (it is then checked below).
            if root.exists() and any(
                p.name not in ("episodes", MARKER) and not p.name.startswith(f".{MARKER}.")
                for p in root.iterdir()
            ):
                raise EpisodeError(
                    f"{root}: not empty and not an episode store; choose a new --out"
                )
            _make_episodes_dir(root)
            aside = root / f".{MARKER}.{os.getpid()}"
            aside.write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
            os.replace(aside, marker)  # concurrent creators write the same bytes
        _check_marker(root)
        _make_episodes_dir(root)
    except OSError as exc:
        raise EpisodeError(f"{root}: cannot create an episode store ({one_line(exc)})") from exc
    return root


def open_store(root: str | Path) -> Path:
    """Check that `root` is an existing episode store and return it."""
    root = Path(root)
    if not root.exists():
        raise EpisodeError(f"{root}: no such dataset directory")
    if not os.path.lexists(root / MARKER):
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
    """Episodes whose writer never finished them (crash or kill), in index order. A `.partial`
    that is another name of a published `.npz` (its writer was killed between publishing it by
    hard link and removing the `.partial` name) lost nothing and is not listed."""
    entries = _entries(open_store(root))
    partial = [p for p in entries if p.suffix == ".partial"]
    if not partial:
        return partial
    published = {_file_id(p) for p in entries if p.suffix == ".npz"} | {None}
    return [p for p in partial if _file_id(p) not in published]


def _file_id(path: Path) -> tuple | None:
    """(device, inode) of `path`; None once it is gone (a writer finished or gave up meanwhile);
    the path itself when it cannot be stat'ed (so an unreadable .partial is still reported)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (str(path),)
    return st.st_dev, st.st_ino


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
    """Reserve a free episode index N by creating `ep-N.partial` exclusively (see the module doc).

    The caller owns the slot: it passes it to `commit_slot`, or unlinks it to give up."""
    episodes = Path(root) / "episodes"
    index = -1
    while True:
        index = max(next_index(root), index + 1)
        slot = episodes / f"ep-{index:06d}.partial"
        try:
            os.close(os.open(slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue  # another writer holds it
        if os.path.lexists(slot.with_suffix(".npz")):
            slot.unlink()  # committed by a writer that released the .partial name since we listed
            continue
        return slot


def next_index(root: str | Path) -> int:
    """1 + the highest episode index in the store (complete or partial), 0 for an empty store."""
    found = (_NAME.match(name) for name in _names(Path(root)))
    return max((int(m.group(1)) for m in found if m), default=-1) + 1


def commit_slot(slot: Path, episode: Episode) -> Path:
    """Write `episode` into its claimed slot, make it durable, and publish it as an `.npz` that
    replaces nothing; returns that path: `ep-N.npz` for slot `ep-N.partial`, or a fresh index
    should N have been taken meanwhile. On success the slot is gone; on failure it is left to the
    caller to unlink (as write_episode does), and nothing else is left behind."""
    episode.check()
    buffer = io.BytesIO()
    arrays = {key: getattr(episode, key) for key in ARRAY_KEYS}
    meta = json.dumps(dataclasses.asdict(episode.meta))
    np.savez_compressed(buffer, meta=np.array(meta), **arrays)
    try:
        fd = os.open(slot, os.O_WRONLY | os.O_TRUNC)  # no O_CREAT: the slot must still be ours
    except FileNotFoundError as exc:
        raise EpisodeError(f"{slot}: claimed episode slot vanished while being written") from exc
    with open(fd, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    reserved = None  # a fresh index's .partial, held while publishing there
    try:
        while True:
            final = (reserved or slot).with_suffix(".npz")
            linked = _publish(slot, final)
            if linked is not None:
                break
            if reserved is not None:
                reserved.unlink()
            reserved = claim_slot(slot.parent.parent)
        fsync_dir(slot.parent)
        if linked:
            slot.unlink()  # the episode lives on as `final`
    finally:
        if reserved is not None:
            reserved.unlink(missing_ok=True)
    return final


def read_meta(path: str | Path) -> EpisodeMeta:
    """Only the EpisodeMeta of an episode file (cheap: the arrays are not decompressed)."""
    with _EpisodeFile(Path(path)) as f:
        return f.meta()


def read_outline(path: str | Path) -> tuple[EpisodeMeta, int, bool]:
    """(meta, number of steps, succeeded at any step), without decompressing the images.

    Checks what `read_episode` checks except the data of image, proprio, state and action (their
    zip CRCs and their values: NaN or inf): the zip directory, every array's header (dtype,
    shape, size), the shapes and dtypes against each other, the meta, and the data of reward and
    success."""
    path = Path(path)
    with _EpisodeFile(path) as f:
        meta = f.meta()
        heads = {key: f.header(key) for key in ARRAY_KEYS}
        arrays = {k: np.broadcast_to(np.zeros((), h.dtype), h.shape) for k, h in heads.items()}
        arrays.update(reward=f.array("reward"), success=f.array("success"))
    episode = Episode(meta=meta, **arrays)  # zero-stride stand-ins for image, proprio, ...
    _check(path, episode)
    return meta, episode.num_steps, episode.succeeded


def read_episode(path: str | Path) -> Episode:
    """Read and validate one episode file; errors name the file and the key at fault."""
    path = Path(path)
    with _EpisodeFile(path) as f:
        meta = f.meta()
        episode = Episode(meta=meta, **{key: f.array(key) for key in ARRAY_KEYS})
    _check(path, episode)
    return episode


def iter_episodes(root: str | Path) -> Iterator[tuple[Path, Episode]]:
    """(path, episode) for every complete episode of a store, in index order."""
    for path in list_episodes(root):
        yield path, read_episode(path)


@dataclasses.dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    nbytes: int


class _EpisodeFile:
    """An episode file opened for reading: its zip directory checked on opening, each array's
    .npy header checked against its zip entry before its data is read."""

    def __init__(self, path: Path):
        self.path = path
        if not os.path.lexists(path) or not path.exists():
            raise EpisodeError(f"{path}: no such episode file")
        if not path.is_file():
            raise EpisodeError(f"{path}: not a regular file")
        try:
            self._zip = zipfile.ZipFile(path)
        except _DECODE_ERRORS as exc:
            raise EpisodeError(f"{path}: torn or corrupt episode file ({one_line(exc)})") from exc
        try:
            self._members = self._check_directory(os.fstat(self._zip.fp.fileno()).st_size)
        except BaseException:
            self._zip.close()
            raise
        self._headers: dict[str, _Header] = {}

    def __enter__(self) -> _EpisodeFile:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    def _check_directory(self, size: int) -> dict[str, zipfile.ZipInfo]:
        members = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                continue
            where = f"{self.path}: key {name[:-4]!r}"
            if name[:-4] in members:
                raise EpisodeError(f"{where}: stored twice in the zip directory")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise EpisodeError(f"{where}: unsupported zip compression {info.compress_type}")
            if info.flag_bits & 0x61:  # encrypted, patched or strongly encrypted
                raise EpisodeError(f"{where}: encrypted or patched zip entry")
            limit = info.compress_size * (
                1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
            )
            if info.compress_size > size or info.file_size > limit + 1024:
                raise EpisodeError(
                    f"{where}: zip entry sizes ({info.compress_size} packed, {info.file_size} "
                    f"unpacked) do not fit a {size}-byte file"
                )
            members[name[:-4]] = info
        return members

    def _member(self, key: str) -> zipfile.ZipInfo:
        if key not in self._members:
            raise EpisodeError(f"{self.path}: malformed episode, missing key {key!r}")
        return self._members[key]

    def header(self, key: str) -> _Header:
        """The dtype and shape of array `key`, checked against its zip entry's size."""
        if key not in self._headers:
            with self._open(key, "bad array header") as f:
                self._headers[key] = self._read_header(key, f)
        return self._headers[key]

    def _read_header(self, key: str, f) -> _Header:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject or dtype.names or dtype.subdtype or dtype.kind not in "biufcSU":
            raise ValueError(f"unsupported dtype {dtype}")
        if dtype.itemsize == 0 or any(not 0 <= d < _MAX_DIM for d in shape):
            raise ValueError(f"impossible shape {shape} of {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        held = self._members[key].file_size - f.tell()
        if nbytes != held:
            raise ValueError(
                f"header says {shape} {dtype} ({nbytes} bytes) but the entry holds {held} bytes"
            )
        return _Header(tuple(shape), dtype, fortran, nbytes)

    def array(self, key: str) -> np.ndarray:
        """Array `key`, its data read in chunks into an array of the size its header promised
        (and its zip entry holds); the entry's CRC is checked at its end."""
        with self._open(key, "corrupt array data") as f:
            try:
                head = self._headers[key] = self._read_header(key, f)
            except _DECODE_ERRORS as exc:
                raise self._error(key, "bad array header", exc) from exc
            out = np.empty(head.nbytes, np.uint8)
            done = 0
            while done < head.nbytes:
                chunk = f.read(min(1 << 20, head.nbytes - done))
                if not chunk:
                    raise EOFError(f"data ends after {done} of {head.nbytes} bytes")
                out[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                done += len(chunk)
            if f.read(1):
                raise ValueError("more data than the header says")
        flat = out.view(head.dtype)
        return flat.reshape(head.shape[::-1]).T if head.fortran else flat.reshape(head.shape)

    @contextlib.contextmanager
    def _open(self, key: str, what: str):
        info = self._member(key)
        try:
            with self._zip.open(info) as f:
                yield f
        except EpisodeError:
            raise
        except _DECODE_ERRORS as exc:
            raise self._error(key, what, exc) from exc

    def _error(self, key: str, what: str, exc: BaseException) -> EpisodeError:
        return EpisodeError(f"{self.path}: key {key!r}: {what} ({one_line(exc)})")

    def meta(self) -> EpisodeMeta:
        """The EpisodeMeta, every field's type checked."""
        arr = self.array("meta")
        where = f"{self.path}: key 'meta'"
        if arr.shape != () or arr.dtype.kind != "U":
            raise EpisodeError(f"{where}: expected one JSON string, got {arr.dtype} {arr.shape}")
        try:
            data = json.loads(str(arr[()]))
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # no lone surrogates
        except (ValueError, RecursionError) as exc:
            raise EpisodeError(f"{where}: not valid JSON text ({one_line(exc)})") from exc
        if not isinstance(data, dict):
            raise EpisodeError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if not isinstance(data.get("extra", {}), dict):
            raise EpisodeError(f"{where}: extra: expected an object")
        try:
            return from_dict(EpisodeMeta, data, where="meta")
        except ConfigError as exc:
            raise EpisodeError(f"{self.path}: malformed episode {one_line(exc)}") from exc


def _check(path: Path, episode: Episode) -> None:
    try:
        episode.check()
    except ValueError as exc:
        raise EpisodeError(f"{path}: malformed episode, {one_line(exc)}") from exc


def _publish(slot: Path, final: Path) -> bool | None:
    """Give the durable `slot` the name `final` unless that exists: True when linked (the slot
    name remains), False when renamed (it is gone), None when `final` was taken."""
    try:
        os.link(slot, final)
        return True
    except FileExistsError:
        # NFS can answer a retransmitted, successful link with EEXIST: then final is our file.
        return True if os.path.samefile(slot, final) else None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise
    fd = os.open(slot.parent / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        with contextlib.suppress(OSError, AttributeError):  # no flock here: unguarded
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.lexists(final):
            return None
        os.rename(slot, final)
        return False
    finally:
        os.close(fd)  # releases the lock


def _entries(root: Path) -> list[Path]:
    found = sorted(
        (int(m.group(1)), m.group(2), m.group(0))
        for m in (_NAME.match(name) for name in _names(root))
        if m
    )
    return [root / "episodes" / name for *_, name in found]


def _names(root: Path) -> list[str]:
    folder = root / "episodes"
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EpisodeError(f"{folder}: unreadable episode directory ({one_line(exc)})") from exc


def _make_episodes_dir(root: Path) -> None:
    try:
        (root / "episodes").mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise EpisodeError(f"{root / 'episodes'}: exists and is not a directory") from exc


def _check_marker(root: Path) -> None:
    marker = root / MARKER
    if not marker.is_file():  # a directory, or a FIFO that open() would block on
        raise EpisodeError(f"{marker}: store marker is not a regular file")
    try:
        with open(marker, "rb") as f:
            raw = f.read(_MAX_MARKER_BYTES + 1)
        if len(raw) > _MAX_MARKER_BYTES:
            raise ValueError(f"over {_MAX_MARKER_BYTES} bytes")
        info = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise EpisodeError(f"{marker}: unreadable store marker ({one_line(exc)})") from exc
    version = info.get("version") if isinstance(info, dict) else None
    if (
        not isinstance(info, dict)
        or info.get("format") != FORMAT
        or not isinstance(version, int)
        or isinstance(version, bool)
        or version < 1
    ):
        raise EpisodeError(f"{marker}: not a robolearn episode store")
    if version > VERSION:
        raise EpisodeError(
            f"{root}: store version {version} is newer than this robolearn reads "
            f"({VERSION}); upgrade robolearn"
        )


def fsync_dir(folder: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
