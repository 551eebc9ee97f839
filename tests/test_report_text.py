"""What a reader sees reads as a report, not machine output, on real runs of three tasks.

Every number follows reportgen.numbers (check messages, summary.md, JUnit, evidence), every
evidence key any built-in check writes has a human label, and no evidence cell shows a flattened
dict or list. The runs are real: breast cancer (binary, with a planted weak region, a sensitive
column, a target recall and a release comparison), wine (multiclass) and diabetes (regression).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import write_config
from reportgen.config import load_config
from reportgen.pipeline import execute
from reportgen.render import RENDERERS, view
from reportgen.render.base import RenderOptions
from text_scan import evidence_problems, number_format_problems, shown_evidence_problems, slice_names, unlabelled_keys


def _frame(loader: str) -> tuple[pd.DataFrame, str]:
    from sklearn import datasets

    bunch = getattr(datasets, loader)(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_").replace("/", "_") for c in frame.columns]
    if loader == "load_breast_cancer":
        rng = np.random.default_rng(0)
        frame["region"] = np.array(["north", "south", "east"])[rng.integers(0, 3, len(frame))]
        frame["sex"] = np.array(["F", "M"])[rng.integers(0, 2, len(frame))]
        label = np.where(bunch.target == 1, "benign", "malignant")
        north = (frame["region"] == "north").to_numpy() & (rng.random(len(frame)) < 0.45)
        label[north] = np.where(label[north] == "benign", "malignant", "benign")  # a region the model cannot learn
        frame["diagnosis"] = label
        return frame.drop(columns=["target"]), "diagnosis"
    if loader == "load_wine":
        frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[bunch.target]
        return frame.drop(columns=["target"]), "cultivar"
    return frame, "target"


def _config(folder: Path, loader: str, task: str, **extra: Any) -> Path:
    frame, target = _frame(loader)
    frame.to_csv(folder / "data.csv", index=False)
    data: dict[str, Any] = {"kind": "csv", "path": "data.csv", "target": target, "split": {"val": 0.2, "test": 0.3}, "batch_size": 64}
    if task == "binary":
        data |= {"classes": ["benign", "malignant"], "positive_class": "malignant", "categorical": ["region", "sex"]}
    document = {"name": f"text-{task}", "task": task, "seed": 0, "data": data, "model": {"kind": "mlp", "hidden": [16]},
                "training": {"epochs": 8, "lr": 0.01}, "report": {"formats": ["json"]}, **extra}
    return write_config(folder, document)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Any]:
    """Real reports: binary (with every optional check switched on, compared with an earlier run), multiclass, regression."""
    found = {}
    binary = tmp_path_factory.mktemp("binary")
    checks = {"group_fairness": {"sensitive": ["sex", "region"]}, "threshold_tradeoff": {"target_recall": 0.99},
              "slice_performance": {"min_support": 10}}
    earlier, _ = execute(load_config(_config(binary, "load_breast_cancer", "binary", checks=checks)))
    (binary / "earlier.json").write_text(json.dumps(earlier.document()), encoding="utf-8")
    later = _config(binary, "load_breast_cancer", "binary", checks=checks, training={"epochs": 2, "lr": 0.01})
    found["binary"], _ = execute(load_config(later), compare_to=binary / "earlier.json")
    found["multiclass"], _ = execute(load_config(_config(tmp_path_factory.mktemp("wine"), "load_wine", "multiclass")))
    found["regression"], _ = execute(load_config(_config(tmp_path_factory.mktemp("diabetes"), "load_diabetes", "regression")))
    return found


def test_the_runs_exercise_the_optional_checks(reports):
    ran = {c.id for c in reports["binary"].checks if c.status != "skip"}
    assert {"slice_performance", "group_fairness", "release_comparison", "threshold_tradeoff", "feature_drift"} <= ran
    tradeoff = next(c for c in reports["binary"].checks if c.id == "threshold_tradeoff")
    assert tradeoff.evidence.get("target")  # the target-recall branch ran


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_evidence_key_has_a_label_and_reads_as_words(reports, task):
    problems = evidence_problems(reports[task])
    assert not problems, problems


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_messages_summary_and_junit_follow_the_number_rule(reports, task):
    report = reports[task]
    texts = {f"message of {c.id}": c.message for c in report.checks}
    texts["summary.md"] = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8").replace("\\", "")  # unescaped
    texts["junit.xml"] = RENDERERS["junit"].render(report, RenderOptions()).decode("utf-8")
    page = view.page_one(report)
    texts["page 1 tiles"] = " ".join(f"{t['value']} {t['ci']}" for t in page["tiles"])
    slices = slice_names(report.checks)
    problems = {where: found for where, text in texts.items() if (found := number_format_problems(text, slices))}
    assert not problems, problems


def test_the_scanners_find_what_they_look_for():
    """The scans above would see a planted machine format (so their silence means something)."""
    planted = "label shift 4.76e-05 beside 0.000, 1.1e-01 and 0.07905"
    assert len(number_format_problems(planted)) == 4
    assert number_format_problems("4.8×10⁻⁵ beside 0, 0.111 and 0.079; sha256 4e5f0a1b… 34,539.6 p < 0.001") == []
    shown = {"kind": "generic", "items": [{"key": "operating", "label": "operating", "value": "{'precision': 0.5}", "table": None},
                                          {"key": "per_class", "label": "Per class", "value": "{2 keys} per_class []", "table": None}]}
    found = shown_evidence_problems(shown, {"operating", "per_class"})
    assert any("flattened" in p for p in found) and any("per_class" in p for p in found) and any("label 'operating'" in p for p in found)
    assert unlabelled_keys({"tvd_train_test": 0.1, "per_class": {"No": {"made_up_key": 1}}}, {"No"}) == {"made_up_key"}


def test_the_glossary_explains_the_jargon_once(reports):
    binary = dict(view.glossary(reports["binary"]))
    for term in ("Balanced accuracy", "Matthews corr. (MCC)", "PR AUC", "ROC AUC", "95% interval", "Total variation distance",
                 "ECE", "Kolmogorov-Smirnov D (KS)", "McNemar test", "Benjamini-Hochberg (BH)"):
        assert term in binary, term
    assert "Average precision (AP)" in binary["PR AUC"] and "Wilson" in binary["95% interval"]
    terms = [t for t, _ in view.glossary(reports["binary"])]
    assert len(terms) == len(set(terms))  # each term once
    regression = dict(view.glossary(reports["regression"]))
    assert "ECE" not in regression and "R²" in regression and "RMSE" in regression
