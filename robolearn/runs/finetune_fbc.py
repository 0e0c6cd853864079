"""`robolearn finetune --learner filtered-bc`: the policy imitates its own successes.

Success-filtered behaviour cloning (self-imitation): the actor acts, sampled at std
max(std, `filtered_bc.std_floor`); every episode in which the reward classifier rewards a frame
is kept, cut after the step that earned the first reward; every `filtered_bc.rollouts` episodes
the actor takes `filtered_bc.grad_steps` steps of `robolearn train bc`'s NLL (same random shift,
same beta) on transitions drawn uniformly from all kept episodes, and acts with the result. No
critic and no advantage: the classifier decides what is imitated, and only its binary verdict at
its threshold counts (a probability reward is compared with the threshold). Offline episodes
(--data, e.g. the demonstrations the BC learned from) are judged by the same classifier and kept
from the start when it calls them successful.

The run's loop, store, checkpoints, evaluation and resume are finetune's
(robolearn/runs/finetune.py). The run directory is a policy checkpoint of kind "bc" (its orbax
state a BC TrainState) with filtered_bc.yaml beside it; a resumed run keeps the stored episodes
the classifier rewarded (their recorded rewards), restores the latest checkpoint and starts a
fresh batch of `rollouts`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robolearn.runs.online import OnlineLearner, on_device

CONFIG = "filtered_bc.yaml"


class FilteredBCLearner(OnlineLearner):
    """finetune's learner interface (act, add, end_episode, update, save, ...) over filtered BC."""

    per_episode = True  # an update is due when a batch of episodes is complete

    def __init__(self, cfg, task: str, policy: str, reward: str, out: Path, resuming: bool):
        from robolearn.core.checkpoint import load_config
        from robolearn.policies.bc.config import FilteredBCConfig

        super().__init__(cfg, task, policy, reward, out)
        self.fbc = load_config(FilteredBCConfig, out / CONFIG) if resuming else cfg.filtered_bc
        self._kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (image, proprio, action)
        self._pool: tuple[np.ndarray, ...] | None = None  # _kept concatenated, made when needed
        self._episodes = 0  # acted since the last update
        self._steps: list[tuple] = []  # the episode being acted

    def resolved(self) -> dict:
        """This learner's settings for finetune.yaml."""
        return {"filtered_bc": self.fbc}

    def write(self) -> None:
        """Make the run's policy checkpoint directory (kind bc, with filtered_bc.yaml)."""
        from robolearn.core.config import save_yaml
        from robolearn.policies.bc import checkpoint as policy_ckpt

        info = dataclasses.replace(self.info, kind="bc", parent=self.policy_spec, weights="train")
        policy_ckpt.write_info(self.out, info, self.actor_cfg, self.stats)
        save_yaml(self.fbc, self.out / CONFIG)

    def _bc_config(self):
        """The actor's BC config with this learner's optimizer: AdamW at a constant rate."""
        from robolearn.core.optim import OptimConfig

        optim = OptimConfig(
            learning_rate=self.fbc.learning_rate,
            weight_decay=self.actor_cfg.optim.weight_decay,
            grad_clip=self.actor_cfg.optim.grad_clip,
        )
        return dataclasses.replace(self.actor_cfg, optim=optim)

    def start(self, stored, offline) -> None:
        """Restore or initialize the actor and its optimizer; keep the stored episodes of this
        task that the classifier rewarded (their recorded rewards) and the offline ones it calls
        successful now."""
        import jax
        import jax.numpy as jnp

        from robolearn.core import checkpoint as ckpt_io
        from robolearn.core.optim import make_optimizer
        from robolearn.core.train_state import TrainState
        from robolearn.policies.bc import checkpoint as policy_ckpt
        from robolearn.policies.bc.train import init_train_state, make_act_fn, make_train_step

        bc_cfg = self._bc_config()
        self.manager = ckpt_io.make_manager(self.out, max_to_keep=2)
        self.restored = self.manager.latest_step() is not None
        if self.restored:
            graphdef, self.state = ckpt_io.restore_latest(
                self.manager, lambda rng: init_train_state(bc_cfg, rng)
            )
        else:
            graphdef, params, _ = policy_ckpt.restore_actor(self.policy_path, self.actor_cfg)
            opt_state = make_optimizer(bc_cfg.optim).init(params)
            self.state = TrainState(
                jnp.zeros((), jnp.int32), params, opt_state, jax.random.key(self.cfg.seed)
            )
        self.state = on_device(self.state)
        for ep in stored:
            if ep.meta.task == self.task:
                self._keep(ep.image[:-1], ep.proprio[:-1], ep.action, ep.reward)
        for ep in offline:
            self._keep(ep.image[:-1], ep.proprio[:-1], ep.action, self.reward(ep.image[1:]))
        self._step = make_train_step(bc_cfg, graphdef, self.stats)
        self._act = make_act_fn(graphdef, self.stats)
        self.warm_up_acting()

    def _keep(self, image, proprio, action, reward) -> bool:
        """Keep an episode's steps up to the first the classifier rewarded; False when it
        rewarded none (nothing kept)."""
        hits = np.flatnonzero(np.asarray(reward, np.float64) >= self.reward.threshold)
        if not len(hits):
            return False
        end = int(hits[0]) + 1
        self._kept.append(
            (np.asarray(image[:end], np.uint8), np.asarray(proprio[:end], np.float32),
             np.clip(np.asarray(action[:end], np.float32), -1.0, 1.0))
        )  # fmt: skip
        self._pool = None
        return True

    def act(self, obs, rng: np.random.Generator) -> np.ndarray:
        """A sample of the current actor at std max(std, filtered_bc.std_floor), clipped to
        [-1, 1] (the action the task gets and a kept episode imitates)."""
        from robolearn.policies.ppo.train import effective_log_std

        mean, log_std = self._act(self.state.params, obs["image"][None], obs["proprio"][None])
        mean = np.asarray(mean[0])
        std = np.exp(np.asarray(effective_log_std(log_std[0], self.fbc.std_floor)))
        return np.clip(mean + std * rng.normal(size=mean.shape), -1.0, 1.0).astype(np.float32)

    def add(self, prev, action, reward: float, obs, terminal: bool = False) -> None:
        """The step's frame and proprio (what the action was chosen on), action and reward."""
        self._steps.append((prev["image"], prev["proprio"], action, float(reward)))

    def end_episode(self, ended: bool = True) -> None:
        """Keep the episode if the classifier rewarded one of its frames, whether it ended or
        was cut short by the end of the run; count it."""
        steps, self._steps = self._steps, []
        if steps:
            image, proprio, action, reward = zip(*steps, strict=True)
            self._keep(np.stack(image), np.stack(proprio), np.stack(action), np.array(reward))
            self._episodes += 1

    def drop_episode(self) -> None:
        self._steps = []

    def update(self, key) -> dict:
        """filtered_bc.grad_steps BC steps on the kept episodes once filtered_bc.rollouts
        episodes were acted since the last; {} before that, or while nothing is kept."""
        import jax

        if self._episodes < self.fbc.rollouts:
            return {}
        self._episodes = 0
        if not self._kept:
            return {}
        if self._pool is None:
            self._pool = tuple(np.concatenate(part) for part in zip(*self._kept, strict=True))
        image, proprio, action = self._pool
        seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
        rng = np.random.default_rng(seed)
        sums: dict[str, float] = {}
        state = self.state
        for _ in range(self.fbc.grad_steps):
            idx = rng.integers(len(action), size=self.fbc.batch_size)
            batch = {"image": image[idx], "proprio": proprio[idx], "action": action[idx]}
            state, metrics = self._step(state, batch)
            for name, value in metrics.items():
                sums[name] = sums.get(name, 0.0) + value
        self.state = jax.block_until_ready(state)
        means = {k: float(v) / self.fbc.grad_steps for k, v in jax.device_get(sums).items()}
        return {
            **{f"bc_{k}": v for k, v in means.items()},
            "kept_episodes": float(len(self._kept)),
            "kept_steps": float(len(action)),
            "grad_steps": float(self.state.step),
        }
