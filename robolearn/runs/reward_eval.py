"""The frames `robolearn train reward` trains and scores on, and how it scores them.

The frames of a store's episodes (global frame rows of its EpisodeData, read through the input
pipeline: in RAM or streamed from the pack), their RoboFuME labels, the episodes a world model
imagines from them (`Imagined`, `imagine`: kept in RAM), the calibrated classifier's errors on
held-out or validation episodes, recorded and imagined (`evaluate`, `evaluate_imagined`), and the
table the command prints (`summary_lines`). Only the success flags (1 byte per frame) are read
for every episode at once; images are read by row when scored.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from robolearn.core.progress import Progress
from robolearn.data.pipeline import EpisodeData, FrameImages
from robolearn.reward_models.calibration import Calibration, classification_metrics, sigmoid
from robolearn.reward_models.config import LabelConfig
from robolearn.reward_models.labels import LabelledFrames, flag_labels, label_dataset

# probs(images, frame int64 [F], task int32 [F]) -> calibrated P float64 [F] of images[frame]
# (images: a FrameImages or an array uint8 [N, H, W, 3])
Probs = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def calibrated(logits: np.ndarray, calibration: Calibration) -> np.ndarray:
    """P(success) float64 [N] of logits [N] as calibration computed it (logit / T in float64):
    the validation negatives then score exactly as the threshold was chosen on them."""
    return sigmoid(np.asarray(logits, np.float64) / calibration.temperature)


def success_flags(data: EpisodeData, episodes=None) -> tuple[list[np.ndarray], list[str]]:
    """(success flags bool [T+1] per episode, task per episode) of `episodes` (default all)."""
    episodes = range(len(data.meta)) if episodes is None else episodes
    successes = [data.read_frames("success", e, 0, int(data.num_steps[e]) + 1) for e in episodes]
    return successes, [data.meta[e].task for e in episodes]


def frame_index(data: EpisodeData, episodes=None) -> np.ndarray:
    """Global frame row int64 [F] of every frame of `episodes` (default all), in order."""
    episodes = range(len(data.meta)) if episodes is None else episodes
    ranges = [np.arange(data.num_steps[e] + 1) + data.frame_start[e] for e in episodes]
    return np.concatenate(ranges).astype(np.int64) if ranges else np.zeros(0, np.int64)


def labelled(data: EpisodeData, episodes, tasks, labels_cfg: LabelConfig) -> LabelledFrames:
    """The recipe's triples of a subset of the data's episodes, frames global frame rows."""
    successes, episode_tasks = success_flags(data, episodes)
    out = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
    return dataclasses.replace(out, frame=frame_index(data, episodes)[out.frame])


@dataclasses.dataclass(frozen=True)
class Imagined:
    """Episodes of an EpisodeData imagined open loop, laid out like its frames: images uint8
    [F, H, W, 3] (in RAM) hold each imagined episode's N+1 frames in order (frame 0 the recorded
    first frame, then the N imagined ones); start {data episode: row of its frame 0}."""

    images: np.ndarray
    start: dict[int, int]

    def frames(self, data: EpisodeData, episodes, offset: int = 0):
        """(row int64 [F] into offset + images, step int64 [F]) of every frame of `episodes`,
        in the order success_flags and frame_index give them."""
        rows = [np.arange(data.num_steps[e] + 1) + offset + self.start[e] for e in episodes]
        steps = [np.arange(data.num_steps[e] + 1) for e in episodes]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows).astype(np.int64), np.concatenate(steps)

    def labelled(self, data, episodes, tasks, labels_cfg, offset: int) -> LabelledFrames:
        """The recipe's triples of the imagined frames (not frame 0, which is recorded) of the
        imagined ones among `episodes`, labelled like the recorded frame at the same step;
        frames index the recorded images with these appended at `offset`."""
        episodes = [int(e) for e in episodes if int(e) in self.start]
        successes, episode_tasks = success_flags(data, episodes)
        out = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
        rows, steps = self.frames(data, episodes, offset)
        keep = steps[out.frame] > 0
        return LabelledFrames(rows[out.frame[keep]], out.task[keep], out.label[keep])


def imagine(wm, data: EpisodeData, tasks, batch_size: int, seed: int, what: str, progress):
    """Every episode of `data` of a covered task imagined in full under its recorded actions.
    Episodes are read and imagined a batch at a time (episodes of one length together, batch k
    with key fold_in(key(seed), k)); the imagined frames are kept in RAM."""
    import jax

    from robolearn.imagination import Imaginer, imagine_episodes

    episodes = [e for e, m in enumerate(data.meta) if m.task in tasks]
    lengths = data.num_steps[episodes] + 1
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    images = np.empty((int(starts[-1]), *data.image_shape), np.uint8)
    by_length: dict[int, list[int]] = {}
    for k, e in enumerate(episodes):
        by_length.setdefault(int(data.num_steps[e]), []).append(k)
    chunks = [
        g[i : i + batch_size] for g in by_length.values() for i in range(0, len(g), batch_size)
    ]
    imaginer, key = Imaginer(wm, batch_size), jax.random.key(seed)
    bar = Progress(len(episodes), f"imagining {what}", enabled=progress)
    start, done, steps = time.perf_counter(), 0, 0
    for c, chunk in enumerate(chunks):
        recorded = [data.episode(episodes[k]) for k in chunk]
        imagined = imagine_episodes(imaginer, jax.random.fold_in(key, c), recorded)
        for k, (image, _, _), frames in zip(chunk, recorded, imagined, strict=True):
            images[starts[k]] = image[0]
            images[starts[k] + 1 : starts[k + 1]] = frames
            steps += len(frames)
        done += len(chunk)
        rate = steps / max(time.perf_counter() - start, 1e-9)
        bar.update(done, f"{steps} frames ({rate:.0f}/s)")
    bar.close()
    return Imagined(images, {e: int(starts[k]) for k, e in enumerate(episodes)})


def evaluate(on: EpisodeData, episodes, tasks, labels_cfg, probs: Probs, calibration) -> dict:
    """Scores at the recipe's labels and at the stores' success flags of `on`'s `episodes`:
    every episode of the held-out stores (episodes None), or the validation episodes."""
    held_out = episodes is None
    where = on.where if held_out else "validation split (no --heldout)"
    successes, episode_tasks = success_flags(on, episodes)
    recipe = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
    flags = flag_labels(successes, episode_tasks, tasks)
    frames, images = frame_index(on, episodes), FrameImages(on)

    def score(labels: LabelledFrames) -> dict:
        p = probs(images, frames[labels.frame], labels.task)
        return scores(p, labels, tasks, calibration)

    return {
        "on": where,
        "episodes": len(successes),
        "recipe": score(recipe),
        "sim_flags": score(flags),
    }


def evaluate_imagined(
    on, episodes, imagined: Imagined, tasks, labels_cfg, probs: Probs, calibration
) -> dict:
    """Scores of the imagined frames of `on`'s `episodes` (None: all) at the recipe's labels,
    and per episode of a covered task: is any frame after an action rewarded (P >= threshold),
    imagined and recorded, split by the recorded outcome. A policy refined in imagination is
    paid for the imagined failures rewarded here."""
    episodes = range(len(on.meta)) if episodes is None else episodes
    episodes = [int(e) for e in episodes if int(e) in imagined.start]
    labels = imagined.labelled(on, episodes, tasks, labels_cfg, 0)
    p = probs(imagined.images, labels.frame, labels.task)
    result = {"episodes": len(episodes), "recipe": scores(p, labels, tasks, calibration)}
    real_frames = frame_index(on, episodes)
    rows, steps = imagined.frames(on, episodes)
    successes, _ = success_flags(on, episodes)
    lengths = [len(s) for s in successes]
    after = steps > 0  # the frames after each action
    episode = np.repeat(np.arange(len(episodes)), lengths)[after]
    task = np.repeat([tasks.index(on.meta[e].task) for e in episodes], lengths)[after]
    task = task.astype(np.int32)
    won = np.array([s.any() for s in successes], bool)
    for name, images, frames in (
        ("imagined", imagined.images, rows[after]),
        ("real", FrameImages(on), real_frames[after]),
    ):
        hits = probs(images, frames, task) >= calibration.threshold
        rewarded = np.bincount(episode, hits, minlength=len(episodes)) > 0
        result[f"failed_rewarded_{name}"] = int(np.sum(rewarded & ~won))
        result[f"successful_rewarded_{name}"] = int(np.sum(rewarded & won))
    result["failed_episodes"], result["successful_episodes"] = int(np.sum(~won)), int(np.sum(won))
    return result


def scores(probs: np.ndarray, labels: LabelledFrames, tasks: Sequence[str], calibration) -> dict:
    """Overall and per-task classification_metrics of probs float [F] at the calibrated
    threshold."""
    result = classification_metrics(probs, labels.label, calibration.threshold)
    if len(tasks) > 1:
        result["per_task"] = {
            task: classification_metrics(
                probs[labels.task == k], labels.label[labels.task == k], calibration.threshold
            )
            for k, task in enumerate(tasks)
        }
    return result


def summary_lines(result: dict) -> list[str]:
    """The evaluation table `robolearn train reward` prints."""
    ev, cal = result["evaluation"], result["calibration"]
    lines = [
        f"calibrated on validation: temperature {cal['temperature']:.3f}, threshold "
        f"{cal['threshold']:.4f} (false positives <= {cal['target_fpr']:.1%})",
        f"scored on {ev['on']}: {ev['episodes']} episodes",
        f"  {'labels':<10} {'frames':>7} {'pos':>6} {'acc':>6} {'FPR':>6} {'FNR':>6} "
        f"{'prec':>6} {'ECE':>6}",
    ]
    for name, key in (("recipe", "recipe"), ("sim flags", "sim_flags")):
        lines.append(_row(name, ev[key]))
    imagined = ev.get("imagined")
    if imagined is not None:
        lines.append(_row("imagined", imagined["recipe"]))
        lines.append("episodes with a rewarded frame, imagined | recorded:")
        for outcome in ("failed", "successful"):
            n = imagined[f"{outcome}_episodes"]
            lines.append(
                f"  {outcome:<10} {imagined[f'{outcome}_rewarded_imagined']:>4}/{n} | "
                f"{imagined[f'{outcome}_rewarded_real']}/{n}"
            )
    return lines


def _row(name: str, m: dict) -> str:
    cells = [_pct(m[k]) for k in ("accuracy", "fpr", "fnr", "precision", "ece")]
    return f"  {name:<10} {m['frames']:>7} {m['positives']:>6} " + " ".join(cells)


def _pct(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{value:>6.1%}"
