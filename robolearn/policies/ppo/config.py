"""The PPO refinement config: what World4RL's second stage runs inside the frozen world model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig
from robolearn.policies.bc.config import ModelConfig

CRITIC = ModelConfig(channels=(16, 32, 32, 32), feature_dim=128, hidden=(128, 128))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO over imagined episodes (World4RL section 1; values World4RL leaves open are ours).

    rollouts: imagined episodes per iteration, each `horizon` steps from a real first frame.
    gamma/gae_lambda: discount and GAE lambda. The episode ends at the horizon (as the real one
        does): the last step does not bootstrap.
    clip: PPO ratio clip; epochs x minibatches updates per iteration.
    actor_optim/critic_optim: the two optimizers (robolearn.core.optim): Adam at a constant
        rate (no weight decay, no schedule), gradients clipped at a global norm of 0.5. The
        actor's rate is small on purpose: at 1e-4 a single Adam step moved the drawer BC policy
        to a KL of 1.8 and its real success to 0 % (measured); at 1e-5 the KL stays near 0.01.
    target_kl: the actor stops updating for the rest of an iteration once the approximate KL to
        the rollout policy exceeds it (the critic keeps fitting).
    critic_warmup: first iterations in which only the critic learns: a fresh critic's advantages
        are noise and would push the pre-trained actor around.
    std_floor: exploration std used for sampling and log-probabilities, max(std, floor). BC's own
        std collapses to ~0.05 on clean demonstrations, too little to explore with; the world
        model saw noisy-expert actions (std 0.3), so 0.2 stays where it is reliable. The policy's
        log-std itself is still bounded <= 0 (World4RL: std <= 1).
    entropy_coef: entropy bonus (0: World4RL does not mention one).
    bc_coef: weight of the squared distance between the actor's mean action and the BC
        policy's on the rollout states (0 = pure PPO); keeps the actor close to the demonstrations.
    early_bc_coef: the same pull, on recorded frames *before* the imagined episodes' start step
        (`refine --start-step`): imagination from step S never visits the earlier steps, yet PPO's
        updates move the actor's actions there too (measured on coffee-pull: 10-80 % faster
        descents at step 30, real success 0/150). None = the refine default (see RefineConfig).
    early_batch: recorded early frames per minibatch for that pull.
    reward: "binary" = 1 if the classifier's calibrated probability of the next imagined frame
        reaches its threshold (World4RL's thresholded reward), "prob" = the probability itself.
    normalize_advantages: per-minibatch advantage standardization.
    critic: the value network's CNN/MLP (same building blocks as the actor, smaller).
    """

    PRESET_KIND: ClassVar[str] = "ppo"  # presets: configs/ppo/<name>.yaml (`ppo: NAME`)


    rollouts: int = 32
    horizon: int | None = None
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 4
    actor_optim: OptimConfig = OptimConfig(learning_rate=1e-5, grad_clip=0.5)
    critic_optim: OptimConfig = OptimConfig(learning_rate=3e-4, grad_clip=0.5)
    target_kl: float = 0.05
    critic_warmup: int = 3
    std_floor: float = 0.2
    entropy_coef: float = 0.0
    bc_coef: float = 0.0
    early_bc_coef: float | None = None
    early_batch: int = 128
    reward: str = "binary"
    normalize_advantages: bool = True
    critic: ModelConfig = CRITIC

    def __post_init__(self):
        for name in ("rollouts", "epochs", "minibatches", "early_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1, got {self.horizon}")
        if (self.rollouts * (self.horizon or 1)) % self.minibatches and self.horizon:
            raise ConfigError("rollouts x horizon must be divisible by minibatches")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.clip < 1.0:
            raise ConfigError(f"clip must be in (0, 1), got {self.clip}")
        if not 0.0 <= self.std_floor <= 1.0:
            raise ConfigError(f"std_floor must be in [0, 1] (std <= 1), got {self.std_floor}")
        if self.reward not in ("binary", "prob"):
            raise ConfigError(f"reward must be 'binary' or 'prob', got {self.reward!r}")
        for name in ("bc_coef", "early_bc_coef"):
            if (getattr(self, name) or 0.0) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.critic_warmup < 0 or self.target_kl <= 0:
            raise ConfigError("critic_warmup must be >= 0 and target_kl > 0")
