"""Checks whose quantity is undefined on the data skip with the reason, and target_leakage's
pairwise AUC (vectorised, bounded in classes) against scikit-learn's roc_auc_score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from check_helpers import breast_cancer, context, make_bundle, run, sklearn_predictions, split_rows, standardiser
from reportgen.checks import run_checks
from reportgen.checks.data_checks import LEAKAGE_MAX_CLASSES, _rank_auc_scores


@pytest.fixture(scope="module")
def single_class_test():
    """Breast cancer, a logistic model trained on a stratified train split; the test split keeps only
    its benign rows (a test set holding one class: 'malignant', the positive class, is absent)."""
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    test_rows = rows["test"][y[rows["test"]] == 0]
    parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
             "test": (transform(X[test_rows]), y[test_rows], test_rows)}
    bundle = make_bundle("binary", parts, classes, names)
    model = LogisticRegression(max_iter=2000).fit(parts["train"][0], parts["train"][1])
    return context(bundle, sklearn_predictions(bundle, model))


def test_a_single_class_test_split_skips_every_check_that_cannot_measure(single_class_test):
    results = {r.id: r for r in run_checks(single_class_test, {})}
    tradeoff = results["threshold_tradeoff"]
    assert tradeoff.status == "skip" and "no samples of the positive class 'malignant'" in tradeoff.message
    assert "F1 peaks" not in tradeoff.message
    baseline = results["baseline_comparison"]
    assert baseline.status == "skip" and "single class ('benign')" in baseline.message
    assert "paradox" not in baseline.message
    assert results["minority_recall"].status == "skip"
    overfit = results["overfit_gap"]
    assert overfit.status == "skip" and "holds a single class" in overfit.message
    assert results["data_integrity"].status == "fail"  # the data check is the one that names the problem
    assert "test holds a single class ('benign')" in results["data_integrity"].message
    for result in results.values():  # nothing else claims a pass or fail from a number the data cannot give
        if result.status in ("pass", "fail", "warn") and result.family == "performance":
            # ECE of P(malignant) stays defined; so does the shift of the score distribution against train
            assert result.id in ("calibration", "prediction_drift"), (result.id, result.message)


def test_threshold_tradeoff_skips_a_test_split_of_positives_only():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    test_rows = rows["test"][y[rows["test"]] == 1]
    parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
             "test": (transform(X[test_rows]), y[test_rows], test_rows)}
    bundle = make_bundle("binary", parts, classes, names)
    model = LogisticRegression(max_iter=2000).fit(parts["train"][0], parts["train"][1])
    result = run("threshold_tradeoff", context(bundle, sklearn_predictions(bundle, model)))
    assert result.status == "skip" and "only samples of the positive class" in result.message


def test_target_leakage_skips_a_single_class_train_split():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    bundle = make_bundle("multiclass", {"train": (x, np.zeros(50, dtype=np.int64), None),
                                        "test": (x[:10], np.arange(10) % 3, None)}, ("a", "b", "c"), ("f0", "f1", "f2"))
    result = run("target_leakage", context(bundle))
    assert result.status == "skip" and "single class" in result.message


def oracle_mean_one_vs_one(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over class pairs of the folded one-vs-one ROC AUC, from scikit-learn's roc_auc_score."""
    scores = []
    for i, j in itertools.combinations(np.unique(y), 2):
        both = (y == i) | (y == j)
        auc = roc_auc_score(y[both] == i, x[both])
        scores.append(max(auc, 1 - auc))
    return float(np.mean(scores))


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_pairwise_auc_equals_scikit_learn_with_ties_and_absent_classes(classes):
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 400)
    x = np.round(rng.normal(size=400) + 0.4 * y, 1)  # rounding makes many ties
    x[:5] = np.nan  # non-finite values are left out
    keep = np.isfinite(x)
    assert _rank_auc_scores(x, y, classes + 2) == pytest.approx(oracle_mean_one_vs_one(x[keep], y[keep]), abs=1e-12)


def test_many_classes_are_bounded_and_an_encoded_label_is_still_found():
    """400 classes x 6 features x 4,000 rows: only the 100 most frequent classes are compared, and a
    feature holding the label code still scores 1.0."""
    rng = np.random.default_rng(0)
    n, k = 4000, 400
    y = np.arange(n) % k
    rng.shuffle(y)
    y[:300] = 0  # class 0 is the most frequent
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[:, 3] = y + rng.uniform(0, 0.5, n)
    names = tuple(f"f{i}" for i in range(6))
    bundle = make_bundle("multiclass", {"train": (x, y, None), "test": (x[:100], y[:100], None)},
                         tuple(str(i) for i in range(k)), names)
    result = run("target_leakage", context(bundle))
    assert result.status == "fail", result.message
    assert result.evidence["features"][0] == {"name": "f3", "score": 1.0}
    assert result.evidence["classes_compared"] == LEAKAGE_MAX_CLASSES
    assert f"the {LEAKAGE_MAX_CLASSES} most frequent classes" in result.message
    assert result.evidence["rows_used"] == n and result.evidence["subsampled"] is False


def test_target_leakage_skips_a_constant_regression_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    bundle = make_bundle("regression", {"train": (x, np.full(60, 2.5), None), "test": (x[:10], rng.normal(size=10), None)},
                         (), ("f0", "f1", "f2"))
    result = run("target_leakage", context(bundle))
    assert result.status == "skip" and "target is constant" in result.message
