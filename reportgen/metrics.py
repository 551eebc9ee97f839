"""Metrics per split: streaming states, metric dictionaries and bounded plot curves.

Everything here is numpy only and O(n log n) at most in the number of samples. Every returned
dictionary is JSON-safe: python ints, floats, lists and ``None`` where a metric is undefined
(for example ROC AUC when only one class is present); never NaN or infinity.

Conventions follow scikit-learn: confusion rows are actual classes and columns predicted ones;
a ratio with a zero denominator (precision of a never-predicted class, recall of an absent one)
is 0.0 like ``zero_division=0``; macro averages run over the classes present in ``y_true`` or
``y_pred``; a score counts as positive when ``score >= threshold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from reportgen.types import Predictions

STREAM_BATCH = 65_536
"""Batch size used when the metric dictionaries replay a whole split through a streaming state."""

LOG_LOSS_EPS = 1e-7
SWEEP_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
SCATTER_MAX_POINTS = 2000
RESIDUAL_BINS = 30
TASKS = ("binary", "multiclass", "regression")


# --------------------------------------------------------------------------- small helpers


def _float(value: Any) -> float | None:
    """Return ``value`` as a python float, or None when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: np.ndarray) -> list[float | None]:
    """Return an array as a list of python floats, non-finite entries as None."""
    values = np.asarray(values, dtype=np.float64)
    out: list[float | None] = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is zero (sklearn zero_division=0)."""
    return float(numerator) / float(denominator) if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall, 0.0 when both are zero."""
    return 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0


def _binary_inputs(y_binary: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (labels, scores) pair and return them as (bool, float64) 1-d arrays."""
    y = np.asarray(y_binary).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_binary has {y.size} values but scores has {s.size}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


@dataclass(frozen=True)
class _BinaryCurve:
    """Cumulative counts at each distinct score, highest score first (sklearn's _binary_clf_curve)."""

    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    positives: int
    negatives: int


def _binary_curve(y: np.ndarray, s: np.ndarray) -> _BinaryCurve:
    """Sort once and count true and false positives at every distinct score."""
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1] if s.size else np.array([], int)
    tps = np.cumsum(y_sorted, dtype=np.int64)[last_of_group]
    fps = (last_of_group + 1).astype(np.int64) - tps
    positives = int(y.sum())
    return _BinaryCurve(s_sorted[last_of_group], tps, fps, positives, int(y.size) - positives)


def score_curve(pred: Predictions, column: int) -> _BinaryCurve | None:
    """The binary curve of class ``column`` against the rest on ``pred`` (its probabilities in column
    ``column``), computed once per split and class and kept in ``pred.score_curves``; None without
    probabilities or when a score is not finite. The one sort behind ROC AUC, average precision, the ROC
    and PR plot curves and every threshold sweep of the split.
    """
    if pred.probs is None:
        return None
    if column not in pred.score_curves:
        scores = np.asarray(pred.probs, dtype=np.float64)[:, column]
        finite = bool(np.isfinite(scores).all())
        pred.score_curves[column] = _binary_curve(np.asarray(pred.y_true) == column, scores) if finite else None
    return pred.score_curves[column]


def _auc_from_curve(curve: _BinaryCurve) -> float | None:
    """Rank (Mann-Whitney) AUC, ties counted one half; None unless both classes are present."""
    if curve.positives == 0 or curve.negatives == 0:
        return None
    pos_in_group = np.diff(curve.tps, prepend=0).astype(np.float64)
    neg_in_group = np.diff(curve.fps, prepend=0).astype(np.float64)
    negatives_below = curve.negatives - curve.fps.astype(np.float64)
    wins = float(np.dot(pos_in_group, negatives_below + 0.5 * neg_in_group))
    return wins / (float(curve.positives) * float(curve.negatives))


def _ap_from_curve(curve: _BinaryCurve) -> float | None:
    """Average precision: sum of precision times recall increment; None without positives."""
    if curve.positives == 0:
        return None
    precision = curve.tps / (curve.tps + curve.fps).astype(np.float64)
    positives_gained = np.diff(curve.tps, prepend=0).astype(np.float64)
    return float(np.dot(positives_gained, precision) / curve.positives)


# --------------------------------------------------------------------------- building blocks


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval for a proportion successes/n (95% by default); None when n is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], not {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def threshold_sweep(y_binary: Any, scores: Any, thresholds: Sequence[float]) -> dict[str, list]:
    """Precision, recall, F1 and predicted-positive count at each threshold (positive: score >= t)."""
    y, s = _binary_inputs(y_binary, scores)
    return sweep_from_curve(_binary_curve(y, s), thresholds)


def prediction_threshold_sweep(pred: Predictions, positive_index: int, thresholds: Sequence[float]) -> dict[str, list] | None:
    """``threshold_sweep`` of the positive class's scores on ``pred``, from the split's one sort (``score_curve``);
    None without probabilities or when a score is not finite."""
    curve = score_curve(pred, positive_index)
    return None if curve is None else sweep_from_curve(curve, thresholds)


def sweep_from_curve(curve: _BinaryCurve, thresholds: Sequence[float]) -> dict[str, list]:
    """``threshold_sweep`` read off a binary curve: the samples with score >= t are those of the distinct
    scores >= t, whose cumulative counts the curve holds (exact integers, no second sort)."""
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    distinct_at_or_above = curve.thresholds.size - np.searchsorted(curve.thresholds[::-1], t, side="left")
    last = distinct_at_or_above - 1  # index of the lowest distinct score >= t, -1 when there is none
    tp = np.where(last >= 0, curve.tps[np.maximum(last, 0)], 0) if curve.tps.size else np.zeros(t.size, np.int64)
    fp = np.where(last >= 0, curve.fps[np.maximum(last, 0)], 0) if curve.fps.size else np.zeros(t.size, np.int64)
    predicted = tp + fp
    positives = curve.positives
    # Precision is undefined (None) at a threshold that flags nothing, not 0: a reader must not take
    # "no alarms" for "every alarm false". F1 stays defined there: 2TP / (2TP + FP + FN) = 0.
    precision = [float(a) / float(b) if b else None for a, b in zip(tp.tolist(), predicted.tolist())]
    recall = [_ratio(a, positives) for a in tp.tolist()]
    return {
        "thresholds": [float(x) for x in t.tolist()],
        "precision": precision,
        "recall": recall,
        "f1": [_f1(p or 0.0, r) for p, r in zip(precision, recall)],
        "predicted_positive": [int(x) for x in predicted.tolist()],
    }


def calibration_bins(confidence: Any, correct: Any, n_bins: int = 15) -> dict[str, Any]:
    """Reliability diagram in equal-width bins on [0, 1] and the expected calibration error.

    A bin i holds confidences in [i/n_bins, (i+1)/n_bins); the last bin also holds 1.0. Empty bins
    keep their place with ``mean_predicted`` and ``fraction_positive`` None. ``ece`` is None for
    no samples.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf, hit = np.asarray(confidence, dtype=np.float64).reshape(-1), np.asarray(correct).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"confidence has {conf.size} values but correct has {hit.size}")
    if not np.isfinite(conf).all():
        raise ValueError("confidence must be finite")
    index = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(index, weights=hit.astype(np.float64), minlength=n_bins)
    bins = []
    ece = 0.0
    for i in range(n_bins):
        count = int(counts[i])
        mean_predicted = conf_sum[i] / count if count else None
        fraction = hit_sum[i] / count if count else None
        if count:
            ece += count / conf.size * abs(fraction - mean_predicted)
        bins.append({
            "lower": i / n_bins,
            "upper": (i + 1) / n_bins,
            "count": count,
            "mean_predicted": _float(mean_predicted),
            "fraction_positive": _float(fraction),
        })
    return {"ece": float(ece) if conf.size else None, "bins": bins}


# --------------------------------------------------------------------------- streaming states


@dataclass(eq=False)
class ClassificationState:
    """Additive classification state: confusion counts (rows actual, columns predicted), loss sum, n.

    ``update`` and ``merge`` add into this state in place and return it.
    """

    num_classes: int
    confusion: np.ndarray = field(default=None)  # type: ignore[assignment]
    loss_sum: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError("num_classes must be at least 1")
        if self.confusion is None:
            self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        elif self.confusion.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"confusion must be {self.num_classes}x{self.num_classes}")

    def update(self, y_true: Any, y_pred: Any, loss_sum: float = 0.0) -> ClassificationState:
        """Add one batch of class indices and its summed loss."""
        t = np.asarray(y_true, dtype=np.int64).reshape(-1)
        p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
        if t.shape != p.shape:
            raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
        c = self.num_classes
        if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= c):
            raise ValueError(f"class indices must lie in [0, {c})")
        self.confusion += np.bincount(t * c + p, minlength=c * c).reshape(c, c)
        self.loss_sum += float(loss_sum)
        self.n += int(t.size)
        return self

    def merge(self, other: ClassificationState) -> ClassificationState:
        """Add another state (e.g. another worker's) into this one."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge states with different numbers of classes")
        self.confusion += other.confusion
        self.loss_sum += other.loss_sum
        self.n += other.n
        return self

    @property
    def accuracy(self) -> float | None:
        """Share of samples on the diagonal; None for no samples."""
        return _ratio(np.trace(self.confusion), self.n) if self.n else None

    @property
    def balanced_accuracy(self) -> float | None:
        """Mean recall over the classes present in y_true (scikit-learn's definition)."""
        support = self.confusion.sum(axis=1)
        present = support > 0
        if not present.any():
            return None
        return float(np.mean(np.diag(self.confusion)[present] / support[present]))


@dataclass
class RegressionState:
    """Additive regression state: error sums and the target's mean and squared deviations (Chan merge).

    ``update`` and ``merge`` add into this state in place and return it.
    """

    n: int = 0
    sum_squared_error: float = 0.0
    sum_abs_error: float = 0.0
    target_mean: float = 0.0
    target_m2: float = 0.0
    """Sum of squared deviations of the target from its mean."""
    target_min: float = math.inf
    target_max: float = -math.inf
    loss_sum: float = 0.0

    def update(self, y_true: Any, y_pred: Any, loss_sum: float = 0.0) -> RegressionState:
        """Add one batch of targets, predictions and its summed loss."""
        t = np.asarray(y_true, dtype=np.float64).reshape(-1)
        p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
        if t.shape != p.shape:
            raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
        if t.size == 0:
            self.loss_sum += float(loss_sum)
            return self
        error = p - t
        mean = float(t.mean())
        batch = RegressionState(
            n=int(t.size),
            sum_squared_error=float(np.dot(error, error)),
            sum_abs_error=float(np.abs(error).sum()),
            target_mean=mean,
            target_m2=float(np.square(t - mean).sum()),
            target_min=float(t.min()),
            target_max=float(t.max()),
            loss_sum=float(loss_sum),
        )
        return self.merge(batch)

    def merge(self, other: RegressionState) -> RegressionState:
        """Add another state into this one (Chan et al. parallel variance update)."""
        n = self.n + other.n
        if other.n:
            delta = other.target_mean - self.target_mean
            self.target_m2 += other.target_m2 + delta * delta * self.n * other.n / n
            self.target_mean += delta * other.n / n
        self.n = n
        self.sum_squared_error += other.sum_squared_error
        self.sum_abs_error += other.sum_abs_error
        self.target_min = min(self.target_min, other.target_min)
        self.target_max = max(self.target_max, other.target_max)
        self.loss_sum += other.loss_sum
        return self

    def metrics(self) -> dict[str, float | None]:
        """mse, rmse, mae, r2 (None for a constant target), target_mean, target_std (population)."""
        if self.n == 0:
            return dict.fromkeys(("mse", "rmse", "mae", "r2", "target_mean", "target_std"))
        mse = self.sum_squared_error / self.n
        constant = self.target_min == self.target_max or self.target_m2 <= 0.0
        return {
            "mse": _float(mse),
            "rmse": _float(math.sqrt(mse)) if math.isfinite(mse) else None,
            "mae": _float(self.sum_abs_error / self.n),
            "r2": None if constant else _float(1.0 - self.sum_squared_error / self.target_m2),
            "target_mean": _float(self.target_mean),
            "target_std": _float(math.sqrt(self.target_m2 / self.n)),
        }


# --------------------------------------------------------------------------- metric dictionaries


def _state_of(pred: Predictions, num_classes: int) -> ClassificationState:
    """The state fed during evaluation, or the whole split replayed batch by batch through a new one."""
    if isinstance(pred.state, ClassificationState) and pred.state.num_classes == num_classes and pred.state.n == pred.n:
        return pred.state
    state = ClassificationState(num_classes)
    y_true, y_pred = np.asarray(pred.y_true), np.asarray(pred.y_pred)
    for start in range(0, pred.n, STREAM_BATCH):
        state.update(y_true[start:start + STREAM_BATCH], y_pred[start:start + STREAM_BATCH])
    return state


def _mcc(cm: np.ndarray) -> float:
    """Multiclass Matthews correlation from a confusion matrix (sklearn: 0.0 when degenerate)."""
    cm = cm.astype(np.float64)
    t_sum, p_sum = cm.sum(axis=1), cm.sum(axis=0)
    n, correct = cm.sum(), np.trace(cm)
    cov_tp = correct * n - np.dot(t_sum, p_sum)
    cov_pp = n * n - np.dot(p_sum, p_sum)
    cov_tt = n * n - np.dot(t_sum, t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / math.sqrt(cov_tt * cov_pp))


def _probability_metrics(
    y: np.ndarray, probs: np.ndarray | None, positive_index: int | None, pred: Predictions | None = None
) -> dict[str, float | None]:
    """roc_auc, pr_auc, log_loss and brier from class probabilities (None where undefined); with ``pred``
    (whose y_true and probs these are) the curves come from its per-split sort (``score_curve``)."""
    out: dict[str, float | None] = {"roc_auc": None, "pr_auc": None, "log_loss": None, "brier": None}
    if probs is None or y.size == 0:
        return out
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y.size:
        raise ValueError(f"probs must be (n, C) with n = {y.size}, not {probs.shape}")
    if not np.isfinite(probs).all():
        return out
    rows = np.arange(y.size)
    clipped = np.clip(probs, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    clipped /= clipped.sum(axis=1, keepdims=True)
    out["log_loss"] = _float(-np.log(clipped[rows, y]).mean())
    def curve_of(column: int) -> _BinaryCurve:
        cached = score_curve(pred, column) if pred is not None else None
        return cached if cached is not None else _binary_curve(y == column, probs[:, column])

    if positive_index is not None:
        is_pos = y == positive_index
        curve = curve_of(positive_index)
        out["roc_auc"] = _auc_from_curve(curve)
        out["pr_auc"] = _ap_from_curve(curve)
        out["brier"] = _float(np.square(probs[:, positive_index] - is_pos).mean())
        return out
    aucs, aps = [], []
    for c in range(probs.shape[1]):
        curve = curve_of(c)
        aucs.append(_auc_from_curve(curve))
        aps.append(_ap_from_curve(curve))
    defined_auc = [a for a in aucs if a is not None]
    defined_ap = [a for a in aps if a is not None]
    out["roc_auc"] = float(np.mean(defined_auc)) if defined_auc else None
    out["pr_auc"] = float(np.mean(defined_ap)) if defined_ap else None
    squared = np.square(probs).sum(axis=1) - 2.0 * probs[rows, y] + 1.0
    out["brier"] = _float(squared.mean())
    return out


def classification_metrics(
    pred: Predictions, classes: tuple[str, ...], positive_index: int | None
) -> dict[str, Any]:
    """The results.json metric dictionary of a classification split (binary when positive_index is set).

    Binary: precision/recall/f1 of the positive class, ROC AUC and average precision of its score,
    Brier on that score, plus ``positive_class``. Multiclass: macro precision/recall/f1, macro
    one-vs-rest ROC AUC and average precision over the classes where they are defined, multiclass
    Brier (sum over classes). log_loss clips probabilities to [1e-7, 1 - 1e-7] and renormalises.
    """
    c = len(classes)
    if positive_index is not None and not 0 <= positive_index < c:
        raise ValueError(f"positive_index {positive_index} is not a class index of {classes}")
    state = _state_of(pred, c)
    cm = state.confusion
    n = int(cm.sum())
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = [_ratio(a, b) for a, b in zip(tp.tolist(), predicted.tolist())]
    recall = [_ratio(a, b) for a, b in zip(tp.tolist(), support.tolist())]
    f1 = [_f1(p, r) for p, r in zip(precision, recall)]
    present = [i for i in range(c) if support[i] or predicted[i]]

    def macro(values: list[float]) -> float | None:
        """Mean over the classes present in y_true or y_pred."""
        return float(np.mean([values[i] for i in present])) if present else None

    per_class = {}
    for i, name in enumerate(classes):
        ci = wilson_interval(int(tp[i]), int(support[i]))
        per_class[name] = {
            "precision": precision[i],
            "recall": recall[i],
            "f1": f1[i],
            "support": int(support[i]),
            "recall_ci95": list(ci) if ci is not None else None,
        }
    result: dict[str, Any] = {
        "n": n,
        "loss": _float(pred.loss),
        "accuracy": state.accuracy,
        "balanced_accuracy": state.balanced_accuracy,
        "precision": None,
        "recall": None,
        "f1": None,
        "precision_macro": macro(precision),
        "recall_macro": macro(recall),
        "f1_macro": macro(f1),
        "f1_weighted": _ratio(np.dot(f1, support), n) if n else None,
        "mcc": _mcc(cm) if n else None,
        **_probability_metrics(np.asarray(pred.y_true, dtype=np.int64), pred.probs, positive_index, pred),
        "classes": list(classes),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
    }
    if positive_index is not None:
        result["precision"] = precision[positive_index]
        result["recall"] = recall[positive_index]
        result["f1"] = f1[positive_index]
        result["positive_class"] = classes[positive_index]
    else:
        result["precision"] = result["precision_macro"]
        result["recall"] = result["recall_macro"]
        result["f1"] = result["f1_macro"]
    return result


def regression_metrics(pred: Predictions) -> dict[str, Any]:
    """The results.json metric dictionary of a regression split: n, loss, mse, rmse, mae, r2, target stats."""
    if isinstance(pred.state, RegressionState) and pred.state.n == pred.n:
        state = pred.state
    else:
        state = RegressionState()
        y_true, y_pred = np.asarray(pred.y_true), np.asarray(pred.y_pred)
        for start in range(0, pred.n, STREAM_BATCH):
            state.update(y_true[start:start + STREAM_BATCH], y_pred[start:start + STREAM_BATCH])
    return {"n": state.n, "loss": _float(pred.loss), **state.metrics()}


# --------------------------------------------------------------------------- plot curves


def _downsample(progress: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most max_points points, evenly spaced along a non-decreasing progress, endpoints kept."""
    m = progress.size
    if m <= max_points:
        return np.arange(m)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    targets = np.linspace(progress[0], progress[-1], max_points)
    index = np.searchsorted(progress, targets, side="left").clip(0, m - 1)
    index[0], index[-1] = 0, m - 1
    return np.unique(index)


def _roc_points(curve: _BinaryCurve, max_points: int) -> dict[str, Any]:
    """Downsampled ROC curve from (0, 0) to (1, 1) and its AUC."""
    auc = _auc_from_curve(curve)
    if auc is None:
        return {"fpr": [], "tpr": [], "auc": None}
    fpr = np.r_[0.0, curve.fps / float(curve.negatives)]
    tpr = np.r_[0.0, curve.tps / float(curve.positives)]
    keep = _downsample(fpr + tpr, max_points)
    return {"fpr": _floats(fpr[keep]), "tpr": _floats(tpr[keep]), "auc": auc}


def _pr_points(curve: _BinaryCurve, n: int, max_points: int) -> dict[str, Any]:
    """Downsampled precision-recall curve starting at (recall 0, precision 1), with AP and prevalence."""
    prevalence = curve.positives / n if n else None
    ap = _ap_from_curve(curve)
    if ap is None:
        return {"recall": [], "precision": [], "auc": None, "prevalence": prevalence}
    recall = np.r_[0.0, curve.tps / float(curve.positives)]
    precision = np.r_[1.0, curve.tps / (curve.tps + curve.fps).astype(np.float64)]
    progress = recall + np.arange(recall.size) / recall.size
    keep = _downsample(progress, max_points)
    return {"recall": _floats(recall[keep]), "precision": _floats(precision[keep]), "auc": ap,
            "prevalence": prevalence}


def _binary_curves(pred: Predictions, positive_index: int, threshold: float, max_points: int) -> dict[str, Any]:
    """ROC, PR, operating point, calibration and threshold sweep of a binary split."""
    assert pred.probs is not None
    scores = np.asarray(pred.probs, dtype=np.float64)[:, positive_index]
    y = np.asarray(pred.y_true) == positive_index
    curve = score_curve(pred, positive_index)
    if curve is None:  # a score that is not finite
        return dict.fromkeys(("roc", "pr", "operating_point", "calibration", "threshold_sweep"))
    flagged = scores >= threshold
    tp = int(np.count_nonzero(flagged & y))
    false_pos = int(np.count_nonzero(flagged)) - tp
    return {
        "roc": _roc_points(curve, max_points),
        "pr": _pr_points(curve, y.size, max_points),
        "operating_point": {
            "threshold": float(threshold),
            "fpr": false_pos / curve.negatives if curve.negatives else None,
            "tpr": tp / curve.positives if curve.positives else None,
            "precision": _ratio(tp, tp + false_pos),
            "recall": _ratio(tp, curve.positives),
        },
        "calibration": calibration_bins(scores, y),
        "threshold_sweep": sweep_from_curve(curve, SWEEP_THRESHOLDS),
    }


def _multiclass_curves(pred: Predictions, classes: Sequence[str], max_points: int) -> dict[str, Any]:
    """Top-label calibration and one-vs-rest ROC curves of a multiclass split."""
    assert pred.probs is not None
    probs = np.asarray(pred.probs, dtype=np.float64)
    if not np.isfinite(probs).all():
        return {"calibration": None, "roc_per_class": {}}
    y = np.asarray(pred.y_true)
    correct = probs.argmax(axis=1) == y
    return {
        "calibration": calibration_bins(probs.max(axis=1), correct),
        "roc_per_class": {
            name: _roc_points(score_curve(pred, i) or _binary_curve(y == i, probs[:, i]), max_points)
            for i, name in enumerate(classes)
        },
    }


def _regression_curves(pred: Predictions) -> dict[str, Any]:
    """A strided scatter of at most 2000 (y_true, y_pred) points and a 30-bin residual histogram."""
    y_true = np.asarray(pred.y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(pred.y_pred, dtype=np.float64).reshape(-1)
    stride = max(1, math.ceil(y_true.size / SCATTER_MAX_POINTS))
    residual = y_pred - y_true
    residual = residual[np.isfinite(residual)]
    if residual.size:
        counts, edges = np.histogram(residual, bins=RESIDUAL_BINS)
        histogram = {"bin_edges": _floats(edges), "counts": [int(x) for x in counts.tolist()]}
    else:
        histogram = {"bin_edges": [], "counts": []}
    return {
        "scatter": {"y_true": _floats(y_true[::stride]), "y_pred": _floats(y_pred[::stride])},
        "residuals": histogram,
    }


def plot_curves(
    pred: Predictions,
    task: str,
    positive_index: int | None,
    threshold: float,
    max_points: int = 200,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Plot data of one split, bounded in size whatever n is (each curve at most max_points points).

    binary: roc, pr, operating_point, calibration, threshold_sweep; multiclass: calibration and
    roc_per_class keyed by class name (``classes``, default "0", "1", ...); regression: scatter and
    residuals.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if task == "regression":
        return _regression_curves(pred)
    if pred.probs is None:
        raise ValueError("classification plot curves need class probabilities")
    if task == "binary":
        if positive_index is None:
            raise ValueError("binary plot curves need positive_index")
        return _binary_curves(pred, positive_index, threshold, max_points)
    names = list(classes) if classes is not None else [str(i) for i in range(pred.probs.shape[1])]
    return _multiclass_curves(pred, names, max_points)
