"""A plug-in check's nested evidence (records inside lists inside records) reads as text in every format.

The plug-in below measures, on the real breast cancer test split, the rows of each class the model gets
wrong and records them as a list of records holding lists of records. The HTML and PDF show those values
written out (never "1 entries"), and summary.md names the check with its message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cancer_config, write_config

from reportgen.render.view import _compact

PLUGIN = '''
import numpy as np
from reportgen import Check, CheckSpec, Finding


class MissedByClass(Check):
    spec = CheckSpec(
        id="missed_by_class", title="Missed rows by class", family="performance",
        detects="Rows of each class the model gets wrong.", how_to_read="One record per class.",
        default_severity="warning", tasks=frozenset({"binary"}),
    )

    def run(self, ctx, settings):
        pred = ctx.predictions["test"]
        y_true, y_pred = np.asarray(pred.y_true), np.asarray(pred.y_pred)
        groups = []
        for index, name in enumerate(ctx.classes):
            rows = np.flatnonzero((y_true == index) & (y_pred != index))
            groups.append({"class_name": name, "missed": int(rows.size),
                           "first_rows": [{"row": int(r), "predicted": ctx.classes[int(y_pred[r])]} for r in rows[:2]],
                           "detail": {"share": {"of_class": float(rows.size / max(1, (y_true == index).sum()))}}})
        return Finding("concern", sum(g["missed"] for g in groups), "nested evidence", {"groups": groups})
'''


@pytest.mark.slow
def test_nested_plugin_evidence_is_written_out_in_html_pdf_and_named_in_summary(tmp_path: Path, cancer_csv: Path):
    from pypdf import PdfReader

    (tmp_path / "nested_check.py").write_text(PLUGIN, encoding="utf-8")
    document = cancer_config(cancer_csv, plugins=["nested_check.py:MissedByClass"])
    document["training"] = {"epochs": 1, "lr": 0.001}  # a weak model: it misses rows of both classes
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "reportgen", "run", str(write_config(tmp_path, document)), "--out", str(out),
                           "--quiet", "--format", "html,pdf,md,json"], capture_output=True, text=True, cwd=REPO, timeout=300,
                          check=False)
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    evidence = next(c for c in results["checks"] if c["id"] == "missed_by_class")["evidence"]
    first = next(g for g in evidence["groups"] if g["first_rows"])
    row = first["first_rows"][0]

    html = (out / "report.html").read_text(encoding="utf-8")
    pdf = " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(str(out / "report.pdf")).pages)
    for page in (html, pdf):
        assert "entries (in results.json)" not in page and "1 entries" not in page
        assert f"row: {row['row']}" in page.replace("Row: ", "row: ")  # the record inside the list inside the evidence
        assert row["predicted"] in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "missed_by_class" in summary or "Missed rows by class" in summary
    assert "entries (in results.json)" not in summary


@pytest.mark.parametrize("value, expected", [
    ({"a": [{"b": 1}]}, "a: (b: 1)"),
    ({"g": {"a": {"b": 1, "c": 2}, "d": 3}}, "g: a: (b: 1 · c: 2) · d: 3"),  # the grouping stays visible
    ([{"x": 1, "y": 2}, {"x": 3, "y": 4}], "(x: 1 · y: 2), (x: 3 · y: 4)"),
    ({"x": {"y": {"z": 1}}}, "x: y: (z: 1)"),
    ([[[[[{"a": 1}]]]]], "1 entry (in results.json)"),  # beyond four levels: one pointer, in good English
    (list(range(100)), "100 values (in results.json)"),
])
def test_compact_writes_nested_values_out_and_points_only_past_four_levels(value, expected):
    assert _compact(value) == expected
