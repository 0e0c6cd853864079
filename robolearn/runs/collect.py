"""`robolearn collect`: run a policy in a task and record its episodes into an episode store."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions
from robolearn.core.seeds import episode_seed
from robolearn.core.spec import ACTION_NAMES
from robolearn.data.episode import EpisodeMeta
from robolearn.data.recorder import EpisodeRecorder
from robolearn.data.store import create_store
from robolearn.runs.eval import SCRIPTED, check_run_config, make_policy


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What `robolearn collect` records (saved under the store's logs/).

    Episode k of the store (its file index) resets with episode_seed(seed, k, "collect"), so reruns
    that append to a store continue with fresh initial states instead of repeating earlier ones,
    and no collected initial state is ever one that `robolearn eval` tests on.
    """

    task: str = ""
    """task name (see `robolearn tasks`), e.g. drawer"""
    policy: str = "expert"
    """expert | noisy | random, a policy checkpoint or a shipped part (e.g. bundle:drawer/bc)"""
    episodes: int = 10
    """number of episodes to add"""
    seed: int = 0
    """base seed; episode k of the store resets with a seed derived from (seed, k), so appending
    never repeats an initial state"""
    image_size: int = 64
    """camera image side in pixels, 16..256"""
    max_steps: int | None = None
    """episode length in control steps (default: the task's)"""
    noise_std: float = 0.3
    """action noise std of the noisy expert, in normalized units"""
    visual_randomization: bool = False
    """randomize light, colours and camera pose per episode"""
    camera_lag_max_s: float = 0.0
    """each step's image taken a random 0..this many s before the step ends (WidowX tasks): trains
    policies robust to a free-running robot camera (docs/robot-pc.md)"""
    step_dwell_max_s: float = 0.0
    """each step held a random 0..this many s longer before the next observation (WidowX tasks):
    trains policies robust to a robot bridge's uneven step timing (docs/robot-pc.md)"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError("collect needs --task TASK (see `robolearn tasks`)")
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")


def main(cfg: CollectConfig, options: RunOptions) -> None:
    """`robolearn collect`: record into the store --out, print what was added."""
    check_run_config(cfg)
    result = run_collect(cfg, Path(options.out), progress=options.progress)
    print(
        f"{cfg.task} / {cfg.policy}: wrote {result['episodes']} episodes "
        f"({result['steps']} steps, {result['successes']} successful, "
        f"{result['steps_per_second']:.0f} steps/s) to {options.out}"
    )


def source_of(policy: str) -> str:
    """The episode source recorded for a --policy value."""
    return policy if policy in SCRIPTED else "policy"


def run_collect(cfg: CollectConfig, out: Path, progress: bool = True) -> dict:
    """Record `cfg.episodes` new episodes into the store at `out` (created if needed)."""
    from robolearn import envs

    create_store(out)
    task = envs.make(
        cfg.task,
        image_size=cfg.image_size,
        max_steps=cfg.max_steps,
        visual_randomization=cfg.visual_randomization,
        camera_lag_max_s=cfg.camera_lag_max_s,
        step_dwell_max_s=cfg.step_dwell_max_s,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / "logs").mkdir(exist_ok=True)
    save_yaml(cfg, out / "logs" / f"collect-{stamp}.yaml")
    policy = make_policy(task, cfg)
    wins = steps = 0
    paths: list[Path] = []
    start = time.perf_counter()
    bar = Progress(cfg.episodes, "episode", enabled=progress)
    try:
        for i in range(cfg.episodes):
            path, success, n = record_episode(task, policy, out, cfg)
            paths.append(path)
            wins += success
            steps += n
            bar.update(i + 1, f"success {wins}/{i + 1}  {steps} steps")
    finally:
        bar.close()
        task.close()
    seconds = time.perf_counter() - start
    return {
        "episodes": len(paths),
        "successes": wins,
        "steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / max(seconds, 1e-9),
        "first": str(paths[0]),
        "last": str(paths[-1]),
    }


def record_episode(task, policy, out: Path, cfg: CollectConfig) -> tuple[Path, bool, int]:
    """One episode into the store; returns (path, succeeded at any step, steps)."""
    info = task.task_info
    recorder = EpisodeRecorder(
        out,
        EpisodeMeta(
            task=info.name,
            instruction=info.instruction,
            source=source_of(cfg.policy),
            fps=info.control_hz,
            action_meaning=info.action_meaning,
            action_names=ACTION_NAMES,
            policy=cfg.policy if cfg.policy != "noisy" else f"noisy({cfg.noise_std})",
            # the robot-timing augmentation the episode was collected with, when any
            extra={
                name: value
                for name in ("camera_lag_max_s", "step_dwell_max_s")
                if (value := getattr(cfg, name))
            },
        ),
    )
    try:
        seed = episode_seed(cfg.seed, recorder.index, stream="collect")
        obs, step_info = task.reset(seed=seed)
        recorder.meta = dataclasses.replace(
            recorder.meta, seed=seed, layout=tuple(float(x) for x in task.layout())
        )
        policy.reset(seed)
        recorder.add_first(obs, step_info["success"])
        success, truncated, steps = step_info["success"], False, 0
        while not truncated:
            action = policy(obs)
            obs, reward, _, truncated, step_info = task.step(action)
            recorder.add_step(action, reward, obs, step_info["success"])
            success |= step_info["success"]
            steps += 1
    except BaseException:
        recorder.abort()
        raise
    return recorder.finish(), bool(success), steps
