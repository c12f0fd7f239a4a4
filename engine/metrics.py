"""Grading metrics: accuracy, quadratic weighted kappa, MAE, calibration, bootstrap CIs.

Plain numpy; torch tensors are accepted and converted. Every result that leaves
`compute_metrics` is a plain Python int/float/list/None, so it can go straight into
card.json or a JSON progress line (never NaN).

Conventions:
- Grades are integers in 0..num_classes-1; anything else raises MetricsError.
- Empty inputs raise MetricsError (an empty validation split has no score), except
  `confusion_matrix` (all zeros), `per_grade_recall` (all None) and `fit_temperature` (1.0).
- Quadratic weighted kappa equals scikit-learn's `cohen_kappa_score(weights="quadratic",
  labels=range(num_classes))` whenever that returns a number. Its denominator is 0 only
  when both raters used one and the same grade for every sample, i.e. they agree
  perfectly; scikit-learn then returns NaN, we return 1.0 (its `replace_undefined_by=1.0`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.errors import EngineError
from engine.schema import NUM_GRADES


class MetricsError(EngineError):
    """Inputs that cannot be scored (wrong shape, out-of-range grade, no samples)."""


def _to_numpy(x: object) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _grades(y: object, name: str, num_classes: int) -> np.ndarray:
    """Return `y` as a 1-D int64 array of grades in 0..num_classes-1, or raise MetricsError."""
    arr = _to_numpy(y)
    if arr.ndim != 1:
        raise MetricsError(f"{name} must be a 1-D sequence of grades, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise MetricsError(f"{name} must hold integer grades, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise MetricsError(f"{name} must hold whole-number grades")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= num_classes:
        raise MetricsError(f"{name} holds grades outside 0-{num_classes - 1} (min {arr.min()}, max {arr.max()})")
    return arr


def _pair(y_true: object, y_pred: object, num_classes: int, allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    t = _grades(y_true, "y_true", num_classes)
    p = _grades(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise MetricsError(f"y_true has {t.size} samples but y_pred has {p.size}")
    if t.size == 0 and not allow_empty:
        raise MetricsError("there are no samples to score")
    return t, p


def accuracy(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> float:
    """Fraction of exact grade matches."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float(np.mean(t == p))


def mean_absolute_error(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> float:
    """Mean absolute grade difference (an ordinal error: off by 3 is worse than off by 1)."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float(np.mean(np.abs(t - p)))


def within_one_accuracy(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> float:
    """Fraction of predictions at most one grade away (graders themselves disagree by one)."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float(np.mean(np.abs(t - p) <= 1))


def confusion_matrix(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> np.ndarray:
    """Counts (num_classes, num_classes): rows are true grades, columns predicted grades."""
    t, p = _pair(y_true, y_pred, num_classes, allow_empty=True)
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_grade_recall(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> list[float | None]:
    """Recall of each grade; None for a grade with no true samples (never NaN)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    return [float(cm[g, g] / support[g]) if support[g] else None for g in range(num_classes)]


def quadratic_weighted_kappa(y_true: object, y_pred: object, num_classes: int = NUM_GRADES) -> float:
    """Cohen's kappa with quadratic weights; 1.0 in the degenerate one-grade case (see module doc)."""
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    n = cm.sum()
    if n == 0:
        raise MetricsError("there are no samples to score")
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    idx = np.arange(num_classes, dtype=np.float64)
    weights = (idx[:, None] - idx[None, :]) ** 2
    denominator = float(np.sum(weights * expected))
    if denominator == 0.0:
        return 1.0
    return float(1.0 - np.sum(weights * cm) / denominator)


def _probabilities(probs: object) -> np.ndarray:
    arr = _to_numpy(probs).astype(np.float64)
    if arr.ndim != 2:
        raise MetricsError(f"probabilities must have shape (samples, classes), got {arr.shape}")
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < -1e-6 or arr.max() > 1 + 1e-6
                     or not np.allclose(arr.sum(axis=1), 1.0, atol=1e-3)):
        raise MetricsError("probabilities must be finite, in [0, 1] and sum to 1 per row (softmax the logits first)")
    return arr


def expected_calibration_error(probs: object, y_true: object, n_bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins (lo, hi]."""
    p = _probabilities(probs)
    t = _grades(y_true, "y_true", p.shape[1])
    if t.size != p.shape[0]:
        raise MetricsError(f"y_true has {t.size} samples but probabilities have {p.shape[0]}")
    if t.size == 0:
        raise MetricsError("there are no samples to score")
    if n_bins < 1:
        raise MetricsError(f"n_bins must be at least 1, got {n_bins}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def compute_metrics(y_true: object, probs_or_preds: object, num_classes: int = NUM_GRADES) -> dict:
    """All grading metrics as JSON-ready plain Python values; ECE only when probabilities are given."""
    scores = _to_numpy(probs_or_preds)
    probs = None
    if scores.ndim == 2:
        probs = _probabilities(scores)
        if probs.shape[1] != num_classes:
            raise MetricsError(f"probabilities have {probs.shape[1]} classes, expected {num_classes}")
        preds = probs.argmax(axis=1)
    else:
        preds = scores
    t, p = _pair(y_true, preds, num_classes)
    result = {
        "acc": accuracy(t, p, num_classes),
        "qwk": quadratic_weighted_kappa(t, p, num_classes),
        "mae": mean_absolute_error(t, p, num_classes),
        "within1": within_one_accuracy(t, p, num_classes),
        "recall": per_grade_recall(t, p, num_classes),
        "confusion": confusion_matrix(t, p, num_classes).tolist(),
        "n": int(t.size),
    }
    if probs is not None:
        result["ece"] = expected_calibration_error(probs, t)
    return result


def _mean_nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z_max = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - z_max).sum(axis=1)) + z_max[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(logits: object, y_true: object, max_iter: int = 100,
                    bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) on validation data (Guo et al. 2017).

    The NLL is convex in 1/T, hence unimodal in log T: a golden-section search over
    log T within `bounds` finds it without torch. Returns 1.0 for empty input or when
    every row of logits is constant (the NLL then does not depend on T).
    """
    z = _to_numpy(logits).astype(np.float64)
    if z.size == 0:
        return 1.0
    if z.ndim != 2:
        raise MetricsError(f"logits must have shape (samples, classes), got {z.shape}")
    y = _grades(y_true, "y_true", max(z.shape[1], 1))
    if y.size != z.shape[0]:
        raise MetricsError(f"y_true has {y.size} samples but logits have {z.shape[0]}")
    if not np.all(np.isfinite(z)):
        raise MetricsError("logits must be finite to fit a temperature")
    if np.all(z.max(axis=1) == z.min(axis=1)):
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = _mean_nll(z, y, np.exp(c)), _mean_nll(z, y, np.exp(d))
    for _ in range(max_iter):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = _mean_nll(z, y, np.exp(c))
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = _mean_nll(z, y, np.exp(d))
    return float(np.exp((lo + hi) / 2.0))


_NAMED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "acc": accuracy,
    "qwk": quadratic_weighted_kappa,
    "mae": mean_absolute_error,
    "within1": within_one_accuracy,
}


def bootstrap_ci(y_true: object, y_pred: object, metric: str | Callable[[np.ndarray, np.ndarray], float],
                 n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of `metric` (a callable or acc/qwk/mae/within1), resampling samples."""
    if isinstance(metric, str):
        if metric not in _NAMED_METRICS:
            raise MetricsError(f"unknown metric {metric!r}; use one of {sorted(_NAMED_METRICS)} or a callable")
        metric = _NAMED_METRICS[metric]
    t, p = _to_numpy(y_true), _to_numpy(y_pred)
    if t.shape[:1] != p.shape[:1]:
        raise MetricsError(f"y_true has {len(t)} samples but y_pred has {len(p)}")
    if len(t) == 0:
        raise MetricsError("there are no samples to score")
    if n < 1:
        raise MetricsError(f"the number of bootstrap resamples must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    values = np.empty(n, dtype=np.float64)
    for i in range(n):
        idx = rng.integers(0, len(t), size=len(t))
        values[i] = metric(t[idx], p[idx])
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)
