"""Bounds on an untrusted results.json: free text, per-check size, plot data and confusion counts.

Every case edits one field of a real run's results.json (breast cancer, trained MLP) and must be refused
by ``reportgen render`` with exit 2, one line naming the field, and nothing written; the run's own file
must load.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from conftest import cancer_config, write_config
from reportgen import results_schema
from reportgen.checks.base import Check, CheckSpec, Finding, run_check
from reportgen.cli import main
from reportgen.results_schema import MAX_CURVE_POINTS, MAX_EVIDENCE_BYTES, MAX_RECORD_ROWS, MAX_TEXT_CHARS


@pytest.fixture(scope="module")
def run_document(tmp_path_factory: pytest.TempPathFactory, breast_cancer_frame: pd.DataFrame) -> dict[str, Any]:
    """The results.json of a real binary run, as a dict."""
    folder = tmp_path_factory.mktemp("run")
    breast_cancer_frame.to_csv(folder / "cancer.csv", index=False)
    config = write_config(folder, cancer_config(folder / "cancer.csv"))
    err = io.StringIO()
    code = main(["run", str(config), "--out", str(folder / "out"), "--quiet", "--format", "json"], out=io.StringIO(), err=err)
    assert code in (0, 1), err.getvalue()
    return json.loads((folder / "out" / "results.json").read_text(encoding="utf-8"))


def _check(document: dict[str, Any], check_id: str = "calibration") -> dict[str, Any]:
    return next(c for c in document["checks"] if c["id"] == check_id)


def _test_curves(document: dict[str, Any]) -> dict[str, Any]:
    return document["curves"]["test"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets the value at a dotted path under curves.test (``roc.fpr.3``)."""
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = _test_curves(document)
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _roc_fpr_short(document: dict[str, Any]) -> None:
    _test_curves(document)["roc"]["fpr"] = _test_curves(document)["roc"]["fpr"][:5]


def _roc_empty(document: dict[str, Any]) -> None:
    _test_curves(document)["roc"] = {"fpr": [], "tpr": [], "auc": 0.5}


def _roc_too_long(document: dict[str, Any]) -> None:
    n = MAX_CURVE_POINTS + 1
    _test_curves(document)["roc"] = {"fpr": [i / n for i in range(n)], "tpr": [i / n for i in range(n)], "auc": 0.5}


def _confusion_huge(document: dict[str, Any]) -> None:
    document["metrics"]["test"]["confusion_matrix"][0][0] = 10**30


def _confusion_negative(document: dict[str, Any]) -> None:
    document["metrics"]["test"]["confusion_matrix"][1][0] = -1


def _message(length: int) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        _check(document)["message"] = "A" * length
    return edit


def _evidence_string(document: dict[str, Any]) -> None:
    _check(document)["evidence"]["note"] = "B" * (MAX_TEXT_CHARS + 1)


def _evidence_key(document: dict[str, Any]) -> None:
    _check(document)["evidence"]["K" * (MAX_TEXT_CHARS + 1)] = 1


def _evidence_wide(document: dict[str, Any]) -> None:
    _check(document)["evidence"]["many"] = {f"k{i}": i for i in range(MAX_EVIDENCE_BYTES // 8)}


def _title(document: dict[str, Any]) -> None:
    _check(document)["title"] = "T" * (MAX_TEXT_CHARS + 1)


def _name(document: dict[str, Any]) -> None:
    document["name"] = "N" * (MAX_TEXT_CHARS + 1)


CASES = [
    ("cal_bin_string", _set("calibration.bins.0.mean_predicted", "x"), "curves.test.calibration.bins[0].mean_predicted"),
    ("cal_bin_null", _set("calibration.bins.0", None), "curves.test.calibration.bins[0]"),
    ("cal_bin_count_negative", _set("calibration.bins.2.count", -3), "curves.test.calibration.bins[2].count"),
    ("cal_ece_above_1", _set("calibration.ece", 1.5), "curves.test.calibration.ece"),
    ("roc_string", _set("roc.tpr.3", "0.5"), "curves.test.roc.tpr[3]"),
    ("roc_bool", _set("roc.fpr.3", True), "curves.test.roc.fpr[3]"),
    ("roc_negative", _set("roc.fpr.3", -5), "curves.test.roc.fpr[3]"),
    ("roc_huge", _set("roc.fpr.3", 1e300), "curves.test.roc.fpr[3]"),
    ("roc_null_point", _set("roc.tpr.1", None), "curves.test.roc.tpr[1]"),
    ("roc_lengths_differ", _roc_fpr_short, "curves.test.roc: arrays of different lengths"),
    ("roc_empty", _roc_empty, "curves.test.roc.fpr"),
    ("roc_too_long", _roc_too_long, "curves.test.roc.fpr"),
    ("pr_precision_above_1", _set("pr.precision.2", 2.0), "curves.test.pr.precision[2]"),
    ("operating_point_huge", _set("operating_point.tpr", 10**30), "curves.test.operating_point.tpr"),
    ("sweep_count_float", _set("threshold_sweep.predicted_positive.0", 1.5), "curves.test.threshold_sweep.predicted_positive[0]"),
    ("confusion_huge", _confusion_huge, "metrics.test.confusion_matrix[0][0]"),
    ("confusion_negative", _confusion_negative, "metrics.test.confusion_matrix[1][0]"),
    ("message_long", _message(MAX_TEXT_CHARS + 1), "its message is"),
    ("message_million", _message(1_000_000), "its message is"),
    ("evidence_string_long", _evidence_string, "its evidence holds a string"),
    ("evidence_key_long", _evidence_key, "its evidence holds a string"),
    ("evidence_over_1_mib", _evidence_wide, "KiB as JSON"),
    ("title_long", _title, "its title is"),
    ("name_long", _name, "name:"),
]


def test_the_run_file_loads_and_has_every_block_the_cases_edit(run_document: dict[str, Any]) -> None:
    assert results_schema.validate_document(copy.deepcopy(run_document))
    assert {"roc", "pr", "operating_point", "calibration", "threshold_sweep"} <= set(_test_curves(run_document))
    assert results_schema.bounds_problem(run_document) is None


@pytest.mark.parametrize("name, edit, fragment", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_field_is_exit_2_with_one_line_naming_it(
        name: str, edit: Callable[[dict[str, Any]], None], fragment: str, run_document: dict[str, Any],
        tmp_path: Path) -> None:
    document = copy.deepcopy(run_document)
    edit(document)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    err = io.StringIO()
    code = main(["render", str(path), "--out", str(tmp_path / "out")], out=io.StringIO(), err=err)
    lines = err.getvalue().strip().splitlines()
    assert code == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("reportgen: error: "), lines
    assert fragment in lines[0], (fragment, lines[0])
    assert len(lines[0]) < 400
    assert not (tmp_path / "out").exists()


def test_text_at_the_limit_is_accepted(run_document: dict[str, Any]) -> None:
    document = copy.deepcopy(run_document)
    _check(document)["message"] = "A" * MAX_TEXT_CHARS
    _check(document)["evidence"]["note"] = "B" * MAX_TEXT_CHARS
    assert results_schema.validate_document(document) is document


class _LongMessage(Check):
    spec = CheckSpec(id="long_message", title="Long message", family="performance", detects="test only",
                     how_to_read="test only", default_severity="warning", tasks=frozenset({"binary"}))

    def __init__(self, message: str) -> None:
        self.message = message

    def run(self, ctx: Any, settings: Any) -> Finding:
        return Finding(outcome="ok", value=None, message=self.message)


class _LongCrash(_LongMessage):
    def run(self, ctx: Any, settings: Any) -> Finding:
        raise ValueError("C" * (3 * MAX_TEXT_CHARS))


class _Ctx:
    task = "binary"
    training = None


def test_a_run_turns_an_over_long_message_into_the_checks_error_and_clips_a_crash() -> None:
    within = run_check(_LongMessage("A" * MAX_TEXT_CHARS), _Ctx(), None)  # type: ignore[arg-type]
    assert within is not None and within.status == "pass" and len(within.message) == MAX_TEXT_CHARS
    over = run_check(_LongMessage("A" * (MAX_TEXT_CHARS + 1)), _Ctx(), None)  # type: ignore[arg-type]
    assert over is not None and over.status == "error"
    assert "its message is 10,001 characters long" in over.message
    crashed = run_check(_LongCrash("x"), _Ctx(), None)  # type: ignore[arg-type]
    assert crashed is not None and crashed.status == "error"
    assert len(crashed.message) <= MAX_TEXT_CHARS and "characters cut]" in crashed.message
    assert results_schema.result_size_problem({"message": crashed.message, "evidence": crashed.evidence}) is None


def test_counts_and_curve_lengths_have_documented_bounds() -> None:
    assert MAX_RECORD_ROWS == 1 << 40 and MAX_CURVE_POINTS == 10_000 and MAX_TEXT_CHARS == 10_000
