"""`robolearn imagine`: a policy acting inside the learned world model, beside the real simulator.

Each rollout starts from a real first frame (a fresh reset of the task with an evaluation seed),
the policy then acts on imagined frames and proprio for `horizon` steps entirely inside the
world model. Afterwards the simulator is reset to the same initial state and executes the same
actions open loop, so the video shows what the model imagined beside what would really happen,
with the per-step difference (PSNR, dB) plotted underneath. With a reward classifier (the task's
bundle ships one), every imagined frame also gets its predicted success probability: shown above
the frame, plotted per step, and thresholded into the binary reward refinement trains on.

Outputs in the run directory: video.mp4 (the first 4 rollouts two to a row, each imagined | real
under caption strips and marked by its colour, over the PSNR and reward plots with a cursor at the
step), psnr.png and reward.png (every rollout, same colours), results.json (per-step PSNR/SSIM,
predicted reward, real success, timings per rollout), config.yaml (the settings
really used: the parts, horizon and sampler).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from robolearn.core import plots
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions
from robolearn.core.seeds import episode_seed
from robolearn.core.video import (
    VIDEO_SIZE,
    VideoWriter,
    caption_frame,
    caption_strip,
    pad_to_block,
)
from robolearn.runs.parts import Parts, SamplerChoice, load_parts, sampler_used, shipped_reward

VIDEO_ROWS = 4
CELL = VIDEO_SIZE  # px of a filmed frame
BAND = 16  # px of the rollout-colour band left of each filmed rollout
GAP = 8
PLOT_PX = 288  # height of the plots under the filmed rollouts
PNG_PX, PNG_DPI = (1200, 600), 150
GREEN = "green caption: reward 1 (imagined) / success (real)"


@dataclasses.dataclass(frozen=True)
class ImagineConfig(SamplerChoice):
    """What `robolearn imagine` runs; the run's config.yaml holds it resolved (the parts, the
    horizon and the sampler actually used)."""

    task: str = "drawer"
    """task name (see `robolearn tasks`)"""
    world_model: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """world-model checkpoint or shipped part (default: bundle:<task>/world-model)"""
    policy: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """policy checkpoint or shipped part (default: bundle:<task>/bc)"""
    reward: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """reward classifier scoring the imagined frames, or 'none' (default: bundle:<task>/reward
    when shipped)"""
    horizon: int | None = None
    """imagined steps (default: the task's episode length)"""
    rollouts: int = 4
    """parallel imagined rollouts (one batch); the first 4 are filmed"""
    seed: int = 0
    """reset and sampling seed"""
    sample: bool = False
    """sample policy actions from its Gaussian instead of taking the mean"""

    def __post_init__(self):
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        if self.rollouts < 1:
            raise ConfigError(f"rollouts must be >= 1, got {self.rollouts}")


def main(cfg: ImagineConfig, options: RunOptions) -> None:
    """`robolearn imagine`: imagine, replay, film; print the comparison and the outputs."""
    out = options.run_dir("imagine", cfg.task)
    r = run_imagine(cfg, out)
    print(
        f"{cfg.task}: {r['rollouts']} rollouts x {r['horizon']} steps imagined in "
        f"{r['imagine_seconds']:.1f} s ({r['imagined_frames_per_second']:.1f} frames/s, "
        f"compile {r['compile_seconds']:.0f} s); imagined vs real sim PSNR "
        f"{r['psnr_first_step']:.1f} dB at step 1, {r['psnr_last_step']:.1f} dB at step "
        f"{r['horizon']}; the same actions succeed in the real sim "
        f"{r['real_successes']}/{r['rollouts']}"
    )
    if "reward" in r:
        rew = r["reward"]
        print(
            f"predicted reward ({rew['classifier']}, threshold {rew['threshold']:.2f}): imagined "
            f"success in {rew['predicted_successes']}/{r['rollouts']} rollouts; plot: {rew['plot']}"
        )
    print(f"video:   {r['video']}")
    print(f"plot:    {r['plot']}")
    print(f"results: {out / 'results.json'}")


def reward_spec(cfg: ImagineConfig) -> str | None:
    """The reward classifier to score imagined frames with: the given one, none for 'none', else
    the task's shipped one when there is one."""
    if cfg.reward == "none":
        return None
    return cfg.reward or shipped_reward(cfg.task)


def resolved_config(cfg: ImagineConfig, parts: Parts, horizon: int) -> ImagineConfig:
    """`cfg` as it really runs: the parts' specs (bundle defaults filled in, reward 'none' when
    there is none), the horizon and the world model's sampler."""
    return dataclasses.replace(
        cfg,
        world_model=parts.specs["world_model"],
        policy=parts.specs["policy"],
        reward=parts.specs["reward"] or "none",
        horizon=horizon,
        **sampler_used(parts.world_model.sampler),
    )


def run_imagine(cfg: ImagineConfig, out: Path) -> dict:
    """Imagine, replay in the simulator, film; returns the results (also in results.json)."""
    from robolearn.world_models import metrics

    spec = reward_spec(cfg)
    override = cfg.sampler_override()
    parts = load_parts(
        cfg.task, cfg.world_model, cfg.policy, spec, override, with_reward=spec is not None
    )
    info, wm, policy, reward = parts.info, parts.world_model, parts.policy, parts.reward
    horizon = cfg.horizon or info.max_steps
    save_yaml(resolved_config(cfg, parts, horizon), out / "config.yaml")
    imagined, real, success, seeds, timing = _rollouts(cfg, wm, policy, horizon)
    compile_s, imagine_s = timing
    psnr = np.asarray(metrics.psnr(imagined[:, 1:], real[:, 1:]))
    ssim = np.asarray(metrics.ssim(imagined[:, 1:], real[:, 1:]))
    scores = _score(reward, cfg.task, imagined, real)
    video = out / "video.mp4"
    _film(video, imagined, real, success, seeds, psnr, scores, max(5.0, info.control_hz))
    png = out / "psnr.png"
    plots.save_png(_psnr_plot(psnr, seeds, PNG_PX, PNG_DPI), png)
    if scores is not None:
        plot = _reward_plot(scores["imagined"], scores["threshold"], seeds, PNG_PX, PNG_DPI)
        plots.save_png(plot, out / "reward.png")
    frames = cfg.rollouts * horizon
    result = {
        "task": cfg.task,
        "world_model": parts.specs["world_model"],
        "policy": parts.specs["policy"],
        "world_model_step": wm.step,
        "horizon": horizon,
        "rollouts": cfg.rollouts,
        "seeds": seeds,
        "sampler": dataclasses.asdict(wm.sampler),
        "compile_seconds": compile_s,
        "imagine_seconds": imagine_s,
        "imagined_frames_per_second": frames / max(imagine_s, 1e-9),
        "psnr_mean": float(psnr.mean()),
        "psnr_first_step": float(psnr[:, 0].mean()),
        "psnr_last_step": float(psnr[:, -1].mean()),
        "ssim_mean": float(ssim.mean()),
        "per_rollout": [
            {
                "seed": s,
                "psnr": p.tolist(),
                "ssim": q.tolist(),
                "real_success": bool(ok.any()),
                "real_success_at_end": bool(ok[-1]),
            }
            for s, p, q, ok in zip(seeds, psnr, ssim, success, strict=True)
        ],
        "real_successes": int(success.any(axis=1).sum()),
        "video": str(video),
        "plot": str(png),
    }
    if scores is not None:
        result["reward"] = {
            "classifier": parts.specs["reward"],
            "threshold": scores["threshold"],
            "predicted_successes": int((scores["imagined"] >= scores["threshold"]).any(1).sum()),
            "plot": str(out / "reward.png"),
        }
        for r, row in enumerate(result["per_rollout"]):
            row["reward_prob_imagined"] = scores["imagined"][r].tolist()
            row["reward_prob_real"] = scores["real"][r].tolist()
            row["predicted_success"] = bool((scores["imagined"][r] >= scores["threshold"]).any())
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _rollouts(cfg: ImagineConfig, wm, policy, horizon: int):
    """Imagined rollouts from fresh resets and the simulator replaying their actions:
    (imagined uint8 [B, N+1, H, W, 3], real uint8 [B, N+1, H, W, 3], success bool [B, N],
    reset seeds, (compile seconds, imagine seconds))."""
    from robolearn import envs
    from robolearn.imagination import make_policy_rollout

    task = envs.make(cfg.task, image_size=wm.info.image_size, max_steps=horizon)
    try:
        seeds = [episode_seed(cfg.seed, i) for i in range(cfg.rollouts)]
        firsts = [task.reset(seed=s)[0] for s in seeds]
        first_image = np.stack([o["image"] for o in firsts])
        first_proprio = np.stack([o["proprio"] for o in firsts]).astype(np.float32)
        rollout = make_policy_rollout(wm, policy.apply, horizon, deterministic=not cfg.sample)
        args = (wm.params, policy.params, jax.random.key(cfg.seed), first_image, first_proprio)
        start = time.perf_counter()
        compiled = rollout.lower(*args).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        arrays = jax.device_get(compiled(*args))
        imagine_s = time.perf_counter() - start
        real, success = _replay(task, seeds, arrays["action"])
    finally:
        task.close()
    return arrays["image"], real, success, seeds, (compile_s, imagine_s)


def _replay(task, seeds, actions):
    """The simulator from each rollout's initial state under its imagined actions:
    real frames uint8 [B, N+1, H, W, 3] and success bool [B, N]."""
    frames, success = [], []
    for seed, acts in zip(seeds, actions, strict=True):
        obs, _ = task.reset(seed=seed)
        ep_frames, ep_success = [obs["image"]], []
        for a in acts:
            obs, _, _, _, step_info = task.step(np.asarray(a, np.float32))
            ep_frames.append(obs["image"])
            ep_success.append(bool(step_info["success"]))
        frames.append(np.stack(ep_frames))
        success.append(ep_success)
    return np.stack(frames), np.asarray(success, bool)


def _score(reward, task: str, imagined: np.ndarray, real: np.ndarray) -> dict | None:
    """Predicted success probabilities [B, N] of the imagined and the real frames after each
    action, and the classifier's decision threshold (None without a classifier)."""
    if reward is None:
        return None
    b, n = imagined.shape[0], imagined.shape[1] - 1

    def prob(frames):
        return reward.prob(frames[:, 1:].reshape(b * n, *frames.shape[2:]), task).reshape(b, n)

    return {"imagined": prob(imagined), "real": prob(real), "threshold": reward.info.threshold}


def _rollout_lines(values: np.ndarray, seeds: list[int] | None) -> list[plots.Line]:
    """One line per rollout in its colour, labelled with its seed (unless seeds is None);
    rollouts past the palette in grey under one legend entry."""
    lines = []
    for r, v in enumerate(values):
        if r < len(plots.PALETTE):
            label = f"rollout {r}" + ("" if seeds is None else f" (seed {seeds[r]})")
            lines.append(plots.Line(v, label, plots.colour(r)))
        else:
            label = f"rollouts {r}-{len(values) - 1}" if r == len(plots.PALETTE) else None
            lines.append(plots.Line(v, label, plots.OTHERS, width=0.8, zorder=1.0))
    return lines


def _psnr_plot(psnr, seeds, size_px, dpi) -> plots.StepPlot:
    """PSNR [B, N] of the imagined against the real frames per step, one line per rollout
    (legend without seeds when `seeds` is None: the video captions carry them)."""
    lo = min(10.0, float(np.floor(np.nanmin(psnr) / 5) * 5))
    hi = float(np.ceil(max(40.0, np.nanmax(psnr)) / 10) * 10)
    return plots.step_plot(
        _rollout_lines(psnr, seeds),
        psnr.shape[1],
        size_px,
        title="imagined vs real simulator under the same actions",
        ylabel="PSNR (dB)",
        ylim=(lo, hi),
        dpi=dpi,
    )


def _reward_plot(probs, threshold, seeds, size_px, dpi) -> plots.StepPlot:
    """The classifier's P(success) [B, N] of each imagined frame, with its decision threshold."""
    return plots.step_plot(
        _rollout_lines(probs, seeds),
        probs.shape[1],
        size_px,
        title="reward classifier on the imagined frames",
        ylabel="predicted P(success)",
        ylim=(-0.02, 1.02),
        threshold=(threshold, f"threshold {threshold:.2f}"),
        dpi=dpi,
    )


def _film(path, imagined, real, success, seeds, psnr, scores, fps) -> None:
    """video.mp4: the first VIDEO_ROWS rollouts (imagined | real, two to a row) over the PSNR and
    reward plots of those rollouts, a cursor on the plots at the current step."""
    rows = min(VIDEO_ROWS, len(imagined))
    cols = 1 if rows == 1 else 2
    width = cols * _tile_width()
    n_charts = 1 if scores is None else 2
    size = (width // n_charts if width // n_charts >= 2 * CELL else width, PLOT_PX)
    charts = [_psnr_plot(psnr[:rows], None, size, 100)]
    if scores is not None:
        charts.append(_reward_plot(scores["imagined"][:rows], scores["threshold"], None, size, 100))
    steps = imagined.shape[1] - 1
    with VideoWriter(path, fps=fps) as video:
        for k in range(steps + 1):
            tiles = [_tile(r, k, imagined, real, success, seeds, scores) for r in range(rows)]
            header = [f"step {k} / {steps}    each rollout: imagined | real simulator", GREEN]
            if cols == 2:  # wide enough for one line
                header = [f"{header[0]};  {header[1]}"]
            video.append(_compose(header, tiles, [c.with_cursor(k) for c in charts], cols))


def _tile_width() -> int:
    return BAND + CELL + GAP + CELL + GAP


def _tile(r, k, imagined, real, success, seeds, scores) -> np.ndarray:
    """Rollout r at step k: its colour band, then the imagined and the real frame, each under a
    caption strip (green where the classifier gives reward 1 / the simulator reports success)."""
    ok = k > 0 and bool(success[r, k - 1])
    text, predicted = "imagined (real first frame)" if k == 0 else "imagined", False
    if scores is not None and k > 0:
        p = float(scores["imagined"][r, k - 1])
        predicted = p >= scores["threshold"]
        text = f"imagined: P(success) {p:.2f}" + (", reward 1" if predicted else "")
    colour = plots.colour(r)
    left = caption_frame(
        imagined[r, k], [f"rollout {r} (seed {seeds[r]})", text], CELL, predicted, colour
    )
    right = caption_frame(
        real[r, k], ["real sim, same actions", "success: YES" if ok else "success: no"], CELL, ok
    )
    band = np.empty((left.shape[0], BAND, 3), np.uint8)
    band[:] = colour
    gap = np.full((left.shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([band, left, gap, right, gap], axis=1)


def _compose(header: list[str], tiles, charts, cols: int) -> np.ndarray:
    """One video frame: a header strip, the tiles `cols` to a row, the charts side by side where
    they fit (else stacked); every side a multiple of 16 pixels."""
    tile_w = tiles[0].shape[1]
    blank = np.full_like(tiles[0], 255)
    grid = [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
    rows = [np.concatenate(row + [blank] * (cols - len(row)), axis=1) for row in grid]
    width = cols * tile_w
    per_row = max(1, width // charts[0].shape[1])
    chart_rows = []
    for i in range(0, len(charts), per_row):
        row = np.concatenate(charts[i : i + per_row], axis=1)
        chart_rows.append(
            np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
        )
    top = caption_strip(width, header)
    return pad_to_block(np.concatenate([top, *rows, *chart_rows], axis=0))
