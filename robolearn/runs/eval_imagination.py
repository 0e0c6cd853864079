"""`robolearn eval imagination`: a policy's success estimated inside a world model, judged by a
reward classifier, beside its real success in the simulator from the same scenes.

Each episode starts from a real first frame: a fresh reset of the task with the evaluation seed
episode_seed(seed, i) (the scenes `robolearn eval --seed S` runs), or the first frame of a recorded
episode (--data, for a task without a simulator). The policy then acts on imagined frames and
proprio for the whole episode inside the world model (one jitted `lax.scan` per batch), and the
reward classifier's calibrated P(success) of every imagined frame is thresholded at its own
decision threshold. An imagined episode succeeds when some imagined frame reaches the threshold,
as a real one does when the simulator reports success at some step (`robolearn eval`) and as
`refine` counts imagined success; success on the last frame is reported too.

With a simulator (no --data) the same policy then runs closed loop in the simulator from the same
resets, with the same action noise (`robolearn eval`'s numbers when there is none), and the two
are compared episode by episode: where imagination flatters the policy (imagined success, real
failure) and where it misses a real success.

Outputs: results.json (both success rates with 95 % Wilson intervals, the per-episode records and
the confusion), config.yaml (the settings really used: parts, horizon, sampler) and video.mp4
(the first episodes, imagined beside real).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions
from robolearn.core.seeds import episode_seed
from robolearn.core.stats import wilson_interval
from robolearn.core.video import VideoWriter, caption_frame, pad_to_block
from robolearn.data.pipeline import PipelineConfig
from robolearn.runs.parts import Parts, SamplerChoice, load_parts, sampler_used, shipped_reward


@dataclasses.dataclass(frozen=True)
class EvalImaginationConfig(SamplerChoice):
    """What `robolearn eval imagination` runs; the run's config.yaml holds it resolved."""

    task: str = ""
    """task name (see `robolearn tasks`), e.g. drawer"""
    policy: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """policy checkpoint or shipped part (default: bundle:<task>/bc)"""
    world_model: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """world-model checkpoint or shipped part (default: bundle:<task>/world-model)"""
    reward: str | None = dataclasses.field(default=None, metadata=flag(metavar="CKPT"))
    """reward classifier judging the imagined frames (default: bundle:<task>/reward)"""
    episodes: int = 50
    """imagined episodes (with --data: at most this many recorded first frames)"""
    seed: int = 0
    """evaluation seed: episode i starts from the reset with seed (seed, i), as `robolearn eval
    --seed` (and samples imagination and action noise from it)"""
    horizon: int | None = None
    """steps per episode (default: the task's episode length)"""
    batch_size: int = 50
    """imagined episodes per jitted batch"""
    action_noise: float = 0.0
    """std of Gaussian noise added to the policy's mean action (normalized units), in imagination
    and in the simulator alike: a graded family of policies from one checkpoint"""
    sample: bool = False
    """sample actions from the policy's own Gaussian (plus --action-noise) instead of the mean"""
    real: bool | None = None
    """also run the policy in the simulator from the same resets (default: yes, unless --data)"""
    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """episode store whose first frames start the imagined episodes instead of simulator resets
    (repeatable; a task without a simulator, e.g. recorded on the robot)"""
    video_episodes: int = 4
    """episodes filmed into video.mp4 (0: none)"""
    input: PipelineConfig = PipelineConfig()
    """how the --data episodes are read (robolearn.data.pipeline; only their first frames)"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError("give --task, e.g. drawer (`robolearn tasks` lists them)")
        for name in ("episodes", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        if not 0.0 <= self.action_noise <= 10.0:  # also false for NaN
            raise ConfigError(f"action_noise must be in [0, 10], got {self.action_noise}")
        if self.video_episodes < 0:
            raise ConfigError(f"video_episodes must be >= 0, got {self.video_episodes}")
        if self.data and self.real:
            raise ConfigError(
                "--real runs the policy from simulator resets; episodes started from --data "
                "frames have no simulator state to compare with (drop one)"
            )

    @property
    def with_real(self) -> bool:
        return (not self.data) if self.real is None else self.real

    @property
    def stochastic(self) -> bool:
        return self.sample or self.action_noise > 0


def main(cfg: EvalImaginationConfig, options: RunOptions) -> None:
    """`robolearn eval imagination`: imagine, judge, compare; print both success rates."""
    tag = f"{cfg.task}-{(cfg.policy or 'bc').rstrip('/').split('/')[-1]}"
    parts = _load(cfg)
    probe = SuccessProbe(cfg, parts, options.progress)  # bad starts fail before any output
    out = options.run_dir("eval-imagination", tag)
    r = run_eval_imagination(cfg, out, parts, progress=options.progress, probe=probe)
    im = r["imagined"]
    print(
        f"{cfg.task} / {r['policy']} in imagination ({r['world_model']}, judged by "
        f"{r['reward']} at {r['threshold']:.2f}): success {_rate_text(im)}; "
        f"{r['imagined_frames']} frames in {r['imagine_seconds']:.0f} s "
        f"({r['imagined_frames_per_second']:.0f} frames/s)"
    )
    if "real" in r:
        c = r["agreement"]
        print(
            f"real simulator, same {r['episodes']} scenes: success {_rate_text(r['real'])}; "
            f"same outcome in {c['same']}/{r['episodes']} episodes (imagination flatters "
            f"{c['imagined_only']}, misses {c['real_only']})"
        )
    print(f"results: {out / 'results.json'}")
    if "video" in r:
        print(f"video:   {r['video']}")


def _rate_text(s: dict) -> str:
    low, high = s["ci95"]
    text = f"{s['successes']}/{s['episodes']} = {s['success_rate']:.0%}"
    return f"{text} (95% CI {low:.0%}-{high:.0%})"


def _load(cfg: EvalImaginationConfig) -> Parts:
    reward = cfg.reward or shipped_reward(cfg.task)
    if reward is None:
        raise ConfigError(
            f"no reward classifier is shipped for {cfg.task!r}: give --reward CKPT (from "
            "`robolearn train reward`) to judge the imagined frames"
        )
    return load_parts(cfg.task, cfg.world_model, cfg.policy, reward, cfg.sampler_override())


def run_eval_imagination(
    cfg: EvalImaginationConfig,
    out: Path,
    parts: Parts | None = None,
    progress: bool = True,
    probe: SuccessProbe | None = None,
) -> dict:
    """Evaluate in imagination (and in the simulator); writes results.json, config.yaml and
    video.mp4 into `out` and returns the results. parts, probe: already made (else made here)."""
    parts = parts or _load(cfg)
    probe = probe or SuccessProbe(cfg, parts, progress)
    resolved = dataclasses.replace(
        cfg,
        policy=parts.specs["policy"],
        world_model=parts.specs["world_model"],
        reward=parts.specs["reward"],
        horizon=probe.horizon,
        real=cfg.with_real,
        **sampler_used(parts.world_model.sampler),
    )
    save_yaml(resolved, out / "config.yaml")
    params = parts.policy.params
    imagined, probs, imagine_s = probe.imagine(params)
    episodes = probe.imagined_records(probs)
    n, horizon = len(episodes), probe.horizon
    result = {
        "task": cfg.task,
        "policy": parts.specs["policy"],
        "world_model": parts.specs["world_model"],
        "reward": parts.specs["reward"],
        "threshold": probe.threshold,
        "horizon": horizon,
        "episodes": n,
        "starts": "recorded first frames (--data)" if cfg.data else "simulator resets",
        "action_noise": cfg.action_noise,
        "sample": cfg.sample,
        "sampler": dataclasses.asdict(parts.world_model.sampler),
        "imagined": rate([e["imagined_success"] for e in episodes]),
        "imagined_at_end": rate([e["imagined_success_at_end"] for e in episodes]),
        "imagine_seconds": imagine_s,
        "imagined_frames": n * horizon,
        "imagined_frames_per_second": n * horizon / max(imagine_s, 1e-9),
    }
    real_frames = None
    if cfg.with_real:
        real, real_frames = probe.real(params, film=cfg.video_episodes)
        for e, r in zip(episodes, real, strict=True):
            e.update(r)
        result["real"] = rate([e["real_success"] for e in episodes])
        result["real_at_end"] = rate([e["real_success_at_end"] for e in episodes])
        result["agreement"] = _confusion(episodes)
    result["per_episode"] = episodes
    if cfg.video_episodes:
        video = out / "video.mp4"
        _film(video, imagined, probs, probe.threshold, real_frames, episodes, cfg, parts.info)
        result["video"] = str(video)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


class SuccessProbe:
    """A policy's success from fixed starts (cfg's resets or recorded first frames, read once),
    in imagination judged by the reward classifier and closed loop in the simulator; for any
    actor parameters of the loaded policy's architecture (`refine` probes its checkpoints)."""

    def __init__(self, cfg: EvalImaginationConfig, parts: Parts, progress: bool = False):
        from robolearn.envs import reset_observations

        self.cfg, self.parts, self.progress = cfg, parts, progress
        self.horizon = cfg.horizon or parts.info.max_steps
        self.threshold = float(parts.reward.info.threshold)
        size = parts.world_model.info.image_size
        if cfg.data:
            self.seeds = None
            self.first_image, self.first_proprio = _recorded_firsts(cfg, size)
            p = parts.world_model.info.proprio_dim
            if self.first_proprio.shape[1] != p:
                raise ConfigError(
                    f"{', '.join(cfg.data)}: proprio is {self.first_proprio.shape[1]}-D, the "
                    f"world model predicts {p}-D"
                )
        else:
            self.seeds = [episode_seed(cfg.seed, i) for i in range(cfg.episodes)]
            self.first_image, self.first_proprio = reset_observations(cfg.task, size, self.seeds)
        self._apply = _acting_apply(parts.policy.apply, cfg)
        self._rollout = None

    def imagine(self, params):
        """Imagined episodes uint8 [N, horizon + 1, H, W, 3] (frame 0 the real first frame) in
        batches of cfg.batch_size (the last padded), the classifier's P(success) [N, horizon] of
        the imagined frames, and the seconds imagining took (after compiling, once)."""
        from robolearn.imagination import make_policy_rollout

        cfg, wm = self.cfg, self.parts.world_model
        n = len(self.first_image)
        b = min(cfg.batch_size, n)
        rng = jax.random.key(cfg.seed)
        out, seconds = [], 0.0
        bar = Progress(n, "imagined episode", enabled=self.progress)
        try:
            for i in range(0, n, b):
                image, proprio = self.first_image[i : i + b], self.first_proprio[i : i + b]
                pad = b - len(image)
                if pad:
                    image = np.concatenate([image, np.repeat(image[-1:], pad, 0)])
                    proprio = np.concatenate([proprio, np.repeat(proprio[-1:], pad, 0)])
                args = (wm.params, params, jax.random.fold_in(rng, i), image, proprio)
                if self._rollout is None:
                    fn = make_policy_rollout(
                        wm, self._apply, self.horizon, deterministic=not cfg.stochastic
                    )
                    self._rollout = fn.lower(*args).compile()
                start = time.perf_counter()
                frames = np.asarray(jax.device_get(self._rollout(*args)["image"]))
                seconds += time.perf_counter() - start
                out.append(frames[: b - pad])
                bar.update(min(i + b, n))
        finally:
            bar.close()
        imagined = np.concatenate(out)
        flat = imagined[:, 1:].reshape(-1, *imagined.shape[2:])
        probs = self.parts.reward.prob(flat, cfg.task).reshape(n, self.horizon)
        return imagined, probs, seconds

    def imagined_records(self, probs) -> list[dict]:
        """Per episode: where it started, imagined success (some frame at the threshold), at
        the end, its first step, and the probabilities."""
        hits = probs >= self.threshold
        return [
            {
                "start": self.seeds[i] if self.seeds is not None else i,
                "imagined_success": bool(hits[i].any()),
                "imagined_success_at_end": bool(hits[i, -1]),
                "imagined_first_success_step": int(np.argmax(hits[i])) + 1
                if hits[i].any()
                else None,
                "imagined_prob": [round(float(q), 5) for q in probs[i]],
            }
            for i in range(len(probs))
        ]

    def real(self, params, film: int = 0):
        """The policy closed loop in the simulator from the same resets: per-episode records
        (real_success, real_success_at_end, real_first_success_step) and the captioned frames of
        the first `film` episodes."""
        from robolearn import envs
        from robolearn.runs.eval import run_episode

        if self.seeds is None:
            raise ConfigError("episodes started from recorded frames have no simulator resets")
        cfg = self.cfg
        size = self.parts.world_model.info.image_size
        task = envs.make(cfg.task, image_size=size, max_steps=self.horizon)
        acting = _Acting(self._apply, params, cfg.stochastic)
        records, films = [], []
        bar = Progress(len(self.seeds), "real episode", enabled=self.progress)
        try:
            for i, seed in enumerate(self.seeds):
                frames = [] if i < film else None  # run_episode appends to it
                e = run_episode(task, acting, seed, frames, f"real simulator, seed {seed}")
                records.append(
                    {
                        "real_success": e["success"],
                        "real_success_at_end": e["success_at_end"],
                        "real_first_success_step": e["first_success_step"],
                    }
                )
                if frames is not None:
                    films.append(np.stack(frames))
                wins = sum(r["real_success"] for r in records)
                bar.update(i + 1, f"success {wins}/{i + 1}")
        finally:
            bar.close()
            task.close()
        return records, films


def rate(successes: list[bool]) -> dict:
    wins, n = int(sum(successes)), len(successes)
    return {
        "successes": wins,
        "episodes": n,
        "success_rate": wins / n,
        "ci95": list(wilson_interval(wins, n)),
    }


def _confusion(episodes: list[dict]) -> dict:
    """Episode-by-episode agreement of the imagined and the real outcome."""
    im = np.array([e["imagined_success"] for e in episodes])
    re = np.array([e["real_success"] for e in episodes])
    return {
        "same": int((im == re).sum()),
        "both": int((im & re).sum()),
        "neither": int((~im & ~re).sum()),
        "imagined_only": int((im & ~re).sum()),
        "real_only": int((~im & re).sum()),
    }


def _recorded_firsts(cfg: EvalImaginationConfig, size: int):
    """First frames and proprio of the first `episodes` recorded episodes of the task."""
    from robolearn.data.pipeline import EpisodeData

    data = EpisodeData(list(cfg.data), tasks=cfg.task, pipeline=cfg.input, progress=False)
    h, w = data.image_shape[:2]
    if (h, w) != (size, size):
        raise ConfigError(
            f"{data.where}: images are {h}x{w}, the world model imagines {size}x{size}"
        )
    n = min(cfg.episodes, len(data.paths))
    image = np.stack([data.read_frames("image", e, 0, 1)[0] for e in range(n)])
    proprio = np.stack([data.read_frames("proprio", e, 0, 1)[0] for e in range(n)])
    return image, proprio.astype(np.float32)


def _acting_apply(apply, cfg: EvalImaginationConfig):
    """The policy's apply with the evaluation's action distribution: (mean, log std) where the
    std is the policy's own (with --sample) and --action-noise combined."""
    noise_var = cfg.action_noise**2

    def fn(params, image, proprio):
        mean, log_std = apply(params, image, proprio)
        var = jnp.exp(2.0 * log_std) if cfg.sample else jnp.zeros_like(mean)
        return mean, 0.5 * jnp.log(jnp.maximum(var + noise_var, 1e-12))

    return fn


class _Acting:
    """The evaluated policy in the simulator: (mean, log std) of the evaluation's action
    distribution (_acting_apply), its mean action, or a sample (numpy, reseeded per episode)."""

    def __init__(self, apply, params, stochastic: bool):
        self._apply, self.params, self.stochastic = jax.jit(apply), params, stochastic
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs) -> np.ndarray:
        image = np.asarray(obs["image"])[None]
        proprio = np.asarray(obs["proprio"], np.float32)[None]
        mean, log_std = self._apply(self.params, image, proprio)
        action = np.asarray(mean[0], np.float64)
        if self.stochastic:
            action = action + np.exp(np.asarray(log_std[0])) * self._rng.normal(size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _film(path, imagined, probs, threshold, real_frames, episodes, cfg, info) -> None:
    """video.mp4: the first episodes two to a row, each its imagined frames (captioned with the
    classifier's P(success), green at reward 1) beside the real closed-loop episode when run."""
    rows = min(cfg.video_episodes, len(imagined))
    with VideoWriter(path, fps=max(5.0, info.control_hz)) as video:
        for k in range(imagined.shape[1]):
            tiles = []
            for r in range(rows):
                start = episodes[r]["start"]
                where = f"seed {start}" if not cfg.data else f"recorded episode {start}"
                if k == 0:
                    text, hit = "imagined: real first frame", False
                else:
                    p = float(probs[r, k - 1])
                    hit = p >= threshold
                    text = f"step {k}: P(success) {p:.2f}" + (", reward 1" if hit else "")
                tile = caption_frame(imagined[r, k], [f"imagined, {where}", text], highlight=hit)
                if real_frames is not None:  # horizon + 1 frames, as imagined
                    tile = np.concatenate([tile, real_frames[r][k]], axis=1)
                tiles.append(tile)
            video.append(pad_to_block(_grid(tiles)))


def _grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles of one shape two to a row (one when there is one), white where a row is short."""
    cols = min(2, len(tiles))
    tiles = tiles + [np.full_like(tiles[0], 255)] * (-len(tiles) % cols)
    rows = [np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)
