"""Signal handling in-process: the three stop signals raise Interrupted; a critical section holds them."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from reportgen.interrupts import (TEST_PAUSE_SECONDS_VARIABLE, TEST_PAUSE_VARIABLE, Interrupted, deferred_signals,
                                  interrupt_handlers, pause_for_tests)
from reportgen.launch import GRACE_S


@pytest.fixture
def default_stop_signals():
    """Python's own handlers for the stop signals during the test, whatever the test process inherited (a job
    started in the background or under nohup ignores SIGINT or SIGHUP, and such a signal must stay ignored)."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}
    saved = {signum: signal.signal(signum, handler) for signum, handler in defaults.items()}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_sigterm_and_sighup_raise_interrupted_like_ctrl_c(default_stop_signals):
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with interrupt_handlers(), pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # bytecode boundaries, where Python runs signal handlers
                pass
        assert caught.value.signum == signum and caught.value.outcome == "unknown"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handler is back


def test_a_signal_in_a_critical_section_waits_for_its_end():
    reached_the_end = False
    with interrupt_handlers(), pytest.raises(Interrupted) as caught:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # many bytecode boundaries: the handler would have run by now
                pass
            reached_the_end = True
    assert reached_the_end
    assert caught.value.signum == signal.SIGTERM  # the first signal is the one delivered


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupt_handlers():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_without_the_cli_a_held_ctrl_c_is_a_plain_keyboard_interrupt(default_stop_signals):
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass



def test_a_test_pause_ends_on_a_stop_signal_caught_by_another_thread(default_stop_signals, monkeypatch):
    # The operating system hands a process-directed signal to any thread that does not block it, and Python runs
    # the handler in the main thread at its next bytecode; nothing wakes a main thread blocked in a system call
    # (a sleep), nor one that the signal reached just before it blocked. A paused worker of a launched run must
    # still stop within the launcher's grace period, or it is killed and the run's line says so.
    monkeypatch.setenv(TEST_PAUSE_VARIABLE, "load")
    monkeypatch.setenv(TEST_PAUSE_SECONDS_VARIABLE, "600")
    main = threading.main_thread().ident
    left_the_pause = threading.Event()
    missed: list[bool] = []

    def signal_this_thread() -> None:
        while getattr(sys._current_frames().get(main), "f_code", None) is not pause_for_tests.__code__:
            time.sleep(0.01)  # until the main thread is in the pause
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        if not left_the_pause.wait(GRACE_S):
            missed.append(True)
            signal.pthread_kill(main, signal.SIGTERM)  # wake it, so that the test ends

    helper = threading.Thread(target=signal_this_thread)
    with interrupt_handlers(), pytest.raises(Interrupted) as caught:
        helper.start()
        try:
            pause_for_tests("load")
        finally:
            left_the_pause.set()
            helper.join()
    assert caught.value.signum == signal.SIGTERM
    assert not missed, f"the pause went on for {GRACE_S:g} s after the signal"


def test_a_run_stopped_before_it_claimed_its_folder_says_the_folder_holds_what_it_held(tmp_path):
    from reportgen.output import interrupted_before_claim

    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "results.json").write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    kept = interrupted_before_claim(signal.SIGTERM, str(previous))
    assert (kept.signum, kept.outcome, kept.folder) == (signal.SIGTERM, "previous_kept", previous)
    assert kept.describe() == f"interrupted by SIGTERM; no new report was written; {previous} still holds the previous report"
    for out_dir in (empty, tmp_path / "absent", None):
        nothing = interrupted_before_claim(signal.SIGINT, out_dir)
        assert (nothing.outcome, nothing.folder) == ("nothing", out_dir)
        assert nothing.describe() == "interrupted; no report was written"
    assert os.listdir(empty) == [] and not (tmp_path / "absent").exists()
