"""Video files for people to watch: upscaled frames with a caption, written as H.264 MP4."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

VIDEO_SIZE = 256


def caption_frame(
    image: np.ndarray, lines: list[str], size: int = VIDEO_SIZE, highlight: bool = False
) -> np.ndarray:
    """Upscale a uint8 [H, W, 3] frame to [size, size, 3] (nearest) and write `lines` on it.

    `highlight` draws a green border (used for success steps).
    """
    frame = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    for i, text in enumerate(lines):
        org = (4, 14 + 14 * i)
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
        )
    if highlight:
        cv2.rectangle(frame, (0, 0), (size - 1, size - 1), (0, 200, 0), 4)
    return frame


@contextlib.contextmanager
def _ffmpeg_spawn():
    """Silence Python's warning about os.fork() under a multithreaded JAX: subprocess forks and
    immediately execs ffmpeg, which touches no JAX state, so the warned-of deadlock cannot occur."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        yield


class VideoWriter:
    """Appends uint8 [H, W, 3] frames to an MP4 file (ffmpeg from the imageio-ffmpeg wheel)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        with _ffmpeg_spawn():
            self._writer = imageio.get_writer(
                self.path,
                fps=fps,
                codec="libx264",
                quality=8,
                macro_block_size=16,
                ffmpeg_log_level="error",
            )
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        with _ffmpeg_spawn():
            self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        with _ffmpeg_spawn():
            self._writer.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plot_series(
    series: list[np.ndarray],
    width: int,
    height: int,
    y_range: tuple[float, float],
    title: str = "",
    cursor: int | None = None,
    colours: list[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """A line plot as a uint8 [height, width, 3] image (white background, no axes library).

    series: 1-D arrays over the same x (step 1..N); values are clipped to y_range. A vertical
    line marks `cursor` (a step index, 1-based) when given. Labels the y range at the left.
    """
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 34, 6, 16, 6
    w, h = width - left - right, height - top - bottom
    lo, hi = y_range
    n = max((len(s) for s in series), default=1)
    cv2.rectangle(img, (left, top), (left + w, top + h), (200, 200, 200), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (left, 11), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:g}", (2, top + 8), font, 0.3, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:g}", (2, top + h), font, 0.3, (80, 80, 80), 1, cv2.LINE_AA)

    def xy(i, v):
        x = left + (i / max(n - 1, 1)) * w
        y = top + (1 - (np.clip(v, lo, hi) - lo) / max(hi - lo, 1e-9)) * h
        return int(round(x)), int(round(y))

    palette = colours or [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for k, s in enumerate(series):
        pts = np.array([xy(i, v) for i, v in enumerate(s) if np.isfinite(v)], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, palette[k % len(palette)], 1, cv2.LINE_AA)
    if cursor is not None:
        x = xy(cursor - 1, lo)[0]
        cv2.line(img, (x, top), (x, top + h), (0, 0, 0), 1)
    return img
