"""Per-step line plots drawn with matplotlib (Agg, no pyplot state) as uint8 RGB images, for PNG
files and for the plot strip of a video, where a cursor marks the current step.

matplotlib is imported inside the functions that draw, so importing robolearn stays light.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

# One colour per rollout (RGB), shared by the plots and the videos that label rows with it; no
# green (videos mark success in green) and no black (threshold lines are black).
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
)
OTHERS = (200, 200, 200)


def colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of rollout `index` (light grey beyond the palette)."""
    return PALETTE[index] if index < len(PALETTE) else OTHERS


@dataclasses.dataclass(frozen=True)
class Line:
    """values [N] at steps 1..N; label None = not in the legend."""

    values: np.ndarray
    label: str | None
    colour: tuple[int, int, int]
    width: float = 1.6
    zorder: float = 2.0


@dataclasses.dataclass(frozen=True)
class StepPlot:
    """A rendered plot: image uint8 [H, W, 3] and where its axes lie in it, so a step cursor can be
    drawn on a copy without matplotlib. legend: (label, RGB colour) of each legend entry."""

    image: np.ndarray
    steps: int
    x0: float
    x1: float
    top: int
    bottom: int
    legend: tuple[tuple[str, tuple[int, int, int]], ...]

    def column(self, step: float) -> int:
        """The pixel column of `step` (0..steps)."""
        return int(round(self.x0 + (self.x1 - self.x0) * step / max(self.steps, 1)))

    def with_cursor(self, step: int) -> np.ndarray:
        """A copy of the image with a vertical line at `step`: a few array writes, no drawing."""
        img = self.image.copy()
        x = min(max(self.column(step), 0), img.shape[1] - 2)
        img[self.top : self.bottom, x : x + 2] = (0, 0, 0)
        return img


def step_plot(
    lines: list[Line],
    steps: int,
    size_px: tuple[int, int],
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float],
    threshold: tuple[float, str] | None = None,
    dpi: int = 100,
    font_size: float = 9.0,
) -> StepPlot:
    """Lines over steps 0..`steps` (step 0: the real first frame, no value), rendered at
    size_px = (width, height) pixels, with a step axis, a y label, a legend right of the axes
    and an optional dashed threshold line (value, legend label)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size_px
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(1, steps + 1)
    for line in lines:
        ax.plot(
            x,
            line.values,
            color=_rgb01(line.colour),
            lw=line.width,
            label=line.label,
            zorder=line.zorder,
        )
    if threshold is not None:
        ax.axhline(threshold[0], color="black", ls="--", lw=1.2, label=threshold[1])
    ax.set_xlim(0, steps)
    ax.set_ylim(*ylim)
    ax.set_xlabel("step", fontsize=font_size)
    ax.set_ylabel(ylabel, fontsize=font_size)
    ax.set_title(title, fontsize=font_size + 1)
    ax.tick_params(labelsize=font_size - 1)
    ax.grid(alpha=0.3)
    legend = ax.legend(
        fontsize=font_size - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )
    canvas.draw()
    image = _exact(np.asarray(canvas.buffer_rgba())[..., :3], width, height)
    (x0, _), (x1, _) = ax.transData.transform([(0, ylim[0]), (steps, ylim[0])])
    box = ax.get_window_extent()
    entries = tuple(
        (text.get_text(), _rgb255(handle.get_color()))
        for text, handle in zip(legend.get_texts(), legend.get_lines(), strict=True)
    )
    return StepPlot(
        image,
        steps,
        float(x0),
        float(x1),
        int(round(height - box.y1)),
        int(round(height - box.y0)),
        entries,
    )


def save_png(plot: StepPlot, path: str | Path) -> None:
    """Write the plot's image as a PNG file."""
    import cv2

    cv2.imwrite(str(path), cv2.cvtColor(plot.image, cv2.COLOR_RGB2BGR))


def _exact(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The canvas cropped or padded (white) to exactly [height, width, 3]: inch-based figure sizes
    can round a pixel away."""
    out = np.full((height, width, 3), 255, np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def _rgb01(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in rgb)


def _rgb255(colour) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    return tuple(int(round(c * 255)) for c in to_rgb(colour))
