"""`robolearn imagine`: a policy acting inside the learned world model, beside the real simulator.

Each rollout starts from a real first frame (a fresh reset of the task with an evaluation seed),
the policy then acts on imagined frames and proprio for `horizon` steps entirely inside the
world model. Afterwards the simulator is reset to the same initial state and executes the same
actions open loop, so the video shows what the model imagined beside what would really happen,
with the per-step difference (PSNR, dB) plotted underneath. With a reward classifier (the task's
bundle ships one), every imagined frame also gets its predicted success probability: shown on the
frame, plotted per step, and thresholded into the binary reward refinement trains on.

Outputs in the run directory: video.mp4 (rows: rollouts; columns: imagined | real), psnr.png,
reward.png (with a classifier), results.json (per-step PSNR/SSIM, predicted reward, real success,
timings per rollout), config.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import jax
import numpy as np

from robolearn import bundles
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.video import VideoWriter, caption_frame, plot_series
from robolearn.runs.eval import episode_seed

VIDEO_ROWS = 4
CELL = 160


@dataclasses.dataclass(frozen=True)
class ImagineConfig:
    """What `robolearn imagine` runs.

    world_model/policy: checkpoint directories or shipped parts; None = the task's bundle
        (bundle:<task>/world-model and bundle:<task>/bc).
    reward: a reward-classifier checkpoint or shipped part scoring the imagined frames; None =
        bundle:<task>/reward when the bundle ships one, "none" = no predicted reward.
    horizon: imagined steps (None = the task's episode length).
    rollouts: parallel imagined rollouts (one batch); the first 4 are filmed.
    sample: sample actions from the policy's Gaussian instead of taking its mean.
    sampler_steps/sampler_method: override the world model's sampler (None = its own).
    """

    task: str = "drawer"
    world_model: str | None = None
    policy: str | None = None
    reward: str | None = None
    horizon: int | None = None
    rollouts: int = 4
    seed: int = 0
    sample: bool = False
    sampler_steps: int | None = None
    sampler_method: str | None = None

    def __post_init__(self):
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        if self.rollouts < 1:
            raise ConfigError(f"rollouts must be >= 1, got {self.rollouts}")

    @property
    def world_model_spec(self) -> str:
        return self.world_model or f"{bundles.PREFIX}{self.task}/world-model"

    @property
    def policy_spec(self) -> str:
        return self.policy or f"{bundles.PREFIX}{self.task}/bc"

    @property
    def reward_spec(self) -> str | None:
        """The reward classifier to score imagined frames with, or None."""
        if self.reward == "none":
            return None
        if self.reward:
            return self.reward
        default = f"{bundles.PREFIX}{self.task}/reward"
        shipped = {p.name for p in bundles.list_parts()}
        return default if default in shipped else None


def load_parts(cfg: ImagineConfig):
    """(task info, world model, policy), checked against each other with one-line errors."""
    from robolearn import envs
    from robolearn.imagination import check_pair
    from robolearn.policies.bc.checkpoint import check_compatible, load_policy
    from robolearn.world_models.checkpoint import load_world_model

    info = envs.task_info(cfg.task)
    wm_path, policy_path = bundles.resolve(cfg.world_model_spec), bundles.resolve(cfg.policy_spec)
    wm = load_world_model(
        wm_path, cfg.task, envs.ACTION_DIM, sampler_override(cfg.sampler_steps, cfg.sampler_method)
    )
    policy_info = check_compatible(policy_path, cfg.task, envs.ACTION_DIM)
    check_pair(wm.info, policy_info, cfg.task)
    policy = load_policy(policy_path, cfg.task, envs.ACTION_DIM)
    return info, wm, policy


def load_reward(cfg: ImagineConfig, wm_info):
    """The reward classifier of `cfg` (None without one), checked against the world model."""
    if cfg.reward_spec is None:
        return None
    from robolearn.imagination import check_reward
    from robolearn.reward_models.checkpoint import load_reward_model

    reward = load_reward_model(bundles.resolve(cfg.reward_spec), cfg.task)
    check_reward(wm_info, reward.info)
    return reward


def sampler_override(steps: int | None, method: str | None) -> dict:
    """Sampler fields to replace in a loaded world model's config (empty: keep its own)."""
    fields = {"steps": steps, "method": method}
    return {k: v for k, v in fields.items() if v is not None}


def run_imagine(cfg: ImagineConfig, out: Path, progress: bool = True) -> dict:
    """Imagine, replay in the simulator, film; returns the results (also in results.json)."""
    from robolearn import envs
    from robolearn.imagination import make_policy_rollout
    from robolearn.world_models import metrics

    info, wm, policy = load_parts(cfg)
    reward = load_reward(cfg, wm.info)
    horizon = cfg.horizon or info.max_steps
    save_yaml(cfg, out / "config.yaml")
    task = envs.make(cfg.task, image_size=wm.info.image_size, max_steps=horizon)
    try:
        seeds = [episode_seed(cfg.seed, i) for i in range(cfg.rollouts)]
        firsts = [task.reset(seed=s)[0] for s in seeds]
        first_image = np.stack([o["image"] for o in firsts])
        first_proprio = np.stack([o["proprio"] for o in firsts]).astype(np.float32)

        rollout = make_policy_rollout(wm, policy.apply, horizon, deterministic=not cfg.sample)
        rng = jax.random.key(cfg.seed)
        start = time.perf_counter()
        compiled = rollout.lower(
            wm.params, policy.params, rng, first_image, first_proprio
        ).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        arrays = compiled(wm.params, policy.params, rng, first_image, first_proprio)
        out_arrays = jax.device_get(arrays)
        imagine_s = time.perf_counter() - start
        imagined, actions = out_arrays["image"], out_arrays["action"]

        real, success = _replay(task, seeds, actions)
    finally:
        task.close()
    psnr = np.asarray(metrics.psnr(imagined[:, 1:], real[:, 1:]))
    ssim = np.asarray(metrics.ssim(imagined[:, 1:], real[:, 1:]))
    scores = _score(reward, cfg.task, imagined, real)
    video = out / "video.mp4"
    _film(video, imagined, real, success, psnr, scores, cfg, max(5.0, info.control_hz))
    png = out / "psnr.png"
    cv2.imwrite(str(png), cv2.cvtColor(_psnr_plot(psnr, 640, 240, None), cv2.COLOR_RGB2BGR))
    if scores is not None:
        plot = _reward_plot(scores["imagined"], scores["threshold"], 640, 240, None)
        cv2.imwrite(str(out / "reward.png"), cv2.cvtColor(plot, cv2.COLOR_RGB2BGR))
    frames = cfg.rollouts * horizon
    result = {
        "task": cfg.task,
        "world_model": cfg.world_model_spec,
        "policy": cfg.policy_spec,
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
            "classifier": cfg.reward_spec,
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


def _reward_plot(probs, threshold, width, height, cursor) -> np.ndarray:
    title = f"predicted P(success) of imagined frames (reward 1 above {threshold:.2f})"
    lines = [*list(probs), np.full(probs.shape[1], threshold)]
    colours = [(30, 90, 200), (200, 60, 30), (40, 150, 40), (150, 40, 150)][: len(probs)]
    return plot_series(lines, width, height, (0.0, 1.0), title, cursor, colours + [(0, 0, 0)])


def _psnr_plot(psnr: np.ndarray, width: int, height: int, cursor: int | None) -> np.ndarray:
    hi = float(np.ceil(max(40.0, np.nanmax(psnr)) / 10) * 10)
    title = "PSNR imagined vs real (dB) per step, one line per rollout"
    return plot_series(list(psnr), width, height, (10.0, hi), title, cursor)


def _film(path, imagined, real, success, psnr, scores, cfg, fps) -> None:
    rows = min(VIDEO_ROWS, len(imagined))
    with VideoWriter(path, fps=fps) as video:
        for k in range(imagined.shape[1]):
            lines = []
            for r in range(rows):
                ok = k > 0 and bool(success[r, k - 1])
                text, predicted = [f"imagined #{r} step {k}"], False
                if scores is not None and k > 0:
                    p = float(scores["imagined"][r, k - 1])
                    predicted = p >= scores["threshold"]
                    text.append(f"P(success) {p:.2f}" + (" reward 1" if predicted else ""))
                left = caption_frame(imagined[r, k], text, size=CELL, highlight=predicted)
                right = caption_frame(
                    real[r, k],
                    ["real sim, same actions", "SUCCESS" if ok else ""],
                    size=CELL,
                    highlight=ok,
                )
                lines.append(np.concatenate([left, right], axis=1))
            plots = [_psnr_plot(psnr[:rows], 2 * CELL, 128, max(k, 1))]
            if scores is not None:
                plots.append(
                    _reward_plot(
                        scores["imagined"][:rows], scores["threshold"], 2 * CELL, 128, max(k, 1)
                    )
                )
            video.append(np.concatenate([*lines, *plots], axis=0))
