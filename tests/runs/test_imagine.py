"""`robolearn imagine`, `eval world-model`, `export world-model` and bundle references end to end
on tiny models trained for a few steps (tiny presets; outputs are checked, not quality)."""

import json
import shutil

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
import yaml
from robolearn.world_models.checkpoint import load_world_model, read_info

from robolearn import bundles
from robolearn.cli import main
from robolearn.core import plots
from robolearn.core.video import strip_height
from robolearn.data.synthetic import write_random_store
from robolearn.runs import imagine


def _outcome_store(root, episodes=4, steps=6, task="drawer"):
    """Random frames; even episodes succeed from step 3 on (success flags), odd ones fail."""
    return write_random_store(root, episodes, steps, task=task, seed=1, successes=True)


def _train_wm(data, out):
    argv = ["train", "world-model", "--data", str(data), "--preset", "tiny", "--steps", "2"]
    assert main(argv + ["--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    return out


def _train_bc(data, out):
    argv = ["train", "bc", "--data", str(data), "--preset", "tiny", "--steps", "2"]
    assert main(argv + ["--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny world model and BC policy for drawer, plus mismatched ones for the errors."""
    root = tmp_path_factory.mktemp("imagine")
    data = _outcome_store(root / "data")
    small = write_random_store(root / "data32", 2, 6, image_size=32)
    push = write_random_store(root / "push", 2, 6, task="push")
    return {
        "root": root,
        "data": data,
        "wm": _train_wm(data, root / "wm"),
        "bc": _train_bc(data, root / "bc"),
        "bc32": _train_bc(small, root / "bc32"),
        "wm_push": _train_wm(push, root / "wm_push"),
    }


def _imagine(parts, out, *extra, wm=None, bc=None):
    argv = ["imagine", "--task", "drawer", "--world-model", str(wm or parts["wm"])]
    argv += ["--policy", str(bc or parts["bc"]), "--out", str(out), *extra]
    return main(argv)


# imageio's reader spawns ffmpeg (fork + exec) after JAX started threads: harmless here.
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_imagine_writes_video_plot_and_per_step_comparison(parts, capsys):
    out = parts["root"] / "im"
    assert _imagine(parts, out, "--horizon", "3", "--rollouts", "2", "--seed", "5") == 0
    printed = capsys.readouterr().out
    assert "2 rollouts x 3 steps imagined" in printed and str(out / "video.mp4") in printed
    result = json.loads((out / "results.json").read_text())
    assert result["horizon"] == 3 and len(result["per_rollout"]) == 2
    for row in result["per_rollout"]:
        assert len(row["psnr"]) == 3 and len(row["ssim"]) == 3
        assert all(np.isfinite(row["psnr"]))
    frames = imageio.mimread(out / "video.mp4", memtest=False)
    assert len(frames) == 4  # the real first frame + 3 imagined steps
    # a header strip, the two rollouts side by side, the PSNR and the predicted-reward plots side
    # by side under them (bundle:drawer/reward scores the frames by default)
    assert frames[0].shape == (32 + 304 + imagine.PLOT_PX, 2 * imagine._tile_width(), 3)
    assert result["reward"]["classifier"] == "bundle:drawer/reward"
    for name in ("psnr.png", "reward.png"):
        assert imageio.imread(out / name).shape[:2] == (600, 1200)
    # config.yaml: what really ran, the shipped reward filled in and the model's own sampler
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert None not in config.values()
    assert (config["world_model"], config["policy"]) == (str(parts["wm"]), str(parts["bc"]))
    assert (config["reward"], config["horizon"]) == ("bundle:drawer/reward", 3)
    assert (config["sampler_method"], config["sampler_steps"]) == ("euler", 3)


def test_imagine_is_deterministic_per_seed(parts):
    a, b = parts["root"] / "det-a", parts["root"] / "det-b"
    for out in (a, b):
        assert _imagine(parts, out, "--horizon", "2", "--rollouts", "1", "--sample") == 0
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["per_rollout"][0]["psnr"] == rb["per_rollout"][0]["psnr"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("horizon0", "horizon must be >= 1"),
        ("missing-bundle", "no shipped bundle part 'bundle:nowhere/world-model'"),
        ("image-size", "policy sees 32x32 images but the world model imagines 64x64"),
        ("task", "world model was trained on push, not 'drawer'"),
        ("policy-as-wm", "not a world-model checkpoint (it is a policy checkpoint)"),
        ("context-noise", "sampler override: sampler.context_noise 0.2 is above the context"),
    ],
)
def test_imagine_bad_input_is_one_line(parts, capsys, case, message):
    out = parts["root"] / f"bad-{case}"
    kwargs, extra = {}, ["--horizon", "2"]
    if case == "horizon0":
        extra = ["--horizon", "0"]
    elif case == "missing-bundle":
        kwargs["wm"] = "bundle:nowhere/world-model"
    elif case == "image-size":
        kwargs["bc"] = parts["bc32"]
    elif case == "task":
        kwargs["wm"] = parts["wm_push"]
    elif case == "policy-as-wm":
        kwargs["wm"] = parts["bc"]
    elif case == "context-noise":  # a model trained on clean context only
        extra += ["--sampler-context-noise", "0.2"]
    assert _imagine(parts, out, *extra, **kwargs) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_eval_world_model_reports_per_step_fidelity_and_outcomes(parts, capsys):
    out = parts["root"] / "fid"
    argv = ["eval", "world-model", "--model", str(parts["wm"]), "--data", str(parts["data"])]
    argv += ["--horizon", "3", "--stride", "2", "--detector-steps", "5", "--out", str(out)]
    assert main(argv + ["--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR copy-last" in printed and "outcome fidelity" in printed
    assert printed.startswith("open loop: 8 windows from 4 episodes, model step 2, 3 euler steps")
    assert printed.rstrip().endswith(f"results: {out / 'results.json'}")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["sampler_method"], config["sampler_steps"]) == ("euler", 3)
    result = json.loads((out / "results.json").read_text())
    ol = result["open_loop"]
    assert ol["windows"] == 4 * 2  # starts 0 and 2 of each 6-step episode (3 + 3 <= 6)
    for key in ("psnr", "psnr_baseline", "ssim", "ssim_baseline"):
        assert len(ol["per_step"][key]) == 3
    oc = result["outcome"]
    assert oc["failed_episodes"] == 2 and oc["successful_episodes"] == 2
    assert 0.0 <= oc["imagined_success_on_failed"] <= 1.0


def test_eval_world_model_reads_streamed_episodes_as_it_reads_them_in_ram(parts, tmp_path):
    """input.mode=stream (every key read from the pack) gives the results RAM gives; windows and
    episodes are imagined in batches (--batch-size 3: 8 windows in 3 batches, 4 episodes in 2)."""
    data = tmp_path / "data"
    shutil.copytree(parts["data"], data, ignore=shutil.ignore_patterns("packed"))
    results = {}
    for mode in ("memory", "stream"):
        out = tmp_path / mode
        argv = ["eval", "world-model", "--model", str(parts["wm"]), "--data", str(data)]
        argv += ["--horizon", "3", "--stride", "2", "--detector-steps", "5", "--batch-size", "3"]
        argv += ["--out", str(out), "--quiet", f"input.mode={mode}", "input.memory_mb=0.001"]
        assert main(argv) == 0
        results[mode] = json.loads((out / "results.json").read_text())
        results[mode].pop("seconds")
    assert (data / "packed").is_dir()
    assert results["memory"] == results["stream"]
    assert results["memory"]["open_loop"]["windows"] == 8
    assert results["memory"]["outcome"]["detector_frames"] == 4 * 7  # every frame: fewer than 10000


def test_imagining_in_parts_gives_what_imagining_at_once_gives(parts):
    """Imaginer's `first`: rows imagined in parts (as eval world-model streams them, a batch at a
    time) get the keys, and so the frames, they get imagined all at once."""
    from robolearn.imagination import Imaginer

    wm = load_world_model(parts["wm"])
    t, a = wm.info.context, wm.info.action_dim
    size, p = wm.info.image_size, wm.info.proprio_dim
    rng = np.random.default_rng(0)
    n, h = 5, 2
    frames = rng.integers(0, 255, (n, t, size, size, 3), dtype=np.uint8)
    acts = rng.uniform(-1, 1, (n, t, a)).astype(np.float32)
    prop = rng.normal(size=(n, t, p)).astype(np.float32)
    future = rng.uniform(-1, 1, (n, h, a)).astype(np.float32)
    imaginer, key = Imaginer(wm, 2), jax.random.key(3)
    whole, _ = imaginer(key, frames, acts, prop, future)
    parts_ = [
        imaginer(key, *(x[i : i + 2] for x in (frames, acts, prop, future)), first=i)[0]
        for i in (0, 2, 4)
    ]
    np.testing.assert_array_equal(np.concatenate(parts_), whole)
    shifted, _ = imaginer(key, *(x[2:4] for x in (frames, acts, prop, future)))  # first=0
    assert not np.array_equal(shifted, whole[2:4])  # the key does depend on the offset


def test_the_detector_sample_is_bounded_and_keeps_both_outcomes():
    from robolearn.runs.eval_world_model import detector_sample

    success = np.zeros(100, bool)
    success[[3, 50, 51, 97]] = True
    np.testing.assert_array_equal(detector_sample(success, 100), np.arange(100))
    sample = detector_sample(success, 10, seed=1)
    assert len(sample) == 10 and (np.diff(sample) > 0).all()
    assert success[sample].sum() == 4  # every positive (fewer than half), negatives fill the rest
    success = np.arange(100) % 3 == 0
    sample = detector_sample(success, 20, seed=1)
    assert success[sample].sum() == 10 and len(np.unique(sample)) == 20
    np.testing.assert_array_equal(sample, detector_sample(success, 20, seed=1))


def test_export_keeps_only_ema_weights_with_identical_outputs(parts, capsys):
    out = parts["root"] / "exported"
    assert main(["export", "world-model", "--model", str(parts["wm"]), "--out", str(out)]) == 0
    assert read_info(out).weights == "ema"
    full, small = load_world_model(parts["wm"]), load_world_model(out)
    for a, b in zip(_leaves(full.params), _leaves(small.params), strict=True):
        np.testing.assert_array_equal(a, b)
    size = lambda d: sum(p.stat().st_size for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert size(out) < size(parts["wm"])
    # A second export into the same, now non-empty directory is refused.
    assert main(["export", "world-model", "--model", str(parts["wm"]), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_bundle_references_resolve_or_fail_in_one_line():
    with pytest.raises(bundles.BundleError, match="no shipped bundle part 'bundle:drawer/nope'"):
        bundles.resolve("bundle:drawer/nope")
    assert bundles.resolve("/some/dir") == "/some/dir"
    for part in bundles.list_parts():
        assert bundles.resolve(part.name) == str(part.path)


def test_sampler_can_be_overridden_and_is_checked(parts, capsys):
    out = parts["root"] / "heun"
    extra = ["--horizon", "1", "--rollouts", "1", "--sampler", "heun", "--sampler-steps", "2"]
    assert _imagine(parts, out, *extra, "--reward", "none") == 0
    result = json.loads((out / "results.json").read_text())
    sampler = result["sampler"]
    assert (sampler["method"], sampler["steps"]) == ("heun", 2)
    assert "reward" not in result and "predicted reward" not in capsys.readouterr().out
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert None not in config.values() and config["reward"] == "none"
    assert (config["sampler_method"], config["sampler_steps"], config["horizon"]) == ("heun", 2, 1)
    capsys.readouterr()
    assert _imagine(parts, parts["root"] / "bad-steps", "--sampler-steps", "0") == 2
    err = capsys.readouterr().err.strip()
    assert "sampler.steps must be >= 1" in err and len(err.splitlines()) == 1


def test_start_window_is_the_same_on_numpy_and_in_a_jitted_rollout():
    """start_window: the first frame and proprio repeated T times, zero actions; NumPy in, NumPy
    out (refine's host-side starts), traced JAX in, JAX out (inside a rollout)."""
    from robolearn.imagination import start_window

    image = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    proprio = np.arange(2 * 7).reshape(2, 7)  # integers: made float32
    frames, actions, prop = start_window(image, proprio, 3, 5)
    assert all(isinstance(x, np.ndarray) for x in (frames, actions, prop))
    assert frames.shape == (2, 3, 4, 4, 3) and frames.dtype == np.uint8
    assert (frames == image[:, None]).all() and (prop == proprio[:, None]).all()
    assert actions.shape == (2, 3, 5) and not actions.any()
    assert actions.dtype == prop.dtype == np.float32
    jitted = jax.jit(start_window, static_argnums=(2, 3))(image, proprio, 3, 5)
    for a, b in zip((frames, actions, prop), jitted, strict=True):
        assert isinstance(b, jax.Array) and b.dtype == a.dtype
        np.testing.assert_array_equal(a, b)


def _fake_rollouts(b=3, n=4, size=64, seed=0):
    """imagined and real frames [B, N+1, H, W, 3], success [B, N], PSNR [B, N], scores, seeds."""
    rng = np.random.default_rng(seed)
    imagined = rng.integers(0, 256, (b, n + 1, size, size, 3), np.uint8)
    real = rng.integers(0, 256, (b, n + 1, size, size, 3), np.uint8)
    success = np.zeros((b, n), bool)
    success[0, 2:] = True
    psnr = rng.uniform(12.0, 30.0, (b, n))
    probs = rng.uniform(0.0, 1.0, (b, n))
    scores = {"imagined": probs, "real": probs, "threshold": 0.5}
    return imagined, real, success, psnr, scores, [101 + 2 * r for r in range(b)]


def test_plots_label_each_rollout_in_the_colour_of_its_video_row():
    imagined, real, success, psnr, scores, seeds = _fake_rollouts()
    psnr_plot = imagine._psnr_plot(psnr, seeds, (600, 300), 100)
    reward_plot = imagine._reward_plot(scores["imagined"], 0.5, seeds, (600, 300), 100)
    rows = [(f"rollout {r} (seed {s})", plots.PALETTE[r]) for r, s in enumerate(seeds)]
    assert list(psnr_plot.legend) == rows
    assert list(reward_plot.legend) == rows + [("threshold 0.50", (0, 0, 0))]
    for r, (_, colour) in enumerate(rows):
        tile = imagine._tile(r, 1, imagined, real, success, seeds, scores)
        band, swatch = tile[100, imagine.BAND // 2], tile[10, imagine.BAND + 12]
        assert tuple(band) == colour and tuple(swatch) == colour
    # beyond the palette: grey lines under one legend entry
    many = imagine._psnr_plot(np.tile(psnr, (4, 1)), list(range(12)), (600, 300), 100).legend
    assert len(many) == len(plots.PALETTE) + 1 and many[-1] == ("rollouts 8-11", plots.OTHERS)


def test_captions_sit_above_the_frames_and_leave_them_untouched():
    imagined, real, success, psnr, scores, seeds = _fake_rollouts()
    tile = imagine._tile(0, 3, imagined, real, success, seeds, scores)
    top, cell, band, gap = strip_height(2), imagine.CELL, imagine.BAND, imagine.GAP
    assert tile.shape == (top + cell, imagine._tile_width(), 3)
    scale = cell // imagined.shape[2]
    for frames, x in ((imagined, band), (real, band + cell + gap)):
        upscaled = frames[0, 3].repeat(scale, axis=0).repeat(scale, axis=1)
        np.testing.assert_array_equal(tile[top:, x : x + cell], upscaled)
    # rollout 0 succeeds in the real sim at step 3: its real caption strip is green
    strip = tile[:top, band + cell + gap :][:, :cell]
    assert tuple(strip[2, 2]) == (30, 150, 60)


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
@pytest.mark.parametrize("rollouts, with_reward", [(1, False), (3, True), (5, True)])
def test_video_frames_are_blocks_of_16_with_a_moving_cursor(tmp_path, rollouts, with_reward):
    imagined, real, success, psnr, scores, seeds = _fake_rollouts(b=rollouts, n=3)
    path = tmp_path / "video.mp4"
    imagine._film(path, imagined, real, success, seeds, psnr, scores if with_reward else None, 5)
    frames = imageio.mimread(path, memtest=False)
    cols = 1 if rollouts == 1 else 2
    grid_rows = -(-min(rollouts, imagine.VIDEO_ROWS) // cols)
    charts = 2 if with_reward else 1
    chart_rows = 1 if cols == 2 else charts
    header = strip_height(1 if cols == 2 else 2)  # the header wraps to two lines when narrow
    height = header + grid_rows * (strip_height(2) + imagine.CELL) + chart_rows * imagine.PLOT_PX
    assert len(frames) == 4
    assert frames[0].shape == (height, cols * imagine._tile_width(), 3)
    assert frames[0].shape[0] % 16 == 0 and frames[0].shape[1] % 16 == 0


def test_the_cursor_is_drawn_on_a_copy_at_the_step():
    plot = imagine._psnr_plot(np.full((2, 10), 20.0), [1, 2], (544, 288), 100)
    assert plot.image.shape == (288, 544, 3)
    columns = [plot.column(k) for k in range(11)]
    assert columns == sorted(columns) and columns[-1] - columns[0] > 300
    for k in (0, 3, 7, 10):
        drawn = plot.with_cursor(k)
        changed = set(np.nonzero((drawn != plot.image).any(axis=(0, 2)))[0])
        assert changed <= {columns[k], columns[k] + 1, columns[k] - 1}
        assert (drawn[plot.top + 5 : plot.bottom - 5, min(columns[k], 542)] == 0).all()
        assert k in (0, 10) or changed
