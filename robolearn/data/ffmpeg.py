"""Video files through the ffmpeg of the imageio-ffmpeg wheel: count, decode (scaled by ffmpeg
itself, so a 640x480 AV1 stream decodes straight to 64x64) and encode. The bundled ffmpeg
decodes AV1 (dav1d), H.264, HEVC and MPEG-4 and encodes H.264 (libx264) and AV1 (libsvtav1)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from robolearn.core.errors import RobolearnError

ENCODERS = {"h264": "libx264", "av1": "libsvtav1"}


class VideoError(RobolearnError, ValueError):
    """A video that cannot be read or written; the message names the file."""


def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def count_frames(path: Path) -> int:
    """Frames of the first video stream, counted by packet (stream copy: nothing is decoded, so
    this costs a read of the file). A file cut short counts the frames it still holds."""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    cmd += ["-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise VideoError(f"{path}: unreadable video ({last_line(proc.stderr)})")
    counts = [line[6:] for line in proc.stdout.splitlines() if line.startswith(b"frame=")]
    if not counts:
        raise VideoError(f"{path}: no video stream ({last_line(proc.stderr)})")
    return int(counts[-1].strip())


def decode(
    path: Path,
    start_s: float,
    count: int,
    fps: float,
    size: tuple[int, int],
    crop: bool = False,
    threads: int = 0,
    where: str = "",
) -> np.ndarray:
    """`count` frames of the first video stream from `start_s` seconds on: uint8 [count, H, W, 3]
    RGB, center-cropped to a square first with `crop`, scaled to `size` (H, W) with ffmpeg's
    "area" filter. The seek lands half a frame early, so the first frame is the one at start_s
    (frame times are multiples of 1/fps). Raises VideoError, naming `where` (default the file),
    when the stream holds fewer frames."""
    h, w = size
    filters = ["crop='min(iw,ih)':'min(iw,ih)'"] if crop else []
    filters.append(f"scale={w}:{h}:flags=area")
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-threads", str(threads)]
    if start_s > 0:
        cmd += ["-ss", f"{max(0.0, start_s - 0.5 / fps):.6f}"]
    cmd += ["-i", str(path), "-map", "0:v:0", "-frames:v", str(count), "-vf", ",".join(filters)]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    where = where or str(path)
    if proc.returncode != 0:
        raise VideoError(f"{where}: video does not decode ({last_line(proc.stderr)})")
    got = len(proc.stdout) // (h * w * 3)
    if got < count:
        raise VideoError(
            f"{where}: video has {got} frames from {start_s:.3f} s on, the episode needs {count} "
            "(video shorter than the episode, or truncated)"
        )
    return np.frombuffer(proc.stdout, np.uint8)[: count * h * w * 3].reshape(count, h, w, 3)


class Encoder:
    """uint8 [N, H, W, 3] RGB frames piped into one ffmpeg writing one mp4: a keyframe every 2
    frames and no B-frames (LeRobot encodes with -g 2 so that any frame decodes fast), yuv420p
    (yuv444p for odd sizes, H.264 only)."""

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str, crf: int):
        odd = height % 2 or width % 2
        if odd and codec == "av1":
            raise VideoError(
                f"{path}: AV1 needs even frame sizes, these are {width}x{height}; use h264"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self.pix_fmt = pixel_format(height, width)
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
        cmd += ["-s", f"{width}x{height}", "-framerate", f"{fps:g}", "-i", "pipe:0"]
        cmd += ["-c:v", ENCODERS[codec], "-pix_fmt", self.pix_fmt, "-g", "2", "-bf", "0"]
        cmd += ["-crf", str(crf), "-preset", "10" if codec == "av1" else "medium"]
        cmd += ["-y", str(path)]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._log)

    def write(self, frames: np.ndarray) -> None:
        """Append frames."""
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
        except BrokenPipeError:
            self.close()  # raises with ffmpeg's own message
        self.frames += len(frames)

    def size(self) -> int:
        """Bytes written so far."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        """Finish the file; VideoError with ffmpeg's message if it failed."""
        if not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        code = self._proc.wait()
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        if code != 0:
            raise VideoError(f"{self.path}: ffmpeg could not encode the video ({last_line(log)})")


def pixel_format(height: int, width: int) -> str:
    """What Encoder writes for frames of this size."""
    return "yuv444p" if height % 2 or width % 2 else "yuv420p"


def last_line(data: bytes) -> str:
    """ffmpeg's last message, on one short line."""
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    text = " ".join(lines[-1].split()) if lines else "ffmpeg failed"
    return text if len(text) <= 200 else text[:197] + "..."
