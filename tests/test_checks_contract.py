"""The check battery as a whole: ids, texts, order, settings and crash isolation, on a real context."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from check_helpers import breast_cancer, context, run, sklearn_predictions, split_rows, standardiser, make_bundle, tabular_bundle
from reportgen.checks import registry, run_checks
from reportgen.checks.base import Check, CheckRegistry, CheckSpec, gate_status

OWN_IDS = [
    "data_integrity", "train_test_overlap", "conflicting_labels", "target_leakage", "class_imbalance", "label_shift",
    "baseline_comparison", "minority_recall", "overfit_gap", "calibration", "threshold_tradeoff",
    "loss_curve", "init_loss", "gradient_flow",
]


@pytest.fixture(scope="module")
def leaky_ctx():
    """Breast cancer with 50 test rows copied into train and a logistic model."""
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    copied = rows["test"][:50]
    train_rows = np.r_[rows["train"], copied]
    parts = {"train": (transform(X[train_rows]), y[train_rows], train_rows),
             "test": (transform(X[rows["test"]]), y[rows["test"]], rows["test"])}
    bundle = make_bundle("binary", parts, classes, names)
    model = LogisticRegression(max_iter=1000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    return context(bundle, sklearn_predictions(bundle, model))


def test_ids_and_registration_order():
    ids = registry.ids()
    assert [i for i in ids if i in OWN_IDS] == OWN_IDS
    families = [registry.get(i).spec.family for i in OWN_IDS]
    assert families == ["data"] * 6 + ["performance"] * 5 + ["training"] * 3


@pytest.mark.parametrize("check_id", OWN_IDS)
def test_every_check_explains_itself(check_id):
    spec = registry.get(check_id).spec
    assert spec.title and spec.detects.endswith(".") and len(spec.detects) > 40
    sentences = [s for s in spec.how_to_read.replace("e.g.", "eg").split(". ") if s.strip()]
    assert 2 <= len(sentences) <= 3, spec.how_to_read
    assert spec.threshold_key in (None, "min", "max")
    if spec.threshold_key:
        assert spec.default_threshold is not None
    for param in spec.params:
        assert param.description


class _Crashing(Check):
    spec = CheckSpec(id="crashing", title="Crashing", family="data", detects="Nothing.", how_to_read="It raises.",
                     default_severity="warning")

    def run(self, ctx, settings):
        raise ValueError("target_recall went missing")


def test_a_crashing_check_becomes_error_while_the_others_run(leaky_ctx):
    checks = CheckRegistry(builtin_modules=(), entry_point_group=None)
    for check in registry.all():
        checks.add(type(check), "built-in")
    checks.add(_Crashing, "test")
    results = {r.id: r for r in run_checks(leaky_ctx, {}, checks)}
    crashed = results["crashing"]
    assert crashed.status == "error"
    assert "ValueError" in crashed.message and "target_recall" in crashed.message
    assert results["train_test_overlap"].status == "fail"
    assert results["baseline_comparison"].status == "pass"
    assert results["loss_curve"].status == "skip"  # no training section
    assert set(OWN_IDS) <= set(results)


def test_severity_override_turns_fail_into_warn(leaky_ctx):
    failing = run("train_test_overlap", leaky_ctx)
    assert failing.status == "fail" and failing.severity == "error"
    warned = run("train_test_overlap", leaky_ctx, {"severity": "warning"})
    assert warned.status == "warn" and warned.value == failing.value
    results = run_checks(leaky_ctx, {"train_test_overlap": {"severity": "warning"}})
    assert gate_status(results) == "pass"
    assert gate_status(run_checks(leaky_ctx, {})) == "fail"


def test_disabled_check_is_removed_and_threshold_override_applies(leaky_ctx):
    results = run_checks(leaky_ctx, {"train_test_overlap": {"enabled": False}})
    assert "train_test_overlap" not in {r.id for r in results}
    share = run("train_test_overlap", leaky_ctx).value
    relaxed = run("train_test_overlap", leaky_ctx, {"max": 0.5})
    assert relaxed.status == "pass" and relaxed.threshold == 0.5 and relaxed.value == share


def test_results_are_json_safe_and_messages_are_one_sentence(leaky_ctx):
    import dataclasses
    import json

    for result in run_checks(leaky_ctx, {}):
        json.dumps(dataclasses.asdict(result), allow_nan=False)
        if result.id not in OWN_IDS or result.status == "skip":
            continue  # skip reasons are lower-case fragments, as base.run_check writes them
        assert result.message.endswith("."), result.message
        assert "\n" not in result.message


def test_regression_context_runs_every_applicable_check():
    from check_helpers import diabetes
    from sklearn.linear_model import LinearRegression

    bundle, *_ = tabular_bundle(diabetes, "regression", val=0.2)
    model = LinearRegression().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    results = {r.id: r for r in run_checks(context(bundle, sklearn_predictions(bundle, model)), {})}
    assert results["class_imbalance"].status == "skip"
    for check_id in ("data_integrity", "train_test_overlap", "target_leakage", "baseline_comparison", "overfit_gap"):
        assert results[check_id].status in ("pass", "warn"), results[check_id].message
