"""The off-policy learner's config: SAC with an ensemble of LayerNorm critics, Cal-QL for offline
pre-training, WSRL's settings for online fine-tuning (REFERENCES.md sections 3 and 4)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig
from robolearn.policies.bc.config import ModelConfig

# The critic's image encoder and MLP widths (its input sizes come from the actor's config).
CRITIC = ModelConfig(channels=(16, 32, 32, 32), feature_dim=128, hidden=(256, 256))


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC over (image, proprio) transitions; the actor is the BC Gaussian actor (same graph and
    checkpoint format, so it warm-starts from a BC or refined policy and loads as a policy).

    Each field's meaning is the string under it. Defaults are WSRL's online settings (ensemble of
    10 critics with LayerNorm, the target the minimum over a random pair, UTD 4, batch 256 per
    critic step, actor 1e-4 / critic 3e-4, tau 5e-3, gamma 0.99) with CQL off; offline Cal-QL
    pre-training sets cql_alpha > 0.
    """

    critic: ModelConfig = CRITIC
    """the critic's encoder (channels, strides, feature_dim) and the widths of each ensemble
    member's MLP (hidden); image_size, proprio_dim and action_dim are the actor's"""
    ensemble: int = 10
    """critics in the ensemble"""
    critic_encoder: Literal["own", "actor"] = "own"
    """the critics' image encoder: own, trained with them from scratch (sized by critic); actor,
    the warm-started actor's encoder (a BC trained on the task's frames), copied at the start and
    frozen, the critics' MLPs learning on its features (SERL's frozen pre-trained encoder; no
    encoder backward pass either)"""
    target_subset: int = 2
    """the TD target is the minimum over this many critics drawn at random each step (REDQ /
    WSRL); = ensemble: the minimum over all"""
    actor_loss: Literal["sac", "awac", "awr"] = "sac"
    """how the actor learns from the critics: sac, it maximizes Q at its own reparameterized
    samples (plus entropy), which can lead it anywhere the critics extrapolate, e.g. to the
    action bounds; awac (AWAC, Nair et al. 2020), it fits the replayed actions weighted by
    exp(advantage / awac_temperature), advantage = Q(s, a) - Q(s, a ~ pi), so it never leaves
    the actions it has seen tried (the alpha term is then unused); awr (AWR, Peng et al. 2019),
    the same weighting with advantage = the Monte-Carlo return its episode really collected after
    a - Q(s, a ~ pi): the credit of a whole episode's outcome rather than of a critic's one-step
    difference between nearby actions (online steps join the buffer when their episode ends, as
    with mc_bound)"""
    awac_temperature: float = 0.1
    """awac, awr: the advantage's temperature (Q of a 0/1 success reward lies in [0, 1])"""
    awac_max_weight: float = 20.0
    """awac, awr: the largest weight of one replayed action"""
    actor_q: Literal["mean", "min"] = "mean"
    """what the actor maximizes of the ensemble's Q at its own actions: the mean over all members
    (REDQ, with a large ensemble) or the minimum (SAC's clipped double Q, pessimistic where the
    members disagree: actions away from the data)"""
    gamma: float = 0.99
    """discount; a transition marked terminal does not bootstrap (a time limit is not terminal)"""
    tau: float = 5e-3
    """Polyak rate of the target critics"""
    utd: int = 4
    """critic updates per environment step (update-to-data ratio); one actor and temperature
    update follows them"""
    batch_size: int = 256
    """transitions per critic update"""
    actor_optim: OptimConfig = OptimConfig(learning_rate=1e-4)
    """the actor's optimizer"""
    critic_optim: OptimConfig = OptimConfig(learning_rate=3e-4)
    """the critics' optimizer (their encoder included)"""
    temperature_optim: OptimConfig = OptimConfig(learning_rate=3e-4)
    """the entropy temperature's optimizer"""
    init_temperature: float = 0.1
    """the entropy temperature alpha at the start"""
    target_entropy: float | None = None
    """alpha is tuned so the policy's entropy stays near this (default: -action_dim / 2;
    robolearn finetune's default is the starting actor's own entropy, see there)"""
    mc_bound: bool = False
    """the TD target is bounded below by the transition's Monte-Carlo return in its episode (MCAC,
    Wilcox et al. 2022): a success's reward reaches every earlier step of its episode at once,
    not one backup per target-network lag. Sound while rewards are >= 0 (a time limit then only
    shortens a return); finetune adds an online episode's steps when it ends"""
    backup_entropy: bool = False
    """subtract alpha log pi(a'|s') in the TD target (off in Cal-QL and WSRL)"""
    cql_alpha: float = 0.0
    """weight of the CQL regularizer (0: plain SAC, the online phase; Cal-QL pre-training uses
    e.g. 5)"""
    cql_actions: int = 4
    """actions drawn per state for CQL's log-sum-exp: this many uniform, from pi at s and from pi
    at s' each"""
    calql: bool = True
    """Cal-QL: Q of the policy's actions in the CQL term are clamped below by the transition's
    Monte-Carlo return (no effect when cql_alpha is 0)"""
    bc_coef: float = 0.0
    """weight of a BC term on the actor (see bc_loss), RoboFuME's regularizer offline"""
    bc_loss: Literal["nll", "mse"] = "nll"
    """the BC term: nll, -log pi(a_data | s), which also fits the actor's std to the replayed
    actions (online these are its own samples, which its mean drifts away from: it widened the
    std of a sharp BC actor up to 2.4x, drawer, 3-demo BC); mse, the squared distance of the
    actor's mean to a_data (TD3+BC's), which leaves the std to the entropy temperature"""
    std_floor: float = 0.0
    """exploration std floor, <= 1: acting, the critics' next actions and the actor's samples and
    log-densities use max(std, floor), as refinement's PPO does (its std_floor). A BC actor's own
    std collapses to ~0.05 on clean demonstrations: acted on as it is, every replayed action lies
    within ~0.05 of the mean and the critics never see what another action does (drawer, 3-demo
    BC: advantages +-0.005). 0: the actor's own std"""
    shift_pad: int = 4
    """random-shift augmentation of both the actor's and the critics' frames, in pixels (0: off)"""

    def __post_init__(self):
        for name in ("ensemble", "target_subset", "utd", "batch_size", "cql_actions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sac.{name} must be >= 1, got {getattr(self, name)}")
        if self.target_subset > self.ensemble:
            raise ConfigError(
                f"sac.target_subset ({self.target_subset}) cannot exceed sac.ensemble "
                f"({self.ensemble})"
            )
        if not 0.0 <= self.gamma < 1.0:
            raise ConfigError(f"sac.gamma must be in [0, 1), got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"sac.tau must be in (0, 1], got {self.tau}")
        if not (math.isfinite(self.init_temperature) and self.init_temperature > 0):
            raise ConfigError(f"sac.init_temperature must be > 0, got {self.init_temperature}")
        if not (math.isfinite(self.awac_temperature) and self.awac_temperature > 0):
            raise ConfigError(f"sac.awac_temperature must be > 0, got {self.awac_temperature}")
        if not (math.isfinite(self.awac_max_weight) and self.awac_max_weight > 0):
            raise ConfigError(f"sac.awac_max_weight must be > 0, got {self.awac_max_weight}")
        for name in ("cql_alpha", "bc_coef"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"sac.{name} must be finite and >= 0, got {value}")
        if self.target_entropy is not None and not math.isfinite(self.target_entropy):
            raise ConfigError(f"sac.target_entropy must be finite, got {self.target_entropy}")
        if not 0.0 <= self.std_floor <= 1.0:
            raise ConfigError(f"sac.std_floor must be in [0, 1] (std <= 1), got {self.std_floor}")
        if self.shift_pad < 0:
            raise ConfigError(f"sac.shift_pad must be >= 0, got {self.shift_pad}")

    def entropy_target(self, action_dim: int) -> float:
        return -action_dim / 2 if self.target_entropy is None else self.target_entropy
