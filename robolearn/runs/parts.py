"""The one way `imagine`, `refine` and `eval imagination` load the parts that act in
imagination: a task, a world model, a policy and a reward classifier, checked against each other
before anything runs, each given as a checkpoint directory or a shipped part, or defaulting to
the task's bundle (bundle:<task>/world-model, /bc, /reward)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from robolearn import bundles
from robolearn.core.flags import flag

DEFAULT_PART = {"world_model": "world-model", "policy": "bc", "reward": "reward"}


@dataclasses.dataclass
class Parts:
    """Loaded and mutually checked: info (TaskInfo), world_model (FrozenWorldModel), policy
    (BCPolicy), reward (RewardModel, or None when none was asked for); specs: the spec each
    part was loaded from (after defaults), for the run's resolved config."""

    info: object
    world_model: object
    policy: object
    reward: object | None
    specs: dict[str, str | None]


def part_spec(task: str, part: str, given: str | None) -> str:
    """The checkpoint spec of `part` ("world_model", "policy", "reward"): `given`, or the task's
    bundle part."""
    return given or f"{bundles.PREFIX}{task}/{DEFAULT_PART[part]}"


def shipped_reward(task: str) -> str | None:
    """bundle:<task>/reward when this installation ships it, else None."""
    spec = part_spec(task, "reward", None)
    return spec if spec in {p.name for p in bundles.list_parts()} else None


def load_parts(
    task: str,
    world_model: str | None = None,
    policy: str | None = None,
    reward: str | None = None,
    sampler: dict | None = None,
    with_reward: bool = True,
) -> Parts:
    """The parts for `task` (None: the task's bundle part); `sampler` replaces fields of the
    world model's sampler (e.g. {"steps": 5}); with_reward=False loads no classifier. One-line
    errors for a part that is missing, of the wrong kind, or does not fit the others."""
    from robolearn import envs
    from robolearn.imagination import check_pair, check_reward
    from robolearn.policies.bc.checkpoint import check_compatible, load_policy
    from robolearn.reward_models.checkpoint import load_reward_model
    from robolearn.world_models.checkpoint import load_world_model

    info = envs.task_info(task)
    specs = {
        "world_model": part_spec(task, "world_model", world_model),
        "policy": part_spec(task, "policy", policy),
        "reward": part_spec(task, "reward", reward) if with_reward else None,
    }
    wm = load_world_model(bundles.resolve(specs["world_model"]), task, envs.ACTION_DIM, sampler)
    policy_path = bundles.resolve(specs["policy"])
    check_pair(wm.info, check_compatible(policy_path, task, envs.ACTION_DIM), task)
    classifier = None
    if specs["reward"] is not None:
        classifier = load_reward_model(bundles.resolve(specs["reward"]), task)
        check_reward(wm.info, classifier.info)
    loaded = load_policy(policy_path, task, envs.ACTION_DIM)
    return Parts(info, wm, loaded, classifier, specs)


def sampler_override(
    steps: int | None, method: str | None, context_noise: float | None = None
) -> dict:
    """Sampler fields to replace in a loaded world model's config (empty: keep its own)."""
    fields = {"steps": steps, "method": method, "context_noise": context_noise}
    return {k: v for k, v in fields.items() if v is not None}


def sampler_used(sampler) -> dict:
    """The SamplerChoice fields of the sampler a world model ran with (a SamplerConfig), for the
    config.yaml of the run."""
    return {
        "sampler_steps": sampler.steps,
        "sampler_method": sampler.method,
        "sampler_context_noise": sampler.context_noise,
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamplerChoice:
    """The sampler flags of a command that runs a world model (inherited by its run config)."""

    sampler_steps: int | None = None
    """denoising steps per frame (default: the model's, 3)"""
    sampler_method: Literal["euler", "heun"] | None = dataclasses.field(
        default=None, metadata=flag("--sampler")
    )
    """ODE solver per frame (default: the model's, euler). heun is second order and needs more
    steps: on the shipped drawer model at 2-3 steps it is far worse than euler (first imagined
    frame SSIM ~0.03 against 0.91, measured; see world_models/sampler.py)"""
    sampler_context_noise: float | None = None
    """noise level added to the context frames before each imagined frame, and told to the
    model (default: the model's, 0); only for a model trained with noise-augmented context
    (model.context_noise at least this level)"""

    def sampler_override(self) -> dict:
        """The world model's sampler fields these flags replace."""
        return sampler_override(self.sampler_steps, self.sampler_method, self.sampler_context_noise)
