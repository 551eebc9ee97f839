"""reportgen: model diagnostics reports for PyTorch.

The names a check plug-in needs are importable from here (``from reportgen import Check, CheckSpec,
Measurement, register``); they load on first use, so ``import reportgen`` stays cheap and
``reportgen render`` imports neither torch nor pandas. See docs/plugins.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_LAZY: dict[str, str] = {
    "Check": "reportgen.checks.base",
    "CheckSpec": "reportgen.checks.base",
    "CheckSettings": "reportgen.checks.base",
    "CheckResult": "reportgen.checks.base",
    "Finding": "reportgen.checks.base",
    "Measurement": "reportgen.checks.base",
    "Param": "reportgen.checks.base",
    "NOT_APPLICABLE": "reportgen.checks.base",
    "NOT_MEASURED": "reportgen.checks.base",
    "register": "reportgen.checks.base",
    "registry": "reportgen.checks.base",
    "CheckContext": "reportgen.checks.context",
    "ConfigError": "reportgen.errors",
    "InputError": "reportgen.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from reportgen.checks.base import (  # noqa: F401
        NOT_APPLICABLE, NOT_MEASURED, Check, CheckResult, CheckSettings, CheckSpec, Finding, Measurement, Param, register,
        registry,
    )
    from reportgen.checks.context import CheckContext  # noqa: F401
    from reportgen.errors import ConfigError, InputError  # noqa: F401


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reportgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
