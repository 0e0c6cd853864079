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

from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.progress import Progress
from robolearn.data.loader import EpisodeCache
from robolearn.imagination import Imaginer, context_window, imagine_episodes
from robolearn.world_models import metrics
from robolearn.world_models.checkpoint import FrozenWorldModel


@dataclasses.dataclass(frozen=True)
class EvalWorldModelConfig:
    """What `robolearn eval world-model` runs (see the module doc for the method).

    horizon: open-loop steps per window; stride: frames between window starts.
    max_episodes: use at most this many episodes (the first ones), None = all.
    detector_steps: training steps of the success detector (0 skips outcome fidelity).
    sampler_steps/sampler_method: override the model's sampler (None = its own).
    """

    model: str
    data: tuple[str, ...]
    horizon: int = 15
    stride: int = 10
    batch_size: int = 32
    seed: int = 0
    max_episodes: int | None = None
    detector_steps: int = 400
    sampler_steps: int | None = None
    sampler_method: str | None = None

    def __post_init__(self):
        if self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        if self.stride < 1 or self.batch_size < 1:
            raise ConfigError("stride and batch size must be >= 1")


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
    save_yaml(cfg, out / "config.yaml")
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
