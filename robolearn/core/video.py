"""Video files for people to watch: upscaled frames under a caption strip, written as H.264 MP4."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

VIDEO_SIZE = 256
LINE_PX = 22  # caption line height
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.55
MIN_FONT_SCALE = 0.4
STRIP = (236, 236, 236)  # caption strip background (RGB)
SUCCESS = (30, 150, 60)  # caption strip background of a success step (RGB)
WHITE = (255, 255, 255)
INK = (20, 20, 20)


def strip_height(lines: int) -> int:
    """Pixel height of a caption strip of `lines` lines: a multiple of 16, so that frames of
    VIDEO_SIZE under it keep video-friendly sizes (2 lines: 48)."""
    return -(-(lines * LINE_PX + 4) // 16) * 16


def caption_strip(
    width: int,
    lines: list[str],
    highlight: bool = False,
    swatch: tuple[int, int, int] | None = None,
    height: int | None = None,
) -> np.ndarray:
    """uint8 [height, width, 3]: `lines` of text on a light strip (green with white text when
    `highlight`); `swatch` (RGB) puts a square of that colour before the first line. Text too long
    for the width is drawn smaller, then cut at the left with '...'."""
    height = strip_height(len(lines)) if height is None else height
    strip = np.empty((height, width, 3), np.uint8)
    strip[:] = SUCCESS if highlight else STRIP
    ink = WHITE if highlight else INK
    for i, text in enumerate(lines):
        x, baseline = 6, 2 + LINE_PX * (i + 1) - 6
        if swatch is not None and i == 0:
            cv2.rectangle(strip, (x, baseline - 13), (x + 13, baseline), swatch, -1)
            x += 19
        text, scale = _fit(text, width - x - 4)
        cv2.putText(strip, text, (x, baseline), FONT, scale, ink, 1, cv2.LINE_AA)
    return strip


def caption_frame(
    image: np.ndarray,
    lines: list[str],
    size: int = VIDEO_SIZE,
    highlight: bool = False,
    swatch: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A uint8 [H, W, 3] frame upscaled (nearest) to [size, size] under a caption strip of
    `lines` (see caption_strip): [strip_height(len(lines)) + size, size, 3]. Nothing is drawn on
    the image itself; `highlight` (a success step) turns the strip green."""
    frame = cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([caption_strip(size, lines, highlight, swatch), frame], axis=0)


def pad_to_block(frame: np.ndarray, block: int = 16) -> np.ndarray:
    """`frame` padded with white at the right and bottom to a multiple of `block` pixels each
    way (what H.264 encoders want; imageio would otherwise rescale it)."""
    h, w = frame.shape[:2]
    ph, pw = -h % block, -w % block
    if not ph and not pw:
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), constant_values=255)


def _fit(text: str, width: int) -> tuple[str, float]:
    """(text, font scale) that fits in `width` pixels."""
    scale = FONT_SCALE
    while scale > MIN_FONT_SCALE and _text_width(text, scale) > width:
        scale = round(scale - 0.05, 2)
    if _text_width(text, scale) <= width:
        return text, scale
    while len(text) > 1 and _text_width("..." + text, scale) > width:
        text = text[1:]
    return "..." + text, scale


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


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
                # about 2.5x faster than the default preset at the same size and look
                output_params=["-preset", "veryfast"],
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
