"""Whether an earlier run's stored per-sample records agree with the metrics the same results.json records.

The release comparison softens a drop only through a paired test on the earlier run's per-sample
records (``gate.test_outcomes``: correctness bits; ``gate.test_scores``: 16-bit positive-class
scores). Those records are easy to replace while the recorded metrics stay, and a forged record
(say, all-zero scores) turns a real drop into "noise". So before a paired test uses them, the
records are checked against the metrics of the same file; on any disagreement the comparison
judges the drop alone.

What is recomputed (on the test labels of this run, which the labels' SHA-256 ties to the earlier run's):

* from the correctness bits: accuracy, each class's recall and support (the confusion matrix's
  diagonal and row sums), and for binary tasks precision and recall
  (a wrong binary prediction is the other class). These are ratios of counts: exact, compared to 1e-9.
* from the stored scores (binary): the predicted class at the earlier run's threshold must match the
  correctness bits on every row whose stored score is more than ``THRESHOLD_MARGIN`` away from the
  threshold; ROC AUC must match within its quantisation bound (below); PR AUC (average precision)
  must match to 1e-9 when no positive's quantised score is tied with another row's, and is not
  compared otherwise (ties change average precision by amounts that have no simple bound).

The quantisation bound of ROC AUC. Storing q = round(score x 65535) is monotone, so it never
reverses the order of two scores; it can only make two different scores equal. ROC AUC is the
fraction of (positive, negative) pairs ranked right, a tie counting 1/2 (Hanley and McNeil 1982).
A pair that is tied after quantisation counted 0, 1/2 or 1 before, so it moves the AUC by at most
1/2 of its weight: |AUC(scores) - AUC(q)| <= t / 2, with t the fraction of (positive, negative)
pairs tied in q. Pairs not tied in q kept their order exactly. The bound is exact and computable
from the record alone. Forged scores with many ties (a constant) get a loose bound, but then fail
the threshold check unless every prediction was one class; and more than ``MAX_TIED_PAIRS`` tied
pairs is refused outright, since it leaves the AUC undetermined.

When the test split had more than ``MAX_STORED_ROWS`` rows only a seeded subset of scores is stored,
so ROC AUC on the subset differs from the recorded one by sampling: the tolerance adds
``SUBSET_SIGMAS`` standard errors of the subset's AUC (Hanley and McNeil 1982, eq. 2) times the
finite-population correction sqrt((n - m) / (n - 1)) for m of n rows drawn without replacement;
PR AUC is then not compared.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Mapping

import numpy as np

from reportgen.paired_bootstrap import SCORE_LEVELS, stored_rows

EXACT_TOLERANCE = 1e-9
"""Ratios of counts recomputed in float64 against the recorded float64 values."""
THRESHOLD_MARGIN = 1.0 / SCORE_LEVELS
"""Stored scores within this of the threshold may sit on either side of it (rounding of 0.5/65535, plus float32 error)."""
MAX_TIED_PAIRS = 0.01
"""Most (positive, negative) pairs tied by quantisation for ROC AUC to count as determined by the record."""
SUBSET_SIGMAS = 5.0
"""Standard errors of the subset's ROC AUC allowed when only a subset of the scores is stored."""


def records_disagreement(previous: Mapping[str, Any], truth: Any, positive_index: int | None) -> str | None:
    """How the earlier run's stored per-sample records disagree with its recorded test metrics, or None.

    ``previous`` is a validated results.json document (reportgen.results_schema); ``truth`` the test
    labels (class indices, shape (n,)) of this run, equal to the earlier run's (their SHA-256 matched).
    Returns None when the records are consistent or absent. Pure; O(n log n).
    """
    gate = previous.get("gate") or {}
    metrics = (previous.get("metrics") or {}).get("test") or {}
    y = np.asarray(truth, dtype=np.int64).reshape(-1)
    outcomes, scores = gate.get("test_outcomes"), gate.get("test_scores")
    correct = None
    if isinstance(outcomes, Mapping):
        if int(outcomes["n"]) != y.size:
            return f"test_outcomes holds {outcomes['n']} rows, the test split {y.size}"
        correct = np.unpackbits(np.frombuffer(base64.b64decode(outcomes["correct"]), dtype=np.uint8))[: y.size].astype(bool)
        problem = _count_disagreement(metrics, y, correct, positive_index)
        if problem:
            return problem
    if isinstance(scores, Mapping) and positive_index is not None:
        threshold = (previous.get("model") or {}).get("threshold")
        return _score_disagreement(metrics, y, correct, scores, positive_index,
                                   0.5 if threshold is None else float(threshold))
    return None


def _differs(recorded: Any, value: float | None) -> bool:
    """A recorded number that the records give otherwise (or leave undefined); a missing or null record is not compared."""
    if not isinstance(recorded, (int, float)):
        return False
    return value is None or abs(float(recorded) - value) > EXACT_TOLERANCE


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _count_disagreement(metrics: Mapping[str, Any], y: np.ndarray, correct: np.ndarray, positive_index: int | None) -> str | None:
    """The first recorded count-based metric that the correctness bits do not give."""
    found: dict[str, float | None] = {"accuracy": _ratio(int(correct.sum()), y.size)}
    classes = metrics.get("classes") or []
    per_class = metrics.get("per_class") or {}
    matrix = metrics.get("confusion_matrix")
    for k, name in enumerate(classes):
        rows = y == k
        hits = int(correct[rows].sum())
        record = per_class.get(name) or {}
        if _differs(record.get("recall"), _ratio(hits, int(rows.sum()))):
            return f"the recall of class {name!r} is {record.get('recall')}, its correctness bits give {_ratio(hits, int(rows.sum()))}"
        if isinstance(matrix, list) and k < len(matrix) and k < len(matrix[k]):
            if matrix[k][k] != hits or sum(matrix[k]) != int(rows.sum()):
                return f"confusion_matrix row {name!r} does not match the correctness bits"
    if positive_index is not None:
        predicted_positive = np.where(correct, y == positive_index, y != positive_index)
        tp = int(np.sum(predicted_positive & (y == positive_index)))
        precision, recall = _ratio(tp, int(predicted_positive.sum())), _ratio(tp, int(np.sum(y == positive_index)))
        found["recall"] = recall
        if precision is not None:  # undefined precision is written differently by versions (null or 0)
            found["precision"] = precision
    for key, value in found.items():
        if key in metrics and _differs(metrics[key], value):
            return f"{key} is recorded as {metrics[key]}, its correctness bits give {value}"
    return None


def _score_disagreement(metrics: Mapping[str, Any], y: np.ndarray, correct: np.ndarray | None,
                        record: Mapping[str, Any], positive_index: int, threshold: float) -> str | None:
    """The first way the stored scores disagree with the correctness bits or the recorded ROC AUC / PR AUC."""
    levels = np.frombuffer(base64.b64decode(record["scores"]), dtype="<u2")
    rows = stored_rows(y.size, str(record["labels_sha256"]))
    if rows.size != levels.size:
        return f"test_scores holds {levels.size} scores for {rows.size} stored rows"
    scores = levels.astype(np.float64) / SCORE_LEVELS
    positive = y[rows] == positive_index
    if correct is not None:
        said_positive = np.where(correct[rows], positive, ~positive)
        decided = np.abs(scores - threshold) > THRESHOLD_MARGIN
        wrong = int(np.sum(decided & ((scores >= threshold) != said_positive)))
        if wrong:
            return f"{wrong} stored scores fall on the other side of the threshold {threshold} than the correctness bits say"
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    auc, tied = _auc_and_ties(levels, positive)
    if tied > MAX_TIED_PAIRS:
        return f"{tied:.1%} of the (positive, negative) pairs of stored scores are tied, which leaves ROC AUC undetermined"
    tolerance = tied / 2 + EXACT_TOLERANCE
    subset = rows.size < y.size
    if subset:
        tolerance += SUBSET_SIGMAS * _hanley_mcneil_se(auc, n_pos, n_neg) * math.sqrt((y.size - rows.size) / (y.size - 1))
    recorded = metrics.get("roc_auc")
    if isinstance(recorded, (int, float)) and abs(float(recorded) - auc) > tolerance:
        return f"ROC AUC is recorded as {recorded}, the stored scores give {auc:.6f} (tolerance {tolerance:.2g})"
    recorded_ap = metrics.get("pr_auc")
    if not subset and isinstance(recorded_ap, (int, float)) and not _positive_ties(levels, positive):
        ap = _average_precision(levels, positive)
        if abs(float(recorded_ap) - ap) > EXACT_TOLERANCE:
            return f"PR AUC is recorded as {recorded_ap}, the stored scores give {ap:.6f}"
    return None


def _auc_and_ties(levels: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(ROC AUC with ties counted 1/2, fraction of (positive, negative) pairs tied) of integer scores; O(n log n)."""
    values, inverse = np.unique(levels, return_inverse=True)
    pos_counts = np.bincount(inverse, weights=positive.astype(np.float64), minlength=values.size)
    neg_counts = np.bincount(inverse, weights=(~positive).astype(np.float64), minlength=values.size)
    negatives_below = np.cumsum(neg_counts) - neg_counts
    pairs = float(positive.sum()) * float((~positive).sum())
    tied = float(np.sum(pos_counts * neg_counts))
    return float((np.sum(pos_counts * negatives_below) + tied / 2) / pairs), tied / pairs


def _positive_ties(levels: np.ndarray, positive: np.ndarray) -> bool:
    """Whether some positive's score equals another row's."""
    _, inverse, counts = np.unique(levels, return_inverse=True, return_counts=True)
    return bool(np.any(counts[inverse[positive]] > 1))


def _average_precision(levels: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of untied positives: the mean over positives of the precision at their rank (scikit-learn's definition)."""
    order = np.argsort(-levels.astype(np.int64), kind="stable")
    hits = positive[order]
    precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(precision_at[hits].mean())


def _hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of ROC AUC (Hanley and McNeil 1982, eq. 2)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(variance, 0.0))
