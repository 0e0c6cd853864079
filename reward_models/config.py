"""Configs of the success classifiers, their labelling recipe, optimizer and training; presets.

A RewardConfig is saved as config.yaml in every reward checkpoint and loaded back strictly.
`kind` names the classifier family: "cnn" (a small CNN from scratch, the light default) or
"siglip" (SigLIP towers and a success head, conditioned on the task's instruction text).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from robolearn.core.config import load_preset, require_size
from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig

KINDS = ("cnn", "siglip")


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """The small CNN classifier (World4RL trains a pretrained ResNet18; ours is from scratch).

    image_size: input side in pixels (square frames).
    channels: widths of the 3x3 stride-2 conv layers.
    hidden: width of the hidden layer before the logit.
    num_tasks: tasks the checkpoint covers; a learned per-task vector is added to the hidden
        layer's pre-activation (the same as a one-hot task code concatenated to its input), so
        one network can call a frame a success for one task and not for another.
    """

    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)
    hidden: int = 128
    num_tasks: int = 1

    def __post_init__(self):
        if not self.channels or self.image_size < 8 or self.num_tasks < 1:
            raise ConfigError(
                "cnn needs at least one conv layer, image_size >= 8 and num_tasks >= 1, got "
                f"channels {self.channels}, image_size {self.image_size}, "
                f"num_tasks {self.num_tasks}"
            )
        if any(c < 1 for c in self.channels) or self.hidden < 1:
            raise ConfigError(
                f"cnn.channels and cnn.hidden must be >= 1, got {list(self.channels)}, "
                f"{self.hidden}"
            )
        require_size(
            *self.sizes(),
            f"cnn.image_size {self.image_size}, channels {list(self.channels)}, hidden "
            f"{self.hidden}, num_tasks {self.num_tasks}",
        )

    def sizes(self) -> tuple[int, int]:
        """(parameters, activations per image) of the SuccessCNN this config builds, counted
        from its shapes alone (nothing is built): what __post_init__ bounds."""
        size, c_in = self.image_size, 3
        params, activations = 0, size * size * c_in
        for c_out in self.channels:
            size = -(-size // 2)
            params += 9 * c_in * c_out + c_out
            activations += size * size * c_out
            c_in = c_out
        params += (size * size * c_in + 1 + self.num_tasks) * self.hidden + self.hidden + 1
        return params, activations


@dataclasses.dataclass(frozen=True)
class SiglipRewardConfig:
    """The VLM classifier: SigLIP towers and a success head (robolearn.reward_models.siglip,
    RoboFuME's VLM reward with SigLIP in place of MiniGPT-4), prompted with the task's instruction.

    source: the Hugging Face SigLIP directory the towers were initialised from. A record only:
        a reward checkpoint holds its own copy (robolearn.reward_models.checkpoint).
    head_hidden: width of the head's MLP.
    finetune_towers: train the towers too; by default they stay frozen and only the head
        (initialised at SigLIP's own image-text logit) is trained, at optim.learning_rate.
    tower_learning_rate: peak learning rate of fine-tuned towers (pretrained weights want far
        less than a fresh head).
    max_text_length: tokens per prompt; None = the tokenizer's model_max_length (SigLIP pools
        the last position, so prompts must be padded as in pretraining). Training resolves it.
    """

    source: str = ""
    head_hidden: int = 256
    finetune_towers: bool = False
    tower_learning_rate: float = 1e-5
    max_text_length: int | None = None

    def __post_init__(self):
        if self.head_hidden < 1 or (self.max_text_length is not None and self.max_text_length < 2):
            raise ConfigError(
                f"siglip needs head_hidden >= 1 and max_text_length >= 2, got "
                f"{self.head_hidden}, {self.max_text_length}"
            )


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """RoboFuME's labelling recipe (see robolearn.reward_models.labels).

    positives_last: the last frames of a success run that are positives (RoboFuME: 3).
    ambiguous_before: frames just before a success run (and just after one the episode
        undoes) that are left out of the negatives (RoboFuME: ~10).
    other_tasks_negative: frames of other tasks' episodes are negatives for a task. RoboFuME
        does this; turn it off when tasks share a scene whose start state solves another task
        (a closed drawer is the goal of drawer-close and the start of drawer).
    """

    positives_last: int = 3
    ambiguous_before: int = 10
    other_tasks_negative: bool = True

    def __post_init__(self):
        if self.positives_last < 1 or self.ambiguous_before < 0:
            raise ConfigError(
                f"need positives_last >= 1 and ambiguous_before >= 0, got "
                f"{self.positives_last}, {self.ambiguous_before}"
            )


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How the classifier is trained, besides its optimizer.

    shift_pad: random-shift augmentation in pixels (pad by replicating edges, crop back); 0 off.
    """

    shift_pad: int = 4


OPTIM = OptimConfig(learning_rate=1e-3, weight_decay=1e-4, warmup_steps=50, decay_steps=2000)


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Everything that defines a reward classifier and how it was trained (config.yaml).

    optim: AdamW, linear warm-up then cosine decay over the run (robolearn.core.optim; preset()
        sets decay_steps). learning_rate is the peak rate of the CNN, or of the head on frozen
        SigLIP towers (1e-3 suits both: a small network trained from scratch); fine-tuned towers
        have their own (siglip.tower_learning_rate).
    """

    PRESET_KIND: ClassVar[str] = "reward"  # presets: configs/reward/<name>.yaml

    kind: str = "cnn"
    preset: str = "base"
    cnn: CNNConfig = CNNConfig()
    siglip: SiglipRewardConfig = SiglipRewardConfig()
    labels: LabelConfig = LabelConfig()
    optim: OptimConfig = OPTIM
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown reward model kind {self.kind!r}; choose from {KINDS}")


def preset(name: str, image_size: int, num_tasks: int, steps: int) -> RewardConfig:
    """Preset `name` (configs/reward/<name>.yaml) for frames of `image_size`, `num_tasks`
    tasks, decaying over `steps`."""
    cfg = load_preset(RewardConfig, name)
    cnn = dataclasses.replace(cfg.cnn, image_size=image_size, num_tasks=num_tasks)
    optim = dataclasses.replace(cfg.optim, decay_steps=steps)
    return dataclasses.replace(cfg, cnn=cnn, optim=optim)
