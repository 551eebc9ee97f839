"""The gate and checks that could not measure; settings of checks that do not apply; compare_to folders ordered by time.

A blocking check that skips because the data did not allow a measurement is listed beside the
verdict on every surface and fails a strict gate; a check that does not apply stays a quiet skip.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import re
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import REPO, SAMPLES, cancer_config, write_config
from reportgen.checks.base import registry
from reportgen.cli import main
from reportgen.errors import ResultsError
from reportgen.gate import gate_overrides, not_measured_blocking, strict_result
from reportgen.render import RENDERERS, RenderOptions
from reportgen.report import Report, load_results
from reportgen.timestamps import parse_created_at


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def specs():
    return [c.spec for c in registry.all()]


# --- every skip in the built-in checks says which kind it is ------------------------------------

def test_every_skip_of_a_builtin_check_names_its_kind():
    """Each Finding.skip in reportgen/checks passes NOT_APPLICABLE or NOT_MEASURED, so none falls to the default by accident."""
    unnamed = []
    for path in sorted((REPO / "reportgen" / "checks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "skip"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "Finding"):
                kinds = [a.id for a in node.args[1:] if isinstance(a, ast.Name)]
                if kinds not in (["NOT_APPLICABLE"], ["NOT_MEASURED"]):
                    unnamed.append(f"{path.name}:{node.lineno}")
    assert not unnamed, unnamed


# --- breast cancer with a test file that holds no malignant sample -------------------------------

@pytest.fixture(scope="module")
def cancer_files(tmp_path_factory, breast_cancer_frame):
    """Train on 3/4 of the rows; a clean test file (both classes) and a planted one (benign rows only)."""
    folder = tmp_path_factory.mktemp("unmeasured")
    frame = breast_cancer_frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = int(len(frame) * 0.75)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    test[test["diagnosis"] == "benign"].to_csv(folder / "test_benign.csv", index=False)

    def config(test_file: str, name: str, checks: dict | None = None) -> Path:
        document = cancer_config(folder / "train.csv", **({"checks": checks} if checks else {}))
        data = document["data"]
        del data["path"], data["split"]
        data.update({"train": "train.csv", "test": test_file})
        document["report"] = {"formats": ["json", "junit", "md"]}
        return write_config(folder, document, name)

    # data_integrity blocks a single-class test split by default; a config that lowers it to a warning
    # (listed as a relaxation) leaves the gate to pass while minority_recall and others cannot measure
    return (config("test.csv", "clean.yaml"),
            config("test_benign.csv", "planted.yaml", {"data_integrity": {"severity": "warning"}}))


@pytest.fixture(scope="module")
def planted_run(cancer_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("planted") / "r"
    code, console, err = run_cli("run", str(cancer_files[1]), "--out", str(out), "--quiet")
    return code, console, err, out


def test_a_blocking_check_that_could_not_measure_is_listed_wherever_the_verdict_is(planted_run):
    code, console, err, out = planted_run
    assert code == 0, err  # not strict: listed, but the gate still passes
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    checks = {c["id"]: c for c in document["checks"]}
    # the data, not the config, kept these from measuring: the test file has no malignant sample
    assert checks["minority_recall"]["status"] == "skip" and checks["minority_recall"]["skip_kind"] == "not_measured"
    assert "has no samples of 'malignant'" in checks["minority_recall"]["message"]
    assert checks["baseline_comparison"]["skip_kind"] == "not_measured"
    assert checks["release_comparison"]["skip_kind"] == "not_applicable"  # no --compare-to: does not apply
    assert all("skip_kind" not in c for c in document["checks"] if c["status"] != "skip")
    expected = [c["id"] for c in document["checks"]
                if c.get("skip_kind") == "not_measured" and c["severity"] == "error"]
    assert "minority_recall" in expected and "baseline_comparison" in expected
    assert all(checks[i]["severity"] == "error" for i in expected)
    gate = document["gate"]
    assert gate["verdict"] == "pass" and gate["not_measured"] == expected
    # console
    assert re.search(r"NOT MEASURED minority_recall \(blocking; the verdict does not cover it\): .*has no samples of 'malignant'", console)
    # summary.md
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert f"**Not measured: {len(expected)} blocking checks skipped because the data did not allow a measurement" in summary
    assert "- minority\\_recall not measured: " in summary
    # junit.xml
    props = {p.get("name"): p.get("value") for p in ET.parse(out / "junit.xml").iter("property")}
    assert props["gate_not_measured"] == str(len(expected))
    assert props["gate_not_measured_1"].startswith(f"{expected[0]} not measured: ")
    # page 1 of the PDF and the HTML's first screen
    report = Report.from_document(document)
    pdf = RENDERERS["pdf"].render(report, RenderOptions())
    first = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split()).replace("- ", "-")
    assert (f"Not measured: {len(expected)} blocking checks the data did not allow to measure, "
            f"so the verdict does not cover them: {', '.join(expected)}.") in first
    assert f"{len(expected) + 2} could not measure (the data did not allow it): " in first  # + 2 non-blocking ones
    assert "Minority-class recall minority_recall" in first.split("could not measure (the data did not allow it)")[1]
    # the reasons follow in "Skipped checks"
    assert "Could not measure: the test split has no samples of 'malignant'" in " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    ran = [c["title"] for c in document["checks"] if c["status"] != "skip"]
    assert all(title in first for title in ran), [t for t in ran if t not in first]  # page 1 still holds the gate table
    skipped = [c for c in document["checks"] if c["status"] == "skip"]
    unmeasured = sum(c.get("skip_kind") == "not_measured" for c in skipped)
    assert f"{len(skipped) - unmeasured} did not apply, {unmeasured} could not measure" in first
    html = RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")
    screen = unescape(html[html.index('<section class="summary"'):html.index('<section class="major" id="checks"')])
    assert "Not measured:" in screen and "(the test split has no samples of 'malignant')" in screen


def test_render_of_a_run_with_an_unmeasured_check_is_byte_identical(planted_run, tmp_path: Path):
    _, _, _, out = planted_run
    code, _, err = run_cli("render", str(out / "results.json"), "--out", str(tmp_path / "again"), "--format", "json,md,junit")
    assert code == 0, err
    for name in ("results.json", "summary.md", "junit.xml"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_strict_fails_on_a_blocking_check_that_could_not_measure(cancer_files, tmp_path: Path):
    code, console, _ = run_cli("run", str(cancer_files[1]), "--out", str(tmp_path / "r"), "--quiet", "--strict")
    assert code == 1
    assert re.search(r"FAIL gate_strict: The strict gate refuses 1 relaxation of the default gate: data_integrity.severity "
                     r"lowered from error to warning, and \d+ blocking checks that could not measure: "
                     r".*minority_recall not measured: the test split has no samples of 'malignant'", console)
    document = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    gate = document["gate"]
    assert gate["verdict"] == "fail" and gate["blocking"] == ["gate_strict"] and "minority_recall" in gate["not_measured"]
    # without any relaxation, the unmeasured checks alone make the strict refusal (the pure function on the run's results)
    report = Report.from_document(document)
    refusal = strict_result((), not_measured_blocking(report.checks))
    assert refusal is not None and refusal.status == "fail" and refusal.severity == "error"
    assert refusal.message.startswith(f"The strict gate refuses {len(gate['not_measured'])} blocking checks that could not measure: ")
    assert refusal.evidence == {"relaxations": [], "not_measured": gate["not_measured"]}
    assert strict_result((), ()) is None


def test_a_clean_test_split_lists_nothing_and_passes_strict(cancer_files, tmp_path: Path):
    code, console, err = run_cli("run", str(cancer_files[0]), "--out", str(tmp_path / "r"), "--quiet", "--strict")
    assert code == 0, console + err
    document = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    assert document["gate"]["not_measured"] == []
    assert {c["id"]: (c.get("skip_kind"), c["severity"]) for c in document["checks"] if c["status"] == "skip"} == {
        "unseen_categories": ("not_applicable", "warning"), "group_fairness": ("not_applicable", "warning"),
        # too few positives per slice: not measured, but a warning-severity check is not listed beside the verdict
        "slice_performance": ("not_measured", "warning"),
        "release_comparison": ("not_applicable", "error")}
    assert "NOT MEASURED" not in console
    assert "Not measured" not in (tmp_path / "r" / "summary.md").read_text(encoding="utf-8")
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "r" / "junit.xml").iter("property")}
    assert props["gate_not_measured"] == "0"


def test_a_results_json_of_an_earlier_version_loads_and_renders_as_before(planted_run, tmp_path: Path):
    """Without skip_kind and gate.not_measured, skips read as 'did not apply' and nothing is listed beside the verdict."""
    _, _, _, out = planted_run
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for check in document["checks"]:
        check.pop("skip_kind", None)
    del document["gate"]["not_measured"]
    path = tmp_path / "old" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document), encoding="utf-8")
    report = load_results(path)
    assert all(c.skip_kind is None and not c.not_measured for c in report.checks)
    summary = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    assert "Not measured" not in summary
    html = RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")
    skipped = sum(c.status == "skip" for c in report.checks)
    assert f"{skipped} did not apply:" in html and "could not measure" not in html
    code, _, err = run_cli("render", str(path), "--out", str(tmp_path / "again"), "--format", "json")
    assert code == 0, err
    assert json.loads((tmp_path / "again" / "results.json").read_text(encoding="utf-8"))["checks"] == document["checks"]


def test_a_skip_kind_on_a_check_that_did_not_skip_is_refused(planted_run, tmp_path: Path):
    _, _, _, out = planted_run
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    passing = next(c for c in document["checks"] if c["status"] == "pass")
    passing["skip_kind"] = "not_measured"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ResultsError, match="skip_kind"):
        load_results(path)


# --- settings of a check that does not apply change nothing --------------------------------------

def test_settings_of_a_check_that_does_not_apply_are_no_override():
    config = {"minority_recall": {"enabled": False}, "baseline_comparison": {"min": 0.0}, "overfit_gap": {"max": 0.5}}
    regression = gate_overrides(specs(), config, "regression", True)
    # minority_recall is a classification check: disabling it on a regression task changes nothing
    assert [(o.check, o.effect) for o in regression] == [("baseline_comparison", "relaxed"), ("overfit_gap", "relaxed")]
    binary = gate_overrides(specs(), config, "binary", True)
    assert ("minority_recall", "disabled") in [(o.check, o.effect) for o in binary]
    assert strict_result(gate_overrides(specs(), {"minority_recall": {"enabled": False}}, "regression", True)) is None
    # a check that needs a training run changes nothing in an evaluate-only run
    needs_training = next(s for s in specs() if s.needs_training and "binary" in s.tasks)
    trained = gate_overrides(specs(), {needs_training.id: {"enabled": False}}, "binary", True)
    assert [o.effect for o in trained] == ["disabled"]
    assert gate_overrides(specs(), {needs_training.id: {"enabled": False}}, "binary", False) == ()


def test_strict_accepts_disabling_a_classification_check_on_a_regression_run(tmp_path: Path):
    code, console, err = run_cli(
        "run", str(SAMPLES / "auto_regression.yaml"), "--out", str(tmp_path / "r"), "--quiet", "--strict",
        "--format", "json", "--set", "checks.minority_recall.enabled=false", "--set", "checks.calibration.enabled=false")
    assert code == 0, console + err
    gate = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))["gate"]
    assert gate["overrides"] == [] and gate["strict"] is True and gate["verdict"] == "pass"
    # the same setting on a task it applies to is still a relaxation
    code, console, _ = run_cli("run", str(SAMPLES / "auto_regression.yaml"), "--out", str(tmp_path / "s"), "--quiet",
                               "--strict", "--format", "json", "--set", "checks.overfit_gap.enabled=false")
    assert code == 1 and "overfit_gap disabled" in console


# --- compare_to folders are ordered by the instant of created_at ---------------------------------

@pytest.mark.parametrize("text, instant", [
    ("2026-12-02T03:44:00Z", "2026-12-02T03:44:00+00:00"),
    ("2026-12-02T04:44:00+01:00", "2026-12-02T03:44:00+00:00"),
    ("2026-12-01T22:14:00.500-05:30", "2026-12-02T03:44:00.500000+00:00"),
    ("2026-12-02 05:44:00+0200", "2026-12-02T03:44:00+00:00"),
    ("2026-12-02T03:44:00.123456789z", "2026-12-02T03:44:00.123456+00:00"),
])
def test_created_at_is_read_as_an_instant(text: str, instant: str):
    from datetime import datetime

    assert parse_created_at(text) == datetime.fromisoformat(instant)


@pytest.mark.parametrize("text, reason", [
    ("2026-12-02T03:44:00", "has no UTC offset"), ("yesterday", "is not an ISO 8601 time"),
    ("20261202T034400Z", "is not an ISO 8601 time"), ("2026-13-02T03:44:00Z", "is not a valid time"),
    ("2026-12-02T03:44:00+24:00", "is not a valid time"), ("", "is missing"), (None, "is missing"),
])
def test_created_at_without_an_instant_is_refused(text, reason: str):
    with pytest.raises(ValueError, match=reason):
        parse_created_at(text)


def test_a_folder_of_runs_picks_the_newest_instant_not_the_largest_text(planted_run, tmp_path: Path):
    from reportgen.checks.comparison_checks import scan_runs

    _, _, _, out = planted_run
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["status"] == "pass"
    stamps = {
        "a_utc": "2026-12-02T03:00:00Z",              # 03:00 UTC
        "b_offset": "2026-12-02T04:30:00+02:00",      # 02:30 UTC: the largest text, the oldest instant
        "c_fraction": "2026-12-02T03:00:00.5+00:00",  # 03:00:00.5 UTC: the newest
        "d_naive": "2026-12-02T09:00:00",             # no offset: cannot be ordered
        "e_garbled": "2 December 2026",
    }
    runs = tmp_path / "runs"
    for name, stamp in stamps.items():
        copied = copy.deepcopy(document)
        copied["environment"]["created_at"] = stamp
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(copied), encoding="utf-8")
    scan = scan_runs(runs)
    assert scan.chosen.parent.name == "c_fraction"
    reasons = {Path(p).parent.name: why for p, why in scan.skipped}
    assert set(reasons) == {"d_naive", "e_garbled"}
    assert "has no UTC offset" in reasons["d_naive"] and "is not an ISO 8601 time" in reasons["e_garbled"]
    assert all(why.endswith("it cannot be ordered by time") for why in reasons.values())
    # with the newest gone, the 03:00Z run is newer than the '04:30+02:00' one
    (runs / "c_fraction" / "results.json").unlink()
    assert scan_runs(runs).chosen.parent.name == "a_utc"
