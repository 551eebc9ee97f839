"""A check setting for a check that does not apply to the config's task is a config error, not a silent skip."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sklearn.datasets import load_wine

from conftest import REPO, SAMPLES, write_config
from reportgen.checks.base import registry
from reportgen.cli import main
from reportgen.vocabulary import TASKS


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def wine_config(tmp_path: Path) -> Path:
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "a", 1: "b", 2: "c"})
    frame.to_csv(tmp_path / "wine.csv", index=False)
    return write_config(tmp_path, {
        "name": "wine", "task": "multiclass", "seed": 0,
        "data": {"kind": "csv", "path": "wine.csv", "target": "target", "split": {"val": 0.2, "test": 0.25}},
        "model": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 3, "lr": 0.01},
        "report": {"formats": ["json"]},
    })


@pytest.mark.parametrize("setting, message", [
    ("checks.group_fairness.sensitive=[origin]", "checks.group_fairness applies to binary tasks only"),
    ("checks.group_fairness.max=0.2", "checks.group_fairness applies to binary tasks only"),
    ("checks.calibration.bins=10", "checks.calibration applies to binary and multiclass tasks only"),
    ("checks.init_loss.max=2", "checks.init_loss applies to binary and multiclass tasks only"),
])
def test_regression_config_with_a_classification_check_setting_is_exit_2(tmp_path: Path, setting: str, message: str):
    out = tmp_path / "r"
    for command in (["validate"], ["run", "--out", str(out)]):
        code, stdout, stderr = run_cli(command[0], str(SAMPLES / "auto_regression.yaml"), *command[1:], "--set", setting)
        assert (code, stderr) == (2, f"reportgen: error: {message}\n"), stdout + stderr
    assert not out.exists()


def test_multiclass_config_refuses_binary_only_settings_and_keeps_enabled_and_severity(wine_config: Path):
    code, _, err = run_cli("validate", str(wine_config), "--set", "checks.threshold_tradeoff.target_recall=0.9")
    assert (code, err) == (2, "reportgen: error: checks.threshold_tradeoff applies to binary tasks only\n")
    code, _, err = run_cli("validate", str(wine_config), "--set", "checks.group_fairness.sensitive=[alcohol]")
    assert (code, err) == (2, "reportgen: error: checks.group_fairness applies to binary tasks only\n")
    code, out, err = run_cli("validate", str(wine_config), "--set", "checks.group_fairness.enabled=false",
                             "--set", "checks.threshold_tradeoff.severity=error", "--set", "checks.calibration.bins=10")
    assert code == 0 and out.startswith("OK: wine: multiclass"), out + err


def test_readme_names_the_tasks_of_every_task_limited_check():
    text = " ".join((REPO / "README.md").read_text().split())
    binary = re.search(r"Not every check applies to every task: (.*?) are for binary tasks only", text).group(1)
    classification = re.search(r"binary tasks only; (.*?) for binary and multiclass;", text).group(1)
    named = {name: {"binary"} for name in re.findall(r"`(\w+)`", binary)}
    named.update({name: {"binary", "multiclass"} for name in re.findall(r"`(\w+)`", classification)})
    limited = {c.spec.id: set(c.spec.tasks) for c in registry.all()
               if type(c).__module__.startswith("reportgen.checks.") and set(c.spec.tasks) != set(TASKS)}
    assert named == limited
