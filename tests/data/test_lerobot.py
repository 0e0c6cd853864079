"""LeRobot import (v2.1, v3.0) and export (v3.0): the real Unitree G1 samples, variants the samples
lack (PNG frames in the parquet, several tasks, non-square frames, many episodes per file, H.264,
actions outside [-1, 1]), the store -> LeRobot -> store round trip, hostile inputs, and BC trained
on an imported sample."""

import json
import os
import shutil
import subprocess

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import SAMPLES

from robolearn.cli import main
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.lerobot import (
    LeRobotConfig,
    fit_image,
    iter_lerobot_episodes,
    open_dataset,
    parse_episodes,
)
from robolearn.data.lerobot_export import ExportConfig, export_lerobot
from robolearn.data.store import create_store, iter_episodes, write_episode

V21 = SAMPLES / "lerobot_v21_unitree_g1"
V30 = SAMPLES / "lerobot_v30_unitree_g1"
needs_samples = pytest.mark.skipif(
    not (V21 / "meta" / "info.json").is_file() or not (V30 / "meta" / "info.json").is_file(),
    reason=f"the shared LeRobot samples are absent ({SAMPLES})",
)
TASK = "Pick up the yellow bottle on the table."


def _import(root, out, *flags):
    argv = ["data", "import", "lerobot", str(root), "--out", str(out), "--quiet", *flags]
    return main(argv)


def _episodes(store):
    return [ep for _, ep in iter_episodes(store)]


def _source_action(ep):
    """The actions in the source's units: a * action_scale + action_offset."""
    extra = ep.meta.extra
    return ep.action * np.float64(extra["action_scale"]) + np.float64(extra["action_offset"])


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


# --- a small LeRobot writer for the variants the real samples do not cover -----------------


def _encode(path, frames, fps, codec="libx264"):
    """frames uint8 [N, H, W, 3] -> an mp4 (keyframe every 2 frames, as LeRobot encodes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-framerate", str(fps), "-i", "pipe:0", "-c:v", codec]
    cmd += ["-pix_fmt", "yuv444p" if codec == "libx264" else "yuv420p", "-g", "2"]
    cmd += ["-qp", "0"] if codec == "libx264" else ["-q:v", "2"]
    subprocess.run([*cmd, "-y", str(path)], input=frames.tobytes(), check=True)


def _png_struct(frames):
    import cv2

    return [
        {"bytes": cv2.imencode(".png", f[..., ::-1])[1].tobytes(), "path": None} for f in frames
    ]


def _episode_arrays(rng, n, colors, task_indices, scale=1.0):
    """Frames of one flat colour per frame (from `colors`), random state/action, rewards."""
    h, w = 12, 16
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:] = np.asarray(colors, np.uint8)[:, None, None, :]
    return {
        "frames": frames,
        "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
        "action": (rng.uniform(-1, 1, size=(n, 2)) * scale).astype(np.float32),
        "task_index": np.asarray(task_indices, np.int64),
        "next.reward": np.arange(n, dtype=np.float32) / 10,
        "next.success": np.arange(n) >= n - 2,
    }


def _write_lerobot(root, version, episodes, tasks, images="video", codec="libx264", fps=10):
    """A LeRobot dataset as lerobot lays it out: `episodes` is a list of _episode_arrays dicts."""
    cam = "observation.images.top"
    h, w = episodes[0]["frames"].shape[1:3]
    features = {
        cam: {"dtype": images, "shape": [h, w, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "action": {"dtype": "float32", "shape": [2], "names": {"motors": ["m0", "m1"]}},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
    }
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "float32" if key == "timestamp" else "int64", "shape": [1]}
    v21 = version == "v2.1"
    info = {
        "codebase_version": version,
        "robot_type": "test_arm",
        "fps": fps,
        "chunks_size": 1000,
        "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        if v21
        else "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        if v21
        else "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    tables, rows, start, offset = [], [], 0, 0
    for e, ep in enumerate(episodes):
        n = len(ep["frames"])
        table = {
            "observation.state": pa.array(list(ep["observation.state"]), pa.list_(pa.float32())),
            "action": pa.array(list(ep["action"]), pa.list_(pa.float32())),
            "next.reward": ep["next.reward"],
            "next.success": ep["next.success"],
            "timestamp": (np.arange(n) / fps).astype(np.float32),
            "frame_index": np.arange(n),
            "episode_index": np.full(n, e),
            "index": np.arange(start, start + n),
            "task_index": ep["task_index"],
        }
        if images == "image":
            table[cam] = _png_struct(ep["frames"])
        tables.append(pa.table(table))
        names = [tasks[t] for t in dict.fromkeys(ep["task_index"].tolist())]
        row = {"episode_index": e, "tasks": names, "length": n}
        if v21:
            path = root / f"data/chunk-000/episode_{e:06d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(tables[-1], path)
            if images == "video":
                video = root / f"videos/chunk-000/{cam}/episode_{e:06d}.mp4"
                _encode(video, ep["frames"], fps, codec)
        else:
            row.update({"data/chunk_index": 0, "data/file_index": 0})
            row.update({"dataset_from_index": start, "dataset_to_index": start + n})
            if images == "video":
                row[f"videos/{cam}/chunk_index"] = 0
                row[f"videos/{cam}/file_index"] = 0
                row[f"videos/{cam}/from_timestamp"] = offset / fps
                row[f"videos/{cam}/to_timestamp"] = (offset + n) / fps
        rows.append(row)
        start += n
        offset += n
    if v21:
        lines = [json.dumps(r) for r in rows]
        (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
        lines = [json.dumps({"task_index": i, "task": t}) for i, t in enumerate(tasks)]
        (root / "meta" / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    else:
        path = root / "data/chunk-000/file-000.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.concat_tables(tables), path, row_group_size=7)
        if images == "video":
            frames = np.concatenate([ep["frames"] for ep in episodes])
            _encode(root / f"videos/{cam}/chunk-000/file-000.mp4", frames, fps, codec)
        path = root / "meta/episodes/chunk-000/file-000.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
        pq.write_table(
            pa.table({"task_index": np.arange(len(tasks)), "task": tasks}),
            root / "meta" / "tasks.parquet",
        )
    return root


COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220)]


def _flat(n, first):
    return [COLORS[(first + i) % len(COLORS)] for i in range(n)]


# --- the real samples ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def g1(tmp_path_factory):
    """Both real samples imported at 16 px: v2.1 (--skip-missing: episodes 28, 29) and v3.0."""
    root = tmp_path_factory.mktemp("g1")
    if not (V21 / "meta" / "info.json").is_file():
        pytest.skip(f"the shared LeRobot samples are absent ({SAMPLES})")
    assert _import(V21, root / "v21", "--image-size", "16", "--skip-missing") == 0
    assert _import(V30, root / "v30", "--image-size", "16") == 0
    return _episodes(root / "v21"), _episodes(root / "v30")


@needs_samples
def test_v21_sample_imports_the_two_present_episodes(g1):
    v21, _ = g1
    assert [ep.meta.extra["episode_index"] for ep in v21] == [28, 29]
    assert [ep.num_steps for ep in v21] == [277, 220]  # 278 and 221 frames
    source = pq.read_table(V21 / "data/chunk-000/episode_000029.parquet")
    state = np.stack(source.column("observation.state").to_numpy(zero_copy_only=False))
    action = np.stack(source.column("action").to_numpy(zero_copy_only=False))
    ep = v21[1]
    assert ep.image.shape == (221, 16, 16, 3) and ep.image.std() > 10
    np.testing.assert_array_equal(ep.proprio, state)
    assert ep.state.shape == (221, 0)
    # G1 actions leave [-1, 1] (elbows > 1 rad): scaled by the dataset's min/max, recoverable
    extra = ep.meta.extra
    assert extra["action_stats"] == "meta/episodes_stats.jsonl"
    np.testing.assert_allclose(_source_action(ep), action[:-1], atol=1e-5)
    np.testing.assert_allclose(extra["dropped_final_action"], action[-1], atol=1e-6)
    assert np.abs(ep.action).max() <= 1.0 and np.abs(ep.action).max() > 0.5
    assert ep.meta.action_names[0] == "kLeftShoulderPitch" and len(ep.meta.action_names) == 26
    assert extra["proprio_names"][-1] == "kRightHandThumbRotation"
    assert (ep.meta.instruction, ep.meta.task, ep.meta.fps) == (TASK, V21.name, 30.0)
    assert ep.meta.source == "imported" and not ep.success.any() and not ep.reward.any()


@needs_samples
def test_v30_sample_matches_the_v21_episodes_it_was_converted_from(g1):
    v21, v30 = g1
    assert [ep.meta.extra["episode_index"] for ep in v30] == [0, 1]
    assert v30[0].meta.extra["action_stats"] == "meta/stats.json"
    for old, new in zip(v21, v30, strict=True):
        np.testing.assert_array_equal(new.proprio, old.proprio)
        np.testing.assert_allclose(_source_action(new), _source_action(old), atol=1e-5)
        # the converter copied the AV1 streams: the same frames decode, and episode 1, which
        # starts 278 frames into the shared mp4, is seeked to exactly (one frame off: 0.87 off)
        np.testing.assert_array_equal(new.image, old.image)
        assert new.meta.instruction == TASK


@needs_samples
def test_v21_sample_refuses_missing_episodes_unless_told(tmp_path, capsys):
    err = _error(["data", "import", "lerobot", str(V21), "--out", str(tmp_path / "s")], capsys)
    assert "data/chunk-000/episode_000000.parquet: missing" in err
    assert "98 of the 100" in err and "--skip-missing" in err
    assert not (tmp_path / "s").exists()
    err = _error(["data", "import", "lerobot", str(V21), "--episodes", "3"], capsys)
    assert "episode_000003.parquet: missing" in err


@pytest.mark.slow
@needs_samples
def test_bc_trains_on_an_imported_g1_episode(tmp_path):
    """26-D actions and 26-D proprio from a real robot, 16 px frames: BC trains end to end."""
    assert _import(V30, tmp_path / "data", "--image-size", "16", "--episodes", "1") == 0
    argv = ["train", "bc", "--data", str(tmp_path / "data"), "--preset", "tiny", "--steps", "2"]
    assert main([*argv, "--batch-size", "4", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    from robolearn.policies.bc import checkpoint as ckpt

    info = ckpt.read_info(tmp_path / "run")
    assert (info.task, info.action_dim, info.proprio_dim, info.image_size) == (V30.name, 26, 26, 16)


# --- variants -------------------------------------------------------------------------------


def test_v30_many_episodes_per_file_h264_seeks_each_episode(tmp_path):
    rng = np.random.default_rng(0)
    eps = [_episode_arrays(rng, n, _flat(n, e), [0] * n) for e, n in enumerate((5, 4, 6))]
    root = _write_lerobot(tmp_path / "ds", "v3.0", eps, ["push the block"])
    assert _import(root, tmp_path / "s", "--image-size", "0", "--episodes", "1-2") == 0
    got = _episodes(tmp_path / "s")
    assert [ep.meta.extra["episode_index"] for ep in got] == [1, 2]
    for ep, src in zip(got, eps[1:], strict=True):
        assert ep.image.shape == src["frames"].shape  # 0 keeps the source 16x12
        np.testing.assert_allclose(ep.image[:, 6, 8], src["frames"][:, 6, 8], atol=6)
        np.testing.assert_array_equal(ep.proprio, src["observation.state"])
        # actions already in [-1, 1] are kept exactly; the last frame's is dropped
        np.testing.assert_array_equal(ep.action, src["action"][:-1])
        assert ep.meta.extra["action_offset"] is None
        assert ep.meta.action_names == ("m0", "m1")
        r = src["next.reward"]
        np.testing.assert_allclose(ep.reward, np.r_[r[:-2], r[-2] + r[-1]])
        assert ep.success.tolist() == [False, *src["next.success"][:-2], True]
        assert ep.meta.fps == 10.0 and ep.meta.instruction == "push the block"


def test_png_frames_in_the_parquet_several_tasks_and_scaled_actions(tmp_path):
    rng = np.random.default_rng(1)
    tasks = ["open the drawer", "close the drawer"]
    eps = [
        _episode_arrays(rng, 6, _flat(6, 0), [1, 1, 1, 0, 0, 0], scale=3.0),
        _episode_arrays(rng, 5, _flat(5, 2), [0] * 5, scale=3.0),
    ]
    root = _write_lerobot(tmp_path / "ds", "v2.1", eps, tasks, images="image")
    assert _import(root, tmp_path / "s", "--image-size", "8", "--crop", "--task", "drawer") == 0
    first, second = _episodes(tmp_path / "s")
    assert first.image.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(first.image[:, 4, 4], np.asarray(_flat(6, 0)))
    assert first.meta.instruction == "close the drawer"  # the first frame's task
    assert first.meta.extra["instructions"] == ["close the drawer", "open the drawer"]
    assert second.meta.instruction == "open the drawer" and first.meta.task == "drawer"
    # no stats files: the min/max of the selected episodes' actions scale them to [-1, 1]
    assert first.meta.extra["action_stats"] == "the selected episodes"
    both = np.concatenate([ep["action"] for ep in eps])
    for ep, src in ((first, eps[0]), (second, eps[1])):
        x = ep.action * np.float64(ep.meta.extra["action_scale"])
        np.testing.assert_allclose(x + ep.meta.extra["action_offset"], src["action"][:-1], 1e-5)
    assert both.min() < -1 or both.max() > 1  # the source leaves [-1, 1]
    stacked = np.concatenate([first.action, second.action])
    assert stacked.min() >= -1 and stacked.max() <= 1 and np.abs(stacked).max() > 0.5
    assert first.meta.extra["clipped_action_values"] == 0


def test_stretch_and_crop_of_non_square_frames():
    img = np.zeros((12, 16, 3), np.uint8)
    img[:, :2] = 255  # a stripe at the left edge, cut off by the center crop
    assert fit_image(img, (8, 8), crop=False)[:, 0].min() == 255
    assert fit_image(img, (8, 8), crop=True).max() == 0


# --- export and the round trip --------------------------------------------------------------


def _smooth_store(root, episodes=3, steps=6, size=(12, 16), sim_state=2):
    """Episodes with smooth frames (gradients moving per step) and every array non-trivial."""
    rng = np.random.default_rng(2)
    create_store(root)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for e in range(episodes):
        frames = np.stack(
            [
                np.stack([xx * 12 + 8 * t, yy * 16 + 20 * e, 128 + 0 * xx + 10 * t], -1)
                for t in range(steps + 1)
            ]
        ).astype(np.uint8)
        success = np.zeros(steps + 1, bool)
        success[-2:] = e % 2 == 0
        meta = EpisodeMeta(
            task="drawer",
            instruction=["open the drawer", "close the drawer"][e % 2],
            source="expert",
            fps=5.0,
            action_meaning="BridgeData: dxyz/0.05 m, drpy/0.25 rad, gripper",
            action_names=("dx", "dy", "dz", "g"),
            policy="expert",
            seed=e,
            layout=(0.1, 0.2),
            extra={"note": "round trip", "n": e},
        )
        write_episode(
            root,
            Episode(
                image=frames,
                proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
                state=rng.normal(size=(steps + 1, sim_state)),
                action=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                reward=success[1:].astype(np.float32) * 0.5,
                success=success,
                meta=meta,
            ),
        )
    return root


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("images", ["video", "png"])
def test_store_to_lerobot_to_store_keeps_every_array_and_the_meta(tmp_path, images):
    src = _smooth_store(tmp_path / "src")
    argv = ["data", "export", "lerobot", str(src), "--out", str(tmp_path / "ds"), "--quiet"]
    assert main([*argv, "--images", images]) == 0
    assert _import(tmp_path / "ds", tmp_path / "back", "--image-size", "0") == 0
    before, after = _episodes(src), _episodes(tmp_path / "back")
    assert len(after) == len(before) == 3
    for a, b in zip(before, after, strict=True):
        for key in ("proprio", "state", "action", "reward", "success"):
            x, y = getattr(a, key), getattr(b, key)
            assert x.dtype == y.dtype and x.shape == y.shape, key
            np.testing.assert_array_equal(x, y, err_msg=key)
        assert b.meta == a.meta
        if images == "png":
            np.testing.assert_array_equal(b.image, a.image)
        else:
            assert b.image.shape == a.image.shape and _psnr(a.image, b.image) > 30


def test_export_is_laid_out_as_lerobot_v30(tmp_path):
    src = _smooth_store(tmp_path / "src", episodes=2, steps=4, sim_state=0)
    summary = export_lerobot(src, tmp_path / "ds", ExportConfig())
    assert summary["episodes"] == 2 and summary["frames"] == 10
    root = tmp_path / "ds"
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 10, 2)
    feats = info["features"]
    assert feats["observation.image"]["dtype"] == "video"
    assert feats["observation.image"]["shape"] == [12, 16, 3]
    assert feats["observation.state"]["shape"] == [7] and feats["action"]["shape"] == [4]
    assert "robolearn.sim_state" not in feats  # S = 0: no feature
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.column("index").to_pylist() == list(range(10))
    assert data.column("next.done").to_pylist() == [False] * 4 + [True] + [False] * 4 + [True]
    actions = np.stack(data.column("action").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(actions[4], actions[3])  # the last frame holds the action
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in eps] == [0, 5]
    assert eps[1]["videos/observation.image/from_timestamp"] == 1.0  # 5 frames at 5 fps
    assert eps[1]["tasks"] == ["close the drawer"]
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert tasks.column("task").to_pylist() == ["open the drawer", "close the drawer"]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.shape(stats["observation.image"]["mean"]) == (3, 1, 1)
    assert stats["action"]["count"] == [10] and len(stats["action"]["min"]) == 4
    frames = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-i",
            str(
                root
                / info["video_path"].format(
                    video_key="observation.image", chunk_index=0, file_index=0
                )
            ),
        ],
        capture_output=True,
    ).stderr.decode()
    assert "h264" in frames


def test_export_refuses_a_non_empty_out_and_mixed_sizes(tmp_path, capsys):
    src = _smooth_store(tmp_path / "src", episodes=1, steps=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    argv = ["data", "export", "lerobot", str(src), "--quiet", "--out"]
    assert "exists and is not empty" in _error([*argv, str(tmp_path / "busy")], capsys)
    _smooth_store(tmp_path / "src2", episodes=1, steps=3, size=(8, 8))
    for path in (tmp_path / "src2" / "episodes").iterdir():
        shutil.copy(path, src / "episodes" / "ep-000001.npz")
    err = _error([*argv, str(tmp_path / "out")], capsys)
    assert "ep-000001.npz: key 'image' is 8x8" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "src", "src2"]  # no partial


# --- hostile inputs ---------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(3)
    eps = [_episode_arrays(rng, 4, _flat(4, e), [0] * 4) for e in range(2)]
    return _write_lerobot(tmp_path / "ds", "v2.1", eps, ["t"])


def _hostile(small, tmp_path, capsys, *flags) -> str:
    out = tmp_path / "store"
    argv = ["data", "import", "lerobot", str(small), "--out", str(out), "--quiet", *flags]
    err = _error(argv, capsys)
    assert not out.exists(), "the store must not be created for bad input"
    return err


def test_corrupt_info_json(small, tmp_path, capsys):
    (small / "meta/info.json").write_text("{not json")
    assert "meta/info.json: not valid JSON" in _hostile(small, tmp_path, capsys)


def test_unsupported_version(small, tmp_path, capsys):
    info = json.loads((small / "meta/info.json").read_text())
    (small / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    assert "codebase_version 'v2.0' is not supported" in _hostile(small, tmp_path, capsys)


def test_missing_parquet(small, tmp_path, capsys):
    (small / "data/chunk-000/episode_000001.parquet").unlink()
    err = _hostile(small, tmp_path, capsys)
    assert "episode_000001.parquet: missing (episode 1; 1 of the 2" in err


def test_truncated_mp4(small, tmp_path, capsys):
    video = small / "videos/chunk-000/observation.images.top/episode_000001.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    err = _hostile(small, tmp_path, capsys)
    assert "episode_000001.mp4:" in err


def test_parquet_missing_the_action_column(small, tmp_path, capsys):
    path = small / "data/chunk-000/episode_000000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["action"]), path)
    assert "episode_000000.parquet: column 'action' missing" in _hostile(small, tmp_path, capsys)


def test_wrong_shapes(small, tmp_path, capsys):
    path = small / "data/chunk-000/episode_000000.parquet"
    table = pq.read_table(path)
    wide = pa.array([[0.0] * 5] * table.num_rows, pa.list_(pa.float32()))
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", wide), path)
    err = _hostile(small, tmp_path, capsys)
    assert "column 'action' row 0 holds 5 values, info.json says 2" in err


def test_unknown_camera_and_state_keys(small, tmp_path, capsys):
    argv = ["data", "import", "lerobot", str(small), "--out", str(tmp_path / "s")]
    err = _error([*argv, "--camera", "observation.images.wrist"], capsys)
    assert "use --camera with one of: observation.images.top" in err
    err = _error([*argv, "--state-key", "observation.joints"], capsys)
    assert "no feature 'observation.joints'; choose one with --state-key" in err
    assert not (tmp_path / "s").exists()


def test_video_shorter_than_its_episode(small, tmp_path, capsys):
    """The metadata and the rows say 6 frames, the mp4 holds 4: refused before any decoding."""
    path = small / "meta/episodes.jsonl"
    path.write_text(path.read_text().replace('"length": 4', '"length": 6', 1))
    data = small / "data/chunk-000/episode_000000.parquet"
    table = pq.read_table(data)
    pq.write_table(pa.concat_tables([table, table.slice(0, 2)]), data)
    err = _hostile(small, tmp_path, capsys, "--episodes", "0")
    assert "episode_000000.mp4: 4 video frames, the episodes in it need 6" in err


def test_parse_episodes():
    assert parse_episodes("0,3-5, 7") == (0, 3, 4, 5, 7)
    assert parse_episodes("") is None
    for bad in ("a", "5-3", "-1"):
        with pytest.raises(Exception, match="--episodes"):
            parse_episodes(bad)


def test_two_workers_give_the_same_episodes(small):
    one = [
        i.episode
        for i in iter_lerobot_episodes(open_dataset(small, LeRobotConfig()), LeRobotConfig())
    ]
    cfg = LeRobotConfig(workers=2)
    two = [i.episode for i in iter_lerobot_episodes(open_dataset(small, cfg), cfg)]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.action, b.action)


@needs_samples
def test_imports_from_the_hugging_face_hub_cache(g1, tmp_path):
    """A dataset downloaded by huggingface_hub (`snapshot_download`, or LeRobotDataset with the
    hub cache) lies in ~/.cache/huggingface/hub/datasets--ORG--NAME/snapshots/REV/ as relative
    symlinks into ../../blobs/: importing that folder gives what the plain folder gives."""
    repo = tmp_path / "hub" / "datasets--unitreerobotics--G1_pick_bottle"
    snapshot = repo / "snapshots" / ("0" * 40)
    for i, source in enumerate(sorted(p for p in V30.rglob("*") if p.is_file())):
        blob = repo / "blobs" / f"{i:064x}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.symlink_to(source)  # the blob itself: the shared file, never copied
        link = snapshot / source.relative_to(V30)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    assert _import(snapshot, tmp_path / "store", "--image-size", "16") == 0
    _, v30 = g1
    got = _episodes(tmp_path / "store")
    assert len(got) == len(v30) > 0
    for a, b in zip(got, v30, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.action, b.action)
        assert a.meta.instruction == b.meta.instruction
