"""What a model's raw output means: the output kinds, probabilities, the decision rule and the matching loss.

Three output kinds exist (models.probe_outputs picks one from the output width):

- ``softmax``: C logits (multiclass, or binary with two outputs); probabilities are their softmax;
  loss cross-entropy.
- ``sigmoid``: one logit, the positive class's (binary); its probability is sigmoid(logit); loss BCE
  with logits.
- ``regression``: one value per sample, the prediction itself; loss MSE (or L1).

A binary prediction is the positive class when its probability is ``>= threshold`` (model.threshold),
with either kind; a multiclass prediction is the arg-max.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from reportgen.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""loss(raw outputs (batch, outputs), targets (batch,)) -> mean loss over the batch."""

_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "bce", "regression": "mse"}
_OUTPUTS_FOR_LOSS = {
    "cross_entropy": ("softmax",),
    "bce": ("sigmoid",),
    "mse": ("regression",),
    "l1": ("regression",),
}


def resolve_loss_name(requested: str, output_kind: str) -> str:
    """Pick the loss for ``auto`` and check that an explicit loss fits the model's output."""
    if requested == "auto":
        return _LOSS_FOR_OUTPUT[output_kind]
    if output_kind not in _OUTPUTS_FOR_LOSS[requested]:
        fitting = _LOSS_FOR_OUTPUT[output_kind]
        raise ConfigError(
            f"training.loss {requested!r} does not fit a model with {output_kind} outputs; use auto or {fitting!r}"
        )
    return requested


def class_weights_for(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Balanced class weights n / (C * count_c); absent classes get weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def make_loss(
    name: str, output_kind: str, positive_index: int | None, weights: torch.Tensor | None
) -> LossFn:
    """Return ``loss(outputs, targets) -> mean loss`` for raw model outputs."""
    if name == "cross_entropy":
        cross_entropy = nn.CrossEntropyLoss(weight=weights)
        return lambda out, y: cross_entropy(out, y)
    if name == "bce":
        pos_weight = None
        if weights is not None and positive_index is not None:
            negative_index = 1 - positive_index
            pos_weight = (weights[positive_index] / weights[negative_index].clamp_min(1e-12)).reshape(1)
        binary_cross_entropy = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        return lambda out, y: binary_cross_entropy(out.reshape(-1), (y == positive_index).to(out.dtype))
    criterion: nn.Module = nn.MSELoss() if name == "mse" else nn.L1Loss()
    return lambda out, y: criterion(out.reshape(-1), y.to(out.dtype).reshape(-1))


def output_kind_for(task: str, outputs: int, num_classes: int) -> str | None:
    """The output convention a width implies for a task, or None when it does not fit."""
    if task == "regression":
        return "regression" if outputs == 1 else None
    if task == "binary":
        return {1: "sigmoid", 2: "softmax"}.get(outputs)
    return "softmax" if outputs == num_classes else None


def probabilities(outputs: torch.Tensor, output_kind: str, positive_index: int | None) -> torch.Tensor:
    """(batch, C) class probabilities; a single sigmoid logit is the positive class's."""
    if output_kind == "sigmoid":
        p = torch.sigmoid(outputs.reshape(-1).float())
        assert positive_index is not None
        columns = [1 - p, p] if positive_index == 1 else [p, 1 - p]
        return torch.stack(columns, dim=1)
    return torch.softmax(outputs.float(), dim=1)


def predicted_classes(outputs: torch.Tensor, output_kind: str, positive_index: int | None, threshold: float) -> torch.Tensor:
    """Class indices from raw outputs, using the decision threshold for binary tasks."""
    if output_kind == "sigmoid":
        positive = torch.sigmoid(outputs.reshape(-1)) >= threshold
        assert positive_index is not None
        return torch.where(positive, positive_index, 1 - positive_index)
    if positive_index is not None:
        positive = torch.softmax(outputs, dim=1)[:, positive_index] >= threshold
        return torch.where(positive, positive_index, 1 - positive_index)
    return outputs.argmax(dim=1)
