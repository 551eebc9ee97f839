"""Confidence intervals that need per-sample scores (computed in the run, stored with the metrics)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959964


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata(method='average'))."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def delong_auc_interval(is_positive: Any, scores: Any, z: float = Z95) -> tuple[float, float] | None:
    """95% interval of the ROC AUC by DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988).

    Structural components from midranks as in Sun & Xu (2014), O(n log n):
    V10_i = (Tz_i - Tx_i) / n for each positive, V01_j = 1 - (Tz_j - Ty_j) / m for each negative;
    var(AUC) = var(V10) / m + var(V01) / n (sample variances). The normal interval is clipped to
    [0, 1]. None unless there are at least two positives and two negatives.
    """
    y = np.asarray(is_positive, dtype=bool)
    s = np.asarray(scores, dtype=float)
    positives, negatives = s[y], s[~y]
    m, n = positives.size, negatives.size
    if m < 2 or n < 2:
        return None
    combined = _midranks(np.concatenate([positives, negatives]))
    v10 = (combined[:m] - _midranks(positives)) / n
    v01 = 1.0 - (combined[m:] - _midranks(negatives)) / m
    auc = float(v10.mean())
    half = z * math.sqrt(max(0.0, v10.var(ddof=1) / m + v01.var(ddof=1) / n))
    return max(0.0, auc - half), min(1.0, auc + half)
