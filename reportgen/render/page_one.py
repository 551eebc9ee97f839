"""Page 1 beyond the verdict: headline tiles with intervals, the gate's overrides, fixes, the diff to the earlier run.

Shared by the HTML/PDF view, summary.md and junit.xml; imports no plotting or layout engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from reportgen import numbers
from reportgen.render import fmt

if TYPE_CHECKING:
    from reportgen.report import Report
EVALUATE_ONLY_LIMITS = (
    ("train_test_overlap", "compares test only with the train split given here; it cannot see data the model was trained on elsewhere"),
    ("overfit_gap", "compares the splits given here; a model trained elsewhere on all rows can look consistent and still be overfitted"),
    ("conflicting_labels", "judges only the rows given here"),
    ("target_leakage", "judges only the features given here"),
)
"""Checks whose verdict covers only the data given to an evaluate-only run, and why."""


def gate_overrides(report: "Report") -> list[Any]:
    """The overrides of the default gate: as recorded in results.json, else recomputed from its config."""
    from reportgen import gate

    if report.gate is not None:
        return gate.overrides_of(report.gate)
    try:
        from reportgen.checks.base import registry

        found = report.config.get("checks")
        checks: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        return list(gate.gate_overrides([c.spec for c in registry.all()], checks, report.task, report.training is not None))
    except Exception:  # an unreadable old config must not take the report down
        return []


MAX_NOT_MEASURED_SHOWN = 4
"""Blocking checks that could not measure named on page 1 (the rest counted: page 1 stays one page); summary.md,
junit.xml and results.json list them all."""


def not_measured(report: "Report") -> list[dict[str, str]]:
    """The blocking checks that skipped because the data did not allow a measurement, as id and one-line text."""
    from reportgen import gate

    return [{"id": c.id, "text": fmt.one_line(gate.not_measured_text(c), 240)} for c in gate.not_measured_blocking(report.checks)]


def _proportion(successes: Any, n: Any) -> tuple[float, tuple[float, float] | None] | None:
    from reportgen.metrics import wilson_interval

    if not fmt.is_number(successes) or not fmt.is_number(n) or n <= 0:
        return None
    return successes / n, wilson_interval(int(successes), int(n))


def _tile(key: str, label: str, value: Any, ci: tuple[float, float] | None, deltas: Mapping[str, Any]) -> dict[str, Any]:
    row = deltas.get(key)
    delta = None
    if isinstance(row, Mapping) and fmt.is_number(row.get("previous")) and fmt.is_number(row.get("current")):
        change = row["current"] - row["previous"]
        worse = change < 0 if row.get("higher_is_better") else change > 0
        delta = {"text": f"{numbers.signed(change)} vs previous", "worse": worse and change != 0}
    return {"key": key, "label": label, "value": fmt.num(value),
            "ci": f"95% CI {numbers.interval(ci[0], ci[1])}" if ci else "", "delta": delta}


def headline_tiles(report: "Report") -> list[dict[str, Any]]:
    """Headline test metrics with 95% Wilson intervals for proportions and deltas against the earlier run.

    Binary: the registry's headline metrics (accuracy, balanced accuracy, precision and recall of the
    positive class, F1, ROC AUC, PR AUC); multiclass adds the worst class's recall. Intervals come from
    the confusion matrix (rows actual, columns predicted); AUCs carry none.
    """
    from reportgen import metric_registry

    found_test = report.metrics.get("test")
    test: Mapping[str, Any] = found_test if isinstance(found_test, Mapping) else {}
    comparison = next((c for c in report.checks if c.id == "release_comparison"), None)
    deltas: dict[str, Any] = {str(r.get("metric")): r for r in (comparison.evidence.get("metrics") or [])
              if isinstance(r, Mapping)} if comparison and isinstance(comparison.evidence, Mapping) else {}
    matrix = np.asarray(test.get("confusion_matrix") or [[0]], dtype=float)
    classes = [str(c) for c in test.get("classes") or report.data.get("classes") or []]
    positive = str(report.data.get("positive_class")) if report.data.get("positive_class") is not None else None
    intervals: dict[str, tuple[float, float] | None] = {}
    if matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1] and matrix.shape[0] == len(classes) and classes:
        found = _proportion(float(np.trace(matrix)), float(matrix.sum()))
        intervals["accuracy"] = found[1] if found else None
        if positive in classes:
            p = classes.index(positive)
            for key, n in (("precision", matrix[:, p].sum()), ("recall", matrix[p, :].sum())):
                found = _proportion(float(matrix[p, p]), float(n))
                intervals[key] = found[1] if found else None
    suffix = {"precision": f" ({positive})", "recall": f" ({positive})"} if report.task == "binary" and positive else {}
    auc_ci = test.get("roc_auc_ci95")
    if isinstance(auc_ci, (list, tuple)) and len(auc_ci) == 2 and all(fmt.is_number(v) for v in auc_ci):
        intervals["roc_auc"] = (float(auc_ci[0]), float(auc_ci[1]))  # DeLong, computed in the run from the scores
    tiles = [_tile(key, metric_registry.label(key) + suffix.get(key, ""), test[key], intervals.get(key), deltas)
             for key in metric_registry.headline(report.task) if fmt.is_number(test.get(key))]
    per_class = test.get("per_class") if isinstance(test.get("per_class"), Mapping) else {}
    if report.task == "multiclass" and per_class:
        recalls = {str(k): v for k, v in per_class.items() if isinstance(v, Mapping) and fmt.is_number(v.get("recall"))}
        if recalls:
            worst = min(recalls, key=lambda k: recalls[k]["recall"])
            ci = recalls[worst].get("recall_ci95")
            tiles.insert(2, _tile("worst_class_recall", f"Worst-class recall ({fmt.clip(worst, 24)})", recalls[worst]["recall"],
                                  tuple(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None, {}))
    return tiles


def _short_hash(value: Any) -> str:
    return str(value)[:12] if value else "—"


def data_source(report: "Report") -> list[str]:
    """'default.csv (sha256 bc37a2cd2de3…)' per data file, from the fingerprint."""
    files = (report.data.get("fingerprint") or {}).get("files") if isinstance(report.data.get("fingerprint"), Mapping) else None
    if not isinstance(files, Mapping):
        return []
    return [f"{name} (sha256 {_short_hash(digest)}…)" for name, digest in list(files.items())[:4]]


def prevalence(report: "Report") -> str | None:
    """The positive class's share of the test split, e.g. '3.3% (50 of 1,500)'."""
    positive = report.data.get("positive_class")
    test = ((report.data.get("splits") or {}).get("test") or {}) if isinstance(report.data.get("splits"), Mapping) else {}
    counts = test.get("class_counts") if isinstance(test, Mapping) else None
    if positive is None or not isinstance(counts, Mapping):
        return None
    n = sum(v for v in counts.values() if fmt.is_number(v))
    k = counts.get(str(positive))
    return f"{fmt.pct(k / n)} ({fmt.num(k)} of {fmt.num(n)})" if n and fmt.is_number(k) else None


def fix_suggestions(report: "Report") -> list[str]:
    """What would fix a failing gate, when the report knows: a threshold from its own sweep, class weights."""
    if report.passed:
        return []
    results = {c.id: c for c in report.checks}
    tips: list[str] = []
    recall_check = results.get("minority_recall")
    def sweep_of(split: str) -> Mapping[str, Any] | None:
        curves = report.curves.get(split)
        found = curves.get("threshold_sweep") if isinstance(curves, Mapping) else None
        return found if isinstance(found, Mapping) else None

    def rows_of(found: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return list(zip(found.get("thresholds") or [], found.get("precision") or [], found.get("recall") or [], found.get("f1") or []))

    test_sweep, val_sweep = sweep_of("test"), sweep_of("val")
    if (recall_check is not None and recall_check.status == "fail" and report.task == "binary"
            and test_sweep is not None and fmt.is_number(recall_check.threshold)):
        rows = rows_of(test_sweep)
        on_test = {r[0]: r for r in rows}
        choose_on = rows_of(val_sweep) if val_sweep is not None else rows  # choose on val when there is one
        meeting = [r for r in choose_on if fmt.is_number(r[2]) and r[2] >= recall_check.threshold]
        if meeting:
            t, precision, recall, _ = max(meeting, key=lambda r: r[0])
            if val_sweep is not None:
                test_row = on_test.get(t)
                then = (f"; on test it gives recall {fmt.num(test_row[2])} at precision {fmt.num(test_row[1])}"
                        if test_row is not None else "")
                tips.append(f"Lower the decision threshold to {numbers.setting(t)} (model.threshold), chosen on val: recall "
                            f"{fmt.num(recall)} meets the {numbers.setting(recall_check.threshold)} minimum at a precision of "
                            f"{fmt.num(precision)}{then}.")
            else:
                tips.append(f"Lower the decision threshold to {numbers.setting(t)} (model.threshold): on test, recall {fmt.num(recall)} "
                            f"meets the {numbers.setting(recall_check.threshold)} minimum, at a precision of {fmt.num(precision)} "
                            f"(chosen on the test split, as there is no val split: confirm it on fresh data).")
        scored = [r for r in rows if fmt.is_number(r[3])]
        if scored:
            t, _, recall, f1 = max(scored, key=lambda r: r[3])
            if fmt.is_number(recall) and recall < recall_check.threshold:
                tips.append(f"The best-F1 threshold ({numbers.setting(t)}, F1 {fmt.num(f1)}) would still fail: its recall "
                            f"{fmt.num(recall)} is below the {numbers.setting(recall_check.threshold)} minimum.")
    imbalance = results.get("class_imbalance")
    training = report.config.get("training") if isinstance(report.config.get("training"), Mapping) else None
    if (imbalance is not None and imbalance.status in ("warn", "fail") and recall_check is not None
            and recall_check.status == "fail" and training is not None and training.get("class_weights") != "balanced"):
        tips.append("Train with training.class_weights: balanced, so the rare class weighs as much as the others in the loss.")
    return tips


def comparison_diff(report: "Report") -> dict[str, Any] | None:
    """Check statuses against the earlier run: newly failing, fixed, still failing (ids)."""
    comparison = next((c for c in report.checks if c.id == "release_comparison"), None)
    before = comparison.evidence.get("previous_statuses") if comparison and isinstance(comparison.evidence, Mapping) else None
    if comparison is None or not isinstance(before, Mapping):
        return None
    bad = ("fail", "error")
    now = {c.id: c.status for c in report.checks if c.id != "release_comparison"}
    return {
        "newly_failing": [i for i, s in now.items() if s in bad and before.get(i) not in bad],
        "fixed": [i for i, s in now.items() if s not in bad and before.get(i) in bad],
        "still_failing": [i for i, s in now.items() if s in bad and before.get(i) in bad],
        "previous": str(comparison.evidence.get("previous_name") or "the earlier run"),
    }


def page_one(report: "Report") -> dict[str, Any]:
    """Everything page 1 adds to the verdict: tiles, threshold, prevalence, source, overrides, fixes, diff, limits."""
    overrides = gate_overrides(report)
    limits = []
    if report.training is None:
        present = {c.id for c in report.checks if c.status != "skip"}
        limits = [{"id": i, "text": why} for i, why in EVALUATE_ONLY_LIMITS if i in present]
    return {
        "tiles": headline_tiles(report),
        "threshold": numbers.setting(report.model.get("threshold")) if report.task == "binary" else None,
        "prevalence": prevalence(report),
        "sources": data_source(report),
        "overrides": [{"text": o.describe(), "effect": o.effect.replace("_", " "), "relaxes": o.relaxes} for o in overrides],
        "strict": bool((report.gate or {}).get("strict")),
        "not_measured": not_measured(report),
        "not_measured_shown": MAX_NOT_MEASURED_SHOWN,
        "fixes": fix_suggestions(report),
        "diff": comparison_diff(report),
        "evaluate_only_limits": limits,
        "weights": f"{_short_hash(report.model.get('weights_sha256'))}…" if report.model.get("weights_sha256") else None,
    }
