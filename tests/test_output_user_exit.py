"""User code that calls sys.exit (a data factory, a model, a library it calls) ends reportgen with exit 3, never 0."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import report_fixtures as F
from conftest import REPO, cancer_config, user_model, write_config
from reportgen.cli import main
from reportgen.output import write_reports


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_sys_exit_0_in_a_data_factory_is_exit_3_naming_it(tmp_path: Path):
    (tmp_path / "factory.py").write_text(
        "import sys\n"
        "def make_splits():\n"
        "    sys.exit(0)\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, {
        "name": "exits", "task": "binary", "data": {"kind": "python", "factory": "factory.py:make_splits"},
        "model": {"kind": "linear"},
    })
    out = tmp_path / "out"
    write_reports(F.cached("passing_binary"), out, ["md"])
    before = (out / "summary.md").read_bytes()
    # A real process: the exit status the shell and CI see.
    completed = subprocess.run([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(out), "--quiet"],
                               cwd=REPO, capture_output=True, text=True, check=False)
    assert completed.returncode == 3 and completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(f"reportgen: runtime error: user code called sys.exit(0) in make_splits ({tmp_path / 'factory.py'}:3)")
    assert os.listdir(out) == ["summary.md"] and (out / "summary.md").read_bytes() == before


def test_sys_exit_0_in_a_models_forward_is_exit_3(tmp_path: Path, cancer_csv: Path):
    model = user_model(tmp_path, "Quitter", "self.fc = torch.nn.Linear(30, 1)", "__import__('sys').exit(0)")
    config = write_config(tmp_path, cancer_config(cancer_csv, model=model))
    code, out, err = run_cli("run", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 3 and out == ""
    assert f"user code called sys.exit(0) in Quitter.forward ({tmp_path / 'quitter.py'}:6)" in err
    assert not (tmp_path / "out").exists()


def test_an_exit_inside_a_library_names_the_library_and_the_users_caller(tmp_path: Path, cancer_csv: Path):
    """The builtin exit() (the standard library's site module) called from a model's forward."""
    model = user_model(tmp_path, "Bailer", "self.fc = torch.nn.Linear(30, 1)", "exit(0)")
    config = write_config(tmp_path, cancer_config(cancer_csv, model=model))
    code, _, err = run_cli("run", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 3
    line = err.strip()
    assert "user code called sys.exit(0) in Quitter.__call__ (" in line and "_sitebuiltins" in line
    assert f", reached from Bailer.forward ({tmp_path / 'bailer.py'}:6)" in line


def test_a_nonzero_user_exit_is_exit_3_too(tmp_path: Path, cancer_csv: Path):
    """sys.exit(1) would read as "gate failed" with no report: it is a runtime error as well."""
    model = user_model(tmp_path, "Failer", "self.fc = torch.nn.Linear(30, 1)", "__import__('sys').exit(1)")
    config = write_config(tmp_path, cancer_config(cancer_csv, model=model))
    code, _, err = run_cli("run", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 3 and "user code called sys.exit(1) in Failer.forward" in err
