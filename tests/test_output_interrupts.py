"""Signal handling in-process: the three stop signals raise Interrupted; a critical section holds them."""

from __future__ import annotations

import os
import signal

import pytest

from reportgen.interrupts import Interrupted, deferred_signals, interrupt_handlers


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
