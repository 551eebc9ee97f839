"""Signals: SIGINT, SIGTERM and SIGHUP stop a run the same way, and never in the middle of the output swap.

The CLI installs :func:`interrupt_handlers` for the whole command: each of the three signals then raises
:class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread, so ``finally`` blocks and context
managers clean up exactly as for Ctrl-C. :func:`deferred_signals` marks a critical section (the swap of the
output folder and its clean-up): a signal that arrives inside it is recorded and delivered, to whatever
handler was installed before, when the section ends.

Python runs signal handlers in the main thread, between bytecodes, whichever thread the operating
system delivered the signal to; so replacing the handler is an exact deferral for Python code, where
blocking the signal in one thread (``pthread_sigmask``) would not be once torch has started threads.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Callable, ClassVar, Iterator

HANDLED_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals a run treats as "stop now": Ctrl-C, CI cancellation / ``timeout`` / docker stop, a closed terminal."""

_Handler = Callable[[int, FrameType | None], Any] | int | None


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT, SIGTERM or SIGHUP, and what its output folder holds now.

    ``outcome`` is ``"written"`` (the new report was already complete in ``folder``), ``"previous_kept"``
    (``folder`` still holds the previous report), ``"nothing"`` (no report was written, and ``folder``
    holds nothing new) or ``"unknown"`` (raised where no output folder was claimed).
    """

    def __init__(self, signum: int, outcome: str = "unknown", folder: Path | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.outcome = outcome
        self.folder = folder

    def describe(self, stopped: str = "") -> str:
        """One line for the console, e.g. 'interrupted by SIGTERM; no report was written'.

        ``stopped`` (e.g. 'stopped all 2 workers') is said right after how the run was interrupted.
        """
        how = "interrupted" if self.signum == signal.SIGINT else f"interrupted by {signal.Signals(self.signum).name}"
        if stopped:
            how = f"{how}; {stopped}"
        if self.outcome == "written":
            return f"{how} after the new report was complete in {self.folder}"
        if self.outcome == "previous_kept":
            return f"{how}; no new report was written; {self.folder} still holds the previous report"
        if self.outcome == "nothing":
            return f"{how}; no report was written"
        return how


def _ignore_repeat(signum: int, frame: FrameType | None) -> None:
    """A stop signal after the first: the run is stopping already (the clean-up must not be cut short)."""


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    # A second signal is common: a terminal's Ctrl-C reaches every process of its group, and a launcher
    # (reportgen's, torchrun) forwards or sends SIGTERM too. Raised inside the first one's clean-up (an
    # output folder's removal, torch's atexit hooks) it would cut that short and print a traceback.
    stopping()
    raise Interrupted(signum)


def stopping() -> None:
    """The run is stopping (a first stop signal, or an error on its way out): later stop signals are ignored.

    Called where a worker of a multi-worker run learns that its run failed: torchrun (or a launcher)
    SIGTERMs the workers left once one has exited, and that signal, raised as :class:`Interrupted` during
    the failure's clean-up, would replace the run's error by 130. Does nothing outside the main thread.
    """
    if not _in_main_thread():
        return
    for handled in HANDLED_SIGNALS:
        if signal.getsignal(handled) is _raise_interrupted:
            signal.signal(handled, _ignore_repeat)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interrupt_handlers(until_exit: bool = False) -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted`; the old handlers return after.

    A stop signal noted by :func:`hold_early_signals` raises at once. Only the first signal raises; later ones
    are ignored while the run stops. With ``until_exit`` (the ``reportgen`` process itself, not a caller of
    ``cli.main``) they are ignored after the block until the process ends: the command is over, and what is
    left (its line, ``--exit-code-file``, the interpreter's shutdown) must not be cut short; a launcher's
    SIGTERM there would end the process with no exit code file.
    A signal that is ignored when the block starts (``nohup``, a background job's SIGINT) stays ignored.
    Outside the main thread (where Python cannot install handlers) the block changes nothing.
    """
    saved: dict[signal.Signals, _Handler] = {}
    if _in_main_thread():
        for signum in HANDLED_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous is None:
                continue
            saved[signum] = previous
            signal.signal(signum, _raise_interrupted)
    try:
        early, _Early.signum = _Early.signum, None
        if early is not None and saved:  # it came during the imports: stop now, as it would have then
            _raise_interrupted(early, None)
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, signal.SIG_IGN if until_exit else previous)  # type: ignore[arg-type]


class _Early:
    """The first stop signal that came before :func:`interrupt_handlers` was installed (see :func:`hold_early_signals`)."""

    signum: ClassVar[int | None] = None


BLOCKED_AT_START_VARIABLE = "REPORTGEN_SIGNALS_BLOCKED"
"""Set by ``reportgen run --nproc-per-node`` for its workers, which it starts with the stop signals blocked."""


def _note_early(signum: int, frame: FrameType | None) -> None:
    if _Early.signum is None:
        _Early.signum = signum


def hold_early_signals() -> None:
    """At the first instruction of the ``reportgen`` process: a stop signal is noted, not raised, until the
    CLI installs :func:`interrupt_handlers`, which then stops the run with its one line.

    Without this, a Ctrl-C during the imports (a second or more for pydantic, pandas and torch) printed a
    ``KeyboardInterrupt`` traceback of each process instead. Workers of ``reportgen run --nproc-per-node``
    start with the signals blocked (``BLOCKED_AT_START_VARIABLE``), so nothing reaches them before this
    runs; they are unblocked here. A signal that is ignored stays ignored.
    """
    if not _in_main_thread():
        return
    _Early.signum = None
    for signum in HANDLED_SIGNALS:
        if signal.getsignal(signum) not in (signal.SIG_IGN, None):
            signal.signal(signum, _note_early)
    if os.environ.pop(BLOCKED_AT_START_VARIABLE, None) and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)


class _Deferral:
    """State of the (possibly nested) critical section: the displaced handlers and the signals that came."""

    depth: ClassVar[int] = 0
    saved: ClassVar[dict[signal.Signals, _Handler]] = {}
    pending: ClassVar[list[int]] = []


def _record(signum: int, frame: FrameType | None) -> None:
    _Deferral.pending.append(signum)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver the first that came.

    Delivery goes to the handler installed before the block (raising :class:`Interrupted` under the CLI,
    ``KeyboardInterrupt`` for SIGINT in a plain Python process; a signal with the default action is
    re-sent to the process so that action happens; an ignored one stays ignored). Blocks nest; only the
    outermost delivers. SIGKILL cannot be held: nothing can.
    """
    if not _in_main_thread():  # handlers run in the main thread only: nothing to hold here
        yield
        return
    outermost = _Deferral.depth == 0
    if outermost:
        _Deferral.pending = []
        _Deferral.saved = {}
        for signum in HANDLED_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is None:  # installed outside Python: leave it alone
                continue
            _Deferral.saved[signum] = previous
            signal.signal(signum, _record)
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if outermost:
            saved, _Deferral.saved = _Deferral.saved, {}
            for signum, previous in saved.items():
                signal.signal(signum, previous)  # type: ignore[arg-type]
            if _Deferral.pending:
                first = _Deferral.pending[0]
                _Deferral.pending = []
                _deliver(first, saved.get(signal.Signals(first)))


def _deliver(signum: int, handler: _Handler) -> None:
    """Do what ``handler`` would have done with ``signum`` (it is installed again already)."""
    if handler is signal.SIG_IGN:
        return
    if callable(handler):
        handler(signum, sys._getframe(1))
        return
    os.kill(os.getpid(), signum)  # SIG_DFL: let the default action (termination) happen now


TEST_PAUSE_VARIABLE = "REPORTGEN_TEST_PAUSE_AT"
"""Test-only: the name of a pause point (imports, claim, load, train, evaluate, checks, render, stage, swap, cleanup)."""
TEST_PAUSE_SECONDS_VARIABLE = "REPORTGEN_TEST_PAUSE_SECONDS"
_PAUSE_SLICE_S = 0.1
"""The longest single sleep of a test pause: the most a stop signal whose wake-up the sleep missed waits."""


def pause_for_tests(point: str) -> None:
    """Test-only hook: when ``REPORTGEN_TEST_PAUSE_AT`` names ``point``, announce it on stderr and sleep.

    The signal tests start ``python -m reportgen run`` with this variable, wait for the line
    ``reportgen-test-pause: <point>`` and send a signal, which then lands in a known phase of the run.
    The sleep lasts ``REPORTGEN_TEST_PAUSE_SECONDS`` (default 30); a signal ends it within
    ``_PAUSE_SLICE_S`` unless the point is inside a critical section, where the signal waits for the
    section's end. Without the variable (every real run) this returns immediately.

    The pause sleeps in short slices because one long ``time.sleep`` can miss a signal: Python runs the
    handler in the main thread at its next bytecode, and a blocked system call is cut short only when
    the operating system hands the signal to the main thread while it is in the call. A signal handed
    to another thread (torch's, gloo's), or one that reached the main thread between its last bytecode
    and the call, left the whole pause to run out, and the launcher killed the worker after GRACE_S.
    """
    if os.environ.get(TEST_PAUSE_VARIABLE) != point:
        return
    os.write(2, f"reportgen-test-pause: {point}\n".encode())
    end = time.monotonic() + float(os.environ.get(TEST_PAUSE_SECONDS_VARIABLE, "30"))
    while (left := end - time.monotonic()) > 0 and _Early.signum is None:
        time.sleep(min(left, _PAUSE_SLICE_S))  # each return runs the handler of a signal that came meanwhile


class PausingProgress:
    """Test-only: forwards progress events and calls :func:`pause_for_tests` at the pipeline's phases."""

    _STAGES = (("loading", "load"), ("evaluating", "evaluate"), ("running checks", "checks"))

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._trained = False

    def stage(self, name: str) -> None:
        """Forward a stage; pause when it starts a named phase."""
        self.inner.stage(name)
        for prefix, point in self._STAGES:
            if name.startswith(prefix):
                pause_for_tests(point)

    def epoch(self, record: dict[str, float | None], total: int) -> None:
        """Forward an epoch; pause after the first one (training is under way)."""
        self.inner.epoch(record, total)
        if not self._trained:
            self._trained = True
            pause_for_tests("train")

    def batches(self, split: str, done: int, total: int) -> None:
        """Forward evaluation progress."""
        self.inner.batches(split, done, total)


def with_test_pauses(progress: Any) -> Any:
    """``progress`` itself, or (only when ``REPORTGEN_TEST_PAUSE_AT`` is set) a :class:`PausingProgress` around it."""
    return PausingProgress(progress) if os.environ.get(TEST_PAUSE_VARIABLE) else progress
