"""The PPO refinement config: what World4RL's second stage runs inside the frozen world model."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig
from robolearn.policies.bc.config import ModelConfig

CRITIC = ModelConfig(channels=(16, 32, 32, 32), feature_dim=128, hidden=(128, 128))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO over imagined episodes (World4RL section 1; values World4RL leaves open are ours).

    Each field's meaning is the string under it (what `robolearn refine --help` shows for its
    flag). The two optimizers are robolearn.core.optim's: Adam at a constant rate (no weight
    decay, no schedule), gradients clipped at a global norm of 0.5.
    """

    PRESET_KIND: ClassVar[str] = "ppo"  # presets: configs/ppo/<name>.yaml (`ppo: NAME`)

    rollouts: int = 32
    """imagined episodes per iteration, each `horizon` steps from a real start"""
    horizon: int | None = None
    """imagined steps per episode (default: to the task's end, from --start-step if given)"""
    gamma: float = 0.99
    """discount; the episode ends at the horizon (as the real one does): the last step does not
    bootstrap"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip: float = 0.2
    """PPO ratio clip"""
    epochs: int = 4
    """PPO epochs per iteration"""
    minibatches: int = 4
    """minibatches per epoch (rollouts x horizon must divide into them)"""
    actor_optim: OptimConfig = OptimConfig(learning_rate=1e-5, grad_clip=0.5)
    """the actor's optimizer. Its rate is small on purpose: at 1e-4 a single Adam step moved the
    drawer BC policy to a KL of 1.8 and its real success to 0/50 (measured); at 1e-5 the KL
    stays near 0.01"""
    critic_optim: OptimConfig = OptimConfig(learning_rate=3e-4, grad_clip=0.5)
    """the critic's optimizer"""
    target_kl: float = 0.05
    """freeze the actor for the rest of an iteration once the approximate KL to the rollout
    policy exceeds this (the critic keeps fitting)"""
    critic_warmup: int = 3
    """first iterations that train only the critic: a fresh critic's advantages are noise and
    would push the pre-trained actor around"""
    std_floor: float = 0.2
    """exploration std floor, <= 1: sampling and log-probabilities use max(std, floor). BC's own
    std collapses to ~0.05 on clean demonstrations, too little to explore with; the world model
    saw noisy-expert actions (std 0.3), so 0.2 stays where it is reliable. The policy's log-std
    itself stays bounded <= 0 (World4RL: std <= 1)"""
    std_floor_end: float | None = None
    """the floor at the run's last iteration, reached linearly from std_floor over its
    iterations (refine's --iterations; finetune's --steps in batches of rollouts episodes), so
    the policy PPO improves in its last iterations samples close to its mean, the actions `eval`
    and the robot run; a run resumed to more iterations stretches the way over them (default:
    std_floor throughout)"""
    entropy_coef: float = 0.0
    """entropy bonus (0: World4RL does not mention one)"""
    bc_coef: float = 0.0
    """pull of the actor's mean toward the BC policy's: weight of their squared distance on the
    rollout states (0 = pure PPO)"""
    early_bc_coef: float | None = None
    """the same pull on the recorded frames before --start-step, which imagination never visits
    yet PPO's updates move the actor's actions there too (measured on coffee-pull: descents
    1.1-1.8x as fast at step 30, real success 0/150) (default with --start-step: 10, else 0)"""
    early_batch: int = 128
    """recorded early frames per minibatch for that pull"""
    reward: str = "binary"
    """binary (1 when the classifier's calibrated probability of the next imagined frame reaches
    its threshold: World4RL's thresholded reward) or prob (the probability itself)"""
    normalize_advantages: bool = True
    """standardize the advantages per minibatch"""
    unroll: bool = True
    """compile the epochs x minibatches steps of an update unrolled rather than as a loop: on a
    CPU each update runs ~1.3x faster and the first compiles ~2.5x longer (drawer's base actor,
    32 x 50 steps, 2 shared cores: 15.6 vs 19.5 s per update, 88 vs 30 s for the first); off pays
    where iterations are few and compiling dominates"""
    critic: ModelConfig = CRITIC
    """the value network's CNN/MLP (the actor's building blocks, smaller)"""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field.name} must be finite, got {value}")
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
        if self.std_floor_end is not None and not 0.0 <= self.std_floor_end <= 1.0:
            raise ConfigError(f"std_floor_end must be in [0, 1], got {self.std_floor_end}")
        if self.reward not in ("binary", "prob"):
            raise ConfigError(f"reward must be 'binary' or 'prob', got {self.reward!r}")
        for name in ("bc_coef", "early_bc_coef"):
            if (getattr(self, name) or 0.0) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.critic_warmup < 0 or self.target_kl <= 0:
            raise ConfigError("critic_warmup must be >= 0 and target_kl > 0")

    def floor_at(self, iteration, iterations: int | None):
        """The exploration floor of `iteration` (0-based; a Python int or a traced step) in a
        run of `iterations`: std_floor, or with std_floor_end the linear way from one to the
        other, held at std_floor_end after the last iteration."""
        if self.std_floor_end is None or iterations is None:
            return self.std_floor
        import jax.numpy as jnp

        frac = jnp.clip(jnp.asarray(iteration, jnp.float32) / max(iterations - 1, 1), 0.0, 1.0)
        return self.std_floor + (self.std_floor_end - self.std_floor) * frac
