"""The metrics writer's images, videos and W&B run (robolearn.core.metrics and .tracking): files
under OUT/media/, TensorBoard images (a video as an animated GIF), an offline W&B run that a
resumed run continues without logging a step twice, the one-line error without the package; the
figures (robolearn.core.figures) and the loop's evaluation at the last step."""

import json
import sys

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from robolearn.core.figures import Panel, Series, figure, image_grid
from robolearn.core.loop import Schedule, train
from robolearn.core.metrics import MetricsWriter, read_metrics
from robolearn.core.optional import MissingExtraError
from robolearn.core.tracking import STATE_FILE, WandbSettings


def _events(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    return acc


def _frames(t=5, h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_images_and_videos_go_to_files_and_tensorboard(tmp_path):
    """A PNG and an MP4 under OUT/media/ named by step (the MP4 keeps every frame, padded to
    16-pixel blocks), and both in TensorBoard's images: the PNG as a PNG, the video as an
    animated GIF of all its frames."""
    frames = _frames()
    with MetricsWriter(tmp_path) as writer:
        png = writer.image(3, "plots/loss", frames[0])
        mp4 = writer.video(3, "open_loop", frames, fps=4)
    assert png == tmp_path / "media" / "plots_loss-3.png"
    assert np.array_equal(iio.imread(png), frames[0])  # lossless
    video = iio.imread(mp4)
    assert video.shape == (5, 32, 32, 3) and video.std() > 20
    acc = _events(tmp_path)
    assert set(acc.Tags()["images"]) == {"plots/loss", "open_loop"}
    image = acc.Images("plots/loss")[0]
    assert image.step == 3 and (image.width, image.height) == (30, 20)
    gif = acc.Images("open_loop")[0].encoded_image_string
    assert gif.startswith(b"GIF89a") and iio.imread(gif, index=None).shape[0] == 5


def test_media_of_a_disabled_writer_and_bad_arrays(tmp_path):
    off = MetricsWriter(tmp_path / "off", enabled=False, wandb=WandbSettings())
    assert off.image(1, "x", _frames()[0]) is None and off.video(1, "v", _frames()) is None
    assert not (tmp_path / "off").exists()
    with MetricsWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"curves: expected uint8 \[H, W, 3\]"):
            writer.image(1, "curves", np.zeros((4, 4, 3), np.float32))
        with pytest.raises(ValueError, match=r"clip: expected uint8 \[T, H, W, 3\]"):
            writer.video(1, "clip", _frames()[0])


def test_wandb_offline_run_resumes_the_same_id_and_never_logs_a_step_twice(tmp_path, monkeypatch):
    """--wandb: an offline run under OUT/wandb/ named after the run directory, its id kept in
    OUT/wandb/; a run resumed from step 2 after its predecessor logged up to step 4 continues
    the same run id and sends W&B only the steps after 4 (metrics.jsonl drops 3 and 4 instead)."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "my-run"
    writer = MetricsWriter(out, wandb=WandbSettings("proj"), config={"steps": 6})
    for step in (1, 2, 3, 4):
        writer.write(step, {"loss": 1.0 / step})
    writer.image(4, "img", _frames()[0])
    writer.video(4, "vid", _frames())
    first_id = writer._wandb.run.id
    assert writer._wandb.run.name == "my-run" and writer._wandb.run.project == "proj"
    writer.close()
    state = json.loads((out / "wandb" / STATE_FILE).read_text())
    assert state == {"id": first_id, "step": 4}

    resumed = MetricsWriter(out, resume_step=2, wandb=WandbSettings("proj"))
    assert resumed._wandb.run.id == first_id
    sent = []
    real_log = resumed._wandb.run.log
    monkeypatch.setattr(
        resumed._wandb.run, "log", lambda data, step: (sent.append(step), real_log(data, step))
    )
    for step in (3, 4, 5, 6):
        resumed.write(step, {"loss": 0.5})
    resumed.close()
    assert sent == [5, 6]
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5, 6]
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(f"-{first_id}" in r.name for r in runs)
    assert all((r / f"run-{first_id}.wandb").stat().st_size > 0 for r in runs)
    media = {p.parent.name for p in runs[0].glob("files/media/*/*")}
    assert media == {"images", "videos"}


def test_without_the_package_the_error_names_the_tracking_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(MissingExtraError, match="`tracking` extra") as info:
        MetricsWriter(tmp_path / "run", wandb=WandbSettings())
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_figures_draw_panels_and_captioned_grids():
    x = np.arange(1, 11)
    image = figure(
        [
            Panel(
                "loss", (Series(x, 1 / x, "loss"), Series(x, np.full(10, np.nan), "gap")), logy=True
            ),
            Panel("roc", (Series([0, 0.5, 1], [0, 0.9, 1]),), diagonal=True, xlim=(0, 1)),
            Panel("negative", (Series(x, -x, "nll"),), logy=True),  # falls back to linear
        ],
        cols=2,
        panel_px=(200, 150),
        title="t",
    )
    assert image.dtype == np.uint8 and image.shape == (324, 400, 3) and image.std() > 10
    grid = image_grid(_frames(t=3, h=8, w=8), ["a", "b", "c"], cols=2, tile_px=32, title="worst")
    assert grid.dtype == np.uint8 and grid.shape[1] == 2 * (32 + 4) and grid.std() > 10
    with pytest.raises(ValueError, match="3 images but 2 captions"):
        image_grid(_frames(t=3), ["a", "b"])


class _State(struct.PyTreeNode):
    step: jnp.ndarray


def test_the_loop_evaluates_at_the_last_step_too(tmp_path):
    """eval_every 3 over 4 steps: evaluated at 3 and at the last step, 4."""
    result = train(
        _State(jnp.asarray(0)),
        lambda s, _: (_State(s.step + 1), {"x": jnp.asarray(1.0)}),
        None,
        Schedule(steps=4, log_every=2, eval_every=3),
        out=tmp_path,
        evaluate=lambda s: {"score": float(s.step)},
        progress=False,
    )
    assert result.step == 4
    evals = [(r["step"], r["eval/score"]) for r in read_metrics(tmp_path) if "eval/score" in r]
    assert evals == [(3, 3.0), (4, 4.0)]
