"""`robolearn imagine`, `eval world-model`, `export world-model` and bundle references end to end
on tiny models trained for a few steps (tiny presets; outputs are checked, not quality)."""

import json

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
from robolearn.world_models.checkpoint import load_world_model, read_info

from robolearn import bundles
from robolearn.cli import main
from robolearn.data.synthetic import write_random_store


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
    # two rollout rows, the PSNR plot and the predicted-reward plot (bundle:drawer/reward
    # scores the frames by default)
    assert frames[0].shape == (2 * 160 + 2 * 128, 320, 3)
    assert result["reward"]["classifier"] == "bundle:drawer/reward"
    assert (out / "psnr.png").stat().st_size > 0


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
    result = json.loads((out / "results.json").read_text())
    ol = result["open_loop"]
    assert ol["windows"] == 4 * 2  # starts 0 and 2 of each 6-step episode (3 + 3 <= 6)
    for key in ("psnr", "psnr_baseline", "ssim", "ssim_baseline"):
        assert len(ol["per_step"][key]) == 3
    oc = result["outcome"]
    assert oc["failed_episodes"] == 2 and oc["successful_episodes"] == 2
    assert 0.0 <= oc["imagined_success_on_failed"] <= 1.0


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
    assert _imagine(parts, out, *extra) == 0
    sampler = json.loads((out / "results.json").read_text())["sampler"]
    assert (sampler["method"], sampler["steps"]) == ("heun", 2)
    capsys.readouterr()
    assert _imagine(parts, parts["root"] / "bad-steps", "--sampler-steps", "0") == 2
    err = capsys.readouterr().err.strip()
    assert "sampler.steps must be >= 1" in err and len(err.splitlines()) == 1
