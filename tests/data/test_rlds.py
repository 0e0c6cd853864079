"""RLDS import: the TFRecord reader, the Example decoder, and the real BridgeData V2 shard."""

import io
import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from robolearn import cli
from robolearn.data.rlds import RldsConfig, normalize_bridge_action, rlds_to_episode
from robolearn.data.store import iter_episodes
from robolearn.data.tfrecord import (
    TFRecordError,
    decode_example,
    iter_examples,
    iter_records,
    masked_crc32c,
    read_varint,
)

SHARD = Path(__file__).parents[2].parent / "shared" / "data" / "bridge_debug.tfrecord"
needs_shard = pytest.mark.skipif(
    not SHARD.is_file(), reason=f"the shared BridgeData shard is absent ({SHARD})"
)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 2:
        return tag + _varint(len(payload)) + payload
    return tag + payload


def _example(features: dict[str, bytes]) -> bytes:
    entries = b"".join(
        _field(1, 2, _field(1, 2, key.encode()) + _field(2, 2, feature))
        for key, feature in features.items()
    )
    return _field(1, 2, entries)


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def test_varints_worked_by_hand():
    assert read_varint(b"\x96\x01", 0) == (150, 2)
    assert read_varint(b"\x00\xac\x02", 1) == (300, 3)
    assert read_varint(b"\xff" * 9 + b"\x01", 0) == ((1 << 64) - 1, 10)
    with pytest.raises(ValueError, match="truncated varint"):
        read_varint(b"\x96", 0)


def test_masked_crc32c_of_a_known_string():
    crc = 0xE3069283  # CRC32C("123456789"), the standard check value
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_example_decoder_on_hand_built_bytes():
    floats = struct.pack("<3f", 1.5, -2.0, 0.25)
    features = {
        "bytes": _field(1, 2, _field(1, 2, b"abc") + _field(1, 2, b"")),
        "packed_floats": _field(2, 2, _field(1, 2, floats)),
        "unpacked_floats": _field(2, 2, _field(1, 5, struct.pack("<f", 3.0)) * 2),
        "packed_ints": _field(3, 2, _field(1, 2, _varint(1) + _varint(300) + _varint(-2))),
        "unpacked_ints": _field(3, 2, _field(1, 0, 7) + _field(1, 0, -1)),
        "empty": b"",
    }
    data = _example(features) + _field(9, 0, 42)  # an unknown field is skipped
    out = decode_example(data)
    assert out["bytes"] == [b"abc", b""]
    np.testing.assert_array_equal(out["packed_floats"], [1.5, -2.0, 0.25])
    assert out["packed_floats"].dtype == np.float32
    np.testing.assert_array_equal(out["unpacked_floats"], [3.0, 3.0])
    np.testing.assert_array_equal(out["packed_ints"], [1, 300, -2])
    assert out["packed_ints"].dtype == np.int64
    np.testing.assert_array_equal(out["unpacked_ints"], [7, -1])
    assert out["empty"] == []
    with pytest.raises(ValueError, match="past the end"):
        decode_example(data[:-5])


def test_example_decoder_matches_the_protobuf_runtime():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="ex.proto", package="t", syntax="proto3")
    for name, kind in (("BytesList", "bytes"), ("FloatList", "float"), ("Int64List", "int64")):
        proto.message_type.add(name=name).field.add(
            name="value",
            number=1,
            type=getattr(field, f"TYPE_{kind.upper()}"),
            label=field.LABEL_REPEATED,
        )
    feature = proto.message_type.add(name="Feature")
    for number, (kind, type_name) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")), 1
    ):
        feature.field.add(
            name=kind,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=f".t.{type_name}",
            label=field.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    feature_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Feature"))
    built = {
        "b": feature_cls(bytes_list={"value": [b"\xff\xd8", b"x"]}),
        "f": feature_cls(float_list={"value": [0.5, -1.25]}),
        "i": feature_cls(int64_list={"value": [0, -7, 1 << 40]}),
    }
    out = decode_example(_example({k: v.SerializeToString() for k, v in built.items()}))
    assert out["b"] == [b"\xff\xd8", b"x"]
    np.testing.assert_array_equal(out["f"], [0.5, -1.25])
    np.testing.assert_array_equal(out["i"], [0, -7, 1 << 40])


def test_normalization_worked_by_hand():
    raw = np.array([[0.05, -0.025, 0.0, 0.25, -0.5, 0.125, 0.75]])
    action, clipped = normalize_bridge_action(raw)
    np.testing.assert_allclose(action, [[1.0, -0.5, 0.0, 1.0, -1.0, 0.5, 0.5]])
    assert clipped == 1 and action.dtype == np.float32


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((8, 8, 3), value, np.uint8))[1].tobytes()


def test_time_alignment_drops_the_final_action_and_keeps_the_return(tmp_path):
    n = 3
    features = {
        "steps/observation/image_0": [_jpeg(v) for v in (0, 100, 200)],
        "steps/observation/state": np.arange(n * 7, dtype=np.float32),
        "steps/action": np.tile(np.float32([0.01, 0, 0, 0, 0, 0, 1]), n),
        "steps/reward": np.float32([0, 0, 1]),
        "steps/is_first": np.int64([1, 0, 0]),
        "steps/is_last": np.int64([0, 0, 1]),
        "steps/is_terminal": np.int64([0, 0, 1]),
        "steps/language_instruction": [b"open the drawer"] * n,
    }
    ep = rlds_to_episode(features, RldsConfig(image_size=16), tmp_path / "x.tfrecord")
    assert ep.num_steps == 2 and ep.image.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(ep.reward, [0.0, 1.0])
    np.testing.assert_array_equal(ep.success, [False, False, True])
    np.testing.assert_allclose(ep.action[0], [0.2, 0, 0, 0, 0, 0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(ep.proprio[2], np.arange(14, 21))
    assert ep.state.shape == (3, 0) and ep.meta.instruction == "open the drawer"
    assert ep.meta.extra["truncated"] is False and ep.meta.policy == "rlds:x"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    if not SHARD.is_file():
        pytest.skip(f"the shared BridgeData shard is absent ({SHARD})")
    out = tmp_path_factory.mktemp("store") / "bridge"
    code = cli.main(["data", "import", "rlds", str(SHARD), "--out", str(out), "--quiet"])
    assert code == 0
    return [ep for _, ep in iter_episodes(out)]


@needs_shard
def test_real_shard_imports_every_episode(imported):
    sources = [features for _, features in iter_examples(SHARD)]
    assert len(imported) == len(sources) == 25
    for ep, src in zip(imported, sources, strict=True):
        n = len(src["steps/is_first"])
        assert ep.image.shape == (n, 64, 64, 3) and ep.image.dtype == np.uint8
        assert ep.num_steps == n - 1 and ep.proprio.shape == (n, 7)
        assert ep.meta.instruction and ep.meta.instruction == (
            src["steps/language_instruction"][0].decode()
        )
        assert np.all(np.abs(ep.action) <= 1.0)
        raw = src["steps/action"].reshape(n, 7)
        expect = [*(raw[0, :3] / 0.05), *(raw[0, 3:6] / 0.25), 2 * raw[0, 6] - 1]
        np.testing.assert_allclose(ep.action[0], np.clip(expect, -1, 1), atol=1e-6)
        np.testing.assert_array_equal(ep.proprio, src["steps/observation/state"].reshape(n, 7))
        assert ep.meta.source == "imported" and ep.meta.task == "bridge"
        assert ep.meta.policy == "rlds:bridge_debug" and ep.meta.fps == 5.0


@needs_shard
def test_real_shard_images_are_rgb(imported):
    from PIL import Image

    src = next(iter_examples(SHARD))[1]
    rgb = np.asarray(Image.open(io.BytesIO(src["steps/observation/image_0"][0])).convert("RGB"))
    diff = np.abs(imported[0].image[0].astype(int) - rgb).mean()
    swapped = np.abs(imported[0].image[0][..., ::-1].astype(int) - rgb).mean()
    assert diff < 2.0 < swapped


@needs_shard
def test_import_reports_counts(tmp_path, capsys):
    code = cli.main(["data", "import", "rlds", str(SHARD), "--out", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert code == 0 and "imported 25 episodes, 225 steps" in out and str(tmp_path / "s") in out


def _error_of(path: Path, tmp_path: Path, capsys) -> str:
    code = cli.main(["data", "import", "rlds", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "episodes").exists() or "were written" in err
    return err


@needs_shard
def test_corrupted_byte_names_the_record_offset(tmp_path, capsys):
    bad = tmp_path / "bad.tfrecord"
    shutil.copyfile(SHARD, bad)
    second = next(o for i, (o, _) in enumerate(iter_records(SHARD)) if i == 1)
    data = bytearray(bad.read_bytes())
    data[second + 12 + 500] ^= 0xFF
    bad.write_bytes(bytes(data))
    err = _error_of(bad, tmp_path, capsys)
    assert f"byte {second}" in err and "checksum" in err and str(bad) in err
    with pytest.raises(TFRecordError, match=f"bad data checksum of the record at byte {second}"):
        list(iter_records(bad))


@needs_shard
def test_truncated_file_is_an_error(tmp_path, capsys):
    offsets = [o for o, _ in iter_records(SHARD)]
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(SHARD.read_bytes()[: offsets[3] + 1000])
    err = _error_of(cut, tmp_path, capsys)
    assert f"truncated record at byte {offsets[3]}" in err and str(cut) in err


def test_non_tfrecord_file_is_an_error(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a TFRecord file, just some text\n")
    err = _error_of(text, tmp_path, capsys)
    assert "byte 0" in err and "not a TFRecord" in err


def test_empty_file_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert "no records" in _error_of(empty, tmp_path, capsys)


@needs_shard
def test_bad_record_after_good_ones_says_what_was_written(tmp_path, capsys):
    first = next(iter_records(SHARD))[1]
    mixed = tmp_path / "mixed.tfrecord"
    mixed.write_bytes(_record(first) + _record(b"\x0f\x00"))
    err = _error_of(mixed, tmp_path, capsys)
    assert "not a tf.train.Example" in err and "1 episodes before it were written" in err


def test_record_that_is_not_an_example_is_an_error(tmp_path):
    path = tmp_path / "junk.tfrecord"
    path.write_bytes(_record(b"\x0f\x00"))  # wire type 7 does not exist
    with pytest.raises(TFRecordError, match="byte 0 is not a tf.train.Example"):
        list(iter_examples(path))


@needs_shard
def test_unknown_image_key_lists_the_cameras(tmp_path, capsys):
    argv = ["data", "import", "rlds", str(SHARD), "--out", str(tmp_path / "o"), "--quiet"]
    code = cli.main([*argv, "--image-key", "observation/wrist"])
    err = capsys.readouterr().err
    assert code == 2 and "observation/image_0, observation/image_1" in err


def _image_feature() -> dict:
    return {
        "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
        "image": {"shape": {"dimensions": ["256", "256", "3"]}, "dtype": "uint8"},
    }


def _dataset_dir(root: Path, lengths=(("train", ["25", "25"]), ("val", ["25"]))) -> Path:
    """A TFDS dataset directory whose shards are the real shard under TFDS's names, with the
    metadata TFDS writes (only what the importer reads): splits, shard lengths, image features."""
    root.mkdir(parents=True)
    splits = []
    for split, shards in lengths:
        for i in range(len(shards)):
            (root / f"bridge_dataset-{split}.tfrecord-{i:05d}-of-{len(shards):05d}").symlink_to(
                SHARD
            )
        splits.append({"name": split, "shardLengths": shards, "numBytes": "0"})
    info = {"name": "bridge_dataset", "version": "1.0.0", "fileFormat": "tfrecord"}
    (root / "dataset_info.json").write_text(json.dumps({**info, "splits": splits}))
    observation = {"image_1": _image_feature(), "state": {"pythonClassName": "Tensor"}}
    step = {"observation": {"featuresDict": {"features": observation}}, "action": {}}
    features = {"steps": {"sequence": {"feature": {"featuresDict": {"features": step}}}}}
    (root / "features.json").write_text(json.dumps({"featuresDict": {"features": features}}))
    return root


@needs_shard
def test_a_tfds_dataset_directory_imports_every_shard_in_order(tmp_path, capsys):
    ds = _dataset_dir(tmp_path / "bridge_dataset" / "1.0.0")
    argv = ["data", "import", "rlds", "--image-size", "16", "--quiet", "--out"]
    assert cli.main([*argv, str(tmp_path / "from_dir"), str(ds)]) == 0
    assert "imported 75 episodes, 675 steps" in capsys.readouterr().out
    shards = [
        ds / "bridge_dataset-train.tfrecord-00000-of-00002",
        ds / "bridge_dataset-train.tfrecord-00001-of-00002",
        ds / "bridge_dataset-val.tfrecord-00000-of-00001",
    ]
    files = [*argv, str(tmp_path / "from_files"), *map(str, shards)]
    assert cli.main([*files, "--image-key", "observation/image_1"]) == 0
    from_dir = [ep for _, ep in iter_episodes(tmp_path / "from_dir")]
    from_files = [ep for _, ep in iter_episodes(tmp_path / "from_files")]
    assert len(from_dir) == len(from_files) == 75
    for a, b in zip(from_dir, from_files, strict=True):
        for key in ("image", "proprio", "action", "reward", "success"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert a.meta.extra["source_file"] == b.meta.extra["source_file"]
        # features.json lists only image_1, so the directory import takes that camera.
        assert a.meta.extra["image_key"] == "observation/image_1"
    assert from_dir[25].meta.extra["source_file"].endswith("train.tfrecord-00001-of-00002")


@needs_shard
def test_tfds_metadata_is_checked_before_anything_is_written(tmp_path, capsys):
    ds = _dataset_dir(tmp_path / "a")
    (ds / "bridge_dataset-train.tfrecord-00001-of-00002").unlink()
    err = _error_of(ds, tmp_path, capsys)
    assert "split 'train' has 2 shards; bridge_dataset-train.tfrecord-00001-of-00002 is" in err
    ds = _dataset_dir(tmp_path / "b", lengths=(("train", ["24"]),))
    err = _error_of(ds, tmp_path, capsys)
    assert "holds 25 records, its dataset_info.json says 24" in err
    ds = _dataset_dir(tmp_path / "c", lengths=(("train", ["25"]),))
    argv = ["data", "import", "rlds", str(ds), "--out", str(tmp_path / "o"), "--quiet"]
    assert cli.main([*argv, "--image-key", "observation/image_0"]) == 2
    err = capsys.readouterr().err
    assert "no image feature steps/observation/image_0; use --image-key with one of: " in err
    assert "observation/image_1" in err and not (tmp_path / "o").exists()
