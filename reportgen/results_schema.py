"""The results.json schema: pydantic models of the whole document, and its one way in and one way out.

Every results.json passes through this module: ``to_document`` turns a run's values into the JSON
document (the NaN policy lives there and only there: a non-finite number becomes ``null``, always),
``dumps`` writes it, and ``read_document`` is the only reader of a results.json on disk (bounded,
regular files only, strict JSON, validated against the models below). ``reportgen schema`` prints
the JSON Schema generated from these models (docs/results.schema.json is the same text).

The models validate; they do not rebuild. A validated document stays the plain ``dict`` it was,
so renderers keep dict access and every key keeps the order the run wrote it in (classes in their
configured order, splits as train, val, test): re-rendering a saved results.json gives the same
bytes as the run. Free-form parts (``checks[].evidence``, ``curves``, ``config``, the data
fingerprint) accept any JSON; every other section refuses keys it does not know.

Adding a field or section: add it to the model here (optional, so older files stay valid), then
write it where the run builds the report. Adding a metric needs nothing here: a split's metrics
accept any number-valued key.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Union

from pydantic import (
    AliasChoices, BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
    model_validator,
)

from reportgen.errors import ResultsError
from reportgen.vocabulary import Status

# Version history of the results.json format (``schema_version``):
#
# 1: reportgen 0.1. Sections: name, task, status, environment, data, model, training (history,
#    gradients), metrics per split, checks, curves, config, timing. Non-finite numbers are null.
#    0.2 keeps version 1: its sections are validated by the models below, which accept every
#    file 0.1 wrote; new optional fields may be added without a new version.
#
# A change that removes or retypes a field, or changes a field's meaning, needs a new version.
SCHEMA_VERSION = 1

MAX_BYTES = 64 * 1024 * 1024
"""Largest results.json read (64 MiB): a run's is well under 2 MB (curves are thinned)."""
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; a run writes at most about 10 levels."""
MAX_EVIDENCE_DEPTH = MAX_DEPTH - 8
"""Deepest nesting one check's evidence may have (the evidence object is level 1): results.json puts it
4 levels down (document, checks, check, evidence), so this leaves room and every written file loads back."""
MAX_EVIDENCE_BYTES = MAX_BYTES // 64
"""Largest JSON text of one check's result (1 MiB): a built-in check's is a few kB; 64 of the largest still
fit in MAX_BYTES."""
MAX_TEXT_CHARS = 10_000
"""Longest free text that reaches the page: a check's id, title, family and message, the report's name, and
every string (key or value) in a check's evidence. A built-in check's message is a few hundred characters;
the bound keeps the PDF layout of one string short. A run turns a longer result into the check's error;
reading a results.json with a longer one is refused."""
MAX_CURVE_POINTS = 10_000
"""Most points of one plotted series in ``curves`` (a run writes at most 2,000: ROC/PR are thinned to 200)."""

Number = Union[StrictInt, StrictFloat]
"""A JSON number: ints stay ints (counts), floats stay floats; booleans are not numbers."""
OptionalNumber = Optional[Number]
TaskName = Literal["binary", "multiclass", "regression"]  # reportgen.vocabulary.TASKS; a test ties them
StatusName = Literal["error", "fail", "warn", "pass", "skip"]  # reportgen.vocabulary.STATUSES
SeverityName = Literal["error", "warning", "info"]  # reportgen.vocabulary.SEVERITIES
VerdictName = Literal["pass", "fail"]  # reportgen.vocabulary.Verdict


class _Section(BaseModel):
    """A section with a fixed set of keys: an unknown key is an error (a typo or a damaged file)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _OpenNumbers(BaseModel):
    """A section whose further keys are numbers (metrics, per-epoch values) or null."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, OptionalNumber]


class Environment(_Section):
    """Where and how the run happened (from reportgen.runinfo and the config file)."""

    reportgen_version: Optional[StrictStr] = None
    torch_version: Optional[StrictStr] = None
    python: Optional[StrictStr] = None
    device: Optional[StrictStr] = None
    seed: Optional[StrictInt] = None
    world_size: Optional[StrictInt] = None
    """Worker processes the run was spread over (1 unless --nproc-per-node or torchrun)."""
    config_sha256: Optional[StrictStr] = None
    config_file: Optional[StrictStr] = None
    created_at: Optional[StrictStr] = None
    """UTC time, ISO 8601, whole seconds."""


class SplitSummary(_Section):
    """One split's size, class counts (classification) and where its rows came from."""

    n: StrictInt
    class_counts: dict[str, StrictInt] = {}
    source: Optional[StrictStr] = None


class DataSummary(_Section):
    """The data as the model saw it."""

    features: Optional[list[StrictStr]] = None
    input_shape: Optional[list[StrictInt]] = None
    classes: list[StrictStr] = []
    positive_class: Optional[StrictStr] = None
    splits: dict[str, SplitSummary] = {}
    fingerprint: dict[str, JsonValue] = {}
    """Free-form: hashes of the inputs and the fitted preprocessing."""


class ModelSummary(_Section):
    """The evaluated model."""

    kind: Optional[StrictStr] = None
    class_name: Optional[StrictStr] = None
    parameters: Optional[StrictInt] = None
    trainable_parameters: Optional[StrictInt] = None
    outputs: Optional[StrictInt] = None
    output_kind: Optional[StrictStr] = None
    threshold: OptionalNumber = None
    checkpoint: Optional[StrictStr] = None
    weights_sha256: Optional[StrictStr] = None
    """sha256 of the evaluated weights (the state_dict's tensors in key order), however they were saved."""
    checkpoint_sha256: Optional[StrictStr] = None
    module: Optional[StrictStr] = None
    architecture: Optional[StrictStr] = None


class EpochRecord(_OpenNumbers):
    """One epoch of the training history: ``epoch``, then train_loss, val_loss, train_<metric>, ..."""

    epoch: StrictInt


class GradientRecord(_Section):
    """Gradient facts of one parameter after the first backward pass."""

    name: StrictStr
    shape: list[StrictInt]
    received: StrictBool
    norm: OptionalNumber = None
    finite: StrictBool


class NonFiniteLoss(_Section):
    """Where the training loss first became NaN or infinite."""

    epoch: StrictInt
    step: StrictInt
    global_step: Optional[StrictInt] = None


class TrainingSummary(_Section):
    """What happened while training; the whole section is null when the model was only evaluated."""

    epochs_run: StrictInt
    best_epoch: Optional[StrictInt] = None
    stopped_early: StrictBool = False
    loss: Optional[StrictStr] = Field(None, validation_alias=AliasChoices("loss", "loss_name"))
    """The loss function's name (bce, cross_entropy, mse, l1); ``TrainingResult.loss_name``."""
    init_loss: OptionalNumber = None
    expected_init_loss: OptionalNumber = None
    first_nonfinite_loss: Optional[NonFiniteLoss] = None
    history: list[EpochRecord] = []
    evaluated_weights: Optional[StrictStr] = None
    gradients: list[GradientRecord] = []
    data_parallel: Optional[StrictStr] = None
    """How training was spread over several workers (DistributedDataParallel, the number of workers, the
    backend), in words; null when one process trained. ``TrainingResult.data_parallel``."""


class PerClassMetrics(_OpenNumbers):
    """One class's precision, recall, f1, support and Wilson interval of its recall."""

    support: Optional[StrictInt] = None
    recall_ci95: Optional[list[Number]] = None


class SplitMetrics(_OpenNumbers):
    """One split's metrics: every key of reportgen.metric_registry is a number or null."""

    n: StrictInt
    classes: Optional[list[StrictStr]] = None
    confusion_matrix: Optional[list[list[StrictInt]]] = None
    """Rows actual, columns predicted, in the order of ``classes``."""
    per_class: Optional[dict[str, PerClassMetrics]] = None
    roc_auc_ci95: Optional[list[OptionalNumber]] = None
    """DeLong 95% interval of the ROC AUC (binary test split)."""
    positive_class: Optional[StrictStr] = None
    """Binary: the class that precision, recall and f1 are about."""


class CheckRecord(_Section):
    """One check's result: the unit of the gate table."""

    id: StrictStr
    title: StrictStr
    family: StrictStr
    status: StatusName
    severity: SeverityName
    value: OptionalNumber = None
    threshold: OptionalNumber = None
    higher_is_better: Optional[StrictBool] = None
    message: StrictStr = ""
    evidence: dict[str, JsonValue] = {}
    """Free-form: whatever the check found (rows, per-class values, ...)."""
    skip_kind: Optional[Literal["not_applicable", "not_measured"]] = None
    """Status skip only: the check does not apply to this run, or it applies but the data did not allow a
    measurement (reportgen.checks.base.SkipKind). Absent in files of earlier versions and for other statuses."""

    @model_validator(mode="after")
    def _skip_kind_only_on_skip(self) -> "CheckRecord":
        if self.skip_kind is not None and self.status != "skip":
            raise ValueError(f"skip_kind is {self.skip_kind!r} but the status is {self.status!r}, not 'skip'")
        return self


class GateOverride(_Section):
    """One difference from the default gate (reportgen.gate.Override)."""

    check: StrictStr
    setting: StrictStr
    default: JsonValue = None
    value: JsonValue = None
    effect: Literal["disabled", "relaxed", "tightened", "severity_lowered", "severity_raised", "changed"]


SHA256_PATTERN = r"^[0-9a-f]{64}$"
"""A SHA-256 digest as reportgen writes it: 64 lower-case hex digits."""
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64 (RFC 4648 section 4) with padding and nothing else: no whitespace, no URL-safe letters."""
MAX_RECORD_ROWS = 1 << 40
"""Bound on the row counts of the per-sample records (far above any test split; keeps the arithmetic exact)."""


def base64_bytes(text: str) -> int:
    """Bytes that a padded base64 text (matching BASE64_PATTERN) decodes to, without decoding it."""
    return len(text) // 4 * 3 - text[-2:].count("=") if text else 0


class TestOutcomes(BaseModel):
    """Packed per-sample test correctness for a later run's paired comparison (reportgen.gate.correctness_record).

    The bit strings must hold exactly ``n`` samples (ceil(n / 8) bytes), so a damaged or hand-edited
    record is refused when the file is read, not when a check decodes it.
    """

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    n: StrictInt = Field(ge=0, le=MAX_RECORD_ROWS)
    """Test rows of the run."""
    encoding: Optional[StrictStr] = None
    labels_sha256: StrictStr = Field(pattern=SHA256_PATTERN)
    """SHA-256 of the test labels (int64, little-endian) in row order."""
    correct: StrictStr = Field(pattern=BASE64_PATTERN)
    """base64 of numpy.packbits of the per-sample correctness, most significant bit first."""
    positive: Optional[StrictStr] = Field(None, pattern=BASE64_PATTERN)
    """Binary only: the same packing of 'the sample is of the positive class'."""

    @model_validator(mode="after")
    def _bits_hold_n(self) -> "TestOutcomes":
        need = (self.n + 7) // 8
        for key in ("correct", "positive"):
            text = getattr(self, key)
            if text is not None and base64_bytes(text) != need:
                raise ValueError(f"{key} holds {base64_bytes(text)} bytes, but {self.n} samples need {need}")
        return self


class TestScores(_Section):
    """Quantised positive-class test scores for a later run's paired bootstrap of ROC AUC and PR AUC
    (reportgen.gate.score_record; binary tasks only)."""

    n: StrictInt = Field(ge=0, le=MAX_RECORD_ROWS)
    """Test rows of the run."""
    labels_sha256: StrictStr = Field(pattern=SHA256_PATTERN)
    """SHA-256 of the test labels in row order (as in test_outcomes): ties the scores' row order to the test data."""
    positive_index: StrictInt = Field(ge=0, le=1)
    """Index of the positive class among the two classes."""
    rows: StrictInt = Field(ge=0, le=MAX_RECORD_ROWS)
    """Rows stored: all n up to 20,000, else a random subset seeded by labels_sha256 (reportgen.paired_bootstrap.stored_rows)."""
    encoding: StrictStr
    scores: StrictStr = Field(pattern=BASE64_PATTERN)
    """base64 of the little-endian uint16 levels, ``rows`` of them."""

    @model_validator(mode="after")
    def _scores_hold_rows(self) -> "TestScores":
        if self.rows > self.n:
            raise ValueError(f"rows is {self.rows}, more than the {self.n} test rows")
        if base64_bytes(self.scores) != 2 * self.rows:
            raise ValueError(f"scores holds {base64_bytes(self.scores)} bytes, but {self.rows} scores need {2 * self.rows}")
        return self


class GateBlock(_Section):
    """The gate's verdict and what it turned on (reportgen.gate.gate_block)."""

    verdict: VerdictName
    blocking: list[StrictStr] = []
    overrides: list[GateOverride] = []
    strict: StrictBool = False
    not_measured: list[StrictStr] = []
    """Ids of the blocking (severity error) checks that skipped because the data did not allow a measurement
    (reportgen.gate.not_measured_blocking); absent in files of earlier versions."""
    test_outcomes: Optional[TestOutcomes] = None
    """Packed per-sample test correctness for a later run's paired comparison (reportgen.gate.correctness_record)."""
    test_scores: Optional[TestScores] = None
    """Positive-class test scores for a later run's paired bootstrap of ROC AUC and PR AUC (absent in files of earlier versions)."""


class ResultsDocument(_Section):
    """A whole results.json."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              title="reportgen results.json", json_schema_extra={
                                  "$schema": "https://json-schema.org/draft/2020-12/schema"})

    schema_version: Literal[1]
    name: StrictStr
    task: TaskName
    status: VerdictName
    """``fail`` when any check with severity error failed or crashed; must agree with ``checks``."""
    environment: Environment = Environment()
    data: DataSummary = DataSummary()
    model: ModelSummary = ModelSummary()
    training: Optional[TrainingSummary] = None
    metrics: dict[str, SplitMetrics] = {}
    checks: list[CheckRecord]
    curves: dict[str, JsonValue] = {}
    """Free-form, bounded plot data per split (ROC, PR, calibration, threshold sweep, scatter)."""
    config: dict[str, JsonValue] = {}
    """Free-form: the config as run."""
    timing: dict[str, OptionalNumber] = {}
    """Seconds per stage."""
    gate: Optional[GateBlock] = None
    """The gate's verdict, the overrides of the default gate and strict mode (absent in files before 0.2)."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json, generated from ``ResultsDocument``."""
    return ResultsDocument.model_json_schema()


def json_schema_text() -> str:
    """The JSON Schema as the text ``reportgen schema`` prints and docs/results.schema.json holds."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def to_jsonable(value: Any) -> Any:
    """The NaN policy and JSON conversion, for every value that goes into a results.json.

    Non-finite floats become None; numpy scalars and arrays become Python numbers and lists;
    tuples become lists; mapping keys become strings; dataclasses become objects in field order;
    anything else that is not JSON becomes its ``str``. Iterative, so depth costs no recursion.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, (int, str)):
            parent[key] = item if type(item) in (bool, int, str) or item is None else _plain_scalar(item)
        elif isinstance(item, float):
            parent[key] = float(item) if math.isfinite(item) else None
        elif isinstance(item, Mapping) or (is_dataclass(item) and not isinstance(item, type)):
            pairs = item.items() if isinstance(item, Mapping) else ((f.name, getattr(item, f.name)) for f in fields(item))
            out: dict[str, Any] = {}
            parent[key] = out
            for k, v in pairs:
                out[str(k)] = None
                stack.append((v, out, str(k)))
        elif isinstance(item, (list, tuple)):
            items: list[Any] = [None] * len(item)
            parent[key] = items
            stack.extend((v, items, i) for i, v in enumerate(item))
        elif hasattr(item, "tolist") and not isinstance(item, (str, bytes)):
            stack.append((item.tolist(), parent, key))
        else:
            parent[key] = str(item)
    return root[0]


def section(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """A run's object (a dataclass such as ModelInfo or TrainingResult) as its results.json section.

    The section's model decides the keys and their order; attributes it does not declare are left
    out. Raises ResultsError when a value does not fit the model.
    """
    data = to_jsonable(value)
    if isinstance(data, dict):
        known = {name for name, f in model.model_fields.items()} | {
            choice for f in model.model_fields.values() if isinstance(f.validation_alias, AliasChoices)
            for choice in f.validation_alias.choices if isinstance(choice, str)}
        data = {k: v for k, v in data.items() if k in known}
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise ResultsError(f"{model.__name__}: {_first_problem(exc)}") from None


def _plain_scalar(item: Any) -> Any:
    """A subclass of int or str (an IntEnum, a str enum) as the plain value it stands for."""
    if isinstance(item, str):
        return str(item.value) if hasattr(item, "value") else str.__str__(item)
    return int(item)


def result_size_problem(result: Mapping[str, Any]) -> str | None:
    """Why one JSON-safe check result could not be read back from results.json, or None when it can.

    ``result`` is the check's record (id, message, evidence, ...); its evidence must nest at most
    MAX_EVIDENCE_DEPTH levels, its id, title, family, message and every evidence string (keys included)
    be at most MAX_TEXT_CHARS long, and the message and evidence take at most MAX_EVIDENCE_BYTES as JSON.
    The same bounds apply when a run writes a result and when results.json is read. A linear,
    non-recursive walk, so a pathologically deep object cannot exhaust the stack.
    """
    long_string: str | None = None  # named after the depth and the fields, as those are checked first
    stack: list[tuple[Any, int]] = [(result.get("evidence"), 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if long_string is None and len(value) > MAX_TEXT_CHARS:
                long_string = value
        elif isinstance(value, (Mapping, list, tuple)):
            if depth > MAX_EVIDENCE_DEPTH:
                return f"its evidence is nested more than {MAX_EVIDENCE_DEPTH} levels deep"
            if isinstance(value, Mapping):
                stack.extend((key, depth) for key in value)  # keys are strings: never nested
                stack.extend((child, depth + 1) for child in value.values())
            else:
                stack.extend((child, depth + 1) for child in value)
    for field in ("id", "title", "family", "message"):
        text = result.get(field)
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            return f"its {field} is {len(text):,} characters long, more than the {MAX_TEXT_CHARS:,} one check may write"
    if long_string is not None:
        return (f"its evidence holds a string of {len(long_string):,} characters, more than the "
                f"{MAX_TEXT_CHARS:,} one check may write")
    size = len(json.dumps({"message": result.get("message", ""), "evidence": result.get("evidence", {})},
                          ensure_ascii=False, allow_nan=False).encode("utf-8"))
    if size > MAX_EVIDENCE_BYTES:
        return (f"its result takes {size // 1024:,} KiB as JSON, more than the {MAX_EVIDENCE_BYTES // 1024:,} KiB "
                "one check may write")
    return None


def validate_document(document: Any) -> dict[str, Any]:
    """Check ``document`` against the schema and return it unchanged.

    Raises ResultsError with one line naming the first problem (its path, e.g. ``checks[3].status``).
    """
    if not isinstance(document, dict):
        raise ResultsError(f"not a reportgen results.json (a JSON {_json_type(document)}, not an object)")
    version = document.get("schema_version")
    if "schema_version" not in document:
        raise ResultsError("not a reportgen results.json (no schema_version)")
    if version != SCHEMA_VERSION or type(version) is not int:
        raise ResultsError(f"schema_version {_clip(repr(version))} is not {SCHEMA_VERSION}, the one this reportgen reads")
    try:
        ResultsDocument.model_validate(document)
    except ValidationError as exc:
        raise ResultsError(_first_problem(exc)) from None
    except RecursionError:
        raise ResultsError(f"nested more than {MAX_DEPTH} levels deep") from None
    problem = bounds_problem(document)
    if problem:
        raise ResultsError(problem)
    problem = contradiction(document)
    if problem:
        raise ResultsError(f"{problem}: the file was edited or damaged")
    return document


def bounds_problem(document: Mapping[str, Any]) -> str | None:
    """The first bound of an untrusted, schema-valid document that is broken, or None (a pure function).

    The report's name and every check result as ``result_size_problem`` bounds them when a run writes
    them; the confusion matrices (square, one row per class, counts in [0, MAX_RECORD_ROWS]); and the plot
    data in ``curves`` (``curves_problem``). Every file a run writes is within these bounds.
    """
    if len(document["name"]) > MAX_TEXT_CHARS:
        return f"name: {len(document['name']):,} characters long, more than {MAX_TEXT_CHARS:,}"
    for i, check in enumerate(document["checks"]):
        problem = result_size_problem(check)
        if problem:
            return f"checks[{i}]: {problem}"
    for split, metrics in document.get("metrics", {}).items():
        matrix = metrics.get("confusion_matrix")
        if matrix is None:
            continue
        where = f"metrics.{_clip(split)}.confusion_matrix"
        classes = metrics.get("classes")
        if any(len(row) != len(matrix) for row in matrix) or (classes is not None and len(classes) != len(matrix)):
            return f"{where}: not square with one row per class"
        for r, row in enumerate(matrix):
            for c, count in enumerate(row):
                if not 0 <= count <= MAX_RECORD_ROWS:
                    return f"{where}[{r}][{c}]: {_clip(repr(count))} is not a count in [0, {MAX_RECORD_ROWS}]"
    return curves_problem(document.get("curves", {}))


_RATE = "a probability in [0, 1]"
_FINITE = "a finite number"
_COUNT = f"a count in [0, {MAX_RECORD_ROWS}]"


def _value_problem(value: Any, kind: str, nullable: bool) -> str | None:
    """Why ``value`` is not of ``kind`` (_RATE, _FINITE, _COUNT), or None."""
    if value is None:
        return None if nullable else "null"
    if kind == _COUNT:
        ok = type(value) is int and 0 <= value <= MAX_RECORD_ROWS
    else:
        ok = type(value) in (int, float) and math.isfinite(value) and (kind != _RATE or 0.0 <= value <= 1.0)
    return None if ok else _clip(repr(value))


def _object_problem(block: Any, where: str, fields_kinds: Mapping[str, tuple[str, bool]]) -> str | None:
    """The first field of the object ``block`` that is not of its (kind, nullable), or None."""
    if not isinstance(block, dict):
        return f"{where}: not an object"
    for key, (kind, nullable) in fields_kinds.items():
        if key in block:
            bad = _value_problem(block[key], kind, nullable)
            if bad:
                return f"{where}.{key}: {bad} is not {kind}"
    return None


def _series_problem(block: Any, where: str, series: Mapping[str, tuple[str, bool]], minimum: int = 0) -> str | None:
    """The first problem of an object of equally long arrays (each of its (kind, nullable)), or None."""
    if not isinstance(block, dict):
        return f"{where}: not an object"
    lengths = {}
    for key, (kind, nullable) in series.items():
        values = block.get(key)
        if not isinstance(values, list):
            return f"{where}.{key}: not an array"
        if not minimum <= len(values) <= MAX_CURVE_POINTS:
            return f"{where}.{key}: {len(values):,} values, not between {minimum} and {MAX_CURVE_POINTS:,}"
        for i, value in enumerate(values):
            bad = _value_problem(value, kind, nullable)
            if bad:
                return f"{where}.{key}[{i}]: {bad} is not {kind}"
        lengths[key] = len(values)
    if len(set(lengths.values())) > 1:
        return f"{where}: arrays of different lengths ({', '.join(f'{k} {n}' for k, n in lengths.items())})"
    return None


def curves_problem(curves: Mapping[str, Any]) -> str | None:
    """The first problem of the plot data of a results.json, or None (a pure function).

    The blocks a run writes (reportgen.metrics.plot_curves, the pipeline's validation sweep) are checked
    where present; each may be null. Rates (fpr, tpr, precision, recall, f1, thresholds, calibration
    values, AUCs) are probabilities in [0, 1]; counts are integers in [0, MAX_RECORD_ROWS]; scatter and
    residual values are finite numbers; the arrays of one block have equal lengths of at most
    MAX_CURVE_POINTS, and ROC and PR curves with an AUC have at least 2 points. Keys reportgen does not write are
    not plotted and are left free-form.
    """
    rate, rate_or_null = (_RATE, False), (_RATE, True)
    for split, blocks in curves.items():
        base = f"curves.{_clip(split)}"
        if not isinstance(blocks, dict):
            return f"{base}: not an object"
        rocs = [(f"{base}.roc", blocks.get("roc"))]
        per_class = blocks.get("roc_per_class")
        if per_class is not None:
            if not isinstance(per_class, dict):
                return f"{base}.roc_per_class: not an object"
            rocs += [(f"{base}.roc_per_class.{_clip(name)}", roc) for name, roc in per_class.items()]
        for where, roc in rocs:
            if roc is not None:
                problem = (_series_problem(roc, where, {"fpr": rate, "tpr": rate}, minimum=_points_needed(roc))
                           or _object_problem(roc, where, {"auc": rate_or_null}))
                if problem:
                    return problem
        checks: list[tuple[str, Callable[[Any, str], str | None]]] = [
            ("pr", lambda b, w: _series_problem(b, w, {"recall": rate, "precision": rate}, minimum=_points_needed(b))
             or _object_problem(b, w, {"auc": rate_or_null, "prevalence": rate_or_null})),
            ("operating_point", lambda b, w: _object_problem(b, w, dict.fromkeys(
                ("threshold", "fpr", "tpr", "precision", "recall"), rate_or_null))),
            ("threshold_sweep", lambda b, w: _series_problem(b, w, {
                "thresholds": rate, "precision": rate_or_null, "recall": rate_or_null, "f1": rate_or_null,
                "predicted_positive": (_COUNT, False)})),
            ("calibration", _calibration_problem),
            ("scatter", lambda b, w: _series_problem(b, w, {"y_true": (_FINITE, True), "y_pred": (_FINITE, True)})),
            ("residuals", _residuals_problem),
        ]
        for key, check in checks:
            block = blocks.get(key)
            if block is not None:
                problem = check(block, f"{base}.{key}")
                if problem:
                    return problem
    return None


def _points_needed(curve: Any) -> int:
    """A ROC or PR curve with an AUC has at least 2 points; one without (a single-class split) may be empty."""
    return 2 if isinstance(curve, dict) and curve.get("auc") is not None else 0


def _calibration_problem(block: Any, where: str) -> str | None:
    problem = _object_problem(block, where, {"ece": (_RATE, True)})
    if problem:
        return problem
    bins = block.get("bins")
    if not isinstance(bins, list) or not 1 <= len(bins) <= MAX_CURVE_POINTS:
        return f"{where}.bins: not an array of 1 to {MAX_CURVE_POINTS:,} bins"
    for i, one in enumerate(bins):
        problem = _object_problem(one, f"{where}.bins[{i}]", {
            "lower": (_RATE, False), "upper": (_RATE, False), "count": (_COUNT, False),
            "mean_predicted": (_RATE, True), "fraction_positive": (_RATE, True)})
        if problem:
            return problem
    return None


def _residuals_problem(block: Any, where: str) -> str | None:
    problem = _series_problem(block, where, {"bin_edges": (_FINITE, False)}) or _series_problem(
        block, where, {"counts": (_COUNT, False)})
    if problem:
        return problem
    edges, counts = len(block["bin_edges"]), len(block["counts"])
    if edges != (counts + 1 if counts else 0):
        return f"{where}: {edges} bin_edges for {counts} counts"
    return None


def contradiction(document: Mapping[str, Any]) -> str | None:
    """The first way a schema-valid document contradicts itself, or None (a pure function).

    A check listed twice; a gate block whose verdict or blocking checks disagree with the checks.
    (The top-level status against the checks is compared where the report is rebuilt.) Whether a
    check's status fits its value is not judged here: several checks decide with more than their
    threshold (a significance test, a second condition), so only the check itself can say.
    """
    seen: set[str] = set()
    blocking = []
    for i, check in enumerate(document["checks"]):
        if check["id"] in seen:
            return f"checks[{i}]: the check {_clip(repr(check['id']))} is listed twice"
        seen.add(check["id"])
        if Status(check["status"]).blocks_gate(check["severity"]):  # the one gate rule
            blocking.append(check["id"])
    gate = document.get("gate")
    if gate is not None:
        verdict = "fail" if blocking else "pass"
        if gate["verdict"] != verdict:
            return f"gate.verdict is {gate['verdict']!r} but its checks give {verdict!r}"
        if sorted(gate.get("blocking") or []) != sorted(blocking):
            return f"gate.blocking lists {sorted(gate.get('blocking') or [])} but the blocking checks are {sorted(blocking)}"
    return None


def _first_problem(exc: ValidationError) -> str:
    """'checks[3].status: Input should be 'error', 'fail', ... (and 2 more problems)'."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _location(first["loc"])
    places = {_location(e["loc"]) for e in errors}
    if first["type"] == "missing":
        text = f"no {where!r}: the file is incomplete" if "." not in where and "[" not in where else f"{where}: missing"
    elif first["type"] == "extra_forbidden":
        text = f"{where}: unknown key"
    else:
        text = f"{where}: {first['msg']}, not {_clip(repr(first.get('input')))}"
    more = len(places) - 1
    return text + (f" (and {more} more problem{'s' if more != 1 else ''})" if more else "")


def _location(loc: tuple[Any, ...]) -> str:
    """('checks', 3, 'status') -> 'checks[3].status'; pydantic's union branch names are dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and (part.startswith(("function-", "lax-", "strict-")) or part in (
                "int", "float", "str", "bool", "list", "dict", "none", "is-instance")):
            continue
        else:
            text += f".{part}" if text else str(part)
    return _clip(text, 120) or "the document"


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 60) -> str:
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dumps(document: Mapping[str, Any]) -> bytes:
    """The bytes of results.json: indented, strict JSON (no NaN), keys in the order given."""
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _refuse_constant(name: str) -> Any:
    raise ResultsError(f"contains {name}, which is not JSON (reportgen writes null for undefined values)")


_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before parsing (a linear scan; no recursion)."""
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ResultsError(f"nested more than {MAX_DEPTH} levels deep")
        elif token in "]}":
            depth -= 1


def read_document(path: Path) -> dict[str, Any]:
    """Read and validate the results.json at ``path``; the only reader of results files.

    Only a regular file of at most MAX_BYTES is opened (a directory, FIFO, device or socket is
    refused before any read; the file is opened non-blocking, so a FIFO swapped in cannot hang).
    Raises ResultsError (exit 2) with one line naming the problem (without the path; callers add it).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ResultsError("results file not found") from None
    except OSError as exc:
        raise ResultsError(f"cannot be read: {exc.strerror or exc.__class__.__name__}") from None
    _require_regular(info)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ResultsError(f"cannot be read: {exc.strerror or exc.__class__.__name__}") from None
    try:
        _require_regular(os.fstat(fd))
        chunks = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ResultsError(f"cannot be read: {exc.strerror or exc.__class__.__name__}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise ResultsError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB, the most a results.json may be")
    return parse_document(b"".join(chunks))


def _require_regular(info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ResultsError("is a directory, not a results.json file")
    if not stat.S_ISREG(info.st_mode):
        raise ResultsError("is not a regular file (a pipe, device or socket); reportgen reads results.json from a file")
    if info.st_size > MAX_BYTES:
        raise ResultsError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB, the most a results.json may be")


def parse_document(data: bytes) -> dict[str, Any]:
    """Parse results.json bytes (UTF-8, strict JSON, bounded depth) and validate them."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ResultsError("is empty")
    _check_depth(text)
    try:
        document = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ResultsError(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # Python's bound on digits of an integer (a number no run writes)
        raise ResultsError(f"holds a number that cannot be read: {str(exc)[:80]}") from None
    return validate_document(document)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: a repeated key (the last one silently winning) is refused."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ResultsError(f"repeats the key {_clip(repr(key))} in one object: the file was edited or damaged")
        document[key] = value
    return document
