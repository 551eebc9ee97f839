"""Entry point for ``python -m reportgen`` and the ``reportgen`` command.

A stop signal is held from the first instruction (``interrupts.hold_early_signals``, standard library
only), before the imports of pydantic, pandas and torch, so that it ends the run with the CLI's one line.
"""

from reportgen.interrupts import hold_early_signals, pause_for_tests


def entry() -> None:
    """Hold stop signals, then run :func:`reportgen.cli.entry` (which exits the process)."""
    hold_early_signals()
    pause_for_tests("imports")  # a test's signal lands before the CLI is imported
    from reportgen.cli import entry as run_command_line

    run_command_line()


if __name__ == "__main__":
    entry()
