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
from robolearn.data.loader import EpisodeCache
from robolearn.imagination import Imaginer, context_window, imagine_episodes
from robolearn.runs.parts import SamplerChoice
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

    def __post_init__(self):
        if not self.model:
            raise ConfigError("give the world model to evaluate: --model CKPT or a bundle part")
        if not self.data:
            raise ConfigError("give at least one held-out --data directory")
        require_positive(self, "horizon", "stride", "batch_size")
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
    cache = EpisodeCache(list(cfg.data), tasks=list(wm.info.tasks))
    episodes = _episodes(cache, cfg.max_episodes)
    image = cache.arrays["image"]
    if image.shape[1:] != (wm.info.image_size, wm.info.image_size, 3):
        raise ConfigError(
            f"{', '.join(cfg.data)}: frames are {image.shape[1]}x{image.shape[2]}, the world "
            f"model's are {wm.info.image_size}x{wm.info.image_size}"
        )
    used = {"sampler_steps": wm.sampler.steps, "sampler_method": wm.sampler.method}
    save_yaml(dataclasses.replace(cfg, **used), out / "config.yaml")
    imaginer = Imaginer(wm, cfg.batch_size)
    rng = jax.random.key(cfg.seed)
    start = time.perf_counter()
    open_loop = _open_loop(cfg, wm, episodes, imaginer, rng, progress)
    outcome = _outcome(cfg, cache, episodes, imaginer, rng, progress)
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


def _episodes(cache: EpisodeCache, limit: int | None) -> list[dict]:
    a = cache.arrays
    eps = []
    for e, (fs, ss, n) in enumerate(
        zip(cache.frame_start, cache.step_start, cache.num_steps, strict=True)
    ):
        eps.append(
            {
                "index": e,
                "image": a["image"][fs : fs + n + 1],
                "proprio": a["proprio"][fs : fs + n + 1],
                "action": a["action"][ss : ss + n],
                "success": bool(a["success"][fs + n]),
            }
        )
    return eps[:limit] if limit else eps


def _open_loop(cfg, wm, episodes, imaginer, rng, progress) -> dict:
    t, h = wm.info.context, cfg.horizon
    windows = []
    for ep in episodes:
        n = len(ep["action"])
        for s in range(0, n - h + 1, cfg.stride):
            windows.append((ep, s))
    if not windows:
        raise ConfigError(f"no episode is long enough for horizon {h}; lower --horizon")
    ctx = [context_window(ep["image"], ep["action"], ep["proprio"], s, t) for ep, s in windows]
    frames, acts, prop = (np.stack(x) for x in zip(*ctx, strict=True))
    future = np.stack([ep["action"][s : s + h] for ep, s in windows]).astype(np.float32)
    real = np.stack([ep["image"][s + 1 : s + h + 1] for ep, s in windows])
    last = np.stack([ep["image"][s] for ep, s in windows])
    bar = Progress(1, "open-loop rollouts", enabled=progress)
    imagined, _ = imaginer(rng, frames, acts, prop, future)
    bar.update(1, f"{len(windows)} windows x {h} steps")
    bar.close()
    baseline = np.repeat(last[:, None], h, axis=1)
    # PSNR per step is that of the mean MSE over windows: windows where the scene stands still
    # (identical frames, infinite PSNR) then count as zero error instead of dominating a mean.
    p_model = np.asarray(metrics.psnr_from_mse(np.asarray(metrics.mse(imagined, real)).mean(0)))
    p_base = np.asarray(metrics.psnr_from_mse(np.asarray(metrics.mse(baseline, real)).mean(0)))
    s_model = np.asarray(metrics.ssim(imagined, real)).mean(0)
    s_base = np.asarray(metrics.ssim(baseline, real)).mean(0)
    per_step = {
        "psnr": p_model.tolist(),
        "psnr_baseline": p_base.tolist(),
        "ssim": s_model.tolist(),
        "ssim_baseline": s_base.tolist(),
    }
    beats = bool(np.all(p_model > p_base) and np.all(s_model > s_base))
    return {"windows": len(windows), "horizon": h, "per_step": per_step, "beats_baseline": beats}


def _outcome(cfg, cache, episodes, imaginer, rng, progress) -> dict | None:
    if cfg.detector_steps == 0:
        return None
    labels = cache.arrays["success"].astype(bool)
    if labels.all() or not labels.any():
        return {"skipped": "the held-out frames hold only one outcome; no detector can be fitted"}
    from robolearn.reward_models.train import fit_success_cnn

    bar = Progress(2, "outcome fidelity", enabled=progress)
    detector = fit_success_cnn(cache.arrays["image"], labels, steps=cfg.detector_steps)
    bar.update(1, "detector fitted")
    recorded = [(ep["image"], ep["action"], ep["proprio"]) for ep in episodes]
    imagined = imagine_episodes(imaginer, rng, recorded)
    p_imagined = detector(np.stack([frames[-1] for frames in imagined]))
    p_real = detector(np.stack([ep["image"][-1] for ep in episodes]))
    rows = [
        (ep["success"], pi >= 0.5, pr >= 0.5)
        for ep, pi, pr in zip(episodes, p_imagined, p_real, strict=True)
    ]
    bar.update(2, f"{len(rows)} episodes imagined in full")
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
