"""Third-party checks: the registry object, checks named in the config by import path, installed
entry-point plug-ins (in a fresh venv), the lazy public API, and docs/checks.md generated from
the registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO, cancer_config, write_config
from reportgen.checks import catalog, registry
from reportgen.checks.base import Check, CheckRegistry, CheckSpec, Measurement, PluginError, run_check

EXAMPLE = REPO / "examples" / "reportgen-example-check"
EXAMPLE_MODULE = EXAMPLE / "reportgen_example_check.py"
FORMATS = "html,pdf,json,junit,md"


def clean_env() -> dict[str, str]:
    """The environment for a child reportgen: no PYTHONPATH, quiet OpenMP."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def reportgen(python: str, *argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``python -m reportgen ARGV`` in a child process (plug-ins change the process-wide registry)."""
    return subprocess.run([python, "-m", "reportgen", *argv], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=300, check=False)


def test_docs_checks_table_is_generated_from_the_registry():
    built_in = [c for c in registry.all() if registry.origin(c.spec.id) == "built-in"]
    table = catalog.markdown_table(built_in)
    text = (REPO / "docs" / "checks.md").read_text(encoding="utf-8")
    start, end = text.index(catalog.TABLE_START), text.index(catalog.TABLE_END) + len(catalog.TABLE_END)
    assert text[start:end] + "\n" == table, "regenerate with: reportgen checks --format md"
    assert "`release_comparison`" in table
    assert {c.spec.id for c in built_in} == {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}


def test_public_api_is_lazy_and_complete():
    probe = ("import sys, reportgen\n"
             "assert 'reportgen.checks.base' not in sys.modules\n"
             "from reportgen import Check, CheckSpec, CheckSettings, Param, Measurement, Finding, CheckContext, register\n"
             "assert Check.__module__ == 'reportgen.checks.base'\n"
             "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))\n")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=clean_env(), check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


class _Ratio(Check):
    spec = CheckSpec(id="ratio_probe", title="Ratio", family="data", detects="A probe.", how_to_read="Probe.",
                     default_severity="error", threshold_key="max", default_threshold=0.5, threshold_range=(0.0, 1.0))

    def run(self, ctx, settings):
        return Measurement(0.7, "the ratio is 0.70", {"ratio": 0.7}, violation="Too high", advice="lower it")


def test_the_base_judges_a_measurement_in_the_spec_direction(leaky_context):
    failed = run_check(_Ratio(), leaky_context, None)
    assert (failed.status, failed.value, failed.threshold, failed.higher_is_better) == ("fail", 0.7, 0.5, False)
    assert failed.message == "Too high: the ratio is 0.70, above the 0.5 limit: lower it."
    passed = run_check(_Ratio(), leaky_context, {"max": 0.8})
    assert passed.status == "pass" and passed.message == "The ratio is 0.70, within the 0.8 limit."
    with pytest.raises(ValueError, match="max must be from 0 to 1"):
        _Ratio.spec.settings_from({"max": 2})
    # A value that rounds to its threshold's digits is given again with the decimals that tell them apart,
    # in the message and in the report's Value cell.
    near = run_check(_Ratio(), leaky_context, {"max": 0.69996})
    assert near.status == "fail"
    assert near.message == "Too high: the ratio is 0.70, above the 0.69996 limit (measured 0.70000): lower it."
    from reportgen.render import fmt

    assert fmt.value_text(near) == "0.70000" and fmt.value_text(failed) == "0.700"


@pytest.fixture(scope="module")
def leaky_context():
    from check_helpers import breast_cancer, context, make_bundle, split_rows, standardiser

    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    parts = {name: (transform(X[r]), y[r], r) for name, r in rows.items()}
    return context(make_bundle("binary", parts, classes, names))


def test_registry_object_rejects_what_is_not_a_check():
    checks = CheckRegistry(builtin_modules=(), entry_point_group=None)
    with pytest.raises(PluginError, match="is not a subclass of reportgen.Check"):
        checks.add(dict, "plug-in 'x:dict'")
    checks.add(_Ratio, "test")
    assert checks.add(_Ratio, "again").spec.id == "ratio_probe"  # the same class twice is fine

    class Other(_Ratio):
        pass

    with pytest.raises(PluginError, match="check id 'ratio_probe' is already taken by test"):
        checks.add(Other, "plug-in 'y:Other'")


def plugin_config(tmp_path: Path, cancer_csv: Path, **changes) -> Path:
    shutil.copy(EXAMPLE_MODULE, tmp_path / EXAMPLE_MODULE.name)
    document = cancer_config(cancer_csv, training={"epochs": 3, "lr": 0.01}, plugins=["reportgen_example_check.py:PositiveRate"])
    document.update(changes)
    return write_config(tmp_path, document)


def test_a_check_named_in_the_config_is_validated_and_can_fail_the_gate(tmp_path: Path, cancer_csv: Path):
    bad = plugin_config(tmp_path, cancer_csv, checks={"positive_rate": {"split": "train"}})
    completed = reportgen(sys.executable, "validate", str(bad))
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip() == "reportgen: error: checks.positive_rate: split must be one of test, val, not 'train'"
    path = plugin_config(tmp_path, cancer_csv, checks={"positive_rate": {"min": 5, "severity": "error"}})
    out = tmp_path / "out"
    completed = reportgen(sys.executable, "run", str(path), "--out", str(out), "--quiet", "--format", "json,md,junit")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "FAIL positive_rate: The model flags" in completed.stdout and "below the 5 minimum" in completed.stdout
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    result = next(c for c in results["checks"] if c["id"] == "positive_rate")
    assert result["status"] == "fail" and result["threshold"] == 5 and result["higher_is_better"] is True
    assert results["config"]["plugins"] == ["reportgen_example_check.py:PositiveRate"]
    assert "Predicted positive rate" in (out / "summary.md").read_text(encoding="utf-8")
    assert "positive_rate" in (out / "junit.xml").read_text(encoding="utf-8")
    # A plug-in check's settings are compared with its own defaults like a built-in's.
    assert results["gate"]["overrides"] == [
        {"check": "positive_rate", "setting": "min", "default": 0.5, "value": 5, "effect": "tightened"},
        {"check": "positive_rate", "setting": "severity", "default": "warning", "value": "error", "effect": "severity_raised"},
    ]


def test_a_relaxed_plugin_check_is_an_override_the_strict_gate_refuses():
    import importlib.util

    from reportgen.gate import gate_overrides, strict_result

    spec = importlib.util.spec_from_file_location("reportgen_example_check_probe", EXAMPLE_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    overrides = gate_overrides([module.PositiveRate.spec], {"positive_rate": {"min": 0.1}})
    assert [o.describe() for o in overrides] == ["positive_rate.min relaxed from 0.5 to 0.1"]
    refusal = strict_result(overrides)
    assert refusal is not None and refusal.status == "fail" and "positive_rate.min relaxed" in refusal.message


@pytest.mark.parametrize(
    ("source", "reference", "expected"),
    [
        ("raise ImportError('needs libfoo')\n", "broken.py:Nope",
         "plug-in 'broken.py:Nope' cannot be imported: ImportError: needs libfoo"),
        ("X = 1\n", "notacheck.py:X", "plug-in 'notacheck.py:X': 1 is not a subclass of reportgen.Check"),
        ("", "missing_mod:Thing", "plug-in 'missing_mod:Thing': plugins: cannot import module 'missing_mod'"),
        ("from reportgen import Check, CheckSpec\nclass Dup(Check):\n"
         "    spec = CheckSpec(id='minority_recall', title='t', family='data', detects='d.', how_to_read='h.', default_severity='error')\n"
         "    def run(self, ctx, settings): pass\n", "dup.py:Dup", "check id 'minority_recall' is already taken by built-in"),
    ],
)
def test_a_broken_plugin_is_exit_2_with_one_line(tmp_path: Path, cancer_csv: Path, source, reference, expected):
    if source:
        (tmp_path / reference.split(":")[0]).write_text(source, encoding="utf-8")
    path = write_config(tmp_path, cancer_config(cancer_csv, plugins=[reference]))
    completed = reportgen(sys.executable, "validate", str(path))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reportgen: error: ") and expected in lines[0], lines


def fake_installed(site: Path, name: str, entry_points: str) -> None:
    """Make ``site`` hold the metadata of an installed distribution (what pip writes as .dist-info)."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[reportgen.checks]\n{entry_points}\n", encoding="utf-8")


def test_entry_point_plugins_are_loaded_and_a_broken_one_is_exit_2(tmp_path: Path, cancer_csv: Path):
    site = tmp_path / "site"
    fake_installed(site, "example-check", "positive_rate = reportgen_example_check:PositiveRate")
    shutil.copy(EXAMPLE_MODULE, site / EXAMPLE_MODULE.name)
    env = {**clean_env(), "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "reportgen", "checks", "--format", "json"], capture_output=True,
                            text=True, cwd=REPO, env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    record = json.loads(listed.stdout)[-1]
    assert record["id"] == "positive_rate" and "entry point 'positive_rate' of example-check" in record["origin"]
    assert record["settings"] == [{"name": "split", "default": "test", "kind": "str", "minimum": None, "maximum": None,
                                   "nullable": False, "choices": ["test", "val"], "description": "Split to measure."}]
    assert record["threshold_range"] == [0.0, None]

    fake_installed(site, "broken-check", "broken = no_such_module:Thing")
    path = write_config(tmp_path, cancer_config(cancer_csv))
    for argv in (["checks"], ["validate", str(path)]):
        completed = subprocess.run([sys.executable, "-m", "reportgen", *argv], capture_output=True, text=True, cwd=REPO,
                                   env=env, check=False)
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert completed.stderr.strip() == (
            "reportgen: error: plug-in 'no_such_module:Thing' (entry point 'broken' of broken-check) cannot be "
            "imported: ModuleNotFoundError: No module named 'no_such_module'")


@pytest.mark.slow
def test_installed_example_package_is_a_check_in_every_format_and_the_gate(tmp_path: Path, cancer_csv: Path):
    """A fresh venv (no system site-packages) gets reportgen from this worktree and the example package
    installed with pip; the installed dependencies are reused through a .pth file naming this
    interpreter's site-packages (offline, no build of torch & co.). reportgen itself is added by a
    .pth naming the worktree (its hatchling build backend is not installed here); the example
    package is a real pip install, so its entry point is real package metadata."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_reportgen_test_deps.pth").write_text(
        f"{REPO}\n{sysconfig.get_paths()['purelib']}\n", encoding="utf-8")
    package = shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = subprocess.run(  # from a copy: setuptools writes build/ and *.egg-info next to the sources
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", str(package)],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run([python, "-c", "import reportgen, reportgen_example_check as m; print(reportgen.__file__); print(m.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=clean_env(), check=True).stdout.split()
    assert where[0].startswith(str(REPO)) and where[1].startswith(site)

    listed = reportgen(python, "checks", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("positive_rate"))
    assert "min 0.5" in line and "entry point 'positive_rate' of reportgen-example-check" in line
    records = json.loads(reportgen(python, "checks", "--format", "json", cwd=tmp_path).stdout)
    assert records[-1]["id"] == "positive_rate"

    document = cancer_config(cancer_csv, training={"epochs": 3, "lr": 0.01})
    path = write_config(tmp_path, document)
    out = tmp_path / "out"
    completed = reportgen(python, "run", str(path), "--out", str(out), "--quiet", "--format", FORMATS,
                          "--set", "checks.positive_rate.min=5", "--set", "checks.positive_rate.severity=error", cwd=tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "FAIL positive_rate:" in completed.stdout
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    result = next(c for c in results["checks"] if c["id"] == "positive_rate")
    assert result["status"] == "fail" and result["title"] == "Predicted positive rate"
    assert "Predicted positive rate" in (out / "report.html").read_text(encoding="utf-8")
    assert "does a binary model" not in (out / "report.html").read_text(encoding="utf-8")  # the spec's own texts
    assert "flags far fewer" in (out / "report.html").read_text(encoding="utf-8")
    assert "Predicted positive rate" in (out / "summary.md").read_text(encoding="utf-8")
    assert "positive_rate" in (out / "junit.xml").read_text(encoding="utf-8")
    from pypdf import PdfReader

    pdf_text = " ".join(page.extract_text() for page in PdfReader(str(out / "report.pdf")).pages)
    assert "Predicted positive rate" in pdf_text

    # the same config without the tightened threshold passes the gate (the example is a warning by default)
    passing = reportgen(python, "run", str(path), "--out", str(tmp_path / "out2"), "--quiet", "--format", "json", cwd=tmp_path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    # a re-render in the venv is byte-identical, the plug-in's texts included
    rendered = reportgen(python, "render", str(out / "results.json"), "--out", str(tmp_path / "again"), "--format", "html,md,junit",
                         cwd=tmp_path)
    assert rendered.returncode == 1, rendered.stderr
    for name in ("report.html", "summary.md", "junit.xml"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_settings_for_a_check_that_is_not_loaded_point_at_plugins():
    from reportgen.config import validate
    from reportgen.errors import ConfigError

    document = {"name": "m", "task": "binary", "data": {"kind": "csv", "path": "d.csv", "target": "y"},
                "model": {"kind": "mlp"}, "checks": {"positive_rate_xyz": {"min": 0.8}}}
    with pytest.raises(ConfigError, match=r"unknown check 'checks.positive_rate_xyz' \(a plug-in check needs its package "
                                          r"installed or a 'plugins:' entry\)"):
        validate(document)


def test_report_order_does_not_depend_on_import_order():
    probe = ("import reportgen.checks.comparison_checks, reportgen.checks.training_checks\n"
             "from reportgen.checks import registry\nprint(' '.join(registry.ids()))\n")
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=clean_env(), check=True)
    plain = subprocess.run([sys.executable, "-c", "from reportgen.checks import registry\nprint(' '.join(registry.ids()))"],
                           capture_output=True, text=True, cwd=REPO, env=clean_env(), check=True)
    assert first.stdout == plain.stdout
    ids = plain.stdout.split()
    assert ids[0] == "data_integrity" and ids.index("gradient_flow") < ids.index("release_comparison")


UNWRITABLE_CHECKS = '''
from reportgen import Check, CheckSpec, Finding, Measurement


def _spec(check_id, **extra):
    return CheckSpec(id=check_id, title=check_id, family="performance", detects="Nothing.", how_to_read="Nothing.",
                     default_severity="warning", **extra)


class Deep(Check):
    spec = _spec("deep_evidence")

    def run(self, ctx, settings):
        evidence = "leaf"
        for _ in range(80):
            evidence = {"k": evidence}
        return Finding("ok", None, "deep", {"deep": evidence})


class Huge(Check):
    spec = _spec("huge_evidence")

    def run(self, ctx, settings):
        return Finding("ok", None, "huge", {"rows": ["x" * 1000] * 3000})


class NotANumber(Check):
    spec = _spec("nan_measurement", threshold_key="max", default_threshold=0.5)

    def run(self, ctx, settings):
        return Measurement(float("nan"), "the nan thing")


class Fine(Check):
    spec = _spec("fine_evidence")

    def run(self, ctx, settings):
        return Finding("ok", None, "fine", {"nested": {"a": [1, {"b": 2}]}})
'''


def test_a_result_results_json_could_not_read_back_is_an_error_result_and_the_file_loads(tmp_path: Path,
                                                                                        cancer_csv: Path):
    """Evidence nested deeper than the loader allows, or larger than a check may write, and a measured value
    that is not a number each make that check an error with the reason; the written results.json renders."""
    (tmp_path / "unwritable.py").write_text(UNWRITABLE_CHECKS, encoding="utf-8")
    names = ["Deep", "Huge", "NotANumber", "Fine"]
    path = write_config(tmp_path, cancer_config(cancer_csv, training={"epochs": 3, "lr": 0.01},
                                                plugins=[f"unwritable.py:{n}" for n in names]))
    out = tmp_path / "out"
    completed = reportgen(sys.executable, "run", str(path), "--out", str(out), "--quiet", "--format", "json,md")
    assert completed.returncode in (0, 1), completed.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in results["checks"]}
    assert by_id["deep_evidence"]["status"] == "error"
    assert "evidence is nested more than 56 levels deep" in by_id["deep_evidence"]["message"]
    assert by_id["huge_evidence"]["status"] == "error"
    assert "more than the 1,024 KiB one check may write" in by_id["huge_evidence"]["message"]
    nan = by_id["nan_measurement"]
    assert nan["status"] == "error" and nan["value"] is None
    assert "not a finite number" in nan["message"] and "limit" not in nan["message"]
    assert by_id["fine_evidence"]["status"] == "pass"
    rendered = reportgen(sys.executable, "render", str(out / "results.json"), "--out", str(tmp_path / "again"),
                         "--format", "md")
    assert rendered.returncode == completed.returncode, rendered.stderr
    assert (tmp_path / "again" / "summary.md").read_text(encoding="utf-8") == (out / "summary.md").read_text(encoding="utf-8")


def test_a_non_finite_measurement_is_never_compared_with_the_threshold(leaky_context):
    class Infinite(_Ratio):
        def run(self, ctx, settings):
            return Measurement(float("inf"), "the ratio is unbounded")

    result = run_check(Infinite(), leaky_context, None)
    assert (result.status, result.value) == ("error", None)
    assert result.message.startswith("the check measured inf, not a finite number, so it cannot be judged")
    assert "limit" not in result.message


WRITING_PLUGIN = '''
import numpy as np
from reportgen import Check, CheckSpec, Measurement


def spec(check_id):
    return CheckSpec(id=check_id, title=check_id, family="data", detects="x.", how_to_read="x.",
                     default_severity="error", threshold_key="max", default_threshold=0.0)


class WriteSample(Check):
    spec = spec("a_write_sample")
    uses_row_sample = True

    def run(self, ctx, settings):
        ctx.row_sample("test").split.features[:] = 0.0
        return Measurement(0, "wrote", {})


class WriteData(Check):
    spec = spec("a_write_data")

    def run(self, ctx, settings):
        ctx.data.splits["test"].labels[:] = 0
        return Measurement(0, "wrote", {})


class WriteProbs(Check):
    spec = spec("a_write_probs")

    def run(self, ctx, settings):
        ctx.predictions["test"].probs[:] = 0.0
        return Measurement(0, "wrote", {})


class Reader(Check):
    spec = spec("z_reader")
    uses_row_sample = True

    def run(self, ctx, settings):
        sample = ctx.row_sample("test")
        zero_rows = int((~sample.split.features.any(axis=1)).sum())
        zero_probs = int((~ctx.predictions["test"].probs.any(axis=1)).sum())
        positives = int(sample.split.labels.sum())
        return Measurement(zero_rows + zero_probs, f"{zero_rows} zero rows, {zero_probs} zero scores",
                           {"positives": positives})
'''


def test_a_check_that_writes_into_its_inputs_is_an_error_and_later_checks_see_the_data_unchanged_on_any_n(
        tmp_path: Path, cancer_csv: Path):
    """Inputs are read-only: the row sample (the split's own arrays on one process, a gathered copy on two),
    ctx.data and the predictions. A write raises, and the same ``error`` result comes on 1 and 2 workers."""
    (tmp_path / "writer.py").write_text(WRITING_PLUGIN, encoding="utf-8")
    document = cancer_config(cancer_csv, training={"epochs": 2, "lr": 0.01},
                             plugins=[f"writer.py:{name}" for name in ("WriteSample", "WriteData", "WriteProbs", "Reader")])
    config = write_config(tmp_path, document)
    seen = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        completed = reportgen(sys.executable, "run", str(config), "--out", str(out), "--quiet", "--format", "json",
                              "--nproc-per-node", str(n))
        assert completed.returncode in (0, 1), completed.stdout + completed.stderr
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        by_id = {c["id"]: c for c in results["checks"]}
        for writer in ("a_write_sample", "a_write_data", "a_write_probs"):
            assert by_id[writer]["status"] == "error", by_id[writer]
            assert "read-only" in by_id[writer]["message"], by_id[writer]["message"]
        assert [c for c, r in by_id.items() if r["status"] == "error" and not c.startswith("a_write")] == []
        reader = by_id["z_reader"]
        assert reader["status"] == "pass" and reader["value"] == 0, reader
        seen[n] = ({k: c["status"] for k, c in by_id.items()}, reader["evidence"]["positives"])
    assert seen[1] == seen[2]
    assert seen[1][1] > 0  # the test split's labels were not zeroed
