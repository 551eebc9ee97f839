"""Same config and seed: identical results.json (but for created_at and timing) and HTML (but for its timestamp line)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from reportgen.config import load_config
from reportgen.pipeline import run

from conftest import cancer_config, write_config


def without_clock(document: dict) -> dict:
    """results.json without the fields that depend on the wall clock."""
    document = dict(document)
    document.pop("timing")
    document["environment"] = {k: v for k, v in document["environment"].items() if k != "created_at"}
    return document


def test_two_runs_give_identical_results_and_html(tmp_path: Path, cancer_csv: Path):
    path = write_config(tmp_path, cancer_config(cancer_csv))
    first = run(load_config(path), out_dir=tmp_path / "a", formats=["json", "html", "md"])
    second = run(load_config(path), out_dir=tmp_path / "b", formats=["json", "html", "md"])
    assert first.report.checks == second.report.checks
    a = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "b" / "results.json").read_text(encoding="utf-8"))
    assert json.dumps(without_clock(a)) == json.dumps(without_clock(b))  # key order included
    html_a = (tmp_path / "a" / "report.html").read_text(encoding="utf-8").splitlines()
    html_b = (tmp_path / "b" / "report.html").read_text(encoding="utf-8").splitlines()
    differing = [i for i, (x, y) in enumerate(zip(html_a, html_b)) if x != y]
    assert len(html_a) == len(html_b)
    assert len(differing) <= 1, [html_a[i][:120] for i in differing]
    assert all('class="generated"' in html_a[i] for i in differing)
    assert (tmp_path / "a" / "summary.md").read_bytes() == (tmp_path / "b" / "summary.md").read_bytes()


def test_rendering_results_json_reproduces_the_runs_report(tmp_path: Path, cancer_csv: Path):
    """results.json holds everything: re-rendering it gives the run's HTML and Markdown byte for byte."""
    from reportgen.cli import main

    path = write_config(tmp_path, cancer_config(cancer_csv))
    run(load_config(path), out_dir=tmp_path / "run", formats=["json", "html", "md"])
    assert main(["render", str(tmp_path / "run" / "results.json"), "--out", str(tmp_path / "again"),
                 "--format", "json,html,md"], out=io.StringIO(), err=io.StringIO()) == 0
    for name in ("results.json", "report.html", "summary.md"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
