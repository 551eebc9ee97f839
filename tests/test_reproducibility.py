"""Same config and seed: identical results.json (but for created_at and timing) and HTML (but for its timestamp line)."""

from __future__ import annotations

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
    assert json.dumps(without_clock(a), sort_keys=True) == json.dumps(without_clock(b), sort_keys=True)
    html_a = (tmp_path / "a" / "report.html").read_text(encoding="utf-8").splitlines()
    html_b = (tmp_path / "b" / "report.html").read_text(encoding="utf-8").splitlines()
    differing = [i for i, (x, y) in enumerate(zip(html_a, html_b)) if x != y]
    assert len(html_a) == len(html_b)
    assert len(differing) <= 1, [html_a[i][:120] for i in differing]
    assert all('class="generated"' in html_a[i] for i in differing)
    assert (tmp_path / "a" / "summary.md").read_bytes() == (tmp_path / "b" / "summary.md").read_bytes()
