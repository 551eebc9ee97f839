"""Drift checks: has the data (feature_drift) or the model's output (prediction_drift) moved?

The statistics are written out here, with their sources, so that a run needs no scipy:

- two-sample Kolmogorov–Smirnov statistic D = sup_x |F_ref(x) - F_cur(x)| on a grid (exact when the
  grid holds every observed value), and its asymptotic p-value from the Kolmogorov distribution
  (Kolmogorov 1933; Smirnov 1948; e.g. Numerical Recipes 3rd ed. §14.3.3), ``kolmogorov_sf``;
- Pearson's chi-square test of homogeneity on a 2 x K table of category counts, with the p-value from
  the regularised upper incomplete gamma function (Numerical Recipes §6.2), ``chi2_sf``;
- total variation distance TVD = ½ Σ |p_ref - p_cur| (the largest change in the probability of any set
  of categories), the effect size of categorical features;
- Benjamini–Hochberg adjusted p-values (Benjamini & Hochberg 1995), ``benjamini_hochberg``.

Cost per feature: one sort of each sample (O(n log n), numpy's vectorised sort: about 7 ms per million
values) plus O(G log n) to read both CDFs at G points, or O(n) counting for categories; extra memory is one
column of each split at a time, whatever the number of features. The number of features tested is capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from reportgen.checks.base import (NOT_APPLICABLE, NOT_MEASURED, SIGNIFICANCE_LEVEL_KEY, VALUE_P_KEY, Check, CheckSettings, CheckSpec,
                                   Finding, Param, register)
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, number, p_clause, setting

if TYPE_CHECKING:
    import pandas as pd


EXACT_MAX_ROWS = 200_000
"""Up to this many rows (reference + current) D is computed at every observed value: exact."""
GRID_POINTS = 4096
"""Beyond EXACT_MAX_ROWS, D is read at this many points: half reference quantiles, half current quantiles."""
GRID_SAMPLE_ROWS = 1 << 16
"""Rows (evenly strided) of train predictions from which regression score-histogram edges are taken."""
CHUNK_ROWS = 1 << 18
"""Rows binned at a time into the score histograms: bounds their temporary memory."""
MAX_CATEGORIES = 30
"""Categories kept per categorical feature (the most frequent); the rest are pooled as '(other)'."""
MAX_FEATURES_SHOWN = 50
"""Rows of the per-feature table in results.json (most shifted first)."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SCORE_BINS = 100
"""Bins of the stored score histograms (probabilities: equal-width on [0, 1]; regression: train quantiles)."""
OTHER = "(other)"
MISSING = "(missing)"


# --------------------------------------------------------------------------------------- statistics


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution K = sup |Brownian bridge| (scipy's ``kstwobign.sf``).

    Series: 1 - K(x) = 2 Σ_{k>=1} (-1)^{k-1} exp(-2 k² x²) for x >= 1.18; for smaller x the Jacobi theta form
    K(x) = sqrt(2π)/x Σ_{k>=1} exp(-(2k-1)² π² / (8 x²)), both of which converge in a few terms there.
    """
    if not math.isfinite(x):
        return 0.0 if x > 0 else 1.0
    if x <= 0.0:
        return 1.0
    if x < 1.18:
        y = -(math.pi ** 2) / (8.0 * x * x)
        total = sum(math.exp((2 * k - 1) ** 2 * y) for k in range(1, 8))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-300:
            break
    return max(0.0, min(1.0, 2.0 * total))


def ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS statistic: Q_KS(sqrt(n m / (n + m)) D)."""
    if n_reference == 0 or n_current == 0:
        return 1.0
    effective = n_reference * n_current / (n_reference + n_current)
    return kolmogorov_sf(math.sqrt(effective) * statistic)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (Numerical Recipes §6.2: series or Lentz continued fraction)."""
    if x <= 0.0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, min(1.0, 1.0 - total * math.exp(log_prefix)))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return max(0.0, min(1.0, math.exp(log_prefix) * h))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X > statistic) for X ~ chi-square with ``dof`` degrees of freedom: Q(dof/2, statistic/2)."""
    if dof <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, max(0.0, statistic) / 2.0)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (step-up, monotone, capped at 1), in the input order.

    Source: Benjamini & Hochberg (1995); p_adj(i) = min_{j >= i} p_(j) m / j over sorted p-values.
    """
    m = len(p_values)
    if m == 0:
        return []
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(v) for v in adjusted]


@dataclass(frozen=True)
class TwoSampleResult:
    """One feature's (or score's) comparison of a reference sample with a current one."""

    test: str
    """"ks" or "chi-square"."""
    statistic: float
    p_value: float
    effect: float
    """KS D, or the total variation distance: both are the largest change in the probability of an event."""
    n_reference: int
    n_current: int
    reference: Mapping[str, float]
    """Quantiles (numeric) or the shares of the most frequent categories (categorical)."""
    current: Mapping[str, float]
    method: str = "exact"


def _strided_sample(values: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` evenly strided values (deterministic; a view, not a copy)."""
    step = max(1, math.ceil(len(values) / limit))
    return values[::step]


def _grid(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, str]:
    """The points where both CDFs are compared (both arrays sorted), and the method for the evidence.

    Every observed value up to EXACT_MAX_ROWS rows in all (D exact); beyond, GRID_POINTS / 2 quantiles of
    each sample plus both extremes. Between two neighbouring grid points each sample holds at most
    2 / GRID_POINTS of its mass (barring ties, which sit on grid points), so the grid D undershoots the
    exact D by at most 2 / GRID_POINTS (about 0.0005).
    """
    if len(reference) + len(current) <= EXACT_MAX_ROWS:
        return np.unique(np.concatenate([reference, current])), "exact"
    half = GRID_POINTS // 2
    parts = [values[np.linspace(0, len(values) - 1, half).round().astype(np.int64)] for values in (reference, current)]
    return np.unique(np.concatenate(parts)), f"grid of {GRID_POINTS} quantiles"


def cdf_counts(sorted_values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of values <= each grid point, from the sorted values: (len(grid),) int64."""
    return np.searchsorted(sorted_values, grid, side="right").astype(np.int64)


def _quantiles(sorted_values: np.ndarray) -> dict[str, float]:
    """Lower quantiles (numpy's 'inverted_cdf': the smallest value whose CDF reaches q) of a sorted array."""
    n = len(sorted_values)
    return {f"p{round(q * 100)}": float(sorted_values[max(0, math.ceil(q * n) - 1)]) for q in QUANTILES}


def ks_two_sample(reference: np.ndarray, current: np.ndarray) -> TwoSampleResult:
    """Two-sample KS test of two float arrays (NaNs dropped).

    Cost: each sample is sorted once (O(n log n) with numpy's vectorised sort) and the two CDFs are
    compared at the points of ``_grid``: every value (exact D) up to EXACT_MAX_ROWS rows, else a grid of
    quantiles (D within 2 / GRID_POINTS of the exact one). Extra memory: one sorted float64 copy of each
    sample, i.e. one column at a time whatever the number of features.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    reference = np.sort(reference[~np.isnan(reference)])
    current = np.sort(current[~np.isnan(current)])
    n_ref, n_cur = len(reference), len(current)
    if n_ref == 0 or n_cur == 0:
        return TwoSampleResult("ks", 0.0, 1.0, 0.0, n_ref, n_cur, {}, {}, "empty")
    grid, method = _grid(reference, current)
    statistic = float(np.max(np.abs(cdf_counts(reference, grid) / n_ref - cdf_counts(current, grid) / n_cur)))
    return TwoSampleResult(
        "ks", statistic, ks_pvalue(statistic, n_ref, n_cur), statistic, n_ref, n_cur,
        _quantiles(reference), _quantiles(current), method,
    )


def ks_from_histograms(reference_counts: Sequence[float], current_counts: Sequence[float]) -> tuple[float, float]:
    """(D, p-value) of two histograms on the same bins: D at the bin edges, a lower bound of the exact D."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    if n_ref == 0 or n_cur == 0:
        return 0.0, 1.0
    statistic = float(np.max(np.abs(np.cumsum(ref) / n_ref - np.cumsum(cur) / n_cur)))
    return statistic, ks_pvalue(statistic, int(n_ref), int(n_cur))


def category_counts(values: "pd.Series") -> dict[str, int]:
    """Counts per category (as text; missing as '(missing)')."""
    text = values.astype(object).where(values.notna(), MISSING).astype(str)
    return {str(k): int(v) for k, v in text.value_counts(sort=False).items()}


def chi_square_two_sample(reference: Mapping[str, int], current: Mapping[str, int]) -> TwoSampleResult:
    """Chi-square test of homogeneity on the 2 x K table of category counts, plus the TVD.

    At most MAX_CATEGORIES columns: the most frequent categories (reference and current together) are
    kept and the rest pooled into '(other)'. Categories seen in neither sample do not count.
    """
    totals = {k: reference.get(k, 0) + current.get(k, 0) for k in set(reference) | set(current)}
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    kept = ranked[:MAX_CATEGORIES - 1] if len(ranked) > MAX_CATEGORIES else ranked
    pooled = set(ranked) - set(kept)

    def table(counts: Mapping[str, int]) -> np.ndarray:
        row = [counts.get(k, 0) for k in kept]
        if pooled:
            row.append(sum(counts.get(k, 0) for k in pooled))
        return np.asarray(row, dtype=np.float64)

    ref, cur = table(reference), table(current)
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    labels = kept + ([OTHER] if pooled else [])
    if n_ref == 0 or n_cur == 0:
        return TwoSampleResult("chi-square", 0.0, 1.0, 0.0, int(n_ref), int(n_cur), {}, {}, "empty")
    column = ref + cur
    expected_ref = column * n_ref / (n_ref + n_cur)
    expected_cur = column * n_cur / (n_ref + n_cur)
    statistic = float(np.sum((ref - expected_ref) ** 2 / expected_ref) + np.sum((cur - expected_cur) ** 2 / expected_cur))
    p_ref, p_cur = ref / n_ref, cur / n_cur
    tvd = float(0.5 * np.abs(p_ref - p_cur).sum())
    top = np.argsort(-p_ref, kind="stable")[:5]
    return TwoSampleResult(
        "chi-square", statistic, chi2_sf(statistic, len(labels) - 1), tvd, int(n_ref), int(n_cur),
        {labels[i]: float(p_ref[i]) for i in top}, {labels[i]: float(p_cur[i]) for i in top},
        f"{len(labels)} categories",
    )


# --------------------------------------------------------------------------------------- feature tables


@dataclass(frozen=True)
class FeatureTable:
    """The columns drift is measured on, for one split: numeric arrays and categorical series by name."""

    numeric: Mapping[str, Callable[[], np.ndarray]]
    categorical: Mapping[str, Callable[[], dict[str, int]]]
    n: int


def _model_columns(ctx: CheckContext) -> tuple[list[str], list[str]] | None:
    """(numeric, categorical) model input columns from the fitted preprocessing, when the data are a table."""
    preprocessing = (ctx.data.fingerprint or {}).get("preprocessing")
    if not isinstance(preprocessing, Mapping):
        return None
    numeric = list(preprocessing.get("numeric") or [])
    categorical = list(preprocessing.get("categorical") or [])
    return (numeric, categorical) if numeric or categorical else None


def _table_of_frame(frame: "pd.DataFrame", numeric: list[str], categorical: list[str]) -> FeatureTable:
    def numbers(column: str) -> Callable[[], np.ndarray]:
        return lambda: frame[column].to_numpy(dtype=np.float64, na_value=np.nan)

    def counts(column: str) -> Callable[[], dict[str, int]]:
        return lambda: category_counts(frame[column])

    return FeatureTable({c: numbers(c) for c in numeric}, {c: counts(c) for c in categorical}, len(frame))


def _split_columns(frame: "pd.DataFrame", wanted: tuple[list[str], list[str]] | None) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns of ``frame``: the model's inputs when known, else by dtype."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if wanted is not None:
        numeric, categorical = wanted
        return [c for c in numeric if c in frame.columns], [c for c in categorical if c in frame.columns]
    numeric = [c for c in frame.columns if is_numeric_dtype(frame[c]) and not is_bool_dtype(frame[c])]
    return numeric, [c for c in frame.columns if c not in numeric]


def _feature_tables(ctx: CheckContext) -> tuple[FeatureTable, FeatureTable, str] | Finding:
    """(reference, current, reference name), or the skip that says why drift cannot be measured or does not apply.

    Train and test rows are their splits' row samples (``CheckContext.row_sample``): every row up to
    ROW_SAMPLE_MAX_ROWS, else a sample the same for any number of workers; data.reference is read whole.
    """
    if ctx.evaluation_split() not in ctx.data.splits:
        return Finding.skip("there is no test split", NOT_MEASURED)
    current_split = ctx.row_sample(ctx.evaluation_split()).split
    train = ctx.row_sample("train").split if "train" in ctx.data.splits else None
    wanted = _model_columns(ctx)
    reference_frame = ctx.reference_attributes
    if current_split.attributes is not None:
        frame = current_split.attributes
        numeric, categorical = _split_columns(frame, wanted)
        current = _table_of_frame(frame, numeric, categorical)
        if reference_frame is not None:
            missing = [c for c in numeric + categorical if c not in reference_frame.columns]
            if missing:
                return Finding.skip(f"the reference table lacks the column {missing[0]!r}", NOT_MEASURED)
            return _table_of_frame(reference_frame, numeric, categorical), current, "data.reference"
        if train is None or train.attributes is None:
            return Finding.skip("there is no train split to compare with", NOT_MEASURED)
        return _table_of_frame(train.attributes, numeric, categorical), current, "train"
    if train is None:
        return Finding.skip("there is no train split to compare with", NOT_MEASURED)
    if current_split.features is None or train.features is None:
        return Finding.skip("the inputs are not a table of features (e.g. images): feature drift is measured on tabular "
                            "data only; prediction_drift still compares the model's scores", NOT_APPLICABLE)
    names = list(ctx.data.feature_names or [f"x{i}" for i in range(current_split.features.shape[1])])

    def columns(matrix: np.ndarray) -> FeatureTable:
        def column(i: int) -> Callable[[], np.ndarray]:
            return lambda: matrix[:, i]

        return FeatureTable({n: column(i) for i, n in enumerate(names)}, {}, len(matrix))

    return columns(train.features), columns(current_split.features), "train"


@register
class FeatureDrift(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="feature_drift",
        title="Feature drift",
        family="data",
        detects="Features whose distribution on test (today's data) differs from train (or data.reference): "
        "Kolmogorov-Smirnov for numeric features, chi-square for categorical ones, Benjamini-Hochberg across features.",
        how_to_read="Each feature of the test split is compared with the same feature of the reference (train, or "
        "the table named by data.reference). A feature counts as drifted when both hold: its Benjamini-Hochberg "
        "adjusted p-value is below alpha (the shift is not chance, with the false discovery rate controlled across "
        "all features tested) and its effect size reaches min_effect (the shift is large enough to matter). The "
        "effect size is the Kolmogorov-Smirnov D for numeric features and the total variation distance for "
        "categorical ones; both are the largest change, between reference and test, in the share of rows falling "
        "in some range or set of values. The value is the share of features that drifted; compare the quantiles "
        "of the most shifted features to see which way they moved.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.0,
        params=(
            Param("alpha", 0.05, "False discovery rate for the Benjamini-Hochberg adjusted p-values.", minimum=1e-6, maximum=0.5,
                  stricter="more"),
            Param("min_effect", 0.1, "Smallest KS D or total variation distance that counts as drift.", minimum=0.0, maximum=1.0,
                  stricter="less"),
            Param("max_features", 200, "Features tested at most (in column order); the rest are listed as not tested.", minimum=1, maximum=10_000,
                  stricter="more"),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        alpha = float(settings.params["alpha"])
        min_effect = float(settings.params["min_effect"])
        limit = int(settings.params["max_features"])
        tables = _feature_tables(ctx)
        if isinstance(tables, Finding):
            return tables
        reference, current, reference_name = tables
        names = list(reference.numeric) + list(reference.categorical)
        if not names:
            return Finding.skip("the data have no feature columns to compare", NOT_APPLICABLE)
        tested, untested = names[:limit], names[limit:]
        results: dict[str, TwoSampleResult] = {}
        for name in tested:
            if name in reference.numeric:
                results[name] = ks_two_sample(reference.numeric[name](), current.numeric[name]())
            else:
                results[name] = chi_square_two_sample(reference.categorical[name](), current.categorical[name]())
        adjusted = dict(zip(results, benjamini_hochberg([r.p_value for r in results.values()]), strict=True))
        drifted = [n for n, r in results.items() if adjusted[n] < alpha and r.effect >= min_effect]
        ranked = sorted(results, key=lambda n: (-results[n].effect, n))
        rows = [
            {
                "feature": name, "kind": "numeric" if results[name].test == "ks" else "categorical",
                "test": results[name].test, "statistic": results[name].statistic, "p_value": results[name].p_value,
                "p_adjusted": adjusted[name], "effect": results[name].effect, "drifted": name in drifted,
                "reference": dict(results[name].reference), "current": dict(results[name].current),
                "method": results[name].method,
            }
            for name in ranked[:MAX_FEATURES_SHOWN]
        ]
        share = len(drifted) / len(results)
        label = "data.reference" if reference_name == "data.reference" else "train"
        sampled = {name: ctx.row_sample(name).evidence()["sample"]
                   for name in ({ctx.evaluation_split()} | ({"train"} if label == "train" else set()))
                   if not ctx.row_sample(name).is_whole}
        evidence = {
            "reference": label, "current": ctx.evaluation_split(), **({"sample": sampled} if sampled else {}),
            **({"reference_file": dict(ctx.reference_attributes.attrs.get("source") or {})}
               if reference_name == "data.reference" else {}),
            "n_reference": reference.n, "n_current": current.n,
            "alpha": alpha, "min_effect": min_effect,
            "correction": f"Benjamini-Hochberg across the {len(results)} features tested",
            "features_tested": len(results), "features_not_tested": untested[:MAX_FEATURES_SHOWN],
            "drifted": drifted[:MAX_FEATURES_SHOWN], "features": rows,
        }
        assert settings.threshold is not None
        top = ranked[0]
        largest = f"largest shift: {top!r} (effect {number(results[top].effect)}, {p_clause(adjusted[top], 'adjusted p')})"
        cut = f"; {len(untested)} more features not tested (max_features {limit})" if untested else ""
        if share > settings.threshold:
            listed = ", ".join(repr(n) for n in drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
            return Finding(
                "violation", share,
                f"{count(len(drifted))} of {count(len(results))} features drifted between {label} and test ({listed}); "
                f"{largest}{cut}.", evidence,
            )
        chance = [n for n in ranked if n not in drifted and results[n].effect >= min_effect]
        if chance:  # past the effect floor but not significant: say so first, or the chart's bars read as drift
            named = ", ".join(f"{n!r} (effect {number(results[n].effect)}, {p_clause(adjusted[n], 'adjusted p')})"
                              for n in chance[:5]) + (f" and {len(chance) - 5} more" if len(chance) > 5 else "")
            largest = (f"{named} {'reach' if len(chance) > 1 else 'reaches'} the effect floor but "
                       f"{'are' if len(chance) > 1 else 'is'} not significant (adjusted p not below {setting(alpha)})")
        return Finding(
            "ok", share,
            f"No feature drifted beyond chance and the effect floor {setting(min_effect)} between {label} and test "
            f"({count(len(results))} features, {count(len(drifted))} drifted); {largest}{cut}.", evidence,
        )


# --------------------------------------------------------------------------------------- prediction drift


def model_scores(ctx: CheckContext, split: str) -> tuple[np.ndarray, str] | None:
    """The model's score per sample of ``split`` and what it is, or None when the split has no predictions.

    Binary: the positive class's probability; multiclass: the top-class probability (the model's
    confidence); regression: the predicted value.
    """
    pred = ctx.predictions.get(split)
    if pred is None:
        return None
    if ctx.task == "regression" or pred.probs is None:
        return np.asarray(pred.y_pred, dtype=np.float64).reshape(-1), "predicted value"
    probs = np.asarray(pred.probs, dtype=np.float64)
    if ctx.task == "binary" and ctx.positive_index is not None:
        return probs[:, ctx.positive_index], "positive-class probability"
    return probs.max(axis=1), "top-class probability"


def score_edges(train_scores: np.ndarray, kind: str) -> np.ndarray:
    """Histogram edges: SCORE_BINS equal bins on [0, 1] for probabilities, train quantiles otherwise."""
    if kind != "predicted value":
        return np.linspace(0.0, 1.0, SCORE_BINS + 1)
    finite = train_scores[np.isfinite(train_scores)]
    if len(finite) == 0:
        return np.array([0.0, 1.0])
    return np.unique(np.quantile(_strided_sample(finite, GRID_SAMPLE_ROWS), np.linspace(0.0, 1.0, SCORE_BINS + 1)))


def histogram(scores: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts in (-inf, e0), [e0, e1), ..., [e_last, inf): len(edges) + 1 bins, so nothing is lost."""
    counts = np.zeros(len(edges) + 1, dtype=np.int64)
    for start in range(0, len(scores), CHUNK_ROWS):
        chunk = scores[start:start + CHUNK_ROWS]
        chunk = chunk[np.isfinite(chunk)]
        counts += np.bincount(np.searchsorted(edges, chunk, side="right"), minlength=len(edges) + 1)
    return [int(c) for c in counts]


def _previous_histograms(previous: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for check in (previous or {}).get("checks") or []:
        if isinstance(check, Mapping) and check.get("id") == "prediction_drift":
            evidence = check.get("evidence")
            if isinstance(evidence, Mapping) and isinstance(evidence.get("histograms"), Mapping):
                return evidence
    return None


@register
class PredictionDrift(Check):
    spec = CheckSpec(
        id="prediction_drift",
        title="Prediction drift",
        family="performance",
        detects="A shift in the distribution of the model's scores on test against train, and against the previous "
        "run's stored score histogram (compare_to).",
        how_to_read="The model's score (positive-class probability for binary tasks, top-class probability for "
        "multiclass, the predicted value for regression) is compared between test and train with a two-sample "
        "Kolmogorov-Smirnov test, and, when compare_to names an earlier run, between this run's test scores and "
        "the histogram that run stored. A comparison counts as drift when D exceeds the maximum and the p-value "
        "is below alpha. The value is the largest D. Scores moving while the features look stable often mean a "
        "changed model or preprocessing; both moving together mean the data changed.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.1,
        params=(
            Param("alpha", 0.05, "Significance level of each comparison (Bonferroni over the comparisons made).", minimum=1e-6, maximum=0.5,
                  stricter="more"),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        alpha = float(settings.params["alpha"])
        assert settings.threshold is not None
        train = model_scores(ctx, "train")
        test = model_scores(ctx, ctx.evaluation_split())
        if train is None or test is None:
            return Finding.skip("train and test predictions are both needed", NOT_MEASURED)
        (train_scores, kind), (test_scores, _) = train, test
        edges = score_edges(train_scores, kind)
        histograms = {"edges": [float(e) for e in edges], "train": histogram(train_scores, edges),
                      "test": histogram(test_scores, edges)}
        comparisons: list[dict[str, Any]] = []
        vs_train = ks_two_sample(train_scores, test_scores)
        comparisons.append({"reference": "train", "current": "test", "statistic": vs_train.statistic,
                            "p_value": vs_train.p_value, "n_reference": vs_train.n_reference,
                            "n_current": vs_train.n_current, "reference_quantiles": dict(vs_train.reference),
                            "current_quantiles": dict(vs_train.current)})
        note = ""
        stored = _previous_histograms(ctx.previous)
        if ctx.previous is not None:
            if stored is None:
                note = "; the compared run stored no score histogram"
            elif stored.get("score") != kind:
                note = f"; the compared run stored {stored.get('score')!r} scores, not {kind!r}"
            else:
                old = stored["histograms"]
                old_edges = np.asarray(old.get("edges") or [], dtype=np.float64)
                old_test = old.get("test") or []
                if len(old_edges) + 1 != len(old_test):
                    note = "; the compared run's score histogram is malformed"
                else:
                    statistic, p_value = ks_from_histograms(old_test, histogram(test_scores, old_edges))
                    comparisons.append({"reference": "previous run (test)", "current": "test", "statistic": statistic,
                                        "p_value": p_value, "n_reference": int(sum(old_test)), "n_current": len(test_scores)})
        level = alpha / len(comparisons)
        for row in comparisons:
            row["drifted"] = bool(row["statistic"] > settings.threshold and row["p_value"] < level)
        largest = max(comparisons, key=lambda r: r["statistic"])
        evidence = {"score": kind, "alpha": alpha, SIGNIFICANCE_LEVEL_KEY: level, "comparisons": comparisons,
                    "histograms": histograms}
        drifted = [r for r in comparisons if r["drifted"]]
        if not drifted or largest["drifted"]:  # the value's own comparison decides (else a smaller D drifted)
            evidence[VALUE_P_KEY] = {"label": "p", "p_value": largest["p_value"]}
        summary = "; ".join(f"test vs {r['reference']}: D {number(r['statistic'])}, {p_clause(r['p_value'])}" for r in comparisons)
        if drifted:
            return Finding("violation", largest["statistic"],
                           f"The model's {kind} moved: {summary} (maximum D {setting(settings.threshold)}, "
                           f"significant at p < {setting(level)}){note}.", evidence)
        # a D past the maximum that passes says why: it is not significant
        unproven = "; ".join(
            f"test vs {r['reference']}: D {number(r['statistic'])} is above the {setting(settings.threshold)} maximum "
            f"but not significant ({p_clause(r['p_value'])}, not below {setting(level)})" if r["statistic"] > settings.threshold
            else f"test vs {r['reference']}: D {number(r['statistic'])}, {p_clause(r['p_value'])}" for r in comparisons)
        return Finding("ok", largest["statistic"], f"The model's {kind} is stable: {unproven}{note}.", evidence)


# --------------------------------------------------------------------------------------- data.reference
