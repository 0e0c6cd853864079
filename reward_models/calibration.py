"""Calibration of a success classifier on validation frames, and its error metrics.

1. Temperature scaling (Guo et al. 2017): p = sigmoid(logit / T), with T > 0 minimising the
   binary NLL on the validation frames (a bounded 1-D search over log T). It changes
   confidences, not the ranking. The targets are Platt's (1999) smoothed labels,
   (N+ + 1) / (N+ + 2) for positives and 1 / (N- + 2) for negatives: a classifier that separates
   the validation set perfectly would otherwise be pushed to T -> 0, probabilities of exactly
   0 and 1, and a threshold that means nothing once compared in float32.
2. A decision threshold on the calibrated probability chosen for a target false-positive rate
   on the validation negatives (default 2 %): the lowest threshold whose FPR is <= the target,
   but never below `min_threshold` (0.5: a frame the classifier finds more likely failed than
   successful is never rewarded, RoboFuME's P(yes) > P(no)); the target can only raise it.
   RoboFuME's classifier errs on the side of "no" (FP 1-6 %, FN 60-80 %) because a false
   success teaches RL to stop short, while a missed one only slows it down.

Metrics: accuracy, FPR, FNR, precision, and the expected calibration error over 15 equal-width
bins of P(success): ECE = sum_b (n_b / N) |mean label_b - mean p_b|.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize_scalar

LOG_T_BOUNDS = (-5.0, 5.0)  # T in [0.0067, 148]: beyond these the logits carry no information


@dataclasses.dataclass(frozen=True)
class Calibration:
    """temperature T (calibrated logit = logit / T), threshold on the calibrated probability,
    and the false-positive rate it was chosen for (the threshold is at least min_threshold)."""

    temperature: float
    threshold: float
    target_fpr: float


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    x = np.asarray(x, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def binary_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of sigmoid(logits) float [N] against labels [N] (bool, or soft
    targets in [0, 1])."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, smooth: bool = True) -> float:
    """The T > 0 minimising binary_nll(logits / T, targets); logits float [N], labels bool [N]
    with both classes present; targets are Platt's smoothed labels (or the labels, smooth=False).
    """
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        raise ValueError("temperature scaling needs validation frames of both classes")
    logits = np.asarray(logits, np.float64)
    targets = labels.astype(np.float64)
    if smooth:
        n_pos, n_neg = int(labels.sum()), int((~labels).sum())
        targets = np.where(labels, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    found = minimize_scalar(
        lambda log_t: binary_nll(logits / np.exp(log_t), targets),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(found.x))


def threshold_for_fpr(probs: np.ndarray, labels: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold t with mean(probs[~labels] >= t) <= target_fpr: probs float [N],
    labels bool [N] (needs a negative). With k = floor(target * negatives) false positives
    allowed, t is just above the (k+1)-th highest negative probability: a few float32 steps above
    it, so that a model scoring in float32 (the jitted reward of `label` and `refine`) cannot
    round that negative up across the threshold (a float64 step was not enough)."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    neg = np.sort(np.asarray(probs, np.float64)[~np.asarray(labels, bool)])[::-1]
    if not len(neg):
        raise ValueError("choosing a threshold for a false-positive rate needs negatives")
    allowed = int(np.floor(target_fpr * len(neg) + 1e-9))
    margin = 4 * float(np.spacing(np.float32(neg[allowed])))
    return float(max(np.nextafter(neg[allowed], np.inf), neg[allowed] + margin))


def calibrate(
    logits: np.ndarray, labels: np.ndarray, target_fpr: float = 0.02, min_threshold: float = 0.5
) -> Calibration:
    """Temperature, then the threshold for `target_fpr` (at least `min_threshold`), both
    fitted on (logits float [N], labels bool [N]) of validation frames."""
    temperature = fit_temperature(logits, labels)
    probs = sigmoid(np.asarray(logits, np.float64) / temperature)
    threshold = max(threshold_for_fpr(probs, labels, target_fpr), min_threshold)
    return Calibration(temperature, threshold, target_fpr)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of P(success) over `bins` equal-width bins of [0, 1] (the last closed): probs float
    [N], labels bool [N]."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.float64)
    if not len(probs):
        return float("nan")
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    gap = np.bincount(which, labels, bins) - np.bincount(which, probs, bins)
    return float(np.sum(np.abs(gap)) / len(probs))


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, threshold: float, bins: int = 15
) -> dict:
    """Errors of `probs >= threshold` against labels bool [N]: counts (frames, positives,
    negatives, tp, fp, tn, fn), accuracy, fpr, fnr, precision (None where undefined: no
    negatives, no positives, nothing predicted positive) and ece."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, bool)
    pred = probs >= threshold
    tp, fp = int(np.sum(pred & labels)), int(np.sum(pred & ~labels))
    fn, tn = int(np.sum(~pred & labels)), int(np.sum(~pred & ~labels))

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {
        "frames": len(labels),
        "positives": tp + fn,
        "negatives": fp + tn,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "accuracy": ratio(tp + tn, len(labels)),
        "fpr": ratio(fp, fp + tn),
        "fnr": ratio(fn, tp + fn),
        "precision": ratio(tp, tp + fp),
        "ece": expected_calibration_error(probs, labels, bins) if len(labels) else None,
    }
