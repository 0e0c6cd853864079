"""Configs of the BC actor, its optimizer and training, and the named presets (configs/policy/*.yaml)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from robolearn.core.config import load_preset
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
        if not self.log_std_min < self.log_std_max <= 0.0:
            raise ConfigError(
                f"need log_std_min < log_std_max <= 0, got {self.log_std_min}, {self.log_std_max}"
            )
        if self.image_size < 8:
            raise ConfigError(f"model.image_size must be >= 8, got {self.image_size}")


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
