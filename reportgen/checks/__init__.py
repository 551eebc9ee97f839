"""The check battery: one module per family, each check registered by id."""

from reportgen.checks.base import (
    Check,
    CheckResult,
    CheckSettings,
    CheckSpec,
    Finding,
    Param,
    gate_status,
    ordered_for_review,
    register,
    registry,
    run_checks,
)

__all__ = [
    "Check", "CheckResult", "CheckSettings", "CheckSpec", "Finding", "Param",
    "gate_status", "ordered_for_review", "register", "registry", "run_checks",
]
