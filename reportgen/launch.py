"""``reportgen run CONFIG --nproc-per-node N``: start N local workers of one run and return its exit code.

The launcher checks the config before any worker starts (a bad one is exit 2 with nothing started),
picks a free loopback port and starts N ``python -m reportgen run ...`` processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and MASTER_PORT set (reportgen/distributed.py joins
them into one gloo or NCCL process group). Only rank 0 writes the report, after the last collective.

Exit code of the launcher:
- rank 0's (0 pass, 1 gate failed) when every worker exits 0 or 1;
- 2 when the workers that failed all exited 2 (bad data or model found while loading; no report);
- 130 when it was interrupted (SIGINT/SIGTERM are forwarded to every worker);
- 3 otherwise (a worker crashed or was killed: the others are stopped, no report is written).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from reportgen.vocabulary import ExitCode
from reportgen.errors import InputError

if TYPE_CHECKING:
    from reportgen.config import LoadedConfig

GRACE_S = 5.0
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
    """Linux: ask the kernel to SIGTERM this worker if the launcher dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(workers: Sequence[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to every worker still running, wait ``GRACE_S``, then kill the ones left."""
    for proc in workers:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + GRACE_S
    for proc in workers:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


MAX_NPROC = 1024


def check_launchable(loaded: LoadedConfig, nproc: int, out_dir: Path | None) -> None:
    """Everything that can be checked before a worker starts; raises ConfigError/InputError (exit 2).

    The worker count lies in [1, MAX_NPROC]; the output folder can be written; the collective timeout
    is well formed. (The config itself was validated when it was loaded.)
    """
    from reportgen.distributed import collective_timeout
    from reportgen.output import check_out_dir
    from reportgen.pipeline import default_out_dir

    if not 1 <= nproc <= MAX_NPROC:
        raise InputError(f"--nproc-per-node {nproc}: expected a number of workers from 1 to {MAX_NPROC}")
    collective_timeout()
    check_out_dir(out_dir or default_out_dir(loaded.config.name))


def _threads_per_worker(nproc: int) -> dict[str, str]:
    """OMP_NUM_THREADS for each worker: the CPUs shared out (at least 1), unless the user set it.

    N workers each running torch's default of one thread per core would oversubscribe the machine N
    times over; torchrun avoids that the same way (it sets 1).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}


def launch_local(worker_argv: Sequence[str], nproc: int, err: TextIO, *, python: str | None = None) -> int:
    """Run ``python -m reportgen *worker_argv`` as ``nproc`` workers of one process group; return the exit code.

    ``worker_argv`` is the reportgen command line (``--nproc-per-node`` is taken out). The workers share this
    process's stdout and stderr. See the module docstring for the exit codes.
    """
    port = free_loopback_port()
    interrupted: list[int] = []
    workers: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        for proc in workers:
            if proc.poll() is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    threads = _threads_per_worker(nproc)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for rank in range(nproc):
            env = {
                **os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                **threads,
            }
            workers.append(subprocess.Popen(
                [python or sys.executable, "-m", "reportgen", *strip_nproc(worker_argv)], env=env,
                # no other thread runs here, so preexec_fn is safe; it is the only way to set PDEATHSIG
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            ))
        failures: list[tuple[int, int]] = []
        while True:
            codes = [proc.poll() for proc in workers]
            if interrupted:
                _stop(workers, interrupted[0])
                err.write("reportgen: interrupted; stopped every worker, no report was written\n")
                return ExitCode.INTERRUPTED
            failures = [(rank, code) for rank, code in enumerate(codes) if code is not None and code not in (0, 1)]
            if failures:  # several when a peer's failure broke a collective within one poll
                break
            if all(code is not None for code in codes):
                return int(codes[0])  # type: ignore[arg-type]
            time.sleep(_POLL_S)
        _stop(workers)
        for rank, code in failures:
            err.write(f"reportgen: worker {rank} of {nproc} exited with code {code}; stopped the others, no report was written\n")
        codes_seen = {code for _, code in failures}
        if codes_seen == {ExitCode.BAD_INPUT}:
            return ExitCode.BAD_INPUT
        if ExitCode.INTERRUPTED in codes_seen:
            return ExitCode.INTERRUPTED
        return ExitCode.RUNTIME_ERROR
    finally:
        for proc in workers:  # never leave a worker behind, whatever happened above
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
