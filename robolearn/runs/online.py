"""What `robolearn finetune`'s loop (robolearn/runs/finetune.py) needs of its learners, whichever
they are: the classifier's reward, and the learner's save / summary / close."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

BEST_DIR = "best"
BEST_INFO = "best.json"


def on_device(tree):
    """`tree` committed to the default device, as every state a jitted update returns is: a
    learner's starting state placed otherwise made its second update compile again (over ROS 2
    on the arm's time, or 46 s with the arm holding for PPO)."""
    import jax

    return jax.device_put(tree, jax.devices()[0])


class Reward:
    """The classifier's reward of single frames: binary at its threshold, or its probability.

    In reset-free practice `rival` is the other task's Reward (the task that undoes this one,
    whose success excludes this one's: a drawer is not open and closed at once). judge() then
    also says which frames both classifiers call successful, a contradiction that shows one of
    them wrong; with `exclusive` such frames earn no reward and end no phase."""

    def __init__(self, classifier, task: str, kind: str, source: str = ""):
        self.classifier, self.task, self.kind, self.source = classifier, task, kind, source
        self.threshold = float(classifier.info.threshold)
        self.rival: Reward | None = None
        self.exclusive = False

    def prob(self, images: np.ndarray) -> np.ndarray:
        """The classifier's calibrated success probability of each frame, [N]."""
        return self.classifier.prob(images, self.task)

    def succeeded(self, images: np.ndarray) -> np.ndarray:
        """This classifier's verdicts alone (its probability at its threshold), bool [N]."""
        return self.prob(images) >= self.threshold

    def judge(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reward float32 [N], contradicted bool [N]): contradicted where the rival's classifier
        also calls the frame successful (all False without a rival)."""
        prob = self.prob(images)
        reward = prob if self.kind == "prob" else (prob >= self.threshold)
        contradicted = np.zeros(len(prob), bool)
        if self.rival is not None:
            contradicted = (prob >= self.threshold) & self.rival.succeeded(images)
            if self.exclusive:
                reward = np.where(contradicted, 0.0, reward)
        return reward.astype(np.float32), contradicted

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.judge(images)[0]


class OnlineLearner:
    """What the loop needs of a learner beside acting and learning (_Learner: SAC; PPOLearner in
    robolearn/runs/finetune_ppo.py): `state` (with the actor's `params`), its orbax `manager`,
    the run directory `out`, `recent` [(classifier success, simulator success, contradicted)]
    of its last episodes and `evals`, this run's --eval-episodes rows of it. per_episode: the
    loop offers it an update after each episode instead of after each step."""

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
        self.recent: list[tuple[bool, bool, bool]] = []
        self.evals: list[dict] = []

    def warm_up_acting(self) -> None:
        """Act and judge once on a blank observation of the policy's shapes and dtypes, so that
        nothing compiles once the arm moves: over ROS 2 a compile at the first step missed the
        bridge's 0.4 s policy deadline (PPO's first action compiled the small operations of its
        sampling and log-density after a warm-up of the actor alone: the first episode held)."""
        size, p = self.actor_cfg.model.image_size, self.actor_cfg.model.proprio_dim
        blank = {"image": np.zeros((size, size, 3), np.uint8), "proprio": np.zeros(p, np.float32)}
        self.act(blank, np.random.default_rng(0))
        self.reward(blank["image"][None])

    def save(self, env_steps: int) -> None:
        """The learner's state under the environment step, and the actor-only export."""
        import orbax.checkpoint as ocp

        from robolearn.policies.bc import checkpoint as policy_ckpt

        self.manager.save(int(env_steps), args=ocp.args.StandardSave(self.state), force=True)
        self.manager.wait_until_finished()
        export = self.out / policy_ckpt.EXPORT_DIR
        policy_ckpt.export_actor(self.out, export, self.state.params, int(env_steps))

    def keep_if_best(self, row: dict, env_steps: int, seed: int, episodes: int) -> dict | None:
        """--eval-episodes: copy the export just evaluated (`row`, on `episodes` scenes of
        `seed`) to OUT/best/ when it scored more than every earlier save's evaluation on the same
        scenes (a resumed run reads the earlier best from OUT/best/best.json; an earlier best
        judged on other scenes is replaced). Ties keep the earlier save. Returns the best's
        record, or None when this save is not it."""
        from robolearn.policies.bc import checkpoint as policy_ckpt

        best = self.best()
        same = best is not None and (best["eval_seed"], best["episodes"]) == (seed, episodes)
        if same and row["sim_success"] <= best["sim_success"]:
            return None
        record = {"step": int(env_steps), **row, "eval_seed": seed, "episodes": episodes}
        dst = self.out / BEST_DIR
        tmp = dst.with_name(dst.name + ".writing")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.out / policy_ckpt.EXPORT_DIR, tmp)
        (tmp / BEST_INFO).write_text(json.dumps(record, indent=1) + "\n")
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)  # a reader sees the old best, the new one or none, never half of one
        return record

    def best(self) -> dict | None:
        """OUT/best/'s record (step, sim_success and its interval, eval_seed, episodes), or None
        when no save has been kept as the best."""
        path = self.out / BEST_DIR / BEST_INFO
        try:
            record = json.loads(path.read_text())
            return {
                **record,
                "sim_success": float(record["sim_success"]),
                "eval_seed": int(record["eval_seed"]),
                "episodes": int(record["episodes"]),
            }
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:  # damaged: the next save replaces it
            print(
                f"warning: {path}: unreadable ({err}); the next evaluated save replaces it",
                file=sys.stderr,
            )
            return None

    def summary(self) -> dict:
        """Over the last episodes (`recent`: classifier success, simulator success, and whether
        the rival classifier also called one of its frames successful)."""
        recent = self.recent

        def share(i: int) -> float:
            return float(np.mean([r[i] for r in recent])) if recent else 0.0

        return {
            "episodes": len(recent),
            "classifier_success": share(0),
            "sim_success": share(1),
            "contradicted": share(2),
        }

    def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
