"""Paired, class-stratified bootstrap of ROC AUC and PR AUC for two score vectors on the same samples.

Used by the release comparison: when an earlier run scored the same test rows, both runs are
resampled with the *same* row indices, so the noise shared by the two models (which rows happen
to be in the test set) cancels, and a drop is judged by its own bootstrap distribution.

Each replicate draws the positives with replacement from the positives and the negatives from the
negatives (stratified: the class counts stay fixed, so both metrics are defined in every replicate),
as in the stratified bootstrap of pROC's ``roc.test(method="bootstrap")`` (Robin et al. 2011).
A replicate is represented by how often it drew each row (its weights), and both metrics are
computed from running sums of the weights over each class sorted by score (sorted once per
model): O(replicates x n) time and
``CHUNK_ELEMENTS`` numbers of memory at a time, however large n is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

DEFAULT_REPLICATES = 2000
"""Bootstrap replicates of the release comparison (p-values in steps of 1/2001)."""
CHUNK_ELEMENTS = 1_000_000
"""Replicates are processed in chunks of at most this many (replicate, row) weights (8 MB as float64)."""
SCORE_LEVELS = 65535
"""Scores are quantised to uint16 for storage: q = round(score x 65535), score = q / 65535."""
MAX_STORED_ROWS = 20_000
"""At most this many test rows' scores are stored and resampled (see ``stored_rows``)."""


def quantise_scores(scores: Any) -> np.ndarray:
    """Scores in [0, 1], shape (n,), as uint16 levels round(score x 65535) (values outside [0, 1] are clipped)."""
    values = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return np.rint(values * SCORE_LEVELS).astype(np.uint16)


def stored_rows(n: int, labels_sha256: str, cap: int = MAX_STORED_ROWS) -> np.ndarray:
    """Indices (ascending) of the test rows whose scores are stored and resampled.

    All n rows when n <= cap; otherwise a uniform random subset of ``cap`` rows whose generator is
    seeded by the test labels' SHA-256, so two runs on the same test data (equal hashes) pick the
    same rows without storing the choice. The subset makes the bootstrap interval wider (by about
    sqrt(n / cap)), so it can only call a real drop noise, never noise a drop.
    """
    if n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(int(labels_sha256[:16], 16))
    return np.sort(rng.choice(n, size=cap, replace=False))


def _chunk_size(n: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(n, 1))


def _stratum_draws(is_positive: np.ndarray, replicates: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per chunk of replicates: draws among the positives (k, n_pos) and among the negatives (k, n_neg), as positions within each class."""
    n_pos = int(is_positive.sum())
    n_neg = is_positive.size - n_pos
    rng = np.random.default_rng(seed)
    step = _chunk_size(is_positive.size)
    for start in range(0, replicates, step):
        k = min(step, replicates - start)
        yield (rng.integers(0, n_pos, size=(k, n_pos), dtype=np.int32),
               rng.integers(0, n_neg, size=(k, n_neg), dtype=np.int32))


def bootstrap_indices(is_positive: Any, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of stratified bootstrap replicates, in chunks of shape (k, n), k <= the chunk size.

    Row b of the concatenated chunks is replicate b: the first n_pos columns are drawn with
    replacement from the positive rows, the rest from the negative rows. The same
    (is_positive, replicates, seed) always give the same indices (numpy's PCG64 via default_rng);
    ``paired_bootstrap`` resamples exactly these rows.
    """
    y = np.asarray(is_positive, dtype=bool).reshape(-1)
    positives, negatives = np.flatnonzero(y), np.flatnonzero(~y)
    for draw_pos, draw_neg in _stratum_draws(y, replicates, seed):
        yield np.concatenate([positives[draw_pos], negatives[draw_neg]], axis=1)


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """(k, size) float weights: how often replicate r drew position i."""
    k = draws.shape[0]
    flat = (draws + (np.arange(k, dtype=np.int64) * size)[:, None]).ravel()
    return np.bincount(flat, minlength=k * size).reshape(k, size).astype(np.float64)


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """(k, m + 1) running sums with a leading 0: column j is the weight of the first j positions."""
    out = np.zeros((weights.shape[0], weights.shape[1] + 1))
    np.cumsum(weights, axis=1, out=out[:, 1:])
    return out


@dataclass(frozen=True)
class _Ranking:
    """One model's scores arranged for weighted ranking metrics.

    Positives and negatives are each sorted by score; for each sorted positive, ``neg_below`` /
    ``neg_through`` count the negatives scoring below / at most its score and ``pos_below`` the
    positives scoring below it.
    """

    pos_order: np.ndarray
    neg_order: np.ndarray
    neg_below: np.ndarray
    neg_through: np.ndarray
    pos_below: np.ndarray

    @classmethod
    def of(cls, is_positive: np.ndarray, scores: np.ndarray) -> _Ranking:
        pos_scores, neg_scores = scores[is_positive], scores[~is_positive]
        pos_order, neg_order = np.argsort(pos_scores, kind="stable"), np.argsort(neg_scores, kind="stable")
        pos_sorted, neg_sorted = pos_scores[pos_order], neg_scores[neg_order]
        return cls(pos_order, neg_order,
                   np.searchsorted(neg_sorted, pos_sorted, side="left"),
                   np.searchsorted(neg_sorted, pos_sorted, side="right"),
                   np.searchsorted(pos_sorted, pos_sorted, side="left"))

    def metrics(self, pos_weights: np.ndarray, neg_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ROC AUC, average precision) of each replicate, shape (k,) each.

        ``pos_weights`` (k, n_pos) / ``neg_weights`` (k, n_neg): how often each replicate drew each
        positive / negative (in class order). With W-(< s) the weight of negatives scoring below s:
        AUC = sum_i w_i (W-(< s_i) + W-(= s_i) / 2) / (W+ W-), the Mann-Whitney statistic with ties
        counted one half (= scikit-learn's roc_auc_score on the drawn rows);
        AP = sum_i w_i precision(s_i) / W+ with precision(s) = W+(>= s) / (W+(>= s) + W-(>= s))
        (= scikit-learn's average_precision_score on the drawn rows); sums over positives i.
        """
        w_pos = pos_weights[:, self.pos_order]
        neg_cum = _cumulative(neg_weights[:, self.neg_order])
        pos_cum = _cumulative(w_pos)
        total_pos, total_neg = pos_cum[:, -1], neg_cum[:, -1]
        below, through = neg_cum[:, self.neg_below], neg_cum[:, self.neg_through]
        auc = (w_pos * (below + through)).sum(axis=1) / (2.0 * total_pos * total_neg)
        positives_at_or_above = total_pos[:, None] - pos_cum[:, self.pos_below]
        rows_at_or_above = positives_at_or_above + (total_neg[:, None] - below)
        precision = np.divide(positives_at_or_above, rows_at_or_above,
                              out=np.zeros_like(rows_at_or_above), where=rows_at_or_above > 0)
        ap = (w_pos * precision).sum(axis=1) / total_pos
        return auc, ap


@dataclass(frozen=True)
class PairedBootstrap:
    """Per-replicate ROC AUC and PR AUC (average precision) of two models on the same resampled rows.

    Arrays of shape (replicates,). ``drop(metric)`` is earlier minus current per replicate.
    """

    roc_auc_before: np.ndarray
    roc_auc_now: np.ndarray
    pr_auc_before: np.ndarray
    pr_auc_now: np.ndarray

    def drop(self, metric: str) -> np.ndarray:
        """Earlier minus current value of ``metric`` ("roc_auc" or "pr_auc") in each replicate."""
        before, now = {"roc_auc": (self.roc_auc_before, self.roc_auc_now),
                       "pr_auc": (self.pr_auc_before, self.pr_auc_now)}[metric]
        return before - now

    def p_value(self, metric: str) -> float:
        """One-sided p-value of "the current model is no worse": (1 + #{drop_b <= 0}) / (B + 1).

        The add-one form keeps p > 0 with finitely many replicates (Davison & Hinkley 1997, eq. 4.11).
        """
        drops = self.drop(metric)
        return float((1 + np.count_nonzero(drops <= 0)) / (drops.size + 1))

    def lower_bound(self, metric: str, alpha: float) -> float:
        """One-sided (1 - alpha) percentile lower bound of the drop: a drop is real when it is above 0."""
        return float(np.quantile(self.drop(metric), alpha))


def paired_bootstrap(is_positive: Any, scores_before: Any, scores_now: Any,
                     replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> PairedBootstrap | None:
    """Resample the same rows for both score vectors (shape (n,) each) and compute both metrics per replicate.

    ``is_positive`` (n,) marks the positive class. None when a class has fewer than two rows
    (nothing to resample). Deterministic in ``seed``; memory bounded by ``CHUNK_ELEMENTS``.
    """
    y = np.asarray(is_positive, dtype=bool).reshape(-1)
    before = np.asarray(scores_before, dtype=np.float64).reshape(-1)
    now = np.asarray(scores_now, dtype=np.float64).reshape(-1)
    if not (y.shape == before.shape == now.shape):
        raise ValueError(f"is_positive, scores_before and scores_now must have one length, not "
                         f"{y.size}, {before.size}, {now.size}")
    positives = int(y.sum())
    if positives < 2 or y.size - positives < 2:
        return None
    rank_before, rank_now = _Ranking.of(y, before), _Ranking.of(y, now)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    n_pos, n_neg = positives, y.size - positives
    for draw_pos, draw_neg in _stratum_draws(y, replicates, seed):
        pos_weights, neg_weights = _counts(draw_pos, n_pos), _counts(draw_neg, n_neg)
        parts.append((*rank_before.metrics(pos_weights, neg_weights), *rank_now.metrics(pos_weights, neg_weights)))
    auc_before, ap_before, auc_now, ap_now = (np.concatenate(column) for column in zip(*parts))
    return PairedBootstrap(auc_before, auc_now, ap_before, ap_now)
