"""`robolearn eval`: run a policy in a task's simulator; success rate with an interval; a video."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from robolearn import bundles
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions
from robolearn.core.seeds import episode_seed
from robolearn.core.stats import wilson_interval
from robolearn.core.video import VideoWriter, caption_frame

SCRIPTED = ("expert", "noisy", "random")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What `robolearn eval` runs (saved as config.yaml in the run)."""

    task: str = ""
    """task name (see `robolearn tasks`), e.g. drawer"""
    policy: str = "expert"
    """expert | noisy | random, a policy checkpoint or a shipped part (e.g. bundle:drawer/bc)"""
    episodes: int = 50
    """number of episodes"""
    seed: int = 0
    """base seed: episode i resets with a seed derived from (seed, i); evaluation seeds never
    coincide with collection seeds"""
    image_size: int = 64
    """camera image side in pixels, 16..256"""
    max_steps: int | None = None
    """episode length in control steps (default: the task's)"""
    video_episodes: int = 3
    """how many of the first episodes to film into video.mp4 (0: none)"""
    noise_std: float = 0.3
    """action noise std of the noisy expert, in normalized units"""
    bridge: bool = False
    """act through the robot bridge on the simulated arm, as the policy runs on the WidowX
    (robolearn.hardware.sim_arm.BridgeTask: setpoint ramp, shield and passivity filter at
    100 Hz, in simulated time); WidowX tasks, policy checkpoints and random actions (the
    scripted experts steer the simulator's own end-effector target). A hold (the shield,
    a NaN action) ends the episode; each episode's record says why (`held`) and the results
    count them"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError(
                "eval needs --task TASK (see `robolearn tasks`; `robolearn eval world-model` "
                "evaluates a world model)"
            )
        check_policy_name(self.policy)
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.video_episodes < 0:
            raise ConfigError(f"video_episodes must be >= 0, got {self.video_episodes}")


def check_run_config(cfg) -> None:
    """Task, image size, episode length and policy of an eval/collect config, checked before any
    output directory is created (each failure is a one-line error)."""
    from robolearn import envs

    info = envs.task_info(cfg.task)
    bridge = getattr(cfg, "bridge", False)  # (configs without --bridge share this check)
    if bridge and info.suite != "widowx":
        raise ConfigError(
            f"--bridge drives the simulated WidowX; {cfg.task!r} is not a WidowX task"
        )
    if bridge and cfg.policy in ("expert", "noisy"):
        # its steps are relative to the simulator's own end-effector target, which the bridge
        # (driving the joints) never moves: it would steer from the reset's pose all episode
        raise ConfigError(
            f"--bridge evaluates a policy checkpoint or random actions; the scripted "
            f"{cfg.policy!r} steers the simulator's own end-effector target, which the bridge "
            "does not use"
        )
    envs.TaskConfig(image_size=cfg.image_size, max_steps=cfg.max_steps)
    check_policy(cfg, cfg.task, envs.ACTION_DIM)


def main(cfg: EvalConfig, options: RunOptions) -> None:
    """`robolearn eval`: evaluate, print the success rate with its interval and the outputs."""
    check_run_config(cfg)
    out = options.run_dir("eval", f"{cfg.task}-{cfg.policy.rstrip('/').split('/')[-1]}")
    result = run_eval(cfg, out, progress=options.progress)
    low, high = result["ci95"]
    print(
        f"{cfg.task} / {cfg.policy}: success {result['successes']}/{result['episodes']} "
        f"= {result['success_rate']:.0%} (95% CI {low:.0%}-{high:.0%}), "
        f"{result['steps_per_second']:.1f} env steps/s"
        + (f", through the bridge ({result['held']} held)" if cfg.bridge else "")
    )
    print(f"results: {out / 'results.json'}")
    if "video" in result:
        print(f"video:   {result['video']}")


def check_policy_name(policy: str) -> None:
    """A scripted name, a shipped bundle part or an existing path; anything else is a one-line
    ConfigError (BundleError for a bundle part that is not shipped)."""
    if policy in SCRIPTED:
        return
    if not Path(bundles.resolve(policy)).exists():
        raise ConfigError(
            f"unknown policy {policy!r}: use one of {', '.join(SCRIPTED)}, a checkpoint "
            "directory from `robolearn train bc`, or a shipped part such as bundle:drawer/bc"
        )


def check_policy(cfg, task_name: str, action_dim: int = 7) -> None:
    """Refuse (one line) a checkpoint that is not one or was trained for another task/size."""
    if cfg.policy in SCRIPTED:
        return
    from robolearn.policies.bc.checkpoint import CheckpointError, check_compatible

    info = check_compatible(bundles.resolve(cfg.policy), task_name, action_dim)
    if info.image_size != cfg.image_size:
        raise CheckpointError(
            f"{cfg.policy}: policy sees {info.image_size}x{info.image_size} images; "
            f"evaluate with --image-size {info.image_size}"
        )


def make_policy(task, cfg: EvalConfig):
    """The policy named by `cfg.policy` for `task`: scripted, or a checkpoint's mean action."""
    if cfg.policy not in SCRIPTED:
        from robolearn.envs.base import ACTION_DIM
        from robolearn.policies.bc.checkpoint import load_policy

        check_policy(cfg, task.task_info.name, ACTION_DIM)
        path = bundles.resolve(cfg.policy)
        return load_policy(path, task.task_info.name, ACTION_DIM, seed=cfg.seed)
    from robolearn.envs.experts import ScriptedPolicy

    return ScriptedPolicy(task, cfg.policy, noise_std=cfg.noise_std, seed=cfg.seed)


def run_episode(task, policy, seed: int, video: VideoWriter | None = None, label: str = "") -> dict:
    """One episode: success (at any step), success at the end, first success step, return
    (and, through the bridge, why it held: `held`, "" when it did not)."""
    obs, info = task.reset(seed=seed)
    policy.reset(seed)
    first_success, ret, steps = None, 0.0, 0
    if video is not None:
        video.append(caption_frame(obs["image"], [label, "step 0"]))
    truncated = False
    while not truncated:
        obs, reward, _, truncated, info = task.step(policy(obs))
        steps += 1
        ret += reward
        if info["success"] and first_success is None:
            first_success = steps
        if video is not None:
            status = f"step {steps}" + (": SUCCESS" if info["success"] else "")
            video.append(caption_frame(obs["image"], [label, status], highlight=info["success"]))
    return {
        "seed": seed,
        "success": first_success is not None,
        "success_at_end": bool(info["success"]),
        "first_success_step": first_success,
        "return": ret,
        "steps": steps,
        **({"held": str(info["held"])} if "held" in info else {}),
    }


def run_eval(cfg: EvalConfig, out_dir: Path, progress: bool = True) -> dict:
    """Evaluate; writes results.json, config.yaml and video.mp4 (first `video_episodes`) to out_dir.

    Success of an episode: the task reported success at any step of it.
    """
    from robolearn import envs

    if cfg.bridge:
        from robolearn.hardware.sim_arm import BridgeTask

        task = BridgeTask(cfg.task, image_size=cfg.image_size, max_steps=cfg.max_steps)
    else:
        task = envs.make(cfg.task, image_size=cfg.image_size, max_steps=cfg.max_steps)
    policy = make_policy(task, cfg)
    save_yaml(cfg, out_dir / "config.yaml")
    video = None
    if cfg.video_episodes:
        video = VideoWriter(out_dir / "video.mp4", fps=max(5.0, task.task_info.control_hz))
    episodes, start = [], time.perf_counter()
    bar = Progress(cfg.episodes, "episode", enabled=progress)
    try:
        for i in range(cfg.episodes):
            filming = video if i < cfg.video_episodes else None
            label = f"{cfg.task}, episode {i}: {cfg.policy}"
            episodes.append(run_episode(task, policy, episode_seed(cfg.seed, i), filming, label))
            bar.update(i + 1, f"success {sum(e['success'] for e in episodes)}/{i + 1}")
    finally:
        bar.close()
        task.close()
        if video is not None:
            video.close()
    result = summarize(cfg, episodes, time.perf_counter() - start)
    if video is not None:
        result["video"] = str(out_dir / "video.mp4")
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    return result


def summarize(cfg: EvalConfig, episodes: list[dict], seconds: float) -> dict:
    """Success rate with its 95 % Wilson interval, and the per-episode records."""
    wins = sum(e["success"] for e in episodes)
    low, high = wilson_interval(wins, len(episodes))
    steps = sum(e["steps"] for e in episodes)
    return {
        "task": cfg.task,
        "policy": cfg.policy,
        "seed": cfg.seed,
        "episodes": len(episodes),
        "successes": wins,
        "success_rate": wins / len(episodes),
        "ci95": [low, high],
        "env_steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / max(seconds, 1e-9),
        **({"held": sum(bool(e["held"]) for e in episodes)} if "held" in episodes[0] else {}),
        "per_episode": episodes,
    }
