"""Scanners for report text a reader sees: numbers outside the one rule, evidence keys without a label.

Used by tests/test_report_text.py and tests/test_samples.py on real runs.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from reportgen import numbers
from reportgen.render import view
from reportgen.vocabulary import SPLIT_ORDER

TOO_MANY_DECIMALS = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?![\w.])")
"""A decimal with more than three decimals (``0.07905``, ``0.9446``): measured values have three."""
RATIO_DECIMALS = re.compile(r"(?<![\w.])\d[\d,]*\.\d{2,} to 1\b")
"""An "n to 1" ratio with more than one decimal (``29.043 to 1``): ratios have one (``29.0 to 1``)."""
ZERO_WITH_DECIMALS = re.compile(r"(?<![\w.])-?0\.0+(?![\w.])")
"""``0.000``: a value that is exactly zero reads ``0``, a tiny one ``4.8×10⁻⁵``."""
FLATTENED = re.compile(r"[{}]|\[\]|\{\d+ keys\}|\b\d+ keys\b")
"""A dict or list printed as Python would: braces, ``[]``, ``{2 keys}``."""


def number_format_problems(text: str, names: Iterable[str] = ()) -> list[str]:
    """Numbers in ``text`` written outside reportgen.numbers' rules: raw scientific notation, more than
    three decimals, ``0.000``, a ratio with more than one decimal; each with some context.

    ``names`` (slice names such as ``s4 in [-0.03949, -0.002592)``, whose bin edges keep four
    significant digits like any name taken from the data) are left out of the scan.
    """
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "‹name›")
    problems = []
    for pattern in (numbers.RAW_SCIENTIFIC, TOO_MANY_DECIMALS, ZERO_WITH_DECIMALS, RATIO_DECIMALS):
        for match in pattern.finditer(text):
            start, end = max(0, match.start() - 40), match.end() + 20
            problems.append(f"{match.group()!r} in …{text[start:end]}…")
    return problems


def data_names(document: Mapping[str, Any]) -> set[str]:
    """Names that are data, not evidence keys: classes, splits, features and their one-hot parts, check ids."""
    data = document.get("data") or {}
    names = {str(c) for c in data.get("classes") or []} | set(SPLIT_ORDER) | {str(c["id"]) for c in document.get("checks") or []}
    for feature in data.get("features") or []:
        names.add(str(feature))
        names.update(str(feature).split("=", 1))
    names |= {f"{a}_in_{b}" for a in SPLIT_ORDER for b in SPLIT_ORDER}
    return names


def unlabelled_keys(evidence: Any, names: set[str], extra_names: Iterable[str] = ()) -> set[str]:
    """Every key of ``evidence`` (at any depth, in records and lists too) that has no human label.

    Keys that are data (``names``: classes, features, categories, ...) are values, not labels, and
    are skipped; their values are still walked.
    """
    names = names | set(extra_names)
    missing: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                if str(key) not in names and not view.has_label(key):
                    missing.add(str(key))
                walk(inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                walk(inner)

    walk(evidence)
    return missing


def slice_names(checks: Iterable[Any]) -> set[str]:
    """The names of the slices a report's slice_performance check shows (data labels, like class names)."""
    return {str(row.get("slice")) for check in checks if check.id == "slice_performance"
            for row in (check.evidence or {}).get("worst_slices") or [] if isinstance(row, Mapping) and row.get("slice")}


def shown_evidence_problems(shown: Mapping[str, Any] | None, evidence_keys: set[str], names: Iterable[str] = ()) -> list[str]:
    """Text of one check's evidence view that reads as machine output: flattened dicts or lists, an
    evidence key (snake_case) in a cell, numbers outside the rule, a label that is not from the table."""
    if not shown:
        return []
    known_labels = set(view.EVIDENCE_LABELS.values()) | {view.evidence_label(k) for k in evidence_keys if view.has_label(k)}
    texts: list[str] = []
    labels: list[str] = []

    columns: list[str] = []

    def table_texts(table: Mapping[str, Any] | None) -> None:
        if not table:
            return
        columns.extend(str(c["label"]) for c in table.get("columns") or [] if c.get("label"))
        for row in table.get("rows") or []:
            texts.extend(str(c["text"]) for c in row.get("cells") or [])

    for item in [*(shown.get("items") or []), *(shown.get("extra") or [])]:
        if item.get("key") not in ("…",):
            labels.append(str(item.get("label") or ""))
        texts.append(str(item.get("value") or ""))
        table_texts(item.get("table"))
    for row in shown.get("rows") or []:
        texts.extend(str(v) for v in row.values() if isinstance(v, str))
    problems = []
    snake_keys = [k for k in evidence_keys if "_" in k]
    for text in texts:
        if FLATTENED.search(text):
            problems.append(f"flattened value {text!r}")
        problems += [f"evidence key {k!r} in {text!r}" for k in snake_keys if re.search(rf"\b{re.escape(k)}\b", text)]
        problems += number_format_problems(text, names)
    for label in labels:
        derived = (label.startswith("By ") and label[3:].capitalize() in known_labels) or label.split(" (")[0] in known_labels
        if label not in known_labels and not derived:
            problems.append(f"label {label!r} is not from the label table")
    problems += [f"column {label!r} reads as a key" for label in columns if "_" in label]
    return problems


def all_keys(evidence: Any) -> set[str]:
    """Every key of a nested evidence value."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                found.add(str(key))
                walk(inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                walk(inner)

    walk(evidence)
    return found


def evidence_problems(report: Any) -> dict[str, list[str]]:
    """Per check id of a ``Report``: evidence keys without a label and evidence text that reads as machine output."""
    names = data_names(report.document())
    names |= {str(k) for c in report.checks for k in (c.evidence or {}).get("train_categories") or {}}
    slices = slice_names(report.checks)
    classes = [str(c) for c in report.data.get("classes") or []]
    found: dict[str, list[str]] = {}
    for check in report.checks:
        # the category values of categorical features, as feature_drift's rows key their shares by them
        categories = {str(k) for row in (check.evidence or {}).get("features") or [] if isinstance(row, Mapping)
                      for side in ("reference", "current") for k in (row.get(side) or {}) if not str(k).startswith("p")}
        problems = [f"no label for the evidence key {k!r}" for k in sorted(unlabelled_keys(check.evidence, names, categories))]
        problems += shown_evidence_problems(view.evidence_view(check, classes), all_keys(check.evidence) - names - categories, slices)
        if problems:
            found[check.id] = problems
    return found
