"""The VLM success classifier C(x, instruction) -> logit of P(success | frame, instruction):
SigLIP towers and a success head (robolearn.reward_models.siglip) as pure functions of their
parameters, prompted with each task's instruction text. Model only; see
robolearn.reward_models.train for training and robolearn.reward_models.checkpoint for loading.

RoboFuME prompts its VLM with paraphrases of the task's instruction at training time; here each
training frame gets one of labels.paraphrases(instruction), drawn with the rng the train step
passes, and inference uses paraphrase 0, the instruction itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from robolearn.reward_models.config import SiglipRewardConfig
from robolearn.reward_models.labels import paraphrases
from robolearn.reward_models.siglip import (
    HeadConfig,
    SiglipFormatError,
    SiglipModel,
    VLMSuccessClassifier,
    load_hf,
    load_tokenizer,
    read_config,
    trainable_filter,
)
from robolearn.reward_models.siglip.load import WEIGHTS_FILE

HEAD, TOWERS = "head", "towers"


def check_source(directory: str | Path, max_length: int | None = None) -> int:
    """Check an HF SigLIP directory before training from it: config.json, model.safetensors,
    a tokenizer, and prompts padded to `max_length` (None: the tokenizer's model_max_length)
    that the text tower takes. Returns that prompt length; a one-line SiglipFormatError
    naming the file at fault otherwise."""
    directory = Path(directory)
    towers_cfg = read_config(directory)
    if not (directory / WEIGHTS_FILE).is_file():
        raise SiglipFormatError(
            f"{directory / WEIGHTS_FILE}: not found (a SigLIP checkpoint directory has "
            f"{WEIGHTS_FILE})"
        )
    length = load_tokenizer(directory, max_length=max_length).max_length
    limit = towers_cfg.text.max_position_embeddings
    if length > limit:
        raise SiglipFormatError(
            f"{directory}: prompts of {length} tokens, but the text tower takes at most "
            f"{limit}; set siglip max_text_length <= {limit}"
        )
    return length


def prompt_ids(directory: str | Path, instructions: Sequence[str], max_length: int) -> np.ndarray:
    """Token ids int32 [K, P, L = max_length] of the P paraphrases of each of K instructions,
    by the tokenizer of SigLIP directory `directory`."""
    tokenizer = load_tokenizer(directory, max_length=max_length)
    return np.stack([tokenizer.tokenize(list(paraphrases(text))) for text in instructions])


def siglip_functions(
    cfg: SiglipRewardConfig, directory: str | Path, instructions: Sequence[str]
) -> tuple[Callable, Callable, Callable]:
    """(init, logits, task_logits) of the VLM classifier whose towers and tokenizer are in the
    HF SigLIP directory `directory`, for tasks with `instructions` (in task-index order).

    params = {"head": nnx.State, "towers": nnx.State} (the head's and the towers' nnx.Params).
    init(rng) -> params: the towers read from `directory`, a fresh head drawn with `rng`
        (eagerly: the weights are arguments, never constants of a compiled function).
    logits(params, images uint8 [B, H, W, 3], task int32 [B], rng=None) -> float32 [B]: each
        frame against a paraphrase of its task's instruction drawn with `rng`, or the
        instruction itself when rng is None.
    task_logits(params, task) -> fn(params, images) -> float32 [B]: one task's instruction
        embedded once, here with these params; fn runs the image tower and the head only.
    """
    length = check_source(directory, cfg.max_text_length)
    towers_cfg = read_config(directory)
    ids = prompt_ids(directory, instructions, length)
    head_cfg = HeadConfig(cfg.head_hidden)
    head = trainable_filter(finetune_towers=False)  # the head's params; `...` the towers'

    def build(rng: Any, towers: SiglipModel) -> VLMSuccessClassifier:
        return VLMSuccessClassifier(towers, head_cfg, rngs=nnx.Rngs(params=rng))

    abstract = nnx.eval_shape(lambda: build(0, SiglipModel(towers_cfg, nnx.Rngs(0))))
    graphdef, _, _ = nnx.split(abstract, head, ...)

    def init(rng: jax.Array) -> dict[str, nnx.State]:
        _, head_state, towers_state = nnx.split(build(rng, load_hf(directory)), head, ...)
        return {HEAD: head_state, TOWERS: towers_state}

    def model(params: dict[str, nnx.State]) -> VLMSuccessClassifier:
        return nnx.merge(graphdef, params[HEAD], params[TOWERS])

    def logits(params, images: jax.Array, task: jax.Array, rng: jax.Array | None = None):
        clf, prompts = model(params), jnp.asarray(ids)
        if rng is None:
            text = clf.embed_text(prompts[:, 0])[task]
        else:
            k, p, n = prompts.shape
            text = clf.embed_text(prompts.reshape(k * p, n)).reshape(k, p, -1)
            text = text[task, jax.random.randint(rng, task.shape, 0, p)]
        return clf.logits_from_embeddings(clf.embed_image(images), text)

    def task_logits(params, task: int):
        text = jax.jit(lambda params: model(params).embed_text(jnp.asarray(ids[task, :1])))(params)

        def fn(params, images: jax.Array) -> jax.Array:
            clf = model(params)
            return clf.logits_from_embeddings(clf.embed_image(images), text)

        return fn

    return init, logits, task_logits
