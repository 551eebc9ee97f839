"""The pipeline: config -> data -> model -> train or evaluate -> metrics -> checks -> report."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import torch
from torch import nn

from reportgen.batching import iterate_batches
from reportgen.checks import registry, run_checks
from reportgen.checks.comparison_checks import SKIPPED_RUNS_KEY, scan_runs
from reportgen.checks.context import CheckContext
from reportgen.config import LoadedConfig
from reportgen.data import load_data, load_reference
from reportgen.distributed import ShardPlan, World, broadcast_module, evaluate_sharded
from reportgen.gate import correctness_record, gate_block, gate_overrides, not_measured_blocking, score_record, strict_result
from reportgen.intervals import delong_auc_interval
from reportgen.errors import ConfigError, ResultsError, RunError
from reportgen.evaluation import evaluate, inference_batch_size
from reportgen.metrics import (
    SWEEP_THRESHOLDS, classification_metrics, plot_curves, prediction_threshold_sweep, regression_metrics, threshold_sweep,
)
from reportgen.models import ModelInfo, build_model, describe_model, model_identity, probe_outputs, state_dict_bytes
from reportgen.outputs import make_loss, resolve_loss_name
from reportgen.render.html import check_templates
from reportgen.report import Report, load_results
from reportgen.results_schema import Environment, ModelSummary, TrainingSummary, section, to_jsonable
from reportgen.runinfo import RunInfo, collect_run_info, seed_everything, utc_now
from reportgen.training import train
from reportgen.types import DataBundle, Predictions, SplitData, TrainingResult

if TYPE_CHECKING:
    from reportgen.output import OutputFolder


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
    reference: Any = None
    """The data.reference table (pandas DataFrame) that feature_drift compares test with, when given."""


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


def reads_sharded(loaded: LoadedConfig, world: World) -> bool:
    """Whether each worker of ``world`` reads only its shard of every split (``data.load_data(shard=...)``).

    True for a multi-worker evaluate-only run: training draws every global batch from the whole train
    split, so a run that trains reads every split on every worker. The checks read rows through local
    phases and the row sample (reportgen/checks/shards.py), never from rank 0's ``data``.
    """
    return world.distributed and loaded.config.training is None


def prepare(loaded: LoadedConfig, device: torch.device | None = None, shard: ShardPlan | None = None) -> Prepared:
    """Load data and build the model; everything an input error can come from happens here.

    ``device`` overrides the config's (a distributed worker runs on its own GPU or the CPU); with ``shard``
    each split holds only this worker's rows (``reads_sharded``).
    """
    cfg = loaded.config
    if cfg.report.template_dir:  # a typo here must not cost a training run
        check_templates(loaded.resolve(cfg.report.template_dir))
    device = device or resolve_device(cfg.device)
    generator = seed_everything(cfg.seed)
    data = load_data(cfg.data, cfg.task, loaded.resolve, cfg.seed, shard=shard)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, cfg.task, data.num_classes, loaded.resolve)
    model.to(device)
    sample_x = data.probe_inputs if data.probe_inputs is not None else next(iterate_batches(data.splits["train"], 2))[0]
    outputs, output_kind = probe_outputs(model, sample_x.to(device), cfg.task, data.num_classes, cfg.model.head is not None)
    reference = load_reference(cfg.data, loaded.resolve, cfg.task)
    return Prepared(data, model, describe_model(model, cfg.model, outputs, output_kind), device, generator, reference)


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
            name: {"n": split.global_n, "class_counts": data.class_counts(name), "source": split.source}
            for name, split in data.splits.items()
        },
        "fingerprint": dict(data.fingerprint),
    }


def _checkpoint_path(loaded: LoadedConfig) -> Path | None:
    """The weights file the config names (a checkpoint, or the TorchScript model itself), resolved."""
    reference = getattr(loaded.config.model, "checkpoint", None) or getattr(loaded.config.model, "path", None)
    return loaded.resolve(reference) if reference else None


def load_previous_results(path: Path, exclude: Path | None = None, *, name: str | None = None) -> dict[str, Any]:
    """Read an earlier run's results.json for comparison (with ``load_results``: exit 2 when malformed);
    a folder gives its newest valid passing run of job ``name`` (``scan_runs``; ``exclude``, the run's own
    output folder, is not scanned), and the document then lists the invalid files skipped under ``SKIPPED_RUNS_KEY``."""
    return _previous_run(path, exclude, name)[0]


def _previous_run(path: Path, exclude: Path | None, name: str | None) -> tuple[dict[str, Any], str | None]:
    """``load_previous_results`` and, when ``path`` is a folder, the chosen results.json's path relative to it
    (recorded in release_comparison's evidence as ``previous_source``)."""
    chosen, source = path, None
    skipped: tuple[tuple[str, str], ...] = ()
    if path.is_dir():
        scan = scan_runs(path, exclude, name=name)
        chosen, skipped, source = scan.chosen, scan.skipped, scan.chosen.relative_to(path).as_posix()
    try:
        document = load_results(chosen).document()
    except ResultsError as exc:
        raise ResultsError(f"compare_to: {exc}") from None
    if skipped:
        document[SKIPPED_RUNS_KEY] = [{"path": p, "reason": why} for p, why in skipped]
    return document, source


def check_before_run(loaded: LoadedConfig, out_dir: Path | None, inputs: Mapping[str, Path] | None = None) -> None:
    """Everything ``run`` checks before loading data: the output folder, ``compare_to``, templates.

    ``reportgen validate`` calls this too, so it approves only what ``run`` would start. ``inputs``
    (``input_paths``), when given, must lie outside the output folder, as when a run claims it.
    """
    from reportgen.output import check_out_dir

    cfg = loaded.config
    if out_dir is not None:
        check_out_dir(out_dir, inputs=inputs)
    if cfg.compare_to:
        load_previous_results(loaded.resolve(cfg.compare_to), out_dir, name=cfg.name)
    if cfg.report.template_dir:
        check_templates(loaded.resolve(cfg.report.template_dir))


def execute(
    loaded: LoadedConfig,
    *,
    progress: Progress | None = None,
    clock: Callable[[], Any] = utc_now,
    compare_to: Path | None = None,
) -> tuple[Report, Prepared]:
    """Run the whole pipeline in memory and return the report (nothing is written)."""
    report, prepared = _execute(loaded, progress=progress, clock=clock, compare_to=compare_to, world=World.single())
    assert report is not None
    return report, prepared


def _execute(
    loaded: LoadedConfig,
    *,
    progress: Progress | None,
    clock: Callable[[], Any],
    compare_to: Path | None,
    world: World,
    out_dir: Path | None = None,
) -> tuple[Report | None, Prepared]:
    """``execute`` as one worker of ``world``: every worker evaluates its shard; rank 0 gets the report, the others None."""
    progress = progress or SilentProgress()
    if compare_to is not None:
        loaded = loaded.with_flags({"compare_to": str(Path(compare_to).resolve())})
    cfg = loaded.config
    previous_path = loaded.resolve(cfg.compare_to) if cfg.compare_to else None
    previous, previous_source = _previous_run(previous_path, out_dir, cfg.name) if previous_path else (None, None)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    progress.stage("loading data and model")
    shard = ShardPlan(world, cfg.data.batch_size) if reads_sharded(loaded, world) else None
    prepared = prepare(loaded, device=world.device if world.distributed else None, shard=shard)
    data, model, info = prepared.data, prepared.model, prepared.model_info
    broadcast_module(model, world)
    run_info: RunInfo = collect_run_info(cfg.seed, str(prepared.device), clock, world_size=world.world_size)
    timing["load"] = time.perf_counter() - started

    training: TrainingResult | None = None
    if cfg.training is not None:
        progress.stage(f"training for up to {cfg.training.epochs} epochs")
        t0 = time.perf_counter()
        training = train(
            model, data, cfg.training, task=cfg.task, device=prepared.device, generator=prepared.generator,
            output_kind=info.output_kind, batch_size=cfg.data.batch_size, threshold=cfg.model.threshold,
            on_epoch=lambda record: progress.epoch(record, cfg.training.epochs),  # type: ignore[union-attr]
            world=world,
        )
        timing["train"] = time.perf_counter() - t0

    progress.stage("evaluating")
    t0 = time.perf_counter()
    loss_name = resolve_loss_name(cfg.training.loss if cfg.training else "auto", info.output_kind)
    loss_fn = make_loss(loss_name, info.output_kind, data.positive_index, None)
    predictions: dict[str, Predictions] = {}
    local_splits: dict[str, SplitData] = {}
    local_predictions: dict[str, Predictions] = {}
    scoring_batch = inference_batch_size(cfg.data.batch_size, data.input_shape)
    for name, split in data.splits.items():
        on_batch = functools.partial(progress.batches, name, total=split.global_n)

        def evaluate_part(part: SplitData, on_part: Callable[[int], None] | None) -> Predictions:
            return evaluate(
                model, part, task=cfg.task, output_kind=info.output_kind, positive_index=data.positive_index,
                threshold=cfg.model.threshold, loss_fn=loss_fn, batch_size=scoring_batch,
                device=prepared.device, num_classes=data.num_classes, on_batch=on_part,
            )

        evaluated = evaluate_sharded(split, world, scoring_batch, evaluate_part, on_batch)
        local_splits[name], local_predictions[name] = evaluated.local_split, evaluated.local_predictions
        if evaluated.gathered is not None:
            predictions[name] = evaluated.gathered
    spread = _spread_check_inputs(cfg, data, local_splits, local_predictions, predictions, training, prepared, world)
    if not world.is_main:  # the last collective is behind us: only rank 0 goes on to checks and the report
        return None, prepared
    if spread is not None:
        # Rank 0 of several workers: its own shard's inputs (features, attributes, the last split evaluated, the
        # shard's predictions) are no longer read once the local phases and the row sample are done; the checks
        # and the report read the labels-only view, which answers every fact the summary needs alike.
        del split, evaluated, local_splits, local_predictions
        data = spread.data
        prepared = dataclasses.replace(prepared, data=data)
    metrics = {name: _metrics_for(pred, data) for name, pred in predictions.items()}
    if cfg.task == "binary" and data.positive_index is not None and predictions["test"].probs is not None:
        test_pred = predictions["test"]
        ci = delong_auc_interval(test_pred.y_true == data.positive_index, test_pred.probs[:, data.positive_index])
        if ci is not None:
            metrics["test"] = {**metrics["test"], "roc_auc_ci95": list(ci)}
    curves = {"test": plot_curves(predictions["test"], cfg.task, data.positive_index, cfg.model.threshold, classes=data.classes)}
    val = predictions.get("val")
    if cfg.task == "binary" and val is not None and val.probs is not None and data.positive_index is not None:
        # A threshold is chosen on val, never on test (the page-1 fix suggestion reads this sweep).
        curves["val"] = {"threshold_sweep": prediction_threshold_sweep(val, data.positive_index, SWEEP_THRESHOLDS)
                         or threshold_sweep(val.y_true == data.positive_index, val.probs[:, data.positive_index],
                                            SWEEP_THRESHOLDS)}  # the second only to raise on a score that is not finite
    timing["evaluate"] = time.perf_counter() - t0

    progress.stage("running checks")
    t0 = time.perf_counter()
    context = CheckContext(
        task=cfg.task, data=data, predictions=predictions, metrics=metrics, training=training,
        threshold=cfg.model.threshold, batch_size=cfg.data.batch_size, previous=previous,
        previous_source=previous_source, model=model, device=prepared.device, output_kind=info.output_kind, reference_attributes=prepared.reference,
        seed=cfg.seed, local_states=spread.local_states if spread else None, samples=spread.samples if spread else None,
    )
    results = run_checks(context, cfg.checks)
    overrides = gate_overrides([c.spec for c in registry.all()], cfg.checks, cfg.task, cfg.training is not None)
    refusal = strict_result(overrides, not_measured_blocking(results)) if cfg.gate.strict else None
    results = results + (refusal,) if refusal else results
    test_pred = predictions["test"]
    outcomes = None if cfg.task == "regression" else correctness_record(test_pred.y_true, test_pred.y_pred, data.positive_index)
    scores = (score_record(test_pred.y_true, test_pred.probs[:, data.positive_index], data.positive_index)
              if data.positive_index is not None and test_pred.probs is not None else None)
    gate = gate_block(results, overrides, cfg.gate.strict, outcomes, scores)
    timing["checks"] = time.perf_counter() - t0

    environment = section(Environment, {**to_jsonable(run_info), "config_sha256": loaded.sha256,
                                        "config_file": loaded.path.name})
    try:
        report = Report(
            name=cfg.name, task=cfg.task, environment=environment, data=_data_summary(data),
            model=section(ModelSummary, {**to_jsonable(info), **model_identity(model, _checkpoint_path(loaded))}),
            training=section(TrainingSummary, training) if training else None,
            metrics=metrics, checks=results, curves=curves, config=loaded.raw,
            timing={k: round(v, 3) for k, v in timing.items()}, gate=gate,
        )
    except ResultsError as exc:  # the run itself built a document the schema refuses: a bug, not bad input
        raise RunError(f"the run's results do not fit the results.json schema: {exc}") from exc
    return report, prepared


@dataclass(frozen=True)
class _SpreadInputs:
    """What rank 0's checks read on a multi-worker run: labels-only data, the local phases' results, the row samples."""

    data: DataBundle
    local_states: Any
    samples: Any


def _spread_check_inputs(
    cfg: Any, data: DataBundle, local_splits: dict[str, SplitData], local_predictions: dict[str, Predictions],
    predictions: dict[str, Predictions], training: TrainingResult | None, prepared: Prepared, world: World,
) -> _SpreadInputs | None:
    """On a multi-worker run, every worker runs the enabled checks' local phases on its rows and sends rank 0
    its share of the row sample (reportgen/checks/shards.py); rank 0 gets them with a labels-only view of the
    data. None on one process, where the checks run those phases themselves on the whole data (same rule)."""
    if not world.distributed:
        return None
    from reportgen.checks.shards import ShardContext, gather_row_samples, labels_only, run_local_phases

    active = []
    for check in registry.all():
        settings = check.spec.settings_from(cfg.checks.get(check.spec.id))
        if settings.enabled and cfg.task in check.spec.tasks and not (check.spec.needs_training and training is None):
            active.append((check, settings))
    shard = ShardContext(
        task=cfg.task, data=dataclasses.replace(data, splits=local_splits), predictions=local_predictions, world=world,
        batch_size=cfg.data.batch_size, seed=cfg.seed, model=prepared.model, device=prepared.device,
        output_kind=prepared.model_info.output_kind, threshold=cfg.model.threshold,
    )
    local_states = run_local_phases(active, shard)
    samples = gather_row_samples(shard) if any(getattr(c, "uses_row_sample", False) for c, _ in active) else None
    if not world.is_main:
        return None
    return _SpreadInputs(labels_only(data, predictions), local_states, samples)


def default_out_dir(name: str) -> Path:
    """reports/<name>, with the name made safe for a folder."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip(".-") or "report"
    return Path("reports") / safe


def input_paths(loaded: LoadedConfig, compare_to: Path | None = None) -> dict[str, Path]:
    """Every file or folder a run reads, by the config key that names it (the output folder must hold none)."""
    cfg = loaded.config
    named: dict[str, str | None] = {
        f"{section}.{key}": getattr(getattr(cfg, section), key, None)
        for section, key in (("data", "path"), ("data", "train"), ("data", "val"), ("data", "test"),
                             ("data", "reference"), ("model", "path"), ("model", "checkpoint"))
    }
    named.update({"compare_to": cfg.compare_to, "report.template_dir": cfg.report.template_dir})
    for key, reference in (("data.factory", getattr(cfg.data, "factory", None)),
                           ("model.target", getattr(cfg.model, "target", None))):
        module_part = (reference or "").rpartition(":")[0]
        named[key] = module_part if module_part.endswith(".py") else None
    paths = {"the config": loaded.path}
    paths.update({key: loaded.resolve(value) for key, value in named.items() if value})
    if compare_to is not None:
        paths["--compare-to"] = compare_to
    return paths


def run(
    loaded: LoadedConfig,
    *,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
    progress: Progress | None = None,
    clock: Callable[[], Any] = utc_now,
    compare_to: Path | None = None,
    folder: "OutputFolder | None" = None,
    world: World | None = None,
) -> RunOutcome | None:
    """Run the pipeline and make the output folder hold the report files (and model.pt after training).

    ``folder`` is an output folder the caller has claimed already (``out_dir`` is then ignored);
    otherwise ``out_dir`` (default reports/<name>) is claimed here, before anything is loaded, so that
    an unusable output folder is an InputError within seconds, not after training.
    """
    from reportgen.interrupts import with_test_pauses
    from reportgen.output import CHECKPOINT_FILE, OutputFolder, write_reports

    # Flags become part of the config as run (defaults < YAML < --set < flags), so results.json says what ran.
    if formats is not None or compare_to is not None:
        loaded = loaded.with_flags({"report.formats": formats,
                                    "compare_to": str(Path(compare_to).resolve()) if compare_to else None})
    cfg = loaded.config
    world = world or World.single()
    if folder is None and world.is_main:  # only rank 0 writes
        target = out_dir or default_out_dir(cfg.name)
        with OutputFolder(target, inputs=input_paths(loaded)) as claimed:
            return run(loaded, progress=progress, clock=clock, folder=claimed, world=world)
    progress = with_test_pauses(progress or SilentProgress())
    report, prepared = _execute(loaded, progress=progress, clock=clock, compare_to=None, world=world,
                                out_dir=folder.path if folder is not None else None)
    if report is None or folder is None:  # a worker other than rank 0
        return None
    chosen = list(cfg.report.formats)
    template_dir = loaded.resolve(cfg.report.template_dir) if cfg.report.template_dir else None
    progress.stage(f"writing {', '.join(chosen)} to {folder.requested}")
    t0 = time.perf_counter()
    save = cfg.training is not None and cfg.training.save_checkpoint
    extra = {CHECKPOINT_FILE: state_dict_bytes(prepared.model)} if save else {}
    written = write_reports(report, folder.requested, chosen, template_dir=template_dir, extra_files=extra, folder=folder)
    progress.stage(f"rendered in {time.perf_counter() - t0:.1f} s")
    return RunOutcome(report=report, out_dir=folder.requested, written=tuple(written))
