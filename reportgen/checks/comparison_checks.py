"""Checks that compare this run with an earlier one (e.g. the last release's results.json)."""

from __future__ import annotations

from typing import Any

from reportgen.checks.base import Check, CheckSettings, CheckSpec, Finding, Measurement, Param, meets_threshold, register
from reportgen.checks.context import CheckContext
from reportgen.metric_registry import METRICS

# Headline test metrics per task, each with whether higher is better.
DEFAULT_METRICS: dict[str, dict[str, bool]] = {
    "binary": {"balanced_accuracy": True, "recall": True, "roc_auc": True},
    "multiclass": {"balanced_accuracy": True, "f1_macro": True},
    "regression": {"r2": True, "rmse": False},
}
LOWER_IS_BETTER = {"loss", "log_loss", "brier", "mse", "rmse", "mae"}


def metric_drop(previous: float, current: float, higher_is_better: bool) -> float:
    """How much worse ``current`` is than ``previous``: absolute for scores, relative for errors."""
    if higher_is_better:
        return previous - current
    return (current - previous) / previous if previous > 0 else current - previous


@register
class ReleaseComparison(Check):
    """Compare the test metrics with an earlier run's results.json."""

    spec = CheckSpec(
        id="release_comparison",
        measures="largest headline-metric drop against --compare-to",
        title="Comparison with the previous release",
        family="performance",
        detects="A model that scores worse on test than the run it is compared with (e.g. the last release).",
        how_to_read="Each headline test metric is compared with the earlier run given by --compare-to. The value is "
        "the largest drop: in points for scores such as balanced accuracy (0.02 = two points), relative for errors "
        "such as RMSE (0.02 = 2% larger). A drop above the limit means this model is worse than the one it replaces.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.02,
        params=(Param("metrics", None, "test metrics to compare (default: the task's headline metrics)",
                      kind=list, nullable=True, choices=tuple(m.key for m in METRICS if m.higher_is_better is not None)),),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        """Find the largest drop of a headline metric against the previous run."""
        previous = ctx.previous
        if previous is None:
            return Finding.skip("no earlier results given (reportgen run --compare-to results.json)")
        if previous.get("task") != ctx.task:
            return Finding.skip(f"the earlier run is a {previous.get('task')} task, this one {ctx.task}")
        before = (previous.get("metrics") or {}).get("test") or {}
        now = ctx.metrics["test"]
        names = settings.params.get("metrics") or list(DEFAULT_METRICS[ctx.task])
        rows: list[dict[str, Any]] = []
        for name in names:
            higher = DEFAULT_METRICS[ctx.task].get(name, name not in LOWER_IS_BETTER)
            old, new = before.get(name), now.get(name)
            if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
                continue
            rows.append({"metric": name, "previous": old, "current": new, "higher_is_better": higher,
                         "drop": metric_drop(float(old), float(new), higher)})
        if not rows:
            return Finding.skip("the earlier results share no test metric with this run")
        worst = max(rows, key=lambda row: row["drop"])
        evidence = {
            "metrics": rows,
            "previous_name": previous.get("name"),
            "previous_created_at": (previous.get("environment") or {}).get("created_at"),
            "previous_version": (previous.get("environment") or {}).get("reportgen_version"),
            "same_test_data": (previous.get("data") or {}).get("fingerprint") == dict(ctx.data.fingerprint),
        }
        summary = ", ".join(f"{r['metric']} {r['previous']:.3f} -> {r['current']:.3f}" for r in rows)
        if meets_threshold(worst["drop"], settings.threshold, False):
            return Finding("ok", worst["drop"], f"No headline test metric dropped by more than {settings.threshold:g} against the earlier run ({summary}).", evidence)
        return Finding(
            "violation", worst["drop"],
            f"{worst['metric']} dropped from {worst['previous']:.3f} to {worst['current']:.3f} against the earlier run "
            f"(limit {settings.threshold:g}); {summary}.",
            evidence,
        )
