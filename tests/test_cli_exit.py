"""The command's exit without interpreter teardown: exit code, flushed output and atexit functions kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _entry(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
            f"sys.argv = ['reportgen', *{list(argv)!r}]\n"
            "from reportgen.cli import entry\n"
            "entry()\n")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120), marker


def test_entry_keeps_the_output_the_exit_code_and_the_atexit_functions(tmp_path: Path) -> None:
    done, marker = _entry(tmp_path, "checks")
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-c", "from reportgen.cli import main; main(['checks'])"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout == listed.stdout and "train_test_overlap" in done.stdout  # all of it, flushed
    assert marker.read_text() == "ran"


def test_entry_keeps_a_bad_input_exit_code(tmp_path: Path) -> None:
    done, marker = _entry(tmp_path, "run", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert done.stderr.startswith("reportgen: error:") and len(done.stderr.strip().splitlines()) == 1
    assert marker.read_text() == "ran"
