"""TFRecord files and `tf.train.Example` records, read without TensorFlow.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little endian) | uint32 masked CRC32C of the 8 length bytes
    bytes  data[length]           | uint32 masked CRC32C of data

where mask(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32). Both checksums are verified.

An Example is a protobuf message decoded here straight from the wire format:

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   (map entry: key = 1, value = 2)
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }   FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }

Writers may emit repeated numbers packed (one length-delimited field) or unpacked (one field per
value); both are accepted, as are fields this reader does not know (skipped by wire type).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c
import numpy as np

from robolearn.core.errors import RobolearnError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")

# Protobuf wire types.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5

Value = list[bytes] | np.ndarray
"""A decoded Feature: list of bytes (BytesList), float32 [N] (FloatList), int64 [N] (Int64List)."""


class TFRecordError(RobolearnError, ValueError):
    """A file that is not a readable TFRecord, or a record that is not an Example."""


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum of `data`: CRC32C (Castagnoli), rotated right 15 bits, plus a delta."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset of the record, record data) for every record of a TFRecord file.

    Raises TFRecordError naming the file and the record's byte offset on a truncated record or
    a checksum mismatch (corruption, or a file that is not a TFRecord at all).
    """
    path = Path(path)
    if not path.is_file():
        raise TFRecordError(f"{path}: no such file")
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise TFRecordError(
                    f"{path}: truncated record header at byte {offset} "
                    f"({len(header)} of {_HEADER.size} bytes); the file is cut short"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(
                    f"{path}: bad length checksum of the record at byte {offset}; "
                    "not a TFRecord file, or corrupted"
                )
            data = f.read(length)
            footer = f.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise TFRecordError(
                    f"{path}: truncated record at byte {offset} (needs {length} data bytes "
                    f"+ checksum, file ends first); the file is cut short"
                )
            if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                raise TFRecordError(
                    f"{path}: bad data checksum of the record at byte {offset}; "
                    "the file is corrupted"
                )
            yield offset, data
            offset += _HEADER.size + length + _FOOTER.size


def iter_examples(path: str | Path) -> Iterator[tuple[int, dict[str, Value]]]:
    """Yield (byte offset, decoded Example features) for every record of a TFRecord file."""
    for offset, data in iter_records(path):
        try:
            features = decode_example(data)
        except ValueError as exc:
            raise TFRecordError(
                f"{path}: the record at byte {offset} is not a tf.train.Example ({exc})"
            ) from exc
        yield offset, features


def decode_example(data: bytes) -> dict[str, Value]:
    """Decode a serialized tf.train.Example into {feature name: value} (see `Value`).

    Raises ValueError on malformed bytes.
    """
    features: dict[str, Value] = {}
    for field, wire, payload in _fields(memoryview(data)):
        if field == 1 and wire == _LEN:
            features.update(_decode_features(payload))
    return features


def _decode_features(buf: memoryview) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for field, wire, entry in _fields(buf):
        if field != 1 or wire != _LEN:
            continue
        key, value = "", None
        for efield, ewire, payload in _fields(entry):
            if efield == 1 and ewire == _LEN:
                key = bytes(payload).decode("utf-8")
            elif efield == 2 and ewire == _LEN:
                value = decode_feature(payload)
        out[key] = value if value is not None else []
    return out


def decode_feature(buf: bytes | memoryview) -> Value:
    """Decode one serialized Feature; an empty Feature (no kind set) decodes to []."""
    value: Value = []
    for field, wire, payload in _fields(memoryview(buf)):
        if wire != _LEN:
            continue
        if field == 1:
            value = [bytes(p) for f, w, p in _fields(payload) if f == 1 and w == _LEN]
        elif field == 2:
            value = _decode_floats(payload)
        elif field == 3:
            value = _decode_int64s(payload)
    return value


def _decode_floats(buf: memoryview) -> np.ndarray:
    parts = []
    for field, wire, payload in _fields(buf):
        if field != 1:
            continue
        if wire == _LEN:  # packed
            if len(payload) % 4:
                raise ValueError(f"packed float list of {len(payload)} bytes, not a multiple of 4")
            parts.append(np.frombuffer(payload, dtype="<f4"))
        elif wire == _FIXED32:
            parts.append(np.frombuffer(payload, dtype="<f4"))
    if not parts:
        return np.zeros(0, np.float32)
    return np.concatenate(parts).astype(np.float32)


def _decode_int64s(buf: memoryview) -> np.ndarray:
    values: list[int] = []
    for field, wire, payload in _fields(buf):
        if field != 1:
            continue
        if wire == _LEN:  # packed
            pos = 0
            while pos < len(payload):
                v, pos = read_varint(payload, pos)
                values.append(v)
        elif wire == _VARINT:
            values.append(payload)
    # int64 is two's complement in 64 bits: a negative number is a 10-byte varint >= 2**63.
    signed = [v - (1 << 64) if v >= (1 << 63) else v for v in values]
    return np.asarray(signed, dtype=np.int64)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at `pos`; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """Yield (field number, wire type, payload) of a message; a varint's payload is its int."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, pos = read_varint(buf, pos)
            yield field, wire, value
            continue
        if wire == _LEN:
            size, pos = read_varint(buf, pos)
        elif wire == _FIXED64:
            size = 8
        elif wire == _FIXED32:
            size = 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {field})")
        if pos + size > end:
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire, buf[pos : pos + size]
        pos += size
