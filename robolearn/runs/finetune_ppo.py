"""`robolearn finetune --learner ppo`: refinement's PPO on real episodes instead of imagined ones.

The learner `refine` runs inside the world model (robolearn.policies.ppo: the BC actor sampled at
the exploration floor `ppo.std_floor` (or on its way to `ppo.std_floor_end`), a fresh value
network, `epochs` x `minibatches` clipped-surrogate steps stopped at `target_kl`, the first
`critic_warmup` iterations fitting the critic alone), fed with whole episodes of the task
itself, each step rewarded by the reward classifier exactly as the SAC learner is. Every
`ppo.rollouts` complete episodes make one update (at the end of the last of them);
the run's loop, store, checkpoints and resume are finetune's (robolearn/runs/finetune.py), so
the run directory is a policy checkpoint of kind "ppo" (its orbax state a RefineState, as a
refine run's) with ppo.yaml beside it.

On-policy, it learns from whole episodes acted by the current actor, `horizon` (--max-steps)
steps long or ended before: an episode that ends early (the classifier's success with
--end-on-success, a reset-free phase's switch with --backward-task, a hold of the bridge with
--bridge or --ros2: the shield, a NaN action, a late step) is padded to the horizon as over, its
padding earning and weighing nothing (robolearn.policies.ppo.train.Trajectory.valid): after a
hold the policy gets no more reward, so it learns to avoid what made the bridge hold. An episode
cut short by the end of the run's steps (or by a kill) is dropped; no offline data. A resumed run
starts a fresh batch: the episodes of the iteration cut short stay in the store, unused.

Over --ros2 the update runs between episodes while the arm holds (finetune's loop holds it at
every episode's end), not in a thread beside acting: acting is one forward pass of the actor and
the classifier per 5 Hz step, and the policy the next episodes act with is the updated one, as
PPO needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robolearn.runs.online import OnlineLearner, on_device


class PPOLearner(OnlineLearner):
    """finetune._Learner's interface (act, add, end_episode, update, save, ...) over PPO."""

    per_episode = True  # an update is due when a batch of episodes is complete

    def __init__(self, cfg, task: str, policy: str, reward: str, out: Path, resuming: bool):
        from robolearn import envs
        from robolearn.core.errors import ConfigError
        from robolearn.policies.ppo.checkpoint import read_ppo_config

        super().__init__(cfg, task, policy, reward, out)
        horizon = cfg.max_steps or envs.task_info(task).max_steps
        if cfg.ppo.horizon not in (None, horizon):
            raise ConfigError(
                f"ppo.horizon {cfg.ppo.horizon}: it is the episode length ({horizon}); set "
                "--max-steps instead"
            )
        if resuming:
            self.ppo = read_ppo_config(out)
            if self.ppo.horizon != horizon:
                raise ConfigError(
                    f"{out}: its episodes are {self.ppo.horizon} steps long, not {horizon}; "
                    "resume with the same --max-steps"
                )
        else:
            self.ppo = dataclasses.replace(cfg.ppo, horizon=horizon)
        # the run's iterations, over which ppo.std_floor_end's schedule goes (in reset-free
        # practice each learner gets about half the steps; episodes that end early make more
        # iterations than this, the last ones at std_floor_end)
        learners = 2 if cfg.backward_task else 1
        self.iterations = max(cfg.steps // (learners * self.ppo.rollouts * horizon), 1)
        self._batch: list[dict[str, np.ndarray]] = []  # this iteration's complete episodes
        self._steps: list[tuple] = []  # the episode being acted
        self._sampled: tuple[np.ndarray, float] | None = None

    def resolved(self) -> dict:
        """This learner's settings for finetune.yaml."""
        return {"ppo": self.ppo}

    def write(self) -> None:
        """Make the run's policy checkpoint directory (kind ppo, with ppo.yaml)."""
        from robolearn.policies.bc import checkpoint as policy_ckpt
        from robolearn.policies.ppo.checkpoint import write_ppo_config

        info = dataclasses.replace(self.info, kind="ppo", parent=self.policy_spec, weights="train")
        policy_ckpt.write_info(self.out, info, self.actor_cfg, self.stats)
        write_ppo_config(self.out, self.ppo)

    def start(self, stored, offline) -> None:
        """Restore or initialize the learner (stored episodes are not replayed: on-policy)."""
        import jax

        from robolearn.core import checkpoint as ckpt_io
        from robolearn.policies.bc import checkpoint as policy_ckpt
        from robolearn.policies.bc.train import make_act_fn
        from robolearn.policies.ppo.train import init_refine_state, make_update

        self.manager = ckpt_io.make_manager(self.out, max_to_keep=2)
        self.restored = self.manager.latest_step() is not None
        if self.restored:
            self.graphs, self.state = ckpt_io.restore_latest(
                self.manager, lambda rng: init_refine_state(self.ppo, self.actor_cfg, rng)
            )
        else:
            _, start, _ = policy_ckpt.restore_actor(self.policy_path, self.actor_cfg)
            rng = jax.random.key(self.cfg.seed)
            self.graphs, self.state = init_refine_state(self.ppo, self.actor_cfg, rng, start)
        self.state = on_device(self.state)
        # ppo.bc_coef's pull is toward the starting policy (read again only where it is used)
        self.anchor = self.state.params
        if self.restored and self.ppo.bc_coef:
            self.anchor = on_device(policy_ckpt.restore_actor(self.policy_path, self.actor_cfg)[1])
        self._update = make_update(self.ppo, self.graphs, self.stats, self.iterations)
        self._floor = self._iteration_floor()
        self._act = make_act_fn(self.graphs[0], self.stats)
        self.warm_up_acting()
        self._sampled = None

    def _iteration_floor(self) -> float:
        """The exploration floor of the iteration the next episodes are sampled for."""
        return float(self.ppo.floor_at(int(self.state.step), self.iterations))

    def act(self, obs, rng: np.random.Generator) -> np.ndarray:
        """A sample of the current actor at std max(std, floor), clipped to [-1, 1], the floor
        ppo.std_floor or this iteration's on the way to ppo.std_floor_end; the unclipped sample
        and its log-density are kept for the update."""
        from robolearn.policies.ppo.losses import gaussian_log_prob
        from robolearn.policies.ppo.train import effective_log_std

        mean, log_std = self._act(self.state.params, obs["image"][None], obs["proprio"][None])
        mean = np.asarray(mean[0])
        log_std = np.asarray(effective_log_std(log_std[0], self._floor))
        raw = (mean + np.exp(log_std) * rng.normal(size=mean.shape)).astype(np.float32)
        self._sampled = (raw, float(gaussian_log_prob(mean, log_std, raw)))
        return np.clip(raw, -1.0, 1.0)

    def add(self, prev, action, reward: float, obs, terminal: bool = False) -> None:
        """The step's frame, proprio, unclipped action, its log-density and reward."""
        raw, log_prob = self._sampled
        self._steps.append((prev["image"], prev["proprio"], raw, log_prob, float(reward)))

    def end_episode(self, ended: bool = True) -> None:
        """The episode joins the iteration's batch: `horizon` steps, or fewer when it `ended`
        early, padded to the horizon with its last step repeated at reward 0 and valid 0. One
        that did not end (cut short by the end of the run's steps) is dropped."""
        steps, self._steps = self._steps, []
        if not steps or not ended or len(steps) > self.ppo.horizon:
            return
        image, proprio, action, log_prob, reward = (np.stack(x) for x in zip(*steps, strict=True))
        pad = self.ppo.horizon - len(steps)
        again = lambda x: np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        self._batch.append(
            {"image": again(image), "proprio": again(proprio).astype(np.float32),
             "action": again(action), "log_prob": again(log_prob).astype(np.float32),
             "reward": np.pad(reward.astype(np.float32), (0, pad)),
             "valid": np.pad(np.ones(len(steps), np.float32), (0, pad))}
        )  # fmt: skip

    def drop_episode(self) -> None:
        self._steps = []

    def update(self, key) -> dict:
        """One PPO iteration once ppo.rollouts complete episodes are in; {} before that."""
        import jax

        from robolearn.policies.ppo.train import Trajectory

        if len(self._batch) < self.ppo.rollouts:
            return {}
        batch, self._batch = self._batch[: self.ppo.rollouts], self._batch[self.ppo.rollouts :]
        stack = {k: np.stack([ep[k] for ep in batch], axis=1) for k in batch[0]}  # [T, B, ...]
        traj = Trajectory(
            stack["image"], stack["proprio"], stack["action"], stack["log_prob"],
            stack["reward"], stack["reward"], stack["valid"],
        )  # fmt: skip
        state, metrics = self._update(self.state, traj, self.anchor)
        self.state = jax.block_until_ready(state)
        self._floor = self._iteration_floor()
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        # (imagined_*: refine's names; here the episodes are real and logged one by one)
        metrics = {k: v for k, v in metrics.items() if not k.startswith(("imagined", "success_"))}
        steps = float(stack["valid"].sum())  # the batch's acted steps (early ends padded)
        return {**metrics, "iteration": float(self.state.step), "batch_steps": steps}
