"""Typed errors raised by the library; the CLI maps them to exit codes."""

from __future__ import annotations

from reportgen.vocabulary import ExitCode


class ReportgenError(Exception):
    """Base class of every error reportgen raises on purpose."""

    exit_code: int = ExitCode.RUNTIME_ERROR


class InputError(ReportgenError):
    """The config, a named file or the data is unusable (exit code 2)."""

    exit_code: int = ExitCode.BAD_INPUT


class ConfigError(InputError):
    """The YAML config is malformed or does not match the schema."""


class DataError(InputError):
    """The data named by the config cannot be loaded or is inconsistent."""


class ModelError(InputError):
    """The model named by the config cannot be built or does not fit the task."""


class ResultsError(InputError):
    """A results.json (to re-render or to compare with) is not one this reportgen can read."""


class RunError(ReportgenError):
    """Training, evaluation or rendering failed at run time (exit code 3)."""


class PeerFailed(ReportgenError):
    """This worker of a multi-worker run stopped because another worker had failed first.

    ``rank`` is that worker's rank and ``exit_code`` its exit code (2 bad input, 3 anything else), so that
    this worker, rank 0 under torchrun above all, ends with the run's real cause and not with what it saw
    of it (a collective whose peer closed the connection, or the launcher's SIGTERM: 130). The failed
    worker says its own line; this one says nothing more (docs/distributed-failures.md).
    """

    def __init__(self, rank: int, exit_code: int) -> None:
        super().__init__(f"stopped: worker {rank} failed first")
        self.rank = rank
        self.exit_code = exit_code
