"""Faults of the verdict path found in review, each proven on real data (scikit-learn's and the samples' data sets)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_score

from reportgen.gate import correctness_record

from check_helpers import context, default_credit, run, sklearn_predictions, tabular_bundle


@pytest.fixture(scope="module")
def credit_logistic():
    """ISLR Default (3.3% defaults) and a logistic regression fitted on its train split."""
    bundle, *_ = tabular_bundle(default_credit, "binary")
    train = bundle.splits["train"]
    return bundle, LogisticRegression(max_iter=1000).fit(train.features, train.labels)


def _earlier_run(bundle, predictions, threshold: float) -> dict:
    """The results.json fields release_comparison reads, for a run with these predictions (consistently recorded)."""
    earlier = context(bundle, predictions, threshold=threshold)
    test = predictions["test"]
    return {"task": "binary", "status": "pass", "data": {"fingerprint": dict(bundle.fingerprint)},
            "metrics": {"test": earlier.metrics["test"]}, "model": {"threshold": threshold},
            "gate": {"test_outcomes": correctness_record(test.y_true, test.y_pred, bundle.positive_index)}}


def test_a_precision_drop_is_not_called_noise_by_a_test_of_accuracy(credit_logistic):
    """Lowering the threshold from 0.5 to 0.25 trades missed defaulters for false alarms: accuracy holds
    (McNemar on correctness finds nothing) while precision falls by 0.11. That p-value tests accuracy, so it
    cannot call the precision drop noise: the drop past the 0.02 limit fails the gate."""
    bundle, model = credit_logistic
    before, after = sklearn_predictions(bundle, model, 0.5), sklearn_predictions(bundle, model, 0.25)
    y, old, new = before["test"].y_true, before["test"].y_pred, after["test"].y_pred
    assert abs(accuracy_score(y, old) - accuracy_score(y, new)) < 0.005  # the oracle: accuracy holds ...
    assert precision_score(y, old) - precision_score(y, new) > 0.1  # ... precision does not
    ctx = replace(context(bundle, after, threshold=0.25), previous=_earlier_run(bundle, before, 0.5))
    result = run("release_comparison", ctx)
    assert result.status == "fail", result.message
    precision = next(r for r in result.evidence["metrics"] if r["metric"] == "precision")
    assert precision["significant"] and precision["p_value"] is None
    assert "tests accuracy, not precision" in precision["test"]
    assert result.message.startswith("Precision dropped from")


def test_accuracy_and_positive_recall_keep_their_mcnemar_test(credit_logistic):
    """The clean case: the same threshold change leaves accuracy within the limit and raises recall; a
    comparison of accuracy alone still uses McNemar where a drop is past the limit."""
    bundle, model = credit_logistic
    before, after = sklearn_predictions(bundle, model, 0.25), sklearn_predictions(bundle, model, 0.5)
    ctx = replace(context(bundle, after, threshold=0.5), previous=_earlier_run(bundle, before, 0.25))
    result = run("release_comparison", ctx, {"metrics": ["accuracy", "recall"], "max": 0.001})
    rows = {r["metric"]: r for r in result.evidence["metrics"]}
    assert "McNemar on the positive samples" in rows["recall"]["test"] and rows["recall"]["p_value"] < 0.05
    assert result.status == "fail"  # recall fell 0.25 -> real, and McNemar on the positives says so


def _credit_without_defaulters_in_test(positive_index: int):
    """ISLR Default with a test split that holds no defaulter ('Yes'), and a logistic regression fitted on train."""
    from check_helpers import make_bundle, split_rows, standardiser

    X, y, classes, names = default_credit()
    rows = split_rows(y, len(y))
    rows["test"] = rows["test"][y[rows["test"]] == 0]
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names,
                         positive_index=positive_index)
    train = bundle.splits["train"]
    return bundle, LogisticRegression(max_iter=1000).fit(train.features, train.labels)


def test_minority_recall_does_not_pass_on_the_majority_class_when_the_rare_class_has_no_test_samples():
    """'No' named positive, a test file without a single 'Yes': the rare class's recall is unmeasured, so the
    check may not pass saying both were judged; it warns and names the class it could not judge."""
    bundle, model = _credit_without_defaulters_in_test(positive_index=0)
    result = run("minority_recall", context(bundle, sklearn_predictions(bundle, model)))
    assert result.status == "warn", result.message
    assert result.message.startswith("'Yes' has no samples on test, so its recall is not judged")
    assert "both" not in result.message and result.evidence["unmeasured"] == ["Yes"]
    assert result.value == pytest.approx(np.mean(model.predict(bundle.splits["test"].features) == 0))


def test_minority_recall_judged_classes_all_present_keeps_its_verdict(credit_logistic):
    """The clean case: every judged class has test samples; nothing is reported unmeasured."""
    bundle, model = credit_logistic
    result = run("minority_recall", context(bundle, sklearn_predictions(bundle, model)))
    assert result.status == "fail" and "unmeasured" not in result.evidence  # recall of 'Yes' 0.33 < 0.5
    assert result.value == pytest.approx(0.3253012048192771)


def test_near_balanced_multiclass_names_a_digit_absent_from_test():
    """digits: every class is judged; a test split without any '3' cannot pass as if '3' had been judged."""
    from check_helpers import digits, make_bundle, split_rows

    X, y, classes, names = digits()
    rows = split_rows(y, len(y))
    rows["test"] = rows["test"][y[rows["test"]] != 3]
    bundle = make_bundle("multiclass", {k: (X[r], y[r], r) for k, r in rows.items()}, classes, names)
    model = LogisticRegression(max_iter=2000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    result = run("minority_recall", context(bundle, sklearn_predictions(bundle, model)))
    assert result.status == "warn" and result.message.startswith("'3' has no samples on test")
    assert result.evidence["unmeasured"] == ["3"]


def test_a_drop_of_exactly_max_is_within_the_limit(credit_logistic):
    """Threshold 0.5 -> 0.2 on Default: test accuracy 0.972 -> 0.962 (2,430 and 2,405 of 2,500), a drop of exactly
    0.01, which float arithmetic makes 0.010000000000000009. With max 0.01 ("at or below") it is within the limit."""
    bundle, model = credit_logistic
    before, after = sklearn_predictions(bundle, model, 0.5), sklearn_predictions(bundle, model, 0.2)
    y = before["test"].y_true
    assert (accuracy_score(y, before["test"].y_pred), accuracy_score(y, after["test"].y_pred)) == (0.972, 0.962)
    ctx = replace(context(bundle, after, threshold=0.2), previous=_earlier_run(bundle, before, 0.5))
    result = run("release_comparison", ctx, {"metrics": ["accuracy"], "max": 0.01})
    assert result.status == "pass", result.message
    assert result.evidence["metrics"][0]["test"] == "none (not needed)"
    past = run("release_comparison", ctx, {"metrics": ["accuracy"], "max": 0.0099})  # the clean contrast: past it
    assert past.status in ("fail", "warn") and "McNemar" in past.evidence["metrics"][0]["test"]


def test_overfit_gap_of_exactly_max_is_within_the_limit():
    """Breast cancer and a logistic regression: a train split the model gets 80% right and a test split it gets
    70% right (rows chosen from its real hits and misses) give an accuracy gap of exactly 0.1 = max, inclusive."""
    from check_helpers import breast_cancer, make_bundle, standardiser

    X, y, classes, names = breast_cancer()
    transform = standardiser(X)
    model = LogisticRegression(C=0.01, max_iter=1000).fit(transform(X), y)
    right = np.flatnonzero(model.predict(transform(X)) == y)
    wrong = np.flatnonzero(model.predict(transform(X)) != y)
    assert wrong.size >= 5
    rows = {"train": np.r_[right[:8], wrong[:2]], "test": np.r_[right[8:15], wrong[2:5]]}
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names)
    ctx = context(bundle, sklearn_predictions(bundle, model))
    assert (ctx.metrics["train"]["accuracy"], ctx.metrics["test"]["accuracy"]) == (0.8, 0.7)
    result = run("overfit_gap", ctx, {"metric": "accuracy"})
    assert result.status == "pass" and "within the 0.1 limit" in result.message, result.message
    assert run("overfit_gap", ctx, {"metric": "accuracy", "max": 0.0999}).status == "fail"


def test_a_decision_threshold_on_a_multiclass_config_is_a_config_error(tmp_path):
    """model.threshold does nothing for a multiclass model (it predicts the most probable class): the key is refused
    (exit 2) rather than silently ignored; on a binary config it stays valid."""
    import subprocess
    import sys

    from sklearn.datasets import load_wine

    from conftest import write_config

    frame = load_wine(as_frame=True).frame
    frame.to_csv(tmp_path / "wine.csv", index=False)
    document = {"name": "wine", "task": "multiclass", "data": {"kind": "csv", "path": "wine.csv", "target": "target"},
                "model": {"kind": "mlp", "hidden": [8], "threshold": 0.3}, "report": {"formats": ["json"]}}
    path = write_config(tmp_path, document)
    done = subprocess.run([sys.executable, "-m", "reportgen", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 2 and "model.threshold applies to binary tasks only" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    del document["model"]["threshold"]
    done = subprocess.run([sys.executable, "-m", "reportgen", "validate", str(write_config(tmp_path, document))],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_earlier_run_with_another_positive_class_is_not_compared_metric_by_metric():
    """Breast cancer, one logistic regression: the earlier run named 'malignant' positive, this one 'benign'.
    Before, precision and recall of different classes were compared ('Precision 1.000 -> 0.978') and blamed on
    disagreeing records, failing the very same model for a wrong reason; now the check says why it cannot compare."""
    from check_helpers import breast_cancer, make_bundle, split_rows, standardiser

    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    parts = {k: (transform(X[r]), y[r], r) for k, r in rows.items()}
    malignant = make_bundle("binary", parts, classes, names, positive_index=1)
    benign = make_bundle("binary", parts, classes, names, positive_index=0)
    model = LogisticRegression(max_iter=1000).fit(malignant.splits["train"].features, malignant.splits["train"].labels)
    earlier = _earlier_run(malignant, sklearn_predictions(malignant, model), 0.5)
    same_class = run("release_comparison", replace(context(malignant, sklearn_predictions(malignant, model)),
                                                   previous=earlier))
    assert same_class.status == "pass" and same_class.value == 0.0  # the clean case: the same model, the same class
    other_class = run("release_comparison", replace(context(benign, sklearn_predictions(benign, model)), previous=earlier))
    assert other_class.status == "fail" and other_class.value is None
    assert other_class.message.startswith("The earlier run's positive class is 'malignant' and this run's is 'benign'")
    assert "records_disagreement" not in other_class.evidence and "metrics" not in other_class.evidence


@pytest.fixture(scope="module")
def credit_auc_drop(credit_logistic):
    """This run: a logistic regression on income alone (ROC AUC 0.57); the earlier run: all three features (0.96),
    with its stored correctness bits and scores, on the same Default test rows."""
    from reportgen.gate import score_record

    bundle, strong = credit_logistic
    train = bundle.splits["train"]
    income = LogisticRegression(max_iter=1000).fit(train.features[:, [1]], train.labels)

    class IncomeOnly:
        def predict_proba(self, X):
            return income.predict_proba(X[:, [1]])

    before, after = sklearn_predictions(bundle, strong), sklearn_predictions(bundle, IncomeOnly())
    earlier = _earlier_run(bundle, before, 0.5)
    test = before["test"]
    earlier["gate"]["test_scores"] = score_record(test.y_true, test.probs[:, 1], 1)
    return replace(context(bundle, after), previous=earlier)


def test_an_alpha_the_bootstrap_cannot_reach_does_not_call_every_auc_drop_noise(credit_auc_drop):
    """2,000 replicates give p-values of at least 1/2001; with alpha 1e-4 a ROC AUC drop of 0.39 was 'likely noise'
    (exit 0). The bootstrap cannot judge at that level, so the drop alone decides."""
    from sklearn.metrics import roc_auc_score

    test = credit_auc_drop.predictions["test"]
    before = credit_auc_drop.previous["metrics"]["test"]["roc_auc"]
    assert before - roc_auc_score(test.y_true, test.probs[:, 1]) > 0.35  # the oracle: a real, large drop
    result = run("release_comparison", credit_auc_drop, {"metrics": ["roc_auc"], "alpha": 0.0001})
    row = result.evidence["metrics"][0]
    assert result.status == "fail" and row["p_value"] is None and row["significant"]
    assert row["test"] == "none (a paired bootstrap of 2000 replicates cannot give p below alpha 1×10⁻⁴: drop only)"
    usual = run("release_comparison", credit_auc_drop, {"metrics": ["roc_auc"]})  # alpha 0.05: the bootstrap judges
    assert usual.status == "fail" and usual.evidence["metrics"][0]["p_value"] == pytest.approx(1 / 2001)


def test_a_headline_metric_the_earlier_run_did_not_record_is_named_as_not_compared(credit_logistic):
    """An earlier results.json without balanced_accuracy and pr_auc (recorded before they were headline metrics):
    the comparison of the rest may pass, but it says which headline metrics it could not compare."""
    bundle, model = credit_logistic
    predictions = sklearn_predictions(bundle, model)
    earlier = _earlier_run(bundle, predictions, 0.5)
    for key in ("balanced_accuracy", "pr_auc"):
        del earlier["metrics"]["test"][key]
    result = run("release_comparison", replace(context(bundle, predictions), previous=earlier))
    assert result.status == "pass" and result.evidence["not_compared"] == ["balanced_accuracy", "pr_auc"]
    assert "(not compared: Balanced accuracy, PR AUC, undefined or not recorded in one of the runs)" in result.message
    assert [r["metric"] for r in result.evidence["metrics"]] == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    complete = run("release_comparison", replace(context(bundle, predictions), previous=_earlier_run(bundle, predictions, 0.5)))
    assert complete.status == "pass" and "not_compared" not in complete.evidence and "not compared" not in complete.message


def test_a_relaxation_smaller_than_the_display_digits_does_not_read_as_no_change():
    """minority_recall.min 0.4999999 relaxes the 0.5 default; shown with six digits it read 'relaxed from 0.5 to 0.5'."""
    from reportgen.checks import registry
    from reportgen.gate import gate_overrides

    specs = [c.spec for c in registry.all()]
    (override,) = gate_overrides(specs, {"minority_recall": {"min": 0.4999999}})
    assert override.relaxes and override.describe() == "minority_recall.min relaxed from 0.5 to 0.4999999"
    (plain,) = gate_overrides(specs, {"minority_recall": {"min": 0.3}})
    assert plain.describe() == "minority_recall.min relaxed from 0.5 to 0.3"
