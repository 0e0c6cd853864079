"""Training metrics, written one way by every trainer: `metrics.jsonl`, TensorBoard event files,
files for the images and videos, and optionally a W&B run.

    writer = MetricsWriter(out, resume_step=int(state.step), wandb=WandbSettings())
    writer.write(step, {"loss": 0.12, "steps_per_second": 3.1})
    writer.image(step, "loss_curves", rgb)            # uint8 [H, W, 3]
    writer.video(step, "open_loop", frames, fps=4)    # uint8 [T, H, W, 3]
    writer.close()

`OUT/metrics.jsonl` holds one JSON object per logged step, `{"step": n, <name>: value, ...}`;
`OUT/tensorboard/` holds TensorBoard event files (tensorboardX: no TensorFlow needed) with the same
scalars, so `tensorboard --logdir runs/` shows every run. Images are written as
`OUT/media/<name>-<step>.png` and to TensorBoard's images; videos as `OUT/media/<name>-<step>.mp4`
and to TensorBoard as an animated GIF (what tensorboardX's add_video writes, without its moviepy
dependency). With `wandb` the same scalars, images and videos also go to a W&B run under
`OUT/wandb/` (robolearn.core.tracking: offline unless WANDB_MODE says otherwise). A run resumed
from the checkpoint at step S drops what a killed predecessor logged after S (the rows are
rewritten, and TensorBoard is told to purge those steps), so each step appears once in both; W&B
keeps the predecessor's values of those steps instead (see robolearn.core.tracking).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np

from robolearn.core.tracking import WandbRun, WandbSettings

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
MEDIA_DIR = "media"


class MetricsWriter:
    """Appends metrics rows to OUT/metrics.jsonl and scalars to OUT/tensorboard/; images and
    videos to OUT/media/ and TensorBoard; all of them to W&B when `wandb` is given.

    enabled=False writes nothing (every process but the first of a multi-host run).
    resume_step: the step a resumed run continues from (None: a fresh run, whose directory holds
        no metrics yet); logged rows after it are discarded.
    wandb: log to a W&B run too (None: no W&B); config: its config (the run's resolved settings).
    """

    def __init__(
        self,
        out: str | Path,
        resume_step: int | None = None,
        enabled: bool = True,
        tensorboard: bool = True,
        wandb: WandbSettings | None = None,
        config: dict | None = None,
    ):
        self.out = Path(out)
        self.enabled = enabled
        self._log = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        if wandb is not None:  # first: a missing package or a refused login writes nothing
            self._wandb = WandbRun(self.out, wandb, config, resume_step)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / METRICS_FILE
        if resume_step is not None:
            _truncate_after(path, resume_step)
        self._log = open(path, "a")  # noqa: SIM115 - closed in close()
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            # tensorboardX names event files by the second they are opened: a suffix keeps a
            # resume within the same second from truncating its predecessor's file.
            suffix = f".{os.getpid()}.{resume_step or 0}"
            self._tb = SummaryWriter(
                str(self.out / TENSORBOARD_DIR), purge_step=purge, filename_suffix=suffix
            )

    def write(self, step: int, metrics: dict[str, float], prefix: str = "") -> dict:
        """Log `metrics` at `step` (names get `prefix`, e.g. "eval/"); returns the row written."""
        row = {"step": int(step), **{prefix + k: _number(v) for k, v in metrics.items()}}
        if not self.enabled:
            return row
        self._log.write(json.dumps(row) + "\n")
        self._log.flush()
        if self._tb is not None:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(name, value, int(step))
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(step, {k: v for k, v in row.items() if k != "step"})
        return row

    def image(self, step: int, name: str, rgb: np.ndarray) -> Path | None:
        """Log an image uint8 [H, W, 3] at `step`: OUT/media/<name>-<step>.png, TensorBoard's
        images (tag `name`) and W&B; returns the file's path (None when not enabled)."""
        if not self.enabled:
            return None
        import cv2

        rgb = _check_frames(rgb, 3, name)
        path = self._media_path(name, step, ".png")
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if self._tb is not None:
            self._tb.add_image(name, rgb, int(step), dataformats="HWC")
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(step, {name: self._wandb.image(rgb)})
        return path

    def video(self, step: int, name: str, frames: np.ndarray, fps: float = 4.0) -> Path | None:
        """Log a video uint8 [T, H, W, 3] at `step`: OUT/media/<name>-<step>.mp4 (H.264; frames
        padded with white to multiples of 16 pixels), an animated GIF in TensorBoard's images
        (tag `name`) and a W&B video of the MP4; returns the file's path (None when not
        enabled)."""
        if not self.enabled:
            return None
        from robolearn.core.video import VideoWriter, pad_to_block

        frames = _check_frames(frames, 4, name)
        path = self._media_path(name, step, ".mp4")
        with VideoWriter(path, fps) as video:
            for frame in frames:
                video.append(pad_to_block(frame))
        if self._tb is not None:
            self._tb_gif(step, name, frames, fps)
        if self._wandb is not None:
            self._wandb.log(step, {name: self._wandb.video(path)})
        return path

    def _media_path(self, name: str, step: int, suffix: str) -> Path:
        media = self.out / MEDIA_DIR
        media.mkdir(exist_ok=True)
        return media / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{int(step)}{suffix}"

    def _tb_gif(self, step: int, name: str, frames: np.ndarray, fps: float) -> None:
        """An animated GIF as a TensorBoard image summary: what tensorboardX's add_video writes,
        encoded here with Pillow because tensorboardX encodes it with moviepy."""
        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        buffer = io.BytesIO()
        first, *rest = (Image.fromarray(f) for f in frames)
        duration = max(int(round(1000 / fps)), 20)
        first.save(buffer, "GIF", save_all=True, append_images=rest, duration=duration, loop=0)
        _, height, width, _ = frames.shape
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
        )
        summary = Summary(value=[Summary.Value(tag=name, image=image)])
        self._tb._get_file_writer().add_summary(summary, int(step))  # add_video's own path
        self._tb.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(out: str | Path) -> list[dict]:
    """The rows of OUT/metrics.jsonl ([] when there is none)."""
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_frames(array, ndim: int, name: str) -> np.ndarray:
    """`array` as uint8 [..., H, W, 3] of `ndim` dimensions, else a ValueError naming `name`."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[-1] != 3 or not array.size:
        shape = "[T, H, W, 3]" if ndim == 4 else "[H, W, 3]"
        raise ValueError(f"{name}: expected uint8 {shape}, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def _number(value) -> float | int | bool:
    """A plain scalar: ints and bools as they are, anything else (numpy, jax) as a float. NaN
    and inf stay as they are (Python's json writes NaN/Infinity): a diverged loss must show."""
    if isinstance(value, (bool, int)):
        return value
    return float(value)


def _truncate_after(path: Path, step: int) -> None:
    """Drop rows logged after `step` (a killed run's, past its last checkpoint); atomic."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue  # a row torn by the kill
    if len(keep) == len(lines):
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
