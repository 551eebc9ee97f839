"""Check contract: specs, settings, results, the registry, and the pure gate decisions."""

from __future__ import annotations

import math
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal, Mapping

if TYPE_CHECKING:
    from reportgen.checks.context import CheckContext

Status = Literal["pass", "warn", "fail", "error", "skip"]
Severity = Literal["error", "warning", "info"]
Outcome = Literal["ok", "violation", "concern", "skip"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
STATUS_ORDER: dict[str, int] = {"error": 0, "fail": 1, "warn": 2, "pass": 3, "skip": 4}


@dataclass(frozen=True)
class Param:
    """A named, typed setting of a check beyond its threshold.

    ``kind`` is the value's type (default: the type of ``default``; ``float`` accepts ints);
    ``minimum`` and ``maximum`` are inclusive bounds for numbers; ``nullable`` allows null.
    A value that breaks any of these is a config error (exit 2), never a crashed check.
    """

    name: str
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    kind: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False

    def value_type(self) -> type | None:
        """The type a value must have: ``kind``, else the default's type (None when unknown)."""
        if self.kind is not None:
            return self.kind
        if self.default is None:
            return None
        return float if isinstance(self.default, float) else type(self.default)

    def coerce(self, value: Any) -> Any:
        """Validate ``value`` for this parameter and return it; raise ValueError naming the problem."""
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ValueError(f"{self.name} must not be null")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
            return value
        wanted = self.value_type()
        if wanted is not None:
            if wanted is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"{self.name} must be a finite number, not {value!r}")
                value = float(value)
            elif wanted is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{self.name} must be a whole number, not {value!r}")
            elif wanted is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{self.name} must be true or false, not {value!r}")
            elif wanted in (list, tuple):
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"{self.name} must be a list, not {value!r}")
                value = list(value)
            elif not isinstance(value, wanted):
                raise ValueError(f"{self.name} must be a {wanted.__name__}, not {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{self.name} must be at least {self.minimum:g}, not {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{self.name} must be at most {self.maximum:g}, not {value!r}")
        return value


@dataclass(frozen=True)
class CheckSpec:
    """What a check is: its id, what it detects, its default threshold and severity."""

    id: str
    title: str
    family: Literal["data", "performance", "training", "fairness", "behaviour"]
    detects: str
    how_to_read: str
    default_severity: Severity
    threshold_key: Literal["min", "max"] | None = None
    default_threshold: float | None = None
    tasks: frozenset[str] = frozenset({"binary", "multiclass", "regression"})
    needs_training: bool = False
    params: tuple[Param, ...] = ()

    @property
    def higher_is_better(self) -> bool | None:
        """True when the value must stay above a ``min``; False below a ``max``; None without threshold."""
        if self.threshold_key is None:
            return None
        return self.threshold_key == "min"

    def setting_names(self) -> set[str]:
        """Return the keys a user may set under ``checks.<id>``."""
        names = {"enabled", "severity"} | {p.name for p in self.params}
        if self.threshold_key:
            names.add(self.threshold_key)
        return names

    def settings_from(self, overrides: Mapping[str, Any] | None) -> "CheckSettings":
        """Merge user overrides with the defaults; raise ValueError on a bad value."""
        overrides = dict(overrides or {})
        enabled = overrides.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be true or false, not {enabled!r}")
        severity = overrides.pop("severity", self.default_severity)
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be error, warning or info, not {severity!r}")
        threshold = self.default_threshold
        if self.threshold_key and self.threshold_key in overrides:
            threshold = overrides.pop(self.threshold_key)
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"{self.threshold_key} must be a finite number, not {threshold!r}")
            threshold = float(threshold)
        params = {p.name: p.default for p in self.params}
        for p in self.params:
            if p.name in overrides:
                params[p.name] = p.coerce(overrides.pop(p.name))
        if overrides:
            raise ValueError(f"unknown setting {sorted(overrides)[0]!r}")
        return CheckSettings(enabled=enabled, severity=severity, threshold=threshold, params=params)


@dataclass(frozen=True)
class CheckSettings:
    """Effective settings of one check for one run."""

    enabled: bool
    severity: Severity
    threshold: float | None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """What a check observed: its value, whether the condition holds, and why."""

    outcome: Outcome
    value: float | int | None
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def skip(cls, reason: str) -> "Finding":
        """A finding for a check that does not apply to this run."""
        return cls(outcome="skip", value=None, message=reason)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, JSON-safe: the unit of the gate table and of results.json."""

    id: str
    title: str
    family: str
    status: Status
    severity: Severity
    value: float | int | None
    threshold: float | None
    higher_is_better: bool | None
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the results.json form of this result."""
        return {
            "id": self.id,
            "title": self.title,
            "family": self.family,
            "status": self.status,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "higher_is_better": self.higher_is_better,
            "message": self.message,
            "evidence": dict(self.evidence),
        }


class Check(ABC):
    """A registered check: a spec and a ``run`` that turns the context into a finding."""

    spec: ClassVar[CheckSpec]

    @abstractmethod
    def run(self, ctx: "CheckContext", settings: CheckSettings) -> Finding:
        """Inspect the run and return a finding; may raise, which becomes status ``error``."""


class CheckRegistry:
    """Checks by id, in registration order."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def register(self, cls: type[Check]) -> type[Check]:
        """Class decorator: add a check to the registry."""
        check_id = cls.spec.id
        if check_id in self._checks:
            raise ValueError(f"check id {check_id!r} registered twice")
        self._checks[check_id] = cls()
        return cls

    def get(self, check_id: str) -> Check | None:
        """Return the check with this id, or None."""
        _load_builtin_checks()
        return self._checks.get(check_id)

    def ids(self) -> list[str]:
        """Return every registered check id."""
        _load_builtin_checks()
        return list(self._checks)

    def all(self) -> list[Check]:
        """Return every registered check."""
        _load_builtin_checks()
        return list(self._checks.values())


registry = CheckRegistry()
register = registry.register


def _load_builtin_checks() -> None:
    """Import the modules that register the built-in checks (once)."""
    import reportgen.checks.data_checks  # noqa: F401
    import reportgen.checks.performance_checks  # noqa: F401
    import reportgen.checks.training_checks  # noqa: F401
    import reportgen.checks.comparison_checks  # noqa: F401
    import reportgen.checks.slice_checks  # noqa: F401
    import reportgen.checks.behaviour_checks  # noqa: F401


def meets_threshold(value: float, threshold: float, higher_is_better: bool) -> bool:
    """True when ``value`` is on the good side of ``threshold`` (inclusive)."""
    return value >= threshold if higher_is_better else value <= threshold


def status_for(outcome: Outcome, severity: Severity) -> Status:
    """Map a finding's outcome and the check's severity to a status."""
    if outcome == "ok":
        return "pass"
    if outcome == "skip":
        return "skip"
    if outcome == "concern":
        return "warn"
    return "fail" if severity == "error" else "warn"


def gate_status(results: Iterable[CheckResult]) -> Literal["pass", "fail"]:
    """The gate fails when any error-severity check failed or crashed."""
    blocking = any(r.severity == "error" and r.status in ("fail", "error") for r in results)
    return "fail" if blocking else "pass"


def ordered_for_review(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Failing and crashed checks first, then warnings, passes and skips; stable otherwise."""
    return sorted(results, key=lambda r: STATUS_ORDER[r.status])


def _json_safe(value: Any) -> Any:
    """Convert numpy scalars, tuples and non-finite floats into JSON-safe values."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _json_safe(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def run_check(check: Check, ctx: "CheckContext", overrides: Mapping[str, Any] | None) -> CheckResult | None:
    """Run one check with its settings; a crash becomes a result with status ``error``."""
    spec = check.spec
    settings = spec.settings_from(overrides)
    if not settings.enabled:
        return None
    if ctx.task not in spec.tasks:
        finding = Finding.skip(f"does not apply to {ctx.task} tasks")
    elif spec.needs_training and ctx.training is None:
        finding = Finding.skip("the config has no training section, so there is no training run to inspect")
    else:
        try:
            finding = check.run(ctx, settings)
        except Exception as exc:  # a crashing check must not take the report down
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return CheckResult(
                id=spec.id, title=spec.title, family=spec.family, status="error",
                severity=settings.severity, value=None, threshold=settings.threshold,
                higher_is_better=spec.higher_is_better,
                message=f"the check crashed: {exc.__class__.__name__}: {exc}",
                evidence={"exception": exc.__class__.__name__, "at": f"{where.name}:{where.lineno}"},
            )
    value = finding.value
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    return CheckResult(
        id=spec.id, title=spec.title, family=spec.family,
        status=status_for(finding.outcome, settings.severity), severity=settings.severity,
        value=_json_safe(value), threshold=settings.threshold, higher_is_better=spec.higher_is_better,
        message=finding.message, evidence=_json_safe(dict(finding.evidence)),
    )


def run_checks(ctx: "CheckContext", overrides: Mapping[str, Mapping[str, Any]]) -> tuple[CheckResult, ...]:
    """Run every enabled check in registration order."""
    results = (run_check(check, ctx, overrides.get(check.spec.id)) for check in registry.all())
    return tuple(r for r in results if r is not None)
