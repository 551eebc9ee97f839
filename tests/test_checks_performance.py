"""Performance checks on real models and data, each with a planted defect and a clean case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from check_helpers import (
    breast_cancer,
    context,
    default_credit,
    diabetes,
    digits,
    make_bundle,
    memorisable_noisy_cancer,
    mlp,
    predictions_from_probs,
    run,
    sklearn_predictions,
    split_rows,
    standardiser,
    tabular_bundle,
    torch_predictions,
    train_model,
    wine,
)
from reportgen.types import Predictions


@pytest.fixture(scope="module")
def rare_default():
    """ISLR Default with the 'Yes' class thinned to 2%, a logistic model, and a cautious threshold 0.7.

    The model is ~98% accurate while finding ~15% of the defaulters: the accuracy paradox.
    """
    X, y, classes, names = default_credit()
    rng = np.random.default_rng(0)
    positives = np.flatnonzero(y == 1)
    keep = np.sort(np.r_[np.flatnonzero(y == 0), rng.choice(positives, 197, replace=False)])
    X, y = X[keep], y[keep]
    rows = split_rows(y, len(y), test=0.3)
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], keep[r]) for k, r in rows.items()}, classes, names)
    model = LogisticRegression(max_iter=1000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    return context(bundle, sklearn_predictions(bundle, model, threshold=0.7), threshold=0.7)


@pytest.fixture(scope="module")
def breast_cancer_logistic():
    bundle, *_ = tabular_bundle(breast_cancer, "binary", val=0.15)
    model = LogisticRegression(max_iter=1000, C=0.5).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    return context(bundle, sklearn_predictions(bundle, model)), model


# ----------------------------------------------------------------------------- baseline_comparison, minority_recall


def test_accuracy_paradox_fails_baseline_and_minority_recall(rare_default):
    ctx = rare_default
    m = ctx.metrics["test"]
    assert m["accuracy"] > 0.97 and m["per_class"]["Yes"]["recall"] < 0.2
    baseline = run("baseline_comparison", ctx)
    y_test = ctx.predictions["test"].y_true
    assert baseline.status == "fail"
    assert "accuracy paradox" in baseline.message
    assert baseline.value == pytest.approx(m["balanced_accuracy"] - 0.5)
    assert baseline.evidence["baseline"]["accuracy"] == pytest.approx(float((y_test == 0).mean()))
    assert f"{100 * m['accuracy']:.1f}%" in baseline.message and f"{m['balanced_accuracy']:.3f}" in baseline.message

    recall = run("minority_recall", ctx)
    assert recall.status == "fail"
    assert recall.value == pytest.approx(m["per_class"]["Yes"]["recall"])
    row = next(r for r in recall.evidence["per_class"] if r["class"] == "Yes")
    assert row["support"] == int((y_test == 1).sum())
    lo, hi = row["ci95"]
    assert lo < recall.value < hi and hi - lo > 0.1


def test_baseline_and_recall_pass_for_a_good_model(breast_cancer_logistic):
    ctx, _ = breast_cancer_logistic
    baseline = run("baseline_comparison", ctx)
    assert baseline.status == "pass", baseline.message
    assert baseline.value > 0.4
    recall = run("minority_recall", ctx)
    assert recall.status == "pass" and recall.value > 0.85


def test_minority_recall_multiclass_judges_the_rarer_classes_and_says_support_is_small():
    bundle, *_ = tabular_bundle(wine, "multiclass")
    model = LogisticRegression(max_iter=1000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    ctx = context(bundle, sklearn_predictions(bundle, model))
    result = run("minority_recall", ctx)
    counts = np.bincount(bundle.splits["train"].labels)
    rarer = {bundle.classes[i] for i in np.flatnonzero(counts / counts.sum() < 0.9 / 3)}
    assert set(result.evidence["judged"]) == rarer == {bundle.classes[int(np.argmin(counts))]} == {"class_2"}
    assert result.status == "pass"
    assert "The rarest class" in result.message and "'class_2'" in result.message
    assert "minority class" not in result.message and "'class_0'" not in result.message
    assert "wide because only" in result.message  # wine's test classes hold 12-18 samples


def test_minority_recall_near_balanced_classes_judges_every_class_and_finds_the_planted_weak_one():
    """Digits' classes are 9.8-10.2% of train: none is a minority, so the worst recall of all ten is judged."""
    from sklearn.metrics import recall_score

    bundle, *_ = tabular_bundle(digits, "multiclass", standardise=False)
    model = LogisticRegression(max_iter=2000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    predictions = sklearn_predictions(bundle, model)
    clean = run("minority_recall", context(bundle, predictions))
    test = predictions["test"]
    assert clean.evidence["judged"] == list(bundle.classes)
    assert clean.value == pytest.approx(recall_score(test.y_true, test.y_pred, average=None).min())
    assert clean.status == "pass" and clean.message.startswith("Classes are near-balanced in train")
    # plant the defect: the model answers '7' for two thirds of the test's real '1's
    y_pred = test.y_pred.copy()
    ones = np.flatnonzero(test.y_true == 1)
    y_pred[ones[: 2 * len(ones) // 3]] = 7
    predictions["test"] = Predictions("test", test.y_true, y_pred, None, test.loss)
    weak = run("minority_recall", context(bundle, predictions))
    assert weak.status == "fail"
    assert weak.value == pytest.approx(recall_score(test.y_true, y_pred, average=None)[1])
    assert "the worst recall is '1' on test" in weak.message and "minority" not in weak.message


def test_baseline_regression_r2_against_the_mean_predictor():
    bundle, *_ = tabular_bundle(diabetes, "regression")
    model = LinearRegression().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    good = run("baseline_comparison", context(bundle, sklearn_predictions(bundle, model)))
    assert good.status == "pass" and 0.3 < good.value < 0.7
    # a model that ignores its inputs: predicts the train mean plus the noise of a random feature
    rng = np.random.default_rng(0)
    mean = float(bundle.splits["train"].labels.mean())
    useless = {k: Predictions(k, s.labels, (mean + rng.normal(0, 5, s.n)).astype(np.float32), None, 0.0)
               for k, s in bundle.splits.items()}
    bad = run("baseline_comparison", context(bundle, useless))
    assert bad.status == "fail" and bad.value < 0.1


# ----------------------------------------------------------------------------- overfit_gap


def test_overfit_gap_flags_an_mlp_memorising_noisy_labels():
    bundle = memorisable_noisy_cancer()
    model = mlp(30, 2, hidden=(256, 256))
    train_model(model, bundle, epochs=150, lr=3e-3, batch_size=80)
    ctx = context(bundle, torch_predictions(bundle, model))
    result = run("overfit_gap", ctx)
    assert result.status == "fail", result.message
    assert result.evidence["holdout_split"] == "val"
    assert result.evidence["train"] > 0.97
    assert result.value == pytest.approx(ctx.metrics["train"]["balanced_accuracy"] - ctx.metrics["val"]["balanced_accuracy"])
    assert result.value > 0.1


def test_overfit_gap_clean_logistic(breast_cancer_logistic):
    ctx, _ = breast_cancer_logistic
    result = run("overfit_gap", ctx)
    assert result.status == "pass", result.message
    assert abs(result.value) < 0.05


def test_overfit_gap_regression_uses_relative_rmse():
    bundle, *_ = tabular_bundle(diabetes, "regression", val=0.2)
    model = LinearRegression().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    ctx = context(bundle, sklearn_predictions(bundle, model))
    result = run("overfit_gap", ctx)
    expected = (ctx.metrics["val"]["rmse"] - ctx.metrics["train"]["rmse"]) / ctx.metrics["train"]["rmse"]
    assert result.value == pytest.approx(expected)
    assert result.evidence["metric"] == "relative_rmse_gap"


# ----------------------------------------------------------------------------- calibration


def test_calibration_flags_squashed_probabilities(breast_cancer_logistic):
    ctx, model = breast_cancer_logistic
    bundle = ctx.data
    squashed = {}
    for name, split in bundle.splits.items():
        logit = model.decision_function(split.features) / 6.0  # temperature 6: every score pulled toward 0.5
        p = 1 / (1 + np.exp(-logit))
        squashed[name] = predictions_from_probs(name, split.labels, np.column_stack([1 - p, p]), 0.5, 1)
    result = run("calibration", context(bundle, squashed))
    assert result.status == "warn"  # default severity warning
    assert result.value > 0.1
    assert len(result.evidence["bins"]) == 15
    from sklearn.calibration import calibration_curve  # noqa: F401  (same binning idea; ECE by hand below)

    scores = squashed["test"].probs[:, 1].astype(np.float64)
    outcome = squashed["test"].y_true == 1
    index = np.minimum((scores * 15).astype(int), 14)
    ece = sum(abs(outcome[index == b].mean() - scores[index == b].mean()) * (index == b).mean()
              for b in range(15) if (index == b).any())
    assert result.value == pytest.approx(ece)


def test_calibration_clean_logistic(breast_cancer_logistic):
    ctx, _ = breast_cancer_logistic
    result = run("calibration", ctx)
    assert result.status == "pass", result.message
    assert result.value < 0.1


# ----------------------------------------------------------------------------- threshold_tradeoff


def test_threshold_tradeoff_reports_the_best_f1_threshold(rare_default):
    from sklearn.metrics import f1_score

    ctx = rare_default
    result = run("threshold_tradeoff", ctx)
    assert result.status == "pass" and result.severity == "info"
    pred = ctx.predictions["test"]
    scores, truth = pred.probs[:, 1], pred.y_true == 1
    thresholds = [round(0.05 * i, 2) for i in range(1, 20)]
    f1s = [f1_score(truth, scores >= t, zero_division=0) for t in thresholds]
    assert result.value == pytest.approx(thresholds[int(np.argmax(f1s))])
    assert result.evidence["best_f1"] == pytest.approx(max(f1s))
    assert result.evidence["operating_threshold"] == 0.7
    assert result.value < 0.7  # the cautious operating threshold is far above the best-F1 one


def test_threshold_tradeoff_target_recall_reachable_and_unreachable(rare_default):
    ctx = rare_default
    reachable = run("threshold_tradeoff", ctx, {"target_recall": 0.5})
    target = reachable.evidence["target"]
    assert reachable.status == "pass"
    pred = ctx.predictions["test"]
    truth = pred.y_true == 1
    at = pred.probs[:, 1] >= target["threshold"]
    assert (at & truth).sum() / truth.sum() >= 0.5
    above = pred.probs[:, 1] >= target["threshold"] + 0.05
    assert (above & truth).sum() / truth.sum() < 0.5  # the highest threshold that still reaches it
    unreachable = run("threshold_tradeoff", ctx, {"target_recall": 1.0})
    assert unreachable.status == "warn" and "no threshold" in unreachable.message.lower()
