"""The frames `robolearn train reward` trains and scores on, and how it scores them.

The frames of a store's episodes (indices into its EpisodeCache), their RoboFuME labels, the
episodes a world model imagines from them (`Imagined`, `imagine`), the calibrated classifier's
errors on held-out or validation episodes, recorded and imagined (`evaluate`,
`evaluate_imagined`), and the table the command prints (`summary_lines`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from robolearn.core.progress import Progress
from robolearn.data.loader import EpisodeCache
from robolearn.reward_models.calibration import Calibration, classification_metrics, sigmoid
from robolearn.reward_models.config import LabelConfig
from robolearn.reward_models.labels import LabelledFrames, flag_labels, label_dataset

# probs(images uint8 [N, H, W, 3], frame int64 [F], task int32 [F]) -> calibrated P float64 [F]
Probs = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def calibrated(logits: np.ndarray, calibration: Calibration) -> np.ndarray:
    """P(success) float64 [N] of logits [N] as calibration computed it (logit / T in float64):
    the validation negatives then score exactly as the threshold was chosen on them."""
    return sigmoid(np.asarray(logits, np.float64) / calibration.temperature)


def success_flags(cache: EpisodeCache, episodes=None) -> tuple[list[np.ndarray], list[str]]:
    """(success flags bool [T+1] per episode, task per episode) of `episodes` (default all)."""
    episodes = range(len(cache.meta)) if episodes is None else episodes
    flags = cache.arrays["success"]
    successes = [
        flags[cache.frame_start[e] : cache.frame_start[e] + cache.num_steps[e] + 1]
        for e in episodes
    ]
    return successes, [cache.meta[e].task for e in episodes]


def frame_index(cache: EpisodeCache, episodes=None) -> np.ndarray:
    """Cache frame index int64 [F] of every frame of `episodes` (default all), in order."""
    episodes = range(len(cache.meta)) if episodes is None else episodes
    ranges = [np.arange(cache.num_steps[e] + 1) + cache.frame_start[e] for e in episodes]
    return np.concatenate(ranges).astype(np.int64) if ranges else np.zeros(0, np.int64)


def labelled(cache: EpisodeCache, episodes, tasks, labels_cfg: LabelConfig) -> LabelledFrames:
    """The recipe's triples of a subset of the cache's episodes, frames indexing the cache."""
    successes, episode_tasks = success_flags(cache, episodes)
    out = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
    return dataclasses.replace(out, frame=frame_index(cache, episodes)[out.frame])


@dataclasses.dataclass(frozen=True)
class Imagined:
    """Episodes of a cache imagined open loop, laid out like the cache: images uint8 [F, H, W, 3]
    hold each imagined episode's N+1 frames in order (frame 0 the recorded first frame, then the
    N imagined ones); start {cache episode: row of its frame 0}."""

    images: np.ndarray
    start: dict[int, int]

    def frames(self, cache: EpisodeCache, episodes, offset: int = 0):
        """(row int64 [F] into offset + images, step int64 [F]) of every frame of `episodes`,
        in the order success_flags and frame_index give them."""
        rows = [np.arange(cache.num_steps[e] + 1) + offset + self.start[e] for e in episodes]
        steps = [np.arange(cache.num_steps[e] + 1) for e in episodes]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows).astype(np.int64), np.concatenate(steps)

    def labelled(self, cache, episodes, tasks, labels_cfg, offset: int) -> LabelledFrames:
        """The recipe's triples of the imagined frames (not frame 0, which is recorded) of the
        imagined ones among `episodes`, labelled like the recorded frame at the same step;
        frames index the recorded images with these appended at `offset`."""
        episodes = [int(e) for e in episodes if int(e) in self.start]
        successes, episode_tasks = success_flags(cache, episodes)
        out = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
        rows, steps = self.frames(cache, episodes, offset)
        keep = steps[out.frame] > 0
        return LabelledFrames(rows[out.frame[keep]], out.task[keep], out.label[keep])


def imagine(wm, cache: EpisodeCache, tasks, batch_size: int, seed: int, what: str, progress):
    """Every episode of `cache` of a covered task imagined in full under its recorded actions."""
    import jax

    from robolearn.imagination import Imaginer, imagine_episodes

    a = cache.arrays
    episodes = [e for e, m in enumerate(cache.meta) if m.task in tasks]
    recorded = []
    for e in episodes:
        fs, ss, n = cache.frame_start[e], cache.step_start[e], cache.num_steps[e]
        recorded.append(
            (a["image"][fs : fs + n + 1], a["action"][ss : ss + n], a["proprio"][fs : fs + n + 1])
        )
    frames = sum(len(r[1]) for r in recorded)
    bar = Progress(1, f"imagining {what}", enabled=progress)
    start = time.perf_counter()
    imagined = imagine_episodes(Imaginer(wm, batch_size), jax.random.key(seed), recorded)
    seconds = time.perf_counter() - start
    bar.update(1, f"{len(recorded)} episodes, {frames} frames ({frames / seconds:.0f}/s)")
    bar.close()
    rows = [np.concatenate([r[0][:1], im]) for r, im in zip(recorded, imagined, strict=True)]
    starts = np.cumsum([0] + [len(r) for r in rows])
    images = np.concatenate(rows) if rows else np.zeros((0, *a["image"].shape[1:]), np.uint8)
    return Imagined(images, {e: int(starts[k]) for k, e in enumerate(episodes)})


def evaluate(on: EpisodeCache, episodes, tasks, labels_cfg, probs: Probs, calibration) -> dict:
    """Scores at the recipe's labels and at the stores' success flags of `on`'s `episodes`:
    every episode of the held-out stores (episodes None), or the validation episodes."""
    held_out = episodes is None
    where = ", ".join(map(str, on.roots)) if held_out else "validation split (no --heldout)"
    successes, episode_tasks = success_flags(on, episodes)
    recipe = label_dataset(successes, episode_tasks, tasks, labels_cfg, require_both=False)
    flags = flag_labels(successes, episode_tasks, tasks)
    frames, images = frame_index(on, episodes), on.arrays["image"]

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
        ("real", on.arrays["image"], real_frames[after]),
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
