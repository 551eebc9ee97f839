"""Real signals on real `python -m reportgen run` processes, at every phase, with and without a previous report.

The child runs with the test-only variable REPORTGEN_TEST_PAUSE_AT=<phase>: it announces the phase on
stderr and sleeps there, so each signal lands in a known phase. Before the swap, the folder must keep
the previous report (or not exist, with no parent folders left); from the swap on (where signals are held
until the swap and its clean-up are done) it must hold the complete new report. Never a mix, never hidden
files, and the last stderr line says which.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import report_fixtures as F
import reportgen.pipeline  # noqa: F401  (imported now, so the in-process second writer claims at once)
from conftest import REPO, write_config
from reportgen.cli import main
from reportgen.interrupts import TEST_PAUSE_SECONDS_VARIABLE, TEST_PAUSE_VARIABLE
from reportgen.output import write_reports

pytestmark = pytest.mark.slow

NEW_FILES = {"results.json", "model.pt"}  # what the interrupted run writes (--format json, after training)
PREVIOUS_FILES = {"results.json", "junit.xml", "summary.md", "model.pt"}
BEFORE_SWAP = ("load", "train", "render", "stage")
HELD = ("swap", "cleanup")  # signals wait until the swap and its clean-up are done


@pytest.fixture()
def small_config(tmp_path: Path, breast_cancer_frame: pd.DataFrame) -> Path:
    """A 300-row binary config that trains a tiny MLP for 2 epochs."""
    breast_cancer_frame.iloc[:300].to_csv(tmp_path / "cancer.csv", index=False)
    return write_config(tmp_path, {
        "name": "cancer", "task": "binary", "seed": 0,
        "data": {"kind": "csv", "path": "cancer.csv", "target": "diagnosis", "split": {"val": 0.2, "test": 0.25}},
        "model": {"kind": "mlp", "hidden": [8]},
        "training": {"epochs": 2, "lr": 0.01},
    })


def _default_signals() -> None:
    # A job started in the background inherits SIGINT ignored (and nohup SIGHUP), and Python then keeps
    # ignoring it: give the child the dispositions a terminal user's process meets.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Child:
    """A `python -m reportgen ...` process whose stderr is read without blocking past a deadline."""

    def __init__(self, argv: list[str], pause_at: str | None = None, pause_seconds: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if k not in (TEST_PAUSE_VARIABLE, TEST_PAUSE_SECONDS_VARIABLE)}
        env["OMP_NUM_THREADS"] = "1"  # a tiny model: one thread, no contention with the test runner
        if pause_at:
            env[TEST_PAUSE_VARIABLE] = pause_at
            env[TEST_PAUSE_SECONDS_VARIABLE] = str(pause_seconds)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reportgen", *argv], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_signals,
        )
        self.err = b""

    def wait_for_pause(self, point: str, timeout: float = 180) -> None:
        """Return once the child announced it sleeps at ``point``."""
        marker = f"reportgen-test-pause: {point}\n".encode()
        deadline = time.monotonic() + timeout
        assert self.process.stderr is not None
        while marker not in self.err:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.process.kill()
                pytest.fail(f"no pause at {point!r}; stderr so far: {self.err.decode()}")
            ready, _, _ = select.select([self.process.stderr], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stderr.fileno(), 65536)
                if not chunk:
                    self.process.wait()
                    pytest.fail(f"exited ({self.process.returncode}) before pausing at {point!r}: {self.err.decode()}")
                self.err += chunk

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        """Wait for the exit; return (code, stdout, all of stderr)."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.returncode, out.decode(), (self.err + err).decode()


def make_previous(out: Path) -> dict[str, bytes]:
    write_reports(F.cached("passing_binary"), out, ["json", "junit", "md"], extra_files={"model.pt": b"previous weights"})
    return {p.name: p.read_bytes() for p in out.iterdir()}


def interrupted_line(signum: int) -> str:
    return "reportgen: interrupted" + ("" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}")


@pytest.mark.parametrize("with_previous", [True, False], ids=["previous", "fresh"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["load", "train", "render", "swap", "cleanup"])
def test_a_signal_leaves_one_complete_report(tmp_path: Path, small_config: Path, phase: str, signum: int, with_previous: bool):
    parent = tmp_path / "reports"
    out = parent / "cancer"
    before = make_previous(out) if with_previous else None
    child = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"],
                  pause_at=phase, pause_seconds=2 if phase in HELD else 60)
    child.wait_for_pause(phase)
    child.process.send_signal(signum)
    code, stdout, err = child.finish()
    assert code == 130, err
    assert stdout == ""
    last = err.strip().splitlines()[-1]
    if phase in HELD:
        assert last == f"{interrupted_line(signum)} after the new report was complete in {out}"
        assert sorted(os.listdir(parent)) == ["cancer"]
        assert set(os.listdir(out)) == NEW_FILES
        assert json.loads((out / "results.json").read_text(encoding="utf-8"))["name"] == "cancer"
    elif before is not None:
        assert last == f"{interrupted_line(signum)}; no new report was written; {out} still holds the previous report"
        assert sorted(os.listdir(parent)) == ["cancer"]
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    else:
        assert last == f"{interrupted_line(signum)}; no report was written"
        assert sorted(os.listdir(tmp_path)) == ["cancer.csv", "config.yaml"]  # no folder, no parent, no lock


@pytest.mark.parametrize("with_previous", [True, False], ids=["previous", "fresh"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_imports_says_one_line(tmp_path: Path, small_config: Path, signum: int, with_previous: bool):
    # "imports": python -m reportgen's first instructions are done, the CLI (pydantic, pandas, torch) not imported
    out = tmp_path / "reports" / "cancer"
    before = make_previous(out) if with_previous else None
    child = Child(["run", str(small_config), "--out", str(out), "--format", "json"], pause_at="imports")
    child.wait_for_pause("imports")
    child.process.send_signal(signum)
    code, stdout, err = child.finish()
    assert code == 130, err
    assert stdout == ""
    held = f"; no new report was written; {out} still holds the previous report" if before else "; no report was written"
    assert err.splitlines() == ["reportgen-test-pause: imports", interrupted_line(signum) + held]  # no traceback
    if before is not None:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    else:
        assert sorted(os.listdir(tmp_path)) == ["cancer.csv", "config.yaml"]


@pytest.mark.parametrize("with_previous", [True, False], ids=["previous", "fresh"])
def test_a_signal_before_the_folder_is_claimed_says_what_it_holds(tmp_path: Path, small_config: Path, with_previous: bool):
    out = tmp_path / "reports" / "cancer"
    before = make_previous(out) if with_previous else None
    child = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"], pause_at="claim")
    child.wait_for_pause("claim")
    child.process.send_signal(signal.SIGTERM)
    code, _, err = child.finish()
    assert code == 130, err
    held = f"; no new report was written; {out} still holds the previous report" if before else "; no report was written"
    assert err.splitlines() == ["reportgen-test-pause: claim", interrupted_line(signal.SIGTERM) + held]
    if before is not None:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_interrupt_line_has_no_empty_line_before_it(tmp_path: Path, small_config: Path):
    # stderr is not a terminal here: each progress line is whole, so nothing needs ending before the line
    out = tmp_path / "reports" / "cancer"
    child = Child(["run", str(small_config), "--out", str(out), "--format", "json"], pause_at="train")
    child.wait_for_pause("train")
    child.process.send_signal(signal.SIGINT)
    code, _, err = child.finish()
    assert code == 130, err
    assert "" not in err.splitlines(), err
    assert err.splitlines()[-1] == "reportgen: interrupted; no report was written"


def test_sigterm_between_staging_and_swap_keeps_the_previous_report(tmp_path: Path, small_config: Path):
    out = tmp_path / "reports" / "cancer"
    before = make_previous(out)
    child = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"], pause_at="stage")
    child.wait_for_pause("stage")
    child.process.send_signal(signal.SIGTERM)
    code, _, err = child.finish()
    assert code == 130 and err.strip().endswith(f"{out} still holds the previous report")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert os.listdir(out.parent) == ["cancer"]


def test_sighup_is_handled_like_sigint(tmp_path: Path, small_config: Path):
    out = tmp_path / "out"
    before = make_previous(out)
    child = Child(["run", str(small_config), "--out", str(out), "--quiet"], pause_at="train")
    child.wait_for_pause("train")
    child.process.send_signal(signal.SIGHUP)
    code, _, err = child.finish()
    assert code == 130
    assert err.strip().splitlines()[-1] == f"reportgen: interrupted by SIGHUP; no new report was written; {out} still holds the previous report"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["cancer.csv", "config.yaml", "out"]


def render_into(out: Path, results: Path) -> tuple[int, str, str]:
    """The next run on the folder: `reportgen render` (no training needed to test the clean-up)."""
    child = Child(["render", str(results), "--out", str(out), "--format", "md"])
    return child.finish()


def test_sigkill_before_the_swap_leaves_only_hidden_siblings_that_the_next_run_removes(tmp_path: Path, small_config: Path):
    parent = tmp_path / "reports"
    out = parent / "cancer"
    child = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"], pause_at="stage")
    child.wait_for_pause("stage")
    child.process.send_signal(signal.SIGKILL)
    child.finish()
    assert not out.exists()
    left = sorted(os.listdir(parent))
    assert len(left) == 2 and left[0] == ".cancer.reportgen-lock" and left[1].startswith(".cancer.reportgen-staging-")
    results = tmp_path / "elsewhere"
    write_reports(F.cached("failing_binary"), results, ["json"])
    code, _, err = render_into(out, results / "results.json")
    assert code == 1, err
    assert os.listdir(parent) == ["cancer"] and os.listdir(out) == ["summary.md"]


def test_sigkill_during_the_clean_up_leaves_the_complete_new_report(tmp_path: Path, small_config: Path):
    parent = tmp_path / "reports"
    out = parent / "cancer"
    make_previous(out)
    child = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"], pause_at="cleanup")
    child.wait_for_pause("cleanup")
    child.process.send_signal(signal.SIGKILL)
    child.finish()
    assert set(os.listdir(out)) == NEW_FILES  # the swap is done: the folder is the new report
    hidden = sorted(name for name in os.listdir(parent) if name != "cancer")
    assert hidden[0] == ".cancer.reportgen-lock" and hidden[1].startswith(".cancer.reportgen-staging-")
    assert set(os.listdir(parent / hidden[1])) == PREVIOUS_FILES  # the old report, not yet removed
    results = tmp_path / "elsewhere"
    write_reports(F.cached("failing_binary"), results, ["json"])
    code, _, err = render_into(out, results / "results.json")
    assert code == 1, err
    assert os.listdir(parent) == ["cancer"] and os.listdir(out) == ["summary.md"]


def test_two_runs_on_one_folder(tmp_path: Path, small_config: Path):
    """While one run holds the folder, a second run and a render get exit 2 and change nothing."""
    out = tmp_path / "out"
    first = Child(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json,md"], pause_at="train", pause_seconds=8)
    first.wait_for_pause("train")
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["run", str(small_config), "--out", str(out), "--quiet", "--format", "json"], out=stdout, err=stderr)
    assert code == 2 and stdout.getvalue() == ""
    assert stderr.getvalue() == f"reportgen: error: another reportgen is writing to {out}; wait for it to end or choose another output folder\n"
    results = tmp_path / "elsewhere"
    write_reports(F.cached("failing_binary"), results, ["json"])
    stdout, stderr = io.StringIO(), io.StringIO()  # in this process too: the first run's pause is short
    code = main(["render", str(results / "results.json"), "--out", str(out), "--format", "md"], out=stdout, err=stderr)
    assert code == 2 and stderr.getvalue().startswith(f"reportgen: error: another reportgen is writing to {out};")
    code, stdout_first, err_first = first.finish()
    assert code in (0, 1), err_first
    assert sorted(os.listdir(out)) == ["model.pt", "results.json", "summary.md"]
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["name"] == "cancer"
    assert sorted(os.listdir(tmp_path)) == ["cancer.csv", "config.yaml", "elsewhere", "out"]
