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
