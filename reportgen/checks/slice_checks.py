"""Slice and fairness checks: where on the test split the model fails, and for whom.

Slices use ``SplitData.attributes``: the raw values a person recognises (category names, numbers in
their original units). Data kinds without attributes fall back to the model's input columns.
Every statistic is computed from per-slice sums (``numpy.bincount`` over integer slice codes), so
the cost is linear in test rows and in the number of slices, never quadratic.

The rows come from the test split's row sample (``CheckContext.row_sample``, reportgen/checks/shards.py):
every row up to 200,000, so the tables are exact there; on a larger split a sample of 200,000 rows chosen
by a hash of the row index and the seed, the same for any number of workers. The evidence then says so
(``sample``: rows used and rows of the split), and slice sizes and supports count sampled rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise
from statistics import NormalDist
from typing import Any

import numpy as np

from reportgen import metrics as M
from reportgen.checks.base import (
    NOT_APPLICABLE,
    NOT_MEASURED,
    SIGNIFICANCE_LEVEL_KEY,
    VALUE_P_KEY,
    Check,
    CheckSettings,
    CheckSpec,
    Finding,
    Measurement,
    Param,
    register,
)
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, number, p_clause, percent, setting
from reportgen.types import Predictions, SplitData

MAX_COLUMNS = 100
"""Columns sliced when ``features`` is not given (the first 100 attribute columns)."""
MAX_EVIDENCE_SLICES = 10
Z95 = 1.959964


# ----------------------------------------------------------------------------- statistics


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in input order.

    q_(i) = min over j >= i of p_(j) * m / j for the ascending p-values p_(1..m), capped at 1
    (Benjamini & Hochberg 1995; the same as ``scipy.stats.false_discovery_control``).
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def chi2_quantile(q: float, df: float) -> float:
    """Quantile of the chi-square distribution by the Wilson–Hilferty cube approximation (error < 1% for df >= 10)."""
    z = NormalDist().inv_cdf(q)
    a = 2.0 / (9.0 * df)
    return df * max(1.0 - a + z * math.sqrt(a), 0.0) ** 3


def rmse_interval(mse: float, n: int) -> tuple[float, float] | None:
    """95% interval of an RMSE from ``n`` errors, treating them as N(0, sigma^2): n*MSE/sigma^2 ~ chi2(n)."""
    if n <= 0:
        return None
    return (math.sqrt(n * mse / chi2_quantile(0.975, n)), math.sqrt(n * mse / max(chi2_quantile(0.025, n), 1e-12)))


# ----------------------------------------------------------------------------- slicing


@dataclass(frozen=True)
class SliceColumn:
    """One column cut into slices: an integer code per sample (-1: in no slice) and each slice's label."""

    name: str
    codes: np.ndarray
    labels: tuple[str, ...]


def _fmt(x: float) -> str:
    """A bin edge or category value in a slice's name: four significant digits, written as a setting."""
    return setting(x, significant=4)


MISSING_SLICE = "missing"
"""The slice of a column's empty cells is labelled "<column> missing"."""


def encode_column(name: str, values: Any, bins: int, max_categories: int) -> SliceColumn | None:
    """Cut a column into slices: numbers with more than ``bins`` distinct values into quantile bins
    (labelled in the column's own units), everything else by value (the ``max_categories`` most frequent).
    Empty cells (NaN, None, and infinite numbers, which data.missing reads as empty) form one more slice,
    "<name> missing", so a model that fails where a value was imputed is found. None when fewer than
    two slices result."""
    import pandas as pd  # type: ignore[import-untyped]

    series = pd.Series(values).reset_index(drop=True)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    missing_label = f"{name} {MISSING_SLICE}"
    if numeric:
        v = series.to_numpy(dtype=np.float64)
        finite = np.isfinite(v)
        series = series.where(finite)
        distinct = np.unique(v[finite])
        if distinct.size > bins:
            edges = np.unique(np.quantile(v[finite], np.linspace(0.0, 1.0, bins + 1)))
            if edges.size < 3:
                return None
            codes = np.searchsorted(edges[1:-1], v, side="right").astype(np.int64)
            labels = tuple(f"{name} in [{_fmt(lo)}, {_fmt(hi)}{']' if i == edges.size - 2 else ')'}"
                           for i, (lo, hi) in enumerate(pairwise(edges)))
            if not finite.all():
                codes[~finite] = len(labels)
                labels += (missing_label,)
            return SliceColumn(name, codes, labels)
    codes, uniques = pd.factorize(series.astype(str), sort=True)  # hashing: linear in rows; NaN gets code -1
    names = [f"{name} = {_fmt(float(u)) if numeric else u}" for u in np.asarray(uniques)]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names.append(missing_label)
    if len(names) < 2:
        return None
    counts = np.bincount(codes, minlength=len(names))
    keep = np.argsort(-counts, kind="stable")[:max_categories]
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    return SliceColumn(name, remap[codes.reshape(-1)], tuple(names[i] for i in keep))


def slice_table(ctx: CheckContext, data: SplitData):
    """The attributes to slice on: ``SplitData.attributes``, else the model's input columns by name."""
    import pandas as pd

    if data.attributes is not None:
        return data.attributes.reset_index(drop=True), True
    if data.features is not None:
        names = ctx.data.feature_names or tuple(f"x{i}" for i in range(data.features.shape[1]))
        return pd.DataFrame(data.features, columns=list(names)), False
    return None, False


def _columns(table, wanted: list[str] | None, setting: str) -> list[str]:
    if wanted is None:
        return [str(c) for c in table.columns][:MAX_COLUMNS]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(f"{setting} names {missing[0]!r}, which is not a column of the test data "
                         f"(columns: {', '.join(map(str, list(table.columns)[:20]))})")
    return list(wanted)


def identifier_like(values: Any) -> bool:
    """True for a column that names rows rather than describing them: a row number or id (every value
    distinct and whole), or text with more distinct values than half its rows (auto-mpg's car ``name``).
    Such columns give one-row slices or arbitrary bins. Columns of under 20 values are never judged so."""
    import pandas as pd

    series = pd.Series(values).dropna()
    n = len(series)
    if n < 20:
        return False
    distinct = series.nunique()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        v = series.to_numpy(dtype=np.float64)
        return distinct == n and bool(np.all(np.isfinite(v) & (v == np.round(v))))
    return distinct > n / 2


def slice_columns(ctx: CheckContext, table, raw: bool, wanted: list[str] | None,
                  setting: str) -> tuple[list[str], list[dict[str, str]]]:
    """The columns slice_performance cuts, and those it leaves out with the reason ({column, reason}).

    By default: the model's own columns (``DataBundle.model_columns``; every column when unknown). A column the
    model does not read (data.ignore) is sliced only when ``wanted`` names it, and an identifier-like one never.
    Raises ValueError when ``wanted`` names a column the test data lacks. At most ``MAX_COLUMNS``.
    """
    model_columns = ctx.data.model_columns if raw else None
    left_out: list[dict[str, str]] = []
    if wanted is None:
        names = [str(c) for c in table.columns]
        if model_columns is not None:
            left_out += [{"column": c, "reason": "not a model input (data.ignore); name it in features to slice on it"}
                         for c in names if c not in model_columns]
            names = [c for c in names if c in model_columns]
    else:
        names = _columns(table, wanted, setting)
    if raw:
        unread = [c for c in names if model_columns is None or c not in model_columns]
        ids = {c for c in unread if identifier_like(table[c])}
        left_out += [{"column": c, "reason": "identifier-like: it names rows rather than describing them"}
                     for c in names if c in ids]
        names = [c for c in names if c not in ids]
    return names[:MAX_COLUMNS], left_out


# ----------------------------------------------------------------------------- slice_performance


@dataclass(frozen=True)
class MetricSums:
    """What a slice metric is computed from, per sample: whether it counts, and its contribution."""

    name: str
    eligible: np.ndarray
    """bool (n,): the sample is in the metric's denominator (e.g. an actual positive for recall)."""
    value: np.ndarray
    """float (n,): 1/0 success for proportions; the squared error for RMSE."""

    @property
    def proportion(self) -> bool:
        return self.name != "rmse"


def metric_sums(ctx: CheckContext, pred: Predictions, metric: str) -> MetricSums:
    """Per-sample terms of ``metric`` over the rows of ``pred``."""
    y, p = np.asarray(pred.y_true), np.asarray(pred.y_pred)
    if metric == "rmse":
        return MetricSums(metric, np.ones(y.size, bool), (p.astype(np.float64) - y.astype(np.float64)) ** 2)
    if metric == "accuracy":
        return MetricSums(metric, np.ones(y.size, bool), (p == y).astype(np.float64))
    pos = ctx.positive_index
    if metric == "recall":
        return MetricSums(metric, y == pos, (p == pos).astype(np.float64))
    return MetricSums(metric, p == pos, (y == pos).astype(np.float64))  # precision


@dataclass
class SliceStat:
    """Metric of one slice against the rest of the test split."""

    label: str
    parents: tuple[str, ...]
    size: int
    n: int
    metric: float
    rest: float
    gap: float
    p_value: float
    ci: tuple[float, float] | None
    q_value: float = 1.0
    flagged: bool = False

    def record(self) -> dict[str, Any]:
        return {"slice": self.label, "size": self.size, "n": self.n, "metric": self.metric,
                "ci_low": self.ci[0] if self.ci else None, "ci_high": self.ci[1] if self.ci else None,
                "rest": self.rest, "gap": self.gap, "p_adjusted": self.q_value, "fails": self.flagged}


def _stats_for_codes(codes: np.ndarray, labels: Sequence[str], parents: Sequence[tuple[str, ...]], sums: MetricSums,
                     max_gap: float, min_support: int) -> list[SliceStat]:
    """Per-slice metric, interval and one-sided p-value of 'worse than the rest by more than max_gap'."""
    k = len(labels)
    inside = codes >= 0
    c = codes[inside]
    size = np.bincount(c, minlength=k)
    elig = sums.eligible[inside]
    n = np.bincount(c, weights=elig, minlength=k)
    s = np.bincount(c, weights=sums.value[inside] * elig, minlength=k)
    s2 = np.bincount(c, weights=(sums.value[inside] ** 2) * elig, minlength=k)
    n_all = float(sums.eligible.sum())
    s_all = float((sums.value * sums.eligible).sum())
    s2_all = float((sums.value ** 2 * sums.eligible).sum())
    out = []
    for i in range(k):
        ns, nr = int(n[i]), int(n_all - n[i])
        if ns < min_support or nr < min_support:
            continue
        ss, sr = float(s[i]), s_all - float(s[i])
        if sums.proportion:
            ps, pr = ss / ns, sr / nr
            gap = pr - ps
            se = math.sqrt(ps * (1 - ps) / ns + pr * (1 - pr) / nr)
            excess = gap - max_gap
            ci = M.wilson_interval(round(ss), ns)
            metric, rest = ps, pr
        else:
            ms, mr = ss / ns, sr / nr
            vs = max(float(s2[i]) / ns - ms * ms, 0.0) * ns / max(ns - 1, 1)
            s2r = s2_all - float(s2[i])
            vr = max(s2r / nr - mr * mr, 0.0) * nr / max(nr - 1, 1)
            factor = (1.0 + max_gap) ** 2
            excess = ms - factor * mr
            se = math.sqrt(vs / ns + factor * factor * vr / nr)
            metric, rest = math.sqrt(ms), math.sqrt(mr)
            gap = metric / rest - 1.0 if rest > 0 else (math.inf if metric > 0 else 0.0)
            ci = rmse_interval(ms, ns)
        p_value = normal_sf(excess / se) if se > 0 else (0.0 if excess > 0 else 1.0)
        out.append(SliceStat(labels[i], tuple(parents[i]), int(size[i]), ns, metric, rest, gap, p_value, ci))
    return out


def _worse_than(metric: str, a: float, b: float, max_gap: float) -> bool:
    """True when metric value ``a`` is worse than ``b`` by more than ``max_gap`` (relative for RMSE)."""
    if metric == "rmse":
        return b > 0 and a / b - 1.0 > max_gap
    return b - a > max_gap


def label_of(metric: str) -> str:
    """A slice metric's name in a sentence."""
    return {"recall": "recall", "precision": "precision", "accuracy": "accuracy", "rmse": "RMSE"}[metric]


@register
class SlicePerformance(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="slice_performance",
        title="Weak slices",
        family="performance",
        detects="A segment of the test data where the model does much worse than elsewhere (a region, an age band, "
        "a combination of two), hidden by the overall metric.",
        how_to_read="The test split is cut into slices by each feature (each category; numbers in quantile bins, "
        "in their original units) and by pairs of the features with the weakest slices. Each slice's metric "
        "(default: recall of the positive class, accuracy for multiclass, RMSE for regression) is compared with "
        "the rest of the data; a slice fails when it is worse by more than the max (RMSE: relatively) and the "
        "difference stays significant after a Benjamini–Hochberg false-discovery-rate correction across every "
        "slice tested. The table lists the worst slices with support and 95% intervals; the value is the largest "
        "gap found.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.1,
        threshold_range=(0.0, 1.0),
        threshold_alias="max_gap",
        measures="largest gap of a slice to the rest (RMSE: relative)",
        params=(
            Param("metric", None, "recall | precision (binary), accuracy (classification), rmse (regression); "
                  "default: recall for binary, accuracy for multiclass, rmse for regression.",
                  choices=("recall", "precision", "accuracy", "rmse"), nullable=True),
            Param("features", None, "Columns to slice on (default: the model's input columns, at most 100; name an "
                  "ignored column here to slice on it).", kind=list, nullable=True),
            Param("min_support", 30, "Samples behind a slice's metric (for recall: its actual positives) needed "
                  "to test it.", kind=int, minimum=1, stricter="less"),
            Param("alpha", 0.05, "False discovery rate (Benjamini–Hochberg) across all slices tested.",
                  kind=float, minimum=1e-6, maximum=0.5, stricter="more"),
            Param("bins", 5, "Quantile bins per numeric column.", kind=int, minimum=2, maximum=20),
            Param("max_categories", 20, "Most frequent categories sliced per column.", kind=int, minimum=2, maximum=200, stricter="more"),
            Param("pair_features", 5, "Columns with the weakest single slices combined in pairs (0: no pairs).",
                  kind=int, minimum=0, maximum=10, stricter="more"),
            Param("max_pairs", 10, "Column pairs searched at most.", kind=int, minimum=0, maximum=45, stricter="more"),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        split = ctx.evaluation_split()
        if split not in ctx.predictions or split not in ctx.data.splits:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        sample = ctx.row_sample(split)
        table, raw = slice_table(ctx, sample.split)
        if table is None:
            return Finding.skip("the test data has no columns to slice on (give the python factory an "
                                "'attributes' table, see docs/checks.md)", NOT_APPLICABLE)
        params = settings.params
        default_metric = {"binary": "recall", "multiclass": "accuracy", "regression": "rmse"}[ctx.task]
        metric = params["metric"] or default_metric
        if (metric == "rmse") != (ctx.task == "regression") or (metric in ("recall", "precision") and ctx.task != "binary"):
            raise ValueError(f"metric {metric!r} does not apply to {ctx.task} tasks")
        max_gap, min_support = float(settings.threshold if settings.threshold is not None else 0.1), params["min_support"]
        assert sample.predictions is not None  # the split has predictions (checked above), so its sample does
        sums = metric_sums(ctx, sample.predictions, metric)
        names, left_out = slice_columns(ctx, table, raw, params["features"], "checks.slice_performance.features")
        columns = [col for col in (encode_column(name, table[name], params["bins"], params["max_categories"])
                                   for name in names) if col is not None]
        stats: list[SliceStat] = []
        worst_gap_by_column: dict[str, float] = {}
        for col in columns:
            found = _stats_for_codes(col.codes, col.labels, [(label,) for label in col.labels], sums, max_gap, min_support)
            stats += found
            worst_gap_by_column[col.name] = max((s.gap for s in found), default=-math.inf)
        ranked = sorted((c for c in columns if worst_gap_by_column[c.name] > -math.inf),
                        key=lambda c: -worst_gap_by_column[c.name])[: params["pair_features"]]
        pairs = list(combinations(ranked, 2))[: params["max_pairs"]]
        for a, b in pairs:
            kb = len(b.labels)
            codes = np.where((a.codes >= 0) & (b.codes >= 0), a.codes * kb + b.codes, -1)
            labels = [f"{la} and {lb}" for la in a.labels for lb in b.labels]
            parents = [(la, lb) for la in a.labels for lb in b.labels]
            stats += _stats_for_codes(codes, labels, parents, sums, max_gap, min_support)
        if not stats:
            unit = {"recall": f"actual positives ({ctx.classes[ctx.positive_index]!r})" if ctx.task == "binary" else "",
                    "precision": f"predicted positives ({ctx.classes[ctx.positive_index]!r})" if ctx.task == "binary" else "",
                    }.get(metric) or f"{split} samples"
            return Finding.skip(f"no slice could be tested: every slice, or the rest of the {split} data outside it, "
                                f"has fewer than {count(min_support)} {unit} to measure {label_of(metric)} on "
                                f"(lower min_support to test smaller slices)", NOT_MEASURED)
        for s, q in zip(stats, benjamini_hochberg([s.p_value for s in stats])):
            s.q_value = float(q)
            s.flagged = s.gap > max_gap and q < params["alpha"]
        flagged_single = {s.label: s for s in stats if s.flagged and len(s.parents) == 1}
        merged = 0
        for s in stats:
            if s.flagged and len(s.parents) == 2:
                parent = [flagged_single[p] for p in s.parents if p in flagged_single]
                if any(p.size == s.size or not _worse_than(metric, s.metric, p.metric, max_gap) for p in parent):
                    s.flagged = False  # a nested duplicate: its simpler parent slice already tells the story
                    merged += 1
        failing = sorted((s for s in stats if s.flagged), key=lambda s: -s.gap)
        shown = (failing + sorted((s for s in stats if not s.flagged), key=lambda s: -s.gap))[:MAX_EVIDENCE_SLICES]
        label = label_of(metric)
        evidence = {
            "metric": metric, "max_gap": max_gap, "min_support": min_support, "alpha": params["alpha"],
            "slices_tested": len(stats), "columns": [c.name for c in columns], "pairs_searched": len(pairs),
            "nested_merged": merged, "raw_values": raw, "worst_slices": [s.record() for s in shown],
            "columns_left_out": left_out, **sample.evidence(),
        }
        value = max(s.gap for s in stats)
        # a gap past the max passes when not significant: the gate table shows the adjusted p of the gap it shows
        measured = failing[0] if failing else max(stats, key=lambda s: s.gap)
        evidence[SIGNIFICANCE_LEVEL_KEY] = params["alpha"]
        evidence[VALUE_P_KEY] = {"label": "adjusted p", "p_value": measured.q_value}
        # for RMSE max is a relative increase (0.1: 10% higher than the rest), for proportions a difference
        limit = f"{setting(100 * max_gap)}%" if metric == "rmse" else setting(max_gap)
        if failing:
            w = failing[0]
            more = f" ({len(failing) - 1} more slices fail, see the table)" if len(failing) > 1 else ""
            gap_text = f"{percent(w.gap)} higher" if metric == "rmse" else f"a gap of {number(w.gap)}"
            return Finding("violation", w.gap, f"The model's {label} is {number(w.metric)} in {w.label} (n = {count(w.size)}) "
                           f"against {number(w.rest)} elsewhere: {gap_text}, above the {limit} limit "
                           f"({p_clause(w.q_value, 'adjusted p')}){more}.", evidence)
        w = max(stats, key=lambda s: s.gap)
        tested = f"{count(len(stats))} slice{'s' if len(stats) != 1 else ''} tested"
        if w.gap <= 0:  # every slice scores at least as well as the data outside it: none is "weakest"
            return Finding("ok", value, f"No slice is worse than the rest in {label} ({tested}; the closest, {w.label}, "
                           f"has {number(w.metric)} against {number(w.rest)} elsewhere, n = {count(w.size)}).", evidence)
        return Finding("ok", value, f"No slice is worse than the rest by more than {limit} in {label} with "
                       f"significance ({tested}; weakest: {w.label}, {number(w.metric)} "
                       f"against {number(w.rest)} elsewhere, n = {count(w.size)}).", evidence)


# ----------------------------------------------------------------------------- group_fairness


def _rate(successes: int, n: int) -> tuple[float | None, list[float] | None]:
    if n == 0:
        return None, None
    ci = M.wilson_interval(successes, n)
    return successes / n, list(ci) if ci else None


def _spread(values: list[float | None]) -> float | None:
    """max - min over the groups where the rate is defined (Fairlearn's 'between_groups' difference)."""
    defined = [v for v in values if v is not None]
    return max(defined) - min(defined) if defined else None


@register
class GroupFairness(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="group_fairness",
        title="Group fairness",
        family="fairness",
        detects="A model that selects, finds or wrongly flags people at different rates depending on a sensitive "
        "attribute (sex, age band, region) named under `sensitive`.",
        how_to_read="For each group of each sensitive column: the selection rate (share predicted positive), the "
        "true-positive rate and the false-positive rate, with 95% Wilson intervals. The demographic-parity "
        "difference is the largest minus the smallest selection rate across groups; the equalised-odds "
        "difference is the larger of the TPR and FPR differences (both as Fairlearn defines them). The value is "
        "the largest of these differences over the sensitive columns; 0 means equal treatment.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.1,
        tasks=frozenset({"binary"}),
        params=(
            Param("sensitive", [], "Columns of the test data that hold the sensitive attributes.", kind=list,
                  stricter="more"),
            Param("bins", 4, "Quantile bins for a numeric sensitive column with more distinct values.",
                  kind=int, minimum=2, maximum=20),
            Param("max_groups", 50, "Most frequent groups kept per column.", kind=int, minimum=2, maximum=500, stricter="more"),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        sensitive = settings.params["sensitive"]
        if not sensitive:
            return Finding.skip("no sensitive attribute is named (set checks.group_fairness.sensitive: [column, ...])", NOT_APPLICABLE)
        split = ctx.evaluation_split()
        if split not in ctx.predictions or split not in ctx.data.splits:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        sample = ctx.row_sample(split)
        table, _ = slice_table(ctx, sample.split)
        if table is None:
            return Finding.skip("the test data has no attribute columns", NOT_APPLICABLE)
        names = _columns(table, list(sensitive), "checks.group_fairness.sensitive")
        pred = sample.predictions
        assert pred is not None  # the split has predictions (checked above), so its sample does
        pos = ctx.positive_index
        actual, chosen = np.asarray(pred.y_true) == pos, np.asarray(pred.y_pred) == pos
        groups: list[dict[str, Any]] = []
        differences: list[dict[str, Any]] = []
        for name in names:
            col = encode_column(name, table[name], settings.params["bins"], settings.params["max_groups"])
            if col is None:
                differences.append({"column": name, "groups": 1, "demographic_parity_difference": 0.0,
                                     "equalized_odds_difference": 0.0})
                continue
            k = len(col.labels)
            inside = col.codes >= 0
            c = col.codes[inside]
            n = np.bincount(c, minlength=k)
            sel = np.bincount(c, weights=chosen[inside], minlength=k)
            pos_n = np.bincount(c, weights=actual[inside], minlength=k)
            tp = np.bincount(c, weights=(chosen & actual)[inside], minlength=k)
            fp = np.bincount(c, weights=(chosen & ~actual)[inside], minlength=k)
            rows: list[dict[str, Any]] = []
            for i, label in enumerate(col.labels):
                sr, sr_ci = _rate(int(sel[i]), int(n[i]))
                tpr, tpr_ci = _rate(int(tp[i]), int(pos_n[i]))
                fpr, fpr_ci = _rate(int(fp[i]), int(n[i] - pos_n[i]))
                group = (MISSING_SLICE if label == f"{name} {MISSING_SLICE}" else label.split(" = ", 1)[-1] if " = " in label
                         else label.split(" in ", 1)[-1])
                rows.append({"column": name, "group": group,
                             "n": int(n[i]), "selection_rate": sr, "selection_ci95": sr_ci, "tpr": tpr, "tpr_ci95": tpr_ci,
                             "fpr": fpr, "fpr_ci95": fpr_ci})
            dp = _spread([r["selection_rate"] for r in rows])
            tpr_d, fpr_d = _spread([r["tpr"] for r in rows]), _spread([r["fpr"] for r in rows])
            eo = max((d for d in (tpr_d, fpr_d) if d is not None), default=None)
            groups += rows
            differences.append({"column": name, "groups": k, "demographic_parity_difference": dp,
                                "tpr_difference": tpr_d, "fpr_difference": fpr_d, "equalized_odds_difference": eo})
        worst = max(differences, key=lambda d: max(d["demographic_parity_difference"] or 0.0, d["equalized_odds_difference"] or 0.0))
        value = max(worst["demographic_parity_difference"] or 0.0, worst["equalized_odds_difference"] or 0.0)
        evidence = {"split": split, "differences": differences, "groups": groups, **sample.evidence()}
        text = (f"on {worst['column']!r}: demographic-parity difference {number(worst['demographic_parity_difference'] or 0.0)}, "
                f"equalised-odds difference {number(worst['equalized_odds_difference'] or 0.0)}")
        return Measurement(value, text, evidence, violation="The model treats groups differently",
                           ok="Groups are treated alike", advice="see the per-group rates")
