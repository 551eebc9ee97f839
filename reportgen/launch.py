"""``reportgen run CONFIG --nproc-per-node N``: start N local workers of one run and return its exit code.

The launcher checks the config before any worker starts (a bad one is exit 2 with nothing started),
picks a free loopback port and starts N ``python -m reportgen run ...`` processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and MASTER_PORT set (reportgen/distributed.py joins
them into one gloo or NCCL process group). Only rank 0 writes the report, after the last collective.

The launcher is the one voice of the run: rank 0 prints the verdict and the report's files; a worker
that fails or is interrupted prints nothing (a ``--debug`` traceback aside) and leaves its line for the
launcher (``tell_launcher``), which prints one line for the whole run.

Exit code of the launcher:
- rank 0's (0 pass, 1 gate failed) when every worker exits 0 or 1;
- 130 when it was interrupted: SIGINT, SIGTERM and SIGHUP are forwarded once to every worker, whatever
  reaches it more (a terminal's Ctrl-C also reaches the workers themselves) is ignored; the line says what
  the output folder holds (rank 0's word);
- otherwise the cause's (``failure_line``): 2 when a worker found bad input, 3 for any other error, a
  worker killed by a signal or one that lost its peers; the others are stopped, no report is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from reportgen.errors import InputError
from reportgen.interrupts import BLOCKED_AT_START_VARIABLE, HANDLED_SIGNALS, Interrupted
from reportgen.render.fmt import console_line
from reportgen.vocabulary import ExitCode

if TYPE_CHECKING:
    from reportgen.config import LoadedConfig

GRACE_S = 60.0
"""How long stopped workers get to exit after SIGTERM before they are killed."""
_POLL_S = 0.05



def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node N`` / ``--nproc-per-node=N`` (or an abbreviation argparse accepts)."""
    kept: list[str] = []
    skip_next = False
    for token in argv:
        if skip_next:
            skip_next = False
            continue
        name, eq, _ = token.partition("=")
        if len(name) > 3 and "--nproc-per-node".startswith(name):
            skip_next = not eq
            continue
        kept.append(token)
    return kept


def _writes_exit_code(environ: dict[str, str] | None = None) -> bool:
    """True for the process whose exit code is the run's: a plain run, the launcher, or rank 0 of torchrun."""
    environ = dict(os.environ) if environ is None else environ
    return environ.get("RANK", "0") == "0"


def clear_exit_code(path: Path) -> None:
    """Remove a stale ``--exit-code-file`` before the run (rank 0 only); InputError when its folder is missing.

    A file that is absent after the run means rank 0 was stopped before it could write one:
    treat that as exit code 3.
    """
    if not _writes_exit_code():
        return
    if not path.parent.is_dir():
        raise InputError(f"--exit-code-file {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"--exit-code-file {path}: is a folder")
    path.unlink(missing_ok=True)


def record_exit_code(path: Path, code: int) -> None:
    """Write ``code`` and a newline to ``path`` (rank 0, or a process outside any process group)."""
    if not _writes_exit_code():
        return
    try:
        path.write_text(f"{int(code)}\n", encoding="utf-8")
    except OSError:
        pass  # the folder was checked before the run; the exit status still carries the code


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: ask the kernel to SIGTERM this worker if the launcher dies (even by SIGKILL); start it with the
    stop signals blocked (its ``python -m reportgen`` unblocks them once it can handle them quietly)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _send(proc: subprocess.Popen, sig: int, signalled: set[int]) -> None:
    """Send ``sig`` to ``proc`` once (a worker still running that has not had a stop signal yet)."""
    if proc.pid in signalled or proc.poll() is not None:
        return
    signalled.add(proc.pid)
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _stop(workers: Sequence[subprocess.Popen], sig: int, signalled: set[int], records: Path) -> set[int]:
    """Send ``sig`` to every worker still running (once) and see that each ends; return the ranks killed unheard.

    A worker that has left its line in ``records`` has finished its clean-up (its output folder is settled)
    and is only tearing its interpreter down, which with torch.distributed can take seconds on a busy
    machine: it is killed at once. The others get ``GRACE_S`` to stop on their own, then are killed.
    """
    for proc in workers:
        _send(proc, sig, signalled)
    deadline = time.monotonic() + GRACE_S
    killed: set[int] = set()
    while any(proc.poll() is None for proc in workers):
        late = time.monotonic() >= deadline
        for rank, proc in enumerate(workers):
            if proc.poll() is None and (late or (records / f"rank-{rank}.json").exists()):
                if late:
                    killed.add(rank)
                proc.kill()
                proc.wait()
        time.sleep(_POLL_S)
    return killed


MAX_NPROC = 1024


def check_launchable(loaded: LoadedConfig, nproc: int, out_dir: Path) -> None:
    """Everything that can be checked before a worker starts; raises an InputError (exit 2) naming the first problem.

    The worker count lies in [1, MAX_NPROC]; the collective timeout is well formed; a config that asks for
    ``cuda`` finds a GPU for each of the node's workers (``distributed.choose_device``); whatever ``reportgen
    validate`` checks before loading (``pipeline.check_before_run``: the output folder can be written,
    ``compare_to`` is a readable results.json, the template folder is usable); every file the config names
    exists (data files, ``.py`` files of ``data.factory`` and ``model.target``, ``model.path``,
    ``model.checkpoint``), with the message a worker would give. (The config itself, ``--set`` included,
    was validated when it was loaded.) What only loading can find (a missing column, NaN in the features)
    is found by the workers, and the launcher still says it once.
    """
    from reportgen.distributed import choose_device, collective_timeout
    from reportgen.errors import ConfigError, DataError, ModelError
    from reportgen.pipeline import check_before_run, input_paths

    if not 1 <= nproc <= MAX_NPROC:
        raise InputError(f"--nproc-per-node {nproc}: expected a number of workers from 1 to {MAX_NPROC}")
    collective_timeout()
    if nproc > 1:  # one GPU per worker when the config asks for CUDA: the workers would each say so
        choose_device(loaded.config.device, 0, nproc)
    inputs = input_paths(loaded)
    check_before_run(loaded, out_dir, inputs=inputs)  # as rank 0 will claim the folder: holding no input of the run
    for key, path in inputs.items():
        if key in ("the config", "compare_to", "report.template_dir") or path.is_file():
            continue
        error = DataError if key.startswith("data.") and key != "data.factory" else ModelError if key.startswith("model.") and key != "model.target" else ConfigError
        raise error(f"{key}: file not found: {path}")


def _threads_per_worker(nproc: int) -> dict[str, str]:
    """OMP_NUM_THREADS for each worker: the CPUs shared out (at least 1), unless the user set it.

    N workers each running torch's default of one thread per core would oversubscribe the machine N
    times over; torchrun avoids that the same way (it sets 1).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}


def launch_local(worker_argv: Sequence[str], nproc: int, err: TextIO, *, python: str | None = None,
                 out_dir: Path | None = None) -> int:
    """Run ``python -m reportgen *worker_argv`` as ``nproc`` workers of one process group; return the exit code.

    ``worker_argv`` is the reportgen command line (``--nproc-per-node`` is taken out); ``out_dir`` is the
    run's output folder, named in the line printed on an interrupt. The workers share this process's stdout
    (rank 0 prints the verdict); a worker that fails or is interrupted prints nothing itself but leaves its
    line in a private folder (``RECORDS_VARIABLE``), and this launcher prints one line for the whole run.
    See the module docstring for the exit codes.
    """
    port = free_loopback_port()
    interrupted: list[int] = []
    signalled: set[int] = set()
    workers: list[subprocess.Popen] = []
    records = Path(tempfile.mkdtemp(prefix="reportgen-launch-"))

    def forward(signum: int, _frame: object) -> None:
        if interrupted:  # the first signal stops the run; more of them (a terminal's Ctrl-C reaches
            return       # the whole process group, then torchrun-like SIGTERMs) change nothing
        interrupted.append(signum)
        for proc in workers:
            _send(proc, signum, signalled)

    threads = _threads_per_worker(nproc)
    previous = {sig: signal.signal(sig, forward) for sig in HANDLED_SIGNALS
                if signal.getsignal(sig) not in (signal.SIG_IGN, None)}
    try:
        for rank in range(nproc):
            if interrupted:
                break
            env = {
                **os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                RECORDS_VARIABLE: str(records), **threads,
                **({BLOCKED_AT_START_VARIABLE: "1"} if sys.platform.startswith("linux") else {}),
            }
            workers.append(subprocess.Popen(
                [python or sys.executable, "-m", "reportgen", *strip_nproc(worker_argv)], env=env,
                # no other thread runs here, so preexec_fn is safe; it is the only way to set PDEATHSIG
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            ))
        codes: list[int | None] = []
        while not interrupted:
            codes = [proc.poll() for proc in workers]
            if any(code is not None and code not in (0, 1) for code in codes):
                break
            if all(code is not None for code in codes):
                return int(codes[0])  # type: ignore[arg-type]
            time.sleep(_POLL_S)
        if interrupted:
            killed = _stop(workers, interrupted[0], signalled, records)
            line = _interrupt_line(interrupted[0], nproc, killed, read_records(records),
                                   workers[0].returncode if workers else None, out_dir)
            # a newline first ends rank 0's progress line on a terminal; elsewhere each of its lines is whole
            err.write(("\n" if err.isatty() else "") + f"reportgen: {line}\n")
            return ExitCode.INTERRUPTED
        exited = {rank for rank, code in enumerate(codes) if code is not None}
        _stop(workers, signal.SIGTERM, signalled, records)
        code, line = failure_line([int(proc.returncode) for proc in workers], exited, read_records(records))
        err.write(console_line(f"reportgen: {line}") + "\n")
        return code
    finally:
        for proc in workers:  # never leave a worker behind, whatever happened above
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(records, ignore_errors=True)


# --------------------------------------------------------------------------- what the workers tell the launcher

RECORDS_VARIABLE = "REPORTGEN_LAUNCH_RECORDS"
"""Set by ``launch_local`` for its workers: the folder where each leaves ``rank-N.json``, its last line."""

_LOST_PEER = re.compile(r"gloo|nccl|c10d|connection (closed|reset) by peer|broken pipe|timed out", re.IGNORECASE)


def lost_peer(exc: BaseException) -> bool:
    """True for an error a worker gets because another worker failed: a collective whose peer closed its
    connection, or one that timed out (torch.distributed's ``DistError`` family, gloo's and NCCL's errors),
    or a ``PeerFailed`` (the worker learnt which worker failed first)."""
    from reportgen.errors import PeerFailed

    if isinstance(exc, PeerFailed):
        return True
    if any(cls.__name__.startswith("Dist") and cls.__module__.startswith("torch") for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and bool(_LOST_PEER.search(str(exc)))


def plain_collective_error(text: str) -> str:
    """gloo's message without its source location and its advice: 'Connection closed by peer [127.0.0.1]:33929'."""
    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h)(?::\d+)?\]\s*", "", text)
    return text.split(". This is typically")[0].strip()


@dataclass(frozen=True)
class WorkerEnd:
    """How one worker of a launched run ended, as it told the launcher.

    ``line`` is what a single process would print after ``reportgen: ``; ``kind`` is "error" or
    "interrupted"; ``lost_peer`` marks an error caused by another worker's failure; ``at`` is
    ``time.monotonic()`` (one clock for every process of a machine); ``outcome`` and ``folder`` say
    what rank 0's output folder holds after an interrupt (``interrupts.Interrupted``).
    """

    rank: int
    code: int
    line: str
    kind: str
    lost_peer: bool = False
    at: float = 0.0
    outcome: str | None = None
    folder: str | None = None


def tell_launcher(code: int, line: str, exc: BaseException, environ: dict[str, str] | None = None) -> bool:
    """In a worker started by ``launch_local``: leave ``line`` for the launcher and return True (the worker
    then prints nothing; the launcher prints one line for the run). False in any other process."""
    environ = dict(os.environ) if environ is None else environ
    folder = environ.get(RECORDS_VARIABLE)
    if not folder:
        return False
    rank = int(environ.get("RANK", "0"))
    interrupted = isinstance(exc, KeyboardInterrupt)
    end = WorkerEnd(rank=rank, code=int(code), line=line, kind="interrupted" if interrupted else "error",
                    lost_peer=not interrupted and lost_peer(exc), at=time.monotonic(),
                    outcome=getattr(exc, "outcome", None), folder=str(getattr(exc, "folder", None) or "") or None)
    path = Path(folder) / f"rank-{rank}.json"
    try:
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(end)), encoding="utf-8")
        partial.replace(path)
    except OSError:
        return False  # the launcher is gone (it removes the folder last): say it here instead
    return True


def read_records(folder: Path) -> dict[int, WorkerEnd]:
    """The ``WorkerEnd`` of every worker that left one in ``folder``, by rank."""
    ends: dict[int, WorkerEnd] = {}
    for path in folder.glob("rank-*.json"):
        try:
            end = WorkerEnd(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        ends[end.rank] = end
    return ends


TIMEOUT_HINT = "REPORTGEN_COLLECTIVE_TIMEOUT_S seconds, 300 by default"


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} without saying why"


def failure_line(codes: Sequence[int], exited: set[int], ends: dict[int, WorkerEnd]) -> tuple[int, str]:
    """(exit code, line after 'reportgen: ') for a launched run that a worker's failure ended.

    ``codes`` are every worker's exit codes once all are stopped, ``exited`` the ranks that had ended on
    their own when the launcher saw the failure (the others it stopped), ``ends`` what the workers said.
    The cause is, in this order: the earliest error of a worker's own (bad input: exit 2; anything else:
    exit 3) or a worker interrupted on its own (130); a worker that died without a word (killed by a
    signal, ``os._exit``: exit 3); the earliest lost contact with a peer (exit 3). An input error that
    every worker that said anything found alike is said once, as a single process says it.
    """
    nproc = len(codes)
    others = "the other worker" if nproc == 2 else "the other workers"
    own = sorted((e for e in ends.values() if not e.lost_peer and (e.kind == "error" or e.rank in exited)),
                 key=lambda e: e.at)
    if own:
        cause = own[0]
        alike = all(e.kind == "error" and not e.lost_peer and e.line == cause.line for e in ends.values())
        if cause.code == ExitCode.BAD_INPUT and alike and len(ends) == nproc:
            return ExitCode.BAD_INPUT, cause.line
        code = cause.code if cause.code in (ExitCode.BAD_INPUT, ExitCode.INTERRUPTED) else ExitCode.RUNTIME_ERROR
        # an interrupted worker's own line goes on to say what the folder holds: said once, below
        line = cause.line.split(";")[0] if cause.kind == "interrupted" else cause.line
        return code, f"worker {cause.rank} of {nproc}: {line}; stopped {others}, no report was written"
    silent = [rank for rank in sorted(exited) if rank not in ends and codes[rank] not in (0, 1)]
    if silent:
        rank = silent[0]
        return ExitCode.RUNTIME_ERROR, f"worker {rank} of {nproc} {_how_it_ended(codes[rank])}; stopped {others}, no report was written"
    lost = sorted((e for e in ends.values() if e.lost_peer), key=lambda e: e.at)
    if lost:
        cause = lost[0]
        detail = cause.line.removeprefix("runtime error: ").removesuffix(" (rerun with --debug for the traceback)")
        return ExitCode.RUNTIME_ERROR, (f"worker {cause.rank} of {nproc} lost contact with the other workers ({detail}; "
                                        f"a collective waits at most {TIMEOUT_HINT}); stopped {others}, no report was written")
    rank = min(exited)
    return ExitCode.RUNTIME_ERROR, f"worker {rank} of {nproc} {_how_it_ended(codes[rank])}; stopped {others}, no report was written"


def _interrupt_line(signum: int, nproc: int, killed: set[int], ends: dict[int, WorkerEnd],
                    rank0_code: int | None, out_dir: Path | None) -> str:
    """The launcher's one line after an interrupt: how many workers were stopped and what the folder holds."""
    from reportgen.output import interrupted_before_claim

    stopped = "stopped every worker"
    if killed:
        stopped += f" ({', '.join(f'worker {r}' for r in sorted(killed))} killed after {GRACE_S:g} s)"
    main = ends.get(0)
    if main is not None and main.outcome and main.outcome != "unknown":
        return Interrupted(signum, main.outcome, Path(main.folder) if main.folder else None).describe(stopped)
    if rank0_code in (ExitCode.PASSED, ExitCode.GATE_FAILED) and out_dir is not None:
        return Interrupted(signum, "written", out_dir).describe(stopped)
    if 0 in killed and out_dir is not None:  # rank 0 could not say: the swap is atomic all the same
        return Interrupted(signum).describe(stopped) + f"; {out_dir} holds one whole report or none (never part of one)"
    return interrupted_before_claim(signum, out_dir).describe(stopped)  # rank 0 stopped before it claimed the folder
