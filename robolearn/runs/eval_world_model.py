"""`robolearn eval world-model`: fidelity of a world model on held-out episodes.

Two measurements, both from the recorded frames and actions of the held-out stores:

1. Open-loop prediction. From every episode, windows start at frames s = 0, stride, 2 stride, ...
   (while s + horizon <= episode length). The context is the real frames up to s (padded at the
   episode start the way training pads: frame 0 repeated, zero actions), and the model is rolled
   `horizon` steps under the recorded actions a_s .. a_{s+H-1}. Imagined frame k is compared
   with the real frame s + k (PSNR, SSIM) and so is the copy-the-last-frame baseline (the real
   frame s for every k). Per step, PSNR is that of the MSE averaged over all windows, SSIM the
   mean over windows. A useful model beats the baseline at every step.

2. Outcome fidelity (World4RL's failure claim). Every episode is imagined in full from its first
   frame under all its recorded actions. A success detector judges the final imagined frame; the
   detector is a small CNN (robolearn.reward_models.cnn) fitted, for this evaluation only, to the
   held-out stores' *real* frames and their simulator success flags (balanced batches). Reported per
   outcome of the real episode: on failed episodes, the fraction of imagined endings the detector
   calls success (hallucinated success: lower is better); on successful ones, the fraction it calls
   success (higher is better); and, as the detector's own error, the same fractions on the real
   final frames. In simulation the real outcome under the same actions is the recorded success flag
   of the final frame.

The episodes are read through the input pipeline (robolearn.data.pipeline, `input.*`: in RAM when
they fit input.memory_mb, else streamed from the store's pack) one at a time, and imagined a batch
at a time (`batch_size` windows; whole episodes in batches of one length), each batch with the
key it would get were all imagined at once (Imaginer's `first`): memory is the pipeline's budget, a
batch of rollouts and the detector's frames.
The detector is fitted on at most `detector_frames` real frames (all of them when there are fewer,
else a seeded sample of both outcomes, half each where they have enough).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from robolearn.core.config import require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions
from robolearn.data.pipeline import EpisodeData, PipelineConfig
from robolearn.imagination import Imaginer, context_window, imagine_episodes
from robolearn.runs.parts import SamplerChoice, sampler_used
from robolearn.world_models import metrics
from robolearn.world_models.checkpoint import FrozenWorldModel


@dataclasses.dataclass(frozen=True)
class EvalWorldModelConfig(SamplerChoice):
    """What `robolearn eval world-model` runs (see the module doc for the method; saved as
    config.yaml in the run, with the sampler the model ran with)."""

    model: str = dataclasses.field(default="", metadata=flag(metavar="CKPT"))
    """world-model checkpoint directory or shipped part, e.g. bundle:drawer/world-model"""
    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """held-out episode store (repeat for several); the episodes of the model's tasks are used"""
    horizon: int = 15
    """open-loop steps per window"""
    stride: int = 10
    """frames between window starts"""
    batch_size: int = 32
    """rollouts per batch"""
    seed: int = 0
    """sampling seed"""
    max_episodes: int | None = None
    """use only the first N episodes (default: all)"""
    detector_steps: int = 400
    """training steps of the success detector; 0 skips outcome fidelity"""
    detector_frames: int = 10000
    """real frames the success detector is fitted on, at most (a seeded sample of both outcomes
    when the data holds more; 10000 frames of 64x64 take 123 MB)"""
    input: PipelineConfig = PipelineConfig()
    """how the episodes are read: memory budget, RAM or streaming (robolearn.data.pipeline;
    e.g. input.memory_mb=512)"""

    def __post_init__(self):
        if not self.model:
            raise ConfigError("give the world model to evaluate: --model CKPT or a bundle part")
        if not self.data:
            raise ConfigError("give at least one held-out --data directory")
        require_positive(self, "horizon", "stride", "batch_size", "detector_frames")
        if self.max_episodes is not None:
            require_positive(self, "max_episodes")
        if self.detector_steps < 0:
            raise ConfigError(f"detector_steps must be >= 0, got {self.detector_steps}")


def main(cfg: EvalWorldModelConfig, options: RunOptions) -> None:
    """`robolearn eval world-model`: both measurements, printed as a table."""
    from robolearn import bundles
    from robolearn.world_models.checkpoint import load_world_model

    override = cfg.sampler_override()
    wm = load_world_model(bundles.resolve(cfg.model), sampler=override)
    out = options.run_dir("eval", "world-model")
    result = run_eval_world_model(cfg, wm, out, progress=options.progress)
    print(format_fidelity(result))
    print(f"results: {out / 'results.json'}")


def run_eval_world_model(
    cfg: EvalWorldModelConfig, wm: FrozenWorldModel, out: Path, progress: bool = True
) -> dict:
    """Both measurements; writes results.json and config.yaml to `out` and returns the results."""
    data = EpisodeData(
        list(cfg.data), tasks=list(wm.info.tasks), pipeline=cfg.input, progress=progress
    )
    episodes = list(range(len(data.paths)))[: cfg.max_episodes]
    h, w = data.image_shape[:2]
    if tuple(data.image_shape) != (wm.info.image_size, wm.info.image_size, 3):
        raise ConfigError(
            f"{', '.join(cfg.data)}: frames are {h}x{w}, the world "
            f"model's are {wm.info.image_size}x{wm.info.image_size}"
        )
    save_yaml(dataclasses.replace(cfg, **sampler_used(wm.sampler)), out / "config.yaml")
    imaginer = Imaginer(wm, cfg.batch_size)
    rng = jax.random.key(cfg.seed)
    start = time.perf_counter()
    open_loop = _open_loop(cfg, wm, data, episodes, imaginer, rng, progress)
    outcome = _outcome(cfg, data, episodes, imaginer, rng, progress)
    result = {
        "model": cfg.model,
        "data": list(cfg.data),
        "episodes": len(episodes),
        "model_step": wm.step,
        "sampler": dataclasses.asdict(wm.sampler),
        "open_loop": open_loop,
        "outcome": outcome,
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _window_batches(data: EpisodeData, windows, context: int, horizon: int, batch_size: int):
    """The open-loop windows [(episode, start)] read an episode at a time, in batches of
    `batch_size`: (context frames [b, T, H, W, 3], the actions into them [b, T, A], proprio
    [b, T, P], the future actions [b, H', A], the real future frames [b, H', H, W, 3], the last
    real frame [b, H, W, 3]) with H' = horizon."""
    pending, current = [], None
    for e, s in windows:
        if e != current:
            current, (image, action, proprio) = e, data.episode(e)
        pending.append(
            (
                *context_window(image, action, proprio, s, context),
                action[s : s + horizon].astype(np.float32),
                image[s + 1 : s + horizon + 1],
                image[s],
            )
        )
        if len(pending) == batch_size:
            yield tuple(np.stack(x) for x in zip(*pending, strict=True))
            pending = []
    if pending:
        yield tuple(np.stack(x) for x in zip(*pending, strict=True))


def _open_loop(cfg, wm, data, episodes, imaginer, rng, progress) -> dict:
    t, h = wm.info.context, cfg.horizon
    windows = [
        (e, s) for e in episodes for s in range(0, int(data.num_steps[e]) - h + 1, cfg.stride)
    ]
    if not windows:
        raise ConfigError(f"no episode is long enough for horizon {h}; lower --horizon")
    # per step: the MSE of the model and of the baseline, their SSIM, summed over windows
    sums = np.zeros((4, h))
    bar = Progress(len(windows), "open-loop window", enabled=progress)
    done = 0
    for k, batch in enumerate(_window_batches(data, windows, t, h, cfg.batch_size)):
        frames, acts, prop, future, real, last = batch
        # the keys of all windows imagined at once: results do not depend on the batching
        imagined, _ = imaginer(rng, frames, acts, prop, future, first=k * cfg.batch_size)
        baseline = np.repeat(last[:, None], h, axis=1)
        sums += [
            np.asarray(metrics.mse(imagined, real)).sum(0),
            np.asarray(metrics.mse(baseline, real)).sum(0),
            np.asarray(metrics.ssim(imagined, real)).sum(0),
            np.asarray(metrics.ssim(baseline, real)).sum(0),
        ]
        done += len(frames)
        bar.update(done, f"x {h} steps")
    bar.close()
    mse_model, mse_base, s_model, s_base = sums / len(windows)
    # PSNR per step is that of the mean MSE over windows: windows where the scene stands still
    # (identical frames, infinite PSNR) then count as zero error instead of dominating a mean.
    p_model = np.asarray(metrics.psnr_from_mse(mse_model))
    p_base = np.asarray(metrics.psnr_from_mse(mse_base))
    per_step = {
        "psnr": p_model.tolist(),
        "psnr_baseline": p_base.tolist(),
        "ssim": s_model.tolist(),
        "ssim_baseline": s_base.tolist(),
    }
    beats = bool(np.all(p_model > p_base) and np.all(s_model > s_base))
    return {"windows": len(windows), "horizon": h, "per_step": per_step, "beats_baseline": beats}


def detector_sample(success: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted frame rows int64 [<= limit] to fit the success detector on, of frames whose
    success flags are `success` bool [F]: all of them when F <= limit, else a seeded sample
    without replacement, half positives and half negatives where both have enough (the other
    class fills the rest)."""
    if len(success) <= limit:
        return np.arange(len(success), dtype=np.int64)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(success), np.flatnonzero(~success)
    n_pos = min(len(pos), max(limit // 2, limit - len(neg)))
    picked = [rng.choice(pos, n_pos, replace=False), rng.choice(neg, limit - n_pos, replace=False)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _outcome(cfg, data, episodes, imaginer, rng, progress) -> dict | None:
    if cfg.detector_steps == 0:
        return None
    labels = np.concatenate(
        [data.read_frames("success", e, 0, int(n) + 1) for e, n in enumerate(data.num_steps)]
    ).astype(bool)
    if labels.all() or not labels.any():
        return {"skipped": "the held-out frames hold only one outcome; no detector can be fitted"}
    from robolearn.reward_models.train import fit_success_cnn

    bar = Progress(len(episodes) + 1, "outcome fidelity", enabled=progress)
    sample = detector_sample(labels, cfg.detector_frames, cfg.seed)
    detector = fit_success_cnn(
        data.frames("image", sample), labels[sample], steps=cfg.detector_steps
    )
    bar.update(1, f"detector fitted on {len(sample)} frames")
    by_length: dict[int, list[int]] = {}
    for e in episodes:
        by_length.setdefault(int(data.num_steps[e]), []).append(e)
    b = cfg.batch_size
    chunks = [(i, g[i : i + b]) for g in by_length.values() for i in range(0, len(g), b)]
    rows = []
    for first, chunk in chunks:
        recorded = [data.episode(e) for e in chunk]
        imagined = imagine_episodes(imaginer, rng, recorded, first)  # keys as if at once
        p_imagined = detector(np.stack([frames[-1] for frames in imagined]))
        p_real = detector(np.stack([image[-1] for image, _, _ in recorded]))
        won = [bool(data.read_frames("success", e, int(data.num_steps[e]), 1)[0]) for e in chunk]
        rows += [
            (ok, pi >= 0.5, pr >= 0.5) for ok, pi, pr in zip(won, p_imagined, p_real, strict=True)
        ]
        bar.update(1 + len(rows), f"{len(rows)} episodes imagined in full")
    bar.close()
    rows = np.asarray(rows, bool)
    real_ok, imag_ok, det_ok = rows[:, 0], rows[:, 1], rows[:, 2]

    def rate(mask, values):
        return float(values[mask].mean()) if mask.any() else None

    return {
        "failed_episodes": int((~real_ok).sum()),
        "successful_episodes": int(real_ok.sum()),
        "imagined_success_on_failed": rate(~real_ok, imag_ok),
        "imagined_success_on_successful": rate(real_ok, imag_ok),
        "detector_success_on_failed_real": rate(~real_ok, det_ok),
        "detector_success_on_successful_real": rate(real_ok, det_ok),
        "outcome_agreement": float((imag_ok == real_ok).mean()),
        "detector_steps": cfg.detector_steps,
        "detector_frames": len(sample),
    }


def format_fidelity(result: dict) -> str:
    """The fidelity report of `eval world-model` (results.json's content) as a plain-text table."""
    ol = result["open_loop"]
    ps = ol["per_step"]
    lines = [
        f"open loop: {ol['windows']} windows from {result['episodes']} episodes, "
        f"model step {result['model_step']}, {result['sampler']['steps']} "
        f"{result['sampler']['method']} steps per frame",
        "  step   PSNR model  PSNR copy-last   SSIM model  SSIM copy-last",
    ]
    for k in range(ol["horizon"]):
        lines.append(
            f"  {k + 1:>4}   {ps['psnr'][k]:>10.2f}  {ps['psnr_baseline'][k]:>14.2f}   "
            f"{ps['ssim'][k]:>10.3f}  {ps['ssim_baseline'][k]:>14.3f}"
        )
    verdict = "beats" if ol["beats_baseline"] else "does NOT beat"
    lines.append(f"  the model {verdict} copy-the-last-frame at every step (PSNR and SSIM)")
    oc = result.get("outcome")
    if oc and "skipped" in oc:
        lines.append(f"outcome fidelity: skipped ({oc['skipped']})")
    elif oc:
        lines += _outcome_lines(oc)
    return "\n".join(lines)


def _outcome_lines(oc: dict) -> list[str]:
    def pct(x):
        return "n/a" if x is None else f"{x:.0%}"

    return [
        f"outcome fidelity ({oc['failed_episodes']} failed, {oc['successful_episodes']} "
        f"successful episodes imagined in full under their recorded actions):",
        f"  failed episodes whose imagined ending looks successful: "
        f"{pct(oc['imagined_success_on_failed'])} "
        f"(detector on the real endings: {pct(oc['detector_success_on_failed_real'])})",
        f"  successful episodes whose imagined ending looks successful: "
        f"{pct(oc['imagined_success_on_successful'])} "
        f"(detector on the real endings: {pct(oc['detector_success_on_successful_real'])})",
        f"  imagined outcome = real outcome: {pct(oc['outcome_agreement'])}",
    ]
