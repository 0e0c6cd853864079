"""Temperature scaling, the false-positive-rate threshold and the metrics, against values
worked by hand and a deliberately over-confident synthetic classifier."""

import numpy as np
import pytest
from robolearn.reward_models.calibration import (
    calibrate,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    sigmoid,
    threshold_for_fpr,
)


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from sigmoid(z), logits 5 z: right ranking, 5x too confident."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 4000)
    labels = rng.random(4000) < sigmoid(z)
    return 5.0 * z, labels


def test_ece_of_a_literal_example():
    # 15 bins of width 1/15: 0.10 and 0.12 share bin 1 (mean p 0.11, mean label 0.5),
    # 0.8 and 0.9 are alone in bins 12 and 13.
    # ECE = 2/4 * |0.5 - 0.11| + 1/4 * |1 - 0.8| + 1/4 * |0 - 0.9| = 0.195 + 0.05 + 0.225
    probs = np.array([0.10, 0.12, 0.8, 0.9])
    labels = np.array([False, True, True, False])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.47)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([True, False])) == 0.0


def test_temperature_scaling_lowers_ece(overconfident):
    logits, labels = overconfident
    assert fit_temperature(logits, labels, smooth=False) == pytest.approx(5.0, rel=0.1)
    cal = calibrate(logits, labels, target_fpr=0.02)
    before = expected_calibration_error(sigmoid(logits), labels)
    after = expected_calibration_error(sigmoid(logits / cal.temperature), labels)
    assert before > 0.05 and after < 0.5 * before and after < 0.03


def test_threshold_meets_the_target_fpr_where_it_was_chosen(overconfident):
    logits, labels = overconfident
    cal = calibrate(logits, labels, target_fpr=0.02, min_threshold=0.0)
    probs = sigmoid(logits / cal.temperature)
    metrics = classification_metrics(probs, labels, cal.threshold)
    assert metrics["fpr"] <= 0.02
    # the lowest such threshold: the next negative down would break the target
    neg = np.sort(probs[~labels])[::-1]
    below = neg[neg < cal.threshold][0]
    assert classification_metrics(probs, labels, below)["fpr"] > 0.02
    # the floor only ever raises it
    assert calibrate(logits, labels, 0.02).threshold == max(cal.threshold, 0.5)


def test_threshold_for_fpr_by_hand():
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.95])
    labels = np.array([False] * 10 + [True])
    # 10 negatives, target 10 %: one false positive allowed (1.0), so just above 0.9.
    t = threshold_for_fpr(probs, labels, 0.1)
    assert 0.9 < t < 0.9 + 1e-6
    assert threshold_for_fpr(probs, labels, 0.0) > 1.0  # nothing negative may pass
    assert 0.8 < threshold_for_fpr(probs, labels, 0.25) < 0.8 + 1e-6


def test_threshold_holds_for_a_float32_scorer():
    """The negative that sets the threshold stays below it when scored in float32, as the
    jitted reward does (a float64 step above it was crossed by float32 rounding)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, 500).astype(np.float32)
    labels = rng.random(500) < 0.3
    for temperature in (0.7, 1.671, 2.569):
        probs64 = sigmoid(logits.astype(np.float64) / temperature)
        t = threshold_for_fpr(probs64, labels, 0.02)
        probs32 = 1 / (1 + np.exp(-(logits / np.float32(temperature))))
        allowed = int(np.floor(0.02 * (~labels).sum() + 1e-9))
        assert (probs32[~labels] >= np.float32(t)).sum() <= allowed


def test_separable_validation_keeps_a_finite_temperature():
    logits = np.array([-30.0, -25.0, -20.0, 20.0, 25.0])
    labels = logits > 0
    cal = calibrate(logits, labels)
    assert 1.0 < cal.temperature < 100.0
    assert 0.5 <= cal.threshold < 1.0


def test_metrics_by_hand():
    probs = np.array([0.9, 0.8, 0.3, 0.6, 0.1, 0.2])
    labels = np.array([True, True, True, False, False, False])
    m = classification_metrics(probs, labels, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 2)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["fpr"] == pytest.approx(1 / 3)
    assert m["fnr"] == pytest.approx(1 / 3) and m["precision"] == pytest.approx(2 / 3)
    none = classification_metrics(np.array([0.1]), np.array([False]), 0.5)
    assert none["fnr"] is None and none["precision"] is None and none["fpr"] == 0.0


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature(np.zeros(3), np.zeros(3, bool))
