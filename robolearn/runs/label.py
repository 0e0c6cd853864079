"""`robolearn label`: a copy of an episode store whose rewards come from a reward classifier.

Every selected episode is copied into a new store with `reward[t]` replaced by the classifier's
binary reward on the frame after action t (image[1:], the frame the reward judges), and
meta.extra recording how: "reward_model" (the checkpoint as given), "reward_threshold",
"reward_temperature" and "success_prob" (the calibrated probability per step, T floats). The
source store is only read. Checks before anything is written: the output is new (or an empty
directory), every episode's task is covered (or filtered out with --task), and the first
episode's frames have the checkpoint's size (each later episode is checked before it is
written: a mismatch stops the run with the episodes so far complete in the output).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from robolearn import bundles
from robolearn.core.errors import ConfigError
from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions
from robolearn.data.episode import Episode
from robolearn.data.store import (
    MARKER,
    create_store,
    list_episodes,
    open_store,
    read_episode,
    read_meta,
    write_episode,
)
from robolearn.reward_models.checkpoint import RewardModel, check_task, load_reward_model


@dataclasses.dataclass(frozen=True)
class LabelRunConfig:
    """What `robolearn label` relabels, and with which classifier (the store it writes is --out)."""

    data: str = dataclasses.field(default="", metadata=flag(metavar="DIR"))
    """source episode store (only read)"""
    reward: str = dataclasses.field(default="", metadata=flag(metavar="CKPT"))
    """reward checkpoint from `robolearn train reward`, or a shipped part such as
    bundle:drawer/reward"""
    tasks: tuple[str, ...] = dataclasses.field(default=(), metadata=flag("--task", metavar="TASK"))
    """label only this task's episodes (repeat for several; default: every episode, whose tasks
    the checkpoint must all cover)"""

    def __post_init__(self):
        if not self.data:
            raise ConfigError("label needs --data DIR, the episode store to relabel")
        if not self.reward:
            raise ConfigError(
                "label needs --reward CKPT, a checkpoint of `robolearn train reward` or a "
                "shipped part such as bundle:drawer/reward"
            )


def main(cfg: LabelRunConfig, options: RunOptions) -> None:
    """`robolearn label`: write the relabelled store --out, then say what it holds."""
    result = run_label(cfg, Path(options.out), progress=options.progress)
    print(
        f"labelled {result['episodes']} episodes ({result['steps']} steps, "
        f"{result['reward_steps']} rewarded; agrees with the success flags on "
        f"{result['agreement_with_flags']:.1%} of steps) in {result['seconds']:.1f}s"
    )
    print(f"store: {options.out}")


def run_label(cfg: LabelRunConfig, out: Path, progress: bool = True) -> dict:
    """Write the relabelled store at `out`; returns {"episodes", "steps", "reward_steps",
    "agreement_with_flags", "seconds"}."""
    source = open_store(cfg.data)
    _check_out(out, source)
    model = load_reward_model(bundles.resolve(cfg.reward))
    paths = _select(cfg, model, source)
    first = read_episode(paths[0])
    _check_size(paths[0], first, model)
    create_store(out)
    start = time.perf_counter()
    bar = Progress(len(paths), "episode", enabled=progress)
    steps = reward_steps = agree = 0
    for k, path in enumerate(paths):
        episode = first if k == 0 else read_episode(path)
        _check_size(path, episode, model)
        labelled = relabel(episode, model, cfg.reward)
        write_episode(out, labelled)
        steps += labelled.num_steps
        reward_steps += int(labelled.reward.sum())
        agree += int(np.sum((labelled.reward > 0) == episode.success[1:]))
        bar.update(k + 1, f"{reward_steps} rewarded steps of {steps}")
    bar.close()
    return {
        "episodes": len(paths),
        "steps": steps,
        "reward_steps": reward_steps,
        "agreement_with_flags": agree / max(steps, 1),
        "seconds": time.perf_counter() - start,
    }


def relabel(episode: Episode, model: RewardModel, reward_spec: str) -> Episode:
    """A copy of `episode` with reward float32 [T] = model.reward(image[1:]) and the
    probabilities and checkpoint recorded in meta.extra."""
    prob = model.prob(episode.image[1:], episode.meta.task)
    extra = {
        **episode.meta.extra,
        "reward_model": str(reward_spec),
        "reward_threshold": float(model.info.threshold),
        "reward_temperature": float(model.info.temperature),
        "success_prob": [round(float(p), 6) for p in prob],
    }
    meta = dataclasses.replace(episode.meta, extra=extra)
    reward = (prob >= model.info.threshold).astype(np.float32)
    return dataclasses.replace(episode, reward=reward, meta=meta)


def _check_out(out: Path, source: Path) -> None:
    if out.exists() and out.resolve() == source.resolve():
        raise ConfigError(f"{out}: is the source store; label into a new --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / MARKER).is_file():
        raise ConfigError(f"{out}: exists and is not an episode store; choose a new --out")
    if list_episodes(out):
        raise ConfigError(f"{out}: already holds episodes; label into a new --out")


def _select(cfg: LabelRunConfig, model: RewardModel, source: Path) -> list[Path]:
    """The episodes to label: those of cfg.tasks, or all when every task is covered."""
    for task in cfg.tasks:
        check_task(cfg.reward, model.info, task)
    paths = list_episodes(source)
    tasks = [read_meta(p).task for p in paths]
    if cfg.tasks:
        paths = [p for p, t in zip(paths, tasks, strict=True) if t in cfg.tasks]
    else:
        uncovered = sorted(set(tasks) - set(model.info.tasks))
        if uncovered:
            raise ConfigError(
                f"{source}: has episodes of task(s) {', '.join(uncovered)}, which the reward "
                f"checkpoint does not cover ({', '.join(model.info.tasks)}); pick tasks with --task"
            )
    if not paths:
        which = f" of task(s) {', '.join(cfg.tasks)}" if cfg.tasks else ""
        raise ConfigError(f"{source}: no episodes{which} to label")
    return paths


def _check_size(path: Path, episode: Episode, model: RewardModel) -> None:
    size = model.info.image_size
    if episode.image.shape[1:] != (size, size, 3):
        raise ConfigError(
            f"{path}: frames are {list(episode.image.shape[1:])}, the reward checkpoint takes "
            f"[{size}, {size}, 3]; label data recorded at its image size"
        )
