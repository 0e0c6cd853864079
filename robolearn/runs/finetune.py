"""`robolearn finetune`: a pre-trained policy keeps improving by acting in its task, rewarded only
by a reward classifier: warm-started off-policy RL (WSRL, REFERENCES.md section 4).

The pre-trained actor (a BC or refined policy) first acts alone for `warmup` steps into an empty
replay buffer, without updates; from then on every environment step is followed by one update of
the off-policy learner (robolearn.policies.sac: `utd` critic steps and one actor step; the first
`critic_warmup` updates fit the critics alone). Over ROS 2 (--ros2) the updates run in a thread
beside acting instead, one allowed per step, and the arm never waits for them. Every
reward the learner sees is the classifier's judgement of the frame after the action (binary at
its calibrated threshold, or its probability); the simulator's success flag is recorded in the
episodes and logged (`sim_success`) for people to read, never given to the learner.

--learner ppo runs refinement's on-policy PPO on whole real episodes instead (one update per batch
of them; robolearn/runs/finetune_ppo.py), and --learner filtered-bc success-filtered BC (the actor
imitates its own episodes the classifier rewarded; robolearn/runs/finetune_fbc.py), through the
same loop, store and checkpoints.

Offline episodes (--data, rewarded by the same classifier) serve two ways: --offline-steps
pre-trains the learner on them with Cal-QL before it acts (CQL with the policy actions' Q clamped
below by the Monte-Carlo return; RoboFuME, WSRL), and --offline-ratio keeps them in every online
batch (RLPD: 0.5). WSRL keeps none online (ratio 0, the default).

The run directory is a policy checkpoint (`robolearn eval --policy OUT` loads the actor):

    OUT/robolearn-policy.json, config.yaml, stats.json   the actor's, kind "sac"
    OUT/sac.yaml                    the learner's settings
    OUT/finetune.yaml               the run's settings, resolved
    OUT/online/                     every online episode (an episode store)
    OUT/checkpoints/<env step>/     orbax SACState (actor, critics, optimizers)
    OUT/policy/                     the actor-only export of the latest save
    OUT/best/                       with --eval-episodes: the export of the best-evaluated save
                                    (best.json: its step, score and scenes)
    OUT/metrics.jsonl, tensorboard/ per-episode metrics at environment steps (and eval/ rows at
                                    every save with --eval-episodes)

Crash-safe and resumable: episodes are committed whole, checkpoints written at episode ends
every `save_every` steps. `--resume` restores the latest checkpoint, rebuilds the replay buffer
from the stored episodes and continues counting environment steps from them (the updates of the
episodes after the last checkpoint are not redone; their transitions are in the buffer).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import re
import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np

from robolearn.core.config import require_positive, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.rundir import RunOptions
from robolearn.core.tracking import WandbSettings
from robolearn.policies.bc.config import FilteredBCConfig
from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.sac.config import SACConfig
from robolearn.runs.online import BEST_DIR, OnlineLearner, on_device

STORE = "online"
SAC_CONFIG = "sac.yaml"
BACKWARD = "backward"  # the backward learner's policy checkpoint, inside the run


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
    """offline episode stores (repeatable), rewarded by the same classifier, for
    --offline-steps and --offline-ratio (sac), or imitated from the start where it calls them
    successful (filtered-bc)"""
    offline_steps: int = 0
    """Cal-QL pre-training updates on the --data episodes before the first step (0: none; the
    learner then starts from the actor alone)"""
    offline_cql_alpha: float = 5.0
    """weight of the CQL regularizer in the pre-training (Cal-QL's clamp on)"""
    offline_ratio: float = 0.0
    """share of every online batch drawn from the --data episodes (RLPD: 0.5; 0: none kept,
    WSRL)"""
    steps: int = 30_000
    """online environment steps in all, warm-up included (a resumed run continues up to this)"""
    learner: Literal["sac", "ppo", "filtered-bc"] = "sac"
    """sac: the off-policy learner (WSRL: SAC over replayed transitions, one update per step,
    settings in `sac`); ppo: refinement's on-policy PPO over whole real episodes, one update per
    `ppo.rollouts` of them (settings in `ppo`; an episode that ends early, on success or a
    bridge hold, counts as over: robolearn/runs/finetune_ppo.py); filtered-bc: the actor
    imitates its own episodes the classifier rewarded (cut at that step) and the --data
    episodes it calls successful, one BC update per `filtered_bc.rollouts` episodes (settings
    in `filtered_bc`; robolearn/runs/finetune_fbc.py)"""
    warmup: int | None = None
    """first environment steps acted by the pre-trained policy alone, no updates (WSRL; default
    5000 for sac, 0 for ppo and filtered-bc, whose batches are their own)"""
    critic_warmup: int = 500
    """the learner's first updates fit the critics alone, the actor and alpha waiting (Cal-QL
    pre-training's count): fresh critics' action gradients are noise, and a sharp BC actor
    following them forgot its task within 50 updates (drawer, 3-demo BC: 6 of 10 warm-up episodes
    opened the drawer, none after)"""
    max_steps: int | None = None
    """episode length in control steps (default: the task's); in reset-free practice, the most
    steps a phase lasts"""
    end_on_success: bool = False
    """an episode ends as soon as the classifier rewards a frame, and that step is terminal (SERL,
    HIL-SERL): the critics learn the discounted time to success instead of how long success
    lasts, and no steps are spent after it. Offline episodes (--data) are cut at their first
    rewarded frame alike"""
    backward_task: str | None = None
    """reset-free practice (RoboFuME): the task that undoes --task in the same scene (e.g.
    drawer-close for drawer). Forward and backward episodes then alternate with no simulator
    reset between them (one at the start), each ended when its classifier rewards a frame or at
    the episode length, and a second learner fine-tunes the backward policy (OUT/backward)"""
    exclusive_success: bool = False
    """reset-free practice: a frame both classifiers call successful (the drawer open by one,
    closed by the other: one of them is wrong) earns neither task a reward and ends no phase.
    Without it such frames are only counted (`contradicted` in metrics.jsonl and at the end)"""
    return_to_start: bool = False
    """reset-free practice: before each phase the arm moves back to the pose episodes start
    from, the scene left as it is (what a robot's operator scripts: the gripper opens, the tip
    rises clear, then the joints move straight to the start pose's;
    robolearn.core.widowx_control.return_to_start), so each policy starts where its
    demonstrations started, not where the other one stopped. Through --bridge or --ros2 the move
    goes through the bridge (ramp, shield, filter) like any action. Its control steps are not
    online steps: they are counted apart (`return_steps` in metrics.jsonl, a line at the end)"""
    backward_policy: str | None = None
    """the backward task's policy to start from (default: bundle:<backward task>/bc)"""
    backward_reward: str | None = None
    """the backward task's reward classifier (default: bundle:<backward task>/reward)"""
    bridge: bool = False
    """act through the robot bridge on the simulated arm (robolearn.hardware.sim_arm.BridgeTask:
    setpoint ramp, shield and passivity filter on every command at 100 Hz, in simulated time), as
    on the real WidowX; WidowX tasks only. A hold (shield, NaN action) ends the episode"""
    ros2: bool = False
    """act over ROS 2 in real time: the robot bridge node runs in this process with the learner's
    actor as its policy, against the arm's driver on the ROS 2 graph (the real WidowX's, or the
    simulated one: python -m robolearn.hardware.ros2_sim_driver); the sac learner updates in a
    thread beside the 5 Hz policy, so the arm never waits for it (robolearn.hardware.ros2_task);
    ppo and filtered-bc update between episodes, the arm holding. Needs rclpy (a ROS 2 install);
    WidowX tasks only"""
    ros_params: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(metavar="NAME:=VALUE")
    )
    """--ros2: a robolearn_bridge parameter (repeatable), e.g. robot_namespace:=/wx250s or
    output_mode:=joint_trajectory (hardware/ros2_config.py lists them)"""
    reset_service: str = "/robolearn_sim_driver/reset"
    """--ros2: the std_srvs/Trigger service that resets the scene before an episode (the simulated
    driver's; run it with -p vary_scene:=true for a new scene each time); "" for none: each
    episode starts where the arm is (a real arm: practise reset-free with --backward-task)"""
    success_topic: str = "/robolearn_sim_driver/success"
    """--ros2: a std_msgs/Bool topic recorded as the episodes' success (the simulated driver's),
    logged, never rewarded; "" for none"""
    energy_coef: float = 0.0
    """passivity-aware training (--bridge or --ros2): every step's reward loses this many units per
    joule of --energy-cost in that step (the passivity filter's own accounting,
    hardware/passivity.py): the policy learns to reach its goal with less energy"""
    no_filter: bool = False
    """--bridge: the passivity filter only accounts the commands' energy while the policy trains
    (the passivity study's filter-off condition; --energy-coef still sees it) instead of gating
    them; over ROS 2 the node's parameter says: --ros-params filter_enabled:=false"""
    energy_cost: Literal["injected", "drawn"] = "injected"
    """what a joule of --energy-coef counts: injected, the energy the commands put into the
    filter's virtual port (all of it, most of which damping gives back while the arm moves freely);
    drawn, the tank's net drop over the step (injected minus what damping refilled; negative when
    the tank refills): what pushing against a blocked joint spends and the energy budget bounds"""
    seed: int = 0
    """seed of the learner; online episode k resets with the collection seed of (seed, k)"""
    save_every: int = 1_000
    """checkpoint interval in environment steps (at the end of the episode that crosses it; the
    last one is always saved)"""
    eval_episodes: int = 0
    """at every save, the saved actor's mean actions over this many evaluation episodes in a
    simulator of its own (the scenes of `robolearn eval --seed EVAL_SEED`; through the bridge
    with --bridge): eval/sim_success and its 95 % interval per checkpoint in metrics.jsonl and
    the curves, and a line at the end. For people to read: the learner never sees them, and
    they are not online steps. Not with --ros2 (no simulator); 0: none"""
    eval_seed: int = 0
    """seed of the --eval-episodes scenes (`robolearn eval --seed`)"""
    replay_capacity: int | None = None
    """transitions the online buffer holds, oldest dropped first (default: all of --steps)"""
    ppo: PPOConfig = PPOConfig()
    """--learner ppo's settings (robolearn.policies.ppo.config, refine's; ppo.horizon is the
    episode length), e.g. ppo.rollouts=16. A resumed run keeps its checkpoint's (ppo.yaml)"""
    filtered_bc: FilteredBCConfig = FilteredBCConfig()
    """--learner filtered-bc's settings (robolearn.policies.bc.config.FilteredBCConfig), e.g.
    filtered_bc.std_floor=0.2. A resumed run keeps its checkpoint's (filtered_bc.yaml)"""
    sac: SACConfig = SACConfig(init_temperature=1e-4)
    """the learner's settings (robolearn.policies.sac.config); flags such as --utd set its fields.
    A resumed run keeps its checkpoint's (sac.yaml). The entropy temperature starts at 1e-4, not
    SAC's 0.1: with 0/1 rewards the critics' action gradients are small, and alpha 0.1 drove the
    3-demo drawer BC to its largest standard deviation within 50 actor updates (no more
    successes), faster than alpha's own tuning could follow; at 1e-4 the actor kept its entropy"""

    def __post_init__(self):
        if not self.task:
            raise ConfigError("give --task, e.g. drawer (`robolearn tasks` lists them)")
        require_positive(self, "steps", "save_every")
        if self.warmup_steps < 0 or self.critic_warmup < 0:
            raise ConfigError("warmup and critic_warmup must be >= 0")
        if self.learner == "ppo":
            self._check_ppo()
        if self.learner == "filtered-bc":
            self._check_filtered_bc()
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
        if not (math.isfinite(self.energy_coef) and self.energy_coef >= 0):
            raise ConfigError(f"energy_coef must be finite and >= 0, got {self.energy_coef}")
        if self.energy_coef and not (self.bridge or self.ros2):
            raise ConfigError(
                "--energy-coef needs --bridge or --ros2: the energy is the passivity filter's "
                "accounting"
            )
        if self.no_filter and not self.bridge:
            raise ConfigError(
                "--no-filter is for --bridge (over ROS 2: --ros-params filter_enabled:=false)"
            )
        if self.eval_episodes < 0:
            raise ConfigError(f"eval_episodes must be >= 0, got {self.eval_episodes}")
        if self.eval_episodes and self.ros2:
            raise ConfigError(
                "--eval-episodes runs the saved policy in a simulator; over --ros2 evaluate it "
                "with `robolearn eval` or on the arm"
            )
        if self.bridge and self.ros2:
            raise ConfigError("--bridge (simulated time) and --ros2 (real time): choose one")
        if self.ros_params and not self.ros2:
            raise ConfigError("--ros-params are the bridge node's: they need --ros2")
        for item in self.ros_params:
            name, sep, _ = item.partition(":=")
            if not sep or not name.strip():
                raise ConfigError(f"--ros-params {item!r}: expected NAME:=VALUE")
        if self.backward_task == self.task:
            raise ConfigError("--backward-task must be another task than --task")
        if (self.backward_policy or self.backward_reward) and not self.backward_task:
            raise ConfigError("--backward-policy and --backward-reward need --backward-task")
        if self.exclusive_success and not self.backward_task:
            raise ConfigError("--exclusive-success needs --backward-task (two classifiers)")
        if self.return_to_start and not self.backward_task:
            raise ConfigError(
                "--return-to-start moves the arm between reset-free phases: it needs "
                "--backward-task"
            )
        if not 0.0 <= self.offline_ratio < 1.0:
            raise ConfigError(f"offline_ratio must be in [0, 1), got {self.offline_ratio}")
        if self.offline_steps < 0 or not self.offline_cql_alpha >= 0:
            raise ConfigError("offline_steps and offline_cql_alpha must be >= 0")
        uses = self.offline_steps > 0 or self.offline_ratio > 0
        if self.learner != "filtered-bc" and bool(self.data) != uses:  # (it imitates --data)
            raise ConfigError(
                "--data is used by --offline-steps or --offline-ratio: give both or neither"
                if self.data
                else "--offline-steps and --offline-ratio need --data DIR, the offline episodes"
            )
        if self.offline_ratio and not 1 <= self.offline_batch() < self.sac.batch_size:
            raise ConfigError(
                f"--offline-ratio {self.offline_ratio} of sac.batch_size {self.sac.batch_size} "
                "leaves no room for offline or online transitions"
            )

    @property
    def warmup_steps(self) -> int:
        """--warmup, or its learner's default."""
        if self.warmup is not None:
            return self.warmup
        return 5_000 if self.learner == "sac" else 0

    def _check_ppo(self) -> None:
        """--learner ppo learns on-policy from its own episodes: no offline data."""
        self._refuse(
            {"--data": self.data},
            "{} is for the sac and filtered-bc learners: --learner ppo learns on-policy from "
            "the episodes it acts",
        )

    def _check_filtered_bc(self) -> None:
        """--learner filtered-bc imitates the classifier's successes; it has no reward to shape
        and no critic to pre-train."""
        self._refuse(
            {
                "--energy-coef": self.energy_coef, "--offline-steps": self.offline_steps,
                "--offline-ratio": self.offline_ratio,
            },
            "{} is not for --learner filtered-bc: it imitates the episodes the classifier "
            "rewarded",
        )  # fmt: skip

    def _refuse(self, refused: dict, message: str) -> None:
        """A one-line error (`message` with the flag's name) for the first of `refused` that is
        set, or for a warm-up: it is the sac learner's; the others learn from their first
        batch."""
        for name, value in refused.items():
            if value:
                raise ConfigError(message.format(name))
        if self.warmup_steps:
            raise ConfigError(
                f"--warmup is the sac learner's: {self.learner} learns from its first batch"
            )

    def offline_batch(self) -> int:
        """Offline transitions in every online batch (--offline-ratio of the batch)."""
        return round(self.sac.batch_size * self.offline_ratio)


def main(cfg: FinetuneConfig, options: RunOptions) -> None:
    """`robolearn finetune`: fine-tune, then say where the policy is and how to evaluate it."""
    out = options.run_dir("finetune", cfg.task)
    result = run_finetune(
        cfg, out, resume=options.resume, progress=options.progress, wandb=options.tracking()
    )
    rate = result["updates_per_second"]  # (ppo's and filtered-bc's updates take seconds)
    pace = f"{rate:.1f} updates/s" if rate >= 1 or not rate else f"{1 / rate:.1f} s an update"
    print(
        f"finetune {cfg.task}: {result['env_steps']} environment steps ({result['run_steps']} "
        f"this run, {result['seconds']:.0f} s, {result['updates']} updates, {pace})"
    )
    if cfg.ros2 and result["update_thread"]:
        print(
            f"  real time: the learner thread ran {result['updates']} of "
            f"{result['updates'] + result['update_lag']} allowed updates (one per step after the "
            "warm-up)"
        )
    elif cfg.ros2:
        print(f"  real time: the {result['updates']} updates ran between episodes, the arm holding")
    if result["holds"]:  # --bridge or --ros2
        why = ", ".join(f"{kind} {n}" for kind, n in result["holds"].most_common())
        print(
            f"  the bridge held {sum(result['holds'].values())} of this run's episodes ({why}; "
            "each held episode's `held` in its metadata says why)"
        )
    for name, recent in result["recent"].items():
        print(
            f"  {name}, last {recent['episodes']} episodes: classifier success "
            f"{recent['classifier_success']:.0%}, simulator success {recent['sim_success']:.0%} "
            "(logged, never rewarded)"
        )
        if cfg.backward_task and recent["contradicted"]:
            print(
                f"  {name}: in {recent['contradicted']:.0%} of them both classifiers called a "
                "frame successful (the two tasks' successes exclude each other: one classifier "
                "was wrong; "
                + (
                    "its reward was withheld)"
                    if cfg.exclusive_success
                    else "--exclusive-success withholds its reward)"
                )
            )
    for name, rows in result["evals"].items():
        if rows:
            curve = ", ".join(f"{r['step']}: {r['sim_success']:.0%}" for r in rows)
            print(
                f"  {name}, mean actions at each save ({cfg.eval_episodes} evaluation "
                f"episode{'s' * (cfg.eval_episodes > 1)}, seed {cfg.eval_seed}; never rewarded): "
                f"{curve}"
            )
    for name, best in result["best"].items():
        if best is not None:
            path = out / BEST_DIR if name == cfg.task else out / BACKWARD / BEST_DIR
            print(
                f"  {name}, best save: step {best['step']}, {best['sim_success']:.0%} "
                f"({best['sim_success_low']:.0%}-{best['sim_success_high']:.0%}) -> {path} "
                "(chosen on these scenes: judge it on others, e.g. robolearn eval --seed "
                f"{cfg.eval_seed + 1})"
            )
    moves = result["returns"]
    if moves["phases"]:
        from robolearn.envs import task_info

        hz = task_info(cfg.task).control_hz
        print(
            f"  --return-to-start: the arm moved back to its start pose before "
            f"{moves['phases']} phases in {moves['steps']} control steps ({moves['steps'] / hz:.0f}"
            f" s at {hz:g} Hz, not online steps); {moves['missed']} of the moves stopped short"
        )
    print(f"policy checkpoint: {out}")
    print(f"evaluate it: robolearn eval --task {cfg.task} --policy {out}")
    if cfg.backward_task:
        print(f"backward policy ({cfg.backward_task}): {out / BACKWARD}")


def run_finetune(
    cfg: FinetuneConfig,
    out: Path,
    resume: bool = False,
    progress: bool = True,
    wandb: WandbSettings | None = None,
    make_task=None,
) -> dict:
    """Fine-tune (or resume) into `out`; returns {"env_steps", "run_steps", "updates",
    "update_lag" and "update_thread" (whether the updates ran in a thread beside acting: sac
    over --ros2), "seconds", "updates_per_second" (compiling excluded), "recent": {task:
    {"episodes", "classifier_success", "sim_success"}} over each task's last <= 20 episodes,
    "evals": {task: [{"step", "sim_success", ...}]} of this run's --eval-episodes, "returns":
    {"phases", "steps", "missed"} of this run's --return-to-start moves, "holds": a Counter of
    this run's episodes the bridge held, by the kind of its reason}.
    make_task(name, image_size=, max_steps=) builds the task (default: robolearn.envs.make)."""
    from robolearn.core import checkpoint as ckpt_io
    from robolearn.data.store import create_store, iter_episodes
    from robolearn.policies.bc import checkpoint as policy_ckpt

    maker = make_task or _task_maker(cfg)  # (its errors come before anything is written)
    resuming = ckpt_io.check_run_dir(out, resume, policy_ckpt.MARKER, policy_ckpt.read_info)
    specs = _specs(cfg)
    if resuming:
        _check_resume(out, cfg, specs)
    offline = [ep for root in cfg.data for _, ep in iter_episodes(root)] if cfg.data else []
    roles = [("", cfg.task, out)]
    if cfg.backward_task:
        roles.append((BACKWARD + "_", cfg.backward_task, out / BACKWARD))
    if cfg.learner == "ppo":
        from robolearn.runs.finetune_ppo import PPOLearner as make
    elif cfg.learner == "filtered-bc":
        from robolearn.runs.finetune_fbc import FilteredBCLearner as make
    else:
        make = _Learner
    learners = [
        make(cfg, task, specs[p + "policy"], specs[p + "reward"], where, resuming)
        for p, task, where in roles
    ]
    forward = learners[0]
    if learners[1:]:  # reset-free: each classifier watches the other's verdicts
        for one, other in ((forward, learners[1]), (learners[1], forward)):
            one.reward.rival, one.reward.exclusive = other.reward, cfg.exclusive_success
    _check_offline(cfg, offline, forward.info)
    if learners[1:] and learners[1].info.image_size != forward.info.image_size:
        raise ConfigError(
            f"the backward policy sees {learners[1].info.image_size}-pixel frames, the forward "
            f"one {forward.info.image_size}: one camera serves both"
        )
    task = maker(cfg.task, image_size=forward.info.image_size, max_steps=cfg.max_steps)
    try:
        if cfg.backward_task and cfg.backward_task not in task.reset_free_partners():
            raise ConfigError(
                f"--backward-task {cfg.backward_task!r} does not share {cfg.task!r}'s scene "
                f"(reset-free partners: {', '.join(task.reset_free_partners()) or 'none'})"
            )
        if not resuming:
            for learner in learners:
                learner.write()
        resolved = dataclasses.replace(cfg, warmup=cfg.warmup_steps, **forward.resolved(), **specs)
        save_yaml(resolved, out / "finetune.yaml")
        store = create_store(out / STORE)
        stored = [ep for _, ep in iter_episodes(store)]
        for learner in learners:
            learner.start(stored, offline if learner is forward else [])
        evaluate = functools.partial(_evaluate, cfg, maker) if cfg.eval_episodes else None
        return _loop(cfg, out, store, stored, task, learners, progress, wandb, resolved, evaluate)
    finally:
        task.close()
        for learner in learners:
            learner.close()


def _task_maker(cfg: FinetuneConfig):
    """robolearn.envs.make, or the bridge on the simulated arm with --bridge."""
    from robolearn import envs

    if not (cfg.bridge or cfg.ros2):
        return envs.make
    how = "--bridge drives the simulated WidowX" if cfg.bridge else "--ros2 drives the WidowX"
    if envs.task_info(cfg.task).suite != "widowx":
        raise ConfigError(f"{how}; {cfg.task!r} is not a WidowX task")
    if cfg.bridge:
        from robolearn.hardware.bridge import BridgeConfig
        from robolearn.hardware.passivity import PassivityConfig
        from robolearn.hardware.sim_arm import BridgeTask

        def bridge_task(name, image_size, max_steps):
            bridge_cfg = BridgeConfig(
                task=name, image_size=image_size,
                passivity=PassivityConfig(enabled=not cfg.no_filter),
            )  # fmt: skip
            return BridgeTask(name, image_size, max_steps, bridge_cfg=bridge_cfg)

        return bridge_task
    try:
        from robolearn.hardware.ros2_task import Ros2Task
    except ImportError as exc:
        raise ConfigError(f"--ros2 needs rclpy, a ROS 2 install ({exc})") from exc
    return lambda name, image_size, max_steps: Ros2Task(
        name, _describe, image_size, max_steps, node_params=cfg.ros_params,
        reset_service=cfg.reset_service, success_topic=cfg.success_topic,
    )  # fmt: skip


@functools.cache
def _describe(name: str):
    """A task's info and reset-free partners (for the ROS 2 task, which has no simulator); once
    per task, not at every reset-free switch (it builds the task's scene)."""
    from robolearn import envs

    task = envs.make(name)
    try:
        return envs.task_info(name), task.reset_free_partners()
    finally:
        task.close()


def _specs(cfg: FinetuneConfig) -> dict[str, str | None]:
    """The parts of the run (after defaults): policy, reward, backward_policy, backward_reward."""
    from robolearn.runs.parts import part_spec

    specs = {
        "policy": part_spec(cfg.task, "policy", cfg.policy),
        "reward": part_spec(cfg.task, "reward", cfg.reward),
    }
    if cfg.backward_task:
        specs["backward_policy"] = part_spec(cfg.backward_task, "policy", cfg.backward_policy)
        specs["backward_reward"] = part_spec(cfg.backward_task, "reward", cfg.backward_reward)
    return specs


def _check_resume(out: Path, cfg: FinetuneConfig, specs: dict[str, str]) -> None:
    """One-line errors when the run in `out` fine-tuned other tasks or from other parts."""
    from robolearn.core.checkpoint import load_config

    saved = load_config(FinetuneConfig, out / "finetune.yaml")
    for name in ("task", "backward_task", "learner"):
        if getattr(saved, name) != getattr(cfg, name):
            raise ConfigError(
                f"{out}: fine-tunes {name.replace('_', ' ')} {getattr(saved, name)!r}, not "
                f"{getattr(cfg, name)!r}"
            )
    was_specs = _specs(saved)
    for part, spec in specs.items():
        if was_specs[part] != spec:
            raise ConfigError(
                f"{out}: was fine-tuned with {part.replace('_', ' ')} {was_specs[part]!r}, not "
                f"{spec!r}; resume with the same parts or fine-tune into a new --out"
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


class _Learner(OnlineLearner):
    """One task's policy being fine-tuned: its checkpoint directory, reward classifier, SAC state,
    replay buffers (online, and offline when --data), the jitted update and acting function."""

    def __init__(self, cfg: FinetuneConfig, task: str, policy: str, reward: str, out: Path,
                 resuming: bool):  # fmt: skip
        from robolearn.core.checkpoint import load_config

        super().__init__(cfg, task, policy, reward, out)
        self.sac = load_config(SACConfig, out / SAC_CONFIG) if resuming else cfg.sac
        self.lock = threading.Lock()
        self._pending: list = []  # sac.mc_bound, awr: this episode's steps, added when it ends
        self._target_entropy: float | None = None
        self._entropies: list[float] = []

    def resolved(self) -> dict:
        """This learner's settings for finetune.yaml."""
        return {"sac": self.sac}

    def write(self) -> None:
        """Make the run's policy checkpoint directory (a fresh run, once every check passed)."""
        from robolearn.policies.bc import checkpoint as policy_ckpt

        info = dataclasses.replace(self.info, kind="sac", parent=self.policy_spec, weights="train")
        policy_ckpt.write_info(self.out, info, self.actor_cfg, self.stats)
        save_yaml(self.sac, self.out / SAC_CONFIG)

    def start(self, stored, offline) -> None:
        """Restore or initialize the learner; fill the buffers from this task's stored episodes
        (their recorded rewards: the classifier's) and the offline ones (rewarded now)."""
        import jax

        from robolearn.core import checkpoint as ckpt_io
        from robolearn.policies.bc import checkpoint as policy_ckpt
        from robolearn.policies.bc.train import make_act_fn
        from robolearn.policies.sac.replay import Replay
        from robolearn.policies.sac.train import init_sac_state, make_update

        sac = self.sac
        self.manager = ckpt_io.make_manager(self.out, max_to_keep=2)
        self.restored = self.manager.latest_step() is not None
        if self.restored:  # the checkpoint holds the actor too: the policy is not read again
            self.graphs, self.state = ckpt_io.restore_latest(
                self.manager, lambda rng: init_sac_state(sac, self.actor_cfg, rng)
            )
        else:
            _, actor_params, _ = policy_ckpt.restore_actor(self.policy_path, self.actor_cfg)
            rng = jax.random.key(self.cfg.seed)
            self.graphs, self.state = init_sac_state(sac, self.actor_cfg, rng, actor_params)
        self.state = on_device(self.state)
        mixed = self.cfg.offline_batch() if offline else 0
        online_batch = sac.batch_size - mixed
        example = _example(self.actor_cfg.model)
        capacity = max(self.cfg.replay_capacity or self.cfg.steps, online_batch)
        self.online = Replay(capacity, online_batch, sac.utd, example)
        self.buffer = self.online.init()
        for ep in stored:
            if ep.meta.task == self.task:
                # (their recorded rewards may hold an energy cost: the verdicts are judged again)
                judged = self.reward(ep.image[1:]) if self.cfg.end_on_success else None
                tr = _transitions(ep, ep.reward, sac.gamma, judged, self.reward.threshold)
                self.buffer = self.online.add(self.buffer, tr)
        self.offline, self.mixed = None, mixed
        if offline:
            size = max(sum(ep.num_steps for ep in offline), sac.batch_size)
            self.offline = Replay(size, sac.batch_size, sac.utd, example)
            self.offline_buffer = self.offline.init()
            for ep in offline:
                reward = self.reward(ep.image[1:])
                judged = reward if self.cfg.end_on_success else None
                tr = _transitions(ep, reward, sac.gamma, judged, self.reward.threshold)
                self.offline_buffer = self.offline.add(self.offline_buffer, tr)
        self._update = make_update(sac, self.graphs, self.stats)
        self._critic_update = make_update(sac, self.graphs, self.stats, actor=False)
        self._act = make_act_fn(self.graphs[0], self.stats)
        # compiled before the first step: over ROS 2 a step that compiles misses the bridge's
        # policy deadline
        self._policy({"image": example.image[0], "proprio": example.proprio[0]})  # (not
        # self.act: no blank frame's entropy in the target's mean)
        self.reward(example.image)
        if self.cfg.ros2:
            self._compile_ahead(example)

    def _compile_ahead(self, example) -> None:
        """--ros2: compile now what acting and learning run once the arm moves (adding to and
        sampling the buffer, the critic-only and the full update). A compile then would take
        the CPU for seconds on the arm's time (the updates' compile in the learner thread made
        the bridge hold)."""
        import jax

        sac = self.sac
        self.online.warm(self.buffer, example)
        if self.offline is not None:  # (kept offline data: its sampling, beside the online's)
            self.offline.warm(self.offline_buffer, example)
        shaped = jax.tree.map(
            lambda x: np.zeros((sac.utd, sac.batch_size, *x.shape[1:]), x.dtype), example
        )
        state = self.state  # the results are dropped; the full update from an updated state
        for update in (self._critic_update, self._update):
            state, _ = jax.block_until_ready(update(state, shaped, 0.0))

    def pretrain(self, steps: int, progress: bool) -> dict:
        """Cal-QL updates on the offline episodes alone (whole batches, the CQL regularizer at
        cfg.offline_cql_alpha, the Monte-Carlo clamp on) before any acting; the last metrics."""
        import jax

        from robolearn.core.progress import Progress
        from robolearn.policies.sac.train import make_update

        calql = dataclasses.replace(self.sac, cql_alpha=self.cfg.offline_cql_alpha, calql=True)
        update = make_update(calql, self.graphs, self.stats)
        key = jax.random.fold_in(jax.random.key(self.cfg.seed), 1_000_003)  # not an env step
        bar = Progress(steps, "pre-training update", enabled=progress)
        metrics: dict = {}
        try:
            for i in range(steps):
                key, sub = jax.random.split(key)
                batch = self.offline.sample(self.offline_buffer, sub)
                self.state, out = update(self.state, batch)
                if (i + 1) % 25 == 0 or i + 1 == steps:
                    metrics = {k: float(v) for k, v in jax.device_get(out).items()}
                    bar.update(i + 1, f"cql {metrics['cql']:.2f}  q {metrics['q']:.2f}")
        finally:
            bar.close()
        return metrics

    def _policy(self, obs) -> tuple[np.ndarray, np.ndarray]:
        """The current actor's mean and log std (no lower than log sac.std_floor) for `obs` [A]."""
        from robolearn.policies.ppo.train import effective_log_std

        mean, log_std = self._act(self.state.params, obs["image"][None], obs["proprio"][None])
        log_std = effective_log_std(log_std, self.sac.std_floor)
        return np.asarray(mean)[0], np.asarray(log_std)[0]

    def act(self, obs, rng: np.random.Generator) -> np.ndarray:
        """A sample of the current actor for `obs` (its std no lower than sac.std_floor),
        clipped to [-1, 1]."""
        mean, log_std = self._policy(obs)
        if self._target_entropy is None:  # the starting actor's entropy, until updates begin
            self._entropies.append(_gaussian_entropy(log_std))
        action = mean + np.exp(log_std) * rng.normal(size=mean.shape[0])
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def add(self, prev, action, reward: float, obs, terminal: bool = False) -> None:
        """One step's transition into the online buffer; with sac.mc_bound or the awr actor it
        waits for the end of its episode (end_episode), when its Monte-Carlo return is known."""
        if self.sac.mc_bound or self.sac.actor_loss == "awr":
            self._pending.append((prev, action, reward, obs, terminal))
            return
        one = _one(prev, action, reward, obs, self.sac.gamma, terminal)
        with self.lock:  # the buffer's arrays are donated by add: never sampled meanwhile
            self.buffer = self.online.add(self.buffer, one)

    def end_episode(self, ended: bool = True) -> None:
        """The episode's steps held back by add (sac.mc_bound, awr), now with their returns (its
        last step terminal as add said, whether the episode `ended` or the run did)."""
        from robolearn.policies.sac.replay import episode_transitions

        steps, self._pending = self._pending, []
        if not steps:
            return
        image = np.stack([steps[0][0]["image"], *(s[3]["image"] for s in steps)])
        proprio = np.stack([steps[0][0]["proprio"], *(s[3]["proprio"] for s in steps)])
        episode = episode_transitions(
            image, proprio, np.stack([s[1] for s in steps]),
            np.asarray([s[2] for s in steps], np.float32), self.sac.gamma, bool(steps[-1][4]),
        )  # fmt: skip
        with self.lock:
            self.buffer = self.online.add(self.buffer, episode)

    def drop_episode(self) -> None:
        """An episode cut short (a kill): its held-back steps are dropped, as its record is."""
        self._pending = []

    def target_entropy(self) -> float:
        """alpha's target: sac.target_entropy, or (default) the starting actor's mean entropy over
        the states it acted on before the first update (a sharp BC actor is held near its own
        sharpness instead of being pushed toward SAC's -A/2); fixed then and kept in sac.yaml."""
        if self._target_entropy is None:
            if self.sac.target_entropy is not None:
                self._target_entropy = float(self.sac.target_entropy)
            else:
                seen = self._entropies or [self.sac.entropy_target(self.info.action_dim)]
                self._target_entropy = round(float(np.mean(seen)), 4)
                self.sac = dataclasses.replace(self.sac, target_entropy=self._target_entropy)
                save_yaml(self.sac, self.out / SAC_CONFIG)
            self._entropies = []
        return self._target_entropy

    def update(self, key) -> dict:
        """One update (sac.utd critic steps, then one actor step once the learner has made
        cfg.critic_warmup updates) on fresh minibatches. Safe beside add and act in other threads
        (the state is replaced whole, never donated)."""
        import jax

        k1, k2 = jax.random.split(key)
        if self.online.size(self.buffer) == 0:  # (mc_bound, awr: before the first episode ends)
            return {}
        with self.lock:  # the batch is read out before another add may donate the buffer
            batch = jax.block_until_ready(self.online.sample(self.buffer, k1))
        if self.mixed:
            extra = self.offline.sample(self.offline_buffer, k2)
            batch = jax.tree.map(  # (in numpy: slicing a device array compiles its slice)
                lambda a, b: np.concatenate([a, np.asarray(b)[:, : self.mixed]], axis=1),
                batch,
                extra,
            )
        target = self.target_entropy()
        actor = int(self.state.step) >= self.cfg.critic_warmup
        state, metrics = (self._update if actor else self._critic_update)(self.state, batch, target)
        # published once computed: an actor reading it meanwhile would wait for the update
        self.state = jax.block_until_ready(state)
        return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _gaussian_entropy(log_std: np.ndarray) -> float:
    """The entropy (nats) of a diagonal Gaussian with these log standard deviations [A]."""
    return float(0.5 * log_std.size * np.log(2 * np.pi * np.e) + np.sum(log_std))


def _transitions(
    episode,
    reward: np.ndarray,
    gamma: float,
    judged: np.ndarray | None = None,
    threshold: float = 0.0,
):
    """A stored episode's transitions with these rewards [T]. With `judged` (the classifier's
    verdict on each step's frame, --end-on-success) the episode is cut at its first verdict >=
    `threshold`, a terminal step, as an online episode ends there."""
    from robolearn.policies.sac.replay import episode_transitions

    end, terminal = len(reward), False
    if judged is not None:
        hits = np.flatnonzero(np.asarray(judged) >= threshold)
        if hits.size:
            end, terminal = int(hits[0]) + 1, True
    return episode_transitions(
        episode.image[: end + 1], episode.proprio[: end + 1], episode.action[:end],
        np.asarray(reward)[:end], gamma, terminal=terminal,
    )  # fmt: skip


def _loop(cfg, out, store, stored, task, learners, progress, wandb, resolved, evaluate) -> dict:
    """The online loop: episodes until cfg.steps environment steps, the active learner updated
    after every step once the warm-up is over; in reset-free practice the learners' tasks
    alternate without a reset (one reset at the start of the run, and after a resume).
    evaluate: None, or evaluate(learners, env_steps) -> one row per learner (--eval-episodes),
    run after every save but the pre-training's, each row logged under its learner's eval/."""
    import jax

    from robolearn.core.config import to_dict
    from robolearn.core.metrics import MetricsWriter
    from robolearn.core.progress import Progress

    env_steps = sum(ep.num_steps for ep in stored)
    warmup = cfg.warmup_steps
    writer = MetricsWriter(
        out, resume_step=env_steps or None, enabled=True, wandb=wandb, config=to_dict(resolved)
    )
    bar = None

    def save(env_steps: int, which) -> None:
        for each in which:
            each.save(env_steps)
        if evaluate is not None and which:
            for each, row in zip(learners, evaluate(learners, env_steps), strict=True):
                prefix = "" if each is learners[0] else BACKWARD + "/"
                writer.write(env_steps, row, prefix=prefix + "eval/")
                each.evals.append({"step": env_steps, **row})
                each.keep_if_best(row, env_steps, cfg.eval_seed, cfg.eval_episodes)

    try:
        forward = learners[0]
        if cfg.offline_steps and not forward.restored:  # Cal-QL first, then a checkpoint
            writer.write(0, forward.pretrain(cfg.offline_steps, progress), prefix="offline/")
            for each in learners:
                each.save(0)
        bar = Progress(cfg.steps, "step", enabled=progress, start_at=env_steps)
        start, run_start, updates, update_seconds = time.perf_counter(), env_steps, 0, 0.0

        last_saved = env_steps
        key = jax.random.fold_in(jax.random.key(cfg.seed), env_steps)

        def learn(learner) -> dict:
            """One update of `learner` (its metrics; {} when it had nothing to learn from)."""
            nonlocal key, updates, update_seconds
            key, sub = jax.random.split(key)
            t0 = time.perf_counter()
            done = learner.update(sub)
            if done:
                if updates:  # the first one compiles
                    update_seconds += time.perf_counter() - t0
                updates += 1
            return done

        # in real time (--ros2) the updates run in a thread beside acting; a learner that
        # updates once per batch of episodes (ppo, filtered-bc) does so between episodes, the
        # arm holding
        updater = _Updater(key) if cfg.ros2 and not forward.per_episode else None
        reset_free = len(learners) > 1
        # the simulator is reset at the run's start (and after a resume: its state was not
        # kept), then the forward task comes first
        phase, fresh = 0, True
        returns = {"phases": 0, "steps": 0, "missed": 0}  # --return-to-start's moves, this run
        holds = collections.Counter()  # this run's episodes the bridge held, by kind of reason
        while env_steps < cfg.steps:
            learner = learners[phase]
            recorder, obs, rng, first = _begin(cfg, task, store, learner, fresh or not reset_free)
            fresh = False
            moved = {}
            if "return_steps" in first:  # --return-to-start moved the arm before this phase
                moved = {"return_steps": float(first["return_steps"]),
                         "at_start": float(first["at_start"])}  # fmt: skip
                returns["phases"] += 1
                returns["steps"] += int(first["return_steps"])
                returns["missed"] += int(not first["at_start"])
            rewards, sim_success, metrics, bridge, held = [], False, {}, {}, ""
            (energy_so_far, tank_before), judgements = _tank(task), []
            episode_energy, episode_drawn, contradicted = 0.0, 0.0, 0
            try:
                ended = False
                while not ended and env_steps < cfg.steps:
                    action = learner.act(obs, rng)
                    prev = obs
                    obs, _, _, ended, step_info = task.step(action)  # its reward is unused
                    verdict, both = learner.reward.judge(obs["image"][None])
                    judged = float(verdict[0])
                    contradicted += int(both[0])
                    r = judged
                    if "injected_energy_j" in step_info:  # acting through the bridge
                        injected = step_info["injected_energy_j"] - energy_so_far
                        energy_so_far = step_info["injected_energy_j"]
                        drawn = tank_before - step_info["tank_energy_j"]
                        tank_before = step_info["tank_energy_j"]
                        episode_energy += injected
                        episode_drawn += drawn
                        cost = injected if cfg.energy_cost == "injected" else drawn
                        r -= cfg.energy_coef * cost  # the learner's reward, recorded
                    recorder.add_step(action, r, obs, bool(step_info["success"]))
                    sim_success |= bool(step_info["success"])
                    rewards.append(r)
                    judgements.append(judged)
                    if "tank_energy_j" in step_info:  # acting through the bridge
                        bridge = _bridge_metrics(bridge, step_info)
                        held = str(step_info["held"])  # why it held ("" while it runs)
                    reached = judged >= learner.reward.threshold
                    learner.add(prev, action, r, obs, terminal=cfg.end_on_success and reached)
                    env_steps += 1
                    if env_steps > warmup and updater is not None:
                        updater.allow(learner)
                        metrics = updater.metrics
                    elif env_steps > warmup and not learner.per_episode:
                        metrics = learn(learner) or metrics
                    # reset-free: the phase ends once its classifier sees success
                    ended = ended or ((reset_free or cfg.end_on_success) and reached)
                    bar.update(env_steps, _status(learner, metrics))
                if hasattr(task, "hold"):  # a real-time arm holds between episodes (not
                    task.hold()  # the policy's deadline passing while the run saves or learns)
                if held:  # the episode says why the bridge ended it
                    extra = {**recorder.meta.extra, "held": held}
                    recorder.meta = dataclasses.replace(recorder.meta, extra=extra)
                    holds[re.split(r":| \(", held, maxsplit=1)[0]] += 1
                recorder.finish()
                learner.end_episode(ended=ended)
                if learner.per_episode and env_steps > warmup:
                    metrics = learn(learner) or metrics
            except BaseException:
                recorder.abort()
                learner.drop_episode()
                raise
            success = bool(np.any(np.asarray(judgements) >= learner.reward.threshold))
            learner.recent = (learner.recent + [(success, sim_success, contradicted > 0)])[-20:]
            row = {
                "return": float(np.sum(rewards)),
                "classifier_success": float(success),
                "sim_success": float(sim_success),
                "episode_steps": len(rewards),
                **({"contradicted": float(contradicted)} if reset_free else {}),
                **moved,
                "warmup": float(env_steps <= warmup),
                **bridge,
                **(
                    {"injected_energy_j": episode_energy, "drawn_energy_j": episode_drawn}
                    if bridge
                    else {}
                ),
                **metrics,
            }
            writer.write(env_steps, row, prefix="" if phase == 0 else BACKWARD + "/")
            # (the last save comes after the loop, once an updater thread has stopped)
            if env_steps - last_saved >= cfg.save_every or (
                env_steps >= cfg.steps and updater is None
            ):
                save(env_steps, learners)
                last_saved = env_steps
            if reset_free:
                phase = 1 - phase
        lag = 0  # (a real-time arm already holds: every episode's end held it)
        if updater is not None:
            updater.stop()
            updates, update_seconds, lag = updater.done, updater.seconds, updater.lag
        save(env_steps, [e for e in learners if (e.manager.latest_step() or 0) < env_steps])
        return {
            "env_steps": env_steps,
            "run_steps": env_steps - run_start,
            "updates": updates,
            "update_lag": lag,
            "update_thread": updater is not None,
            "seconds": time.perf_counter() - start,
            "updates_per_second": (updates - 1) / update_seconds if update_seconds else 0.0,
            "recent": {each.task: each.summary() for each in learners},
            "evals": {each.task: each.evals for each in learners},
            "best": {each.task: each.best() for each in learners if each.evals},
            "returns": returns,
            "holds": holds,
        }
    finally:
        if updater is not None:
            updater.stop(quiet=True)
        if bar is not None:
            bar.close()
        writer.close()


def _evaluate(cfg: FinetuneConfig, maker, learners, env_steps: int) -> list[dict]:
    """--eval-episodes: each learner's saved actor (its export), mean actions, over the
    evaluation scenes in a task of its own from `maker`; one row per learner: sim_success with
    its 95 % Wilson interval. Nothing of it reaches a learner or the episode store."""
    from robolearn import envs
    from robolearn.core.seeds import episode_seed
    from robolearn.core.stats import wilson_interval
    from robolearn.policies.bc import checkpoint as policy_ckpt
    from robolearn.runs.eval import run_episode

    rows = []
    for each in learners:
        export = each.out / policy_ckpt.EXPORT_DIR
        policy = policy_ckpt.load_policy(export, each.task, envs.ACTION_DIM, seed=cfg.eval_seed)
        task = maker(each.task, image_size=each.info.image_size, max_steps=cfg.max_steps)
        n = cfg.eval_episodes
        try:
            wins = sum(
                run_episode(task, policy, episode_seed(cfg.eval_seed, i))["success"]
                for i in range(n)
            )
        finally:
            task.close()
        low, high = wilson_interval(wins, n)
        rows.append({"sim_success": wins / n, "sim_success_low": low, "sim_success_high": high})
    return rows


class _Updater:
    """The learner's updates in a thread beside acting (--ros2, SERL's actor/learner split): the
    arm never waits for them. Each environment step past the warm-up allows one update of the
    learner acting then; the thread runs the allowed ones as fast as it can and falls behind when
    it cannot keep up (`lag`: allowed updates not run). JAX releases the GIL while it computes."""

    def __init__(self, key):
        self._cv = threading.Condition()
        self._key, self._learner, self._stopping = key, None, False
        self.allowed = self.done = 0
        self.metrics: dict = {}
        self.seconds = 0.0  # in updates, the first one excluded (as in simulation, where it
        # compiles)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)
        self._thread.start()

    @property
    def lag(self) -> int:
        return self.allowed - self.done

    def allow(self, learner) -> None:
        """One more update, of `learner`; raises what the thread failed with."""
        with self._cv:
            if self.error is not None:
                raise RuntimeError(f"the learner thread failed: {self.error}") from self.error
            self._learner = learner
            self.allowed += 1
            self._cv.notify_all()

    def _run(self) -> None:
        import jax

        while True:
            with self._cv:
                while not self._stopping and self.done >= self.allowed:
                    self._cv.wait()
                if self._stopping:
                    return
                learner = self._learner
                self._key, sub = jax.random.split(self._key)
            t0 = time.perf_counter()
            try:
                metrics = learner.update(sub)
            except BaseException as exc:  # reported to the acting thread by allow / stop
                with self._cv:
                    self.error = exc
                return
            with self._cv:
                if self.done:
                    self.seconds += time.perf_counter() - t0
                self.done += 1
                self.metrics = metrics

    def stop(self, quiet: bool = False) -> None:
        """Stop after the update in progress (allowed ones not started are dropped)."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join()
        if self.error is not None and not quiet:
            raise RuntimeError(f"the learner thread failed: {self.error}") from self.error


def _tank(task) -> tuple[float, float]:
    """The bridge's tank now: (energy its commands injected so far, its level), in J; zeros
    without a bridge."""
    bridge = getattr(task, "bridge", None)
    if bridge is None:
        return 0.0, 0.0
    tank = bridge.tank
    return float(tank.injected_energy_j), float(tank.energy_j)


def _bridge_metrics(so_far: dict, info: dict) -> dict:
    """The episode's bridge figures after one more step: the lowest tank level, the energy
    injected, the filter's activations and the shield's interventions so far, whether it held."""
    return {
        "min_tank_energy_j": min(so_far.get("min_tank_energy_j", np.inf), info["tank_energy_j"]),
        "filter_activations": info["filter_activations"],
        "interventions": info["interventions"],
        "held": float(bool(info["held"])),
    }


def _example(model):
    """One transition of zeros with the shapes of the buffer's items."""
    from robolearn.policies.sac.train import Transitions

    size, p, a = model.image_size, model.proprio_dim, model.action_dim
    image, proprio = np.zeros((1, size, size, 3), np.uint8), np.zeros((1, p), np.float32)
    one = np.zeros(1, np.float32)
    return Transitions(image, proprio, np.zeros((1, a), np.float32), one, image, proprio, one, one)


def _one(prev, action, r, obs, gamma: float, terminal: bool = False):
    """The transition of one step (leading axis 1) for the online buffer."""
    from robolearn.policies.sac.replay import episode_transitions

    image, proprio = (
        np.stack([prev["image"], obs["image"]]),
        np.stack([prev["proprio"], obs["proprio"]]),
    )
    return episode_transitions(image, proprio, action[None], np.asarray([r]), gamma, terminal)


def _begin(cfg, task, store, learner, reset: bool):
    """A new online episode of the learner's task: its recorder (the meta says which classifier
    rewarded it, whether it continued the previous one without a reset, and --return-to-start's move
    before it), the first observation, the sampling noise's generator, the first step's info."""
    from robolearn.core.seeds import episode_seed
    from robolearn.core.spec import ACTION_NAMES
    from robolearn.data.episode import EpisodeMeta
    from robolearn.data.recorder import EpisodeRecorder
    from robolearn.envs import task_info

    info = task_info(learner.task)
    recorder = EpisodeRecorder(
        store,
        EpisodeMeta(
            task=info.name,
            instruction=info.instruction,
            source="policy",
            fps=info.control_hz,
            action_meaning=info.action_meaning,
            action_names=ACTION_NAMES,
            policy=f"finetune({learner.policy_spec})",
            extra={"reward": str(learner.reward.source), "reward_kind": cfg.reward_kind,
                   "threshold": learner.reward.threshold, "reset": reset},
        ),
    )  # fmt: skip
    try:
        seed = episode_seed(cfg.seed, recorder.index, stream="collect")
        if reset:
            if task.task_info.name != learner.task:  # back to the forward task's resets
                task.continue_as(learner.task)
            obs, step_info = task.reset(seed=seed)
        else:
            obs, step_info = task.continue_as(learner.task, return_to_start=cfg.return_to_start)
        extra = recorder.meta.extra
        if "return_steps" in step_info:
            extra = {**extra, "return_steps": int(step_info["return_steps"]),
                     "at_start": bool(step_info["at_start"])}  # fmt: skip
        recorder.meta = dataclasses.replace(
            recorder.meta, seed=seed if reset else None, extra=extra,
            layout=tuple(float(x) for x in task.layout()),
        )  # fmt: skip
        recorder.add_first(obs, bool(step_info["success"]))
    except BaseException:
        recorder.abort()
        raise
    return recorder, obs, np.random.default_rng(seed), step_info


def _status(learner, metrics) -> str:
    summary = learner.summary()
    text = learner.task
    if summary["episodes"]:
        text += f"  classifier success {summary['classifier_success']:.0%}"
        text += f"  sim {summary['sim_success']:.0%}"
    if "q" in metrics:
        text += f"  q {metrics['q']:.2f}"
        text += f"  alpha {metrics['alpha']:.3f}" if "alpha" in metrics else "  (critics only)"
    elif "iteration" in metrics:  # ppo
        text += f"  iteration {metrics['iteration']:.0f}  kl {metrics['approx_kl']:.3f}"
    elif "kept_episodes" in metrics:  # filtered-bc
        text += f"  kept {metrics['kept_episodes']:.0f} episodes  nll {metrics['bc_nll']:.2f}"
    if learner.evals:  # --eval-episodes: the last save's mean actions
        text += f"  eval {learner.evals[-1]['sim_success']:.0%} (at {learner.evals[-1]['step']})"
    return text
