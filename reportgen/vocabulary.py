"""The words every part of reportgen shares: tasks, splits, check statuses and severities, exit codes.

Each fact is defined here once; renderers, checks, the gate and the CLI read it from here. This module
imports nothing heavy, so `reportgen render` can use it without torch or pandas.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Task(str, Enum):
    """What the model predicts."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        """True for binary and multiclass tasks."""
        return self is not Task.REGRESSION


TASKS: tuple[str, ...] = tuple(t.value for t in Task)
CLASSIFICATION_TASKS: frozenset[str] = frozenset({Task.BINARY.value, Task.MULTICLASS.value})

SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
"""Splits in the order every report lists them."""


class Severity(str, Enum):
    """How much a check's failure matters: only ``error`` can fail the gate."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for error (most severe) to 2 for info."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)


class Status(str, Enum):
    """A check's outcome in one run, in review order (most urgent first)."""

    ERROR = "error"
    """The check crashed: its question is unanswered."""
    FAIL = "fail"
    WARN = "warn"
    PASS = "pass"
    SKIP = "skip"
    """The check does not apply to this run (the reason is in its message)."""

    @property
    def review_rank(self) -> int:
        """Position in the gate table: crashed, failed, warned, passed, skipped."""
        return _STATUS_RANK[self]

    @property
    def is_problem(self) -> bool:
        """True for statuses a reviewer must look at (error, fail, warn)."""
        return self in (Status.ERROR, Status.FAIL, Status.WARN)

    def blocks_gate(self, severity: "Severity | str") -> bool:
        """True when a check with this status and ``severity`` fails the gate.

        Source: the gate rule of the README (a failed or crashed error-severity check blocks).
        """
        return Severity(severity) is Severity.ERROR and self in (Status.FAIL, Status.ERROR)


_STATUS_RANK = {s: i for i, s in enumerate(Status)}
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)


class Verdict(str, Enum):
    """The gate's verdict on a run."""

    PASS = "pass"
    FAIL = "fail"


class ExitCode(IntEnum):
    """Process exit codes of the CLI (the README's table is tested against this)."""

    PASSED = 0
    """The gate passed: no check with severity error failed or crashed."""
    GATE_FAILED = 1
    """The gate failed; the report is written and says why."""
    BAD_INPUT = 2
    """Bad config or input; one line on stderr, no report written."""
    RUNTIME_ERROR = 3
    """A runtime error (a bug in user code, out of memory, ...)."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGTERM, SIGHUP); no new report written."""
