"""Inputs found by attacking the tool: each must be exit 2 with one line (or, for the gate, the right verdict)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np

import report_fixtures as F
from conftest import SAMPLES, cancer_config, write_config
from reportgen.cli import main
from reportgen.config import load_config
from reportgen.pipeline import execute


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return int(code), out.getvalue(), err.getvalue()


def one_line_exit_2(code: int, err: str, words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and words in err, err


def test_naming_the_majority_class_positive_keeps_the_rare_class_in_the_gate():
    """credit_default with positive_class 'No': the rare defaulters ('Yes', recall 0.34) must still fail the gate."""
    report, _ = execute(load_config(SAMPLES / "credit_default.yaml", ["data.positive_class=No"]))
    check = next(c for c in report.checks if c.id == "minority_recall")
    assert report.status == "fail" and check.status == "fail"
    assert "rarest class 'Yes'" in check.message and check.value < 0.5


def _saved(tmp_path: Path, document: dict, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_results_json_that_contradicts_itself_is_refused(tmp_path: Path):
    document = F.cached("failing_binary").document()
    twice = copy.deepcopy(document)
    twice["checks"].append(copy.deepcopy(twice["checks"][0]))
    code, _, err = run_cli("render", str(_saved(tmp_path, twice, "twice.json")), "--out", str(tmp_path / "o1"))
    one_line_exit_2(code, err, "is listed twice")
    gated = copy.deepcopy(document)
    gated["gate"] = {"verdict": "pass", "blocking": [], "overrides": [], "strict": False}
    code, _, err = run_cli("render", str(_saved(tmp_path, gated, "gated.json")), "--out", str(tmp_path / "o2"))
    one_line_exit_2(code, err, "gate.verdict")
    text = json.dumps(document)
    duplicate = text[:-1] + ', "status": "pass"}'  # the last key would silently win
    (tmp_path / "dup.json").write_text(duplicate, encoding="utf-8")
    code, _, err = run_cli("render", str(tmp_path / "dup.json"), "--out", str(tmp_path / "o3"))
    one_line_exit_2(code, err, "repeats the key")
    (tmp_path / "big.json").write_text(text.replace('"schema_version": 1', '"schema_version": 1, "x": ' + "9" * 5000, 1),
                                       encoding="utf-8")
    code, _, err = run_cli("render", str(tmp_path / "big.json"), "--out", str(tmp_path / "o4"))
    one_line_exit_2(code, err, "cannot be read")
    (tmp_path / "float.json").write_text(text.replace('"schema_version": 1', '"schema_version": 1.0', 1), encoding="utf-8")
    code, _, err = run_cli("render", str(tmp_path / "float.json"), "--out", str(tmp_path / "o5"))
    one_line_exit_2(code, err, "schema_version")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))


def test_a_self_referencing_yaml_alias_is_refused_at_once(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("checks: &c {minority_recall: *c}\n", encoding="utf-8")
    code, _, err = run_cli("validate", str(path))
    one_line_exit_2(code, err, "refers to a mapping or list that contains it")


def test_template_arithmetic_and_odd_template_files_are_bounded(tmp_path: Path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(F.cached("passing_binary").document()), encoding="utf-8")
    cases = {
        "repeat": ('{{ "x" * 10**10 }}', "refused by the template sandbox"),
        "power": ("{{ 10 ** 100000 }}", "refused by the template sandbox"),
    }
    for name, (source, words) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "report.html.j2").write_text(source, encoding="utf-8")
        code, _, err = run_cli("render", str(results), "--out", str(tmp_path / f"out-{name}"), "--format", "html",
                               "--template-dir", str(folder))
        one_line_exit_2(code, err, words)
    folder = tmp_path / "dir"
    (folder / "report.html.j2").mkdir(parents=True)
    code, _, err = run_cli("render", str(results), "--out", str(tmp_path / "out-dir"), "--template-dir", str(folder))
    one_line_exit_2(code, err, "not a regular file")
    folder = tmp_path / "latin1"
    folder.mkdir()
    (folder / "report.html.j2").write_bytes("{{ r.name }} \xba".encode("latin-1"))
    code, _, err = run_cli("render", str(results), "--out", str(tmp_path / "out-latin1"), "--template-dir", str(folder))
    one_line_exit_2(code, err, "not UTF-8")


def test_config_values_must_have_their_type(tmp_path: Path, cancer_csv: Path):
    """YAML gives typed values; a number written as text, or an infinite learning rate, is not silently converted."""
    for training, words in (({"epochs": "2"}, "training.epochs"), ({"lr": float("inf")}, "training.lr")):
        config = cancer_config(cancer_csv)
        config["training"] = {**config["training"], **training}
        code, _, err = run_cli("validate", str(write_config(tmp_path, config)))
        one_line_exit_2(code, err, words)
    config = cancer_config(cancer_csv, report={"formats": []})
    code, _, err = run_cli("validate", str(write_config(tmp_path, config)))
    one_line_exit_2(code, err, "at least one format")
    data = {**cancer_config(cancer_csv)["data"], "csv": {"thousands": "."}}
    code, _, err = run_cli("validate", str(write_config(tmp_path, cancer_config(cancer_csv, data=data))))
    one_line_exit_2(code, err, "data.csv.decimal and data.csv.thousands")


def test_npz_labels_and_shapes_are_not_silently_changed(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    cases = {
        "half": {"X_train": x, "y_train": (np.arange(60) % 2) + 0.5, "X_test": x, "y_test": (np.arange(60) % 2) + 0.5},
        "shape": {"X_train": x, "y_train": np.arange(60) % 2, "X_test": x[:, :3], "y_test": np.arange(60) % 2},
        "scalar": {"X_train": np.float32(1.0), "y_train": np.arange(60) % 2, "X_test": x, "y_test": np.arange(60) % 2},
    }
    words = {"half": "whole class indices", "shape": "samples of shape", "scalar": "a single value"}
    for name, arrays in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        path = write_config(tmp_path, {"name": name, "task": "binary", "data": {"kind": "npz", "path": f"{name}.npz"},
                                       "model": {"kind": "linear"}}, name=f"{name}.yaml")
        code, _, err = run_cli("validate", str(path))
        one_line_exit_2(code, err, words[name])


def test_control_characters_in_names_never_reach_the_html(tmp_path: Path):
    from reportgen.render import RenderOptions
    from reportgen.render.html import render_html

    report = F.passing_binary()
    named = type(report)(**{**{f: getattr(report, f) for f in report.__dataclass_fields__}, "name": "names\x1b[31m\x07"})
    html = render_html(named, RenderOptions())
    assert b"\x1b" not in html and b"\x07" not in html


def test_a_strict_gate_refuses_settings_it_cannot_rank():
    """calibration.bins: 2 or release_comparison.metrics: [accuracy] may weaken a check; strict refuses them."""
    from reportgen.checks import registry
    from reportgen.gate import gate_overrides, strict_result

    specs = [c.spec for c in registry.all()]
    for checks in ({"calibration": {"bins": 2}}, {"release_comparison": {"metrics": ["accuracy"]}}):
        overrides = gate_overrides(specs, checks)
        assert [o.effect for o in overrides] == ["changed"]
        refusal = strict_result(overrides)
        assert refusal is not None and refusal.status == "fail" and refusal.severity == "error"
    assert strict_result(gate_overrides(specs, {"minority_recall": {"min": 0.7}})) is None  # a tightening passes
