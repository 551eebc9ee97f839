"""Training loop: deterministic for a seed on CPU, with first-step diagnostics and early stopping."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from reportgen.batching import iterate_batches
from reportgen.config import TrainingConfig
from reportgen.distributed import World, reduce_state, shard_bounds, shard_split
from reportgen.errors import ConfigError, RunError
from reportgen.evaluation import model_outputs
from reportgen.metrics import ClassificationState, RegressionState
from reportgen.outputs import (
    LossFn,
    class_weights_for,
    make_loss,
    predicted_classes,
    resolve_loss_name,
)
from reportgen.types import DataBundle, LayerGradient, SplitData, TrainingResult


def probe_gradients(model: nn.Module) -> tuple[LayerGradient, ...]:
    """Read each trainable parameter's gradient after a backward pass."""
    probes = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        grad = parameter.grad
        if grad is None:
            probes.append(LayerGradient(name=name, shape=tuple(parameter.shape), received=False, norm=None, finite=True))
            continue
        norm = float(grad.detach().float().norm().cpu())
        probes.append(
            LayerGradient(
                name=name, shape=tuple(parameter.shape), received=True,
                norm=norm if math.isfinite(norm) else None, finite=bool(torch.isfinite(grad).all()),
            )
        )
    return tuple(probes)


def _optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Build the configured optimizer."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters, so it cannot be trained; remove the training section")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


class _EpochStats:
    """Running loss and metric state over one pass, in the metrics module's additive states."""

    def __init__(self, num_classes: int) -> None:
        self.state: ClassificationState | RegressionState = (
            ClassificationState(num_classes) if num_classes else RegressionState()
        )

    def add(self, loss: float, y: torch.Tensor, outputs: torch.Tensor, predicted: torch.Tensor | None) -> None:
        """Add one batch: its mean loss, labels, and predicted classes (or raw outputs for regression)."""
        values = predicted if predicted is not None else outputs.detach().reshape(-1).float()
        self.state.update(y.cpu().numpy(), values.cpu().numpy(), loss_sum=loss * len(y))

    def summary(self, prefix: str) -> dict[str, float | None]:
        """Loss and headline metric with the split's prefix (train_/val_)."""
        state = self.state
        out: dict[str, float | None] = {f"{prefix}_loss": state.loss_sum / state.n if state.n else None}
        if isinstance(state, ClassificationState):
            out[f"{prefix}_accuracy"] = state.accuracy
            out[f"{prefix}_balanced_accuracy"] = state.balanced_accuracy
        else:
            out[f"{prefix}_rmse"] = state.metrics()["rmse"]
        return out


@dataclass(frozen=True)
class _Setup:
    """What every epoch needs: the data, the losses and the decision rule."""

    train_split: SplitData
    val_split: SplitData | None
    task: str
    output_kind: str
    positive_index: int | None
    num_classes: int
    batch_size: int
    threshold: float
    device: torch.device
    generator: torch.Generator
    loss_fn: LossFn
    """The training loss (class-weighted when asked)."""
    plain_loss_fn: LossFn
    """The unweighted loss, recorded in the history so that train_loss, val_loss and init_loss share one unit."""
    weighted: bool
    loss_name: str = ""
    class_weights: torch.Tensor | None = None
    """The weights of ``loss_fn`` (None when unweighted); several workers need them to split a batch's mean loss."""


@dataclass
class _Diagnostics:
    """Facts gathered across epochs: steps taken, the first batch's loss and gradients, divergence."""

    step: int = 0
    init_loss: float = float("nan")
    gradients: tuple[LayerGradient, ...] = ()
    diverged: dict[str, int] | None = None


class EarlyStopping:
    """Keeps the weights of the best epoch by ``monitor`` (finite weights only) and says when to stop.

    ``patience`` None never stops (the best epoch is still tracked, for divergence).
    """

    def __init__(self, model: nn.Module, monitor: str, patience: int | None) -> None:
        self.monitor, self.patience = monitor, patience
        self.best_value = math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(model.state_dict())  # the initial weights: finite, epoch 0
        self.epochs_since_best = 0

    def update(self, epoch: int, record: dict[str, float | None], model: nn.Module) -> bool:
        """Record an epoch that ended with finite weights; True when training should stop."""
        current = record.get(self.monitor)
        if current is not None and current < self.best_value:
            self.best_value, self.best_epoch, self.epochs_since_best = current, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.epochs_since_best += 1
        return self.patience is not None and self.epochs_since_best >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the kept weights into ``model``."""
        model.load_state_dict(self.best_state)


EpochFn = Callable[[nn.Module, torch.optim.Optimizer, _Setup, int, _Diagnostics], "dict[str, float | None]"]
"""One epoch: (model, optimizer, setup, epoch, diagnostics) -> the epoch's history record."""


def _train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, setup: _Setup, epoch: int, facts: _Diagnostics
) -> dict[str, float | None]:
    """One pass over the train split, then the end-of-epoch weight check and the validation pass.

    Returns the epoch's history record (non-finite values as None); sets ``facts.diverged`` and returns
    early when a loss or, after the epoch, the weights are not finite.
    """
    model.train()
    stats = _EpochStats(setup.num_classes)
    epoch_step = 0
    for x, y in iterate_batches(setup.train_split, setup.batch_size, shuffle=True, generator=setup.generator):
        x, y = x.to(setup.device), y.to(setup.device)
        epoch_step += 1
        outputs = model(x)
        loss = setup.loss_fn(outputs, y)
        optimizer.zero_grad(set_to_none=True)
        if setup.weighted:
            with torch.no_grad():
                loss_value = float(setup.plain_loss_fn(outputs, y))
        else:
            loss_value = float(loss.detach())
        if facts.step == 0:
            facts.init_loss = loss_value
        if not math.isfinite(loss_value) or not bool(torch.isfinite(loss.detach())):
            facts.diverged = {"epoch": epoch, "step": epoch_step, "global_step": facts.step + 1}
            break
        loss.backward()
        if facts.step == 0:
            facts.gradients = probe_gradients(model)
        optimizer.step()
        facts.step += 1
        with torch.no_grad():
            predicted = None if setup.task == "regression" else predicted_classes(
                outputs, setup.output_kind, setup.positive_index, setup.threshold)
            stats.add(loss_value, y, outputs, predicted)
    if facts.diverged is None and not weights_are_finite(model):
        # The epoch's last step made the weights non-finite; its loss was still finite.
        facts.diverged = {"epoch": epoch, "step": epoch_step, "global_step": facts.step}
    record: dict[str, float | None] = {"epoch": epoch, **stats.summary("train")}
    if facts.diverged is not None:
        record["train_loss"] = None
    elif setup.val_split is not None:
        record.update(_evaluate_pass(model, setup.val_split, setup))
    return finite_or_none(record)


def train(
    model: nn.Module,
    data: DataBundle,
    config: TrainingConfig,
    *,
    task: str,
    device: torch.device,
    generator: torch.Generator,
    output_kind: str,
    batch_size: int = 512,
    threshold: float = 0.5,
    on_epoch: Callable[[dict[str, float | None]], None] | None = None,
    world: World | None = None,
) -> TrainingResult:
    """Train ``model`` in place on the train split and return what happened.

    On a ``world`` of several workers every worker calls this alike; each trains on its part of every
    batch with DistributedDataParallel (reportgen/data_parallel.py) and returns the same result.

    Raises ConfigError for a loss that does not fit the outputs or a model without trainable parameters,
    RunError when the train split yields no batch.
    """
    train_split, val_split = data.splits["train"], data.splits.get("val")
    num_classes = 0 if task == "regression" else data.num_classes
    loss_name = resolve_loss_name(config.loss, output_kind)
    weights = None
    if config.class_weights == "balanced" and task != "regression":
        weights = class_weights_for(train_split.labels, num_classes).to(device)
    setup = _Setup(
        train_split, val_split, task, output_kind, data.positive_index, num_classes, batch_size, threshold, device,
        generator, make_loss(loss_name, output_kind, data.positive_index, weights),
        make_loss(loss_name, output_kind, data.positive_index, None), weights is not None, loss_name, weights,
    )
    optimizer = _optimizer(model, config)
    model.to(device)
    world = world or World.single()
    run_epoch: EpochFn = _train_epoch
    parallel = None
    if world.distributed:
        from reportgen import data_parallel

        run_epoch, parallel = data_parallel.epoch_function(model, world, train_split), data_parallel.describe(world)
    monitor = config.early_stopping.monitor if config.early_stopping else "val_loss"
    if monitor == "val_loss" and val_split is None:
        monitor = "train_loss"
    stopper = EarlyStopping(model, monitor, config.early_stopping.patience if config.early_stopping else None)
    facts = _Diagnostics()
    history: list[dict[str, float | None]] = []
    stopped_early = False
    for epoch in range(1, config.epochs + 1):
        record = run_epoch(model, optimizer, setup, epoch, facts)
        history.append(record)
        if facts.diverged is not None:
            break
        if on_epoch is not None:
            on_epoch(record)
        if stopper.update(epoch, record, model):
            stopped_early = True
            break

    if facts.step == 0 and facts.diverged is None:
        raise RunError("training ran no step: the train split yielded no batch")
    best_epoch = stopper.best_epoch
    if facts.diverged is not None:
        stopper.restore(model)
        kept = f"epoch {best_epoch}" if best_epoch else "the initial weights (epoch 0)"
        evaluated = f"{kept}: training diverged at epoch {facts.diverged['epoch']}, so the best finite weights are evaluated"
    elif config.early_stopping is not None:
        stopper.restore(model)
        evaluated = f"epoch {best_epoch} (early stopping keeps the best epoch's weights)"
    else:
        best_epoch = best_epoch or len(history)
        evaluated = f"epoch {len(history)} (the last epoch's weights)"
    return TrainingResult(
        epochs_run=len(history),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        loss_name=loss_name,
        init_loss=facts.init_loss,
        expected_init_loss=None if task == "regression" else math.log(num_classes),
        history=tuple(history),
        gradients=facts.gradients,
        first_nonfinite_loss=facts.diverged,
        evaluated_weights=evaluated,
        data_parallel=parallel,
        early_stopping_patience=config.early_stopping.patience if config.early_stopping is not None else None,
    )


def weights_are_finite(model: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``model`` is finite."""
    tensors = list(model.parameters()) + list(model.buffers())
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def finite_or_none(record: dict[str, float | None]) -> dict[str, float | None]:
    """A history record with every non-finite number replaced by None (null in results.json)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _evaluate_pass(model: nn.Module, split: SplitData, setup: _Setup, world: World | None = None) -> dict[str, float | None]:
    """Loss and headline metric of ``split`` for the epoch history, through the one evaluation loop.

    On a ``world`` of several workers each evaluates its shard and the statistics are reduced, so every
    worker returns the same numbers.
    """
    stats = _EpochStats(setup.num_classes)
    part = split
    if world is not None and world.distributed:
        part = shard_split(split, *shard_bounds(split.n, world.rank, world.world_size, align=setup.batch_size))
    for outputs, y in model_outputs(model, part, setup.batch_size, setup.device):
        y = y.to(setup.device)
        predicted = None if setup.task == "regression" else predicted_classes(
            outputs, setup.output_kind, setup.positive_index, setup.threshold)
        stats.add(float(setup.plain_loss_fn(outputs, y)), y, outputs, predicted)
    if world is not None and world.distributed:
        stats.state = reduce_state(stats.state, world)  # type: ignore[assignment]
    return stats.summary(split.name)
