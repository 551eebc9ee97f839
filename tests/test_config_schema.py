"""The total config schema: one model per data/model kind, typed check settings, hardened YAML,
the seed range, command-line flags merged into the config as run, and `validate` checking what
`run` checks before training."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SAMPLES, cancer_config, read_results, write_config
from reportgen.cli import main
from reportgen.config import MAX_CONFIG_BYTES, load_config, validate
from reportgen.errors import ConfigError

MINIMAL = {
    "name": "m",
    "task": "binary",
    "data": {"kind": "csv", "path": "d.csv", "target": "y"},
    "model": {"kind": "mlp"},
}


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def config_error(document: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(document)
    return str(caught.value)


@pytest.mark.parametrize(
    ("data", "model", "expected"),
    [
        ({"kind": "csv", "path": "d.csv", "target": "y", "factory": "f.py:make"}, {"kind": "mlp"},
         "unknown key 'data.factory' for data.kind csv (did you mean 'data.features'?); it applies to data.kind python"),
        ({"kind": "csv", "path": "d.csv", "target": "y"}, {"kind": "linear", "hidden": [8]},
         "unknown key 'model.hidden' for model.kind linear; it applies to model.kind mlp"),
        ({"kind": "csv", "path": "d.csv", "target": "y"}, {"kind": "mlp", "kwargs": {"width": 3}},
         "unknown key 'model.kwargs' for model.kind mlp; it applies to model.kind python"),
        ({"kind": "npz", "path": "d.npz", "target": "y"}, {"kind": "mlp"},
         "unknown key 'data.target' for data.kind npz; it applies to data.kind csv or parquet"),
        ({"kind": "python", "factory": "f.py:make", "standardize": False}, {"kind": "mlp"},
         "unknown key 'data.standardize' for data.kind python; it applies to data.kind csv or parquet"),
        ({"kind": "csv", "path": "d.csv", "target": "y"}, {"kind": "torchscript", "path": "m.pt", "dropout": 0.1},
         "unknown key 'model.dropout' for model.kind torchscript; it applies to model.kind mlp"),
        ({"kind": "cvs", "path": "d.csv"}, {"kind": "mlp"},
         "data.kind must be one of csv, parquet, npz, python, not 'cvs' (did you mean 'csv'?)"),
        ({"path": "d.csv"}, {"kind": "mlp"}, "missing required key 'data.kind'"),
        ({"kind": "csv", "path": "d.csv", "target": "y"}, {"kind": "python"}, "missing required key 'model.target'"),
        ({"kind": "csv", "path": "d.csv", "target": "y"}, {"kind": "mlp", "hiden": [3]},
         "unknown key 'model.hiden' (did you mean 'model.hidden'?)"),
        ({"kind": "csv", "path": "d.csv", "target": "y", "split": {"vall": 0.1}}, {"kind": "mlp"},
         "unknown key 'data.split.vall' (did you mean 'data.split.val'?)"),
    ],
)
def test_a_key_of_another_kind_is_an_unknown_key(data, model, expected):
    assert config_error({**MINIMAL, "data": data, "model": model}) == expected


def test_every_kind_keeps_its_keys_and_every_sample_config_stays_valid():
    kinds = [
        ({"kind": "csv", "train": "a.csv", "test": "b.csv", "target": "y", "ignore": ["id"], "missing": "drop"}, {"kind": "linear"}),
        ({"kind": "parquet", "path": "d.parquet", "target": "y", "categorical": ["c"]}, {"kind": "mlp", "hidden": [4], "dropout": 0.1}),
        ({"kind": "npz", "path": "d.npz", "classes": ["a", "b"]}, {"kind": "torchscript", "path": "m.pt", "threshold": 0.3}),
        ({"kind": "python", "factory": "f.py:make", "kwargs": {"n": 1}, "batch_size": 8},
         {"kind": "python", "target": "m.py:M", "kwargs": {"w": 2}, "checkpoint": "m.pt", "head": {"attribute": "fc", "out_features": 1}}),
    ]
    for data, model in kinds:
        config = validate({**MINIMAL, "data": data, "model": model})
        assert config.data.kind == data["kind"] and config.model.kind == model["kind"]
    for sample in sorted(SAMPLES.glob("*.yaml")):
        assert load_config(sample).config.name


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ({"threshold_tradeoff": {"target_recall": 1.5}}, "checks.threshold_tradeoff: target_recall must be at most 1, not 1.5"),
        ({"calibration": {"bins": -3}}, "checks.calibration: bins must be at least 2, not -3"),
        ({"calibration": {"bins": 7.5}}, "checks.calibration: bins must be a whole number, not 7.5"),
        ({"release_comparison": {"metrics": "rmse"}}, "checks.release_comparison: metrics must be a list, not 'rmse'"),
        ({"release_comparison": {"metrics": ["rmse", "accuracyy"]}}, "metrics: 'accuracyy' is not one of"),
        ({"minority_recall": {"min": 1.5}}, "checks.minority_recall: min must be from 0 to 1, not 1.5"),
        ({"train_test_overlap": {"max": -0.1}}, "checks.train_test_overlap: max must be from 0 to 1, not -0.1"),
        ({"overfit_gap": {"metric": "rmse"}}, "checks.overfit_gap: metric must be one of balanced_accuracy"),
        ({"loss_curve": {"patience": 0}}, "checks.loss_curve: patience must be at least 1, not 0"),
        ({"data_integrity": {"min_class_support": "ten"}}, "min_class_support must be a whole number"),
        ({"gradient_flow": {"min_ratio": 2}}, "min_ratio must be at most 1"),
    ],
)
def test_check_settings_are_typed_and_bounded(checks, expected):
    assert expected in config_error({**MINIMAL, "checks": checks})


def test_valid_check_settings_are_kept():
    config = validate({**MINIMAL, "checks": {
        "threshold_tradeoff": {"target_recall": 0.8}, "calibration": {"bins": 10},
        "release_comparison": {"metrics": ["recall", "roc_auc"]}, "minority_recall": {"min": 0.7},
    }})
    assert config.checks["release_comparison"]["metrics"] == ["recall", "roc_auc"]


def test_bad_check_settings_exit_2_from_validate_and_run(tmp_path: Path, cancer_csv: Path):
    path = write_config(tmp_path, cancer_config(cancer_csv, checks={"threshold_tradeoff": {"target_recall": 1.5}}))
    for command in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]):
        code, out, err = run_cli(*command)
        assert code == 2, out + err
        assert err.strip() == "reportgen: error: checks.threshold_tradeoff: target_recall must be at most 1, not 1.5"
    assert not (tmp_path / "out").exists()


def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path):
    """The 'billion laughs' document: 9 levels of 10 aliases each, 1e9 values once expanded, under 1 KB."""
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"    l{level}: &l{level} [{refs}]")
    text = ("name: bomb\ntask: binary\ndata: {kind: csv, path: d.csv, target: y}\n"
            "model:\n  kind: python\n  target: m.py:M\n  kwargs:\n" + "\n".join(lines) + "\n")
    assert len(text.encode()) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="expands to more than 100,000 values through its aliases"):
        load_config(path)
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and err.count("\n") == 1


def test_a_few_aliases_stay_valid(tmp_path: Path):
    path = tmp_path / "anchors.yaml"
    path.write_text("name: m\ntask: binary\ndata: &d {kind: csv, path: d.csv, target: y}\nmodel: {kind: mlp}\n"
                    "checks:\n  minority_recall: &strict {severity: error}\n  baseline_comparison: *strict\n", encoding="utf-8")
    assert load_config(path).config.checks["baseline_comparison"] == {"severity": "error"}


def test_duplicate_keys_name_both_lines(tmp_path: Path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: m\ntask: binary\ndata: {kind: csv, path: d.csv, target: y}\nmodel: {kind: mlp}\n"
                    "checks:\n  minority_recall: {min: 0.5}\nseed: 1\nchecks:\n  minority_recall: {enabled: false}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dup.yaml: duplicate key 'checks' at lines 5 and 8"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: m\ntask: binary\ndata:\n  kind: csv\n  path: d.csv\n  kind: npz\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'kind' at lines 4 and 6"):
        load_config(nested)
    valid = write_config(tmp_path, MINIMAL, "valid.yaml")
    with pytest.raises(ConfigError, match="duplicate key 'a' at lines 1 and 1"):
        load_config(valid, ["checks={a: 1, a: 2}"])


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {severity: warning, min: 0.3}\n", encoding="utf-8")
    document = {"name": "m", "task": "binary", "data": {"kind": "csv", "path": "d.csv", "target": "y"}, "model": {"kind": "mlp"}}
    text = yaml.safe_dump(document) + "checks:\n  minority_recall:\n    <<: {severity: warning, min: 0.3}\n    min: 0.6\n"
    path.write_text(text, encoding="utf-8")
    assert load_config(path).config.checks["minority_recall"] == {"severity": "warning", "min": 0.6}


def test_config_size_and_file_kind_are_bounded(tmp_path: Path):
    big = tmp_path / "big.yaml"
    big.write_text("name: m\n# " + "x" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(big)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)  # would block forever if it were opened
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="deep.yaml: "):
        load_config(deep)


@pytest.mark.parametrize("seed", [-1, 2**64, True, 1.5, "7"])
def test_seed_outside_0_to_2_pow_64_is_a_config_error(seed):
    assert config_error({**MINIMAL, "seed": seed}).startswith("seed must be a whole number from 0 to 2**64 - 1")


def test_largest_seed_is_valid():
    assert validate({**MINIMAL, "seed": 2**64 - 1}).seed == 2**64 - 1


def test_flags_override_set_which_overrides_yaml(tmp_path: Path):
    path = write_config(tmp_path, {**MINIMAL, "report": {"formats": ["html"]}})
    from_yaml = load_config(path)
    with_set = load_config(path, ["report.formats=[md]"])
    with_flags = load_config(path, ["report.formats=[md]"], {"report.formats": ["json"], "compare_to": "/abs/r.json"})
    assert from_yaml.config.report.formats == ["html"]
    assert with_set.config.report.formats == ["md"]
    assert with_flags.config.report.formats == ["json"] and with_flags.config.compare_to == "/abs/r.json"
    assert with_flags.raw["report"]["formats"] == ["json"] and with_flags.raw["compare_to"] == "/abs/r.json"
    assert len({from_yaml.sha256, with_set.sha256, with_flags.sha256}) == 3
    assert load_config(path, [], {"report.formats": None}).sha256 == from_yaml.sha256


@pytest.mark.slow
def test_run_records_the_flags_in_the_config_as_run(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv, training={"epochs": 2, "lr": 0.01}, report={"formats": ["html", "json"]})
    path = write_config(tmp_path, document)
    first = tmp_path / "first"
    code, out, err = run_cli("run", str(path), "--out", str(first), "--quiet", "--format", "json")
    assert code in (0, 1), err
    assert sorted(p.name for p in first.iterdir() if p.suffix != ".pt") == ["results.json"]
    baseline = read_results(first)
    assert baseline["config"]["report"]["formats"] == ["json"]
    second = tmp_path / "second"
    code, out, err = run_cli("run", str(path), "--out", str(second), "--quiet", "--format", "json,md",
                             "--compare-to", str(first / "results.json"))
    assert code in (0, 1), err
    results = read_results(second)
    assert results["config"]["report"]["formats"] == ["json", "md"]
    assert results["config"]["compare_to"] == str((first / "results.json").resolve())
    assert results["environment"]["config_sha256"] != baseline["environment"]["config_sha256"]
    assert load_config(path, [], {"report.formats": ["json", "md"], "compare_to": str((first / "results.json").resolve())}
                       ).sha256 == results["environment"]["config_sha256"]
    comparison = next(c for c in results["checks"] if c["id"] == "release_comparison")
    assert comparison["status"] != "skip", comparison["message"]


def test_validate_checks_compare_to_templates_and_out_like_run(tmp_path: Path, cancer_csv: Path):
    path = write_config(tmp_path, cancer_config(cancer_csv, compare_to="missing/results.json"))
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and "compare_to:" in err and "results file not found" in err and err.count("\n") == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli("validate", str(write_config(tmp_path, cancer_config(cancer_csv))), "--compare-to", str(broken))
    assert code == 2 and "broken.json" in err and err.count("\n") == 1
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("{% if %}", encoding="utf-8")
    path = write_config(tmp_path, cancer_config(cancer_csv, report={"formats": ["html"], "template_dir": "templates"}))
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and err.count("\n") == 1, err
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    code, _, err = run_cli("validate", str(write_config(tmp_path, cancer_config(cancer_csv))), "--out", str(a_file))
    assert code == 2 and err.count("\n") == 1, err
    code, out, err = run_cli("validate", str(write_config(tmp_path, cancer_config(cancer_csv))), "--out", str(tmp_path / "new"))
    assert code == 0 and out.startswith("OK: cancer"), err
    assert not (tmp_path / "new").exists()


def test_the_documentation_states_the_order_and_the_limits():
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for fact in ("defaults < YAML < `--set` < flags", "1 MiB", "100,000", "2**64 - 1", "duplicate key"):
        assert fact in text, fact


def test_alias_bomb_is_refused_under_a_memory_limit(tmp_path: Path):
    """The same bomb loaded in a child process limited to 1 GiB of address space above its start:
    reportgen 0.1 expanded it past 2.5 GB while hashing and validating."""
    import subprocess
    import sys

    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\ntask: binary\ndata: {kind: csv, path: d.csv, target: y}\n"
                    "model:\n  kind: python\n  target: m.py:M\n  kwargs:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    probe = (
        "import resource, sys\n"
        "from reportgen.config import load_config\n"
        "from reportgen.errors import ConfigError\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, used + 2**30))\n"
        "try:\n    load_config(sys.argv[1])\nexcept ConfigError as exc:\n    print(exc)\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, cwd=REPO,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "expands to more than 100,000 values" in completed.stdout


def test_library_flags_are_written_into_the_config_too(tmp_path: Path):
    path = write_config(tmp_path, MINIMAL)
    loaded = load_config(path)
    flagged = loaded.with_flags({"report.formats": ["md"], "compare_to": "/abs/r.json"})
    assert flagged.config.report.formats == ["md"] and flagged.raw["compare_to"] == "/abs/r.json"
    assert flagged.sha256 == load_config(path, [], {"report.formats": ["md"], "compare_to": "/abs/r.json"}).sha256
    assert loaded.with_flags({"report.formats": None}) is loaded
    with pytest.raises(ConfigError, match="report.formats"):
        loaded.with_flags({"report.formats": ["docx"]})


def test_config_values_are_read_as_yaml_1_2_not_1_1(tmp_path: Path, cancer_csv: Path):
    """A person writes `classes: [no, yes]`, a code 010 and lr 1e-3: YAML 1.1 (PyYAML's default) would read
    False/True, 8 and the string '1e-3'. The core schema of YAML 1.2 keeps them as written."""
    rows = "".join(f"{i / 10},{'yes' if i % 2 else 'no'}\n" for i in range(40))
    (tmp_path / "labels.csv").write_text("x,label\n" + rows, encoding="utf-8")
    text = (
        "name: off\ntask: binary\nseed: 010\n"
        "data: {kind: csv, path: labels.csv, target: label, classes: [no, yes], positive_class: yes}\n"
        "model: {kind: linear}\ntraining: {epochs: 1, lr: 1e-3}\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path).config
    assert config.name == "off" and config.seed == 10
    assert config.data.classes == ["no", "yes"] and config.data.positive_class == "yes"
    assert config.training is not None and config.training.lr == 0.001
    code = main(["validate", str(path)], out=io.StringIO(), err=io.StringIO())
    assert code == 0
