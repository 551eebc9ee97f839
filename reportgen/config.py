"""The YAML config (schema v1): loading, overrides, validation with helpful errors."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reportgen.errors import ConfigError
from reportgen.vocabulary import TASKS
from reportgen.render import FORMATS as ALL_FORMATS  # the renderers' registry (loads no matplotlib)

TaskType = Literal["binary", "multiclass", "regression"]
MAX_SEED = 2**64 - 1
"""torch.manual_seed accepts 0..2**64-1; NumPy gets ``seed % 2**32``."""
MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this (1 MiB) is refused before it is parsed."""
MAX_YAML_NODES = 100_000
"""Most YAML nodes a config may hold once its aliases are expanded (an alias bomb stops here)."""


class _Strict(BaseModel):
    """Base for config sections: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SplitSpec(_Strict):
    """How reportgen splits a single data file into train, val and test."""

    val: float = Field(0.15, ge=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)
    stratify: bool = True

    @model_validator(mode="after")
    def _fractions_leave_train(self) -> "SplitSpec":
        if self.val + self.test >= 1.0:
            raise ValueError("data.split: val + test must be below 1 so that train is not empty")
        return self


class CsvOptions(_Strict):
    """How a CSV file is written: separator, decimal mark, thousands separator, text encoding (pandas.read_csv)."""

    sep: str = Field(",", min_length=1)
    decimal: str = Field(".", min_length=1, max_length=1)
    thousands: str | None = Field(None, min_length=1, max_length=1)
    encoding: str = "utf-8"
    na_values: list[str] = Field(default_factory=list)
    """Extra spellings of an empty cell (e.g. "?", "unknown"); data.missing then decides what happens to them."""

    @model_validator(mode="after")
    def _marks_differ(self) -> "CsvOptions":
        marks = {"sep": self.sep, "decimal": self.decimal, "thousands": self.thousands}
        for one, two in (("sep", "decimal"), ("sep", "thousands"), ("decimal", "thousands")):
            if marks[one] is not None and marks[one] == marks[two]:
                raise ValueError(f"data.csv.{one} and data.csv.{two} are both {marks[one]!r}: a number could be read "
                                 f"two ways; set data.csv.decimal too for a European export (sep ';', decimal ',', thousands '.')")
        return self


class _DataCommon(_Strict):
    """Keys every data kind accepts."""

    classes: list[str] | None = None
    positive_class: str | None = None
    batch_size: int = Field(512, ge=1)

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("positive_class", mode="before")
    @classmethod
    def _positive_as_string(cls, value: Any) -> Any:
        return None if value is None else str(value)


class TableData(_DataCommon):
    """``kind: csv`` or ``parquet``: a table split by reportgen (``path``) or given as split files."""

    kind: Literal["csv", "parquet"]
    path: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    split: SplitSpec | None = None
    target: str | None = None
    features: list[str] | None = None
    ignore: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    standardize: bool = True
    missing: Literal["error", "drop", "mean"] = "error"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    reference: str | None = None
    """A table (same kind and columns as the data) that feature_drift compares test with instead of train."""

    @model_validator(mode="after")
    def _sources_are_consistent(self) -> "TableData":
        if self.kind == "parquet" and "csv" in self.model_fields_set:
            raise ValueError("data.csv applies to kind: csv only (Parquet files carry their own types)")
        per_split = self.train is not None or self.test is not None or self.val is not None
        if self.path and per_split:
            raise ValueError("data: give either data.path (split by reportgen) or data.train/data.test, not both")
        if not self.path and not per_split:
            raise ValueError("data: give data.path, or data.train and data.test")
        if per_split and (self.train is None or self.test is None):
            raise ValueError("data: data.train and data.test are both required when the splits come as files")
        if not self.target:
            raise ValueError(f"data.target (the label column) is required when data.kind is {self.kind}")
        return self


class NpzData(_DataCommon):
    """``kind: npz``: one .npz file with ``X_<split>`` and ``y_<split>`` arrays."""

    kind: Literal["npz"]
    path: str = Field(min_length=1)


class PythonData(_DataCommon):
    """``kind: python``: a factory ``file.py:name`` or ``package.module:name`` returning per-split datasets."""

    kind: Literal["python"]
    factory: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    input_key: str | None = None
    """For datasets whose items are mappings: the key holding the model input (default: tried in order)."""
    label_key: str | None = None
    """For datasets whose items are mappings: the key holding the label or target."""


DataConfig = Annotated[Union[TableData, NpzData, PythonData], Field(discriminator="kind")]
"""The data section: one model per ``data.kind``; a key of another kind is an unknown key."""


class HeadSpec(_Strict):
    """Replace a final nn.Linear of the model, e.g. when fine-tuning a body."""

    attribute: str
    out_features: int = Field(ge=1)


class _ModelCommon(_Strict):
    """Keys every model kind accepts: optional weights, a head to replace, the decision threshold."""

    checkpoint: str | None = None
    head: HeadSpec | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)


class LinearModel(_ModelCommon):
    """``kind: linear``: one nn.Linear over the flattened input."""

    kind: Literal["linear"]


class MlpModel(_ModelCommon):
    """``kind: mlp``: Linear-ReLU(-Dropout) layers of the ``hidden`` widths, then a Linear head."""

    kind: Literal["mlp"]
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class PythonModel(_ModelCommon):
    """``kind: python``: ``target`` names an nn.Module class or factory, called with ``kwargs``."""

    kind: Literal["python"]
    target: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class TorchScriptModel(_ModelCommon):
    """``kind: torchscript``: a TorchScript file at ``path``."""

    kind: Literal["torchscript"]
    path: str = Field(min_length=1)


ModelConfig = Annotated[
    Union[LinearModel, MlpModel, PythonModel, TorchScriptModel], Field(discriminator="kind")
]
"""The model section: one model per ``model.kind``; a key of another kind is an unknown key."""


class EarlyStopping(_Strict):
    """Stop training when the monitored quantity stops improving."""

    patience: int = Field(5, ge=1)
    monitor: Literal["val_loss", "train_loss"] = "val_loss"


class TrainingConfig(_Strict):
    """The training section; when absent, the model is only evaluated."""

    epochs: int = Field(10, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    loss: Literal["auto", "cross_entropy", "bce", "mse", "l1"] = "auto"
    class_weights: Literal["none", "balanced"] = "none"
    early_stopping: EarlyStopping | None = None
    save_checkpoint: bool = True

    @field_validator("class_weights", mode="before")
    @classmethod
    def _none_spelled_as_null(cls, value: Any) -> Any:
        return "none" if value is None else value


class ReportConfig(_Strict):
    """The report section: which formats, and optional custom templates."""

    formats: list[str] = Field(default_factory=lambda: list(ALL_FORMATS))
    template_dir: str | None = None

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one format ({', '.join(ALL_FORMATS)}): a run must leave a report")
        for name in value:
            if name not in ALL_FORMATS:
                raise ValueError(f"unknown format {name!r}{suggest(name, list(ALL_FORMATS))}; choose from {', '.join(ALL_FORMATS)}")
        # The canonical order, each once: config_sha256 describes what ran, not the order it was typed in.
        return [name for name in ALL_FORMATS if name in value]


class GateConfig(_Strict):
    """The gate section: ``strict: true`` fails the gate on any relaxation of the default checks."""

    strict: bool = False


class Config(_Strict):
    """A whole reportgen config (schema v1)."""

    name: str = Field(min_length=1, max_length=200)
    task: TaskType
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seeds Python, NumPy and torch: a whole number from 0 to 2**64 - 1 (torch's range)."""
    device: str = "auto"
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig | None = None
    plugins: list[str] = Field(default_factory=list)
    """Checks to add by import path: ``package.module:CheckClass``, ``package.module`` (every check
    it defines) or ``file.py:CheckClass`` relative to the YAML (docs/plugins.md)."""
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    compare_to: str | None = None
    """An earlier run's results.json (e.g. the last release) for the release_comparison check."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_is_a_whole_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ValueError(f"seed must be a whole number from 0 to 2**64 - 1, not {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda", "mps") or (
            value.startswith("cuda:") and value[5:].isdigit()
        ):
            return value
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {value!r}")

    @field_validator("checks", mode="before")
    @classmethod
    def _checks_are_mappings(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            for check_id, settings in value.items():
                if settings is not None and not isinstance(settings, dict):
                    raise ValueError(f"checks.{check_id} must be a mapping of settings")
            return {k: (v or {}) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _task_fits_data(self) -> "Config":
        if self.task != "binary" and self.data.positive_class is not None:
            raise ValueError("data.positive_class applies to binary tasks only")
        if self.task != "binary" and "threshold" in self.model.model_fields_set:
            # Only a binary model's positive-class score meets a threshold; elsewhere the key would do nothing.
            raise ValueError("model.threshold applies to binary tasks only (multiclass predicts the most probable class)")
        if self.task == "binary" and self.data.classes is not None and len(self.data.classes) != 2:
            raise ValueError(f"data.classes must name exactly 2 classes for a binary task, not {len(self.data.classes)}")
        if self.data.classes and self.data.positive_class and self.data.positive_class not in self.data.classes:
            raise ValueError(f"data.positive_class {self.data.positive_class!r} is not one of data.classes {self.data.classes}")
        return self


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    config: Config
    path: Path
    base_dir: Path
    raw: dict[str, Any]
    sha256: str

    def with_flags(self, flags: Mapping[str, Any]) -> "LoadedConfig":
        """This config with command-line style flags written in (see :func:`apply_flags`), re-validated and re-hashed."""
        if all(value is None for value in flags.values()):
            return self
        raw = apply_flags(self.raw, flags)
        config = validate(raw, self.resolve)
        raw = _as_validated(raw, config)
        return LoadedConfig(config=config, path=self.path, base_dir=self.base_dir, raw=raw, sha256=_config_sha256(raw))

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the config relative to the YAML file's folder."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(Exception):
    """A YAML document breaks one of the loader's bounds (duplicate key, too many nodes, too deep)."""


_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_CORE_SCHEMA = (  # YAML 1.2's core schema (yaml.org/spec/1.2.2 §10.3.2), in resolution order
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+.0123456789"),
)


def _core_schema_resolvers(base: Any) -> dict[Any, list[tuple[str, Any]]]:
    """PyYAML's implicit resolvers with YAML 1.1's booleans, numbers and sexagesimals replaced by YAML 1.2's.

    YAML 1.1 (PyYAML's default) reads ``yes``/``no``/``on``/``off`` as booleans, ``010`` as 8 and
    ``1:20`` as 80, and leaves ``1e-3`` a string: a class named "no" or a code "010" would silently
    become something else. Under the core schema they stay as written.
    """
    resolvers: dict[Any, list[tuple[str, Any]]] = {
        first: [(tag, regexp) for tag, regexp in entries if tag not in (_BOOL, _INT, _FLOAT)]
        for first, entries in base.yaml_implicit_resolvers.items()
    }
    for tag, regexp, firsts in _CORE_SCHEMA:
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, regexp))
    return resolvers


class StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (the C one when built), with duplicate keys refused and aliases bounded.

    Only plain YAML types are built (no tags that run code). A mapping that repeats a key is an
    error naming both lines (YAML 1.2 forbids it; PyYAML would silently keep the last). Before a
    document is built, its size with every alias expanded is counted on the node graph (each
    node once, so counting cannot explode): over ``MAX_YAML_NODES`` it is refused, which stops a
    "billion laughs" document of a few hundred bytes before anything expands it.
    """

    yaml_implicit_resolvers = _core_schema_resolvers(_BaseLoader)

    def construct_yaml_int(self, node: yaml.Node) -> int:
        """An integer as YAML 1.2 writes it: decimal (leading zeros kept decimal), 0o octal or 0x hex."""
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)

    def construct_document(self, node: yaml.Node) -> Any:
        expanded = _expanded_size(node)
        if expanded > MAX_YAML_NODES:
            raise YamlLimitError(
                f"the YAML expands to more than {MAX_YAML_NODES:,} values through its aliases (&/*); write the values out"
            )
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key; PyYAML reports it below
                    continue
                if first is not None:
                    raise YamlLimitError(f"duplicate key {key!r} at lines {first} and {line}")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(_INT, StrictLoader.construct_yaml_int)


def _expanded_size(root: yaml.Node) -> int:
    """Number of nodes of the document with aliases expanded, computed without expanding them."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # collections whose children are still being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done and id(node) in open_nodes:  # an alias to one of its own ancestors
            raise YamlLimitError("an alias (*) refers to a mapping or list that contains it: the value would be infinite")
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = (
            [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        )
        if children_done:
            total = 1
            for child in children:
                total += sizes.get(id(child), 1)
            sizes[id(node)] = min(total, MAX_YAML_NODES + 1)
            open_nodes.discard(id(node))
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise YamlLimitError("an alias (*) refers to a mapping or list that contains it: the value would be infinite")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def parse_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`; raise yaml.YAMLError or YamlLimitError."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=VALUE`` into its dotted path and its YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set training.epochs=3")
    key, _, value_text = text.partition("=")
    keys = [part for part in key.strip().split(".") if part]
    if not keys:
        raise ConfigError(f"--set {text!r}: the key is empty")
    try:
        value = parse_yaml(value_text) if value_text.strip() else None
    except YamlLimitError as exc:
        raise ConfigError(f"--set {text!r}: {exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc.__class__.__name__})") from None
    return keys, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` override applied."""
    result = copy.deepcopy(raw)
    for text in overrides:
        keys, value = _parse_override(text)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                dotted = ".".join(keys[: depth + 1])
                raise ConfigError(f"--set {text!r}: {dotted} is not a mapping")
            node = child
        node[keys[-1]] = value
    return result


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation such as ``X | None`` or ``Annotated[A | B, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_union_members(arg))
    return found


def _kind_of(model: type[BaseModel]) -> tuple[str, ...]:
    """The ``kind`` tags a member of a discriminated union answers to."""
    field = model.model_fields.get("kind")
    return tuple(getattr(field.annotation, "__args__", ())) if field is not None else ()


def _walk(location: tuple[Any, ...]) -> tuple[list[str], list[type[BaseModel]]]:
    """Follow a pydantic error location through the schema.

    Returns the location as the user wrote it (the union tags pydantic inserts, such as
    ``data.csv.factory``, removed) and the models that could hold its last key.
    """
    clean: list[str] = []
    candidates: list[type[BaseModel]] = [Config]
    parts = list(location)
    index = 0
    while index < len(parts):
        part = parts[index]
        clean.append(str(part))
        if index == len(parts) - 1:
            break
        field = next((m.model_fields[part] for m in candidates if isinstance(part, str) and part in m.model_fields), None)
        members = _union_members(field.annotation) if field is not None else []
        if len(members) > 1 and index + 1 < len(parts):
            tag = parts[index + 1]
            chosen = [m for m in members if tag in _kind_of(m)]
            if chosen:
                members = chosen
                index += 1  # skip the tag pydantic adds to the location
        candidates = members
        index += 1
    return clean, candidates


def _known_keys(location: tuple[Any, ...]) -> list[str]:
    """Return the valid keys of the config section holding the last key of ``location``."""
    _, models = _walk(location)
    if not models or len(models) > 1:
        return []
    return list(models[0].model_fields)


def _other_kinds_with(location: tuple[Any, ...]) -> list[str]:
    """For an unknown key under data or model: the kinds of that section that do accept it."""
    clean, _ = _walk(location)
    if len(clean) != 2 or clean[0] not in ("data", "model"):
        return []
    members = _union_members(Config.model_fields[clean[0]].annotation)
    return [tag for m in members if clean[1] in m.model_fields for tag in _kind_of(m)]


def suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    """Return ' (did you mean X?)' for the nearest candidate, or ''.

    ``prefix`` is the dotted path of the section ``name`` is in (``"training."``): a key is suggested
    whole (``'training.epochs'``), as it is written in ``--set`` and named in the message.
    """
    nearest = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if not nearest:  # long spellings of a short key ('learning_rate' for 'lr') are too far for difflib
        nearest = [c for c in candidates if ALIASES.get(name.lower()) == c]
    return f" (did you mean {prefix + nearest[0]!r}?)" if nearest else ""


ALIASES = {"learning_rate": "lr", "learningrate": "lr", "n_epochs": "epochs", "num_epochs": "epochs", "max_epochs": "epochs"}
"""Common names of keys that difflib cannot match to reportgen's shorter ones."""


def _describe(error: Mapping[str, Any]) -> str:
    """Turn one pydantic error into one readable sentence."""
    location = tuple(error.get("loc", ()))
    clean, _ = _walk(location) if location else ([], [])
    dotted = ".".join(clean) or "config"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        key = str(location[-1])
        section_path = "".join(f"{part}." for part in clean[:-1])
        kinds = _other_kinds_with(location)
        if kinds:
            section, current = clean[0], location[1]
            return (f"unknown key {dotted!r} for {section}.kind {current}{suggest(key, _known_keys(location), section_path)}; "
                    f"it applies to {section}.kind {' or '.join(kinds)}")
        return f"unknown key {dotted!r}{suggest(key, _known_keys(location), section_path)}"
    if kind == "missing":
        return f"missing required key {dotted!r}"
    if kind == "union_tag_not_found":
        return f"missing required key '{dotted}.kind'"
    if kind == "union_tag_invalid":
        context = error.get("ctx") or {}
        tags = [t.strip(" '") for t in str(context.get("expected_tags", "")).split(",") if t.strip()]
        tag = str(context.get("tag", ""))
        return f"{dotted}.kind must be one of {', '.join(tags)}, not {tag!r}{suggest(tag, tags)}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "value_error" and (not location or message.startswith(str(location[0]))):
        return message  # our own validators already name the key
    return f"{dotted}: {message}"


def validate(raw: Any, resolve: Callable[[str], Path] | None = None) -> Config:
    """Validate a parsed YAML document against schema v1.

    Loads the ``plugins`` it names (``file.py`` references resolve through ``resolve``) so that
    their ``checks.<id>`` settings are validated like a built-in check's.
    """
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping with keys such as name, task, data, model")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        extra = "" if len(errors) == 1 else f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(_describe(errors[0]) + extra) from None
    from reportgen.checks import registry

    registry.ids()  # loads installed plug-ins: a broken one is exit 2 now, not after training
    for reference in config.plugins:
        registry.load_reference(reference, resolve)
    _validate_checks(config)
    return config


def _validate_checks(config: Config) -> None:
    """Check ids and per-check settings against the check registry."""
    from reportgen.checks import registry

    for check_id, settings in config.checks.items():
        check = registry.get(check_id)
        if check is None:
            hint = suggest(check_id, registry.ids(), "checks.") or " (a plug-in check needs its package installed or a 'plugins:' entry)"
            raise ConfigError(f"unknown check 'checks.{check_id}'{hint}")
        allowed = check.spec.setting_names()
        for key in settings:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key 'checks.{check_id}.{key}'{suggest(key, sorted(allowed), f'checks.{check_id}.')}; "
                    f"valid keys: {', '.join(sorted(allowed))}"
                )
        try:
            check.spec.settings_from(settings)
        except ValueError as exc:
            raise ConfigError(f"checks.{check_id}: {exc}") from None
        if config.task not in check.spec.tasks and set(settings) - {"enabled", "severity"}:
            # The check skips on this task, so its threshold or parameters would do nothing but be listed on page 1.
            tasks = " and ".join(t for t in TASKS if t in check.spec.tasks)
            raise ConfigError(f"checks.{check_id} applies to {tasks} tasks only")


def _read_config_text(config_path: Path) -> str:
    """The config file's text: a regular file of at most ``MAX_CONFIG_BYTES``, in UTF-8."""
    try:
        info = config_path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config_path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc.__class__.__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"cannot read config {config_path}: not a regular file")
    try:
        with config_path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc.__class__.__name__}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{config_path}: the config is larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config {config_path}: it is not UTF-8 text") from None


def apply_flags(raw: dict[str, Any], flags: Mapping[str, Any] | None) -> dict[str, Any]:
    """Write command-line flags into the config, by dotted key (``report.formats``, ``compare_to``).

    Flags come last: defaults < YAML < ``--set`` < flags. A flag given as None is not set.
    """
    result = copy.deepcopy(raw)
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        keys = dotted.split(".")
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return result


def load_config(
    path: str | Path, overrides: list[str] | None = None, flags: Mapping[str, Any] | None = None
) -> LoadedConfig:
    """Read, override and validate the YAML config at ``path``.

    Precedence, lowest first: the schema's defaults, the YAML, each ``--set KEY=VALUE`` in order,
    then command-line ``flags`` (e.g. ``{"report.formats": [...], "compare_to": "/abs/results.json"}``).
    ``raw`` and ``sha256`` describe the merged config, i.e. what runs.
    Raises ConfigError (exit 2) on any problem, including a file over 1 MiB, duplicate keys and
    YAML aliases that expand past ``MAX_YAML_NODES`` values.
    """
    config_path = Path(path)
    text = _read_config_text(config_path)
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{config_path}: malformed YAML{where}: {problem}") from None
    except YamlLimitError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{config_path}: the YAML is nested too deeply") from None
    if raw is None:
        raise ConfigError(f"{config_path}: the config is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the config must be a YAML mapping, not a {type(raw).__name__}")
    raw = apply_flags(apply_overrides(raw, overrides or []), flags)
    base_dir = config_path.resolve().parent
    config = validate(raw, lambda relative: base_dir / Path(relative).expanduser())
    raw = _as_validated(raw, config)
    return LoadedConfig(
        config=config,
        path=config_path.resolve(),
        base_dir=config_path.resolve().parent,
        raw=raw,
        sha256=_config_sha256(raw),
    )


def _as_validated(raw: dict[str, Any], config: Config) -> dict[str, Any]:
    """``raw`` with the values the validators put in canonical form (report.formats in format order), so
    ``config_sha256`` and the recorded config describe what runs, not how it was typed."""
    report = raw.get("report")
    if isinstance(report, dict) and "formats" in report:
        return {**raw, "report": {**report, "formats": list(config.report.formats)}}
    return raw


def _config_sha256(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the merged config as canonical JSON (sorted keys): results.json ``config_sha256``."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode("utf-8")).hexdigest()
