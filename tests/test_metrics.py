"""Grading metrics: hand-computed values, scikit-learn agreement and JSON-ready output."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from engine.metrics import (
    MetricsError,
    accuracy,
    bootstrap_ci,
    compute_metrics,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    mean_absolute_error,
    per_grade_recall,
    quadratic_weighted_kappa,
    within_one_accuracy,
)


def sklearn_qwk(y_true, y_pred) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=list(range(8)))


def test_qwk_matches_sklearn_on_random_cases():
    rng = np.random.default_rng(1234)
    compared = 0
    for _ in range(300):
        n = int(rng.integers(1, 60))
        classes = rng.choice(8, size=int(rng.integers(1, 9)), replace=False)
        y_true = rng.choice(classes, size=n)
        noise = rng.integers(-2, 3, size=n)
        y_pred = np.clip(y_true + noise, 0, 7) if rng.random() < 0.5 else rng.integers(0, 8, size=n)
        expected = sklearn_qwk(y_true, y_pred)
        if math.isnan(expected):
            assert quadratic_weighted_kappa(y_true, y_pred) == 1.0
            continue
        assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
        compared += 1
    assert compared > 250


def test_qwk_perfect_agreement_is_one():
    y = [0, 1, 2, 3, 4, 5, 6, 7, 3]
    assert quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    assert sklearn_qwk(y, y) == pytest.approx(1.0)


def test_qwk_all_one_grade_in_both_is_defined_as_one():
    assert math.isnan(sklearn_qwk([4, 4, 4], [4, 4, 4]))
    assert quadratic_weighted_kappa([4, 4, 4], [4, 4, 4]) == 1.0


def test_qwk_one_true_grade_with_varied_predictions_matches_sklearn():
    y_true, y_pred = [3, 3, 3, 3], [3, 2, 5, 3]
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(sklearn_qwk(y_true, y_pred))
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(0.0)


def test_qwk_inverted_grades_is_minus_one():
    y = np.arange(8)
    # observed mean (2y-7)^2 = 21, chance-expected 2 * var(uniform 0..7) = 10.5
    assert quadratic_weighted_kappa(y, 7 - y) == pytest.approx(-1.0)
    assert sklearn_qwk(y, 7 - y) == pytest.approx(-1.0)


def test_qwk_hand_example():
    # cm[0,1] = cm[1,1] = 1; expected mass on column 1 -> denominator 1, numerator 1
    assert quadratic_weighted_kappa([0, 1], [1, 1]) == pytest.approx(0.0)


def test_confusion_rows_are_true_and_columns_predicted():
    cm = confusion_matrix([0, 0, 1], [1, 1, 1])
    assert cm.shape == (8, 8)
    assert cm[0, 1] == 2 and cm[1, 1] == 1 and cm[1, 0] == 0
    assert cm.sum() == 3


def test_scalar_metrics_hand_values():
    y_true, y_pred = [0, 2, 4, 7], [0, 3, 1, 7]
    assert accuracy(y_true, y_pred) == 0.5
    assert mean_absolute_error(y_true, y_pred) == 1.0
    assert within_one_accuracy(y_true, y_pred) == 0.75


def test_per_grade_recall_uses_none_for_absent_grades():
    recall = per_grade_recall([0, 0, 1, 1], [0, 1, 1, 1])
    assert recall[:2] == [0.5, 1.0]
    assert recall[2:] == [None] * 6
    assert json.loads(json.dumps(recall)) == recall


def test_ece_hand_example():
    probs = [[0.9, 0.1], [0.85, 0.15], [0.4, 0.6], [0.3, 0.7]]
    y = [0, 1, 1, 1]
    # bins of width 0.2: (0.8,1] holds 0.9 (right), 0.85 (wrong): |0.5-0.875| * 2/4 = 0.1875
    # (0.6,0.8] holds 0.7 (right): 0.3 * 1/4; (0.4,0.6] holds 0.6 (right): 0.4 * 1/4
    assert expected_calibration_error(probs, y, n_bins=5) == pytest.approx(0.1875 + 0.075 + 0.1)


def test_ece_bins_are_closed_on_the_right():
    # 0.5 falls in (0, 0.5] with its correct sample; 1.0 in (0.5, 1] with its wrong one
    assert expected_calibration_error([[0.5, 0.5], [1.0, 0.0]], [0, 1], n_bins=2) == pytest.approx(0.75)


def test_ece_of_confident_correct_predictions_is_zero():
    probs = np.eye(8)[[0, 3, 7]]
    assert expected_calibration_error(probs, [0, 3, 7]) == 0.0


def test_compute_metrics_is_json_ready_and_ece_only_with_probabilities():
    y_true = torch.tensor([0, 1, 2, 2])
    probs = torch.softmax(torch.tensor([[3.0, 0, 0, 0, 0, 0, 0, 0]] * 4), dim=1)
    with_probs = compute_metrics(y_true, probs)
    assert set(with_probs) == {"acc", "qwk", "mae", "within1", "recall", "confusion", "ece", "n"}
    assert with_probs["acc"] == 0.25 and with_probs["n"] == 4
    assert with_probs["confusion"][2][0] == 2
    assert json.loads(json.dumps(with_probs)) == with_probs
    assert all(type(with_probs[k]) is float for k in ("acc", "qwk", "mae", "within1", "ece"))
    without = compute_metrics([0, 1, 2, 2], [0, 1, 2, 1])
    assert "ece" not in without and without["acc"] == 0.75 and without["mae"] == 0.25


def test_compute_metrics_refuses_logits_as_probabilities():
    with pytest.raises(MetricsError, match="softmax"):
        compute_metrics([0, 1], [[2.0, -1.0] + [0.0] * 6, [0.5, 3.0] + [0.0] * 6])


def test_bad_inputs_raise_metrics_error():
    with pytest.raises(MetricsError, match="outside 0-7"):
        accuracy([0, 8], [0, 1])
    with pytest.raises(MetricsError, match="samples"):
        accuracy([0, 1], [0])
    with pytest.raises(MetricsError, match="no samples"):
        quadratic_weighted_kappa([], [])
    assert confusion_matrix([], []).sum() == 0


def test_fit_temperature_recovers_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=2.0, size=(4000, 8))
    probs = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(8, p=p) for p in probs])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(torch.tensor(true_logits), torch.tensor(y)) == pytest.approx(1.0, rel=0.08)


def test_fit_temperature_degenerate_inputs_return_one():
    assert fit_temperature(np.zeros((0, 8)), []) == 1.0
    assert fit_temperature([], []) == 1.0
    assert fit_temperature(np.zeros((5, 8)), [0, 1, 2, 3, 4]) == pytest.approx(1.0)


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 8, size=200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 8, size=200))
    lo, hi = bootstrap_ci(y_true, y_pred, "acc", n=300, seed=1)
    assert lo < accuracy(y_true, y_pred) < hi
    assert 0.05 < hi - lo < 0.2
    assert bootstrap_ci(y_true, y_pred, accuracy, n=300, seed=1) == (lo, hi)
    assert bootstrap_ci(y_true, y_true, "qwk", n=50) == (1.0, 1.0)
    with pytest.raises(MetricsError, match="unknown metric"):
        bootstrap_ci(y_true, y_pred, "f1")
