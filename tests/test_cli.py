"""The CLI contract: exit codes, one-line errors on stderr, and no files left behind on bad input."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reportgen import __version__
from reportgen.cli import main

from conftest import REPO, cancer_config, read_results, user_model, write_config


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(err: str, *fragments: str) -> None:
    """stderr holds exactly one line, starting with 'reportgen: error:', with each fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("reportgen: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_passing_run_exits_0_and_writes_results(tmp_path: Path, cancer_config_path: Path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli("run", str(cancer_config_path), "--out", str(out_dir), "--quiet")
    assert code == 0, out + err
    assert out.startswith("PASS: cancer:")
    assert err == ""
    results = read_results(out_dir)
    assert results["status"] == "pass"
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pt", "results.json"]


def test_failing_gate_exits_1(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv, checks={"baseline_comparison": {"min": 0.99}})
    code, out, _ = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 1
    assert out.startswith("FAIL: cancer:") and "FAIL baseline_comparison" in out
    assert read_results(tmp_path / "out")["status"] == "fail"


def test_runtime_error_exits_3_with_one_line(tmp_path: Path, cancer_csv: Path):
    (tmp_path / "flaky.py").write_text(
        "import torch\n"
        "class Flaky(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.fc = torch.nn.Linear(30, 1)\n"
        "    def forward(self, x):\n"
        "        if x.shape[0] > 2:\n"
        "            raise RuntimeError('device fell over')\n"
        "        return self.fc(x)\n",
        encoding="utf-8",
    )
    document = cancer_config(cancer_csv, model={"kind": "python", "target": "flaky.py:Flaky"})
    code, out, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 3
    assert err.strip().splitlines() == ["reportgen: runtime error: RuntimeError: device fell over (rerun with --debug for the traceback)"]
    assert not (tmp_path / "out").exists()


def _foreign_checkpoint(folder: Path) -> str:
    import torch

    torch.save({"weight": torch.zeros(3, 3)}, folder / "foreign.pt")
    return "foreign.pt"


def _pickled_code_checkpoint(folder: Path) -> str:
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "evil.pt").write_bytes(pickle.dumps({"1.weight": Payload()}))
    return "evil.pt"


def _broken_templates(folder: Path) -> str:
    """A template folder whose macros file has a syntax error on line 2."""
    (folder / "tpl").mkdir()
    (folder / "tpl" / "macros.html.j2").write_text("{# fine #}\n{% macro badge(c) %}{% if %}{% endmacro %}\n", encoding="utf-8")
    return str(folder / "tpl")


BAD_INPUTS = {
    "unsafe_checkpoint": (lambda folder, csv: cancer_config(csv, model={"kind": "mlp", "hidden": [16], "checkpoint": _pickled_code_checkpoint(folder)}), ["evil.pt holds a pickled Python object (print from builtins), not a state_dict; save model.state_dict()"]),
    "wrong_input_shape": (lambda folder, csv: cancer_config(csv, model=user_model(folder, "Narrow", "self.fc = torch.nn.Linear(20, 1)", "self.fc(x)")), ["the model cannot run on inputs of shape (30,)"]),
    "checkpoint_does_not_fit": (lambda folder, csv: cancer_config(csv, model={"kind": "mlp", "hidden": [16], "checkpoint": _foreign_checkpoint(folder)}), ["checkpoint foreign.pt does not fit the model"]),
    "malformed_yaml": (lambda folder, csv: "name: x\ntask: [binary\n", ["malformed YAML at line"]),
    "unknown_key": (lambda folder, csv: cancer_config(csv, trainig={"epochs": 2}), ["unknown key 'trainig' (did you mean 'training'?)"]),
    "missing_file": (lambda folder, csv: cancer_config(csv, data={**cancer_config(csv)["data"], "path": "absent.csv"}), ["data.path: file not found", "absent.csv"]),
    "missing_target": (lambda folder, csv: cancer_config(csv, data={**cancer_config(csv)["data"], "target": "diagnoses"}), ["column 'diagnoses' is not in cancer.csv", "did you mean 'diagnosis'?"]),
    "label_not_in_classes": (lambda folder, csv: cancer_config(csv, data={**cancer_config(csv)["data"], "classes": ["benign", "cancer"], "positive_class": "cancer"}), ["label 'malignant' at data row", "is not one of the classes ['benign', 'cancer']"]),
    "wrong_output_size": (lambda folder, csv: cancer_config(csv, model=user_model(folder, "Wide", "self.body = torch.nn.Linear(30, 8); self.fc = torch.nn.Linear(8, 1000)", "self.fc(torch.relu(self.body(x)))")), ["the model outputs 1000 values per sample", "model.head"]),
    "empty_split": (lambda folder, csv: cancer_config(csv, data={**cancer_config(csv)["data"], "split": {"val": 0.0, "test": 0.0001}}), ["the test split is empty"]),
    "unknown_check": (lambda folder, csv: cancer_config(csv, checks={"overfitting": {"max": 0.2}}), ["unknown check 'checks.overfitting'"]),
    "missing_template_dir": (lambda folder, csv: cancer_config(csv, report={"template_dir": "no_such_templates"}),
                             ["template_dir", "no_such_templates is not a folder"]),
    "broken_user_template": (lambda folder, csv: cancer_config(csv, report={"template_dir": _broken_templates(folder)}),
                             ["template ", "macros.html.j2:2: "]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path: Path, cancer_csv: Path, case: str):
    make, fragments = BAD_INPUTS[case]
    document = make(tmp_path, cancer_csv)
    path = tmp_path / "config.yaml"
    if isinstance(document, str):
        path.write_text(document, encoding="utf-8")
    else:
        write_config(tmp_path, document)
    out_dir = tmp_path / "out"
    code, out, err = run_cli("run", str(path), "--out", str(out_dir), "--quiet")
    assert code == 2, err
    assert_one_line_error(err, *fragments)
    assert out == ""
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_nan_in_features_exits_2(tmp_path: Path, breast_cancer_frame):
    frame = breast_cancer_frame.copy()
    frame.loc[17, "mean_radius"] = np.nan
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    path = write_config(tmp_path, cancer_config(tmp_path / "cancer.csv"))
    code, _, err = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2
    assert_one_line_error(err, "cancer.csv: 1 empty cell, first in column 'mean_radius' at data row 18", "data.missing")
    assert not (tmp_path / "out").exists()


def test_nan_model_outputs_exit_2(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv, model=user_model(tmp_path, "Nanny", "self.fc = torch.nn.Linear(30, 1)", "self.fc(x) * float('nan')"))
    del document["training"]
    code, _, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2
    assert_one_line_error(err, "the model produced non-finite outputs for")


def test_non_finite_model_outputs_name_the_data_row_as_input_errors_do(tmp_path: Path, breast_cancer_frame):
    frame = breast_cancer_frame.copy()
    frame.loc[41, "mean_radius"] = 1000.0  # index 41 = data row 42 (header excluded, 1-based)
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    nan_where_huge = ("self.fc(x) + torch.where(x[:, :1] > 10, torch.full_like(x[:, :1], float('nan')), "
                      "torch.zeros_like(x[:, :1]))")
    document = cancer_config(tmp_path / "cancer.csv", model=user_model(tmp_path, "Spotty", "self.fc = torch.nn.Linear(30, 2)", nan_where_huge))
    del document["training"]
    code, _, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2
    assert_one_line_error(err, "the model produced non-finite outputs for 1 of", "(first at data row 42)")


def test_set_overrides_and_format_option(tmp_path: Path, cancer_config_path: Path):
    out_dir = tmp_path / "out"
    code, _, err = run_cli("run", str(cancer_config_path), "--out", str(out_dir), "--quiet", "--set", "training.epochs=2", "--set", "name=renamed", "--format", "json,md")
    assert code in (0, 1), err
    results = read_results(out_dir)
    assert results["name"] == "renamed" and results["training"]["epochs_run"] == 2
    assert (out_dir / "summary.md").is_file()
    code, _, err = run_cli("run", str(cancer_config_path), "--format", "json,docx")
    assert code == 2
    assert_one_line_error(err, "unknown format 'docx'")


def test_progress_goes_to_stderr_as_plain_lines_when_not_a_tty(tmp_path: Path, cancer_config_path: Path):
    code, out, err = run_cli("run", str(cancer_config_path), "--out", str(tmp_path / "out"), "--set", "training.epochs=2")
    assert code in (0, 1)
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("reportgen [") for line in lines)
    assert any("epoch 2/2" in line for line in lines)
    assert "\r" not in err


def test_validate_checks_config_data_and_model_without_training(tmp_path: Path, cancer_config_path: Path):
    code, out, err = run_cli("validate", str(cancer_config_path))
    assert code == 0, err
    assert out.startswith("OK: cancer: binary;") and "1 output (sigmoid)" in out
    code, _, err = run_cli("validate", str(cancer_config_path), "--set", "data.target=nope")
    assert code == 2
    assert_one_line_error(err, "column 'nope' is not in cancer.csv")


def test_checks_lists_every_check_with_threshold_and_severity():
    code, out, _ = run_cli("checks")
    assert code == 0
    for check_id in ("train_test_overlap", "baseline_comparison", "minority_recall", "overfit_gap", "gradient_flow", "loss_curve"):
        assert check_id in out
    code, out, _ = run_cli("checks", "--json")
    rows = json.loads(out)
    assert all(row["detects"] and row["severity"] in ("error", "warning", "info") for row in rows)


def test_version_and_module_entry_point():
    code, out, _ = run_cli("--version")
    assert code == 0
    completed = subprocess.run([sys.executable, "-m", "reportgen", "--version"], capture_output=True, text=True, cwd=REPO, check=False)
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"reportgen {__version__}"
    assert run_cli()[0] == 2


def test_render_rebuilds_reports_from_results_json(tmp_path: Path, cancer_config_path: Path):
    out_dir = tmp_path / "out"
    run_cli("run", str(cancer_config_path), "--out", str(out_dir), "--quiet")
    code, out, err = run_cli("render", str(out_dir / "results.json"), "--out", str(tmp_path / "again"), "--format", "md,junit")
    assert code == 0, err
    assert out.startswith("PASS: ") and "report: " in out
    assert (tmp_path / "again" / "summary.md").is_file() and (tmp_path / "again" / "junit.xml").is_file()
    # Rendering needs neither torch, pandas nor pyplot: a fresh process must not pay for importing them.
    probe = ("import sys; from reportgen.cli import main; "
             f"code = main(['render', {str(out_dir / 'results.json')!r}, '--out', {str(tmp_path / 'html')!r}, '--format', 'html']); "
             "print(code, sorted(m for m in ('torch', 'pandas', 'matplotlib.pyplot') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False)
    assert completed.stdout.splitlines()[-1] == "0 []", completed.stdout + completed.stderr
    # The text formats need no plotting or layout engine either.
    probe = ("import sys; from reportgen.cli import main; "
             f"code = main(['render', {str(out_dir / 'results.json')!r}, '--out', {str(tmp_path / 'text')!r}, '--format', 'json,junit,md']); "
             "print(code, sorted(m for m in ('matplotlib', 'weasyprint', 'torch') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False)
    assert completed.stdout.splitlines()[-1] == "0 []", completed.stdout + completed.stderr
    code, _, err = run_cli("render", str(tmp_path / "none.json"), "--out", str(tmp_path / "x"))
    assert code == 2
    assert_one_line_error(err, "results file not found")


def test_ctrl_c_during_training_leaves_no_output(tmp_path: Path, cancer_csv: Path):
    import signal

    document = cancer_config(cancer_csv, training={"epochs": 100000, "lr": 0.001})
    document["report"] = {"formats": ["json", "html"]}
    path = write_config(tmp_path, document)
    out_dir = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "reportgen", "run", str(path), "--out", str(out_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A job started in the background inherits SIGINT ignored, and Python then keeps ignoring it:
        # give the child the disposition a terminal user's Ctrl-C meets.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until training is under way
        if "epoch 2/" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130
    assert rest.strip().endswith("reportgen: interrupted; no report was written")
    assert not out_dir.exists()


RESULTS_DEFECTS = {
    "not_an_object": (lambda doc: [doc], "not a reportgen results.json (a JSON array"),
    "newer_schema": (lambda doc: {**doc, "schema_version": 2}, "schema_version 2 is not 1"),
    "truncated": (lambda doc: {k: v for k, v in doc.items() if k != "checks"}, "no 'checks': the file is incomplete"),
    "unknown_status": (lambda doc: {**doc, "checks": [{**doc["checks"][0], "status": "great"}] + doc["checks"][1:]},
                       "checks[0].status: Input should be 'error', 'fail', 'warn', 'pass' or 'skip', not 'great'"),
    "edited_verdict": (lambda doc: {**doc, "status": "fail" if doc["status"] == "pass" else "pass"},
                       "but its checks give"),
}


@pytest.mark.parametrize("case", sorted(RESULTS_DEFECTS))
def test_render_refuses_a_damaged_results_json(tmp_path: Path, cancer_config_path: Path, case: str):
    """A truncated or edited results.json is exit 2 with one line, never a report with a made-up verdict."""
    run_cli("run", str(cancer_config_path), "--out", str(tmp_path / "run"), "--quiet", "--format", "json")
    document = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    damage, message = RESULTS_DEFECTS[case]
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(damage(document)), encoding="utf-8")
    code, out, err = run_cli("render", str(damaged), "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert_one_line_error(err, "damaged.json: ", message)
    assert not (tmp_path / "out").exists() and out == ""


def test_render_with_a_broken_template_dir_is_bad_input(tmp_path: Path, cancer_config_path: Path):
    run_cli("run", str(cancer_config_path), "--out", str(tmp_path / "run"), "--quiet", "--format", "json")
    results = str(tmp_path / "run" / "results.json")
    code, _, err = run_cli("render", results, "--out", str(tmp_path / "a"), "--template-dir", str(tmp_path / "absent"))
    assert code == 2
    assert_one_line_error(err, "absent is not a folder")
    code, _, err = run_cli("render", results, "--out", str(tmp_path / "b"), "--template-dir", _broken_templates(tmp_path))
    assert code == 2
    assert_one_line_error(err, "macros.html.j2:2: ")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_output_folder_that_is_a_file_is_bad_input_before_training(tmp_path: Path, cancer_config_path: Path):
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder", encoding="utf-8")
    for target in (blocker, blocker / "nested"):
        code, out, err = run_cli("run", str(cancer_config_path), "--out", str(target), "--quiet")
        assert code == 2 and out == ""
        assert_one_line_error(err, f"{blocker} is a file, not a folder")
        assert "epoch" not in err  # refused before any training
    assert blocker.read_text(encoding="utf-8") == "not a folder"


@pytest.mark.parametrize("command", ["run", "checks"])
def test_a_reader_that_closes_stdout_early_keeps_the_exit_code_and_stderr_quiet(tmp_path: Path, cancer_csv: Path,
                                                                                 command: str):
    """`reportgen run ... | head -1`: the reader goes before the console lines are written (here it closes
    the pipe at once); the run still writes its report and exits with the gate's code, stderr stays empty."""
    document = cancer_config(cancer_csv, checks={"baseline_comparison": {"min": 0.99}})  # gate fails: exit 1
    out_dir = tmp_path / "out"
    argv = ["run", str(write_config(tmp_path, document)), "--out", str(out_dir), "--quiet"] if command == "run" else ["checks"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    with open(write_end, "wb") as stdout:
        completed = subprocess.run([sys.executable, "-m", "reportgen", *argv], cwd=REPO, stdout=stdout,
                                   stderr=subprocess.PIPE, text=True, check=False, timeout=300)
    assert completed.stderr == ""
    if command == "run":
        assert completed.returncode == 1
        assert read_results(out_dir)["status"] == "fail"
    else:
        assert completed.returncode == 0


def test_a_reader_that_reads_one_line_gets_the_verdict(tmp_path: Path, cancer_config_path: Path):
    """`reportgen run ... | head -1` with a real head-like reader: the first line is the verdict, exit 0, stderr empty."""
    out_dir = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "reportgen", "run", str(cancer_config_path), "--out", str(out_dir),
                                "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0
    assert first.startswith("PASS: cancer:")
    assert stderr == ""


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_a_closed_stdout_or_stderr_keeps_the_exit_code_and_the_exit_code_file(tmp_path: Path, cancer_csv: Path,
                                                                              closed: str):
    """`reportgen run ... >&-` / `2>&-`: Python starts with sys.stdout or sys.stderr None; the run still writes
    its report and the exit-code file and ends with the gate's code (here a failing gate, 1), progress on."""
    document = cancer_config(cancer_csv, checks={"baseline_comparison": {"min": 0.99}})
    out_dir, code_file = tmp_path / "out", tmp_path / "exit_code"
    command = " ".join(shlex.quote(part) for part in [
        sys.executable, "-m", "reportgen", "run", str(write_config(tmp_path, document)), "--out", str(out_dir),
        "--exit-code-file", str(code_file)])
    completed = subprocess.run(["bash", "-c", f"{command} {closed}"], cwd=REPO, capture_output=True, text=True,
                               check=False, timeout=300)
    assert completed.returncode == 1, completed.stderr
    assert code_file.read_text(encoding="utf-8") == "1\n"
    assert read_results(out_dir)["status"] == "fail"
    if closed == ">&-":  # stderr stayed open: progress lines only, no traceback or runtime error
        assert "Traceback" not in completed.stderr and "runtime error" not in completed.stderr
        assert "loading data and model" in completed.stderr


@pytest.mark.parametrize("argv, fragment", [
    (["run", "c.yaml", "--nproc-per-node", "two"], "argument --nproc-per-node: invalid int value: 'two'"),
    (["run"], "the following arguments are required: config"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["render", "results.json", "--out", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["checks", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
])
def test_every_usage_error_is_one_line_on_stderr_and_exit_2(argv: list[str], fragment: str):
    completed = subprocess.run([sys.executable, "-m", "reportgen", *argv], cwd=REPO, capture_output=True, text=True,
                               check=False, timeout=300)
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("reportgen") and ": error: " in lines[0] and fragment in lines[0], lines[0]
    assert "usage:" not in completed.stderr


def test_render_without_format_writes_the_runs_formats_and_the_same_results_json(tmp_path: Path, cancer_config_path: Path):
    """A rendered folder is a whole report: the formats the run wrote, results.json among them byte for byte,
    so that `reportgen history` reads it like the run's own folder."""
    run_dir = tmp_path / "run"
    code, _, err = run_cli("run", str(cancer_config_path), "--out", str(run_dir), "--format", "md,json", "--quiet")
    assert code == 0, err
    code, out, err = run_cli("render", str(run_dir / "results.json"), "--out", str(tmp_path / "again"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["results.json", "summary.md"]
    assert (tmp_path / "again" / "results.json").read_bytes() == (run_dir / "results.json").read_bytes()
    assert (tmp_path / "again" / "summary.md").read_bytes() == (run_dir / "summary.md").read_bytes()
    code, out, err = run_cli("history", str(tmp_path / "again"), "--out", str(tmp_path / "trend"), "--format", "md")
    assert code == 0 and "skipped" not in err, err
    assert "newest of 1 run (" in out
