"""write_reports: every format lands together, or nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import report_fixtures as F
from reportgen.errors import InputError, RunError
from reportgen.output import write_reports

TEXT_FORMATS = ["json", "junit", "md", "html"]


def test_writes_requested_files(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    paths = write_reports(F.cached("multiclass"), out, TEXT_FORMATS)
    assert [p.name for p in paths] == ["results.json", "junit.xml", "summary.md", "report.html"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no staging leftovers
    assert json.loads((out / "results.json").read_text())["name"] == "iris-like-multiclass"


def test_broken_template_leaves_no_files(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("{% if %}broken", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(RunError) as caught:
        write_reports(F.cached("multiclass"), out, ["json", "md", "html"], template_dir=templates)
    message = str(caught.value)
    assert "\n" not in message and "report.html" in message
    assert not out.exists() or list(out.iterdir()) == []


def test_failure_keeps_previous_reports_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_reports(F.cached("multiclass"), out, ["json", "md"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("{{ r.no_such_field.deeper }}", encoding="utf-8")
    with pytest.raises(InputError):  # a custom template's mistake is bad input (exit 2)
        write_reports(F.cached("passing_binary"), out, ["json", "md", "html"], template_dir=templates)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_folder_in_the_way_is_refused_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("old")
    (out / "summary.md").mkdir()  # a folder where a file must go
    (out / "summary.md" / "keep").write_text("x")
    with pytest.raises(InputError, match=r"holds files reportgen did not write \(summary.md/\)"):
        write_reports(F.cached("multiclass"), out, ["json", "md", "junit"])
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "summary.md"]
    assert (out / "results.json").read_text() == "old"
    assert (out / "summary.md" / "keep").read_text() == "x"


def test_unknown_format_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="unknown report format 'docx'"):
        write_reports(F.cached("multiclass"), tmp_path / "out", ["docx"])
    assert not (tmp_path / "out").exists()
