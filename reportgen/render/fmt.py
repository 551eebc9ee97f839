"""Formatting shared by the text renderers: numbers, thresholds, statuses, metric names."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from reportgen.checks.base import CheckResult
from reportgen.types import SPLIT_ORDER

STATUS_WORD = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
STATUS_ICON = {"pass": "✔", "warn": "▲", "fail": "✖", "error": "⚠", "skip": "–"}

METRIC_LABELS = {
    "n": "Samples",
    "loss": "Loss",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "f1_weighted": "F1 (weighted)",
    "mcc": "Matthews corr. (MCC)",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "mse": "MSE",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "target_mean": "Target mean",
    "target_std": "Target std",
}

HEADLINE_METRICS = {
    "binary": ("accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "mcc", "log_loss"),
    "regression": ("rmse", "mae", "r2", "target_std"),
}

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def is_number(value: Any) -> bool:
    """True for ints and floats, not bools."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def num(value: Any, digits: int = 3) -> str:
    """Format a metric value compactly; None (and non-finite) as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value == 0:
            return "0"
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        if abs(value) < 10 ** (-digits):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return clip(str(value), 80)


def pct(value: Any) -> str:
    """Format a share in [0, 1] as a percentage."""
    if not is_number(value) or not math.isfinite(value):
        return "—"
    return f"{value:.1%}"


def direction(higher_is_better: bool | None) -> str:
    """The comparison a value must satisfy: ≥ when higher is better, ≤ otherwise."""
    if higher_is_better is None:
        return ""
    return "≥" if higher_is_better else "≤"


def threshold_text(check: CheckResult) -> str:
    """'≥ 0.800' / '≤ 0.050', or an em dash for checks without a threshold."""
    if check.threshold is None:
        return "—"
    sign = direction(check.higher_is_better)
    return f"{sign} {num(check.threshold)}".strip()


def value_text(check: CheckResult) -> str:
    """The check's measured value."""
    return num(check.value)


def comparison_text(check: CheckResult) -> str:
    """'value 0.712, required ≥ 0.800' for the plain-text formats."""
    text = f"value {value_text(check)}"
    if check.threshold is not None:
        text += f", required {threshold_text(check)}"
    return text


def metric_label(key: str) -> str:
    """Human name of a metric key."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


def headline_metrics(task: str, metrics: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(key, label, value) of the headline metrics of one split, skipping missing ones."""
    rows = []
    for key in HEADLINE_METRICS.get(task, ()):
        value = metrics.get(key)
        if is_number(value):
            rows.append((key, metric_label(key), value))
    return rows


def one_line(text: Any, limit: int = 300) -> str:
    """Collapse whitespace to one line and clip to ``limit`` characters."""
    return clip(" ".join(str(text).split()), limit)


def clip(text: str, limit: int) -> str:
    """Clip ``text`` to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def xml_safe(text: Any) -> str:
    """Drop the characters XML 1.0 cannot carry (control characters)."""
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def split_order(splits: Any) -> list[str]:
    """train, val, test first, then any other split names in their given order."""
    names = list(splits)
    known = [s for s in SPLIT_ORDER if s in names]
    return known + [s for s in names if s not in known]
