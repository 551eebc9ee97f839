"""The report object: one value holding everything every renderer needs (results.json schema v1).

Its sections are the validated results.json document (plain dicts, see reportgen.results_schema),
whether the report comes from a run or from a saved results.json, so both render the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from reportgen import results_schema
from reportgen.checks.base import CheckResult, gate_status, ordered_for_review
from reportgen.errors import ResultsError
from reportgen.results_schema import SCHEMA_VERSION
from reportgen.vocabulary import STATUSES, Status, Verdict

STATUS_WORDS = {Status.FAIL: "failed", Status.ERROR: "crashed", Status.WARN: "warning", Status.PASS: "passed",
                Status.SKIP: "skipped"}
"""How status_summary counts each status."""
SUMMARY_ORDER: tuple[Status, ...] = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)
"""The order of status_summary: failures before crashes, as the console verdict line reads."""


@dataclass(frozen=True)
class Report:
    """A finished run: verdict, environment, data summary, metrics, checks and plot data.

    Constructing one passes every section through ``results_schema.to_jsonable`` (non-finite
    numbers become None, numpy values plain Python) and validates the whole document, so a
    Report is always a valid results.json and renderers read only this.
    Raises ResultsError when a section does not fit the schema.
    """

    name: str
    task: str
    """binary, multiclass or regression (reportgen.vocabulary.Task)."""
    environment: Mapping[str, Any]
    """reportgen_version, torch_version, python, device, seed, config_sha256, config_file, created_at."""
    data: Mapping[str, Any]
    """features, input_shape, classes, positive_class, splits {split: {n, class_counts, source}}, fingerprint."""
    model: Mapping[str, Any]
    """kind, class_name, parameters, trainable_parameters, outputs, output_kind, threshold, checkpoint."""
    training: Mapping[str, Any] | None
    """epochs_run, best_epoch, stopped_early, loss, ..., history, gradients; None when only evaluated."""
    metrics: Mapping[str, Mapping[str, Any]]
    """Per split (train, val, test): the metric dictionary of reportgen.metrics."""
    checks: tuple[CheckResult, ...]
    curves: Mapping[str, Any] = field(default_factory=dict)
    """Plot data per split, bounded in size: roc, pr, calibration, scatter (regression)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The config as run, after --set overrides."""
    timing: Mapping[str, float | None] = field(default_factory=dict)
    """Seconds per stage: load, train, evaluate, checks, render."""
    gate: Mapping[str, Any] | None = None
    """verdict, blocking ids, overrides of the default gate, strict, test_outcomes (reportgen.gate.gate_block);
    None in files written before the block existed."""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        document = results_schema.validate_document(self._raw_document())
        for key in ("name", "task", "environment", "data", "model", "training", "metrics", "curves", "config", "timing"):
            object.__setattr__(self, key, document[key])
        object.__setattr__(self, "gate", document.get("gate"))
        object.__setattr__(self, "checks", tuple(CheckResult(**record) for record in document["checks"]))

    def _raw_document(self) -> dict[str, Any]:
        checks = [{f.name: getattr(c, f.name) for f in fields(c) if f.name != "skip_kind" or c.skip_kind is not None}
                  if isinstance(c, CheckResult) else c for c in self.checks]
        return results_schema.to_jsonable({
            "schema_version": self.schema_version,
            "name": self.name,
            "task": self.task,
            "status": gate_status(c for c in self.checks if isinstance(c, CheckResult)),
            "environment": self.environment,
            "data": self.data,
            "model": self.model,
            "training": self.training,
            "metrics": self.metrics,
            "checks": checks,
            "curves": self.curves,
            "config": self.config,
            "timing": self.timing,
            **({"gate": self.gate} if self.gate is not None else {}),
        })

    def document(self) -> dict[str, Any]:
        """The results.json document (a new dict each call; JSON types only)."""
        return self._raw_document()

    @classmethod
    def from_document(cls, document: Any) -> "Report":
        """Rebuild a report from a parsed results.json (e.g. to re-render it or compare with it).

        Raises ResultsError naming the first problem: a gate must never pass on a file that is
        truncated, hand-edited into contradiction, or written by an incompatible version.
        """
        results_schema.validate_document(document)
        report = cls(
            name=document["name"], task=document["task"], environment=document.get("environment", {}),
            data=document.get("data", {}), model=document.get("model", {}), training=document.get("training"),
            metrics=document.get("metrics", {}),
            checks=tuple(CheckResult(**{**_CHECK_DEFAULTS, **record}) for record in document["checks"]),
            curves=document.get("curves", {}), config=document.get("config", {}), timing=document.get("timing", {}),
            gate=document.get("gate"), schema_version=document["schema_version"],
        )
        recorded = document["status"]
        if recorded != report.status:
            raise ResultsError(f"its status is {recorded!r} but its checks give {report.status!r}: the file was edited or damaged")
        return report

    @property
    def status(self) -> str:
        """The gate verdict (reportgen.vocabulary.Verdict): fail when any error-severity check failed or crashed."""
        return gate_status(self.checks)

    @property
    def passed(self) -> bool:
        """True when the gate passed."""
        return self.status == Verdict.PASS

    def checks_for_review(self) -> list[CheckResult]:
        """Checks with failures first, as the gate table shows them."""
        return ordered_for_review(self.checks)

    def blocking_checks(self) -> list[CheckResult]:
        """The checks that make the gate fail."""
        return [c for c in self.checks if Status(c.status).blocks_gate(c.severity)]

    def status_counts(self) -> dict[str, int]:
        """Number of checks per status, every status present (in summary order)."""
        counts = {s.value: 0 for s in SUMMARY_ORDER}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def status_summary(self, *, always: tuple[str, ...] = STATUSES) -> str:
        """'1 failed, 0 crashed, 1 warning, 12 passed, 1 skipped': statuses in ``always`` even when zero."""
        counts = self.status_counts()
        return ", ".join(
            f"{n} {STATUS_WORDS[Status(status)]}{'s' if status == Status.WARN and n != 1 else ''}"
            for status, n in counts.items() if n or status in always
        )


_CHECK_DEFAULTS: dict[str, Any] = {"value": None, "threshold": None, "higher_is_better": None, "message": "", "evidence": {}}
"""Optional keys of a check record, for files that leave them out."""


def load_results(path: Path) -> Report:
    """Read a results.json (``reportgen render``, ``--compare-to``): the one loader of saved reports.

    Raises ResultsError (an InputError: exit 2) with one line naming the file and the problem:
    not found, not a regular file, larger than results_schema.MAX_BYTES, not UTF-8, not JSON,
    nested too deep, a section of the wrong type, a missing section, a contradictory status.
    """
    try:
        return Report.from_document(results_schema.read_document(Path(path)))
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
