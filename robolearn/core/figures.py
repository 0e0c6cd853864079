"""Figures for a run's media (robolearn.core.metrics MetricsWriter.image): panels of line plots
and captioned image grids, drawn with matplotlib (Agg, no pyplot state) as uint8 RGB images.

    image = figure([Panel("loss", (Series(steps, loss, "loss"),), logy=True)])
    grid = image_grid(frames, ["P 0.97", "P 0.91"], title="worst false positives")

matplotlib is imported inside the functions that draw, so importing robolearn stays light.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

GUTTER_PX = 4  # white between the tiles of an image grid


@dataclasses.dataclass(frozen=True)
class Series:
    """One line: y [N] over x [N] (non-finite values leave gaps); label None: not in the legend.
    style: a matplotlib format string ("-", "--", "o-")."""

    x: np.ndarray
    y: np.ndarray
    label: str | None = None
    style: str = "-"


@dataclasses.dataclass(frozen=True)
class Panel:
    """One set of axes. logy: a log y axis (linear when a value is <= 0); diagonal: the dotted
    y = x line (chance on a ROC curve, perfect calibration on a reliability diagram); xlim, ylim:
    fixed limits (None: matplotlib's)."""

    title: str
    series: tuple[Series, ...]
    xlabel: str = "step"
    ylabel: str = ""
    logy: bool = False
    diagonal: bool = False
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None


def figure(
    panels: Sequence[Panel],
    cols: int = 2,
    panel_px: tuple[int, int] = (420, 300),
    title: str | None = None,
    dpi: int = 100,
) -> np.ndarray:
    """The panels on a grid of `cols` columns, each panel_px = (width, height) pixels, as uint8
    [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("a figure needs at least one panel")
    cols = max(1, min(cols, len(panels)))
    rows = -(-len(panels) // cols)
    width, height = panel_px[0] * cols, panel_px[1] * rows + (24 if title else 0)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=11)
    for i, panel in enumerate(panels):
        _draw(fig.add_subplot(rows, cols, i + 1), panel)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _draw(ax, panel: Panel) -> None:
    positive = True
    for s in panel.series:
        y = np.asarray(s.y, np.float64)
        y = np.where(np.isfinite(y), y, np.nan)
        positive &= bool(np.all(~(y <= 0)))  # NaN gaps do not count
        ax.plot(np.asarray(s.x, np.float64), y, s.style, label=s.label, lw=1.5, ms=3)
    if panel.xlabel in ("step", "iteration"):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.diagonal:
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    if panel.logy and positive:
        ax.set_yscale("log")
    if panel.xlim:
        ax.set_xlim(*panel.xlim)
    if panel.ylim:
        ax.set_ylim(*panel.ylim)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.xlabel, fontsize=9)
    ax.set_ylabel(panel.ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if any(s.label for s in panel.series):
        ax.legend(fontsize=8)


def image_grid(
    images: np.ndarray,
    captions: Sequence[str],
    cols: int = 4,
    tile_px: int = 128,
    title: str | None = None,
) -> np.ndarray:
    """Images uint8 [N, h, w, 3] upscaled (nearest) to tile_px squares, each under its caption,
    `cols` to a row (empty places white; GUTTER_PX of white right of and below each tile), under
    an optional title strip: uint8 [H, W, 3]."""
    from robolearn.core.video import caption_frame, caption_strip

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or not len(images):
        raise ValueError(f"image_grid needs uint8 [N, h, w, 3], got {images.dtype} {images.shape}")
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    pairs = zip(images, captions, strict=True)
    tiles = [caption_frame(image, [text], size=tile_px) for image, text in pairs]
    tiles = [
        np.pad(t, ((0, GUTTER_PX), (0, GUTTER_PX), (0, 0)), constant_values=255) for t in tiles
    ]
    cols = max(1, min(cols, len(tiles)))
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % cols)
    grid = np.concatenate(
        [np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)], axis=0
    )
    if title:
        grid = np.concatenate([caption_strip(grid.shape[1], [title]), grid], axis=0)
    return grid
