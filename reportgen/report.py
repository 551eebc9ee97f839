"""The report object: one value holding everything every renderer needs (results.json schema v1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, get_args

from reportgen.checks.base import SEVERITIES, CheckResult, Status, gate_status, ordered_for_review
from reportgen.errors import ResultsError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Report:
    """A finished run: verdict, environment, data summary, metrics, checks and plot data.

    Every field is JSON-safe; ``to_dict`` is the results.json document and renderers read only this.
    """

    name: str
    task: Literal["binary", "multiclass", "regression"]
    environment: Mapping[str, Any]
    """reportgen_version, torch_version, python, device, seed, config_sha256, created_at."""
    data: Mapping[str, Any]
    """features, classes, positive_class, splits {split: {n, class_counts}}, fingerprint."""
    model: Mapping[str, Any]
    """kind, class_name, parameters, trainable_parameters, outputs, output_kind, threshold, checkpoint."""
    training: Mapping[str, Any] | None
    """TrainingResult.to_dict(), or None when the model was only evaluated."""
    metrics: Mapping[str, Mapping[str, Any]]
    """Per split (train, val, test): the metric dictionary of reportgen.metrics."""
    checks: tuple[CheckResult, ...]
    curves: Mapping[str, Any] = field(default_factory=dict)
    """Plot data per split, bounded in size: roc, pr, calibration, scatter (regression)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The config as run, after --set overrides."""
    timing: Mapping[str, float] = field(default_factory=dict)
    """Seconds per stage: load, train, evaluate, checks, render."""
    gate: Mapping[str, Any] | None = None
    """verdict, blocking ids, overrides of the default gate, strict, test_outcomes (reportgen.gate.gate_block)."""
    schema_version: int = SCHEMA_VERSION

    @property
    def status(self) -> Literal["pass", "fail"]:
        """The gate verdict: fail when any error-severity check failed or crashed."""
        return gate_status(self.checks)

    @property
    def passed(self) -> bool:
        """True when the gate passed."""
        return self.status == "pass"

    def checks_for_review(self) -> list[CheckResult]:
        """Checks with failures first, as the gate table shows them."""
        return ordered_for_review(self.checks)

    def blocking_checks(self) -> list[CheckResult]:
        """The checks that make the gate fail."""
        return [c for c in self.checks if c.severity == "error" and c.status in ("fail", "error")]

    def status_counts(self) -> dict[str, int]:
        """Number of checks per status."""
        counts = {s: 0 for s in ("fail", "error", "warn", "pass", "skip")}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def status_summary(self, *, always: tuple[str, ...] = ("fail", "error", "warn", "pass", "skip")) -> str:
        """'1 failed, 0 crashed, 1 warning, 12 passed, 1 skipped': statuses in ``always`` even when zero."""
        counts = self.status_counts()
        words = {"fail": "failed", "error": "crashed", "warn": "warning", "pass": "passed", "skip": "skipped"}
        return ", ".join(
            f"{n} {words[status]}{'s' if status == 'warn' and n != 1 else ''}"
            for status, n in counts.items() if n or status in always
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the results.json document."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "task": self.task,
            "status": self.status,
            "environment": dict(self.environment),
            "data": dict(self.data),
            "model": dict(self.model),
            "training": dict(self.training) if self.training is not None else None,
            "metrics": {split: dict(values) for split, values in self.metrics.items()},
            "checks": [c.to_dict() for c in self.checks],
            "curves": dict(self.curves),
            "config": dict(self.config),
            "timing": dict(self.timing),
            **({"gate": dict(self.gate)} if self.gate is not None else {}),
        }

    @classmethod
    def from_dict(cls, document: Any) -> "Report":
        """Rebuild a report from a results.json document (e.g. to re-render it).

        Raises ResultsError naming the first problem: a gate must never pass on a file that is
        truncated, hand-edited into contradiction, or written by an incompatible version.
        """
        _validate(document)
        checks = tuple(
            CheckResult(
                id=c["id"], title=c.get("title", c["id"]), family=c.get("family", ""),
                status=c["status"], severity=c["severity"], value=c.get("value"),
                threshold=c.get("threshold"), higher_is_better=c.get("higher_is_better"),
                message=c.get("message", ""), evidence=c.get("evidence") or {},
            )
            for c in document["checks"]
        )
        report = cls(
            name=document["name"], task=document["task"], environment=document.get("environment") or {},
            data=document.get("data") or {}, model=document.get("model") or {},
            training=document.get("training"), metrics=document.get("metrics") or {}, checks=checks,
            curves=document.get("curves") or {}, config=document.get("config") or {},
            timing=document.get("timing") or {}, gate=document.get("gate"), schema_version=document["schema_version"],
        )
        recorded = document.get("status")
        if recorded is not None and recorded != report.status:
            raise ResultsError(f"its status is {recorded!r} but its checks give {report.status!r}: the file was edited or damaged")
        return report


STATUSES: tuple[str, ...] = get_args(Status)
TASKS = ("binary", "multiclass", "regression")
OPTIONAL_MAPPINGS = ("environment", "data", "model", "metrics", "curves", "config", "timing")


def _validate(document: Any) -> None:
    """Raise ResultsError unless ``document`` has the shape of a results.json of this schema."""
    if not isinstance(document, Mapping):
        raise ResultsError(f"not a reportgen results.json (a JSON {type(document).__name__}, not an object)")
    version = document.get("schema_version")
    if version is None:
        raise ResultsError("not a reportgen results.json (no schema_version)")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"schema_version {version!r} is not {SCHEMA_VERSION}, the one this reportgen reads")
    for key in ("name", "task", "checks"):
        if key not in document:
            raise ResultsError(f"no {key!r}: the file is incomplete")
    if not isinstance(document["name"], str) or document["task"] not in TASKS:
        raise ResultsError(f"name must be text and task one of {', '.join(TASKS)}, not {document['task']!r}")
    for key in OPTIONAL_MAPPINGS:
        if document.get(key) is not None and not isinstance(document[key], Mapping):
            raise ResultsError(f"{key!r} must be an object")
    if document.get("training") is not None and not isinstance(document["training"], Mapping):
        raise ResultsError("'training' must be an object or null")
    checks = document["checks"]
    if not isinstance(checks, list):
        raise ResultsError("'checks' must be a list")
    for i, check in enumerate(checks):
        if not isinstance(check, Mapping) or not isinstance(check.get("id"), str):
            raise ResultsError(f"checks[{i}] is not a check result (an object with an 'id')")
        if check.get("status") not in STATUSES:
            raise ResultsError(f"checks[{i}] ({check['id']}) has status {check.get('status')!r}, not one of {', '.join(STATUSES)}")
        if check.get("severity") not in SEVERITIES:
            raise ResultsError(f"checks[{i}] ({check['id']}) has severity {check.get('severity')!r}, not one of {', '.join(SEVERITIES)}")
        if check.get("evidence") is not None and not isinstance(check["evidence"], Mapping):
            raise ResultsError(f"checks[{i}] ({check['id']}) has evidence that is not an object")
