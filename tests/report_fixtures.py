"""Builders of realistic ``Report`` objects for the renderer tests (no training needed).

Numbers are generated from seeded synthetic scores, so curves, confusion matrices and metrics
agree with each other the way a real run's would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reportgen.checks.base import CheckResult
from reportgen.report import Report

XSS_CLASS = "<script>alert(1)</script> & co"
CREATED_AT = "2024-05-17T09:30:00Z"


def _environment(seed: int = 7) -> dict[str, Any]:
    return {"reportgen_version": "0.1.0", "torch_version": "2.3.1+cpu", "python": "3.11.9", "device": "cpu",
            "seed": seed, "config_sha256": "9f2c4e0b7d1a5c3e8b6f0a2d4c6e8f0a1b3d5f7092c4e6a8b0d2f4a6c8e0b2d4",
            "created_at": CREATED_AT}


def _check(id: str, title: str, family: str, status: str, severity: str, value: Any, threshold: Any,
           higher: bool | None, message: str, evidence: dict[str, Any] | None = None) -> CheckResult:
    return CheckResult(id=id, title=title, family=family, status=status, severity=severity, value=value,
                       threshold=threshold, higher_is_better=higher, message=message, evidence=evidence or {})


def _r(x: float) -> float:
    return round(float(x), 4)


def _binary_scores(n: int, prevalence: float, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    logits = rng.normal(0, 1, n) + separation * (y - 0.5) * 2 + math.log(prevalence / (1 - prevalence))
    return y, 1 / (1 + np.exp(-logits))


def _wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p, z = k / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [_r(max(0, centre - half)), _r(min(1, centre + half))]


def _average_precision(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p, kind="stable")
    hits = y[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / max(1, hits.sum()))


def _binary_metrics(y: np.ndarray, p: np.ndarray, classes: list[str], threshold: float) -> dict[str, Any]:
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum()); tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum()); fn = int(((pred == 0) & (y == 1)).sum())
    n = len(y)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    npv = tn / (tn + fn) if tn + fn else 0.0
    f1_neg = 2 * npv * spec / (npv + spec) if npv + spec else 0.0
    eps = 1e-7
    log_loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    order = np.argsort(-p)
    ranks = np.empty(n); ranks[order[::-1]] = np.arange(1, n + 1)
    pos = y.sum()
    auc = (ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)) if 0 < pos < n else None
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) or 1
    return {
        "n": n, "loss": _r(log_loss), "accuracy": _r((tp + tn) / n), "balanced_accuracy": _r((rec + spec) / 2),
        "precision": _r(prec), "recall": _r(rec), "f1": _r(f1),
        "precision_macro": _r((prec + npv) / 2), "recall_macro": _r((rec + spec) / 2), "f1_macro": _r((f1 + f1_neg) / 2),
        "f1_weighted": _r((f1 * pos + f1_neg * (n - pos)) / n), "mcc": _r((tp * tn - fp * fn) / denom),
        "roc_auc": _r(auc) if auc is not None else None, "pr_auc": _r(_average_precision(y, p)),
        "log_loss": _r(log_loss), "brier": _r(float(np.mean((p - y) ** 2))),
        "classes": classes, "confusion_matrix": [[tn, fp], [fn, tp]],
        "per_class": {
            classes[0]: {"precision": _r(npv), "recall": _r(spec), "f1": _r(f1_neg), "support": int(n - pos),
                         "recall_ci95": _wilson(tn, tn + fp)},
            classes[1]: {"precision": _r(prec), "recall": _r(rec), "f1": _r(f1), "support": int(pos),
                         "recall_ci95": _wilson(tp, tp + fn)},
        },
        "positive_class": classes[1],
    }


def _binary_curves(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    thresholds = np.linspace(0, 1, 101)
    tpr, fpr, precision, f1, predicted = [], [], [], [], []
    pos, neg = y.sum(), len(y) - y.sum()
    for t in thresholds:
        pred = p >= t
        tp = int((pred & (y == 1)).sum()); fp = int((pred & (y == 0)).sum())
        tpr.append(tp / pos); fpr.append(fp / neg)
        pr = tp / (tp + fp) if tp + fp else 1.0
        precision.append(pr)
        f1.append(2 * pr * tpr[-1] / (pr + tpr[-1]) if pr + tpr[-1] else 0.0)
        predicted.append(int(pred.sum()))
    op = int(round(threshold * 100))
    bins = []
    for lo in np.linspace(0, 0.9, 10):
        mask = (p >= lo) & (p < lo + 0.1 if lo < 0.9 else p <= 1.0)
        if mask.sum():
            bins.append({"lower": _r(lo), "upper": _r(lo + 0.1), "count": int(mask.sum()),
                         "mean_predicted": _r(p[mask].mean()), "fraction_positive": _r(y[mask].mean())})
    ece = sum(b["count"] * abs(b["mean_predicted"] - b["fraction_positive"]) for b in bins) / len(y)
    rev = slice(None, None, -1)
    return {
        "roc": {"fpr": [_r(v) for v in fpr[rev]], "tpr": [_r(v) for v in tpr[rev]], "auc": None},
        "pr": {"recall": [_r(v) for v in tpr[rev]], "precision": [_r(v) for v in precision[rev]], "auc": None,
               "prevalence": _r(pos / len(y))},
        "operating_point": {"threshold": threshold, "fpr": _r(fpr[op]), "tpr": _r(tpr[op]),
                            "precision": _r(precision[op]), "recall": _r(tpr[op])},
        "calibration": {"ece": _r(ece), "bins": bins},
        "threshold_sweep": {"thresholds": [_r(t) for t in thresholds], "precision": [_r(v) for v in precision],
                            "recall": [_r(v) for v in tpr], "f1": [_r(v) for v in f1], "predicted_positive": predicted},
    }


def _history(epochs: int, overfit: bool, metric: str = "accuracy") -> list[dict[str, Any]]:
    rows = []
    for e in range(1, epochs + 1):
        train = 0.69 * math.exp(-0.25 * e) + 0.08
        val = 0.69 * math.exp(-0.22 * e) + 0.12 + (0.012 * max(0, e - 8) ** 1.3 if overfit else 0)
        rows.append({"epoch": e, "train_loss": _r(train), "val_loss": _r(val),
                     f"train_{metric}": _r(1 - train * 0.6), f"val_{metric}": _r(1 - val * 0.6)})
    return rows


def _gradients(dead_layer: bool) -> list[dict[str, Any]]:
    layers = [("net.0.weight", [64, 12], 0.84), ("net.0.bias", [64], 0.21), ("net.2.weight", [32, 64], 0.37),
              ("net.2.bias", [32], 0.093), ("net.4.weight", [1, 32], 0.0021), ("net.4.bias", [1], 0.00032)]
    rows = [{"name": n, "shape": s, "received": True, "norm": g, "finite": True} for n, s, g in layers]
    if dead_layer:
        rows.insert(2, {"name": "embedding.unused.weight", "shape": [10, 8], "received": False, "norm": None, "finite": True})
    return rows


def _data(classes: list[str], counts: dict[str, list[int]], features: list[str] | None, positive: str | None) -> dict[str, Any]:
    return {
        "features": features, "classes": classes, "positive_class": positive,
        "splits": {split: {"n": sum(c), "class_counts": dict(zip(classes, c))} for split, c in counts.items()},
        "fingerprint": {"train": {"rows": sum(counts["train"]), "sha256": "3b1f0c9d2e4a6b8c"},
                        "test": {"rows": sum(counts["test"]), "sha256": "7a9e2d4c6b8f0a1e"},
                        "source": "sample_configs/data/credit.csv", "columns": 13},
    }


def _config(name: str, task: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        "name": name, "task": task,
        "data": {"path": "sample_configs/data/credit.csv", "target": "default", "split": {"val": 0.15, "test": 0.2}},
        "model": {"kind": "mlp", "hidden": [64, 32], "dropout": 0.1},
        "training": {"epochs": 20, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.001}, "early_stopping": {"patience": 4}},
        "checks": {"minority_recall": {"min": 0.6}, "overfitting_gap": {"max": 0.05}},
        "report": {"formats": ["html", "pdf", "json", "junit", "md"]},
        "seed": 7,
    }
    config.update(extra or {})
    return config


def _timing() -> dict[str, float]:
    return {"load": 0.41, "train": 12.87, "evaluate": 0.92, "checks": 0.33, "render": 2.1}


def _model(kind: str = "mlp", outputs: int = 1, threshold: float | None = 0.5) -> dict[str, Any]:
    return {"kind": kind, "class_name": "TabularMLP", "parameters": 2945, "trainable_parameters": 2945,
            "outputs": outputs, "output_kind": "logit" if outputs == 1 else "logits", "threshold": threshold,
            "checkpoint": "runs/credit/model.pt"}


def passing_binary() -> Report:
    """A healthy binary classifier: every blocking check passes, one warning."""
    classes = ["repaid", "default"]
    y, p = _binary_scores(1200, 0.3, 1.6, seed=1)
    yt, pt = _binary_scores(3000, 0.3, 1.7, seed=2)
    yv, pv = _binary_scores(600, 0.3, 1.6, seed=3)
    test = _binary_metrics(y, p, classes, 0.5)
    curves = _binary_curves(y, p, 0.5)
    curves["roc"]["auc"] = test["roc_auc"]; curves["pr"]["auc"] = test["pr_auc"]
    pc = test["per_class"]
    checks = (
        _check("train_test_overlap", "Train/test overlap", "data", "pass", "error", 0.0, 0.0, False,
               "no test or validation row also appears in the training data",
               {"pairs": {"test_in_train": {"count": 0, "share": 0.0, "n": 1200, "examples": []},
                          "val_in_train": {"count": 0, "share": 0.0, "n": 600, "examples": []}}}),
        _check("class_imbalance", "Class imbalance", "data", "warn", "warning", 0.3, 0.35, True,
               "the minority class 'default' is 30.0% of training rows; accuracy alone will overstate quality",
               {"minority_class": "default", "share": 0.3}),
        _check("baseline_comparison", "Beats the majority-class baseline", "performance", "pass", "error",
               _r(test["balanced_accuracy"] - 0.5), 0.05, True,
               f"balanced accuracy {test['balanced_accuracy']:.3f} vs 0.500 for always predicting 'repaid'",
               {"split": "test", "model": {"accuracy": test["accuracy"], "balanced_accuracy": test["balanced_accuracy"]},
                "baseline": {"accuracy": 0.7, "balanced_accuracy": 0.5}}),
        _check("minority_recall", "Minority-class recall", "performance", "pass", "error", pc["default"]["recall"], 0.6, True,
               f"recall of 'default' is {pc['default']['recall']:.3f}",
               {"per_class": [{"class": c, "recall": v["recall"], "support": v["support"], "ci95": v["recall_ci95"]}
                              for c, v in pc.items()]}),
        _check("calibration", "Calibration error", "performance", "pass", "warning", curves["calibration"]["ece"], 0.15, False,
               f"expected calibration error {curves['calibration']['ece']:.3f}", {"bins": curves["calibration"]["bins"]}),
        _check("overfitting_gap", "Train/validation gap", "training", "pass", "error", 0.021, 0.05, False,
               "validation loss is 0.021 above training loss at the best epoch", {"train_loss": 0.114, "val_loss": 0.135}),
        _check("init_loss", "Initial loss is sane", "training", "pass", "warning", 0.702, None, None,
               "initial loss 0.702 is close to the expected 0.611 for a 30% prevalence", {}),
        _check("gradient_flow", "Gradients reach every layer", "training", "pass", "error", 0, 0, False,
               "all 6 parameter tensors received a finite gradient",
               {"layers": [{k: g[k] for k in ("name", "norm", "received", "finite")} for g in _gradients(False)],
                "no_gradient": [], "vanishing": []}),
        _check("nonfinite_loss", "Loss stays finite", "training", "pass", "error", None, None, None,
               "every batch loss was finite", {}),
        _check("label_shift", "Label distribution shift", "data", "skip", "warning", None, 0.1, False,
               "does not apply: the test split has no labels drift baseline", {}),
    )
    return Report(
        name="credit-default-mlp", task="binary", environment=_environment(),
        data=_data(classes, {"train": [3920, 1680], "val": [840, 360], "test": [840, 360]},
                   ["age", "income", "debt_ratio", "credit_lines", "late_30_59", "late_60_89", "late_90", "real_estate_loans",
                    "dependents", "utilisation", "months_employed", "region"], "default"),
        model=_model(),
        training={"epochs_run": 16, "best_epoch": 12, "stopped_early": True, "loss": "bce", "init_loss": 0.702,
                  "expected_init_loss": 0.611, "first_nonfinite_loss": None, "history": _history(16, False),
                  "gradients": _gradients(False)},
        metrics={"train": _binary_metrics(yt, pt, classes, 0.5), "val": _binary_metrics(yv, pv, classes, 0.5), "test": test},
        checks=checks, curves={"test": curves}, config=_config("credit-default-mlp", "binary"), timing=_timing(),
    )


def failing_binary() -> Report:
    """A model that 'looks' 95% accurate: accuracy paradox, leakage, overfitting, a dead layer."""
    classes = ["legit", "fraud"]
    y, p = _binary_scores(2000, 0.05, 0.9, seed=11)
    yt, pt = _binary_scores(6000, 0.05, 2.5, seed=12)
    test = _binary_metrics(y, p, classes, 0.5)
    curves = _binary_curves(y, p, 0.5)
    curves["roc"]["auc"] = test["roc_auc"]; curves["pr"]["auc"] = test["pr_auc"]
    pc = test["per_class"]
    examples = [{"test_row": 17 + 31 * i, "train_row": 402 + 977 * i % 5000} for i in range(14)]
    checks = (
        _check("train_test_overlap", "Train/test overlap", "data", "fail", "error", 0.071, 0.0, False,
               "142 of 2,000 test rows (7.1%) are exact copies of training rows: test scores are inflated",
               {"pairs": {"test_in_train": {"count": 142, "share": 0.071, "n": 2000, "examples": examples},
                          "val_in_train": {"count": 3, "share": 0.003, "n": 1000,
                                           "examples": [{"val_row": 5, "train_row": 88}, {"val_row": 640, "train_row": 2011},
                                                        {"val_row": 912, "train_row": 4410}]}}}),
        _check("baseline_comparison", "Beats the majority-class baseline (accuracy paradox)", "performance", "fail", "error",
               _r(test["balanced_accuracy"] - 0.5), 0.05, True,
               f"accuracy {test['accuracy']:.3f} looks good but always predicting 'legit' scores {1 - 0.05:.3f}; "
               f"balanced accuracy {test['balanced_accuracy']:.3f} is barely above chance",
               {"split": "test", "model": {"accuracy": test["accuracy"], "balanced_accuracy": test["balanced_accuracy"]},
                "baseline": {"accuracy": 0.95, "balanced_accuracy": 0.5}}),
        _check("minority_recall", "Minority-class recall", "performance", "fail", "error", pc["fraud"]["recall"], 0.6, True,
               f"the model finds {pc['fraud']['recall']:.1%} of 'fraud' cases (needs ≥ 60%)",
               {"per_class": [{"class": c, "recall": v["recall"], "support": v["support"], "ci95": v["recall_ci95"]}
                              for c, v in pc.items()]}),
        _check("overfitting_gap", "Train/validation gap", "training", "fail", "error", 0.187, 0.05, False,
               "validation loss rose for 9 epochs after epoch 8 while training loss kept falling (gap 0.187)",
               {"train_loss": 0.043, "val_loss": 0.23, "best_epoch": 8, "epochs_rising": 9}),
        _check("gradient_flow", "Gradients reach every layer", "training", "fail", "error", 1, 0, False,
               "1 parameter tensor received no gradient: embedding.unused.weight",
               {"layers": [{k: g[k] for k in ("name", "norm", "received", "finite")} for g in _gradients(True)],
                "no_gradient": ["embedding.unused.weight"], "vanishing": ["net.4.bias"]}),
        _check("calibration", "Calibration error", "performance", "warn", "warning", curves["calibration"]["ece"], 0.02, False,
               f"expected calibration error {curves['calibration']['ece']:.3f} exceeds 0.02", {"bins": curves["calibration"]["bins"]}),
        _check("feature_target_leak", "Single-feature leakage", "data", "error", "error", None, 0.98, False,
               "the check crashed: ValueError: could not convert string to float: 'n/a'",
               {"exception": "ValueError", "at": "_feature_scores:214"}),
        _check("init_loss", "Initial loss is sane", "training", "pass", "warning", 0.21, None, None,
               "initial loss 0.210 is close to the expected 0.199 for a 5% prevalence", {}),
        _check("nonfinite_loss", "Loss stays finite", "training", "pass", "error", None, None, None,
               "every batch loss was finite", {}),
    )
    return Report(
        name="fraud-detector-v3", task="binary", environment=_environment(seed=1234),
        data=_data(classes, {"train": [5700, 300], "val": [950, 50], "test": [1900, 100]},
                   [f"v{i}" for i in range(1, 29)] + ["amount", "hour"], "fraud"),
        model=_model(threshold=0.5),
        training={"epochs_run": 17, "best_epoch": 8, "stopped_early": False, "loss": "bce", "init_loss": 0.21,
                  "expected_init_loss": 0.199, "first_nonfinite_loss": None, "history": _history(17, True),
                  "gradients": _gradients(True)},
        metrics={"train": _binary_metrics(yt, pt, classes, 0.5), "test": test},
        checks=checks, curves={"test": curves}, config=_config("fraud-detector-v3", "binary"), timing=_timing(),
    )


def multiclass(classes: list[str] | None = None, name: str = "iris-like-multiclass") -> Report:
    """A three-class (or more) classifier with per-class ROC and calibration."""
    classes = classes or ["setosa", "versicolor", "virginica"]
    k = len(classes)
    rng = np.random.default_rng(5)
    support = [int(s) for s in rng.integers(40, 120, k)]
    matrix = []
    for i, s in enumerate(support):
        correct = int(s * (0.93 - 0.08 * (i % 3)))
        rest = s - correct
        row = [0] * k
        row[i] = correct
        for j in range(rest):
            row[(i + 1 + j % (k - 1)) % k] += 1
        matrix.append(row)
    n = sum(support)
    col = [sum(matrix[i][j] for i in range(k)) for j in range(k)]
    per_class = {}
    for i, c in enumerate(classes):
        rec = matrix[i][i] / support[i]
        prec = matrix[i][i] / col[i] if col[i] else 0.0
        per_class[c] = {"precision": _r(prec), "recall": _r(rec), "f1": _r(2 * prec * rec / (prec + rec) if prec + rec else 0),
                        "support": support[i], "recall_ci95": _wilson(matrix[i][i], support[i])}
    acc = sum(matrix[i][i] for i in range(k)) / n
    test = {"n": n, "loss": 0.31, "accuracy": _r(acc), "balanced_accuracy": _r(np.mean([v["recall"] for v in per_class.values()])),
            "precision_macro": _r(np.mean([v["precision"] for v in per_class.values()])),
            "recall_macro": _r(np.mean([v["recall"] for v in per_class.values()])),
            "f1_macro": _r(np.mean([v["f1"] for v in per_class.values()])), "f1_weighted": _r(acc - 0.004), "mcc": _r(acc - 0.07),
            "roc_auc": 0.962, "pr_auc": None, "log_loss": 0.31, "brier": 0.12, "classes": classes,
            "confusion_matrix": matrix, "per_class": per_class, "positive_class": None}
    t = np.linspace(0, 1, 60)
    roc = {c: {"fpr": [_r(v) for v in t], "tpr": [_r(v ** (0.1 + 0.12 * i)) for v in t], "auc": _r(1 - (0.1 + 0.12 * i) / (1.1 + 0.12 * i))}
           for i, c in enumerate(classes)}
    bins = [{"lower": _r(lo), "upper": _r(lo + 0.1), "count": int(5 + 40 * lo ** 2), "mean_predicted": _r(lo + 0.05),
             "fraction_positive": _r(min(1, (lo + 0.05) * 0.92 + 0.02))} for lo in np.linspace(0, 0.9, 10)]
    counts = {split: [max(1, int(s * f)) for s in support] for split, f in (("train", 3.0), ("val", 0.5), ("test", 1.0))}
    checks = (
        _check("minority_recall", "Minority-class recall", "performance", "pass", "error",
               min(v["recall"] for v in per_class.values()), 0.6, True, "every class has recall above 0.6",
               {"per_class": [{"class": c, "recall": v["recall"], "support": v["support"], "ci95": v["recall_ci95"]}
                              for c, v in per_class.items()]}),
        _check("calibration", "Calibration error", "performance", "pass", "warning", 0.034, 0.1, False,
               "expected calibration error 0.034", {"bins": bins}),
        _check("train_test_overlap", "Train/test overlap", "data", "pass", "error", 0.0, 0.0, False, "no duplicated rows",
               {"pairs": {"test_in_train": {"count": 0, "share": 0.0, "n": n, "examples": []}}}),
    )
    return Report(
        name=name, task="multiclass", environment=_environment(),
        data=_data(classes, counts, ["sepal_length", "sepal_width", "petal_length", "petal_width"], None),
        model=_model(outputs=k, threshold=None), training=None,
        metrics={"test": test}, checks=checks,
        curves={"test": {"calibration": {"ece": 0.034, "bins": bins}, "roc_per_class": roc}},
        config=_config(name, "multiclass"), timing={"load": 0.1, "evaluate": 0.3, "checks": 0.05, "render": 1.2},
    )


def regression() -> Report:
    """A regression model with scatter and residual data."""
    rng = np.random.default_rng(9)
    y_true = rng.normal(250, 60, 800)
    y_pred = y_true + rng.normal(0, 25, 800) + 0.1 * (y_true - 250)
    residual = y_pred - y_true
    counts, edges = np.histogram(residual, bins=30)
    rmse = float(np.sqrt(np.mean(residual ** 2)))
    test = {"n": 800, "loss": _r(rmse ** 2), "mse": _r(rmse ** 2), "rmse": _r(rmse), "mae": _r(np.mean(np.abs(residual))),
            "r2": _r(1 - np.sum(residual ** 2) / np.sum((y_true - y_true.mean()) ** 2)),
            "target_mean": _r(y_true.mean()), "target_std": _r(y_true.std())}
    train = dict(test, n=3200, rmse=_r(rmse * 0.8), mae=_r(test["mae"] * 0.8), r2=_r(test["r2"] + 0.03))
    checks = (
        _check("baseline_comparison", "Beats predicting the mean", "performance", "pass", "error", test["r2"], 0.1, True,
               f"R² {test['r2']:.3f} against 0 for predicting the training mean", {"split": "test", "r2": test["r2"], "baseline_r2": 0.0,
                                                                         "rmse": test["rmse"], "baseline_rmse": _r(y_true.std())}),
        _check("overfitting_gap", "Train/validation gap", "training", "warn", "warning", 0.061, 0.05, False,
               "validation RMSE is 6.1% above training RMSE", {}),
        _check("init_loss", "Initial loss is sane", "training", "pass", "warning", 1.02, None, None,
               "initial loss is close to the target variance on the standardised scale", {}),
    )
    history = [{"epoch": e, "train_loss": _r(1 / e + 0.1), "val_loss": _r(1.1 / e + 0.13), "train_r2": _r(1 - 1 / e), "val_r2": _r(0.95 - 1.1 / e)}
               for e in range(1, 31)]
    return Report(
        name="house-prices-regression", task="regression", environment=_environment(),
        data={"features": ["area", "rooms", "age", "distance"], "classes": [], "positive_class": None,
              "splits": {"train": {"n": 3200, "class_counts": {}}, "val": {"n": 600, "class_counts": {}}, "test": {"n": 800, "class_counts": {}}},
              "fingerprint": {"train": {"rows": 3200, "sha256": "aa11"}}},
        model=_model(outputs=1, threshold=None),
        training={"epochs_run": 30, "best_epoch": 27, "stopped_early": False, "loss": "mse", "init_loss": 1.02,
                  "expected_init_loss": 1.0, "first_nonfinite_loss": None, "history": history, "gradients": _gradients(False)},
        metrics={"train": train, "test": test}, checks=checks,
        curves={"test": {"scatter": {"y_true": [_r(v) for v in y_true], "y_pred": [_r(v) for v in y_pred]},
                         "residuals": {"bin_edges": [_r(v) for v in edges], "counts": [int(c) for c in counts]}}},
        config=_config("house-prices-regression", "regression"), timing=_timing(),
    )


def hostile_names() -> Report:
    """Class, check and report names full of markup and special characters."""
    base = multiclass(classes=[XSS_CLASS, "a|b", "$x$ & <y>"], name=f"{XSS_CLASS} report")
    evil = _check(f"{XSS_CLASS}", f"Check about {XSS_CLASS}", "data", "fail", "error", 0.5, 0.1, False,
                  f"class {XSS_CLASS} has 'quotes' \"double\" and a | pipe ]]> <![CDATA[ x",
                  {XSS_CLASS: f"value {XSS_CLASS}", "nested": {"k": [XSS_CLASS, 1, None]}})
    return Report(
        name=base.name, task=base.task, environment=base.environment, data=base.data, model=base.model,
        training=base.training, metrics=base.metrics, checks=base.checks + (evil,), curves=base.curves,
        config=dict(base.config, name=base.name), timing=base.timing,
    )


def many_checks(count: int = 5000) -> Report:
    """A report with thousands of checks (Markdown size cap, table truncation)."""
    base = failing_binary()
    extra = tuple(
        _check(f"synthetic_check_{i:05d}", f"Synthetic check number {i} with a long title | pipe", "performance",
               ("fail", "warn", "pass", "skip")[i % 4], "error", i / count, 0.5, True,
               "a long message " + "x" * 150 + f" <{i}> & more")
        for i in range(count)
    )
    return Report(name="many-checks", task="binary", environment=base.environment, data=base.data, model=base.model,
                  training=base.training, metrics=base.metrics, checks=extra, curves=base.curves, config=base.config,
                  timing=base.timing)


def cached(name: str) -> Report:
    """The same Report object for a fixture name, so renders of it can share the HTML cache."""
    if name not in _CACHED:
        _CACHED[name] = ALL[name]()
    return _CACHED[name]


_CACHED: dict[str, Report] = {}

ALL = {
    "passing_binary": passing_binary,
    "failing_binary": failing_binary,
    "multiclass": multiclass,
    "regression": regression,
    "hostile_names": hostile_names,
}
