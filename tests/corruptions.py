"""Corruptions for the hostile tests. The checkpoint tests use write/edit_json/edit_yaml: each
returns `corrupt(root)`, which damages one file of the checkpoint directory `root` in place. The
episode-store fuzz uses the byte-level helpers below. (tests/ is on sys.path via its conftest.)"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile

import yaml


def write(name, content):
    """Replace the file's bytes (or text)."""

    def corrupt(root):
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return corrupt


def edit_json(name, **fields):
    """Set top-level fields of a JSON file."""

    def corrupt(root):
        data = json.loads((root / name).read_text())
        (root / name).write_text(json.dumps({**data, **fields}))

    return corrupt


def edit_yaml(section, name="config.yaml", **fields):
    """Set fields of one section of a YAML config."""

    def corrupt(root):
        data = yaml.safe_load((root / name).read_text())
        data[section].update(fields)
        (root / name).write_text(yaml.safe_dump(data))

    return corrupt


# Byte-level corruptions of one zip file (the episode-store fuzz, tests/data/test_store_hostile.py):
# zip_regions locates a zip's parts; the others take bytes and return damaged bytes.

_CENTRAL = struct.Struct("<4s6H3L5H2L")  # one central directory entry, 46 bytes
_CENTRAL_FIELDS = ("flags", "method", "crc", "csize", "usize", "offset")
_CENTRAL_AT = {"flags": 3, "method": 4, "crc": 7, "csize": 8, "usize": 9, "offset": 16}


def zip_regions(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """[start, end) byte ranges of a zip's local headers ('local'), member data ('data'), central
    directory entries ('central') and end record ('end')."""
    regions: dict[str, list[tuple[int, int]]] = {"local": [], "data": [], "central": [], "end": []}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            start = info.header_offset
            name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
            body = start + 30 + name_len + extra_len
            regions["local"].append((start, body))
            regions["data"].append((body, body + info.compress_size))
        pos = zf.start_dir
    while data[pos : pos + 4] == b"PK\x01\x02":
        fields = _CENTRAL.unpack_from(data, pos)
        end = pos + 46 + fields[10] + fields[11] + fields[12]
        regions["central"].append((pos, end))
        pos = end
    regions["end"].append((pos, len(data)))
    return regions


def flip_bits(data: bytes, rng, region: tuple[int, int] | None = None, count: int = 1) -> bytes:
    """`count` random bits flipped inside `region` (default: anywhere)."""
    start, end = region or (0, len(data))
    out = bytearray(data)
    for pos in rng.integers(start, max(end, start + 1), count):
        out[min(int(pos), len(out) - 1)] ^= 1 << int(rng.integers(8))
    return bytes(out)


def overwrite(data: bytes, rng, region: tuple[int, int] | None = None, fill: int | None = None):
    """A run of 1-64 bytes inside `region` replaced by random bytes (or `fill`)."""
    start, end = region or (0, len(data))
    pos = int(rng.integers(start, max(end, start + 1)))
    size = int(rng.integers(1, 65))
    new = bytes([fill]) * size if fill is not None else rng.bytes(size)
    return data[:pos] + new[: max(len(data) - pos, 0)] + data[pos + size :]


def truncate(data: bytes, rng) -> bytes:
    """The first 0..len-1 bytes."""
    return data[: int(rng.integers(len(data)))]


def splice(data: bytes, rng) -> bytes:
    """1-16 bytes inserted or deleted at a random place (every later offset shifts)."""
    pos, size = int(rng.integers(len(data))), int(rng.integers(1, 17))
    if rng.random() < 0.5:
        return data[:pos] + rng.bytes(size) + data[pos:]
    return data[:pos] + data[pos + size :]


def patch_central(data: bytes, member: str, **fields: int) -> bytes:
    """Set fields (flags, method, crc, csize, usize, offset) of `member`'s central directory
    entry; the local header and data are left as they are."""
    unknown = set(fields) - set(_CENTRAL_FIELDS)
    assert not unknown, unknown
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pos = zf.start_dir
    while out[pos : pos + 4] == b"PK\x01\x02":
        values = list(_CENTRAL.unpack_from(out, pos))
        name = bytes(out[pos + 46 : pos + 46 + values[10]]).decode()
        if name == member:
            for key, value in fields.items():
                values[_CENTRAL_AT[key]] = value
            _CENTRAL.pack_into(out, pos, *values)
            return bytes(out)
        pos += 46 + values[10] + values[11] + values[12]
    raise KeyError(member)


def rezip(data: bytes, replace=None, drop=(), add=None, compression=zipfile.ZIP_DEFLATED):
    """A new, internally consistent zip (valid CRCs) of `data`'s members, with members dropped,
    replaced ({name: bytes}) or added ({name: bytes}, even a name already present)."""
    replace, add = replace or {}, add or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for name in src.namelist():
            if name not in drop:
                dst.writestr(name, replace.get(name, src.read(name)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name"
            for name, content in add.items():
                dst.writestr(name, content)
    return out.getvalue()


def npy(header: str | dict, payload: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy member with any header (a dict is written as numpy writes it, a str as given) and
    any payload, for forging headers that disagree with their data."""
    text = (repr(header) if isinstance(header, dict) else header).encode("latin1")
    length = struct.pack("<H" if version == (1, 0) else "<I", len(text) + 1)
    return b"\x93NUMPY" + bytes(version) + length + text + b"\n" + payload


def npy_of(array) -> bytes:
    """The .npy bytes numpy writes for `array`."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
