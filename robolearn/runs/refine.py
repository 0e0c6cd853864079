"""`robolearn refine`: PPO entirely inside the frozen world model, World4RL's second stage.

Every iteration draws `rollouts` real starts (the first frames of recorded episodes of the task or
of fresh simulator resets; or, with `start_step` S, the real context window at step S of recorded
episodes), lets the policy act for `horizon` steps in the world model, scores each
imagined frame with the reward classifier, then runs PPO epochs on the batch; rollout and
update are jitted (`lax.scan`). The run directory is a policy checkpoint (kind "ppo") that
`robolearn eval`, `collect` and `imagine` load like a BC one, plus refine.yaml (this run's
settings) and metrics.jsonl (one line per iteration). `--resume` continues after a kill.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from robolearn import bundles
from robolearn.core import checkpoint as ckpt_io
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.progress import Progress
from robolearn.policies.ppo.config import PPOConfig

# Default pull toward the BC policy on the recorded frames before --start-step. Measured on
# metaworld/lever-pull (start step 25): with 10 the early shift stayed at 1-3e-4 for 20
# iterations; with 0 it grew every iteration, to 2.8e-3 by the 7th (README).
EARLY_BC_COEF = 10.0


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """What `robolearn refine` runs.

    world_model/reward/policy: checkpoint directories or shipped parts; None = the task's bundle
        (bundle:<task>/world-model, bundle:<task>/reward, bundle:<task>/bc).
    data: episode stores whose episodes of `task` give the real first frames; empty = reset the
        task's simulator `initial_states` times (collection seeds, never evaluation ones).
    start_step: imagined episodes start at this step of the `data` episodes, from their real
        context window (frames, actions, proprio), and run to the task's end (horizon default:
        max_steps - start_step). A model's drift then only has to be survived over the end of the
        task, where success is decided; the recordings should come from the policy being refined
        (its own states at that step). 0 = from the first frames.
        With a start step the actor is also pulled toward the BC policy on the recorded frames
        before it (ppo.early_bc_coef, default EARLY_BC_COEF): imagination never visits them, and
        unanchored updates change the policy's actions there too.
    iterations: PPO iterations (a resumed run continues up to this number).
    """

    task: str
    world_model: str | None = None
    reward: str | None = None
    policy: str | None = None
    data: tuple[str, ...] = ()
    iterations: int = 20
    seed: int = 0
    initial_states: int = 128
    save_every: int = 5
    start_step: int = 0
    ppo: PPOConfig = PPOConfig()

    def __post_init__(self):
        for name in ("iterations", "initial_states", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {self.start_step}")
        if self.start_step and not self.data:
            raise ConfigError(
                "--start-step needs --data: recorded episodes of the task to start from"
            )
        if self.ppo.early_bc_coef and not self.start_step:
            raise ConfigError(
                "--early-bc-coef anchors the steps before --start-step, and there are none "
                "without it (imagination visits every step: use --bc-coef)"
            )

    def resolved_ppo(self, horizon: int) -> PPOConfig:
        """The PPO settings with this run's horizon and early anchor filled in."""
        early = self.ppo.early_bc_coef
        if early is None:
            early = EARLY_BC_COEF if self.start_step else 0.0
        return dataclasses.replace(self.ppo, horizon=horizon, early_bc_coef=early)

    def spec(self, part: str) -> str:
        """The checkpoint spec of part "world_model", "reward" or "policy"."""
        default = {"world_model": "world-model", "reward": "reward", "policy": "bc"}[part]
        return getattr(self, part) or f"{bundles.PREFIX}{self.task}/{default}"


@dataclasses.dataclass
class Parts:
    info: object  # TaskInfo
    world_model: object  # FrozenWorldModel
    reward: object  # RewardModel
    policy: object  # BCPolicy


def load_parts(cfg: RefineConfig) -> Parts:
    """Task, world model, reward model and policy, checked against each other (one-line errors)."""
    from robolearn import envs
    from robolearn.imagination import check_pair, check_reward
    from robolearn.policies.bc.checkpoint import check_compatible, load_policy
    from robolearn.reward_models.checkpoint import load_reward_model
    from robolearn.world_models.checkpoint import load_world_model

    info = envs.task_info(cfg.task)
    wm = load_world_model(bundles.resolve(cfg.spec("world_model")), cfg.task, envs.ACTION_DIM)
    policy_path = bundles.resolve(cfg.spec("policy"))
    check_pair(wm.info, check_compatible(policy_path, cfg.task, envs.ACTION_DIM), cfg.task)
    reward = load_reward_model(bundles.resolve(cfg.spec("reward")), cfg.task)
    check_reward(wm.info, reward.info)
    policy = load_policy(policy_path, cfg.task, envs.ACTION_DIM)
    return Parts(info, wm, reward, policy)


def initial_windows(
    cfg: RefineConfig, wm_info, episodes: list | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real starts as world-model context windows: frames uint8 [N, T, H, W, 3], the actions
    that led into them [N, T, A] and proprio float32 [N, T, P] (T = the model's context).
    episodes: recorded_episodes(cfg, ...) when already read (None: read the --data stores)."""
    from robolearn.world_models.train import start_window

    t, size = wm_info.context, wm_info.image_size
    if not cfg.data:
        image, proprio = initial_frames(cfg, size)
        return start_window(image, proprio, t, wm_info.action_dim)
    from robolearn.imagination import context_window

    windows = [
        context_window(ep.image, ep.action, ep.proprio, cfg.start_step, t)
        for ep in episodes or recorded_episodes(cfg, size)
    ]
    frames, actions, proprio = (np.stack(x) for x in zip(*windows, strict=True))
    return frames, actions, proprio.astype(np.float32)


def recorded_episodes(cfg: RefineConfig, size: int) -> list:
    """The --data episodes of the task longer than the start step (images checked against the
    world model's size); a one-line error if there are none."""
    from robolearn.data.store import iter_episodes

    episodes, short = [], 0
    for root in cfg.data:
        for path, ep in iter_episodes(root):
            if ep.meta.task != cfg.task:
                continue
            if ep.image.shape[1:3] != (size, size):
                raise ConfigError(
                    f"{path}: images are {ep.image.shape[1]}x{ep.image.shape[2]}, the world "
                    f"model imagines {size}x{size}"
                )
            if len(ep.image) <= cfg.start_step:
                short += 1
                continue
            episodes.append(ep)
    if not episodes:
        more = f" longer than {cfg.start_step} steps" if short else ""
        raise ConfigError(f"{', '.join(cfg.data)}: no episodes of task {cfg.task!r}{more}")
    return episodes


def early_frames(cfg: RefineConfig, parts: Parts, episodes: list | None = None, chunk: int = 256):
    """EarlyFrames: the frames at steps 0 .. start_step - 1 of the --data episodes (`episodes`
    when already read), with the BC policy's mean action on each (computed once: the anchor does
    not change); None without a start step."""
    from robolearn.policies.ppo.train import EarlyFrames

    if not cfg.start_step:
        return None
    episodes = episodes or recorded_episodes(cfg, parts.world_model.info.image_size)
    image = np.concatenate([ep.image[: cfg.start_step] for ep in episodes])
    proprio = np.concatenate([ep.proprio[: cfg.start_step] for ep in episodes]).astype(np.float32)
    policy = parts.policy
    anchor = np.concatenate(
        [
            np.asarray(policy.apply(policy.params, image[i : i + chunk], proprio[i : i + chunk])[0])
            for i in range(0, len(image), chunk)
        ]
    )
    return EarlyFrames(image, proprio, anchor.astype(np.float32))


def initial_frames(cfg: RefineConfig, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """First observations of fresh simulator resets (collection seeds): images uint8
    [N, H, W, 3], proprio float32 [N, P]."""
    from robolearn import envs
    from robolearn.core.seeds import episode_seed

    task = envs.make(cfg.task, image_size=image_size)
    try:
        obs = [
            task.reset(seed=episode_seed(cfg.seed, i, "collect"))[0]
            for i in range(cfg.initial_states)
        ]
    finally:
        task.close()
    return (
        np.stack([o["image"] for o in obs]),
        np.stack([o["proprio"] for o in obs]).astype(np.float32),
    )


def run_refine(cfg: RefineConfig, out: Path, resume: bool = False, progress=True) -> dict:
    """Refine (or resume) into `out`; returns the first and last iterations' metrics."""
    from robolearn.policies.bc import checkpoint as policy_ckpt

    resuming = ckpt_io.check_run_dir(out, resume, policy_ckpt.MARKER, policy_ckpt.read_info)
    parts = load_parts(cfg)
    if resuming:
        _check_resume(out, cfg)
    if cfg.start_step >= parts.info.max_steps:
        raise ConfigError(
            f"--start-step {cfg.start_step} is not inside {cfg.task}'s {parts.info.max_steps} steps"
        )
    horizon = cfg.ppo.horizon or parts.info.max_steps - cfg.start_step
    if cfg.start_step and cfg.start_step + horizon > parts.info.max_steps:
        raise ConfigError(
            f"--horizon {horizon} from --start-step {cfg.start_step} runs past {cfg.task}'s "
            f"{parts.info.max_steps} steps"
        )
    ppo = cfg.resolved_ppo(horizon)
    size = parts.world_model.info.image_size
    episodes = recorded_episodes(cfg, size) if cfg.data else None  # read the stores once
    pool = initial_windows(cfg, parts.world_model.info, episodes)
    early = early_frames(cfg, parts, episodes)
    if not resuming:
        _write_checkpoint_dir(out, cfg, ppo, parts)
    save_yaml(dataclasses.replace(cfg, ppo=ppo), out / "refine.yaml")
    manager = ckpt_io.make_manager(out, max_to_keep=2)
    try:
        return _loop(cfg, ppo, parts, pool, early, manager, out, progress)
    finally:
        manager.close()


def _write_checkpoint_dir(out: Path, cfg: RefineConfig, ppo: PPOConfig, parts: Parts) -> None:
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.ppo.checkpoint import write_ppo_config

    info = dataclasses.replace(parts.policy.info, kind="ppo", parent=cfg.spec("policy"))
    policy_ckpt.write_info(out, info, parts.policy.config, parts.policy.stats)
    write_ppo_config(out, ppo)


def _check_resume(out: Path, cfg: RefineConfig) -> None:
    from robolearn.core.checkpoint import load_config
    from robolearn.policies.ppo.checkpoint import migrate_ppo_section

    saved = load_config(RefineConfig, out / "refine.yaml", migrate_ppo_section)
    if saved.task != cfg.task:
        raise ConfigError(f"{out}: refines task {saved.task!r}, not {cfg.task!r}")
    for field in ("world_model", "reward", "policy"):
        if saved.spec(field) != cfg.spec(field):
            raise ConfigError(
                f"{out}: was refined with {field} {saved.spec(field)!r}, not {cfg.spec(field)!r}; "
                "resume with the same parts or refine into a new --out"
            )


def make_iteration(ppo: PPOConfig, parts: Parts, graphs):
    """iteration(state, wm_params, reward_params, anchor, pool_frames, pool_actions,
    pool_proprio, early=None) -> (state, metrics): sample starts, imagine a scored batch, update
    (early: the EarlyFrames of a run with a start step). Jitted."""
    from robolearn.imagination import make_scored_rollout
    from robolearn.policies.ppo.train import make_update

    reward = parts.reward
    rollout = make_scored_rollout(
        parts.world_model,
        parts.policy.apply,
        reward.make_logit_fn(parts.info.name),
        ppo.horizon,
        ppo.std_floor,
        reward.info.threshold,
        ppo.reward,
    )
    update = make_update(ppo, graphs, parts.policy.stats)

    @jax.jit
    def iteration(
        state, wm_params, reward_params, anchor, pool_frames, pool_actions, pool_proprio, early=None
    ):
        rng, idx_rng, roll_rng = jax.random.split(state.rng, 3)
        idx = jax.random.randint(idx_rng, (ppo.rollouts,), 0, pool_frames.shape[0])
        traj = rollout(
            wm_params,
            state.params,
            reward_params,
            roll_rng,
            pool_frames[idx],
            pool_actions[idx],
            pool_proprio[idx],
        )
        return update(state.replace(rng=rng), traj, anchor, early)

    return iteration


def _loop(
    cfg: RefineConfig, ppo: PPOConfig, parts: Parts, pool, early, manager, out, progress
) -> dict:
    from robolearn.policies.ppo.checkpoint import restore_refine_state
    from robolearn.policies.ppo.train import init_refine_state

    actor_cfg = parts.policy.config
    if manager.latest_step() is not None:
        graphs, state = restore_refine_state(manager, out, actor_cfg)
    else:
        graphs, state = init_refine_state(
            ppo, actor_cfg, jax.random.key(cfg.seed), parts.policy.params
        )
    iteration = make_iteration(ppo, parts, graphs)
    # on the device once, not transferred again every iteration
    frozen = jax.device_put(
        (parts.world_model.params, parts.reward.params, parts.policy.params, *pool, early)
    )
    step = start = int(state.step)
    bar = Progress(cfg.iterations, "iteration", enabled=progress, start_at=step)
    first = last = None
    t0 = time.perf_counter()
    with open(out / "metrics.jsonl", "a") as log:
        while step < cfg.iterations:
            tick = time.perf_counter()
            state, metrics = iteration(state, *frozen)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            step += 1
            seconds = time.perf_counter() - tick
            row = {
                "iteration": step,
                **metrics,
                "seconds": seconds,
                "imagined_steps_per_second": ppo.rollouts * ppo.horizon / max(seconds, 1e-9),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            first, last = first or row, row
            early_shift = (
                f"  early shift {metrics['early_shift']:.4f}" if "early_shift" in metrics else ""
            )
            bar.update(
                step,
                f"imagined success {metrics['imagined_success']:.0%}  "
                f"return {metrics['imagined_return']:.2f}  kl {metrics['approx_kl']:.4f}  "
                f"clip {metrics['clip_fraction']:.2f}{early_shift}",
            )
            if step % cfg.save_every == 0 or step == cfg.iterations:
                ckpt_io.save_state(manager, state)
    bar.close()
    return {
        "iterations": step,
        "trained_iterations": step - start,
        "seconds": time.perf_counter() - t0,
        "first": first,
        "last": last,
    }
