"""RoboFuME's labelling recipe: which frames of recorded episodes teach a success classifier what.

For one task and one episode of that task with per-frame success flags s [T+1]:

- a *success run* is a maximal stretch of frames with s true; the episode is successful if it
  has one (usually the last frame is in it; an episode that succeeded and then undid the task
  still counts, through its last run);
- positives: the last `positives_last` (3) frames of the last success run;
- left out (neither class): the other frames of every success run (the task is done there, but
  RoboFuME keeps only the clearest frames), and the `ambiguous_before` (10) frames before every
  success run starts, where the task is almost done. RoboFuME's demos end at success; we also
  leave out the same number of frames after a run an episode undoes, for the same reason;
- negatives: every other frame (all frames of a failed episode).

Frames of episodes of *other* tasks are negatives for a task (LabelConfig.other_tasks_negative).
At training time batches are balanced 50/50 between the classes (`train reward` draws them
through the input pipeline's FrameLoader; `balanced_batch` for fits in memory), and a
text-conditioned classifier sees the task's instruction paraphrased (`paraphrases`).

Frame indices below index the episodes' frames concatenated in order (episode e's frame t is
frame `sum(len(s_0..s_{e-1})) + t`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from robolearn.reward_models.config import LabelConfig

from robolearn.core.errors import RobolearnError

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1

PARAPHRASES = (
    "{i}",
    "did the robot {i}?",
    "the robot managed to {i}",
    "has the robot finished the task: {i}?",
    "a robot that has just managed to {i}",
    "the task '{i}' is complete",
    "is the task done: {i}?",
    "success at the task: {i}",
)


class LabelError(RobolearnError, ValueError):
    """Data that holds nothing to learn a class from."""


@dataclasses.dataclass(frozen=True)
class LabelledFrames:
    """(frame, task, label) triples: frame int64 [N] into the concatenated frames, task int32
    [N] into the covered tasks, label bool [N] (True = success)."""

    frame: np.ndarray
    task: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def join(self, other: LabelledFrames) -> LabelledFrames:
        """These triples, then `other`'s (frames must index the same images)."""
        return LabelledFrames(
            np.concatenate([self.frame, other.frame]),
            np.concatenate([self.task, other.task]),
            np.concatenate([self.label, other.label]),
        )

    def counts(self, tasks: Sequence[str]) -> dict[str, dict[str, int]]:
        """{task: {"positives": n, "negatives": n}}."""
        return {
            name: {
                "positives": int(np.sum(self.label & (self.task == k))),
                "negatives": int(np.sum(~self.label & (self.task == k))),
            }
            for k, name in enumerate(tasks)
        }


def success_runs(success: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of True in success bool [N], in order."""
    s = np.concatenate([[False], np.asarray(success, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(s))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def frame_labels(success: np.ndarray, cfg: LabelConfig | None = None) -> np.ndarray:
    """The recipe's labels of one episode for its own task: success bool [N] -> int8 [N] of
    POSITIVE (1), NEGATIVE (0) or IGNORED (-1); see the module docstring."""
    cfg = cfg or LabelConfig()
    n = len(success)
    labels = np.full(n, NEGATIVE, np.int8)
    runs = success_runs(success)
    for a, b in runs:
        labels[max(0, a - cfg.ambiguous_before) : min(n, b + cfg.ambiguous_before)] = IGNORED
    if runs:
        a, b = runs[-1]
        labels[max(a, b - cfg.positives_last) : b] = POSITIVE
    return labels


def label_dataset(
    successes: Sequence[np.ndarray],
    episode_tasks: Sequence[str],
    tasks: Sequence[str],
    cfg: LabelConfig | None = None,
    require_both: bool = True,
) -> LabelledFrames:
    """The recipe's (frame, task, label) triples of episodes (success flags [T_e+1] and task
    name each) for every covered task in `tasks`. With `require_both`, a task without a
    positive or without a negative is a one-line LabelError."""
    cfg = cfg or LabelConfig()
    other = NEGATIVE if cfg.other_tasks_negative else IGNORED

    def labeller(success: np.ndarray, own: bool) -> np.ndarray:
        return frame_labels(success, cfg) if own else np.full(len(success), other, np.int8)

    out = _triples(successes, episode_tasks, tasks, labeller)
    if require_both:
        _check_both_classes(out, episode_tasks, tasks)
    return out


def flag_labels(
    successes: Sequence[np.ndarray], episode_tasks: Sequence[str], tasks: Sequence[str]
) -> LabelledFrames:
    """Ground-truth triples: every frame of an episode of a covered task, labelled with the
    episode's own per-frame success flag (other tasks' frames have no flag for the task)."""

    def labeller(success: np.ndarray, own: bool) -> np.ndarray:
        return success.astype(np.int8) if own else np.full(len(success), IGNORED, np.int8)

    return _triples(successes, episode_tasks, tasks, labeller)


def split_episodes(
    successes: Sequence[np.ndarray],
    episode_tasks: Sequence[str],
    tasks: Sequence[str],
    fraction: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices (training int64 [E_t], validation int64 [E_v]), whole episodes each:
    `fraction` (rounded) of every task's successful and of its failed episodes, drawn with
    `seed`, go to validation; a covered task keeps at least one successful episode on each
    side (a one-line LabelError when it has fewer than two)."""
    rng = np.random.default_rng(seed)
    won = [bool(np.any(s)) for s in successes]
    val: list[int] = []
    for task in sorted(set(episode_tasks)):
        for outcome in (True, False):
            group = [e for e, t in enumerate(episode_tasks) if t == task and won[e] == outcome]
            n = int(round(fraction * len(group)))
            if outcome and task in tasks:
                if len(group) < 2:
                    raise LabelError(
                        f"task {task!r}: {len(group)} successful episode(s); it takes at least 2 "
                        "(one to train on, one to calibrate on); collect more, e.g. "
                        f"`robolearn collect --task {task} --policy expert`"
                    )
                n = min(max(n, 1), len(group) - 1)
            val += [int(e) for e in rng.permutation(group)[:n]]
    in_val = np.zeros(len(successes), bool)
    in_val[val] = True
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def balanced_batch(rng: np.random.Generator, label: np.ndarray, batch_size: int) -> np.ndarray:
    """Indices int64 [B] into `label` (bool [N]): the first B//2 drawn uniformly (with
    replacement) from the positives, the rest from the negatives, so each batch is 50/50."""
    pos, neg = np.flatnonzero(label), np.flatnonzero(~label)
    if not len(pos) or not len(neg):
        raise LabelError("a success classifier needs frames of both classes")
    half = batch_size // 2
    return np.concatenate([rng.choice(pos, half), rng.choice(neg, batch_size - half)])


def paraphrases(instruction: str) -> tuple[str, ...]:
    """The deterministic prompt variants of a task instruction (RoboFuME augments its VLM's
    prompts with paraphrases); index 0 is the instruction itself, used at inference."""
    text = instruction.strip().rstrip(".?!").strip()
    text = text[:1].lower() + text[1:]
    return tuple(template.format(i=text) for template in PARAPHRASES)


def _triples(successes, episode_tasks, tasks, labeller) -> LabelledFrames:
    """Triples of every (episode, covered task) pair; labeller(success bool [N], own task?)."""
    frames, task_ids, values = [], [], []
    offset = 0
    for success, episode_task in zip(successes, episode_tasks, strict=True):
        success = np.asarray(success, bool)
        for k, task in enumerate(tasks):
            lab = labeller(success, episode_task == task)
            keep = np.flatnonzero(lab != IGNORED)
            frames.append(offset + keep)
            task_ids.append(np.full(len(keep), k, np.int32))
            values.append(lab[keep] == POSITIVE)
        offset += len(success)
    if not frames:
        return LabelledFrames(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, bool))
    return LabelledFrames(
        np.concatenate(frames).astype(np.int64), np.concatenate(task_ids), np.concatenate(values)
    )


def _check_both_classes(out: LabelledFrames, episode_tasks, tasks) -> None:
    for k, task in enumerate(tasks):
        mine = out.task == k
        n = sum(t == task for t in episode_tasks)
        if not np.any(out.label[mine]):
            raise LabelError(
                f"task {task!r}: nothing positive to learn from (none of its {n} episodes "
                f"succeeds); collect successful ones, e.g. `robolearn collect --task {task} "
                "--policy expert`"
            )
        if np.all(out.label[mine]):
            raise LabelError(
                f"task {task!r}: nothing negative to learn from (its {n} episodes are too short "
                "to have frames before success); collect failed or longer episodes, e.g. "
                f"`robolearn collect --task {task} --policy random`"
            )
