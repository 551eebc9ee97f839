"""reportgen history over real runs: several seeds, one failing run, one run with a check disabled."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import REPO, cancer_config, write_config
from reportgen import history
from reportgen.cli import main
from reportgen.config import load_config
from reportgen.metrics import wilson_interval
from reportgen.pipeline import run

DAY = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)
FAILING = {"minority_recall": {"min": 0.999, "severity": "error"}}
"""A gate no model meets on this data: its run fails."""
PLAN = [  # (folder, day, seed, checks): folders named so that their order is not the time order
    ("run-e", 0, 0, {}),
    ("run-d", 1, 1, {}),
    ("run-c", 2, 2, FAILING),
    ("run-b", 3, 3, {"feature_drift": {"enabled": False}}),
    ("run-a", 4, 4, {}),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, breast_cancer_frame) -> Path:
    """Five real runs of one scheduled job (trained MLPs on breast cancer), one results.json each."""
    root = tmp_path_factory.mktemp("history")
    csv = root / "cancer.csv"
    breast_cancer_frame.to_csv(csv, index=False)
    for folder, day, seed, checks in PLAN:
        document = cancer_config(csv, seed=seed, training={"epochs": 8, "lr": 0.01})
        if checks:
            document["checks"] = checks
        config = write_config(root, document, f"{folder}.yaml")
        when = DAY + dt.timedelta(days=day)
        run(load_config(config), out_dir=root / "runs" / folder, formats=["json"], clock=lambda when=when: when)
    return root / "runs"


def _cli(*args: str) -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_history_orders_runs_by_time_and_gates_on_the_newest(runs, tmp_path):
    code, out, err = _cli("history", str(runs), "--out", str(tmp_path / "h"), "--format", "html,md,json")
    assert code == 0, err
    assert out.startswith("PASS: cancer: newest of 5 runs (2026-03-05T02:00:00")
    doc = json.loads((tmp_path / "h" / "history.json").read_text())
    assert doc["schema_version"] == 1 and doc["name"] == "cancer"
    assert [r["seed"] for r in doc["runs"]] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in doc["runs"]] == ["pass", "pass", "fail", "pass", "pass"]
    for run_doc, (folder, *_rest) in zip(doc["runs"], PLAN, strict=True):
        results = json.loads((runs / folder / "results.json").read_text())
        assert run_doc["created_at"] == results["environment"]["created_at"]
        assert run_doc["config_sha256"] == results["environment"]["config_sha256"]
        assert set(run_doc) >= {"created_at", "status", "seed", "config_sha256", "data_fingerprint", "metrics", "checks"}
        assert run_doc["checks"] == {c["id"]: c["status"] for c in results["checks"]}
        test = results["metrics"]["test"]
        assert run_doc["metrics"] == {k: test[k] for k in ("accuracy", "balanced_accuracy", "precision", "recall",
                                                           "f1", "roc_auc", "pr_auc")}
        cm = test["confusion_matrix"]  # rows actual (benign, malignant), columns predicted
        assert run_doc["intervals"]["accuracy"] == pytest.approx(list(wilson_interval(cm[0][0] + cm[1][1], test["n"])))
        assert run_doc["intervals"]["recall"] == pytest.approx(list(wilson_interval(cm[1][1], cm[1][0] + cm[1][1])))
        assert run_doc["intervals"]["roc_auc"] is None
    # the same data file in every run: one data fingerprint
    assert len({r["data_fingerprint"] for r in doc["runs"]}) == 1
    assert doc["last_pass"]["created_at"].startswith("2026-03-05")


def test_history_shows_the_failing_run_the_disabled_check_and_the_overrides(runs, tmp_path):
    collected = history.collect([runs])
    (h,) = collected.histories
    failing = h.runs[2]
    assert failing.status == "fail" and failing.checks["minority_recall"] == "fail"
    # severity error is minority_recall's default: only the threshold is an override
    assert failing.overrides == {"minority_recall": {"min": 0.999}}
    disabled = h.runs[3]
    assert "feature_drift" not in disabled.checks and disabled.disabled() == {"feature_drift"}
    assert all("feature_drift" in r.checks for i, r in enumerate(h.runs) if i != 3)
    assert h.runs[0].overrides == {}
    trends = {t.id: t for t in h.check_trends()}
    assert trends["minority_recall"].flips >= 2 and trends["minority_recall"].flaky  # pass, fail, pass
    assert not trends["minority_recall"].newly_failing
    # drift values over time come from the drift checks
    assert h.runs[0].drift["feature_drift"] == 0.0 and "feature_drift" not in h.runs[3].drift

    history.write(collected, tmp_path, ["html", "md"])
    page = (tmp_path / "history.html").read_text()
    assert 'class="c-off">off<' in page and 'class="c-fail">F<' in page
    assert "minority_recall: min 0.999<" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page and "url(http" not in page
    md = (tmp_path / "history.md").read_text()
    assert md.startswith("# cancer: run history") and "`minority_recall`" in md
    assert "| 2026-03-03 02:00 | FAIL |" in md


def test_history_exits_1_when_the_newest_run_failed_and_names_the_new_failure(runs, tmp_path):
    paths = [str(runs / folder / "results.json") for folder, *_ in PLAN[:3]]
    code, out, _ = _cli("history", *reversed(paths), "--out", str(tmp_path), "--format", "json")
    assert code == 1
    assert out.startswith("FAIL: cancer: newest of 3 runs")
    doc = json.loads((tmp_path / "history.json").read_text())
    assert doc["verdict"] == "fail"
    assert doc["checks"]["minority_recall"]["newly_failing"] is True
    assert doc["last_pass"]["created_at"].startswith("2026-03-02")


def test_history_pdf_has_the_trend_on_page_one(runs, tmp_path):
    code, _, err = _cli("history", str(runs), "--out", str(tmp_path), "--format", "pdf")
    assert code == 0, err
    reader = PdfReader(tmp_path / "history.pdf")
    first = reader.pages[0].extract_text()
    assert "Headline test metrics over time" in first and "PASS" in first
    assert "Check status per run" not in first
    assert len(reader.pages) >= 2


def test_bad_results_file_exits_2_and_writes_nothing_unless_skipped(runs, tmp_path):
    bad = tmp_path / "in" / "broken"
    bad.mkdir(parents=True)
    good = json.loads((runs / "run-e" / "results.json").read_text())
    (bad / "results.json").write_text(json.dumps(good)[:500])  # truncated
    out_dir = tmp_path / "out"
    code, _, err = _cli("history", str(runs), str(tmp_path / "in"), "--out", str(out_dir))
    assert code == 2
    assert err.count("\n") == 1 and "broken/results.json" in err
    assert not out_dir.exists()

    code, out, err = _cli("history", str(runs), str(tmp_path / "in"), "--out", str(out_dir), "--format", "json",
                          "--skip-invalid")
    assert code == 0
    assert "skipped" in err and "broken/results.json" in err
    assert err.count(str(bad / "results.json")) == 1, err  # the path once, then the problem
    assert len(json.loads((out_dir / "history.json").read_text())["runs"]) == 5


def test_several_jobs_get_one_folder_each(runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    document = json.loads((runs / "run-c" / "results.json").read_text())
    document["name"] = "cancer nightly"
    (other / "results.json").write_text(json.dumps(document))
    code, out, _ = _cli("history", str(runs), str(other), "--out", str(tmp_path / "h"), "--format", "json")
    assert code == 1  # the other job's only run failed
    assert (tmp_path / "h" / "cancer" / "history.json").is_file()
    assert json.loads((tmp_path / "h" / "cancer-nightly" / "history.json").read_text())["verdict"] == "fail"
    # the console names the folders the files are in, not --out
    assert f"history: {tmp_path / 'h' / 'cancer'} (history.json)" in out.splitlines(), out
    assert f"history: {tmp_path / 'h' / 'cancer-nightly'} (history.json)" in out.splitlines(), out
    assert f"history: {tmp_path / 'h'} (" not in out


def test_missing_path_and_unknown_format_are_bad_input(runs, tmp_path):
    assert _cli("history", str(tmp_path / "nope"), "--out", str(tmp_path / "h"))[0] == 2
    assert _cli("history", str(runs), "--out", str(tmp_path / "h"), "--format", "docx")[0] == 2
    assert not (tmp_path / "h").exists()


def test_history_does_not_import_torch(runs, tmp_path):
    code = ("import sys; from reportgen.cli import main; "
            f"rc = main(['history', {str(runs)!r}, '--out', {str(tmp_path)!r}, '--format', 'html,md,json']); "
            "print(rc, sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_many_runs_keep_the_report_bounded(runs, tmp_path):
    """450 runs: every run in history.json, the newest 40 in the grid and table, charts thinned."""
    template = json.loads((runs / "run-e" / "results.json").read_text())
    for i in range(450):
        document = json.loads(json.dumps(template))
        document["environment"]["created_at"] = (DAY + dt.timedelta(hours=i)).isoformat().replace("+00:00", "Z")
        document["environment"]["seed"] = i
        folder = tmp_path / "many" / f"{i:03d}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(document))
    (h,) = history.collect([tmp_path / "many"]).histories
    shown = history.view(h)
    assert len(shown["grid_runs"]) == history.MAX_GRID_RUNS and shown["grid_cut"] == 450 - history.MAX_GRID_RUNS
    assert len(shown["runs"]) == history.MAX_GRID_RUNS and shown["runs"][0]["number"] == 450
    import re

    vertices = [len(re.findall(r"\bL ", d)) + 1 for d in re.findall(r' d="([^"]*)"', shown["metric_chart"])]
    # the widest path is an interval band (upper and lower edge): 2 x 450 + 2 points unthinned
    assert 2 * 100 < max(vertices) <= 2 * history.MAX_CHART_RUNS + 2
    written = history.write(history.collect([tmp_path / "many"]), tmp_path / "out", ["html", "json"])
    page = next(p for p in written if p.name == "history.html")
    assert page.stat().st_size < 1_000_000
    assert len(json.loads((tmp_path / "out" / "history.json").read_text())["runs"]) == 450
