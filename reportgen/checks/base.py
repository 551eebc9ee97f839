"""Check contract: specs, settings, results, the registry, and the pure gate decisions."""

from __future__ import annotations

import importlib
import math
import traceback
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Literal, Mapping

from reportgen.errors import ConfigError
from reportgen.numbers import number, number_beside, setting

from reportgen.vocabulary import SEVERITIES as SEVERITIES
from reportgen.vocabulary import Status as StatusKind
from reportgen.vocabulary import Verdict

if TYPE_CHECKING:
    from reportgen.checks.context import CheckContext
    from reportgen.checks.shards import KeyedRows, LocalPart, ShardContext

Status = Literal["pass", "warn", "fail", "error", "skip"]  # the values of reportgen.vocabulary.Status
Severity = Literal["error", "warning", "info"]  # the values of reportgen.vocabulary.Severity
Outcome = Literal["ok", "violation", "concern", "skip"]
SkipKind = Literal["not_applicable", "not_measured"]
"""Why a check skipped: ``not_applicable``: the check does not apply to this task, config or kind of input (no
training section, no ``--compare-to``, inputs that are not a table); ``not_measured``: it applies, but the data did
not allow a measurement (no positive sample in test, a single class, an empty split). A blocking check that was
not measured is listed beside the verdict, and a strict gate fails on it (docs/gate.md)."""
NOT_APPLICABLE: SkipKind = "not_applicable"
NOT_MEASURED: SkipKind = "not_measured"


@dataclass(frozen=True)
class Param:
    """A named, typed setting of a check beyond its threshold.

    ``kind`` is the value's type (default: the type of ``default``; ``float`` accepts ints);
    ``minimum`` and ``maximum`` are inclusive bounds for numbers; ``nullable`` allows null.
    ``choices`` lists the allowed values; for ``kind=list`` it lists the allowed items.
    A value that breaks any of these is a config error (exit 2), never a crashed check.

    ``stricter`` declares which way the setting tightens the check, for the gate's override
    classification (``--strict`` refuses relaxations and unranked changes): ``"more"`` (a larger
    number, or a list holding every default item and more, checks more: ``sensitive``, ``alpha``
    of a test), ``"less"`` (a smaller number, or a sub-list, is stricter: ``min_effect``,
    ``patience``; for a bool, turning it on relaxes: ``allow_*``), or None when no direction holds
    (a metric choice, a bin count): then any change is ``changed``. A numeric setting whose default
    is null means "off", so setting it adds a requirement (a tightening) when a direction is declared.
    """

    name: str
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    kind: type | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    stricter: Literal["more", "less"] | None = None

    def tightens(self, value: Any) -> bool | None:
        """True when ``value`` makes the check stricter than the default, False when looser, None when unranked.

        Call only for a value that differs from the default. Numbers compare by size; lists by
        containment (a superset of the default's items is "more"); bools: on is "more".
        """
        if self.stricter is None:
            return None
        default = self.default
        if isinstance(value, bool) or isinstance(default, bool):
            if not (isinstance(value, bool) and isinstance(default, bool)):
                return None
            more = value and not default
        elif isinstance(value, (int, float)) and default is None:
            return True  # null is "off": a value adds the requirement
        elif isinstance(value, (int, float)) and isinstance(default, (int, float)):
            more = value > default
        elif isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
            given, base = set(map(repr, value)), set(map(repr, default))
            if given > base:
                more = True
            elif given < base:
                more = False
            else:
                return None  # items swapped or merely reordered: not ranked
        else:
            return None
        return more if self.stricter == "more" else not more

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
        if self.choices is not None and self.value_type() not in (list, tuple):
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
                for item in value:
                    if self.choices is not None and item not in self.choices:
                        raise ValueError(f"{self.name}: {item!r} is not one of {', '.join(map(str, self.choices))}")
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
    family: str
    """``data``, ``performance`` or ``training`` for the built-in checks; a plug-in may name its own."""
    detects: str
    how_to_read: str
    default_severity: Severity
    threshold_key: Literal["min", "max"] | None = None
    default_threshold: float | None = None
    tasks: frozenset[str] = frozenset({"binary", "multiclass", "regression"})
    needs_training: bool = False
    params: tuple[Param, ...] = ()
    threshold_range: tuple[float | None, float | None] = (None, None)
    """Inclusive bounds a user's ``min``/``max`` must respect (e.g. (0, 1) for a share)."""
    measures: str = ""
    """What the value is, in a few words (the 'value' column of docs/checks.md)."""
    threshold_alias: str | None = None
    """A deprecated name of the threshold setting, still accepted (slice_performance's ``max_gap``)."""

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
            if self.threshold_alias:
                names.add(self.threshold_alias)
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
        if self.threshold_key and self.threshold_alias and self.threshold_alias in overrides:
            if self.threshold_key in overrides:
                raise ValueError(f"give {self.threshold_key} or its deprecated name {self.threshold_alias}, not both")
            overrides[self.threshold_key] = overrides.pop(self.threshold_alias)
        if self.threshold_key and self.threshold_key in overrides:
            threshold = overrides.pop(self.threshold_key)
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"{self.threshold_key} must be a finite number, not {threshold!r}")
            threshold = float(threshold)
            low, high = self.threshold_range
            if (low is not None and threshold < low) or (high is not None and threshold > high):
                span = f"from {low:g} to {high:g}" if low is not None and high is not None else (
                    f"at least {low:g}" if low is not None else f"at most {high:g}")
                raise ValueError(f"{self.threshold_key} must be {span}, not {threshold!r}")
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
    skip_kind: SkipKind | None = None
    """Set when ``outcome`` is ``skip``: whether the check did not apply or could not measure."""

    @classmethod
    def skip(cls, reason: str, kind: SkipKind = NOT_MEASURED) -> "Finding":
        """A finding for a check that skipped, saying why (``reason``) and which ``kind`` of skip it is.

        The default is ``not_measured``, the kind a gate must not pass silently: a skip that only means
        "does not apply here" says ``NOT_APPLICABLE`` (a plug-in's bare ``Finding.skip(reason)`` fails closed).
        """
        return cls(outcome="skip", value=None, message=reason, skip_kind=kind)


@dataclass(frozen=True)
class Measurement:
    """What a check measured; the base judges it against the check's ``min``/``max``.

    ``summary`` states the measurement without a verdict ("the recall of 'Yes' on test is 0.43
    (...)"); the base appends the verdict clause ("below the 0.5 minimum"). ``violation`` and
    ``ok`` are optional lead-ins for each verdict ("The model overfits"), ``advice`` a clause
    after a violation ("check it is not derived from the label"). ``concern``, when set, turns a
    result within the threshold into a warning with that sentence appended.
    """

    value: float | int
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    violation: str = ""
    ok: str = ""
    advice: str = ""
    concern: str | None = None


CONCERN_MEASURE_KEY = "concern_measure"
"""Evidence key of a warning raised by a second condition (``Measurement.concern``), not by the value against
its threshold: ``{"label": str, "value": float, "warns_at": float, "percent": bool}``, the fact that warned,
which warns at or above ``warns_at`` (e.g. loss_curve's fall of the loss over its last epochs against
``unfinished_min_drop``). A warning's Value and Required cells show it after the value and the requirement
('0.008; loss fall 43.3%' against '≤ 0.9; loss fall < 1%', reportgen.render.fmt), so they say what warned."""

PAIRED_METRICS_KEY = "paired_metrics"
"""Evidence key: the compared metrics whose drop past the limit may be called noise by a paired test (on the same
test data: accuracy; for binary tasks also recall, ROC AUC and PR AUC); every other metric fails on its drop alone.
Page 1's Required column names them beside the p-value condition (reportgen.render.fmt.threshold_text)."""

SIGNIFICANCE_LEVEL_KEY = "significance_level"
"""Evidence key of a check whose verdict needs two conditions: a value past its threshold fails only when its
p-value is also below this level (prediction_drift, release_comparison, slice_performance). Page 1's Required
cell adds the condition: '≤ 0.1 or p ≥ 0.05'."""

VALUE_P_KEY = "value_p"
"""Evidence key, beside ``SIGNIFICANCE_LEVEL_KEY``: the p-value of the comparison the check's value measures,
``{"label": str, "p_value": float}`` in the check's own terms (``{"label": "adjusted p", "p_value": 0.38}``
for slice_performance's Benjamini–Hochberg-adjusted p). When the value is past its threshold, page 1's Value
cell shows it after the value ('0.251; adjusted p 0.38') and the Required cell names it ('≤ 0.1 or adjusted
p ≥ 0.05'), so a passing value past its threshold says why it passes. Results written without it (before
reportgen 2026-12) render as they did."""


def judge(spec: CheckSpec, settings: CheckSettings, measured: Measurement) -> Finding:
    """Apply the threshold to a measurement and write the verdict clause (a pure function).

    Direction comes from the spec (``min``: the value must be at or above; ``max``: at or below).
    A check without a threshold passes (or raises its concern).
    """
    threshold = settings.threshold

    def sentence(lead: str, body: str) -> str:
        text = f"{lead}: {body}" if lead else body[:1].upper() + body[1:]
        return text if text.endswith(".") else text + "."

    if threshold is None or spec.higher_is_better is None:
        if measured.concern:
            return Finding("concern", measured.value, sentence("", f"{measured.concern}; {measured.summary}"), measured.evidence)
        return Finding("ok", measured.value, sentence(measured.ok, measured.summary), measured.evidence)
    higher = spec.higher_is_better
    bound = "minimum" if higher else "limit"
    # A summary rounds its value to 3 decimals: beside a threshold it may then read as equal to it (0.764 against
    # a 0.764045 minimum), so the clause adds the value with the decimals that tell them apart.
    beside = number_beside(measured.value, threshold)
    if beside != number(measured.value):
        bound = f"{bound} (measured {beside})"
    if not meets_threshold(measured.value, threshold, higher):
        side = "below" if higher else "above"
        advice = f": {measured.advice}" if measured.advice else ""
        return Finding("violation", measured.value,
                       sentence(measured.violation, f"{measured.summary}, {side} the {setting(threshold)} {bound}{advice}"),
                       measured.evidence)
    verb = "meeting" if higher else "within"
    body = f"{measured.summary}, {verb} the {setting(threshold)} {bound}"
    if measured.concern:  # the concern leads: it is why the result is a warning
        return Finding("concern", measured.value, sentence("", f"{measured.concern}; {body}"), measured.evidence)
    return Finding("ok", measured.value, sentence(measured.ok, body), measured.evidence)


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
    skip_kind: SkipKind | None = None
    """Status ``skip`` only: ``not_applicable`` or ``not_measured`` (None in results.json files of earlier versions)."""

    @property
    def not_measured(self) -> bool:
        """True when the check applied to this run but skipped because the data did not allow a measurement."""
        return self.status == "skip" and self.skip_kind == NOT_MEASURED

    @property
    def blocking_not_measured(self) -> bool:
        """True for a not-measured check of severity ``error``: had it measured, it could have failed the gate."""
        return self.not_measured and self.severity == "error"


class Check(ABC):
    """A registered check: a spec and a ``run`` that turns the context into a finding."""

    spec: ClassVar[CheckSpec]
    uses_row_sample: ClassVar[bool] = False
    """True when ``run`` reads ``ctx.row_sample(...)``: a multi-worker run then gathers the sample to rank 0."""

    @abstractmethod
    def run(self, ctx: "CheckContext", settings: CheckSettings) -> "Finding | Measurement":
        """Inspect the run; may raise, which becomes status ``error``.

        Return a :class:`Measurement` and the base judges it against ``min``/``max``; return a
        :class:`Finding` with an explicit outcome when the check decides itself (or skips).
        """

    def local(self, shard: "ShardContext", settings: CheckSettings) -> "LocalPart | Any":
        """Optional phase over one worker's own rows, run on every worker before ``run`` (no collectives inside).

        Return a small picklable state (or a :class:`~reportgen.checks.shards.LocalPart` with keyed rows to
        meet by hash); ``run`` reads every worker's, in rank order, with ``ctx.local_results(spec.id)``.
        Only checks that read input rows need one (reportgen/checks/shards.py). May raise: the check's
        result is then status ``error``.
        """
        raise NotImplementedError

    def meet(self, received: "KeyedRows", shard: "ShardContext", settings: CheckSettings) -> Any:
        """The keyed rows routed to this worker (every row whose hash maps here, from every worker, in rank
        order); returns a small picklable state that ``run`` receives as ``WorkerResult.met``, or a
        ``LocalPart(state, keyed)`` whose keyed rows meet again (``meet`` is called once more with them;
        ``run`` then receives the last round's state)."""
        raise NotImplementedError


ENTRY_POINT_GROUP = "reportgen.checks"
"""Installed packages add checks through entry points in this group (docs/plugins.md)."""
BUILTIN_MODULES = (
    "reportgen.checks.data_checks",
    "reportgen.checks.drift_checks",
    "reportgen.checks.performance_checks",
    "reportgen.checks.slice_checks",
    "reportgen.checks.behaviour_checks",
    "reportgen.checks.training_checks",
    "reportgen.checks.comparison_checks",
)


class PluginError(ConfigError):
    """A check plug-in cannot be imported or is not a valid check (exit code 2)."""


class CheckRegistry:
    """The checks of a run by id, in order: the built-in families, then installed plug-ins
    (entry-point group ``reportgen.checks``), then checks the config names by import path.

    The built-in modules and the entry points are loaded on first use, once. ``register`` is the
    class decorator a check module uses; ``add`` takes a check class from anywhere.
    """

    def __init__(
        self,
        builtin_modules: tuple[str, ...] = BUILTIN_MODULES,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        builtin_loader: Callable[[], None] | None = None,
    ) -> None:
        self._checks: dict[str, Check] = {}
        self._origins: dict[str, str] = {}
        self._builtin_modules = builtin_modules
        self._builtin_loader = builtin_loader
        self._entry_point_group = entry_point_group
        self._loading = False
        self._loaded = False

    def register(self, cls: type[Check]) -> type[Check]:
        """Class decorator: add a check to the registry."""
        built_in = cls.__module__ in self._builtin_modules or cls.__module__.startswith("reportgen.checks.")
        self.add(cls, origin="built-in" if built_in else f"module {cls.__module__}")
        return cls

    def add(self, cls: Any, origin: str) -> Check:
        """Add a Check subclass (idempotent for the same class); raise PluginError when it is not one."""
        if not (isinstance(cls, type) and issubclass(cls, Check)):
            raise PluginError(f"{origin}: {cls!r} is not a subclass of reportgen.Check")
        spec = getattr(cls, "spec", None)
        if not isinstance(spec, CheckSpec):
            raise PluginError(f"{origin}: {cls.__name__}.spec must be a reportgen.CheckSpec")
        existing = self._checks.get(spec.id)
        if existing is not None:
            if type(existing) is cls:
                return existing
            raise PluginError(f"{origin}: check id {spec.id!r} is already taken by {self._origins[spec.id]}")
        try:
            instance = cls()
        except Exception as exc:
            raise PluginError(f"{origin}: {cls.__name__}() failed: {exc.__class__.__name__}: {exc}") from None
        self._checks[spec.id] = instance
        self._origins[spec.id] = origin
        return instance

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self._builtin_modules:
                importlib.import_module(module)
            if self._builtin_loader is not None:
                self._builtin_loader()
            self._loaded = True
            if self._entry_point_group:
                self._load_entry_points(self._entry_point_group)
        finally:
            self._loading = False

    def _load_entry_points(self, group: str) -> None:
        from importlib.metadata import entry_points

        for point in sorted(entry_points(group=group), key=lambda p: p.name):
            dist = getattr(getattr(point, "dist", None), "name", None)
            origin = f"plug-in {point.value!r} (entry point {point.name!r}{f' of {dist}' if dist else ''})"
            try:
                loaded = point.load()
            except Exception as exc:
                raise PluginError(f"{origin} cannot be imported: {exc.__class__.__name__}: {exc}") from None
            self._add_loaded(loaded, origin)

    def _add_loaded(self, loaded: Any, origin: str) -> list[Check]:
        """A check class, or a module / list of check classes, as a plug-in reference names it."""
        if isinstance(loaded, types.ModuleType):
            classes = [v for v in vars(loaded).values()
                       if isinstance(v, type) and issubclass(v, Check) and v.__module__ == loaded.__name__
                       and isinstance(getattr(v, "spec", None), CheckSpec)]
            if not classes:
                raise PluginError(f"{origin}: module {loaded.__name__} defines no Check subclass with a spec")
            return [self.add(c, origin) for c in classes]
        if isinstance(loaded, (list, tuple)):
            return [self.add(c, origin) for c in loaded]
        return [self.add(loaded, origin)]

    def load_reference(self, reference: str, resolve: Callable[[str], Path] | None = None) -> list[Check]:
        """Add the check(s) an import path names: ``package.module:Class``, ``package.module`` (all
        its checks) or ``file.py:Class`` (relative to the config). Raise PluginError on any problem."""
        self._ensure_loaded()
        origin = f"plug-in {reference!r}"
        from reportgen.plugins import load_object

        try:
            if ":" in reference:
                loaded = load_object(reference, resolve or Path, "plugins")
            else:
                loaded = importlib.import_module(reference)
        except PluginError:
            raise
        except ConfigError as exc:
            raise PluginError(f"{origin}: {exc}") from None
        except Exception as exc:
            raise PluginError(f"{origin} cannot be imported: {exc.__class__.__name__}: {exc}") from None
        return self._add_loaded(loaded, origin)

    def origin(self, check_id: str) -> str | None:
        """Where a check comes from: 'built-in' or the plug-in that added it."""
        self._ensure_loaded()
        return self._origins.get(check_id)

    def get(self, check_id: str) -> Check | None:
        """Return the check with this id, or None."""
        self._ensure_loaded()
        return self._checks.get(check_id)

    def _ordered(self) -> list[Check]:
        """Built-in families in ``builtin_modules`` order (whatever imported them first), then plug-ins as added."""
        modules = self._builtin_modules
        rank = {check_id: position for position, check_id in enumerate(self._checks)}

        def key(check: Check) -> tuple[int, int]:
            module = type(check).__module__
            family = modules.index(module) if module in modules else len(modules)
            return family, rank[check.spec.id]

        return sorted(self._checks.values(), key=key)

    def ids(self) -> list[str]:
        """Return every registered check id, in report order."""
        self._ensure_loaded()
        return [check.spec.id for check in self._ordered()]

    def all(self) -> list[Check]:
        """Return every registered check, in report order."""
        self._ensure_loaded()
        return self._ordered()


registry = CheckRegistry(builtin_loader=lambda: _load_builtin_checks())
register = registry.register


def _load_builtin_checks() -> None:
    """Import the modules that register the built-in checks (once), in ``BUILTIN_MODULES`` order.

    A new family module is listed in ``BUILTIN_MODULES``: its place there is its place in the report.
    """
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


THRESHOLD_TOLERANCE = 1e-12
"""A value this close to its threshold (relative to max(1, |threshold|)) counts as at it: the float rounding of a
difference such as 0.8 − 0.7 = 0.10000000000000009 must not turn "at the 0.1 limit" (inclusive) into "above it"."""


def meets_threshold(value: float, threshold: float, higher_is_better: bool) -> bool:
    """True when ``value`` is on the good side of ``threshold`` (inclusive, within ``THRESHOLD_TOLERANCE``)."""
    slack = THRESHOLD_TOLERANCE * max(1.0, abs(threshold))
    return value >= threshold - slack if higher_is_better else value <= threshold + slack


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
    blocking = any(StatusKind(r.status).blocks_gate(r.severity) for r in results)
    return Verdict.FAIL.value if blocking else Verdict.PASS.value


def ordered_for_review(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Failing and crashed checks first, then warnings, passes and skips; stable otherwise."""
    return sorted(results, key=lambda r: StatusKind(r.status).review_rank)


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
    """Run one check with its settings; a crash becomes a result with status ``error``.

    So does a measured value that is not a finite number (it cannot be compared with a threshold)
    and a result results.json could not read back (evidence nested too deep or too large, a message or an
    evidence string longer than MAX_TEXT_CHARS;
    ``results_schema.result_size_problem``): every written results.json loads again.
    """
    spec = check.spec
    settings = spec.settings_from(overrides)
    if not settings.enabled:
        return None

    def error(message: str, evidence: Mapping[str, Any]) -> CheckResult:
        from reportgen.results_schema import MAX_TEXT_CHARS

        if len(message) > MAX_TEXT_CHARS:  # an exception's text is not bounded; results.json is
            cut = len(message) - (MAX_TEXT_CHARS - 40)
            message = message[: MAX_TEXT_CHARS - 40] + f" … [{cut:,} characters cut]"
        return CheckResult(
            id=spec.id, title=spec.title, family=spec.family, status="error",
            severity=settings.severity, value=None, threshold=settings.threshold,
            higher_is_better=spec.higher_is_better, message=message, evidence=evidence,
        )

    if ctx.task not in spec.tasks:
        finding = Finding.skip(f"does not apply to {ctx.task} tasks", NOT_APPLICABLE)
    elif spec.needs_training and ctx.training is None:
        finding = Finding.skip("the config has no training section, so there is no training run to inspect", NOT_APPLICABLE)
    else:
        try:
            from reportgen.checks.shards import LocalFailure, has_local_phase

            if has_local_phase(check):
                local = ctx.ensure_local_results(check, settings)
                if isinstance(local, LocalFailure):
                    return error(f"the check crashed: {local.message}", {"exception": local.exception, "at": "local phase"})
            returned = check.run(ctx, settings)
            if isinstance(returned, Measurement) and not _is_finite_number(returned.value):
                return error(f"the check measured {returned.value!r}, not a finite number, so it cannot be judged "
                             f"against its threshold: {returned.summary}", {"measured": _json_safe(returned.value)})
            finding = judge(spec, settings, returned) if isinstance(returned, Measurement) else returned
            if not isinstance(finding, Finding):
                raise TypeError(f"run() returned a {type(finding).__name__}, not a Finding or Measurement")
            value = finding.value
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            result = CheckResult(
                id=spec.id, title=spec.title, family=spec.family,
                status=status_for(finding.outcome, settings.severity), severity=settings.severity,
                value=_json_safe(value), threshold=settings.threshold, higher_is_better=spec.higher_is_better,
                message=str(finding.message), evidence=_json_safe(dict(finding.evidence)),
                skip_kind=_skip_kind(finding),
            )
        except Exception as exc:  # a crashing check must not take the report down
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return error(f"the check crashed: {exc.__class__.__name__}: {exc}",
                         {"exception": exc.__class__.__name__, "at": f"{where.name}:{where.lineno}"})
        from reportgen.results_schema import result_size_problem

        problem = result_size_problem({"message": result.message, "evidence": result.evidence})
        if problem:
            return error(f"the check's result cannot be written to results.json: {problem}", {})
        return result
    return CheckResult(
        id=spec.id, title=spec.title, family=spec.family,
        status=status_for(finding.outcome, settings.severity), severity=settings.severity,
        value=None, threshold=settings.threshold, higher_is_better=spec.higher_is_better,
        message=finding.message, evidence=_json_safe(dict(finding.evidence)), skip_kind=_skip_kind(finding),
    )


def _skip_kind(finding: Finding) -> SkipKind | None:
    """The finding's kind of skip (a skip built without one counts as not measured), None when it did not skip."""
    if finding.outcome != "skip":
        return None
    return NOT_APPLICABLE if finding.skip_kind == NOT_APPLICABLE else NOT_MEASURED


def _is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool) that is finite."""
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def run_checks(
    ctx: "CheckContext", overrides: Mapping[str, Mapping[str, Any]], checks: "CheckRegistry | None" = None
) -> tuple[CheckResult, ...]:
    """Run every enabled check of ``checks`` (default: the global registry) in registration order.

    Every input array the checks can reach is flagged read-only first (reportgen/checks/read_only.py): a check
    that writes into one gets an ``error`` result, and later checks see the run's data unchanged."""
    from reportgen.checks.read_only import freeze_inputs

    freeze_inputs(ctx.data, ctx.predictions, ctx.samples)
    results = (run_check(check, ctx, overrides.get(check.spec.id)) for check in (checks or registry).all())
    return tuple(r for r in results if r is not None)
