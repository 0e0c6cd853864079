"""`robolearn finetune`: a pre-trained policy keeps improving by acting in its task, rewarded only
by a reward classifier: warm-started off-policy RL (WSRL, REFERENCES.md section 4).

The pre-trained actor (a BC or refined policy) first acts alone for `warmup` steps into an empty
replay buffer, without updates; from then on every environment step is followed by one update of
the off-policy learner (robolearn.policies.sac: `utd` critic steps and one actor step). Every
reward the learner sees is the classifier's judgement of the frame after the action (binary at
its calibrated threshold, or its probability); the simulator's success flag is recorded in the
episodes and logged (`sim_success`) for people to read, never given to the learner.

With --data, offline episodes are kept in a second buffer and every batch is half theirs, half
online (RLPD-style; their rewards come from the same classifier); without, no offline data is
kept (WSRL).

The run directory is a policy checkpoint (`robolearn eval --policy OUT` loads the actor):

    OUT/robolearn-policy.json, config.yaml, stats.json   the actor's, kind "sac"
    OUT/sac.yaml                    the learner's settings
    OUT/finetune.yaml               the run's settings, resolved
    OUT/online/                     every online episode (an episode store)
    OUT/checkpoints/<env step>/     orbax SACState (actor, critics, optimizers)
    OUT/policy/                     the actor-only export of the latest save
    OUT/metrics.jsonl, tensorboard/ per-episode metrics at environment steps

Crash-safe and resumable: episodes are committed whole, checkpoints written at episode ends
every `save_every` steps. `--resume` restores the latest checkpoint, rebuilds the replay buffer
from the stored episodes and continues counting environment steps from them (the updates of the
episodes after the last checkpoint are not redone; their transitions are in the buffer).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Literal

import numpy as np

from robolearn.core.config import require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.policies.sac.config import SACConfig

STORE = "online"
SAC_CONFIG = "sac.yaml"
SHOW = ("return", "classifier_success", "sim_success", "q", "alpha")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """What `robolearn finetune` runs (saved, resolved, as finetune.yaml in the run)."""

    task: str = ""
    """task name, e.g. drawer (`robolearn tasks` lists them)"""
    policy: str | None = None
    """policy to start from: a BC or refined checkpoint or a shipped part (default:
    bundle:<task>/bc)"""
    reward: str | None = None
    """reward-classifier checkpoint or shipped part, the only reward the learner gets (default:
    bundle:<task>/reward)"""
    reward_kind: Literal["binary", "prob"] = "binary"
    """binary: 1 where the classifier's calibrated probability reaches its threshold; prob: the
    probability itself"""
    data: tuple[str, ...] = dataclasses.field(default=(), metadata=flag(metavar="DIR"))
    """offline episode stores kept in the buffer, half of every batch (RLPD-style; repeatable;
    default: none kept, WSRL)"""
    steps: int = 30_000
    """online environment steps in all, warm-up included (a resumed run continues up to this)"""
    warmup: int = 5_000
    """first environment steps acted by the pre-trained policy alone, no updates (WSRL)"""
    max_steps: int | None = None
    """episode length in control steps (default: the task's)"""
    seed: int = 0
    """seed of the learner; online episode k resets with the collection seed of (seed, k)"""
    save_every: int = 1_000
    """checkpoint interval in environment steps (at the end of the episode that crosses it; the
    last one is always saved)"""
    replay_capacity: int | None = None
    """transitions the online buffer holds, oldest dropped first (default: all of --steps)"""
    sac: SACConfig = SACConfig()
    """the learner's settings (robolearn.policies.sac.config); flags such as --utd set its fields.
    A resumed run keeps its checkpoint's (sac.yaml)"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError("give --task, e.g. drawer (`robolearn tasks` lists them)")
        require_positive(self, "steps", "save_every")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        if self.replay_capacity is not None and self.replay_capacity < self.sac.batch_size:
            raise ConfigError(
                f"replay_capacity ({self.replay_capacity}) must hold at least one batch "
                f"(sac.batch_size {self.sac.batch_size})"
            )
        if self.sac.cql_alpha > 0:
            raise ConfigError(
                "sac.cql_alpha > 0 is offline (Cal-QL) pre-training; online fine-tuning runs SAC "
                "(WSRL): leave it 0"
            )
        if self.data and self.sac.batch_size % 2:
            raise ConfigError(
                f"--data splits every batch in half: sac.batch_size must be even, got "
                f"{self.sac.batch_size}"
            )


def main(cfg: FinetuneConfig, options: RunOptions) -> None:
    """`robolearn finetune`: fine-tune, then say where the policy is and how to evaluate it."""
    out = options.run_dir("finetune", cfg.task)
    result = run_finetune(
        cfg, out, resume=options.resume, progress=options.progress, wandb=options.tracking()
    )
    print(
        f"finetune {cfg.task}: {result['env_steps']} environment steps ({result['run_steps']} "
        f"this run, {result['seconds']:.0f} s, {result['updates']} updates, "
        f"{result['updates_per_second']:.1f} updates/s); last {result['window']} episodes: "
        f"classifier success {result['classifier_success']:.0%}, simulator success "
        f"{result['sim_success']:.0%} (logged, never rewarded)"
    )
    print(f"policy checkpoint: {out}")
    print(f"evaluate it: robolearn eval --task {cfg.task} --policy {out}")


class _Reward:
    """The classifier's reward of single frames: binary at its threshold, or its probability."""

    def __init__(self, classifier, task: str, kind: str):
        self.classifier, self.task, self.kind = classifier, task, kind
        self.threshold = float(classifier.info.threshold)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        prob = self.classifier.prob(images, self.task)
        if self.kind == "prob":
            return prob.astype(np.float32)
        return (prob >= self.threshold).astype(np.float32)


def run_finetune(
    cfg: FinetuneConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    wandb: WandbSettings | None = None,
    make_task=None,
) -> dict:
    """Fine-tune (or resume) into `out`; returns {"env_steps", "run_steps", "updates",
    "seconds", "updates_per_second" (compiling excluded), "window", "classifier_success",
    "sim_success"} (the last two over the last `window` <= 20 episodes). make_task(name,
    image_size=, max_steps=) builds the task (default: robolearn.envs.make)."""
    import jax

    from robolearn import bundles, envs
    from robolearn.core import checkpoint as ckpt_io
    from robolearn.core.checkpoint import load_config
    from robolearn.data.store import create_store, iter_episodes
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.reward_models.checkpoint import load_reward_model
    from robolearn.runs.parts import part_spec

    resuming = ckpt_io.check_run_dir(out, resume, policy_ckpt.MARKER, policy_ckpt.read_info)
    specs = {
        "policy": part_spec(cfg.task, "policy", cfg.policy),
        "reward": part_spec(cfg.task, "reward", cfg.reward),
    }
    if resuming:
        _check_resume(out, cfg, specs)
    policy_path = bundles.resolve(specs["policy"])
    info = policy_ckpt.check_compatible(policy_path, cfg.task, envs.ACTION_DIM)
    actor_cfg, stats = policy_ckpt.read_config(policy_path)
    classifier = load_reward_model(bundles.resolve(specs["reward"]), cfg.task)
    sac = load_config(SACConfig, out / SAC_CONFIG) if resuming else cfg.sac
    reward = _Reward(classifier, cfg.task, cfg.reward_kind)
    offline = [ep for root in cfg.data for _, ep in iter_episodes(root)] if cfg.data else []
    _check_offline(cfg, offline, info)
    if not resuming:
        parent = dataclasses.replace(info, kind="sac", parent=specs["policy"], weights="train")
        policy_ckpt.write_info(out, parent, actor_cfg, stats)
        save_yaml(sac, out / SAC_CONFIG)
    resolved = dataclasses.replace(cfg, sac=sac, **specs)
    save_yaml(resolved, out / "finetune.yaml")
    store = create_store(out / STORE)
    stored = [ep for _, ep in iter_episodes(store)]
    make_task = make_task or envs.make
    task = make_task(cfg.task, image_size=info.image_size, max_steps=cfg.max_steps)
    try:
        return _loop(cfg, sac, out, store, stored, offline, task, reward, policy_path,
                     actor_cfg, stats, specs, progress, wandb, resolved, jax)  # fmt: skip
    finally:
        task.close()


def _check_resume(out: Path, cfg: FinetuneConfig, specs: dict[str, str]) -> None:
    """One-line errors when the run in `out` fine-tuned another task or from other parts."""
    from robolearn.core.checkpoint import load_config
    from robolearn.runs.parts import part_spec

    saved = load_config(FinetuneConfig, out / "finetune.yaml")
    if saved.task != cfg.task:
        raise ConfigError(f"{out}: fine-tunes task {saved.task!r}, not {cfg.task!r}")
    for part, spec in specs.items():
        was = part_spec(saved.task, part, getattr(saved, part))
        if was != spec:
            raise ConfigError(
                f"{out}: was fine-tuned with {part} {was!r}, not {spec!r}; resume with the same "
                "parts or fine-tune into a new --out"
            )


def _check_offline(cfg: FinetuneConfig, episodes, info) -> None:
    """One-line errors for --data whose episodes cannot join the batches."""
    if cfg.data and not episodes:
        raise ConfigError(f"--data {', '.join(cfg.data)}: holds no complete episode")
    for ep in episodes:
        size = ep.image.shape[1]
        if ep.meta.task != cfg.task:
            raise ConfigError(f"--data: an episode of task {ep.meta.task!r}, not {cfg.task!r}")
        if size != info.image_size or ep.proprio.shape[1] != info.proprio_dim:
            raise ConfigError(
                f"--data: {size}x{size} frames and {ep.proprio.shape[1]}-D proprio; the policy "
                f"takes {info.image_size}x{info.image_size} and {info.proprio_dim}-D"
            )


def _transitions(episode, reward: np.ndarray, gamma: float):
    from robolearn.policies.sac.replay import episode_transitions

    return episode_transitions(
        episode.image, episode.proprio, episode.action, reward, gamma, terminal=False
    )


def _loop(cfg, sac, out, store, stored, offline, task, reward, policy_path, actor_cfg, stats,
          specs, progress, wandb, resolved, jax):  # fmt: skip
    """The online loop: episodes until cfg.steps environment steps, updates after warm-up."""
    from robolearn.core import checkpoint as ckpt_io
    from robolearn.core.config import to_dict
    from robolearn.core.metrics import MetricsWriter
    from robolearn.core.progress import Progress
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.policies.bc.train import make_act_fn
    from robolearn.policies.sac.replay import Replay
    from robolearn.policies.sac.train import init_sac_state, make_update

    manager = ckpt_io.make_manager(out, max_to_keep=2)
    writer = None
    bar = None
    try:
        _, actor_params, _ = policy_ckpt.restore_actor(policy_path, actor_cfg)
        rng = jax.random.key(cfg.seed)
        graphs, state = init_sac_state(sac, actor_cfg, rng, actor_params)
        if manager.latest_step() is not None:
            graphs, state = ckpt_io.restore_latest(
                manager, lambda r: init_sac_state(sac, actor_cfg, r, actor_params)
            )
        env_steps = sum(ep.num_steps for ep in stored)
        half = sac.batch_size // 2 if offline else sac.batch_size
        capacity = max(cfg.replay_capacity or cfg.steps, half)
        example = _example(actor_cfg.model)
        online = Replay(capacity, half, sac.utd, example)
        buffer = online.init()
        for ep in stored:  # the learner's rewards, as recorded (never the success flags)
            buffer = online.add(buffer, _transitions(ep, ep.reward, sac.gamma))
        extra = None
        if offline:
            extra = Replay(sum(ep.num_steps for ep in offline), half, sac.utd, example)
            extra_state = extra.init()
            for ep in offline:
                extra_state = extra.add(
                    extra_state, _transitions(ep, reward(ep.image[1:]), sac.gamma)
                )
        update = make_update(sac, graphs, stats)
        act = make_act_fn(graphs[0], stats)
        writer = MetricsWriter(
            out, resume_step=env_steps or None, enabled=True, wandb=wandb, config=to_dict(resolved)
        )
        bar = Progress(cfg.steps, "step", enabled=progress, start_at=env_steps)
        start, run_start_steps, updates = time.perf_counter(), env_steps, 0
        update_seconds = 0.0
        recent: list[tuple[bool, bool]] = []
        last_saved = env_steps
        key = jax.random.fold_in(jax.random.key(cfg.seed), env_steps)
        while env_steps < cfg.steps:
            ep_rewards, sim_success, metrics, n = [], False, {}, 0
            recorder, obs, rng_np = _begin(cfg, task, store, specs, reward)
            try:
                truncated = False
                while not truncated and env_steps < cfg.steps:
                    mean, log_std = act(state.params, obs["image"][None], obs["proprio"][None])
                    noise = rng_np.normal(size=mean.shape[1])
                    action = np.clip(
                        np.asarray(mean[0]) + np.exp(np.asarray(log_std[0])) * noise, -1, 1
                    ).astype(np.float32)
                    prev = obs
                    obs, _, _, truncated, step_info = task.step(action)  # its reward unused
                    r = float(reward(obs["image"][None])[0])
                    recorder.add_step(action, r, obs, bool(step_info["success"]))
                    sim_success |= bool(step_info["success"])
                    ep_rewards.append(r)
                    buffer = online.add(buffer, _one(prev, action, r, obs))
                    env_steps += 1
                    n += 1
                    if env_steps > cfg.warmup:
                        key, k1, k2 = jax.random.split(key, 3)
                        batch = online.sample(buffer, k1)
                        if extra is not None:
                            batch = jax.tree.map(
                                lambda a, b: np.concatenate([a, b], axis=1),
                                batch,
                                extra.sample(extra_state, k2),
                            )
                        t0 = time.perf_counter()
                        state, metrics = update(state, batch)
                        metrics = jax.device_get(metrics)
                        if updates:  # the first one compiles
                            update_seconds += time.perf_counter() - t0
                        updates += 1
                    bar.update(env_steps, _status(recent, metrics))
                recorder.finish()
            except BaseException:
                recorder.abort()
                raise
            classifier_success = bool(np.any(np.asarray(ep_rewards) >= reward.threshold))
            recent = (recent + [(classifier_success, sim_success)])[-20:]
            row = {
                "return": float(np.sum(ep_rewards)),
                "classifier_success": float(classifier_success),
                "sim_success": float(sim_success),
                "episode_steps": n,
                "warmup": float(env_steps <= cfg.warmup),
                **{k: float(v) for k, v in metrics.items()},
            }
            writer.write(env_steps, row)
            if env_steps - last_saved >= cfg.save_every or env_steps >= cfg.steps:
                _save(manager, out, state, env_steps)
                last_saved = env_steps
        if manager.latest_step() is None or manager.latest_step() < env_steps:
            _save(manager, out, state, env_steps)
        seconds = time.perf_counter() - start
        window = len(recent)
        return {
            "env_steps": env_steps,
            "run_steps": env_steps - run_start_steps,
            "updates": updates,
            "seconds": seconds,
            "updates_per_second": (updates - 1) / update_seconds if update_seconds else 0.0,
            "window": window,
            "classifier_success": float(np.mean([c for c, _ in recent])) if recent else 0.0,
            "sim_success": float(np.mean([s for _, s in recent])) if recent else 0.0,
        }
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        manager.close()


def _example(model):
    """One transition of zeros with the shapes of the buffer's items."""
    from robolearn.policies.sac.train import Transitions

    size, p, a = model.image_size, model.proprio_dim, model.action_dim
    image, proprio = np.zeros((1, size, size, 3), np.uint8), np.zeros((1, p), np.float32)
    one = np.zeros(1, np.float32)
    return Transitions(image, proprio, np.zeros((1, a), np.float32), one, image, proprio, one, one)


def _one(prev, action, r, obs):
    """One transition, leading axis 1, for the online buffer (no Monte-Carlo return: online
    fine-tuning does not use CQL)."""
    from robolearn.policies.sac.train import Transitions

    return Transitions(
        image=prev["image"][None],
        proprio=np.asarray(prev["proprio"], np.float32)[None],
        action=action[None],
        reward=np.asarray([r], np.float32),
        next_image=obs["image"][None],
        next_proprio=np.asarray(obs["proprio"], np.float32)[None],
        terminal=np.zeros(1, np.float32),
        mc_return=np.zeros(1, np.float32),
    )


def _begin(cfg, task, store, specs, reward):
    """A new online episode: its recorder (meta says which classifier rewarded it), the first
    observation, the sampling noise's generator."""
    from robolearn.core.seeds import episode_seed
    from robolearn.core.spec import ACTION_NAMES
    from robolearn.data.episode import EpisodeMeta
    from robolearn.data.recorder import EpisodeRecorder

    info = task.task_info
    recorder = EpisodeRecorder(
        store,
        EpisodeMeta(
            task=info.name,
            instruction=info.instruction,
            source="policy",
            fps=info.control_hz,
            action_meaning=info.action_meaning,
            action_names=ACTION_NAMES,
            policy=f"finetune({specs['policy']})",
            extra={"reward": specs["reward"], "reward_kind": cfg.reward_kind,
                   "threshold": reward.threshold},
        ),
    )  # fmt: skip
    try:
        seed = episode_seed(cfg.seed, recorder.index, stream="collect")
        obs, step_info = task.reset(seed=seed)
        recorder.meta = dataclasses.replace(
            recorder.meta, seed=seed, layout=tuple(float(x) for x in task.layout())
        )
        recorder.add_first(obs, bool(step_info["success"]))
    except BaseException:
        recorder.abort()
        raise
    return recorder, obs, np.random.default_rng(seed)


def _status(recent, metrics) -> str:
    text = ""
    if recent:
        text = f"classifier success {np.mean([c for c, _ in recent]):.0%}"
        text += f"  sim {np.mean([s for _, s in recent]):.0%}"
    if metrics:
        text += f"  q {float(metrics['q']):.2f}  alpha {float(metrics['alpha']):.3f}"
    return text


def _save(manager, out: Path, state, env_steps: int) -> None:
    """The learner's state under its environment step, and the actor-only export."""
    import orbax.checkpoint as ocp

    from robolearn.policies.bc import checkpoint as policy_ckpt

    manager.save(int(env_steps), args=ocp.args.StandardSave(state), force=True)
    manager.wait_until_finished()
    export = out / policy_ckpt.EXPORT_DIR
    policy_ckpt.export_actor(out, export, state.params, int(env_steps))
