"""The YAML config (schema v1): loading, overrides, validation with helpful errors."""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reportgen.errors import ConfigError

TaskType = Literal["binary", "multiclass", "regression"]
ALL_FORMATS = ("html", "pdf", "json", "junit", "md")


class _Strict(BaseModel):
    """Base for config sections: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class DataConfig(_Strict):
    """The data section: where the rows come from and how they are prepared."""

    kind: Literal["csv", "parquet", "npz", "python"]
    path: str | None = None
    train: str | None = None
    val: str | None = None
    test: str | None = None
    split: SplitSpec | None = None
    target: str | None = None
    features: list[str] | None = None
    ignore: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    classes: list[str] | None = None
    positive_class: str | None = None
    standardize: bool = True
    missing: Literal["error", "drop", "mean"] = "error"
    batch_size: int = Field(512, ge=1)
    factory: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("positive_class", mode="before")
    @classmethod
    def _positive_as_string(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _sources_are_consistent(self) -> "DataConfig":
        per_split = self.train is not None or self.test is not None or self.val is not None
        if self.kind == "python":
            if not self.factory:
                raise ValueError("data.factory is required when data.kind is python")
            return self
        if self.kind == "npz":
            if not self.path:
                raise ValueError("data.path is required when data.kind is npz")
            return self
        if self.path and per_split:
            raise ValueError("data: give either data.path (split by reportgen) or data.train/data.test, not both")
        if not self.path and not per_split:
            raise ValueError("data: give data.path, or data.train and data.test")
        if per_split and (self.train is None or self.test is None):
            raise ValueError("data: data.train and data.test are both required when the splits come as files")
        if not self.target:
            raise ValueError(f"data.target (the label column) is required when data.kind is {self.kind}")
        return self


class HeadSpec(_Strict):
    """Replace a final nn.Linear of the model, e.g. when fine-tuning a body."""

    attribute: str
    out_features: int = Field(ge=1)


class ModelConfig(_Strict):
    """The model section: which network, and optional weights."""

    kind: Literal["linear", "mlp", "python", "torchscript"]
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    checkpoint: str | None = None
    head: HeadSpec | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _kind_has_its_keys(self) -> "ModelConfig":
        if self.kind == "python" and not self.target:
            raise ValueError("model.target is required when model.kind is python")
        if self.kind == "torchscript" and not self.path:
            raise ValueError("model.path is required when model.kind is torchscript")
        return self


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

    formats: list[Literal["html", "pdf", "json", "junit", "md"]] = Field(
        default_factory=lambda: list(ALL_FORMATS)
    )
    template_dir: str | None = None


class GateConfig(_Strict):
    """The gate section: ``strict: true`` fails the gate on any relaxation of the default checks."""

    strict: bool = False


class Config(_Strict):
    """A whole reportgen config (schema v1)."""

    name: str = Field(min_length=1)
    task: TaskType
    seed: int = 0
    device: str = "auto"
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig | None = None
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    compare_to: str | None = None
    """An earlier run's results.json (e.g. the last release) for the release_comparison check."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)

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

    def resolve(self, relative: str) -> Path:
        """Resolve a path from the config relative to the YAML file's folder."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


def _parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=VALUE`` into its dotted path and its YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set training.epochs=3")
    key, _, value_text = text.partition("=")
    keys = [part for part in key.strip().split(".") if part]
    if not keys:
        raise ConfigError(f"--set {text!r}: the key is empty")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
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


def _known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """Return the valid keys of the config section at ``location``."""
    current: Any = model
    for part in location[:-1]:
        if isinstance(part, int) or current is None:
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in_annotation(field.annotation)
    return list(current.model_fields) if current is not None else []


def _model_in_annotation(annotation: Any) -> type[BaseModel] | None:
    """Find the pydantic model inside an annotation such as ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in_annotation(arg)
        if found is not None:
            return found
    return None


def suggest(name: str, candidates: list[str]) -> str:
    """Return ' (did you mean X?)' for the nearest candidate, or ''."""
    nearest = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if not nearest:  # long spellings of a short key ('learning_rate' for 'lr') are too far for difflib
        nearest = [c for c in candidates if ALIASES.get(name.lower()) == c]
    return f" (did you mean {nearest[0]!r}?)" if nearest else ""


ALIASES = {"learning_rate": "lr", "learningrate": "lr", "n_epochs": "epochs", "num_epochs": "epochs", "max_epochs": "epochs"}
"""Common names of keys that difflib cannot match to reportgen's shorter ones."""


def _describe(error: dict[str, Any]) -> str:
    """Turn one pydantic error into one readable sentence."""
    location = tuple(error.get("loc", ()))
    dotted = ".".join(str(part) for part in location) or "config"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        key = str(location[-1])
        return f"unknown key {dotted!r}{suggest(key, _known_keys(Config, location))}"
    if kind == "missing":
        return f"missing required key {dotted!r}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "value_error" and (not location or message.startswith(str(location[0]))):
        return message  # our own validators already name the key
    return f"{dotted}: {message}"


def validate(raw: Any) -> Config:
    """Validate a parsed YAML document against schema v1."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping with keys such as name, task, data, model")
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        extra = "" if len(errors) == 1 else f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(_describe(errors[0]) + extra) from None
    _validate_checks(config)
    return config


def _validate_checks(config: Config) -> None:
    """Check ids and per-check settings against the check registry."""
    from reportgen.checks import registry

    for check_id, settings in config.checks.items():
        check = registry.get(check_id)
        if check is None:
            raise ConfigError(f"unknown check 'checks.{check_id}'{suggest(check_id, registry.ids())}")
        allowed = check.spec.setting_names()
        for key in settings:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key 'checks.{check_id}.{key}'{suggest(key, sorted(allowed))}; "
                    f"valid keys: {', '.join(sorted(allowed))}"
                )
        try:
            check.spec.settings_from(settings)
        except ValueError as exc:
            raise ConfigError(f"checks.{check_id}: {exc}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> LoadedConfig:
    """Read, override and validate the YAML config at ``path``."""
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config_path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc.__class__.__name__}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{config_path}: malformed YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{config_path}: the config is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the config must be a YAML mapping, not a {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    config = validate(raw)
    canonical = json.dumps(raw, sort_keys=True, default=str).encode("utf-8")
    return LoadedConfig(
        config=config,
        path=config_path.resolve(),
        base_dir=config_path.resolve().parent,
        raw=raw,
        sha256=hashlib.sha256(canonical).hexdigest(),
    )
