"""`robolearn refine`: PPO entirely inside the frozen world model, World4RL's second stage.

Every iteration draws `rollouts` real starts (the first frames of recorded episodes of the task or
of fresh simulator resets; or, with `start_step` S, the real context window at step S of recorded
episodes), lets the policy act for `horizon` steps in the world model, scores each
imagined frame with the reward classifier, then runs PPO epochs on the batch; rollout and
update are one jitted step (`lax.scan`) that the one training loop (robolearn.core.loop) runs,
one loop step per iteration (it takes no batch: it imagines its own).

The run directory is a policy checkpoint (kind "ppo") that `robolearn eval`, `collect` and
`imagine` load like a BC one, holding the training state for `--resume` (actor, critic and both
optimizers: robolearn.policies.ppo.checkpoint), plus policy/ (the actor-only export the robot
loads, rewritten at every save), refine.yaml (this run's settings, resolved: the parts, horizon
and early anchor used), metrics.jsonl (one row per iteration, keyed "step") and tensorboard/,
media/curves-<iteration>.png at the end (imagined return and success, the PPO diagnostics) and,
with --wandb, wandb/.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np

from robolearn.core.config import require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.data.pipeline import PipelineConfig
from robolearn.policies.ppo.config import PPOConfig
from robolearn.runs.parts import Parts, SamplerChoice, part_spec, sampler_used

# Default pull toward the BC policy on the recorded frames before --start-step. Measured on
# metaworld/lever-pull (start step 25): with 10 the early shift stayed at 1-3e-4 for 20
# iterations; with 0 it grew every iteration, to 2.8e-3 by the 7th (README).
EARLY_BC_COEF = 10.0
PARTS = ("world_model", "reward", "policy")
SHOW = ("imagined_success", "imagined_return", "approx_kl", "clip_fraction", "early_shift")


@dataclasses.dataclass(frozen=True)
class RefineConfig(SamplerChoice):
    """What `robolearn refine` runs (saved, resolved, as refine.yaml in the run: the parts and
    the sampler the world model imagined with)."""

    task: str = ""
    """task name, e.g. drawer (`robolearn tasks` lists them)"""
    world_model: str | None = None
    """world-model checkpoint or shipped part (default: bundle:<task>/world-model)"""
    reward: str | None = None
    """reward-classifier checkpoint or shipped part (default: bundle:<task>/reward)"""
    policy: str | None = None
    """policy to refine (default: bundle:<task>/bc)"""
    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """episode store whose first frames start imagined episodes (repeatable; default: fresh
    simulator resets)"""
    iterations: int = 20
    """PPO iterations (a resumed run continues up to this number)"""
    seed: int = 0
    """seed"""
    initial_states: int = 128
    """simulator resets in the first-frame pool when no --data"""
    save_every: int = 5
    """checkpoint interval in iterations (the last one is always saved)"""
    start_step: int = 0
    """start imagined episodes at this step of the --data episodes (their real context window)
    and imagine to the task's end: drift only has to be survived where success is decided (0:
    the first frames). The recordings should come from the policy being refined (its own states
    at that step). The actor is then also pulled toward the BC policy on the recorded frames
    before that step (--early-bc-coef, default 10): imagination never visits them, and unanchored
    updates change the policy's actions there too"""
    eval_episodes: int = 0
    """at every save, the policy's mean action from this many evaluation resets (the scenes of
    `robolearn eval --seed`), imagined to the end of refinement's episodes and judged by the
    reward classifier, and run in the simulator: eval/imagined_success, eval/real_success and
    eval/gap (imagined - real) per checkpoint, in metrics.jsonl and the curves (0: none)"""
    ppo: PPOConfig = PPOConfig()
    """the PPO settings (configs/ppo/default.yaml); flags such as --actor-lr set its fields. A
    resumed run keeps its checkpoint's (ppo.yaml)"""
    input: PipelineConfig = PipelineConfig()
    """how the --data episodes are read (only their frames up to the start step are used):
    memory budget, RAM or streaming (robolearn.data.pipeline; e.g. input.mode=stream)"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError("give --task, e.g. drawer (`robolearn tasks` lists them)")
        require_positive(self, "iterations", "initial_states", "save_every")
        if self.eval_episodes < 0:
            raise ConfigError(f"eval_episodes must be >= 0, got {self.eval_episodes}")
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


def main(cfg: RefineConfig, options: RunOptions) -> None:
    """`robolearn refine`: refine, then say where the policy is and how to evaluate it."""
    from robolearn.core.loop import preempted_line

    out = options.run_dir("refine", cfg.task)
    result = run_refine(
        cfg, out, resume=options.resume, progress=options.progress, wandb=options.tracking()
    )
    first, last = result["first"], result["last"]
    if first is not None:
        print(
            f"refine {cfg.task}: iteration {result['iterations']} "
            f"({result['trained_iterations']} this run, {result['seconds']:.0f} s); imagined "
            f"success {first['imagined_success']:.0%} (iteration {first['step']}) -> "
            f"{last['imagined_success']:.0%}, {result['imagined_steps_per_second']:.0f} "
            "imagined steps/s"
        )
    if result["checkpoint_evals"]:
        gaps = ", ".join(
            f"{e['iteration']}: {e['imagined_success']:.0%} / {e['real_success']:.0%}"
            for e in result["checkpoint_evals"]
        )
        print(f"imagined / real success per checkpoint ({cfg.eval_episodes} scenes): {gaps}")
    print(preempted_line(result) + f"policy checkpoint: {out}")
    print(f"evaluate it: robolearn eval --task {cfg.task} --policy {out}")


def run_refine(
    cfg: RefineConfig,
    out: Path,
    resume: bool = False,
    progress=True,
    wandb: WandbSettings | None = None,
) -> dict:
    """Refine (or resume) into `out`; returns {"iterations", "trained_iterations", "seconds",
    "imagined_steps_per_second", "first" (this run's first metrics row, None when it ran no
    iteration), "last" (the last iteration's metrics), "preempted"}. wandb: log to a W&B run
    too."""
    from robolearn.core import checkpoint as ckpt_io
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.ppo.checkpoint import read_ppo_config
    from robolearn.runs.parts import load_parts

    resuming = ckpt_io.check_run_dir(out, resume, policy_ckpt.MARKER, policy_ckpt.read_info)
    parts = load_parts(cfg.task, cfg.world_model, cfg.policy, cfg.reward, cfg.sampler_override())
    if resuming:
        _check_resume(out, cfg, parts)
    max_steps = parts.info.max_steps
    if cfg.start_step >= max_steps:
        raise ConfigError(
            f"--start-step {cfg.start_step} is not inside {cfg.task}'s {max_steps} steps"
        )
    horizon = cfg.ppo.horizon or max_steps - cfg.start_step
    if cfg.start_step and cfg.start_step + horizon > max_steps:
        raise ConfigError(
            f"--horizon {horizon} from --start-step {cfg.start_step} runs past {cfg.task}'s "
            f"{max_steps} steps"
        )
    # a resumed run's state (critic shape, optimizer chains) and updates follow its ppo.yaml
    ppo = read_ppo_config(out) if resuming else cfg.resolved_ppo(horizon)
    size = parts.world_model.info.image_size
    episodes = recorded_episodes(cfg, size, progress) if cfg.data else None  # read once
    pool = initial_windows(cfg, parts.world_model.info, episodes)
    early = early_frames(cfg, parts, episodes)
    if not resuming:
        _write_checkpoint_dir(out, ppo, parts)
    resolved = dataclasses.replace(
        cfg, ppo=ppo, **{p: parts.specs[p] for p in PARTS},
        **sampler_used(parts.world_model.sampler),
    )  # fmt: skip
    save_yaml(resolved, out / "refine.yaml")
    evals: list[dict] = []
    result = _train(cfg, ppo, parts, pool, early, out, progress, wandb, resolved, evals)
    steps_per_second = result.steps_per_second or result.trained_steps / max(result.seconds, 1e-9)
    return {
        "iterations": result.step,
        "trained_iterations": result.trained_steps,
        "seconds": result.seconds,
        "imagined_steps_per_second": steps_per_second * ppo.rollouts * ppo.horizon,
        "first": result.first,
        "last": result.metrics,
        "preempted": result.preempted,
        "checkpoint_evals": evals,
    }


def _write_checkpoint_dir(out: Path, ppo: PPOConfig, parts: Parts) -> None:
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.ppo.checkpoint import write_ppo_config

    info = dataclasses.replace(parts.policy.info, kind="ppo", parent=parts.specs["policy"])
    policy_ckpt.write_info(out, info, parts.policy.config, parts.policy.stats)
    write_ppo_config(out, ppo)


def _check_resume(out: Path, cfg: RefineConfig, parts: Parts) -> None:
    """One-line errors when the run in `out` refined another task, with other parts or imagined
    with another sampler."""
    from robolearn.core.checkpoint import load_config
    from robolearn.policies.ppo.checkpoint import migrate_ppo_section

    saved = load_config(RefineConfig, out / "refine.yaml", migrate_ppo_section)
    if saved.task != cfg.task:
        raise ConfigError(f"{out}: refines task {saved.task!r}, not {cfg.task!r}")
    for part in PARTS:
        was = part_spec(saved.task, part, getattr(saved, part))
        if was != parts.specs[part]:
            raise ConfigError(
                f"{out}: was refined with {part} {was!r}, not {parts.specs[part]!r}; "
                "resume with the same parts or refine into a new --out"
            )
    now = sampler_used(parts.world_model.sampler)
    for field, value in now.items():
        was = getattr(saved, field)
        if was is not None and was != value:  # (runs before the sampler flags recorded none)
            flag = "--" + field.replace("_", "-").replace("sampler-method", "sampler")
            raise ConfigError(
                f"{out}: imagined with {flag} {was}, not {value}; resume with the same sampler "
                "or refine into a new --out"
            )


def _train(
    cfg: RefineConfig,
    ppo: PPOConfig,
    parts: Parts,
    pool,
    early,
    out: Path,
    progress,
    wandb: WandbSettings | None,
    resolved: RefineConfig,
    evals: list[dict],
):
    """The iterations in the one training loop, from the latest checkpoint in `out` (or the BC
    policy's weights and a fresh critic); every save writes the training state and OUT/policy/;
    the curves at the end (robolearn.runs.report). Returns the loop's LoopResult."""
    import jax

    from robolearn.core import checkpoint as ckpt_io
    from robolearn.core.config import to_dict
    from robolearn.core.loop import Schedule, train
    from robolearn.core.metrics import MetricsWriter
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.ppo.checkpoint import restore_refine_state
    from robolearn.policies.ppo.train import init_refine_state
    from robolearn.runs.report import REFINE_CURVES, metric_curves

    manager = ckpt_io.make_manager(out, max_to_keep=2)
    writer = None
    try:
        actor_cfg = parts.policy.config
        if manager.latest_step() is not None:
            graphs, state = restore_refine_state(manager, out, actor_cfg)
        else:
            rng = jax.random.key(cfg.seed)
            graphs, state = init_refine_state(ppo, actor_cfg, rng, parts.policy.params)
        start = int(jax.device_get(state.step))
        writer = MetricsWriter(
            out,
            resume_step=start or None,
            enabled=jax.process_index() == 0,
            wandb=wandb,
            config=to_dict(resolved),
        )
        iteration = make_iteration(ppo, parts, graphs, cfg.iterations)
        # on the device once, not transferred again every iteration
        frozen = jax.device_put(
            (parts.world_model.params, parts.reward.params, parts.policy.params, *pool, early)
        )

        def save(state) -> None:
            ckpt_io.save_state(manager, state)
            export = out / policy_ckpt.EXPORT_DIR
            policy_ckpt.export_actor(out, export, state.params, int(state.step))

        result = train(
            state,
            lambda state, _: iteration(state, *frozen),
            None,
            Schedule(
                cfg.iterations,
                log_every=1,
                save_every=cfg.save_every,
                eval_every=cfg.save_every if cfg.eval_episodes else 0,
            ),
            save=save,
            evaluate=checkpoint_probe(cfg, ppo, parts, evals) if cfg.eval_episodes else None,
            show=SHOW,
            unit="iteration",
            progress=progress,
            rates={"imagined_steps_per_second": ppo.rollouts * ppo.horizon},
            writer=writer,
        )
        metric_curves(writer, result.step, REFINE_CURVES, xlabel="iteration")
        return result
    finally:
        if writer is not None:
            writer.close()
        manager.close()


def checkpoint_probe(cfg: RefineConfig, ppo: PPOConfig, parts: Parts, evals: list[dict]):
    """evaluate(state) -> metrics for the loop's eval schedule: the actor's imagined and real
    success from cfg.eval_episodes evaluation resets (robolearn.runs.eval_imagination), each
    result also appended to `evals`."""
    import jax

    from robolearn.runs.eval_imagination import EvalImaginationConfig, SuccessProbe

    probe_cfg = EvalImaginationConfig(
        task=cfg.task,
        episodes=cfg.eval_episodes,
        seed=cfg.seed,
        horizon=cfg.start_step + ppo.horizon,
        video_episodes=0,
    )
    probe = SuccessProbe(probe_cfg, parts)

    def evaluate(state) -> dict:
        params = jax.device_get(state.params)
        _, probs, _ = probe.imagine(params)
        imagined = np.array([e["imagined_success"] for e in probe.imagined_records(probs)])
        real = np.array([e["real_success"] for e in probe.real(params)[0]])
        metrics = {
            "imagined_success": float(imagined.mean()),
            "real_success": float(real.mean()),
            "gap": float(imagined.mean() - real.mean()),
            "same_outcome": float((imagined == real).mean()),
        }
        evals.append({"iteration": int(jax.device_get(state.step)), **metrics})
        return metrics

    return evaluate


def make_iteration(ppo: PPOConfig, parts: Parts, graphs, iterations: int | None = None):
    """iteration(state, wm_params, reward_params, anchor, pool_frames, pool_actions,
    pool_proprio, early=None) -> (state, metrics): sample starts, imagine a scored batch, update
    (early: the EarlyFrames of a run with a start step), at the exploration floor of iteration
    state.step in a run of `iterations` (ppo.floor_at). Jitted."""
    import jax

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
    update = make_update(ppo, graphs, parts.policy.stats, iterations)

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
            ppo.floor_at(state.step, iterations),
        )
        return update(state.replace(rng=rng), traj, anchor, early)

    return iteration


def initial_windows(
    cfg: RefineConfig, wm_info, episodes: list | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real starts as world-model context windows: frames uint8 [N, T, H, W, 3], the actions
    that led into them [N, T, A] and proprio float32 [N, T, P] (T = the model's context).
    episodes: recorded_episodes(cfg, ...) when already read (None: read the --data stores)."""
    from robolearn.imagination import context_window, start_window

    t, size = wm_info.context, wm_info.image_size
    if not cfg.data:
        image, proprio = initial_frames(cfg, size)
        return start_window(image, proprio, t, wm_info.action_dim)
    episodes = episodes or recorded_episodes(cfg, size)
    if not cfg.start_step:  # first frames: padded as at a reset (no action led into them)
        image = np.stack([ep.image[0] for ep in episodes])
        proprio = np.stack([ep.proprio[0] for ep in episodes]).astype(np.float32)
        return start_window(image, proprio, t, wm_info.action_dim)
    windows = [
        context_window(ep.image, ep.action, ep.proprio, cfg.start_step, t) for ep in episodes
    ]
    frames, actions, proprio = (np.stack(x) for x in zip(*windows, strict=True))
    return frames, actions, proprio.astype(np.float32)


class RecordedStart(NamedTuple):
    """The beginning of a recorded episode, up to the start step S: image uint8 [S+1, H, W, 3],
    action float32 [S, A] (the actions between those frames), proprio float32 [S+1, P]."""

    image: np.ndarray
    action: np.ndarray
    proprio: np.ndarray


def recorded_episodes(cfg: RefineConfig, size: int, progress: bool = True) -> list[RecordedStart]:
    """The beginnings (frames 0 .. start_step) of the --data episodes of the task longer than
    the start step, read through the input pipeline (cfg.input; streamed, only those frames
    are read), images checked against the world model's size; a one-line error if there are
    none."""
    from robolearn.data.pipeline import EpisodeData

    data = EpisodeData(list(cfg.data), tasks=cfg.task, pipeline=cfg.input, progress=progress)
    h, w = data.image_shape[:2]
    if (h, w) != (size, size):
        raise ConfigError(
            f"{data.where}: images are {h}x{w}, the world model imagines {size}x{size}"
        )
    s = cfg.start_step
    episodes = [  # copies: the pipeline's arrays are not kept alive by views
        RecordedStart(
            data.read_frames("image", e, 0, s + 1).copy(),
            data.read_steps("action", e, 0, s).copy(),
            data.read_frames("proprio", e, 0, s + 1).copy(),
        )
        for e in range(len(data.paths))
        if data.num_steps[e] + 1 > s
    ]
    if not episodes:
        raise ConfigError(
            f"{', '.join(cfg.data)}: no episodes of task {cfg.task!r} longer than {s} steps"
        )
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
    from robolearn.core.seeds import episode_seed
    from robolearn.envs import reset_observations

    seeds = [episode_seed(cfg.seed, i, "collect") for i in range(cfg.initial_states)]
    return reset_observations(cfg.task, image_size, seeds)
