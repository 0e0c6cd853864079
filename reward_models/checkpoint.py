"""Self-describing reward-classifier checkpoint directories, and the RewardModel loaded from one.

Layout of a checkpoint directory DIR (what `robolearn train reward` writes):

    DIR/robolearn-reward.json  {"format": "robolearn-reward", "version": 1, "kind": "cnn",
                                "tasks": [...], "instructions": {task: text}, "image_size": 64,
                                "temperature": T, "threshold": p, "target_fpr": 0.02}
    DIR/config.yaml            the RewardConfig (model, labelling recipe, optimizer, training);
                               an older one with shift_pad under `optim` (now `training`) is
                               migrated on reading (migrate_config)
    DIR/stats.json             labelled-frame counts per split and task, episodes per split
    DIR/checkpoints/<step>/    orbax {"step", "params"}: the trained parameters only
    DIR/siglip/                kind "siglip" only: the HF SigLIP files the towers started from
                               (config.json, model.safetensors, spiece.model or tokenizer.json,
                               tokenizer_config.json, special_tokens_map.json), copied byte for
                               byte from RewardConfig.siglip.source at train time

A siglip checkpoint is self-contained: its towers and tokenizer load from DIR/siglip/, never from
the source directory (which may be moved or deleted). With frozen towers (the default) the orbax
parameters are {"head": ...} and the towers are exactly DIR/siglip/model.safetensors; with
finetune_towers they are {"head": ..., "towers": ...} and the fine-tuned towers in orbax replace
the copied ones (still read, for their shapes and as the starting point they were).

The marker is written last, after calibration: a directory without it is not (yet) a reward
checkpoint. Nothing here unpickles.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import struct
from robolearn.reward_models.calibration import sigmoid
from robolearn.reward_models.config import RewardConfig
from robolearn.reward_models.siglip import SiglipFormatError, copy_hf
from robolearn.reward_models.train import (
    Classifier,
    make_classifier,
    make_task_logits,
    merge_params,
    predict_logits,
    split_params,
)

from robolearn.core.checkpoint import (
    CheckpointError,
    CheckpointFiles,
    CheckpointFormat,
    make_manager,
    move_keys,
    on_this_device,
    require_finite,
    save_state,
)

FORMAT = "robolearn-reward"
VERSION = 1
MARKER = "robolearn-reward.json"
SIGLIP_DIR = "siglip"


@dataclasses.dataclass(frozen=True)
class RewardInfo:
    """What a reward checkpoint judges and how (robolearn-reward.json).

    tasks: the tasks it covers, in the order of the model's task index.
    instructions: each task's instruction text (what a text-conditioned kind is prompted with).
    temperature: calibrated logit = logit / temperature.
    threshold: reward = 1 where the calibrated probability >= threshold, chosen for a
        false-positive rate <= target_fpr on the validation negatives.
    """

    kind: str
    tasks: tuple[str, ...]
    instructions: dict[str, str]
    image_size: int
    temperature: float
    threshold: float
    target_fpr: float

    def __post_init__(self):
        if not self.tasks or not isinstance(self.instructions, dict):
            raise ValueError("need tasks, and instructions mapping each task to its text")
        missing = [task for task in self.tasks if not isinstance(self.instructions.get(task), str)]
        if missing:
            raise ValueError(f"instructions has no text for task {missing[0]!r}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature}")
        if not (math.isfinite(self.threshold) and 0.0 <= self.target_fpr < 1.0):
            raise ValueError(
                f"need a finite threshold and target_fpr in [0, 1), got {self.threshold}, "
                f"{self.target_fpr}"
            )


@dataclasses.dataclass(frozen=True)
class LabelStats:
    """stats.json: {"episodes": {split: n}, "frames": {split: {task: {positives, negatives}}}}."""

    episodes: dict[str, int]
    frames: dict[str, dict[str, dict[str, int]]]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LabelStats:
        return cls(dict(data["episodes"]), dict(data["frames"]))


def migrate_config(data: dict) -> dict:
    """config.yaml before robolearn.core.optim: shift_pad sat in `optim`."""
    return move_keys(data, "optim", "training", ("shift_pad",))


CHECKPOINT = CheckpointFormat(FORMAT, VERSION, RewardInfo, "reward", "robolearn train reward")
FILES = CheckpointFiles(RewardConfig, LabelStats, migrate_config)
# read_info(root) -> RewardInfo and read_config(root) -> (RewardConfig, LabelStats), old layouts
# migrated; one-line CheckpointErrors for a directory that is not a (complete) reward checkpoint.
read_info = CHECKPOINT.read_info
read_config = FILES.read


class SavedParams(struct.PyTreeNode):
    """What checkpoints/<step>/ holds."""

    step: jax.Array
    params: Any


def write_config(root: Path, cfg: RewardConfig, stats: LabelStats) -> None:
    """Create `root` with config.yaml and stats.json."""
    FILES.write(root, cfg, stats)


def write_towers(root: Path, source: str | Path) -> Path:
    """Copy the HF SigLIP files of `source` into root/siglip/ (the towers and tokenizer a
    siglip checkpoint loads); returns that directory."""
    return copy_hf(source, root / SIGLIP_DIR)


def make_checkpoint_classifier(root: Path, cfg: RewardConfig, info: RewardInfo) -> Classifier:
    """The Classifier of a checkpoint directory, its towers and tokenizer (kind siglip) read
    from root/siglip/, prompted with the instructions of `info`'s tasks."""
    instructions = [info.instructions[task] for task in info.tasks]
    return make_classifier(cfg, instructions, root / SIGLIP_DIR)


def save_params(root: Path, step: int, params: Any) -> None:
    """Save the trained parameters (TrainState.params: not the frozen ones) under
    checkpoints/<step>/ and wait until they are on disk; this process alone (in a multi-host
    job, process 0, from its replica)."""
    from robolearn.core.mesh import local

    saved = SavedParams(jnp.asarray(step, jnp.int32), params)
    if jax.process_count() == 1:  # as jax arrays: orbax then records their shapes, which
        saved = jax.tree.map(jnp.asarray, saved)  # `robolearn bundles` reads (host copies: none)
    manager = make_manager(root, max_to_keep=1, alone=True)
    try:
        save_state(manager, local(saved))
    finally:
        manager.close()


def write_info(root: Path, info: RewardInfo) -> None:
    """Write the marker (last: it makes the directory a complete reward checkpoint)."""
    CHECKPOINT.write_info(root, info)


def check_task(root: str | Path, info: RewardInfo, task: str | None) -> str:
    """`task` if the checkpoint covers it; None means its only task. One-line CheckpointError
    otherwise."""
    if task is None:
        if len(info.tasks) == 1:
            return info.tasks[0]
        raise CheckpointError(
            f"{root}: reward checkpoint covers tasks {', '.join(info.tasks)}; name one"
        )
    if task not in info.tasks:
        raise CheckpointError(
            f"{root}: reward checkpoint covers tasks {', '.join(info.tasks)}, not {task}"
        )
    return task


class RewardModel:
    """A calibrated success classifier: frames -> P(success) and binary rewards.

    info: the RewardInfo; params: the parameter pytree; config: the RewardConfig.
    make_logit_fn(task) -> fn(params, images uint8 [B, H, W, 3]) -> calibrated logits
        float32 [B] (already divided by the temperature); pure and jittable, the task closed
        over, so it runs inside jax.lax.scan. reward = calibrated prob >= info.threshold.
        A siglip model's instruction is embedded once, by make_logit_fn, with self.params.
    prob(images, task) -> float64 [B]; reward(images, task) -> float32 [B] in {0, 1}.
    `task` may be left out when the checkpoint covers one task (or it was loaded for one).
    """

    def __init__(self, root: Path, info: RewardInfo, task: str | None = None):
        self.root, self.info, self.task = root, info, task
        self.config, _ = read_config(root)
        try:
            self._classifier = make_checkpoint_classifier(root, self.config, info)
            self.step, self.params = _restore(root, self._classifier)
        except SiglipFormatError as exc:
            raise CheckpointError(f"{root}: broken reward checkpoint ({exc})") from exc
        self._jitted: dict[str, Any] = {}

    def make_logit_fn(self, task: str | None = None):
        """fn(params, images uint8 [B, H, W, 3]) -> calibrated logits float32 [B] for `task`."""
        index = self.info.tasks.index(check_task(self.root, self.info, task or self.task))
        logits = make_task_logits(self._classifier, self.params, index)
        temperature = float(self.info.temperature)

        def fn(params: Any, images: jax.Array) -> jax.Array:
            return logits(params, images).astype(jnp.float32) / temperature

        return fn

    def prob(self, images: np.ndarray, task: str | None = None, batch_size: int = 256):
        """Calibrated P(success) of images uint8 [B, H, W, 3] for `task`: float64 [B], in
        chunks of at most `batch_size` (padded to a power of two: few shapes to compile)."""
        images = self._check_images(images)
        task = check_task(self.root, self.info, task or self.task)
        if task not in self._jitted:
            fn = self.make_logit_fn(task)
            self._jitted[task] = jax.jit(lambda params, images, _task_index: fn(params, images))
        index = np.arange(len(images))
        chunk = min(batch_size, 1 << max(len(images) - 1, 0).bit_length())
        logits = predict_logits(
            self._jitted[task], self.params, images, index, np.zeros_like(index), chunk
        )
        return sigmoid(logits)

    def reward(self, images: np.ndarray, task: str | None = None) -> np.ndarray:
        """Binary reward of images uint8 [B, H, W, 3]: float32 [B], 1 where prob >= threshold."""
        return (self.prob(images, task) >= self.info.threshold).astype(np.float32)

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        size = self.info.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise CheckpointError(
                f"{self.root}: reward model expects images uint8 [B, {size}, {size}, 3], got "
                f"{images.dtype} {list(images.shape)}"
            )
        return images


def load_reward_model(path: str | Path, task: str | None = None) -> RewardModel:
    """Load a reward checkpoint directory; one-line CheckpointError if it is not one, does not
    cover `task`, or is broken."""
    root = Path(path)
    info = read_info(root)
    if task is not None:
        check_task(root, info, task)
    return RewardModel(root, info, task)


def _restore(root: Path, classifier: Classifier) -> tuple[int, Any]:
    """(step, params): the saved trained parameters (refused if damaged or not finite), with
    the frozen ones from a fresh init."""
    manager = make_manager(root)
    try:
        step = manager.latest_step()
        if step is None:
            raise CheckpointError(f"{root}: broken reward checkpoint (no saved parameters)")
        trained, frozen = split_params(classifier, classifier.init(jax.random.key(0)))
        abstract = on_this_device(SavedParams(jax.ShapeDtypeStruct((), jnp.int32), trained))
        try:
            saved = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as exc:  # orbax/tensorstore raise many types; all mean "broken"
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise CheckpointError(
                f"{root}: broken reward checkpoint ({type(exc).__name__}: {first})"
            ) from exc
    finally:
        manager.close()
    require_finite(saved.params, f"{root / 'checkpoints'}/{step}")
    return int(saved.step), merge_params(saved.params, frozen)
