"""Configs of the BC actor, its optimizer and training, and the named presets
(configs/policy/*.yaml)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from robolearn.core.config import load_preset, require_size
from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The Gaussian actor's architecture.

    channels/strides: the CNN encoder's 3x3 conv layers; image [H, W, 3] -> [H/prod(strides), ...].
    feature_dim: the encoder's output (a linear layer over the flattened last conv map).
    hidden: widths of the MLP over [image features, normalized proprio].
    state_dependent_std: log-std from the MLP (True) or one learned vector (False).
    log_std_min/log_std_max: bounds of log-std; World4RL keeps std <= 1 (log_std_max = 0) so
        actions sampled during refinement stay where the world model is reliable.
    """

    image_size: int = 64
    proprio_dim: int = 7
    action_dim: int = 7
    channels: tuple[int, ...] = (32, 64, 64, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    feature_dim: int = 256
    hidden: tuple[int, ...] = (256, 256)
    state_dependent_std: bool = True
    log_std_min: float = -5.0
    log_std_max: float = 0.0

    def __post_init__(self):
        if len(self.channels) != len(self.strides) or not self.channels:
            raise ConfigError("model.channels and model.strides need the same, non-zero length")
        if not (math.isfinite(self.log_std_min) and self.log_std_min < self.log_std_max <= 0.0):
            raise ConfigError(
                f"need finite model.log_std_min < log_std_max <= 0, got {self.log_std_min}, "
                f"{self.log_std_max}"
            )
        if self.image_size < 8:
            raise ConfigError(f"model.image_size must be >= 8, got {self.image_size}")
        for name in ("proprio_dim", "action_dim", "feature_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("channels", "hidden"):
            if any(width < 1 for width in getattr(self, name)):
                raise ConfigError(f"model.{name} must all be >= 1, got {list(getattr(self, name))}")
        if any(not 1 <= stride <= self.image_size for stride in self.strides):
            raise ConfigError(
                f"model.strides must all be in 1..image_size ({self.image_size}), got "
                f"{list(self.strides)}"
            )
        require_size(
            *self.sizes(),
            f"model.image_size {self.image_size}, channels {list(self.channels)}, strides "
            f"{list(self.strides)}, feature_dim {self.feature_dim}, hidden {list(self.hidden)}, "
            f"proprio_dim {self.proprio_dim}, action_dim {self.action_dim}",
        )

    def sizes(self) -> tuple[int, int]:
        """(parameters, activations per image) of the actor this config builds, counted from its
        shapes alone (nothing is built): the encoder's input and conv outputs, every weight and
        bias. What __post_init__ bounds (robolearn.core.config.require_size); the critic built
        from the same config is this size too, give or take its one-unit head."""
        size, c_in = self.image_size, 3
        params, activations = 0, size * size * c_in
        for c_out, stride in zip(self.channels, self.strides, strict=True):
            size = -(-size // stride)
            params += 9 * c_in * c_out + c_out
            activations += size * size * c_out
            c_in = c_out
        params += (size * size * c_in + 3) * self.feature_dim  # linear, then LayerNorm
        width = self.feature_dim + self.proprio_dim
        for h in self.hidden:
            params += (width + 1) * h
            width = h
        return params + (width + 1) * 2 * self.action_dim, activations


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How the actor is trained, besides its optimizer.

    shift_pad: random-shift augmentation (pad by replicating edges, crop back) in pixels; 0 = off.
        Not in World4RL's description; with 50 demonstrations it is what keeps the CNN from
        memorizing pixel positions.
    nll_beta: beta-NLL (Seitzer et al. 2022): each dimension's NLL is weighted by
        stop_gradient(std^(2 beta)). 0 is the plain NLL of World4RL; there, dimensions the
        expert makes easy (std at its floor) outweigh the image-dependent ones by up to
        e^(2 (max - min)) and the actor underfits where it has to look; 0.5 balances them.
    """

    shift_pad: int = 4
    nll_beta: float = 0.5

    def __post_init__(self):
        if self.shift_pad < 0:
            raise ConfigError(f"training.shift_pad must be >= 0, got {self.shift_pad}")
        if not (math.isfinite(self.nll_beta) and self.nll_beta >= 0):
            raise ConfigError(f"training.nll_beta must be finite and >= 0, got {self.nll_beta}")


OPTIM = OptimConfig(learning_rate=3e-4, weight_decay=1e-4, warmup_steps=100, decay_steps=20_000)


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Everything that defines a BC model and how it is trained (saved in every checkpoint).

    optim: AdamW, linear warm-up then cosine decay (robolearn.core.optim); `robolearn train bc`
        decays over the run's steps, whatever decay_steps the preset says.
    """

    PRESET_KIND: ClassVar[str] = "policy"  # presets: configs/policy/<name>.yaml

    preset: str = "base"
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OPTIM
    training: TrainingConfig = TrainingConfig()


def preset(name: str, **model_overrides) -> BCConfig:
    """Preset `name` (configs/policy/<name>.yaml), with model fields replaced (e.g. image_size,
    action_dim from the data)."""
    cfg = load_preset(BCConfig, name)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model_overrides))


@dataclasses.dataclass(frozen=True)
class FilteredBCConfig:
    """`robolearn finetune --learner filtered-bc`: the actor keeps imitating, and what it imitates
    is its own episodes that the reward classifier called successful (success-filtered BC,
    self-imitation; the same NLL step as `robolearn train bc`).

    rollouts: episodes acted between two updates.
    grad_steps: BC steps of each update, on batches of `batch_size` transitions drawn uniformly
        from every kept episode (each cut after the step whose frame the classifier first
        rewarded: what came after success is not what made it).
    learning_rate: AdamW's constant rate (the BC's weight decay and gradient clip).
    std_floor: acting samples the actor at std max(std, std_floor): a sharp BC (std ~0.05) whose
        samples all follow its mean finds no success its mean does not already have.
    """

    rollouts: int = 16
    grad_steps: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-4
    std_floor: float = 0.1

    def __post_init__(self):
        for name in ("rollouts", "grad_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"filtered_bc.{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(
                f"filtered_bc.learning_rate must be finite and > 0, got {self.learning_rate}"
            )
        if not 0.0 <= self.std_floor <= 1.0:
            raise ConfigError(f"filtered_bc.std_floor must be in [0, 1], got {self.std_floor}")
