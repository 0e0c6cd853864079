"""Open-loop previews of a world model while it trains (`train world-model`'s evaluation).

A few windows are chosen once, at the start, deterministically (evenly spaced episodes, a seeded
start in each): from held-out stores (`--eval-data`, media and scalars named "heldout") or, when
none are given, from the training data itself (named "train": the model has seen those frames).
At every evaluation the model's EMA weights imagine each window `horizon` steps under its
recorded actions, from the real context before it (padded at an episode start the way training
pads), and the run gets:

- a video OUT/media/open_loop_<name>-<step>.mp4: a row per window, true | predicted | |error|;
- a plot OUT/media/open_loop_fidelity_<name>-<step>.png: PSNR and SSIM by horizon step against
  the copy-the-last-frame baseline (as `eval world-model` measures them: PSNR of the MSE
  averaged over windows, SSIM the mean);
- scalars eval/<name>_psnr_h<k>, eval/<name>_ssim_h<k> and their copy_last twins at k = 1, 5,
  10, ... and the last step.

Multi-host: only process 0 evaluates, alone: its replica of the (replicated) EMA weights is
copied to host memory and imagined on its own first device, so no collective waits on the other
processes (they return at once and wait for it in the next training step).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from robolearn.core.errors import ConfigError
from robolearn.core.figures import Panel, Series, figure
from robolearn.core.video import caption_strip

FPS = 4.0
TILE_PX = 128  # frames are upscaled (nearest) to about this size in the video


@dataclasses.dataclass(frozen=True)
class Windows:
    """N fixed open-loop windows of horizon H and context T: frames uint8 [N, T, h, w, 3],
    actions float32 [N, T, A] (into the context frames), proprio float32 [N, T, P], future
    float32 [N, H, A] (the recorded actions), real uint8 [N, H, h, w, 3] (the recorded frames
    after them); name: "heldout" or "train"; where: (episode, start step) of each."""

    frames: np.ndarray
    actions: np.ndarray
    proprio: np.ndarray
    future: np.ndarray
    real: np.ndarray
    name: str
    where: tuple[tuple[int, int], ...]

    @property
    def horizon(self) -> int:
        return self.real.shape[1]


def choose_windows(data, count: int, horizon: int, context: int, seed: int, name: str):
    """`count` windows of an EpisodeData (fewer when it has fewer episodes), one per episode,
    episodes evenly spaced, each starting at a seeded step; the horizon is capped at the
    longest episode. None when count or horizon is 0."""
    from robolearn.imagination import context_window

    lengths = np.asarray(data.num_steps, np.int64)
    horizon = min(horizon, int(lengths.max()) if len(lengths) else 0)
    if count <= 0 or horizon <= 0:
        return None
    eligible = np.flatnonzero(lengths >= horizon)
    picks = eligible[np.unique(np.linspace(0, len(eligible) - 1, count).round().astype(int))]
    rng = np.random.default_rng(seed)
    rows, where = [], []
    for e in picks:
        image, action, proprio = data.episode(int(e))
        s = int(rng.integers(0, lengths[e] - horizon + 1))
        frames, acts, prop = context_window(image, action, proprio, s, context)
        future = action[s : s + horizon].astype(np.float32)
        rows.append((frames, acts, prop.astype(np.float32), future, image[s + 1 : s + horizon + 1]))
        where.append((int(e), s))
    stacked = (np.stack(x) for x in zip(*rows, strict=True))
    return Windows(*stacked, name=name, where=tuple(where))


def check_eval_data(data, train, where: str) -> None:
    """One-line errors for held-out episodes the model cannot imagine (EpisodeData both)."""
    for what in ("image_shape", "action_dim", "proprio_dim"):
        theirs, ours = getattr(data, what), getattr(train, what)
        if tuple(np.atleast_1d(theirs)) != tuple(np.atleast_1d(ours)):
            raise ConfigError(
                f"--eval-data {where}: {what} {theirs}, the training data's is {ours}; hold "
                "out episodes recorded like the training ones"
            )


def report_steps(horizon: int) -> list[int]:
    """The horizon steps logged as scalars: 1, 5, 10, ... and the last."""
    return sorted({1, horizon, *range(5, horizon + 1, 5)})


class OpenLoopPreview:
    """The loop's `evaluate(state) -> scalars` for a world-model TrainState (its `ema` weights):
    imagines the windows, writes the video and the plot through `writer`. graphdef, sampler
    (a SamplerConfig), stats: the model's, as training builds it. Only an enabled writer's
    process (process 0) evaluates; the others return {} at once."""

    def __init__(self, windows: Windows, graphdef, sampler, stats, writer, seed: int = 0):
        from robolearn.world_models import metrics

        self.windows, self.writer = windows, writer
        self._model = (graphdef, sampler, stats)
        self._rng = jax.random.key(seed)  # the same noise at every evaluation
        self._metrics = metrics
        last = np.repeat(windows.frames[:, -1:], windows.horizon, axis=1)
        self._baseline = self._fidelity(last) if writer.enabled else None

    def __call__(self, state) -> dict[str, float]:
        if not self.writer.enabled:
            return {}
        from robolearn.core.mesh import host

        w = self.windows
        step = int(host(state.step))
        graphdef, sampler, stats = self._model
        imagined = np.asarray(
            _imagine(
                graphdef,
                sampler,
                stats,
                host(state.ema),
                self._rng,
                w.frames,
                w.actions,
                w.proprio,
                w.future,
            )
        )
        psnr, ssim = self._fidelity(imagined)
        base_psnr, base_ssim = self._baseline
        name = f"open_loop_{w.name}"
        self.writer.video(step, name, side_by_side(w.real, imagined, w.name, step), FPS)
        self.writer.image(step, f"open_loop_fidelity_{w.name}", self._plot(psnr, ssim, step))
        scalars = {}
        for k in report_steps(w.horizon):
            scalars[f"{w.name}_psnr_h{k}"] = psnr[k - 1]
            scalars[f"{w.name}_psnr_copy_last_h{k}"] = base_psnr[k - 1]
            if ssim is not None:
                scalars[f"{w.name}_ssim_h{k}"] = ssim[k - 1]
                scalars[f"{w.name}_ssim_copy_last_h{k}"] = base_ssim[k - 1]
        return {k: float(v) for k, v in scalars.items()}

    def _fidelity(self, predicted: np.ndarray):
        """(PSNR [H] of the window-mean MSE, SSIM [H] window mean, or None for frames under
        11 px) of predicted uint8 [N, H, h, w, 3] against the real frames."""
        m, real = self._metrics, self.windows.real
        psnr = np.asarray(m.psnr_from_mse(np.asarray(m.mse(predicted, real)).mean(0)))
        if min(real.shape[2:4]) < 11:  # SSIM's 11x11 window does not fit
            return psnr, None
        return psnr, np.asarray(m.ssim(predicted, real)).mean(0)

    def _plot(self, psnr, ssim, step: int) -> np.ndarray:
        k = np.arange(1, self.windows.horizon + 1)
        base_psnr, base_ssim = self._baseline
        panels = [
            Panel(
                "PSNR (dB)",
                (Series(k, psnr, "model", "o-"), Series(k, base_psnr, "copy last frame", "--")),
                "open-loop step",
            )
        ]
        if ssim is not None:
            panels.append(
                Panel(
                    "SSIM",
                    (Series(k, ssim, "model", "o-"), Series(k, base_ssim, "copy last frame", "--")),
                    "open-loop step",
                )
            )
        n = len(self.windows.where)
        title = f"open loop, {n} {self.windows.name} windows, training step {step}"
        return figure(panels, cols=2, title=title)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _imagine(graphdef, sampler, stats, params, rng, frames, actions, proprio, future):
    """The imagined frames of robolearn.world_models.sampler.open_loop, jitted once per model
    (graph and sampler settings, both static) and window shape in a process."""
    from robolearn.world_models import sampler as sampling

    return sampling.open_loop(
        graphdef, params, rng, frames, actions, proprio, future, sampler, stats
    )[0]


def side_by_side(real: np.ndarray, imagined: np.ndarray, name: str, step: int) -> np.ndarray:
    """The preview video's frames uint8 [H, rows, cols, 3]: per horizon step k a row per window
    of true | predicted | |error| (absolute difference per channel), upscaled, under a caption
    strip naming the columns and k. real, imagined uint8 [N, H, h, w, 3]."""
    import cv2

    n, horizon, h, w, _ = real.shape
    scale = max(1, round(TILE_PX / max(h, w)))
    error = np.abs(real.astype(np.int16) - imagined.astype(np.int16)).astype(np.uint8)
    out = []
    for k in range(horizon):
        rows = [np.concatenate([real[i, k], imagined[i, k], error[i, k]], axis=1) for i in range(n)]
        grid = np.concatenate(rows, axis=0)
        size = (grid.shape[1] * scale, grid.shape[0] * scale)
        grid = cv2.resize(grid, size, interpolation=cv2.INTER_NEAREST)
        lines = [
            f"{name} windows, training step {step}",
            f"true | predicted | |error|  {k + 1}/{horizon}",
        ]
        strip = caption_strip(grid.shape[1], lines)
        out.append(np.concatenate([strip, grid], axis=0))
    return np.stack(out)
