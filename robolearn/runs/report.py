"""The figures a trainer leaves in its run directory at the end (through the metrics writer:
OUT/media/<name>-<step>.png, TensorBoard's images and W&B): the metric curves of every trainer
(read back from metrics.jsonl) and the reward classifier's ROC, precision-recall and reliability
diagrams and its worst-scored validation frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robolearn.core.figures import Panel, Series, figure, image_grid
from robolearn.core.metrics import MetricsWriter, read_metrics

# (panel title, metric names, log y axis) of each trainer's curves
WORLD_MODEL_CURVES = (
    ("loss", ("loss", "denoise_loss", "distill_loss", "proprio_loss"), True),
    ("gradient norm", ("grad_norm",), True),
    ("steps per second", ("steps_per_second",), False),
)
BC_CURVES = (
    ("negative log-likelihood", ("nll", "loss"), False),
    ("mean squared action error", ("mse",), True),
    ("policy std", ("std",), False),
    ("gradient norm", ("grad_norm",), True),
)
REWARD_CURVES = (
    ("loss", ("loss",), True),
    ("accuracy (logit > 0)", ("accuracy",), False),
    ("gradient norm", ("grad_norm",), True),
)
REFINE_CURVES = (
    ("imagined return", ("imagined_return",), False),
    ("imagined success", ("imagined_success", "success_prob_max"), False),
    ("PPO: KL and clip fraction", ("approx_kl", "clip_fraction"), False),
    ("PPO: entropy and std", ("entropy", "std"), False),
    ("critic", ("value_loss", "explained_variance"), False),
    ("pull toward BC on early frames", ("early_shift",), False),
    (
        "imagined vs real success per checkpoint",
        ("eval/imagined_success", "eval/real_success"),
        False,
    ),
)
RELIABILITY_BINS = 10
WORST = 8


def metric_curves(
    writer: MetricsWriter,
    step: int,
    panels: Sequence[tuple[str, Sequence[str], bool]],
    name: str = "curves",
    xlabel: str = "step",
) -> Path | None:
    """One figure of the run's logged metrics (OUT/metrics.jsonl), a panel per (title, names,
    log y) with a line per name it holds; panels with none of their names are left out.
    Returns the PNG's path (None when the writer is not enabled or nothing was logged)."""
    if not writer.enabled:
        return None
    rows = read_metrics(writer.out)
    drawn = []
    for title, names, logy in panels:
        series = []
        for key in names:
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                x, y = np.asarray(points, np.float64).T
                series.append(Series(x, y, key, "o-" if len(x) < 20 else "-"))
        if series:
            drawn.append(Panel(title, tuple(series), xlabel=xlabel, logy=logy))
    if not drawn:
        return None
    return writer.image(step, name, figure(drawn, cols=min(3, len(drawn))))


def roc_curve(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false-positive rate [K], true-positive rate [K], area under the curve) of probs float
    [N] against labels bool [N] (both classes present), over every distinct threshold."""
    order = np.argsort(-np.asarray(probs, np.float64), kind="stable")
    p, y = np.asarray(probs, np.float64)[order], np.asarray(labels, bool)[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # the last row of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    tpr = np.r_[0.0, tp / max(y.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~y).sum(), 1)]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def precision_recall(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(recall [K], precision [K], average precision) of probs float [N] against labels bool
    [N], over every distinct threshold (highest first)."""
    order = np.argsort(-np.asarray(probs, np.float64), kind="stable")
    p, y = np.asarray(probs, np.float64)[order], np.asarray(labels, bool)[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / max(y.sum(), 1)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return recall, precision, ap


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = RELIABILITY_BINS):
    """(mean predicted P [K], observed success frequency [K]) over the non-empty of `bins`
    equal-width bins of [0, 1]."""
    probs = np.asarray(probs, np.float64)
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    full = count > 0
    mean_p = np.bincount(which, probs, bins)[full] / count[full]
    freq = np.bincount(which, np.asarray(labels, np.float64), bins)[full] / count[full]
    return mean_p, freq


def reward_figures(
    writer: MetricsWriter,
    step: int,
    logits: np.ndarray,
    labels: np.ndarray,
    calibration,
    images,
    frames: np.ndarray,
) -> dict[str, float]:
    """The classifier's figures on the validation frames: ROC and precision-recall curves, the
    reliability diagram before and after temperature scaling, and the negatives it scored
    highest and the positives it scored lowest (worst false positives / negatives) with their
    calibrated P. logits float [N], labels bool [N] of the frames `images[frames]` (images: a
    FrameImages); calibration: its Calibration. Returns the scalars also logged (under
    "validation/"): roc_auc, average_precision, ece_before, ece_after."""
    from robolearn.reward_models.calibration import expected_calibration_error, sigmoid

    labels = np.asarray(labels, bool)
    raw = sigmoid(np.asarray(logits, np.float64))
    calibrated = sigmoid(np.asarray(logits, np.float64) / calibration.temperature)
    fpr, tpr, auc = roc_curve(calibrated, labels)
    recall, precision, ap = precision_recall(calibrated, labels)
    ece = {
        "before": expected_calibration_error(raw, labels),
        "after": expected_calibration_error(calibrated, labels),
    }
    t = calibration.threshold
    at_t = calibrated >= t
    point = (
        float(np.mean(at_t[~labels])) if (~labels).any() else 0.0,
        float(np.mean(at_t[labels])) if labels.any() else 0.0,
    )
    unit = {"xlim": (0, 1), "ylim": (0, 1.02)}
    panels = [
        Panel(
            f"ROC (AUC {auc:.3f})",
            (Series(fpr, tpr, None), Series([point[0]], [point[1]], f"threshold {t:.3f}", "o")),
            "false-positive rate",
            "true-positive rate",
            diagonal=True,
            **unit,
        ),
        Panel(
            f"precision-recall (AP {ap:.3f})",
            (Series(recall, precision, None),),
            "recall",
            "precision",
            **unit,
        ),
        Panel(
            "reliability",
            tuple(
                Series(*reliability(p, labels), f"{name} (ECE {ece[key]:.3f})", "o-")
                for name, key, p in (
                    ("raw", "before", raw),
                    (f"T = {calibration.temperature:.2f}", "after", calibrated),
                )
            ),
            "predicted P(success)",
            "observed success frequency",
            diagonal=True,
            **unit,
        ),
    ]
    title = f"reward classifier on {len(labels)} validation frames ({int(labels.sum())} positive)"
    writer.image(step, "reward_calibration", figure(panels, cols=3, title=title))
    for name, pick, what in (
        ("worst_false_positives", np.flatnonzero(~labels), "negatives scored highest"),
        ("worst_false_negatives", np.flatnonzero(labels), "positives scored lowest"),
    ):
        if not len(pick):
            continue
        order = np.argsort(calibrated[pick], kind="stable")
        worst = pick[order[::-1] if name == "worst_false_positives" else order][:WORST]
        captions = [f"P {calibrated[i]:.3f}" + (" >= t" if at_t[i] else "") for i in worst]
        grid = image_grid(
            images[np.asarray(frames)[worst]],
            captions,
            cols=4,
            title=f"validation {what} (threshold t = {t:.3f})",
        )
        writer.image(step, name, grid)
    scalars = {
        "roc_auc": auc,
        "average_precision": ap,
        "ece_before": ece["before"],
        "ece_after": ece["after"],
    }
    writer.write(step, scalars, prefix="validation/")
    return scalars
