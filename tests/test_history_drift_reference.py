"""reportgen history over runs whose drift was measured against different references (compare_to in one run)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from conftest import cancer_config, write_config
from reportgen import history
from reportgen.config import load_config
from reportgen.pipeline import run

DAY = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)
PLAN = [  # (folder, training, compare with the run before): the first model barely trained, so scores differ a lot
    ("run-1", {"epochs": 1, "lr": 0.0001}, False),
    ("run-2", {"epochs": 15, "lr": 0.01}, True),
    ("run-3", {"epochs": 15, "lr": 0.01}, False),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, breast_cancer_frame) -> Path:
    """Three real runs of one job on breast cancer; the middle one made with compare_to = the first run."""
    root = tmp_path_factory.mktemp("drift-history")
    csv = root / "cancer.csv"
    breast_cancer_frame.to_csv(csv, index=False)
    previous: Path | None = None
    for day, (folder, training, compare) in enumerate(PLAN):
        config = write_config(root, cancer_config(csv, training=training), f"{folder}.yaml")
        when = DAY + dt.timedelta(days=day)
        out = root / "runs" / folder
        run(load_config(config), out_dir=out, formats=["json"], clock=lambda when=when: when,
            compare_to=previous if compare else None)
        previous = out / "results.json"
    return root / "runs"


def _prediction_drift(folder: Path) -> dict:
    document = json.loads((folder / "results.json").read_text())
    return next(c for c in document["checks"] if c["id"] == "prediction_drift")


def test_a_reference_change_gives_separate_series_and_is_no_flakiness(runs, tmp_path):
    checks = [_prediction_drift(runs / folder) for folder, _, _ in PLAN]
    # the premise: the middle run, compared with the barely trained first model, drifted; the others did not
    assert [c["status"] for c in checks] == ["pass", "warn", "pass"]
    assert [r["reference"] for r in checks[1]["evidence"]["comparisons"]] == ["train", "previous run (test)"]
    assert all([r["reference"] for r in c["evidence"]["comparisons"]] == ["train"] for c in (checks[0], checks[2]))

    (h,) = history.collect([runs]).histories
    document = h.to_dict()
    series = {(s["check"], s["reference"]): s for s in document["drift_series"]}
    vs_train = series[("prediction_drift", "train")]
    vs_previous = series[("prediction_drift", "previous run (test)")]
    assert [p[0] for p in vs_train["points"]] == [0, 1, 2]
    assert [p[1] for p in vs_train["points"]] == [c["evidence"]["comparisons"][0]["statistic"] for c in checks]
    assert vs_previous["points"] == [[1, checks[1]["evidence"]["comparisons"][1]["statistic"]]]
    assert vs_train["label"] == "score shift (KS D), test vs train"
    assert vs_previous["label"] == "score shift (KS D), test vs previous run"
    assert {s["reference"] for s in document["drift_series"] if s["check"] == "feature_drift"} == {"train"}

    trend = document["checks"]["prediction_drift"]
    assert trend == {**trend, "flips": 0, "flips_not_counted": 2, "flaky": False}
    assert document["runs"][1]["drift_by_reference"]["prediction_drift"].keys() == {"train", "previous run (test)"}

    written = history.write(history.collect([runs]), tmp_path / "h", ["html", "md", "json"])
    page = next(p for p in written if p.name == "history.html").read_text()
    assert "test vs previous run" in page and "test vs train" in page  # the chart's legend
    assert "Flaky:" not in page and "prediction_drift (2)" in page
    markdown = (tmp_path / "h" / "history.md").read_text()
    assert "Flaky checks" not in markdown and "not counted toward flakiness" in markdown


def test_flips_against_the_same_reference_still_count(runs, tmp_path):
    """The same three runs with the middle one's comparison with the previous run removed (as if that run had
    been made without compare_to but had drifted from train): pass, warn, pass against train is flaky."""
    for folder, _, _ in PLAN:
        document = json.loads((runs / folder / "results.json").read_text())
        (tmp_path / folder).mkdir()
        for check in document["checks"]:
            if check["id"] == "prediction_drift":
                check["evidence"]["comparisons"] = check["evidence"]["comparisons"][:1]
        (tmp_path / folder / "results.json").write_text(json.dumps(document))
    (h,) = history.collect([tmp_path]).histories
    trend = next(t for t in h.check_trends() if t.id == "prediction_drift")
    assert (trend.flips, trend.flips_not_counted, trend.flaky) == (2, 0, True)
    assert [(s.check, s.reference) for s in h.drift_series()] == [("feature_drift", "train"), ("prediction_drift", "train")]


def test_results_without_a_recorded_reference_count_as_train():
    """An older or foreign results.json whose drift evidence names no reference: that version compared with train."""
    assert history.drift_measures({"id": "feature_drift", "status": "pass", "value": 0.1, "evidence": {}}) == {"train": 0.1}
    assert history.drift_measures({"id": "prediction_drift", "status": "warn", "value": 0.3}) == {"train": 0.3}
    assert history.drift_measures({"id": "prediction_drift", "status": "skip", "value": None, "evidence": {}}) == {}
    assert history.drift_measures({"id": "feature_drift", "status": "pass", "value": 0.2,
                                   "evidence": {"reference": "data.reference"}}) == {"data.reference": 0.2}


def test_a_crash_between_two_measured_runs_still_counts(runs):
    """A run where prediction_drift crashed measured against nothing: its status changes count as flips."""
    import dataclasses

    (h,) = history.collect([runs]).histories
    first, middle, last = h.runs
    crashed = dataclasses.replace(middle, checks={**middle.checks, "prediction_drift": "error"},
                                  drift_by_reference={k: v for k, v in middle.drift_by_reference.items()
                                                      if k != "prediction_drift"})
    trend = next(t for t in history.History(h.name, h.task, (first, crashed, last)).check_trends()
                 if t.id == "prediction_drift")
    assert (trend.flips, trend.flips_not_counted, trend.flaky) == (2, 0, True)
