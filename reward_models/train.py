"""Training a success classifier: the model as pure functions, the train state, the pure jitted
`train_step(state, batch) -> (state, metrics)` and batched inference. The state is
robolearn.core's TrainState; its params are the trained part of the classifier's params (the
frozen part is passed to make_train_step).

    classifier = make_classifier(cfg, instructions, siglip_dir)  # cfg.kind picks the family
    state, frozen = init_train_state(classifier, cfg.optim, rng)
    step = make_train_step(classifier, cfg, frozen)
    state, metrics = step(state, batch)   # image uint8 [B, H, W, 3], task int32 [B], label bool [B]
    params = merge_params(state.params, frozen)

fit_success_cnn(images, labels) fits a CNN in memory in one call (eval world-model's detector).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from robolearn.reward_models.cnn import cnn_functions
from robolearn.reward_models.config import OPTIM, CNNConfig, RewardConfig, TrainingConfig
from robolearn.reward_models.labels import balanced_batch
from robolearn.reward_models.vlm import TOWERS, siglip_functions

from robolearn.core import optim as core_optim
from robolearn.core.augment import random_shift
from robolearn.core.errors import ConfigError
from robolearn.core.optim import OptimConfig
from robolearn.core.train_state import TrainState


class Classifier(NamedTuple):
    """A success classifier family as pure functions of its parameters (a pytree):

    init(rng) -> params
    logits(params, images uint8 [B, H, W, 3], task int32 [B], rng=None) -> float32 [B], the
        uncalibrated success logit of each frame for each frame's task (an index into the
        checkpoint's tasks). `rng` is given at training time only: a text-conditioned
        classifier uses it to sample a paraphrase of the instruction (labels.paraphrases);
        at inference it uses paraphrase 0, the instruction itself. The CNN ignores it.
    task_logits(params, task int) -> fn(params, images) -> float32 [B], the logits for one
        task; None: logits with the task index filled in. A text-conditioned classifier
        embeds the instruction once there, with the params given, so fn skips its text tower.
    frozen: keys of a dict of params that are never trained (not differentiated, no
        optimizer state, not saved with the trained parameters).
    learning_rates: {key of a dict of params: peak learning rate} for parts trained at
        another rate than OptimConfig.learning_rate.
    """

    init: Callable[[jax.Array], Any]
    logits: Callable[..., jax.Array]
    task_logits: Callable[[Any, int], Callable] | None = None
    frozen: tuple[str, ...] = ()
    learning_rates: Mapping[str, float] = MappingProxyType({})


def make_classifier(
    cfg: RewardConfig, instructions: Sequence[str] = (), siglip_dir: str | Path | None = None
) -> Classifier:
    """The Classifier of `cfg.kind`. The siglip kind needs the instructions of the tasks (in
    task-index order) and the HF SigLIP directory of its towers and tokenizer."""
    if cfg.kind == "cnn":
        init, logits = cnn_functions(cfg.cnn)
        return Classifier(
            jax.jit(init), lambda params, images, task, rng=None: logits(params, images, task)
        )
    if cfg.kind == "siglip":
        if siglip_dir is None or not instructions:
            raise ConfigError("a siglip classifier needs its SigLIP directory and instructions")
        init, logits, task_logits = siglip_functions(cfg.siglip, siglip_dir, instructions)
        if cfg.siglip.finetune_towers:
            rates = {TOWERS: cfg.siglip.tower_learning_rate}
            return Classifier(init, logits, task_logits, learning_rates=rates)
        return Classifier(init, logits, task_logits, frozen=(TOWERS,))
    raise ConfigError(f"no classifier of kind {cfg.kind!r}")


def split_params(classifier: Classifier, params: Any) -> tuple[Any, dict]:
    """(trained, frozen) parts of the classifier's params (frozen {} when nothing is)."""
    if not classifier.frozen:
        return params, {}
    frozen = {k: params[k] for k in classifier.frozen}
    return {k: v for k, v in params.items() if k not in frozen}, frozen


def merge_params(trained: Any, frozen: dict) -> Any:
    """The classifier's params from the parts split_params gave."""
    return {**trained, **frozen} if frozen else trained


def make_task_logits(classifier: Classifier, params: Any, task: int) -> Callable:
    """fn(params, images uint8 [B, H, W, 3]) -> float32 [B]: logits for task index `task`."""
    if classifier.task_logits is not None:
        return classifier.task_logits(params, task)

    def fn(params: Any, images: jax.Array) -> jax.Array:
        return classifier.logits(params, images, jnp.full((images.shape[0],), task, jnp.int32))

    return fn


def make_optimizer(
    cfg: OptimConfig, learning_rates: Mapping[str, float] = MappingProxyType({})
) -> optax.GradientTransformation:
    """robolearn.core.optim.make_optimizer(cfg); `learning_rates` {key: peak rate} gives parts
    of a dict of params their own rate (and their own clipping), the rest of cfg shared."""

    def at(rate: float) -> optax.GradientTransformation:
        return core_optim.make_optimizer(dataclasses.replace(cfg, learning_rate=rate))

    if not learning_rates:
        return at(cfg.learning_rate)
    # "" labels the params at the base rate.
    transforms = {"": at(cfg.learning_rate)} | {k: at(v) for k, v in learning_rates.items()}

    def groups(params: dict) -> dict:
        return {
            k: jax.tree.map(lambda _, k=k: k if k in learning_rates else "", v)
            for k, v in params.items()
        }

    return optax.multi_transform(transforms, groups)


def init_train_state(
    classifier: Classifier, cfg: OptimConfig, rng: jax.Array
) -> tuple[TrainState, dict]:
    """(fresh train state, the frozen params). The optimizer state covers the trained params
    only. (The CNN's init is jitted: eager initializers would compile one kernel each.)"""
    init_rng, rng = jax.random.split(rng)
    params, frozen = split_params(classifier, classifier.init(init_rng))
    opt_state = jax.jit(make_optimizer(cfg, classifier.learning_rates).init)(params)
    return TrainState(jnp.zeros((), jnp.int32), params, opt_state, rng), frozen


def make_train_step(
    classifier: Classifier, cfg: RewardConfig, frozen: dict | None = None
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jitted binary cross-entropy step (cfg.optim, cfg.training). Metrics: loss, accuracy
    (at logit 0), grad_norm. `frozen` (from init_train_state) goes in as an argument of the
    compiled step, not as constants, and gets no gradient."""
    tx = make_optimizer(cfg.optim, classifier.learning_rates)
    shift_pad = cfg.training.shift_pad
    frozen = frozen or {}

    def loss_fn(params, frozen, image, task, label, rng):
        logits = classifier.logits(merge_params(params, frozen), image, task, rng)
        return optax.sigmoid_binary_cross_entropy(logits, label).mean(), logits

    @jax.jit
    def step(state: TrainState, frozen: dict, batch: dict) -> tuple[TrainState, dict]:
        rng, shift_rng, model_rng = jax.random.split(state.rng, 3)
        image = batch["image"]
        if shift_pad:
            image = random_shift(shift_rng, image, shift_pad)
        label = batch["label"].astype(jnp.float32)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, logits), grads = grad_fn(
            state.params, frozen, image, batch["task"], label, model_rng
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean((logits > 0) == (label > 0.5)),
            "grad_norm": optax.tree.norm(grads),
        }
        return TrainState(state.step + 1, params, opt_state, rng), metrics

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        return step(state, frozen, batch)

    return train_step


def predict_logits(
    logit_fn: Callable,
    params: Any,
    images: np.ndarray,
    frame: np.ndarray,
    task: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """logit_fn(params, images[frame] uint8 [b, H, W, 3], task int32 [b]) for all N (frame,
    task) pairs, in chunks gathered one at a time -> float32 [N]. Every chunk is padded to
    `batch_size`, so a jitted logit_fn compiles one shape."""
    out = []
    for start in range(0, len(frame), batch_size):
        f, t = frame[start : start + batch_size], task[start : start + batch_size]
        n = len(f)
        f, t = np.pad(f, (0, batch_size - n), mode="edge"), np.pad(t, (0, batch_size - n))
        out.append(np.asarray(logit_fn(params, images[f], t.astype(np.int32)))[:n])
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def fit_success_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    steps: int = 400,
    batch_size: int = 64,
    seed: int = 0,
    learning_rate: float = 1e-3,
) -> Callable[[np.ndarray], np.ndarray]:
    """Train a SuccessCNN on (images uint8 [N, H, W, 3], labels bool [N]) in memory, batches
    balanced 50/50 between the classes; returns frames [M, H, W, 3] -> P(success) float32 [M].
    Needs both classes. No calibration: for quick detectors, not for rewards."""
    labels = np.asarray(labels, bool)
    cfg = RewardConfig(
        cnn=CNNConfig(image_size=int(images.shape[1])),
        optim=dataclasses.replace(
            OPTIM, learning_rate=learning_rate, warmup_steps=0, decay_steps=steps
        ),
        training=TrainingConfig(shift_pad=0),
    )
    classifier = make_classifier(cfg)
    state, _ = init_train_state(classifier, cfg.optim, jax.random.key(seed))
    train_step = make_train_step(classifier, cfg)
    rng = np.random.default_rng(seed)
    task = np.zeros(batch_size, np.int32)
    for _ in range(steps):
        idx = balanced_batch(rng, labels, batch_size)
        state, _ = train_step(state, {"image": images[idx], "task": task, "label": labels[idx]})
    logit_fn = jax.jit(classifier.logits)

    def classify(frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        index = np.arange(len(frames))
        logits = predict_logits(logit_fn, state.params, frames, index, np.zeros_like(index))
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    return classify
