"""Every bundled sample runs end to end with every format, with the verdict sample_configs/README.md promises."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from conftest import SAMPLES
from pdf_layout import assert_reads_well, page_of
from reportgen.cli import main

EXPECTED_EXIT = {
    "credit_default.yaml": 1,  # the naive model misses two thirds of the defaults: the gate fails on purpose
    "credit_default_balanced.yaml": 0,
    "digits_cnn.yaml": 0,
    "auto_regression.yaml": 0,
}

MAX_PAGES = {  # A4 pages of report.pdf: 17, 16, 16 and 11 when written, with room for a longer page 1
    "credit_default.yaml": 19,
    "credit_default_balanced.yaml": 18,
    "digits_cnn.yaml": 18,
    "auto_regression.yaml": 13,
}


def test_every_sample_is_listed():
    assert {p.name for p in SAMPLES.glob("*.yaml")} == set(EXPECTED_EXIT)


@pytest.mark.slow
@pytest.mark.parametrize("sample", sorted(EXPECTED_EXIT))
def test_sample_runs_with_every_format(sample: str, tmp_path: Path):
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(SAMPLES / sample), "--out", str(tmp_path / "report"), "--quiet"], out=out, err=err)
    assert code == EXPECTED_EXIT[sample], err.getvalue()
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.html", "report.pdf", "results.json", "junit.xml", "summary.md"} <= written
    assert err.getvalue() == ""
    # page 1 of the PDF holds the verdict and every check that ran (the whole gate table)
    from pypdf import PdfReader

    page_one = re.sub(r"\s+", " ", PdfReader(str(tmp_path / "report" / "report.pdf")).pages[0].extract_text()).replace("- ", "-")
    checks = json.loads((tmp_path / "report" / "results.json").read_text(encoding="utf-8"))["checks"]
    missing = [c["title"] for c in checks if c["status"] != "skip" and c["title"] not in page_one]
    assert not missing, missing
    # ... and the line naming the checks that did not apply or could not measure, under the table, not spilled onto page 2
    skipped = [c for c in checks if c["status"] == "skip"]
    unmeasured = [c for c in skipped if c.get("skip_kind") == "not_measured"]
    inapplicable = [c for c in skipped if c.get("skip_kind") != "not_measured"]
    if skipped:
        head = (f"{len(inapplicable)} did not apply" if inapplicable else f"{len(unmeasured)} could not measure")
        assert f"SKIP {head}" in page_one, page_one[-600:]
        assert all(c["id"] in page_one.split(f"SKIP {head}", 1)[1] for c in skipped), page_one[-600:]
    if unmeasured:
        assert f"{len(unmeasured)} could not measure (the data did not allow it)" in page_one, page_one[-600:]
    ran = len(checks) - len(skipped)
    assert f"{len(checks)} checks: {ran} ran (" in page_one and " skipped" not in page_one, page_one[:600]
    # a blocking check that could not measure is named beside the verdict
    blocking_unmeasured = [c["id"] for c in unmeasured if c["severity"] == "error"]
    if blocking_unmeasured:
        assert f"so the verdict does not cover {'them' if len(blocking_unmeasured) > 1 else 'it'}: " in page_one, page_one[:900]
    # the text a reader sees follows the one number rule and shows evidence in words (tests/text_scan.py)
    from reportgen.report import load_results
    from text_scan import evidence_problems, number_format_problems, slice_names

    report = load_results(tmp_path / "report" / "results.json")
    slices = slice_names(report.checks)
    texts = {"page 1 of the PDF": page_one, "console": out.getvalue(),
             "summary.md": (tmp_path / "report" / "summary.md").read_text(encoding="utf-8").replace("\\", ""),
             "junit.xml": (tmp_path / "report" / "junit.xml").read_text(encoding="utf-8"),
             **{f"message of {c.id}": c.message for c in report.checks}}
    problems = {where: found for where, text in texts.items() if (found := number_format_problems(text, slices))}
    assert not problems, problems
    assert not evidence_problems(report), evidence_problems(report)
    # every page reads well: none near-empty or holding a line, the glossary whole, the page count bounded
    from reportgen.render import view

    terms = [term for term, _ in view.glossary(report)]
    pages = assert_reads_well((tmp_path / "report" / "report.pdf").read_bytes(), MAX_PAGES[sample], terms)
    if sample.startswith("credit_default"):  # ISLR Default: about 29 non-defaults to each default in train
        balance = next(c for c in report.checks if c.id == "class_imbalance")
        per_class = balance.evidence["per_class"]
        oracle = max(v["count"] for v in per_class.values()) / min(v["count"] for v in per_class.values())
        assert f"majority/minority ratio {oracle:.1f} to 1)" in balance.message, balance.message
    if sample.startswith("credit_default"):  # the accuracy paradox: the majority baseline is on the accuracy chart
        assert page_of(pages, "Accuracy per epoch") == page_of(pages, "always the majority class") != []
