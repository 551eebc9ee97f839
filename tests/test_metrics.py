"""reportgen.metrics against scikit-learn as an independent oracle, on real data sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler, label_binarize

from reportgen.metrics import (
    ClassificationState,
    RegressionState,
    calibration_bins,
    classification_metrics,
    plot_curves,
    regression_metrics,
    threshold_sweep,
    wilson_interval,
)
from reportgen.types import Predictions

from conftest import synthetic_predictions


def _auc_and_ap(y_positive: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC and average precision as a report computes them: a binary split whose positive class scores ``scores``."""
    y = np.asarray(y_positive).astype(np.int64)
    p = np.asarray(scores, dtype=np.float32)
    pred = Predictions("test", y, (p >= 0.5).astype(np.int64), np.stack([1 - p, p], axis=1), 0.0)
    m = classification_metrics(pred, ("negative", "positive"), 1)
    return m["roc_auc"], m["pr_auc"]


TIGHT = 1e-12
CLASSIFICATION_KEYS = {
    "n", "loss", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "precision_macro",
    "recall_macro", "f1_macro", "f1_weighted", "mcc", "roc_auc", "pr_auc", "log_loss", "brier",
    "classes", "confusion_matrix", "per_class",
}


def approx(value: float) -> object:
    """pytest.approx with a tight tolerance."""
    return pytest.approx(value, rel=1e-9, abs=TIGHT)


def json_safe(document: object) -> str:
    """Serialise strictly: NaN or infinity anywhere fails the test."""
    return json.dumps(document, allow_nan=False)


def fitted_probabilities(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit a logistic regression on a stratified half and return (y_test, float32 test probabilities)."""
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_train), y_train)
    return y_test.astype(np.int64), model.predict_proba(scaler.transform(x_test)).astype(np.float32)


def clipped_log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Oracle log loss on probabilities clipped to [1e-7, 1 - 1e-7] and renormalised."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    p /= p.sum(axis=1, keepdims=True)
    return skm.log_loss(y, p, labels=list(range(probs.shape[1])))


@pytest.fixture(scope="module")
def cancer() -> Predictions:
    """Breast cancer (binary, 0 = malignant, 1 = benign): test-half predictions of a logistic regression."""
    data = load_breast_cancer()
    y, probs = fitted_probabilities(data.data, data.target, c=0.05)
    return Predictions("test", y, probs.argmax(axis=1).astype(np.int64), probs, loss=0.123)


@pytest.fixture(scope="module")
def digits() -> Predictions:
    """Digits (10 classes): test-half predictions of a deliberately weak logistic regression."""
    data = load_digits()
    y, probs = fitted_probabilities(data.data, data.target, c=0.002)
    return Predictions("test", y, probs.argmax(axis=1).astype(np.int64), probs, loss=0.456)


@pytest.fixture(scope="module")
def diabetes() -> Predictions:
    """Diabetes (regression): test-half predictions of a ridge regression."""
    data = load_diabetes()
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.5, random_state=0)
    y_pred = Ridge(alpha=0.1).fit(x_train, y_train).predict(x_test)
    return Predictions("test", y_test.astype(np.float32), y_pred.astype(np.float32), None, loss=3000.5)


DIGIT_NAMES = tuple(f"digit_{i}" for i in range(10))


# --------------------------------------------------------------------------- binary


@pytest.mark.parametrize("positive_index", [1, 0], ids=["benign_positive", "malignant_positive"])
def test_binary_metrics_match_sklearn(cancer: Predictions, positive_index: int) -> None:
    classes = ("malignant", "benign")
    m = classification_metrics(cancer, classes, positive_index)
    y, y_pred, probs = cancer.y_true, cancer.y_pred, cancer.probs
    is_pos = y == positive_index
    score = probs[:, positive_index]

    assert set(m) == CLASSIFICATION_KEYS | {"positive_class"}
    assert m["positive_class"] == classes[positive_index]
    assert m["n"] == cancer.n and m["loss"] == 0.123
    assert m["classes"] == list(classes)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, y_pred, labels=[0, 1]).tolist()
    assert m["accuracy"] == approx(skm.accuracy_score(y, y_pred))
    assert m["balanced_accuracy"] == approx(skm.balanced_accuracy_score(y, y_pred))
    assert m["precision"] == approx(skm.precision_score(y, y_pred, pos_label=positive_index))
    assert m["recall"] == approx(skm.recall_score(y, y_pred, pos_label=positive_index))
    assert m["f1"] == approx(skm.f1_score(y, y_pred, pos_label=positive_index))
    assert m["precision_macro"] == approx(skm.precision_score(y, y_pred, average="macro"))
    assert m["recall_macro"] == approx(skm.recall_score(y, y_pred, average="macro"))
    assert m["f1_macro"] == approx(skm.f1_score(y, y_pred, average="macro"))
    assert m["f1_weighted"] == approx(skm.f1_score(y, y_pred, average="weighted"))
    assert m["mcc"] == approx(skm.matthews_corrcoef(y, y_pred))
    assert m["roc_auc"] == approx(skm.roc_auc_score(is_pos, score))
    assert m["pr_auc"] == approx(skm.average_precision_score(is_pos, score))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(is_pos, score.astype(np.float64)), rel=1e-9)
    assert m["log_loss"] == approx(clipped_log_loss(y, probs))
    json_safe(m)


def test_log_loss_clips_certain_wrong_probabilities(cancer: Predictions) -> None:
    probs = cancer.probs.copy()
    probs[:5] = np.eye(2, dtype=np.float32)[1 - cancer.y_true[:5]]  # certain and wrong
    probs[5:10] = np.eye(2, dtype=np.float32)[cancer.y_true[5:10]]  # certain and right
    m = classification_metrics(Predictions("test", cancer.y_true, cancer.y_pred, probs, 0.0), ("m", "b"), 1)
    assert m["log_loss"] == approx(clipped_log_loss(cancer.y_true, probs))
    assert m["log_loss"] > 5 * -math.log(1e-7) / cancer.n


def test_binary_per_class_matches_sklearn_with_wilson_recall_interval(cancer: Predictions) -> None:
    m = classification_metrics(cancer, ("malignant", "benign"), 1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        cancer.y_true, cancer.y_pred, labels=[0, 1], zero_division=0
    )
    cm = np.asarray(m["confusion_matrix"])
    for i, name in enumerate(("malignant", "benign")):
        row = m["per_class"][name]
        assert set(row) == {"precision", "recall", "f1", "support", "recall_ci95"}
        assert row["precision"] == approx(precision[i])
        assert row["recall"] == approx(recall[i])
        assert row["f1"] == approx(f1[i])
        assert row["support"] == support[i]
        lo, hi = row["recall_ci95"]
        assert [lo, hi] == list(wilson_interval(int(cm[i, i]), int(support[i])))
        assert lo <= row["recall"] <= hi


# --------------------------------------------------------------------------- multiclass


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")
def test_multiclass_metrics_match_sklearn(digits: Predictions) -> None:
    m = classification_metrics(digits, DIGIT_NAMES, None)
    y, y_pred, probs = digits.y_true, digits.y_pred, digits.probs
    labels = list(range(10))
    onehot = label_binarize(y, classes=labels)

    assert set(m) == CLASSIFICATION_KEYS
    assert 0.5 < m["accuracy"] < 0.99  # a weak model: the confusion matrix has off-diagonal mass
    assert m["confusion_matrix"] == skm.confusion_matrix(y, y_pred, labels=labels).tolist()
    assert m["accuracy"] == approx(skm.accuracy_score(y, y_pred))
    assert m["balanced_accuracy"] == approx(skm.balanced_accuracy_score(y, y_pred))
    assert m["precision"] == m["precision_macro"] == approx(skm.precision_score(y, y_pred, average="macro"))
    assert m["recall"] == m["recall_macro"] == approx(skm.recall_score(y, y_pred, average="macro"))
    assert m["f1"] == m["f1_macro"] == approx(skm.f1_score(y, y_pred, average="macro"))
    assert m["f1_weighted"] == approx(skm.f1_score(y, y_pred, average="weighted"))
    assert m["mcc"] == approx(skm.matthews_corrcoef(y, y_pred))
    probs64 = probs.astype(np.float64)
    assert m["roc_auc"] == approx(skm.roc_auc_score(y, probs64, multi_class="ovr", average="macro"))
    assert m["pr_auc"] == approx(skm.average_precision_score(onehot, probs64, average="macro"))
    assert m["brier"] == approx(skm.brier_score_loss(y, probs64, labels=labels))
    assert m["log_loss"] == approx(clipped_log_loss(y, probs))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    for i, name in enumerate(DIGIT_NAMES):
        row = m["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == (approx(precision[i]), approx(recall[i]), approx(f1[i]))
        assert row["support"] == support[i]
    json_safe(m)


def test_never_predicted_class_has_zero_precision_like_sklearn(digits: Predictions) -> None:
    y_pred = np.where(digits.y_pred == 3, 5, digits.y_pred)  # class 3 is never predicted
    pred = Predictions("test", digits.y_true, y_pred, digits.probs, 0.0)
    m = classification_metrics(pred, DIGIT_NAMES, None)
    assert m["per_class"]["digit_3"]["precision"] == 0.0
    assert m["per_class"]["digit_3"]["f1"] == 0.0
    assert m["precision_macro"] == approx(skm.precision_score(pred.y_true, y_pred, average="macro", zero_division=0))
    assert m["f1_macro"] == approx(skm.f1_score(pred.y_true, y_pred, average="macro", zero_division=0))
    assert m["mcc"] == approx(skm.matthews_corrcoef(pred.y_true, y_pred))


def test_class_absent_from_the_split_is_left_out_of_macro_averages_like_sklearn(digits: Predictions) -> None:
    keep = (digits.y_true != 7) & (digits.y_pred != 7)
    probs = digits.probs[keep]
    pred = Predictions("test", digits.y_true[keep], digits.y_pred[keep], probs, 0.0)
    m = classification_metrics(pred, DIGIT_NAMES, None)
    y, y_pred = pred.y_true, pred.y_pred
    assert m["per_class"]["digit_7"]["support"] == 0
    assert m["per_class"]["digit_7"]["recall_ci95"] is None
    assert m["recall_macro"] == approx(skm.recall_score(y, y_pred, average="macro"))
    assert m["f1_macro"] == approx(skm.f1_score(y, y_pred, average="macro"))
    assert m["balanced_accuracy"] == approx(skm.balanced_accuracy_score(y, y_pred))
    present = [c for c in range(10) if c != 7]
    expected_auc = np.mean([skm.roc_auc_score(y == c, probs[:, c]) for c in present])
    assert m["roc_auc"] == approx(expected_auc)
    json_safe(m)


def test_constant_prediction_gives_sklearn_mcc_of_zero(digits: Predictions) -> None:
    y_pred = np.full(digits.n, 4, dtype=np.int64)
    m = classification_metrics(Predictions("test", digits.y_true, y_pred, digits.probs, 0.0), DIGIT_NAMES, None)
    assert m["mcc"] == 0.0 == skm.matthews_corrcoef(digits.y_true, y_pred)


# --------------------------------------------------------------------------- single class and degenerate input


def test_single_class_split_has_undefined_auc(cancer: Predictions) -> None:
    only_benign = cancer.y_true == 1
    pred = Predictions("test", cancer.y_true[only_benign], cancer.y_pred[only_benign], cancer.probs[only_benign], 0.1)
    as_positive = classification_metrics(pred, ("malignant", "benign"), 1)
    assert as_positive["roc_auc"] is None
    assert as_positive["pr_auc"] == 1.0  # every sample is positive: precision is 1 at every recall
    as_negative = classification_metrics(pred, ("malignant", "benign"), 0)
    assert as_negative["roc_auc"] is None and as_negative["pr_auc"] is None
    assert as_negative["per_class"]["malignant"]["recall_ci95"] is None
    json_safe(as_positive)
    json_safe(as_negative)
    assert _auc_and_ap(np.zeros(5), np.linspace(0, 1, 5)) == (None, None)
    assert _auc_and_ap(np.ones(5), np.linspace(0, 1, 5))[0] is None


def test_multiclass_single_class_split_has_undefined_auc(digits: Predictions) -> None:
    mask = digits.y_true == 2
    pred = Predictions("test", digits.y_true[mask], digits.y_pred[mask], digits.probs[mask], 0.0)
    m = classification_metrics(pred, DIGIT_NAMES, None)
    assert m["roc_auc"] is None
    json_safe(m)


def test_empty_split_and_non_finite_inputs_stay_json_safe(cancer: Predictions) -> None:
    empty = Predictions("val", np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.float32), math.nan)
    m = classification_metrics(empty, ("malignant", "benign"), 1)
    assert m["n"] == 0 and m["loss"] is None and m["accuracy"] is None and m["roc_auc"] is None
    json_safe(m)
    broken = cancer.probs.copy()
    broken[0, :] = np.nan
    pred = Predictions("test", cancer.y_true, cancer.y_pred, broken, math.inf)
    m = classification_metrics(pred, ("malignant", "benign"), 1)
    assert m["loss"] is None and m["roc_auc"] is None and m["log_loss"] is None and m["brier"] is None
    assert m["accuracy"] == approx(skm.accuracy_score(cancer.y_true, cancer.y_pred))
    json_safe(m)
    json_safe(plot_curves(pred, "binary", 1, 0.5))


# --------------------------------------------------------------------------- streaming states


def test_classification_state_batches_merge_to_the_whole_array_result(digits: Predictions) -> None:
    y, y_pred = digits.y_true, digits.y_pred
    whole = ClassificationState(10).update(y, y_pred, loss_sum=12.5)
    cuts = np.sort(np.random.default_rng(1).choice(np.arange(1, digits.n), size=7, replace=False))
    workers = [ClassificationState(10), ClassificationState(10)]
    for k, (t, p) in enumerate(zip(np.split(y, cuts), np.split(y_pred, cuts))):
        workers[k % 2].update(t, p, loss_sum=12.5 * t.size / digits.n)
    merged = workers[0].merge(workers[1])
    assert merged.n == whole.n == digits.n
    assert merged.confusion.dtype == np.int64
    np.testing.assert_array_equal(merged.confusion, whole.confusion)
    np.testing.assert_array_equal(merged.confusion, skm.confusion_matrix(y, y_pred, labels=list(range(10))))
    assert merged.loss_sum == pytest.approx(12.5)
    assert ClassificationState(3).update([], []).n == 0


def test_classification_state_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ClassificationState(3).update([0, 3], [0, 1])
    with pytest.raises(ValueError):
        ClassificationState(3).update([0, 1], [0])
    with pytest.raises(ValueError):
        ClassificationState(3).merge(ClassificationState(4))


def test_regression_metrics_match_sklearn(diabetes: Predictions) -> None:
    m = regression_metrics(diabetes)
    y, y_pred = diabetes.y_true.astype(np.float64), diabetes.y_pred.astype(np.float64)
    assert set(m) == {"n", "loss", "mse", "rmse", "mae", "r2", "target_mean", "target_std"}
    assert m["n"] == diabetes.n and m["loss"] == 3000.5
    assert m["mse"] == approx(skm.mean_squared_error(y, y_pred))
    assert m["rmse"] == approx(skm.root_mean_squared_error(y, y_pred))
    assert m["mae"] == approx(skm.mean_absolute_error(y, y_pred))
    assert m["r2"] == approx(skm.r2_score(y, y_pred))
    assert 0.2 < m["r2"] < 0.7
    assert m["target_mean"] == approx(y.mean())
    assert m["target_std"] == approx(y.std())
    json_safe(m)


def test_regression_state_is_stable_on_a_million_large_targets() -> None:
    rng = np.random.default_rng(7)
    y = 1e9 + rng.normal(0.0, 1.0, 1_000_000)
    y_pred = y + rng.normal(0.0, 0.5, y.size)
    workers = [RegressionState() for _ in range(3)]
    for k, (t, p) in enumerate(zip(np.array_split(y, 101), np.array_split(y_pred, 101))):
        workers[k % 3].update(t, p, loss_sum=1.0)
    state = workers[0].merge(workers[1]).merge(workers[2])
    m = state.metrics()
    assert state.n == y.size and state.loss_sum == 101.0
    assert m["r2"] == pytest.approx(skm.r2_score(y, y_pred), rel=1e-9)
    assert m["r2"] == pytest.approx(0.75, abs=0.01)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, y_pred), rel=1e-12)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, y_pred), rel=1e-12)
    assert m["target_std"] == pytest.approx(y.std(), rel=1e-9)
    assert m["target_mean"] == pytest.approx(y.mean(), rel=1e-15)


def test_constant_target_has_undefined_r2() -> None:
    y = np.full(50, 0.1, dtype=np.float32)
    m = regression_metrics(Predictions("test", y, y + np.float32(0.5), None, 0.25))
    assert m["r2"] is None
    assert m["mse"] == pytest.approx(0.25)
    assert m["target_std"] == pytest.approx(0.0, abs=1e-12)
    json_safe(m)
    empty = regression_metrics(Predictions("test", np.zeros(0, np.float32), np.zeros(0, np.float32), None, 0.0))
    assert empty["n"] == 0 and empty["r2"] is None and empty["mse"] is None
    json_safe(empty)


# --------------------------------------------------------------------------- building blocks


def test_auc_and_average_precision_with_heavy_ties_match_sklearn(cancer: Predictions) -> None:
    y = cancer.y_true == 1
    for decimals in (0, 1, 2):
        scores = np.round(cancer.probs[:, 1].astype(np.float64), decimals)
        assert np.unique(scores).size < scores.size
        auc, ap = _auc_and_ap(y, scores)
        assert auc == approx(skm.roc_auc_score(y, scores.astype(np.float32)))
        assert ap == approx(skm.average_precision_score(y, scores.astype(np.float32)))
    flat = np.full(y.size, 0.3)
    assert _auc_and_ap(y, flat)[0] == 0.5
    assert _auc_and_ap(y, flat)[1] == approx(y.mean())


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(0, 12)
    assert lo == 0.0 and hi == pytest.approx(0.2425, abs=1e-4)
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    lo, hi = wilson_interval(12, 12)
    assert lo == pytest.approx(1 - 0.2425, abs=1e-4) and hi == 1.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_threshold_sweep_matches_sklearn_at_every_threshold(cancer: Predictions) -> None:
    y = cancer.y_true == 1
    scores = cancer.probs[:, 1].astype(np.float64)
    # include thresholds equal to observed scores: score >= threshold counts as positive
    thresholds = [0.0, 0.05, 0.5, float(scores[3]), float(np.median(scores)), 0.95, 1.0, 1.5]
    sweep = threshold_sweep(y, scores, thresholds)
    assert set(sweep) == {"thresholds", "precision", "recall", "f1", "predicted_positive"}
    assert sweep["thresholds"] == thresholds
    for i, t in enumerate(thresholds):
        flagged = scores >= t
        assert sweep["predicted_positive"][i] == int(flagged.sum())
        if flagged.any():
            assert sweep["precision"][i] == approx(skm.precision_score(y, flagged))
        else:  # undefined, as scikit-learn's zero_division=np.nan says, never a precision of 0
            assert np.isnan(skm.precision_score(y, flagged, zero_division=np.nan)) and sweep["precision"][i] is None
        assert sweep["recall"][i] == approx(skm.recall_score(y, flagged, zero_division=0))
        assert sweep["f1"][i] == approx(skm.f1_score(y, flagged, zero_division=0))
    assert sweep["predicted_positive"][-1] == 0 and sweep["precision"][-1] is None
    json_safe(sweep)


def test_calibration_bins_match_sklearn_and_ece_separates_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(3)
    confidence = rng.random(200_000)
    calibrated = rng.random(confidence.size) < confidence
    result = calibration_bins(confidence, calibrated, n_bins=15)
    assert result["ece"] < 0.01
    bins = result["bins"]
    assert len(bins) == 15 and sum(b["count"] for b in bins) == confidence.size
    assert bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0
    prob_true, prob_pred = calibration_curve(calibrated, confidence, n_bins=15, strategy="uniform")
    assert [b["fraction_positive"] for b in bins] == pytest.approx(prob_true, rel=1e-12)
    assert [b["mean_predicted"] for b in bins] == pytest.approx(prob_pred, rel=1e-12)
    manual = sum(b["count"] / confidence.size * abs(b["fraction_positive"] - b["mean_predicted"]) for b in bins)
    assert result["ece"] == approx(manual)

    overconfident = 0.9 + 0.0999 * rng.random(20_000)  # claims 90-100 %, right 60 % of the time
    hits = rng.random(overconfident.size) < 0.6
    loud = calibration_bins(overconfident, hits)
    assert loud["ece"] == pytest.approx(abs(hits.mean() - overconfident.mean()), abs=1e-9)
    assert loud["ece"] > 0.3
    assert [b["count"] for b in loud["bins"][:13]] == [0] * 13
    assert loud["bins"][0]["mean_predicted"] is None and loud["bins"][0]["fraction_positive"] is None
    edges = calibration_bins([0.0, 1.0, 0.5], [0, 1, 1], n_bins=2)
    assert [b["count"] for b in edges["bins"]] == [1, 2]
    assert calibration_bins([], [])["ece"] is None
    json_safe(loud)


# --------------------------------------------------------------------------- plot curves


def test_binary_curves_without_downsampling_equal_sklearn(cancer: Predictions) -> None:
    curves = plot_curves(cancer, "binary", 1, threshold=0.5, max_points=10_000)
    assert set(curves) == {"roc", "pr", "operating_point", "calibration", "threshold_sweep"}
    y, scores = cancer.y_true == 1, cancer.probs[:, 1]
    fpr, tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    assert curves["roc"]["fpr"] == pytest.approx(fpr.tolist()) and curves["roc"]["tpr"] == pytest.approx(tpr.tolist())
    assert curves["roc"]["auc"] == approx(skm.roc_auc_score(y, scores))
    precision, recall, _ = skm.precision_recall_curve(y, scores)
    assert curves["pr"]["precision"] == pytest.approx(precision[::-1].tolist())
    assert curves["pr"]["recall"] == pytest.approx(recall[::-1].tolist())
    assert curves["pr"]["prevalence"] == approx(y.mean())
    tn, fp, fn, tp = skm.confusion_matrix(y, scores >= 0.5).ravel()
    op = curves["operating_point"]
    assert op == {"threshold": 0.5, "fpr": approx(fp / (fp + tn)), "tpr": approx(tp / (tp + fn)),
                  "precision": approx(tp / (tp + fp)), "recall": approx(tp / (tp + fn))}
    assert curves["threshold_sweep"]["thresholds"] == pytest.approx([0.05 * i for i in range(1, 20)])
    assert curves["calibration"] == calibration_bins(scores, y)
    json_safe(curves)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_plot_curves_stay_bounded_on_a_million_samples(task: str) -> None:
    positive = 1 if task == "binary" else None
    names = ("a", "b", "c", "d") if task == "multiclass" else None
    big = plot_curves(synthetic_predictions(1_000_000, task), task, positive, 0.5, max_points=200, classes=names)
    small = plot_curves(synthetic_predictions(10_000, task), task, positive, 0.5, max_points=200, classes=names)
    big_json, small_json = json_safe(big), json_safe(small)
    assert len(big_json) < 1.5 * len(small_json) + 2000
    if task == "binary":
        fpr, tpr = big["roc"]["fpr"], big["roc"]["tpr"]
        assert 100 <= len(fpr) == len(tpr) <= 200
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(big["roc"]["auc"], abs=2e-3)  # the shape survives
        assert 100 <= len(big["pr"]["recall"]) == len(big["pr"]["precision"]) <= 200
        assert big["pr"]["recall"][0] == 0.0 and big["pr"]["recall"][-1] == 1.0
        assert len(big["threshold_sweep"]["f1"]) == 19 and len(big["calibration"]["bins"]) == 15
    elif task == "multiclass":
        assert set(big) == {"calibration", "roc_per_class"}
        assert list(big["roc_per_class"]) == list(names)
        for curve in big["roc_per_class"].values():
            assert len(curve["fpr"]) == len(curve["tpr"]) <= 200
            assert curve["fpr"][0] == 0.0 and curve["tpr"][-1] == 1.0
            assert 0.5 < curve["auc"] < 1.0
    else:
        assert set(big) == {"scatter", "residuals"}
        assert 1000 < len(big["scatter"]["y_true"]) == len(big["scatter"]["y_pred"]) <= 2000
        assert len(big["residuals"]["counts"]) == 30 and len(big["residuals"]["bin_edges"]) == 31
        assert sum(big["residuals"]["counts"]) == 1_000_000


def test_plot_curves_are_deterministic_and_respect_max_points(digits: Predictions) -> None:
    first = plot_curves(digits, "multiclass", None, 0.5, max_points=12, classes=DIGIT_NAMES)
    assert first == plot_curves(digits, "multiclass", None, 0.5, max_points=12, classes=DIGIT_NAMES)
    for name, curve in first["roc_per_class"].items():
        assert 2 <= len(curve["fpr"]) <= 12
        index = DIGIT_NAMES.index(name)
        assert curve["auc"] == approx(skm.roc_auc_score(digits.y_true == index, digits.probs[:, index]))
    top = digits.probs.max(axis=1)
    assert first["calibration"] == calibration_bins(top, digits.probs.argmax(axis=1) == digits.y_true)
    with pytest.raises(ValueError):
        plot_curves(digits, "ranking", None, 0.5)


def test_regression_scatter_is_an_evenly_strided_subsample(diabetes: Predictions) -> None:
    curves = plot_curves(diabetes, "regression", None, 0.5)
    assert curves["scatter"]["y_true"] == pytest.approx(diabetes.y_true.astype(np.float64).tolist())
    counts, edges = np.histogram(diabetes.y_pred.astype(np.float64) - diabetes.y_true, bins=30)
    assert curves["residuals"]["counts"] == counts.tolist()
    assert curves["residuals"]["bin_edges"] == pytest.approx(edges.tolist())
    json_safe(curves)
