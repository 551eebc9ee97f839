"""The pipeline: config -> data -> model -> train or evaluate -> metrics -> checks -> report."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from reportgen.checks import registry, run_checks
from reportgen.checks.comparison_checks import newest_passing_run
from reportgen.checks.context import CheckContext
from reportgen.config import LoadedConfig
from reportgen.data import load_data
from reportgen.errors import ConfigError, InputError, ResultsError
from reportgen.evaluation import evaluate
from reportgen.gate import correctness_record, gate_block, gate_overrides, strict_result
from reportgen.intervals import delong_auc_interval
from reportgen.metrics import classification_metrics, plot_curves, regression_metrics
from reportgen.models import ModelInfo, build_model, describe_model, probe_outputs, state_dict_bytes
from reportgen.render.html import check_templates
from reportgen.report import Report
from reportgen.runinfo import RunInfo, collect_run_info, seed_everything, utc_now
from reportgen.training import iterate_batches, make_loss, resolve_loss_name, train
from reportgen.types import DataBundle, Predictions, TrainingResult


class Progress(Protocol):
    """Receives progress events; the CLI shows them, the library never prints."""

    def stage(self, name: str) -> None:
        """A pipeline stage starts."""

    def epoch(self, record: dict[str, float | None], total: int) -> None:
        """A training epoch ended."""

    def batches(self, split: str, done: int, total: int) -> None:
        """Evaluation progress on a split, in samples."""


class SilentProgress:
    """Progress that shows nothing."""

    def stage(self, name: str) -> None:
        """Ignore a stage."""

    def epoch(self, record: dict[str, float | None], total: int) -> None:
        """Ignore an epoch."""

    def batches(self, split: str, done: int, total: int) -> None:
        """Ignore evaluation progress."""


@dataclass(frozen=True)
class Prepared:
    """Data and model ready to train or evaluate."""

    data: DataBundle
    model: nn.Module
    model_info: ModelInfo
    device: torch.device
    generator: torch.Generator


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: the report, where it was written, and the trained model's file."""

    report: Report
    out_dir: Path
    written: tuple[Path, ...] = field(default_factory=tuple)


def resolve_device(name: str) -> torch.device:
    """Turn the config's device into a torch device; fail clearly when it is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but no CUDA device is available; use device: auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but MPS is not available; use device: auto or cpu")
    return torch.device(name)


def prepare(loaded: LoadedConfig) -> Prepared:
    """Load data and build the model; everything an input error can come from happens here."""
    cfg = loaded.config
    if cfg.report.template_dir:  # a typo here must not cost a training run
        check_templates(loaded.resolve(cfg.report.template_dir))
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.seed)
    data = load_data(cfg.data, cfg.task, loaded.resolve, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, cfg.task, data.num_classes, loaded.resolve)
    model.to(device)
    sample_x, _ = next(iterate_batches(data.splits["train"], 2))
    outputs, output_kind = probe_outputs(model, sample_x.to(device), cfg.task, data.num_classes, cfg.model.head is not None)
    return Prepared(data, model, describe_model(model, cfg.model, outputs, output_kind), device, generator)


def _metrics_for(pred: Predictions, data: DataBundle) -> dict[str, Any]:
    """Metric dictionary of one split."""
    if data.task == "regression":
        return regression_metrics(pred)
    return classification_metrics(pred, data.classes, data.positive_index)


def _data_summary(data: DataBundle) -> dict[str, Any]:
    """The data block of results.json."""
    return {
        "features": list(data.feature_names) if data.feature_names is not None else None,
        "input_shape": list(data.input_shape),
        "classes": list(data.classes),
        "positive_class": data.classes[data.positive_index] if data.positive_index is not None else None,
        "splits": {
            name: {"n": split.n, "class_counts": data.class_counts(name), "source": split.source}
            for name, split in data.splits.items()
        },
        "fingerprint": dict(data.fingerprint),
    }


def model_identity(model: nn.Module, checkpoint: Path | None) -> dict[str, Any]:
    """What identifies the evaluated model: weights and checkpoint hashes, class, architecture summary.

    ``weights_sha256`` hashes every state_dict entry (name, dtype, shape, bytes) in order, so it
    is the same for the same weights however they were saved; ``checkpoint_sha256`` hashes the
    checkpoint file as given (None without one).
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    summary = " ".join(str(model).split())
    module = type(model).__module__
    source = getattr(sys.modules.get(module), "__file__", None)
    if module.startswith("reportgen_user_") and source:  # a model file named in the config, imported under a private name
        module = Path(source).name
    return {
        "weights_sha256": digest.hexdigest(),
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest() if checkpoint and checkpoint.is_file() else None,
        "module": f"{module}:{type(model).__qualname__}" if module.endswith(".py") else f"{module}.{type(model).__qualname__}",
        "architecture": summary if len(summary) <= 600 else summary[:599] + "…",
    }


def load_previous_results(path: Path) -> dict[str, Any]:
    """Read an earlier run's results.json for comparison; a folder gives its newest passing run."""
    if path.is_dir():
        path = newest_passing_run(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"compare_to: results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise InputError(f"compare_to: {path} is not a results.json: {exc.__class__.__name__}") from None
    try:
        Report.from_dict(document)
    except ResultsError as exc:
        raise ResultsError(f"compare_to: {path}: {exc}") from None
    return document


def execute(
    loaded: LoadedConfig,
    *,
    progress: Progress | None = None,
    clock: Callable[[], Any] = utc_now,
    compare_to: Path | None = None,
) -> tuple[Report, Prepared]:
    """Run the whole pipeline in memory and return the report (nothing is written)."""
    progress = progress or SilentProgress()
    cfg = loaded.config
    previous_path = compare_to or (loaded.resolve(cfg.compare_to) if cfg.compare_to else None)
    previous = load_previous_results(previous_path) if previous_path else None
    timing: dict[str, float] = {}
    started = time.perf_counter()
    progress.stage("loading data and model")
    prepared = prepare(loaded)
    data, model, info = prepared.data, prepared.model, prepared.model_info
    run_info: RunInfo = collect_run_info(cfg.seed, str(prepared.device), clock)
    timing["load"] = time.perf_counter() - started

    training: TrainingResult | None = None
    if cfg.training is not None:
        progress.stage(f"training for up to {cfg.training.epochs} epochs")
        t0 = time.perf_counter()
        training = train(
            model, data, cfg.training, task=cfg.task, device=prepared.device, generator=prepared.generator,
            output_kind=info.output_kind, batch_size=cfg.data.batch_size, threshold=cfg.model.threshold,
            on_epoch=lambda record: progress.epoch(record, cfg.training.epochs),  # type: ignore[union-attr]
        )
        timing["train"] = time.perf_counter() - t0

    progress.stage("evaluating")
    t0 = time.perf_counter()
    loss_name = resolve_loss_name(cfg.training.loss if cfg.training else "auto", info.output_kind)
    loss_fn = make_loss(loss_name, info.output_kind, data.positive_index, None)
    predictions: dict[str, Predictions] = {}
    for name, split in data.splits.items():
        on_batch = functools.partial(progress.batches, name, total=split.n)
        predictions[name] = evaluate(
            model, split, task=cfg.task, output_kind=info.output_kind, positive_index=data.positive_index,
            threshold=cfg.model.threshold, loss_fn=loss_fn, batch_size=cfg.data.batch_size,
            device=prepared.device, on_batch=on_batch,
        )
    metrics = {name: _metrics_for(pred, data) for name, pred in predictions.items()}
    if cfg.task == "binary" and data.positive_index is not None:
        test_pred = predictions["test"]
        ci = delong_auc_interval(test_pred.y_true == data.positive_index, test_pred.positive_scores(data.positive_index))
        if ci is not None:
            metrics["test"] = {**metrics["test"], "roc_auc_ci95": list(ci)}
    curves = {"test": plot_curves(predictions["test"], cfg.task, data.positive_index, cfg.model.threshold, classes=data.classes)}
    timing["evaluate"] = time.perf_counter() - t0

    progress.stage("running checks")
    t0 = time.perf_counter()
    context = CheckContext(
        task=cfg.task, data=data, predictions=predictions, metrics=metrics, training=training,
        threshold=cfg.model.threshold, batch_size=cfg.data.batch_size, previous=previous,
        model=model, device=prepared.device, output_kind=info.output_kind,
    )
    results = run_checks(context, cfg.checks)
    overrides = gate_overrides([c.spec for c in registry.all()], cfg.checks)
    refusal = strict_result(overrides) if cfg.gate.strict else None
    results = results + (refusal,) if refusal else results
    test_pred = predictions["test"]
    outcomes = None if cfg.task == "regression" else correctness_record(test_pred.y_true, test_pred.y_pred, data.positive_index)
    gate = gate_block(results, overrides, cfg.gate.strict, outcomes)
    timing["checks"] = time.perf_counter() - t0

    environment = {**run_info.as_dict(), "config_sha256": loaded.sha256, "config_file": loaded.path.name}
    report = Report(
        name=cfg.name, task=cfg.task, environment=environment, data=_data_summary(data),
        model={**info.to_dict(), **model_identity(model, loaded.resolve(cfg.model.checkpoint) if cfg.model.checkpoint else None)},
        training=training.to_dict() if training else None, metrics=metrics, checks=results, curves=curves,
        config=loaded.raw, timing={k: round(v, 3) for k, v in timing.items()}, gate=gate,
    )
    return report, prepared


def default_out_dir(name: str) -> Path:
    """reports/<name>, with the name made safe for a folder."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip(".-") or "report"
    return Path("reports") / safe


def run(
    loaded: LoadedConfig,
    *,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
    progress: Progress | None = None,
    clock: Callable[[], Any] = utc_now,
    compare_to: Path | None = None,
) -> RunOutcome:
    """Run the pipeline and write the report files (and model.pt after training) atomically."""
    from reportgen.output import check_out_dir, write_reports

    progress = progress or SilentProgress()
    cfg = loaded.config
    target = out_dir or default_out_dir(cfg.name)
    check_out_dir(target)  # before training, not after
    report, prepared = execute(loaded, progress=progress, clock=clock, compare_to=compare_to)
    chosen = formats or list(cfg.report.formats)
    template_dir = loaded.resolve(cfg.report.template_dir) if cfg.report.template_dir else None
    progress.stage(f"writing {', '.join(chosen)} to {target}")
    t0 = time.perf_counter()
    extra = {"model.pt": state_dict_bytes(prepared.model)} if cfg.training is not None and cfg.training.save_checkpoint else {}
    written = write_reports(report, target, chosen, template_dir=template_dir, extra_files=extra)
    progress.stage(f"rendered in {time.perf_counter() - t0:.1f} s")
    return RunOutcome(report=report, out_dir=target, written=tuple(written))
