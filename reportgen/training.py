"""Training loop: deterministic for a seed on CPU, with first-step diagnostics and early stopping."""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
from torch import nn

from reportgen.batching import iterate_batches
from reportgen.config import TrainingConfig
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
) -> TrainingResult:
    """Train ``model`` in place on the train split and return what happened."""
    started = time.perf_counter()
    train_split = data.splits["train"]
    val_split = data.splits.get("val")
    num_classes = 0 if task == "regression" else data.num_classes
    loss_name = resolve_loss_name(config.loss, output_kind)
    weights = None
    if config.class_weights == "balanced" and task != "regression":
        weights = class_weights_for(train_split.labels, num_classes).to(device)
    loss_fn = make_loss(loss_name, output_kind, data.positive_index, weights)
    plain_loss_fn = make_loss(loss_name, output_kind, data.positive_index, None)
    optimizer = _optimizer(model, config)
    model.to(device)

    expected_init = None if task == "regression" else math.log(num_classes)
    init_loss = float("nan")
    gradients: tuple[LayerGradient, ...] = ()
    history: list[dict[str, float | None]] = []
    diverged: dict[str, int] | None = None
    monitor = config.early_stopping.monitor if config.early_stopping else ("val_loss" if val_split else "train_loss")
    if monitor == "val_loss" and val_split is None:
        monitor = "train_loss"
    best_value = math.inf
    best_epoch = 0
    # Only finite weights are ever kept: the initial ones, then those of an epoch that ended finite.
    best_state = copy.deepcopy(model.state_dict())
    last_finite_epoch = 0
    epochs_since_best = 0
    stopped_early = False
    step = 0

    for epoch in range(1, config.epochs + 1):
        model.train()
        stats = _EpochStats(num_classes)
        epoch_step = 0
        for x, y in iterate_batches(train_split, batch_size, shuffle=True, generator=generator):
            x, y = x.to(device), y.to(device)
            epoch_step += 1
            outputs = model(x)
            loss = loss_fn(outputs, y)
            optimizer.zero_grad(set_to_none=True)
            # History records the unweighted loss, so train_loss, val_loss and init_loss share one unit.
            if weights is None:
                loss_value = float(loss.detach())
            else:
                with torch.no_grad():
                    loss_value = float(plain_loss_fn(outputs, y))
            if step == 0:
                init_loss = loss_value
            if not math.isfinite(loss_value) or not bool(torch.isfinite(loss.detach())):
                diverged = {"epoch": epoch, "step": epoch_step, "global_step": step + 1}
                break
            loss.backward()
            if step == 0:
                gradients = probe_gradients(model)
            optimizer.step()
            step += 1
            with torch.no_grad():
                predicted = None if task == "regression" else predicted_classes(outputs, output_kind, data.positive_index, threshold)
                stats.add(loss_value, y, outputs, predicted)
        if diverged is None and not weights_are_finite(model):
            # The last step of the epoch made the weights non-finite; its loss was still finite.
            diverged = {"epoch": epoch, "step": epoch_step, "global_step": step}
        record: dict[str, float | None] = {"epoch": epoch, **stats.summary("train")}
        if diverged is not None:
            record["train_loss"] = None
            history.append(finite_or_none(record))
            break
        if val_split is not None:
            record.update(_evaluate_pass(model, val_split, plain_loss_fn, task, output_kind, data, num_classes, batch_size, threshold, device))
        record = finite_or_none(record)
        history.append(record)
        last_finite_epoch = epoch
        if on_epoch is not None:
            on_epoch(record)
        current = record.get(monitor)
        if current is not None and current < best_value:
            best_value, best_epoch, epochs_since_best = current, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            epochs_since_best += 1
        if config.early_stopping and epochs_since_best >= config.early_stopping.patience:
            stopped_early = True
            break

    if step == 0 and diverged is None:
        raise RunError("training ran no step: the train split yielded no batch")
    if diverged is not None:
        model.load_state_dict(best_state)
        kept = f"epoch {best_epoch}" if best_epoch else "the initial weights (epoch 0)"
        evaluated = f"{kept}: training diverged at epoch {diverged['epoch']}, so the best finite weights are evaluated"
    elif config.early_stopping is not None:
        model.load_state_dict(best_state)
        evaluated = f"epoch {best_epoch} (early stopping keeps the best epoch's weights)"
    else:
        best_epoch = best_epoch or len(history)
        evaluated = f"epoch {last_finite_epoch} (the last epoch's weights)"
    return TrainingResult(
        epochs_run=len(history),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        loss_name=loss_name,
        init_loss=init_loss,
        expected_init_loss=expected_init,
        history=tuple(history),
        gradients=gradients,
        first_nonfinite_loss=diverged,
        seconds=time.perf_counter() - started,
        evaluated_weights=evaluated,
    )


def weights_are_finite(model: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``model`` is finite."""
    tensors = list(model.parameters()) + list(model.buffers())
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def finite_or_none(record: dict[str, float | None]) -> dict[str, float | None]:
    """A history record with every non-finite number replaced by None (null in results.json)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def _evaluate_pass(
    model: nn.Module, split: SplitData, loss_fn: LossFn, task: str, output_kind: str,
    data: DataBundle, num_classes: int, batch_size: int, threshold: float, device: torch.device,
) -> dict[str, float | None]:
    """Loss and headline metric of ``split`` for the epoch history, through the one evaluation loop."""
    stats = _EpochStats(num_classes)
    for outputs, y in model_outputs(model, split, batch_size, device):
        y = y.to(device)
        predicted = None if task == "regression" else predicted_classes(outputs, output_kind, data.positive_index, threshold)
        stats.add(float(loss_fn(outputs, y)), y, outputs, predicted)
    return stats.summary(split.name)
