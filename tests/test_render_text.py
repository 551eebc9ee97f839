"""results.json, junit.xml and summary.md: determinism, escaping, XSD validity and size caps."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

import report_fixtures as F
from reportgen.render import RENDERERS, RenderOptions
from reportgen.report import Report

XSD = Path(__file__).parent / "data" / "junit-jenkins.xsd"
OPTIONS = RenderOptions()


def render(fmt: str, report: Report) -> bytes:
    return RENDERERS[fmt].render(report, OPTIONS)


def test_registry_names_every_format_and_file() -> None:
    assert {f: r.filename for f, r in RENDERERS.items()} == {
        "html": "report.html", "pdf": "report.pdf", "json": "results.json", "junit": "junit.xml", "md": "summary.md",
    }
    assert all(r.format == f for f, r in RENDERERS.items())


@pytest.mark.parametrize("name", sorted(F.ALL))
def test_json_is_the_report_document_and_round_trips(name: str) -> None:
    report = F.ALL[name]()
    data = render("json", report)
    assert data == render("json", report)
    assert data.endswith(b"}\n")
    document = json.loads(data)
    assert document == json.loads(json.dumps(report.document()))
    assert document["status"] == report.status
    again = render("json", Report.from_document(document))
    assert again == data


def test_non_finite_numbers_become_null_in_results_json() -> None:
    report = F.passing_binary()
    document = report.document()
    damaged = Report(name=report.name, task=report.task, environment=report.environment, data=report.data,
                     model=report.model, training=report.training, metrics=report.metrics, checks=report.checks,
                     curves=report.curves, config=report.config,
                     timing={"load": float("nan"), "train": float("inf"), "evaluate": 1.5})
    written = json.loads(render("json", damaged))
    assert written["timing"] == {"load": None, "train": None, "evaluate": 1.5}
    assert written["metrics"] == document["metrics"]


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


@pytest.mark.parametrize("name", sorted(F.ALL))
def test_junit_validates_against_the_jenkins_schema(name: str, schema: xmlschema.XMLSchema) -> None:
    report = F.ALL[name]()
    data = render("junit", report)
    schema.validate(data.decode("utf-8"))
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    counts = report.status_counts()
    assert suite.get("name") == report.name
    assert int(suite.get("tests")) == len(report.checks) == len(suite.findall("testcase"))
    assert int(suite.get("failures")) == counts["fail"] == len(suite.findall("testcase/failure"))
    assert int(suite.get("errors")) == counts["error"] == len(suite.findall("testcase/error"))
    # WARN checks are written as skipped testcases so CI viewers do not show them green (README, junit.xml).
    assert int(suite.get("skipped")) == counts["skip"] + counts["warn"] == len(suite.findall("testcase/skipped"))
    assert float(suite.get("time")) == pytest.approx(sum(report.timing.values()), abs=1e-3)
    for case, check in zip(suite.findall("testcase"), report.checks):
        assert case.get("name") == check.id
        assert case.get("classname") == f"reportgen.{check.family}"


def test_junit_failure_carries_message_value_and_threshold() -> None:
    report = F.failing_binary()
    root = ET.fromstring(render("junit", report))
    case = root.find("testsuite/testcase[@name='minority_recall']")
    failure = case.find("failure")
    check = next(c for c in report.checks if c.id == "minority_recall")
    assert check.message in failure.get("message")
    assert "required ≥ 0.6" in failure.text and "value 0.010" in failure.text
    warn = root.find("testsuite/testcase[@name='calibration']")
    assert warn.find("failure") is None and "WARN" in warn.find("system-out").text
    assert warn.find("skipped").get("message").startswith("WARN: ")
    assert root.find("testsuite/testcase[@name='feature_target_leak']/error") is not None


def test_junit_escapes_hostile_names(schema: xmlschema.XMLSchema) -> None:
    report = F.hostile_names()
    data = render("junit", report)
    schema.validate(data.decode("utf-8"))
    assert b"<script>" not in data
    root = ET.fromstring(data)
    assert root.find("testsuite").get("name") == report.name
    names = [c.get("name") for c in root.iter("testcase")]
    assert F.XSS_CLASS in names
    failure = root.find(f"testsuite/testcase[@name='{F.XSS_CLASS}']/failure")
    assert "]]> <![CDATA[" in failure.get("message")


def test_markdown_has_verdict_gate_headline_and_blockers() -> None:
    report = F.failing_binary()
    md = render("md", report).decode("utf-8")
    assert "❌ FAIL" in md and "**Verdict: ❌ FAIL**" in md
    assert "| Status | Check | Value | Threshold | Message |" in md
    for check in report.checks:
        assert check.id.replace("_", "\\_") in md
    for blocker in report.blocking_checks():
        assert blocker.title.split(" (")[0] in md
    assert "Accuracy 0.950" in md
    assert "✅ PASS" in render("md", F.passing_binary()).decode("utf-8")
    lines = md.splitlines()
    first_row = lines.index("| --- | --- | ---: | ---: | --- |") + 1
    assert "ERROR" in lines[first_row]  # failures first


def test_markdown_escapes_table_and_html_characters() -> None:
    md = render("md", F.hostile_names()).decode("utf-8")
    assert "<script>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in md
    for line in md.splitlines():
        if line.startswith("| ") and "pipe" in line:
            cells = line.replace("\\|", "").split("|")
            assert len(cells) == 7  # five cells: no stray pipe split the row


def test_markdown_stays_under_github_limit_with_5000_checks() -> None:
    report = F.many_checks(5000)
    md = render("md", report).decode("utf-8")
    assert len(md) < 60_000
    assert "Table truncated" in md
    assert "more blocking checks" in md


def test_status_summary_counts_in_words_with_singular_warning() -> None:
    import dataclasses

    report = F.failing_binary()
    counts = report.status_counts()
    summary = report.status_summary()
    assert summary.startswith(f"{counts['fail']} failed, {counts['error']} crashed, ")
    one_warning = dataclasses.replace(report, checks=tuple(c for c in report.checks if c.status == "warn")[:1])
    assert one_warning.status_summary() == "0 failed, 0 crashed, 1 warning, 0 passed, 0 skipped"
    assert one_warning.status_summary(always=("fail", "pass")) == "0 failed, 1 warning, 0 passed"
    markdown = render("md", one_warning).decode("utf-8")
    assert "1 warning," in markdown and "1 warnings" not in markdown


def test_markdown_folds_passed_and_skipped_checks_away() -> None:
    report = F.failing_binary()
    md = render("md", report).decode("utf-8")
    visible, folded = md.split("<details>", 1)
    for check in report.checks:
        row = f"<br>{check.id.replace('_', chr(92) + '_')} |"
        assert row in (visible if check.status in ("fail", "error", "warn") else folded), check.id
    assert folded.index("</summary>") < folded.index("| Status |") < folded.index("</details>")
    counts = report.status_counts()
    assert f"<summary>{counts['pass']} passed" in folded
    import dataclasses

    clean = F.passing_binary()
    clean = dataclasses.replace(clean, checks=tuple(c for c in clean.checks if c.status in ("pass", "skip")))
    passing = render("md", clean).decode("utf-8")
    assert "Nothing failed, crashed or warned." in passing and "<details><summary>" in passing
