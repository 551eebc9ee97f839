"""How a multi-worker run ends when it is interrupted or one worker fails: real processes, real gloo groups on 127.0.0.1.

Each test starts ``python -m reportgen run CONFIG --nproc-per-node 2`` (or torchrun) in a session of its
own, as a terminal starts a foreground job, and checks what a user sees: one line on stderr from the
launcher, the exit code, every worker gone, and an output folder that holds the previous whole report or
nothing. The test-only variable REPORTGEN_TEST_PAUSE_AT makes the workers sleep at a known phase
(reportgen/interrupts.py) so that a signal lands there.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cancer_config, write_config

import report_fixtures as F
from reportgen.interrupts import TEST_PAUSE_SECONDS_VARIABLE, TEST_PAUSE_VARIABLE
from reportgen.launch import WorkerEnd, failure_line, free_loopback_port, plain_collective_error
from reportgen.output import write_reports

PAUSE = "reportgen-test-pause: "


def _default_signals() -> None:
    # a foreground job of a terminal: its own session here (so a signal to the group reaches only this
    # run), and the default dispositions (a background job inherits SIGINT ignored)
    os.setsid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Run:
    """A launcher process whose stderr is read without blocking past a deadline."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in (TEST_PAUSE_VARIABLE, TEST_PAUSE_SECONDS_VARIABLE)}
        self.process = subprocess.Popen(argv, cwd=REPO, env={**environ, **(env or {})}, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, preexec_fn=_default_signals)
        self.err = b""

    def wait_for(self, marker: str, count: int, timeout: float = 240) -> None:
        """Return once ``marker`` appeared ``count`` times on stderr (each paused worker announces itself)."""
        deadline = time.monotonic() + timeout
        assert self.process.stderr is not None
        while self.err.decode(errors="replace").count(marker) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and self.process.poll() is None, self.err.decode(errors="replace")
            ready, _, _ = select.select([self.process.stderr], [], [], min(remaining, 1.0))
            if ready:
                self.err += os.read(self.process.stderr.fileno(), 65536)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            out, rest = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode, out.decode(), (self.err + rest).decode()

    def group_alive(self) -> list[int]:
        """PIDs still in the run's process group (the launcher and the workers it started), zombies aside."""
        alive = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid and fields[0] != "Z":
                alive.append(int(entry.name))
        return alive


def _said(err: str) -> list[str]:
    """What stderr holds besides the test-only pause announcements."""
    return [line for line in err.splitlines() if line and not line.startswith(PAUSE)]


def _previous_report(out: Path) -> dict[str, bytes]:
    write_reports(F.cached("passing_binary"), out, ["json", "md"], extra_files={"model.pt": b"previous weights"})
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _trained_config(tmp_path: Path, cancer_csv: Path) -> Path:
    document = cancer_config(cancer_csv)
    document["data"] = {**document["data"], "batch_size": 32}
    document["training"] = {"epochs": 3, "lr": 0.01}
    return write_config(tmp_path, document)


def _launch(config: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Run:
    return Run([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(out), "--quiet",
                "--nproc-per-node", "2", *extra], env={"OMP_NUM_THREADS": "1", **(env or {})})


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")]


@pytest.mark.parametrize("phase, signum, to_group, workers_paused", [
    ("train", signal.SIGINT, True, 2),     # Ctrl-C in a terminal: every process of the job gets SIGINT
    ("evaluate", signal.SIGTERM, False, 2),  # CI cancellation / timeout: the launcher alone gets SIGTERM
    ("render", signal.SIGINT, True, 1),    # rank 0 renders alone; rank 1 has ended
    ("load", signal.SIGTERM, True, 2),
], ids=["train-ctrl-c", "evaluate-sigterm", "render-ctrl-c", "load-sigterm-to-all"])
def test_an_interrupted_run_says_one_line_and_keeps_the_previous_report(
        tmp_path: Path, cancer_csv: Path, phase: str, signum: int, to_group: bool, workers_paused: int):
    out = tmp_path / "reports" / "cancer"
    before = _previous_report(out)
    run = _launch(_trained_config(tmp_path, cancer_csv), out, "--format", "json,html",
                  env={TEST_PAUSE_VARIABLE: phase, TEST_PAUSE_SECONDS_VARIABLE: "120"})
    run.wait_for(PAUSE + phase, workers_paused)
    if to_group:
        os.killpg(run.process.pid, signum)
    else:
        run.process.send_signal(signum)
    code, stdout, err = run.finish()
    how = "interrupted" if signum == signal.SIGINT else f"interrupted by {signal.Signals(signum).name}"
    assert code == 130, err
    assert stdout == ""
    assert _said(err) == [f"reportgen: {how}; stopped every worker; no new report was written; {out} still holds the previous report"]
    assert "Traceback" not in err
    assert run.group_alive() == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(out.parent)) == ["cancer"]  # no staging folder, no lock file left


def test_an_interrupt_before_any_report_says_no_report_was_written(tmp_path: Path, cancer_csv: Path):
    out = tmp_path / "reports" / "cancer"
    run = _launch(_trained_config(tmp_path, cancer_csv), out, env={TEST_PAUSE_VARIABLE: "train", TEST_PAUSE_SECONDS_VARIABLE: "120"})
    run.wait_for(PAUSE + "train", 2)
    os.killpg(run.process.pid, signal.SIGINT)
    os.killpg(run.process.pid, signal.SIGINT)  # pressed twice: changes nothing
    code, _, err = run.finish()
    assert code == 130, err
    assert _said(err) == ["reportgen: interrupted; stopped every worker; no report was written"]
    assert run.group_alive() == []
    assert not (tmp_path / "reports").exists()


def test_an_interrupt_before_rank_0_claims_the_folder_names_the_previous_report(tmp_path: Path, cancer_csv: Path):
    out = tmp_path / "reports" / "cancer"
    before = _previous_report(out)
    run = _launch(_trained_config(tmp_path, cancer_csv), out, env={TEST_PAUSE_VARIABLE: "claim", TEST_PAUSE_SECONDS_VARIABLE: "120"})
    run.wait_for(PAUSE + "claim", 1)  # rank 0 only: the others claim nothing
    os.killpg(run.process.pid, signal.SIGINT)
    code, _, err = run.finish()
    assert code == 130, err
    assert _said(err) == [f"reportgen: interrupted; stopped every worker; no new report was written; {out} still holds the previous report"]
    assert run.group_alive() == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _workers_of(launcher: int) -> list[int]:
    """PIDs of the live processes whose parent is ``launcher``."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split() if entry.name.isdigit() else []
        except OSError:
            continue
        if fields and int(fields[1]) == launcher and fields[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_while_the_workers_start_says_one_line(tmp_path: Path, cancer_csv: Path, signum: int):
    # The workers are signalled the moment they exist: before or during their imports, long before they
    # install their stop handlers. Each used to print a KeyboardInterrupt traceback (80-115 lines of
    # stderr), and the line said "no report was written" beside a folder that holds the previous report.
    out = tmp_path / "reports" / "cancer"
    before = _previous_report(out)
    run = _launch(_trained_config(tmp_path, cancer_csv), out)
    deadline = time.monotonic() + 240
    while len(_workers_of(run.process.pid)) < 2:
        assert time.monotonic() < deadline and run.process.poll() is None, run.process.returncode
        time.sleep(0.005)
    os.killpg(run.process.pid, signum)
    code, stdout, err = run.finish()
    how = "interrupted" if signum == signal.SIGINT else f"interrupted by {signal.Signals(signum).name}"
    assert code == 130, err
    assert stdout == ""
    assert err.splitlines() == [  # one line, no empty line before it
        f"reportgen: {how}; stopped every worker; no new report was written; {out} still holds the previous report"]
    assert run.group_alive() == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(out.parent)) == ["cancer"]



def _signal_a_thread_other_than_main(pid: int, signum: int) -> None:
    """Send ``signum`` to one of ``pid``'s threads that is not its main thread (tgkill), as the kernel may
    hand a process-directed signal to any thread that does not block it."""
    import ctypes

    tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
    if tgkill is None:
        pytest.skip("the C library has no tgkill")
    others = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir() if int(task.name) != pid]
    assert others, f"worker {pid} runs one thread only"
    assert tgkill(pid, others[-1], signum) == 0, os.strerror(ctypes.get_errno())


def test_a_worker_stops_when_its_stop_signal_reaches_a_thread_other_than_main(tmp_path: Path, cancer_csv: Path):
    # Python runs signal handlers in the main thread, but only the thread the kernel chose is woken: a main
    # thread asleep in a system call slept on, and the launcher killed the worker after its grace period.
    out = tmp_path / "reports" / "cancer"
    before = _previous_report(out)
    run = _launch(_trained_config(tmp_path, cancer_csv), out, env={TEST_PAUSE_VARIABLE: "load", TEST_PAUSE_SECONDS_VARIABLE: "600"})
    run.wait_for(PAUSE + "load", 2)
    workers = _workers_of(run.process.pid)
    assert len(workers) == 2
    for pid in workers:
        _signal_a_thread_other_than_main(pid, signal.SIGTERM)
    code, stdout, err = run.finish()
    assert code == 130, err
    assert stdout == ""
    lines = _said(err)
    assert len(lines) == 1 and lines[0].startswith("reportgen: worker ") and "interrupted by SIGTERM" in lines[0], err
    assert "killed" not in lines[0]
    assert run.group_alive() == []
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(out.parent)) == ["cancer"]


def _factory(folder: Path, misbehaviour: str, elsewhere: str = "pass") -> dict[str, Any]:
    """A data factory (breast cancer, standardised) that misbehaves on the worker whose RANK is $FAIL_RANK
    (and runs ``elsewhere`` on the others)."""
    (folder / "factory.py").write_text(
        "import os, time, torch\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from torch.utils.data import TensorDataset\n"
        "def make_splits():\n"
        "    if os.environ.get('RANK') == os.environ.get('FAIL_RANK'):\n"
        f"        {misbehaviour}\n"
        "    else:\n"
        f"        {elsewhere}\n"
        "    x, y = load_breast_cancer(return_X_y=True)\n"
        "    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)\n"
        "    y = torch.tensor(y)\n"
        "    return {'train': TensorDataset(x[:300], y[:300]), 'val': TensorDataset(x[300:400], y[300:400]),\n"
        "            'test': TensorDataset(x[400:], y[400:])}\n",
        encoding="utf-8",
    )
    return {"kind": "python", "factory": "factory.py:make_splits", "classes": ["malignant", "benign"], "batch_size": 32}


def _factory_config(tmp_path: Path, misbehaviour: str, elsewhere: str = "pass") -> Path:
    return write_config(tmp_path, {"name": "factory", "task": "binary", "seed": 0, "data": _factory(tmp_path, misbehaviour, elsewhere),
                                   "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}})


OTHERS_STOPPED = "; stopped the other worker, no report was written"


@pytest.mark.parametrize("fail_rank", ["1", "0"])
def test_a_data_factory_that_raises_on_one_worker_is_named_in_one_line(tmp_path: Path, fail_rank: str):
    config = _factory_config(tmp_path, "raise ValueError('cannot reach the feature store')")
    run = _launch(config, tmp_path / "out", env={"FAIL_RANK": fail_rank})
    code, stdout, err = run.finish(timeout=240)
    assert code == 3, err
    assert stdout == ""
    assert _said(err) == [f"reportgen: worker {fail_rank} of 2: runtime error: ValueError: cannot reach the feature store "
                          f"(rerun with --debug for the traceback){OTHERS_STOPPED}"]
    assert run.group_alive() == []
    assert not (tmp_path / "out").exists()


def test_a_worker_killed_by_sigkill_ends_the_run_with_exit_3(tmp_path: Path):
    config = _factory_config(tmp_path, "os.kill(os.getpid(), 9)")
    run = _launch(config, tmp_path / "out", env={"FAIL_RANK": "1"})
    code, _, err = run.finish(timeout=240)
    assert code == 3, err
    assert _said(err) == [f"reportgen: worker 1 of 2 was killed by SIGKILL{OTHERS_STOPPED}"]
    assert run.group_alive() == []
    assert not (tmp_path / "out").exists()


def test_a_hanging_worker_ends_the_run_after_the_collective_timeout(tmp_path: Path):
    config = _factory_config(tmp_path, "time.sleep(600)")
    run = _launch(config, tmp_path / "out", env={"FAIL_RANK": "1", "REPORTGEN_COLLECTIVE_TIMEOUT_S": "3"})
    code, _, err = run.finish(timeout=240)  # far below the 600 s the worker would sleep
    assert code == 3, err
    lines = _said(err)
    assert len(lines) == 1 and lines[0].startswith("reportgen: worker 0 of 2 lost contact with the other workers ("), err
    assert "Timed out" in lines[0] and "REPORTGEN_COLLECTIVE_TIMEOUT_S" in lines[0] and lines[0].endswith(OTHERS_STOPPED)
    assert run.group_alive() == []
    assert not (tmp_path / "out").exists()


def test_bad_input_every_worker_finds_is_said_once_with_exit_2(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv)
    document["data"] = {**document["data"], "target": "no_such_column"}  # found only by reading the table
    run = _launch(write_config(tmp_path, document), tmp_path / "out")
    code, stdout, err = run.finish(timeout=240)
    assert code == 2, err
    assert stdout == ""
    assert _said(err) == [f"reportgen: error: data.target: column 'no_such_column' is not in {cancer_csv.name}"]
    assert not (tmp_path / "out").exists()


def _torchrun_failing_rank_1(config: Path, out: Path, record: Path) -> Run:
    """torchrun with 2 local workers on loopback, the data factory misbehaving on rank 1, --exit-code-file ``record``."""
    return Run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(free_loopback_port()),
                "-m", "reportgen", "run", str(config), "--out", str(out), "--quiet",
                "--exit-code-file", str(record)], env={"FAIL_RANK": "1"})


def test_torchrun_workers_say_their_own_error_once_and_the_exit_code_file_keeps_3(tmp_path: Path):
    config = _factory_config(tmp_path, "raise ValueError('cannot reach the feature store')")
    record = tmp_path / "exit-code"
    run = _torchrun_failing_rank_1(config, tmp_path / "out", record)
    code, _, err = run.finish(timeout=240)
    assert code == 1, err  # torchrun's code for any failed worker
    assert record.read_text(encoding="utf-8") == "3\n"  # rank 0's: the run's
    ours = [line for line in err.splitlines() if line.startswith("reportgen: ")]
    assert "reportgen: worker 1 of 2: runtime error: ValueError: cannot reach the feature store " \
           "(rerun with --debug for the traceback)" in ours
    assert len(ours) == 1, err  # rank 1's cause only: rank 0 learns it from the group's store and says nothing more
    assert not (tmp_path / "out").exists()


SLEEP_IN_SLICES = "[time.sleep(0.1) for _ in range(1200)]"  # a stop signal ends it within 0.1 s (interrupts.pause_for_tests)


@pytest.mark.parametrize("misbehaviour, code, line", [
    ("raise ValueError('cannot reach the feature store')", 3,
     "runtime error: ValueError: cannot reach the feature store (rerun with --debug for the traceback)"),
    ("return 'no splits'", 2, None),
])
def test_under_torchrun_rank_0_stopped_by_torchrun_after_a_peer_failed_keeps_the_peers_code(
        tmp_path: Path, misbehaviour: str, code: int, line: str | None):
    # rank 0 sleeps outside any collective while rank 1 fails: torchrun's SIGTERM, not a collective's error,
    # is all rank 0 sees of the failure, and it must not end the run as interrupted (130)
    config = _factory_config(tmp_path, misbehaviour, elsewhere=SLEEP_IN_SLICES)
    record = tmp_path / "exit-code"
    run = _torchrun_failing_rank_1(config, tmp_path / "out", record)
    exit_code, _, err = run.finish(timeout=240)
    assert exit_code == 1, err
    assert record.read_text(encoding="utf-8") == f"{code}\n", err
    ours = [text for text in err.splitlines() if text.startswith("reportgen: ")]
    assert len(ours) == 1 and ours[0].startswith("reportgen: worker 1 of 2: "), err  # rank 1's own line, said once
    if line is not None:
        assert ours[0] == f"reportgen: worker 1 of 2: {line}"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the choice of the cause (pure)


def _end(rank: int, code: int, line: str, kind: str = "error", lost_peer: bool = False, at: float = 0.0) -> WorkerEnd:
    return WorkerEnd(rank=rank, code=code, line=line, kind=kind, lost_peer=lost_peer, at=at)


@pytest.mark.parametrize("codes, exited, ends, expected", [
    # rank 1 raised first; rank 0 then lost its peer: rank 1 is the cause, whichever the launcher saw first
    ([3, 3], {0, 1}, [_end(0, 3, "runtime error: lost", lost_peer=True, at=2.0), _end(1, 3, "runtime error: boom", at=1.0)],
     (3, "worker 1 of 2: runtime error: boom" + OTHERS_STOPPED)),
    # bad input on one worker: exit 2, the worker named
    ([130, 2], {1}, [_end(0, 130, "interrupted by SIGTERM; no report was written", kind="interrupted", at=3.0),
                     _end(1, 2, "error: data.path: no", at=1.0)],
     (2, "worker 1 of 2: error: data.path: no" + OTHERS_STOPPED)),
    # the same bad input on every worker: said once, as a single process says it
    ([2, 2], {0, 1}, [_end(0, 2, "error: data.path: no", at=1.0), _end(1, 2, "error: data.path: no", at=1.1)],
     (2, "error: data.path: no")),
    # killed without a word: named by its signal, before a peer's lost contact
    ([3, -9], {0, 1}, [_end(0, 3, "runtime error: RuntimeError: Connection closed by peer", lost_peer=True)],
     (3, "worker 1 of 2 was killed by SIGKILL" + OTHERS_STOPPED)),
    # one worker interrupted on its own: how, once, then what the run did (not "no report was written" twice)
    ([3, 130], {1}, [_end(1, 130, "interrupted by SIGTERM; no report was written", kind="interrupted", at=1.0),
                     _end(0, 3, "runtime error: lost", lost_peer=True, at=2.0)],
     (130, "worker 1 of 2: interrupted by SIGTERM" + OTHERS_STOPPED)),
    ([-15, 1], {0}, [], (3, "worker 0 of 2 was killed by SIGTERM" + OTHERS_STOPPED)),
    ([0, 7], {1}, [], (3, "worker 1 of 2 exited with code 7 without saying why" + OTHERS_STOPPED)),
])
def test_the_launcher_names_the_cause_not_its_echo(codes: list[int], exited: set[int], ends: list[WorkerEnd],
                                                    expected: tuple[int, str]):
    assert failure_line(codes, exited, {end.rank: end for end in ends}) == expected


def test_plain_collective_error_drops_the_source_location_and_the_advice():
    text = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
            "[127.0.0.1]:33929. This is typically caused by a remote worker crashing. GLHF!")
    assert plain_collective_error(text) == "Connection closed by peer [127.0.0.1]:33929"
