"""release_comparison: a model worse than the earlier run is caught; an equal one is not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from reportgen.checks.comparison_checks import metric_drop
from reportgen.config import load_config
from reportgen.errors import InputError
from reportgen.pipeline import execute

from conftest import cancer_config, write_config


def check(report, check_id: str):
    """The result of one check."""
    return next(c for c in report.checks if c.id == check_id)


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory, breast_cancer_frame):
    """One trained run on breast cancer: its config path and results.json document."""
    folder = tmp_path_factory.mktemp("comparison")
    breast_cancer_frame.to_csv(folder / "cancer.csv", index=False)
    path = write_config(folder, cancer_config(folder / "cancer.csv"))
    report, _ = execute(load_config(path))
    return path, report.document()


def test_metric_drop_is_absolute_for_scores_and_relative_for_errors():
    assert metric_drop(0.90, 0.85, True) == pytest.approx(0.05)
    assert metric_drop(2.0, 2.2, False) == pytest.approx(0.1)
    assert metric_drop(0.85, 0.90, True) < 0


def test_an_identical_earlier_run_passes_and_no_earlier_run_skips(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    (tmp_path / "previous.json").write_text(json.dumps(previous), encoding="utf-8")
    report, _ = execute(load_config(path), compare_to=tmp_path / "previous.json")
    result = check(report, "release_comparison")
    assert result.status == "pass" and result.value == pytest.approx(0.0, abs=1e-12)
    assert result.evidence["same_test_data"] is True
    report, _ = execute(load_config(path))
    assert check(report, "release_comparison").status == "skip"


def test_a_better_earlier_release_fails_the_gate(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    better = copy.deepcopy(previous)
    better["metrics"]["test"]["recall"] = min(1.0, previous["metrics"]["test"]["recall"] + 0.05)
    (tmp_path / "previous.json").write_text(json.dumps(better), encoding="utf-8")
    report, _ = execute(load_config(path), compare_to=tmp_path / "previous.json")
    result = check(report, "release_comparison")
    expected_drop = better["metrics"]["test"]["recall"] - previous["metrics"]["test"]["recall"]
    assert result.status == "fail" and result.value == pytest.approx(expected_drop)
    assert "recall dropped from" in result.message
    assert report.status == "fail"


def test_a_bad_comparison_file_is_an_input_error(cancer_run, tmp_path: Path):
    path, _ = cancer_run
    (tmp_path / "x.json").write_text("{\"not\": \"results\"}", encoding="utf-8")
    with pytest.raises(InputError, match="x.json: not a reportgen results.json \\(no schema_version\\)"):
        execute(load_config(path), compare_to=tmp_path / "x.json")
    with pytest.raises(InputError, match="results file not found"):
        execute(load_config(path), compare_to=tmp_path / "absent.json")
