"""What `robolearn finetune`'s loop (robolearn/runs/finetune.py) needs of its learners, whichever
they are: the classifier's reward, and the learner's save / summary / close."""

from __future__ import annotations

import numpy as np


class Reward:
    """The classifier's reward of single frames: binary at its threshold, or its probability."""

    def __init__(self, classifier, task: str, kind: str, source: str = ""):
        self.classifier, self.task, self.kind, self.source = classifier, task, kind, source
        self.threshold = float(classifier.info.threshold)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        prob = self.classifier.prob(images, self.task)
        if self.kind == "prob":
            return prob.astype(np.float32)
        return (prob >= self.threshold).astype(np.float32)


class OnlineLearner:
    """What the loop needs of a learner beside acting and learning (_Learner: SAC; PPOLearner in
    robolearn/runs/finetune_ppo.py): `state` (with the actor's `params`), its orbax `manager`,
    the run directory `out`, `recent` [(classifier success, simulator success)] of its last
    episodes and `evals`, this run's --eval-episodes rows of it. per_episode: the loop offers
    it an update after each episode instead of after each step."""

    per_episode = False

    def __init__(self, cfg, task: str, policy: str, reward: str, out):
        """The policy to start from (`policy`, checked against `task`), its actor config and
        proprio statistics, and the reward classifier (`reward`) of a finetune run `cfg`."""
        from robolearn import bundles, envs
        from robolearn.policies.bc import checkpoint as policy_ckpt
        from robolearn.reward_models.checkpoint import load_reward_model

        self.cfg, self.task, self.out, self.policy_spec = cfg, task, out, policy
        self.policy_path = bundles.resolve(policy)
        self.info = policy_ckpt.check_compatible(self.policy_path, task, envs.ACTION_DIM)
        self.actor_cfg, self.stats = policy_ckpt.read_config(self.policy_path)
        self.reward = Reward(
            load_reward_model(bundles.resolve(reward), task), task, cfg.reward_kind, reward
        )
        self.manager = None
        self.recent: list[tuple[bool, bool]] = []
        self.evals: list[dict] = []

    def save(self, env_steps: int) -> None:
        """The learner's state under the environment step, and the actor-only export."""
        import orbax.checkpoint as ocp

        from robolearn.policies.bc import checkpoint as policy_ckpt

        self.manager.save(int(env_steps), args=ocp.args.StandardSave(self.state), force=True)
        self.manager.wait_until_finished()
        export = self.out / policy_ckpt.EXPORT_DIR
        policy_ckpt.export_actor(self.out, export, self.state.params, int(env_steps))

    def summary(self) -> dict:
        recent = self.recent
        return {
            "episodes": len(recent),
            "classifier_success": float(np.mean([c for c, _ in recent])) if recent else 0.0,
            "sim_success": float(np.mean([s for _, s in recent])) if recent else 0.0,
        }

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
