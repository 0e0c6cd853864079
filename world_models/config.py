"""Configs of the diffusion world model (architecture, EDM, sampler, optimizer, training) and
its presets.

Presets (all 64x64 unless the data says otherwise; `robolearn train world-model --preset NAME`):

    tiny   tests: ~50k parameters at half the internal resolution (patch 2)
    small  the CPU preset the shipped drawer bundle uses: DIAMOND's layout at half the internal
           resolution (2x2 space-to-depth at the input, depth-to-space at the output), so no
           convolution runs on 64x64 maps; channels [32, 64, 96]; ~4.0M parameters at a
           seventh of base's FLOPs per step (XLA's cost analysis: 0.83 vs 5.98 GFLOP per call)
    base   DIAMOND's Atari denoiser: channels [64]*4, 2 res-blocks per level, attention in the
           middle, ~4.5M parameters at 64x64 (DIAMOND's: 4.4M)
    large  a GPU/TPU model: channels [128, 256, 512, 512], 3 res-blocks, ~149M parameters
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from robolearn.core.config import load_preset
from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig

ACTION_ENCODINGS = ("two_hot", "one_hot", "linear")
SAMPLERS = ("euler", "heun")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The denoiser D(x_{t+1} | x_{t-T+1..t}, a_{t-T+1..t}) and the proprio head.

    context: T, past frames (channel-concatenated with the noisy next frame) and past actions.
    action_encoding: two_hot (World4RL's default), one_hot (nearest bin) or linear (raw values),
        each followed by a learned linear embedding of `action_embed` features per action.
    action_bins: K, bins uniform over [-1, 1] per action dimension (two_hot and one_hot).
    channels/res_blocks: U-Net widths per level (each level after the first halves the
        resolution) and residual blocks per level; attention only in the middle.
    patch: space-to-depth factor at the input (and depth-to-space at the output): the U-Net runs
        at image_size / patch. 1 = full resolution (DIAMOND).
    cond_dim: width of the conditioning vector (noise level + actions) fed to every AdaGroupNorm.
    proprio_hidden: the proprio head, an MLP predicting the next proprio (end-effector pose and
        gripper) from the past T proprio vectors and actions, so a policy that reads proprio can
        act inside the model. Not in World4RL, whose policy reads images only.
    context_noise: noise augmentation of the context frames against autoregressive drift
        (GameNGen): in training each sample's T past frames get Gaussian noise of a level drawn
        uniformly from [0, context_noise] (in [-1, 1] pixel units), and the denoiser is told
        that level (its Fourier features join the conditioning), so it learns to correct
        imperfect past frames instead of copying their errors forward. 0 = off (DIAMOND, and
        every model trained before this option: no extra parameters).
    context_clean: with context_noise > 0, the fraction of training samples whose context stays
        clean (level exactly 0, the level the sampler uses by default); the others draw their
        level as above. A uniform level is almost never 0, so without it the model is trained
        least where it samples (its first steps are blurrier than a plain model's). 0 = off.
    """

    image_size: int = 64
    context: int = 4
    action_dim: int = 7
    proprio_dim: int = 7
    action_encoding: str = "two_hot"
    action_bins: int = 21
    action_embed: int = 32
    channels: tuple[int, ...] = (64, 64, 64, 64)
    res_blocks: int = 2
    patch: int = 1
    cond_dim: int = 256
    attention_heads: int = 4
    proprio_hidden: tuple[int, ...] = (256, 256)
    context_noise: float = 0.0
    context_clean: float = 0.0

    def __post_init__(self):
        if self.action_encoding not in ACTION_ENCODINGS:
            raise ConfigError(
                f"model.action_encoding must be one of {', '.join(ACTION_ENCODINGS)}, "
                f"got {self.action_encoding!r}"
            )
        for name in ("image_size", "action_dim", "proprio_dim", "action_embed", "cond_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.attention_heads < 1 or any(h < 1 for h in self.proprio_hidden):
            raise ConfigError(
                f"model.attention_heads and proprio_hidden must be >= 1, got "
                f"{self.attention_heads}, {list(self.proprio_hidden)}"
            )
        if self.action_bins < 2:
            raise ConfigError(f"model.action_bins must be >= 2, got {self.action_bins}")
        if self.context < 1:
            raise ConfigError(f"model.context must be >= 1, got {self.context}")
        if not self.channels or self.res_blocks < 1:
            raise ConfigError("model.channels must be non-empty and model.res_blocks >= 1")
        scale = self.patch * 2 ** (len(self.channels) - 1)
        if self.patch < 1 or self.image_size % scale:
            raise ConfigError(
                f"model.image_size {self.image_size} must be divisible by patch * 2^(levels-1) "
                f"= {scale}"
            )
        if any(c < 8 or c % 8 for c in self.channels):
            raise ConfigError(f"model.channels must be multiples of 8, got {self.channels}")
        if not 0.0 <= self.context_noise <= 10.0:  # also false for NaN
            raise ConfigError(
                f"model.context_noise must be in [0, 10] (a noise level in [-1, 1] pixel "
                f"units), got {self.context_noise}"
            )
        if not 0.0 <= self.context_clean < 1.0:  # also false for NaN
            raise ConfigError(
                f"model.context_clean must be in [0, 1) (a fraction of the training samples), "
                f"got {self.context_clean}"
            )
        if self.context_clean > 0 and self.context_noise == 0:
            raise ConfigError("model.context_clean needs model.context_noise > 0 (noisy context)")

    @property
    def action_features(self) -> int:
        """Length of one encoded action vector (before the learned embedding)."""
        if self.action_encoding == "linear":
            return self.action_dim
        return self.action_dim * self.action_bins


@dataclasses.dataclass(frozen=True)
class EDMConfig:
    """EDM preconditioning and training noise levels (DIAMOND's values).

    sigma_offset: offset noise, a per-image, per-channel constant added to the noise in training;
        the preconditioning uses sigma' = sqrt(sigma^2 + sigma_offset^2).
    p_mean/p_std: training sigma ~ LogNormal(p_mean, p_std), clipped to [sigma_min, sigma_max].
    """

    sigma_data: float = 0.5
    sigma_offset: float = 0.3
    p_mean: float = -0.4
    p_std: float = 1.2
    sigma_min: float = 2e-3
    sigma_max: float = 20.0


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Karras noise levels (sigma_max -> sigma_min, then 0) and the ODE solver per frame.

    steps: denoiser calls per frame with euler (heun: 2 per step except the last).
    context_noise: the noise level added to the context frames when sampling, and told to the
        denoiser; only for a model trained with model.context_noise >= this level. 0 = clean
        context (the model is told 0).
    distilled: 0 for a denoiser trained on EDM's loss (any steps and solver); N for a student
        distilled to produce its teacher's samples in exactly N euler steps at these levels
        (`robolearn train world-model --distill-from`): other steps or solvers are refused.
    """

    steps: int = 3
    method: str = "euler"
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    context_noise: float = 0.0
    distilled: int = 0

    def __post_init__(self):
        if self.distilled < 0:
            raise ConfigError(f"sampler.distilled must be >= 0, got {self.distilled}")
        if self.distilled and (self.steps, self.method) != (self.distilled, "euler"):
            raise ConfigError(
                f"this world model was distilled for {self.distilled} euler step(s) per frame; "
                f"{self.steps} {self.method} step(s) would run it off what it learned"
            )
        if self.steps < 1:
            raise ConfigError(f"sampler.steps must be >= 1, got {self.steps}")
        if self.method not in SAMPLERS:
            raise ConfigError(f"sampler.method must be one of {', '.join(SAMPLERS)}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError("need 0 < sampler.sigma_min < sampler.sigma_max")
        if not 0.0 <= self.context_noise <= 10.0:  # also false for NaN
            raise ConfigError(f"sampler.context_noise must be in [0, 10], got {self.context_noise}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How the world model is trained, besides its optimizer.

    ema_decay: the evaluated and shipped weights are an exponential moving average.
    proprio_weight: weight of the proprio head's MSE (on normalized deltas) in the loss.
    """

    ema_decay: float = 0.999
    proprio_weight: float = 0.1


OPTIM = OptimConfig(learning_rate=2e-4, weight_decay=1e-2, warmup_steps=200, decay_steps=50_000)


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Everything that defines a world model and how it is trained (saved in every checkpoint).

    optim: AdamW, linear warm-up then cosine decay (robolearn.core.optim); `robolearn train
        world-model` decays over the run's steps (also when it starts from --init).
    """

    PRESET_KIND: ClassVar[str] = "world_model"  # presets: configs/world_model/<name>.yaml

    preset: str = "base"
    model: ModelConfig = ModelConfig()
    edm: EDMConfig = EDMConfig()
    sampler: SamplerConfig = SamplerConfig()
    optim: OptimConfig = OPTIM
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self):
        if self.sampler.context_noise > self.model.context_noise:
            raise ConfigError(
                f"sampler.context_noise {self.sampler.context_noise} is above the context noise "
                f"the model was trained with (model.context_noise {self.model.context_noise})"
            )


def preset(name: str, **model_overrides) -> WorldModelConfig:
    """Preset `name` (configs/world_model/<name>.yaml) with model fields replaced (image_size,
    action_dim, ... from the data)."""
    cfg = load_preset(WorldModelConfig, name)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **model_overrides))


def with_context_noise(cfg: WorldModelConfig, level: float, clean: float = 0.0) -> WorldModelConfig:
    """cfg trained with noise-augmented context up to `level` (model.context_noise), a fraction
    `clean` of the samples with a clean context (model.context_clean)."""
    model = dataclasses.replace(cfg.model, context_noise=level, context_clean=clean)
    return dataclasses.replace(cfg, model=model)


def distilled(teacher: WorldModelConfig, steps: int) -> WorldModelConfig:
    """The config of a student of `teacher` distilled for `steps` euler steps per frame."""
    sampler = dataclasses.replace(teacher.sampler, steps=steps, method="euler", distilled=steps)
    return dataclasses.replace(teacher, sampler=sampler)
