"""Data checks on real data sets, each with a planted defect and a clean case."""

from __future__ import annotations

import numpy as np
import pytest

from check_helpers import (
    breast_cancer,
    context,
    default_credit,
    diabetes,
    digits,
    make_bundle,
    run,
    split_rows,
    standardiser,
    tabular_bundle,
    wine,
)

# ----------------------------------------------------------------------------- data_integrity


def test_data_integrity_clean_breast_cancer():
    bundle, *_ = tabular_bundle(breast_cancer, "binary")
    result = run("data_integrity", context(bundle))
    assert result.status == "pass", result.message
    assert result.value == 0


def test_data_integrity_shows_no_class_support_setting_for_regression():
    from reportgen.render import view

    bundle, *_ = tabular_bundle(diabetes, "regression")
    result = run("data_integrity", context(bundle))
    assert result.status == "pass", result.message
    assert "min_class_support" not in result.evidence
    assert "class support" not in str(view.evidence_view(result))
    classified, *_ = tabular_bundle(breast_cancer, "binary")
    assert run("data_integrity", context(classified)).evidence["min_class_support"] == 10


def test_data_integrity_finds_nonfinite_inputs_and_bad_labels():
    bundle, X, y, rows, transform = tabular_bundle(breast_cancer, "binary")
    test_x = transform(X[rows["test"]])
    test_x[3, 0] = np.nan
    test_x[7, [1, 2]] = np.inf
    train_y = y[rows["train"]].copy()
    train_y[:4] = 2  # a third class that does not exist
    parts = {"train": (transform(X[rows["train"]]), train_y, rows["train"]), "test": (test_x, y[rows["test"]], rows["test"])}
    broken = make_bundle("binary", parts, bundle.classes, bundle.feature_names)
    result = run("data_integrity", context(broken))
    assert result.status == "fail"
    assert "test has 3 non-finite input values in 2 samples" in result.message
    assert "train has 4 labels outside 0..1" in result.message
    assert result.evidence["splits"]["test"]["nonfinite_values"] == 3
    assert result.evidence["splits"]["train"]["labels_out_of_range"] == 4


def test_data_integrity_single_class_split_is_a_violation():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    test_rows = rows["test"][y[rows["test"]] == 0]  # only benign in test
    parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
             "test": (transform(X[test_rows]), y[test_rows], test_rows)}
    result = run("data_integrity", context(make_bundle("binary", parts, classes, names)))
    assert result.status == "fail"
    assert "test holds a single class ('benign')" in result.message


def test_data_integrity_tiny_test_class_is_a_concern():
    X, y, classes, names = wine()
    rows = split_rows(y, len(y), test=0.25)
    test_rows = rows["test"]
    keep = np.r_[test_rows[y[test_rows] != 2], test_rows[y[test_rows] == 2][:4]]
    transform = standardiser(X[rows["train"]])
    parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
             "test": (transform(X[keep]), y[keep], keep)}
    result = run("data_integrity", context(make_bundle("multiclass", parts, classes, names)))
    assert result.status == "warn", result.message
    assert "'class_2' 4" in result.message
    assert result.evidence["splits"]["test"]["class_support"]["class_2"] == 4


# ----------------------------------------------------------------------------- train_test_overlap


def _with_copies(X, y, rows, copy_rows, transform, train_x_source=None, offset=100_000):
    """Train extended with copies of ``copy_rows`` (source rows offset by ``offset``)."""
    train_x = transform(X[rows["train"]])
    copies = transform(X[copy_rows] if train_x_source is None else train_x_source)
    return {
        "train": (np.vstack([train_x, copies]), np.r_[y[rows["train"]], y[copy_rows]], np.r_[rows["train"], copy_rows + offset]),
        "test": (transform(X[rows["test"]]), y[rows["test"]], rows["test"]),
    }


def test_overlap_finds_fifty_copied_test_rows_with_their_row_numbers():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    copied = rows["test"][::2][:50]
    bundle = make_bundle("binary", _with_copies(X, y, rows, copied, transform), classes, names)
    result = run("train_test_overlap", context(bundle))
    n_test = len(rows["test"])
    assert result.status == "fail"
    assert result.value == pytest.approx(50 / n_test)
    pair = result.evidence["pairs"]["test_in_train"]
    assert (pair["count"], pair["n"], pair["exact"], pair["normalised"]) == (50, n_test, 50, 0)
    assert len(pair["examples"]) == 10
    for example in pair["examples"]:
        assert example["train_row"] == example["test_row"] + 100_000
        assert example["test_row"] - 1 in set(copied.tolist())  # 1-based data rows
    assert f"50 of {n_test} test samples" in result.message


def test_overlap_clean_split_passes():
    bundle, *_ = tabular_bundle(breast_cancer, "binary", val=0.15)
    result = run("train_test_overlap", context(bundle))
    assert result.status == "pass", result.message
    assert result.value == 0.0
    assert set(result.evidence["pairs"]) == {"test_in_train", "val_in_train", "test_in_val"}


def test_overlap_survives_float_formatting():
    """Copies written with f'{v:.9g}' instead of repr: exact bytes differ, the normalised hash matches."""
    X, y, classes, names = default_credit()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    copied = rows["test"][:200][::4]
    reformatted = np.array([[float(f"{v:.9g}") for v in row] for row in X[copied]])
    assert not np.array_equal(reformatted, X[copied])
    parts = _with_copies(X, y, rows, copied, transform, train_x_source=reformatted)
    result = run("train_test_overlap", context(make_bundle("binary", parts, classes, names)))
    pair = result.evidence["pairs"]["test_in_train"]
    assert result.status == "fail"
    assert pair["count"] == 50
    assert pair["exact"] < 50 and pair["normalised"] == 50 - pair["exact"]
    for example in pair["examples"]:
        assert example["train_row"] == example["test_row"] + 100_000


def test_overlap_of_image_tensors_without_a_feature_table():
    X, y, classes, _ = digits()
    rows = split_rows(y, len(y))
    copied = rows["test"][:30]
    identity = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    parts = _with_copies(X, y, rows, copied, identity)
    bundle = make_bundle("multiclass", parts, classes, None, image_shape=(1, 8, 8))
    assert bundle.splits["train"].features is None
    ctx = context(bundle, batch_size=100)
    result = run("train_test_overlap", ctx)
    pair = result.evidence["pairs"]["test_in_train"]
    # digits itself holds a few exact duplicate images; the 30 copies come on top
    clean = run("train_test_overlap", context(make_bundle(
        "multiclass", {k: (X[r], y[r], r) for k, r in rows.items()}, classes, None, image_shape=(1, 8, 8))))
    assert pair["count"] == clean.evidence["pairs"]["test_in_train"]["count"] + 30
    assert result.status == "fail"
    found_rows = {e["test_row"] - 1 for e in pair["examples"]}  # 1-based positions
    assert found_rows <= set(copied.tolist()) | set(r["test_row"] - 1 for r in clean.evidence["pairs"]["test_in_train"]["examples"])


# ----------------------------------------------------------------------------- conflicting_labels


def test_conflicting_labels_within_train_and_across_splits():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    flip_train = rows["train"][:5]
    flip_test = rows["test"][:3]
    extra = np.r_[flip_train, flip_test]
    train_x = np.vstack([transform(X[rows["train"]]), transform(X[extra])])
    train_y = np.r_[y[rows["train"]], 1 - y[extra]]
    parts = {"train": (train_x, train_y, np.r_[rows["train"], extra + 100_000]),
             "test": (transform(X[rows["test"]]), y[rows["test"]], rows["test"])}
    result = run("conflicting_labels", context(make_bundle("binary", parts, classes, names)))
    assert result.status == "warn"  # default severity warning
    assert result.value == 8
    assert (result.evidence["within_train"], result.evidence["across_splits"]) == (5, 3)
    assert result.evidence["samples"] == 16
    first = result.evidence["examples"][0]["samples"]
    assert {s["label"] for s in first} == {"benign", "malignant"}
    assert "8 groups of identical inputs carry different labels" in result.message


def test_conflicting_labels_clean_wine():
    bundle, *_ = tabular_bundle(wine, "multiclass")
    result = run("conflicting_labels", context(bundle))
    assert result.status == "pass" and result.value == 0


# ----------------------------------------------------------------------------- target_leakage


def _leaky(loader, task, make_leak, name="leak"):
    X, y, classes, names = loader()
    rng = np.random.default_rng(0)
    X = np.column_stack([X, make_leak(y, rng)])
    rows = split_rows(None if task == "regression" else y, len(y))
    transform = standardiser(X[rows["train"]])
    parts = {k: (transform(X[r]), y[r], r) for k, r in rows.items()}
    return make_bundle(task, parts, classes, names + (name,))


def test_target_leakage_binary_label_copy_is_found():
    bundle = _leaky(breast_cancer, "binary", lambda y, rng: y + rng.normal(0, 0.05, len(y)), name="diagnosis_code")
    result = run("target_leakage", context(bundle))
    assert result.status == "fail"
    assert result.value == pytest.approx(1.0)
    assert result.evidence["features"][0]["name"] == "diagnosis_code"
    assert len(result.evidence["features"]) == 5
    assert "'diagnosis_code'" in result.message


def test_target_leakage_clean_breast_cancer():
    bundle, *_ = tabular_bundle(breast_cancer, "binary")
    result = run("target_leakage", context(bundle))
    assert result.status == "pass", result.message
    from sklearn.metrics import roc_auc_score

    train = bundle.splits["train"]
    best = max(max(a, 1 - a) for a in (roc_auc_score(train.labels, train.features[:, j]) for j in range(30)))
    assert result.value == pytest.approx(best)
    assert 0.9 < result.value < 0.99


def test_target_leakage_multiclass_ordinal_label_encoding():
    bundle = _leaky(wine, "multiclass", lambda y, rng: y * 10 + rng.normal(0, 1, len(y)))
    result = run("target_leakage", context(bundle))
    assert result.status == "fail"
    assert result.evidence["features"][0]["name"] == "leak"
    clean, *_ = tabular_bundle(wine, "multiclass")
    assert run("target_leakage", context(clean)).status == "pass"


def test_target_leakage_regression_and_image_skip():
    leaky = _leaky(diabetes, "regression", lambda y, rng: 3 * y + rng.normal(0, 1, len(y)))
    result = run("target_leakage", context(leaky))
    assert result.status == "fail" and result.evidence["score"] == "abs_pearson_r"
    clean, *_ = tabular_bundle(diabetes, "regression")
    assert run("target_leakage", context(clean)).status == "pass"
    X, y, classes, _ = digits()
    rows = split_rows(y, len(y))
    images = make_bundle("multiclass", {k: (X[r], y[r], r) for k, r in rows.items()}, classes, None, image_shape=(1, 8, 8))
    assert run("target_leakage", context(images)).status == "skip"


# ----------------------------------------------------------------------------- class_imbalance, label_shift


def test_class_imbalance_flags_the_rare_default_class():
    bundle, *_ = tabular_bundle(default_credit, "binary")
    result = run("class_imbalance", context(bundle))
    counts = bundle.class_counts("train")
    share = counts["Yes"] / sum(counts.values())
    assert result.status == "warn"
    assert result.value == pytest.approx(2 * share)
    assert result.evidence["minority_class"] == "Yes"
    assert result.evidence["imbalance_ratio"] == pytest.approx(counts["No"] / counts["Yes"])
    assert "accuracy will mislead" in result.message and "balanced accuracy" in result.message


def test_class_imbalance_ten_balanced_digit_classes_pass():
    X, y, classes, _ = digits()
    rows = split_rows(y, len(y))
    bundle = make_bundle("multiclass", {k: (X[r], y[r], r) for k, r in rows.items()}, classes, None, image_shape=(1, 8, 8))
    result = run("class_imbalance", context(bundle))
    assert result.status == "pass", result.message
    assert result.value > 0.9


def test_label_shift_found_and_clean():
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    test_rows = np.r_[rows["test"][y[rows["test"]] == 0], rows["test"][y[rows["test"]] == 1][:10]]
    parts = {"train": (transform(X[rows["train"]]), y[rows["train"]], rows["train"]),
             "test": (transform(X[test_rows]), y[test_rows], test_rows)}
    result = run("label_shift", context(make_bundle("binary", parts, classes, names)))
    p_train = y[rows["train"]].mean()
    p_test = y[test_rows].mean()
    assert result.status == "warn"
    assert result.value == pytest.approx(abs(p_train - p_test))
    clean, *_ = tabular_bundle(breast_cancer, "binary")
    ok = run("label_shift", context(clean))
    assert ok.status == "pass" and ok.value < 0.01


# ----------------------------------------------------------------------------- scale


def test_overlap_and_leakage_scale_to_200k_rows():
    rng = np.random.default_rng(0)
    n, d = 200_000, 32
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] + rng.standard_normal(n) > 0).astype(np.int64)
    test_x = rng.standard_normal((20_000, d)).astype(np.float32)
    test_x[:100] = X[:100]
    test_y = (test_x[:, 0] > 0).astype(np.int64)
    bundle = make_bundle("binary", {"train": (X, y, None), "test": (test_x, test_y, None)}, ("neg", "pos"),
                         tuple(f"f{i}" for i in range(d)))
    ctx = context(bundle)
    overlap = run("train_test_overlap", ctx)
    assert overlap.evidence["pairs"]["test_in_train"]["count"] == 100
    leakage = run("target_leakage", ctx)
    assert leakage.status == "pass" and leakage.evidence["features"][0]["name"] == "f0"
    # the copies keep their inputs but test labels come from a noiseless rule: those that differ conflict
    assert run("conflicting_labels", ctx).value == int((y[:100] != test_y[:100]).sum())
