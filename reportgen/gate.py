"""The release gate as data: what differs from the default gate, and the strict rule on relaxations.

Every function here is pure: it reads the registered check specs and the config's ``checks``
section and returns values; the pipeline stores the result in results.json's ``gate`` block and
every renderer shows it where the verdict is.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from reportgen.checks.base import CheckResult, CheckSpec, Param, gate_status
from reportgen.vocabulary import Severity, Status
from reportgen.numbers import setting

Effect = Literal["disabled", "relaxed", "tightened", "severity_lowered", "severity_raised", "changed"]
RELAXING_EFFECTS: frozenset[str] = frozenset({"disabled", "relaxed", "severity_lowered"})
"""Effects that make the gate easier to pass; ``--strict`` turns each into a failure."""
STRICT_CHECK_ID = "gate_strict"
"""Id of the result that records a strict gate's refusal of relaxations (not a registered check)."""


@dataclass(frozen=True)
class Override:
    """One difference between the config's gate and the default gate.

    ``setting`` is ``enabled``, ``severity``, the threshold key (``min``/``max``) or a parameter
    name; ``default`` and ``value`` are the spec's default and the configured value.
    """

    check: str
    setting: str
    default: Any
    value: Any
    effect: Effect

    @property
    def relaxes(self) -> bool:
        """True when this override makes the gate easier to pass."""
        return self.effect in RELAXING_EFFECTS

    def describe(self) -> str:
        """'minority_recall.min relaxed from 0.5 to 0.1' / 'minority_recall disabled'."""
        if self.effect == "disabled":
            return f"{self.check} disabled"
        words = {"relaxed": "relaxed", "tightened": "tightened", "severity_lowered": "lowered",
                 "severity_raised": "raised", "changed": "changed"}[self.effect]
        before, after = _text(self.default), _text(self.value)
        if before == after:  # rounded to the same digits: a relaxation must never read as no change
            before, after = repr(self.default), repr(self.value)
        return f"{self.check}.{self.setting} {words} from {before} to {after}"

    def to_dict(self) -> dict[str, Any]:
        """The results.json form (the ``gate.overrides`` items)."""
        return asdict(self)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return setting(value)
    return str(value)


def _threshold_effect(spec: CheckSpec, default: float, value: float) -> Effect | None:
    """A ``min`` lowered or a ``max`` raised relaxes the gate; the reverse tightens it."""
    if value == default:
        return None
    looser = value < default if spec.threshold_key == "min" else value > default
    return "relaxed" if looser else "tightened"


def _param_effect(param: Param, value: Any) -> Effect | None:
    """A parameter's declared direction (``Param.stricter``) ranks a change; undeclared ``allow_*`` bools relax when on."""
    if value == param.default:
        return None
    tightens = param.tightens(value)
    if tightens is not None:
        return "tightened" if tightens else "relaxed"
    if param.stricter is None and param.name.startswith("allow_") and isinstance(value, bool):
        return "relaxed" if value else "tightened"
    return "changed"


def applies(spec: CheckSpec, task: str | None, has_training: bool | None) -> bool:
    """Whether the check would run on this task (``spec.tasks``) and config (``needs_training``); None means unknown (counts as yes)."""
    if task is not None and task not in spec.tasks:
        return False
    return not (spec.needs_training and has_training is False)


def gate_overrides(
    specs: Iterable[CheckSpec], checks_config: Mapping[str, Mapping[str, Any]],
    task: str | None = None, has_training: bool | None = None,
) -> tuple[Override, ...]:
    """Every difference between ``checks_config`` (the config's ``checks`` section) and the specs' defaults.

    Settings equal to the default are no override. A disabled check lists only ``disabled``
    (its other settings no longer matter). Ordered as the specs, then enabled, threshold,
    severity, parameters. Settings that do not parse are left to config validation.
    Settings of a check that does not apply to ``task`` or, when ``has_training`` is False, that
    needs a training run change nothing, so they are no override (None: not known, every check counts).
    """
    found: list[Override] = []
    for spec in specs:
        settings = checks_config.get(spec.id)
        if not settings or not applies(spec, task, has_training):
            continue
        if settings.get("enabled") is False:
            found.append(Override(spec.id, "enabled", True, False, "disabled"))
            continue
        key = spec.threshold_key
        given = key if key in settings or not spec.threshold_alias else spec.threshold_alias
        if key and given in settings and spec.default_threshold is not None:
            value = settings[given]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                effect = _threshold_effect(spec, float(spec.default_threshold), float(value))
                if effect:
                    found.append(Override(spec.id, key, spec.default_threshold, value, effect))
        severity = settings.get("severity")
        if severity in {s.value for s in Severity} and severity != spec.default_severity:
            lower = Severity(severity).rank > Severity(spec.default_severity).rank
            found.append(Override(spec.id, "severity", spec.default_severity, severity,
                                  "severity_lowered" if lower else "severity_raised"))
        for param in spec.params:
            if param.name in settings:
                effect = _param_effect(param, settings[param.name])
                if effect:
                    found.append(Override(spec.id, param.name, param.default, settings[param.name], effect))
    return tuple(found)


def not_measured_blocking(checks: Iterable[CheckResult]) -> list[CheckResult]:
    """The blocking (severity ``error``) checks that skipped because the data did not allow a measurement.

    Such a check neither passed nor failed: the gate's pass does not cover it, so every surface that
    shows the verdict lists it, and a strict gate fails on it. Checks of results.json files of earlier
    versions carry no ``skip_kind`` and are never listed.
    """
    return [c for c in checks if c.blocking_not_measured]


def not_measured_text(check: CheckResult) -> str:
    """'minority_recall not measured: the test split has no samples of 'Yes'' (one line, for the verdict's surroundings)."""
    return f"{check.id} not measured: {check.message}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def strict_result(overrides: Sequence[Override], not_measured: Sequence[CheckResult] = ()) -> CheckResult | None:
    """The failing result a strict gate adds when the config relaxes the default gate, or a blocking check
    could not measure (``not_measured``: see ``not_measured_blocking``), else None.

    A setting whose effect cannot be ranked (``changed``: fewer calibration bins, another metric list)
    may weaken the check, so a strict gate refuses it too; only tightenings pass. A blocking check that
    could not measure is refused because the gate cannot vouch for what it guards.
    """
    relaxations = [o for o in overrides if o.relaxes or o.effect == "changed"]
    if not relaxations and not not_measured:
        return None
    parts = []
    if relaxations:
        parts.append(f"{_plural(len(relaxations), 'relaxation')} of the default gate: "
                     + "; ".join(o.describe() for o in relaxations))
    if not_measured:
        parts.append(f"{_plural(len(not_measured), 'blocking check')} that could not measure: "
                     + "; ".join(not_measured_text(c) for c in not_measured))
    message = "The strict gate refuses " + ", and ".join(parts)
    return CheckResult(
        id=STRICT_CHECK_ID, title="Strict gate: no relaxed or unmeasured checks", family="gate", status="fail",
        severity="error", value=len(relaxations) + len(not_measured), threshold=0.0, higher_is_better=False,
        message=message if message.endswith(".") else message + ".",
        evidence={"relaxations": [o.to_dict() for o in relaxations],
                  "not_measured": [c.id for c in not_measured]},
    )


def gate_block(
    checks: Sequence[CheckResult], overrides: Sequence[Override], strict: bool,
    test_outcomes: Mapping[str, Any] | None = None, test_scores: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """results.json's ``gate`` block: verdict, blocking check ids, overrides, strict, the blocking checks that
    could not measure (``not_measured``), and the paired-test data.

    ``test_outcomes`` and ``test_scores`` are what a later run's release comparison needs for
    paired tests on the same test data (see ``correctness_record`` and ``score_record``).
    """
    block: dict[str, Any] = {
        "verdict": gate_status(checks),
        "blocking": [c.id for c in checks if Status(c.status).blocks_gate(c.severity)],
        "overrides": [o.to_dict() for o in overrides],
        "strict": bool(strict),
        "not_measured": [c.id for c in not_measured_blocking(checks)],
    }
    if test_outcomes is not None:
        block["test_outcomes"] = dict(test_outcomes)
    if test_scores is not None:
        block["test_scores"] = dict(test_scores)
    return block


def overrides_of(gate: Mapping[str, Any] | None) -> list[Override]:
    """The overrides recorded in a results.json ``gate`` block (an empty list for older files)."""
    rows = (gate or {}).get("overrides") or []
    return [Override(str(r.get("check")), str(r.get("setting")), r.get("default"), r.get("value"), r.get("effect", "changed"))
            for r in rows if isinstance(r, Mapping)]


# --- per-sample test outcomes, for a paired comparison with a later run -------------------------

def labels_sha256(y_true: Any) -> str:
    """SHA-256 of the test labels (class indices, shape (n,)) in row order, as little-endian int64.

    Two runs with equal hashes and equal data fingerprints scored the same samples in the same order.
    """
    import numpy as np

    return hashlib.sha256(np.asarray(y_true, dtype=np.int64).astype("<i8").tobytes()).hexdigest()


def correctness_record(y_true: Any, y_pred: Any, positive_index: int | None) -> dict[str, Any]:
    """Pack per-sample correctness of the test split (class indices, shape (n,)) into a compact, JSON-safe record.

    ``correct`` is base64 of the bits (1 = right), most significant bit first (numpy.packbits):
    n/8 bytes, about 167 kB of JSON per million rows; ``positive`` (binary only) marks the
    samples of the positive class, so a paired test on recall can use the same rows.
    ``labels_sha256`` hashes the labels in row order: two runs with equal hashes and equal
    data fingerprints scored the same samples in the same order.
    """
    import numpy as np

    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    record: dict[str, Any] = {
        "n": int(truth.shape[0]),
        "encoding": "base64 of numpy.packbits, most significant bit first",
        "labels_sha256": labels_sha256(truth),
        "correct": base64.b64encode(np.packbits(truth == pred).tobytes()).decode("ascii"),
    }
    if positive_index is not None:
        record["positive"] = base64.b64encode(np.packbits(truth == positive_index).tobytes()).decode("ascii")
    return record


def unpack_bits(text: str, n: int) -> Any:
    """The boolean array of length ``n`` that ``correctness_record`` packed; ValueError when it does not fit."""
    import numpy as np

    raw = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if raw.size != (n + 7) // 8:
        raise ValueError(f"{raw.size} bytes cannot hold {n} samples")
    return np.unpackbits(raw)[:n].astype(bool)


SCORE_ENCODING = "base64 of little-endian uint16, score = value / 65535"
"""How ``score_record`` packs the scores (reportgen.paired_bootstrap.quantise_scores)."""


def score_record(y_true: Any, positive_scores: Any, positive_index: int) -> dict[str, Any]:
    """Pack the test split's positive-class scores (shape (n,), in [0, 1]) for a later run's paired bootstrap.

    Scores are quantised to 16 bits (reportgen.paired_bootstrap.quantise_scores; a step of
    1.5e-5, far below any AUC difference the gate judges). Only the rows of
    ``paired_bootstrap.stored_rows`` are kept (all rows up to 20,000; beyond, a subset seeded by
    ``labels_sha256``), so the record is at most about 53 kB of JSON. ``labels_sha256`` is the
    same hash as ``correctness_record``'s: it ties the row order to the test data.
    """
    import numpy as np

    from reportgen.paired_bootstrap import quantise_scores, stored_rows

    truth = np.asarray(y_true, dtype=np.int64)
    labels_hash = labels_sha256(truth)
    rows = stored_rows(int(truth.shape[0]), labels_hash)
    levels = quantise_scores(np.asarray(positive_scores)[rows]).astype("<u2")
    return {
        "n": int(truth.shape[0]),
        "labels_sha256": labels_hash,
        "positive_index": int(positive_index),
        "rows": int(rows.size),
        "encoding": SCORE_ENCODING,
        "scores": base64.b64encode(levels.tobytes()).decode("ascii"),
    }


def unpack_scores(record: Mapping[str, Any]) -> Any:
    """The float scores (shape (rows,), multiples of 1/65535) that ``score_record`` packed; ValueError when damaged."""
    import numpy as np

    from reportgen.paired_bootstrap import SCORE_LEVELS

    if record.get("encoding") != SCORE_ENCODING:
        raise ValueError(f"unknown score encoding {record.get('encoding')!r}")
    raw = base64.b64decode(str(record["scores"]).encode("ascii"), validate=True)
    if len(raw) != 2 * int(record["rows"]):
        raise ValueError(f"{len(raw)} bytes cannot hold {record['rows']} scores")
    return np.frombuffer(raw, dtype="<u2").astype(np.float64) / SCORE_LEVELS
