"""A row of the gate table never contradicts itself, and a comparison says when its baseline failed.

Checks whose verdict needs two conditions (an effect past the threshold AND significance) show
the whole condition where the value and the requirement appear, and the comparison with an earlier
run says when that run failed its own gate. The runs are real: scikit-learn's wine data, trained.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from check_helpers import breast_cancer, context, make_bundle, run, split_rows
from conftest import write_config
from reportgen import numbers
from reportgen.config import load_config
from reportgen.pipeline import execute
from reportgen.render import RENDERERS, fmt, view
from reportgen.render.base import RenderOptions


def _wine_config(folder: Path, name: str, checks: dict[str, Any] | None = None) -> Path:
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[bunch.target]
    frame.to_csv(folder / "wine.csv", index=False)
    document = {"name": name, "task": "multiclass", "seed": 0,
                "data": {"kind": "csv", "path": "wine.csv", "target": "cultivar", "standardize": True,
                         "split": {"val": 0.15, "test": 0.25, "stratify": True}, "batch_size": 16},
                "model": {"kind": "mlp", "hidden": [32]}, "training": {"epochs": 15, "lr": 0.003},
                "report": {"formats": ["json"]}, "checks": checks or {}}
    return write_config(folder, document, f"{name}.yaml")


SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def _number(text: str) -> float:
    """A number as reportgen.numbers writes it: '1,234', '0.112', '−0.5', '1.2×10⁻⁴'."""
    mantissa, _, power = text.replace(",", "").replace("−", "-").partition("×10")
    return float(mantissa) * 10 ** int(power.translate(SUPERSCRIPT)) if power else float(mantissa)


def contradictions(rows: list[dict[str, Any]]) -> list[str]:
    """Passing rows whose shown value breaks the shown requirement and whose cells do not name the second condition
    (the requirement 'or p ≥ …' and, when the value cell goes on after its number, the p it has)."""
    found = []
    for row in rows:
        match = re.fullmatch(r"([≤≥]) (\S+)(.*)", row["threshold"])
        shown = re.match(r"([−\d.,]+(×10[⁻⁰-⁹¹²³]+)?)(.*)", row["value"])
        if row["status"] != "pass" or match is None or shown is None:
            continue
        value, limit = _number(shown.group(1)), _number(match.group(2))
        broken = value > limit if match.group(1) == "≤" else value < limit
        names_p = re.search(r" or (adjusted )?p ≥ ", match.group(3)) is not None
        if broken and not (names_p and (not shown.group(3) or re.match(r"; (adjusted )?p ", shown.group(3)))):
            found.append(f"{row['id']}: {row['value']} against {row['threshold']}")
    return found


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory) -> tuple[Any, Path]:
    """A real wine run whose prediction drift D is past a tiny maximum but not significant."""
    folder = tmp_path_factory.mktemp("wine")
    report, _ = execute(load_config(_wine_config(folder, "wine", {"prediction_drift": {"max": 0.01}})))
    return report, folder


def test_a_passing_value_past_its_threshold_shows_the_significance_it_lacks(wine_run):
    report, _ = wine_run
    drift = next(c for c in report.checks if c.id == "prediction_drift")
    comparison = drift.evidence["comparisons"][0]
    assert drift.status == "pass" and drift.value > drift.threshold, drift.message  # the planted case happened
    assert comparison["p_value"] >= drift.evidence["significance_level"] == 0.05
    required = "≤ 0.01 or p ≥ 0.05"
    assert fmt.threshold_text(drift) == required
    assert fmt.value_text(drift) == f"{numbers.number_beside(drift.value, 0.01)}; p {numbers.p_value(comparison['p_value'])}"
    assert "above the 0.01 maximum but not significant (p = " in drift.message

    rows = [view._check_row(c) for c in report.checks]
    assert contradictions(rows) == []
    assert contradictions([{**r, "threshold": r["threshold"].split(" or ")[0]} for r in rows]) == [
        f"prediction_drift: {fmt.value_text(drift)} against ≤ 0.01"]  # the scanner finds the bare requirement

    for kind in ("md", "junit", "html"):  # page 1 of the HTML/PDF, summary.md, junit.xml
        text = RENDERERS[kind].render(report, RenderOptions()).decode("utf-8").replace("\\", "")
        assert required in text, kind
        assert "not significant" in text, kind


def test_a_check_with_one_condition_shows_a_plain_requirement(wine_run):
    report, _ = wine_run
    for check in report.checks:
        if check.threshold is not None and "significance_level" not in check.evidence:
            assert " or " not in fmt.threshold_text(check), check.id


def test_the_drift_chart_marks_features_past_the_floor_that_are_not_significant():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    bundle = make_bundle("binary", {n: (X[r].astype(np.float32), y[r], r) for n, r in rows.items()}, classes, names)
    result = run("feature_drift", context(bundle), {"min_effect": 0.05})
    past = [r for r in result.evidence["features"] if r["effect"] >= 0.05]
    assert result.status == "pass" and past and not any(r["drifted"] for r in past), result.message
    assert f"{past[0]['feature']!r} (effect" in result.message and "not significant" in result.message
    chart = view.evidence_view(result)["chart"]
    assert "past the floor, not significant" in chart and "drifted (significant" not in chart

    shifted = X.copy()
    shifted[rows["test"], 0] += X[rows["train"], 0].std()  # planted: one feature moves by a standard deviation
    bundle = make_bundle("binary", {n: (shifted[r].astype(np.float32), y[r], r) for n, r in rows.items()}, classes, names)
    result = run("feature_drift", context(bundle), {"min_effect": 0.05})
    assert result.status == "warn" and names[0] in result.evidence["drifted"]
    assert "drifted (significant, past the floor)" in view.evidence_view(result)["chart"]


def test_a_comparison_with_a_baseline_that_failed_its_gate_says_so(wine_run, tmp_path):
    report, _ = wine_run
    failed, _ = execute(load_config(_wine_config(tmp_path, "failed", {"baseline_comparison": {"min": 0.99}})))
    assert failed.status == "fail"
    (tmp_path / "failed.json").write_text(json.dumps(failed.document()), encoding="utf-8")
    later, _ = execute(load_config(_wine_config(tmp_path, "later")), compare_to=tmp_path / "failed.json")
    comparison = next(c for c in later.checks if c.id == "release_comparison")
    assert comparison.status == "warn", comparison.message
    assert comparison.message.startswith("The baseline failed its own gate (baseline_comparison failed): ")
    assert comparison.evidence["previous_status"] == "fail"
    assert comparison.evidence["previous_failing_checks"] == ["baseline_comparison"]
    assert "previous_source" not in comparison.evidence  # a file was named: nothing was chosen
    for kind in ("md", "junit", "html"):
        assert "The baseline failed its own gate" in RENDERERS[kind].render(later, RenderOptions()).decode("utf-8"), kind

    releases = tmp_path / "releases"  # earlier releases of the job "later": a folder holds only its own runs
    (releases / "v1").mkdir(parents=True)
    (releases / "v1" / "results.json").write_text(json.dumps({**report.document(), "name": "later"}), encoding="utf-8")
    (releases / "v0").mkdir()
    (releases / "v0" / "results.json").write_text(json.dumps({**failed.document(), "name": "later"}), encoding="utf-8")
    chosen, _ = execute(load_config(_wine_config(tmp_path, "later")), compare_to=releases)
    comparison = next(c for c in chosen.checks if c.id == "release_comparison")
    assert comparison.evidence["previous_source"] == "v1/results.json"
    assert comparison.evidence["previous_status"] == "pass"
    assert "baseline failed" not in comparison.message


def test_a_weak_slice_past_the_max_but_not_significant_shows_its_adjusted_p(tmp_path):
    """slice_performance passes a gap past its max when the Benjamini–Hochberg-adjusted p is not below alpha: page 1's
    Value and Required cells say so, in every format, and an older results.json (without the keys) renders as before."""
    from test_checks_slices import cancer_with_region

    ctx, _ = cancer_with_region(noisy_north=False)
    result = run("slice_performance", ctx)  # the default max, 0.1
    weakest = max(result.evidence["worst_slices"], key=lambda r: r["gap"])
    assert result.status == "pass" and result.value > 0.1 and weakest["p_adjusted"] >= 0.05, result.message  # planted
    assert result.value == pytest.approx(weakest["gap"])
    value = f"{numbers.number_beside(result.value, 0.1)}; adjusted p {numbers.p_value(weakest['p_adjusted'])}"
    assert fmt.value_text(result) == value
    assert fmt.threshold_text(result) == "≤ 0.1 or adjusted p ≥ 0.05"
    assert contradictions([view._check_row(result)]) == []
    older = dataclasses.replace(result, evidence={k: v for k, v in result.evidence.items()
                                                  if k not in ("value_p", "significance_level")})
    assert (fmt.value_text(older), fmt.threshold_text(older)) == (numbers.number_beside(result.value, 0.1), "≤ 0.1")
    assert contradictions([view._check_row(older)]) != []  # what the cells said before: the scanner catches it

    weak, _ = cancer_with_region(noisy_north=True)  # planted: north's test labels 45% flipped
    failed = run("slice_performance", weak)
    worst = failed.evidence["worst_slices"][0]
    assert failed.status == "warn" and worst["fails"] and worst["p_adjusted"] < 0.05
    assert fmt.value_text(failed) == f"{numbers.number_beside(failed.value, 0.1)}; adjusted p {numbers.p_value(worst['p_adjusted'])}"
    within = run("slice_performance", ctx, {"max": 0.5})  # the clean gap is within it: its p is beside the point
    assert within.status == "pass" and within.value <= 0.5
    assert fmt.value_text(within) == numbers.number_beside(within.value, 0.5)
    assert fmt.threshold_text(within) == "≤ 0.5 or adjusted p ≥ 0.05"
