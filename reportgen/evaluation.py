"""Evaluation: stream a split through the model in batches and keep one score row per sample."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from reportgen.batching import iterate_batches
from reportgen.errors import ModelError
from reportgen.metrics import ClassificationState, RegressionState
from reportgen.outputs import LossFn, predicted_classes, probabilities
from reportgen.types import Predictions, SplitData


def model_outputs(
    model: nn.Module, split: SplitData, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The one evaluation loop: (raw outputs (batch, outputs), labels (batch,)) per batch, in eval mode
    without gradients. Used by evaluate() and by training's validation pass."""
    was_training = model.training
    model.eval()
    try:
        for x, y in iterate_batches(split, batch_size):
            inputs = x.to(device, non_blocking=True)
            if inputs.data_ptr() == x.data_ptr():
                # A view into the split starts at an address set by the batch's place in it and by the split's own
                # allocation, and CPU matrix kernels round by the input's alignment: a worker holding these rows
                # in another array would score them differently. A fresh tensor is aligned by torch's allocator.
                inputs = inputs.clone()
            with torch.no_grad():  # not around the yield: the caller's code must not run with gradients off
                outputs = model(inputs)
            if outputs.dim() == 1:
                outputs = outputs.unsqueeze(1)
            yield outputs, y
    finally:
        model.train(was_training)


INFERENCE_MAX_FACTOR = 8
"""An evaluation batch holds at most this many times ``data.batch_size`` samples."""
INFERENCE_MAX_SAMPLES = 4096
"""... at most this many samples (the batch of bench/'s plain PyTorch loop) ..."""
INFERENCE_MAX_INPUT_BYTES = 16 * 2**20
"""... and at most this many bytes of float32 input (16 MiB; 128-byte rows of 32 features reach the sample cap first)."""


def inference_batch_size(batch_size: int, input_shape: tuple[int, ...]) -> int:
    """Samples per batch when scoring a split without gradients: larger than the training batch, bounded.

    Every batch of evaluation pays a fixed cost (a Python step, the loss, a finiteness check, copies to
    NumPy), so the training batch (default 512) makes scoring a large split several times slower than it
    need be. Without gradients no activations are kept for a backward pass, so a forward pass over a
    larger batch needs far less memory than a training step of the same size. The size is
    ``min(8 * batch_size, 4096, 16 MiB / (4 bytes * prod(input_shape)))``, never below ``batch_size``:
    4096 for the default 512 and any small tabular input; the training batch itself for images large
    enough that 16 MiB holds fewer samples (a 3x224x224 image: 27). Lower ``data.batch_size`` to lower it.
    """
    sample_bytes = 4 * max(1, int(np.prod(input_shape, dtype=np.int64)))
    bounded = min(INFERENCE_MAX_FACTOR * batch_size, INFERENCE_MAX_SAMPLES, INFERENCE_MAX_INPUT_BYTES // sample_bytes)
    return max(batch_size, bounded)


def metric_state(task: str, num_classes: int) -> ClassificationState | RegressionState:
    """An empty additive metric state for the task."""
    return RegressionState() if task == "regression" else ClassificationState(num_classes)


def row_reference(split: SplitData, position: int) -> str:
    """How a message names the row at ``position`` of ``split`` (this worker's rows): 'data row N' (1-based, header
    excluded, as every input error counts rows) when the split's rows come from a table, else 'index I' (0-based,
    as the data kinds that hand over arrays count them), ``I`` counted over the whole split."""
    if split.source_rows is not None:
        return f"data row {int(split.source_rows[position]) + 1}"
    return f"index {split.offset + position}"


def evaluate(
    model: nn.Module,
    split: SplitData,
    *,
    task: str,
    output_kind: str,
    positive_index: int | None,
    threshold: float,
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
    num_classes: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Predictions:
    """Predict every sample of ``split``; non-finite outputs are an input error naming the split.

    The metric state (confusion counts, or regression error sums) is fed as the batches arrive and
    returned as ``Predictions.state``; ``num_classes`` sizes it (0 for regression).

    ``on_batch`` receives the number of samples done so far.
    """
    n = split.n
    state = metric_state(task, num_classes)
    probs: np.ndarray | None = None
    y_pred = np.empty(n, dtype=np.float32 if task == "regression" else np.int64)
    y_true = np.empty(n, dtype=np.float32 if task == "regression" else np.int64)
    loss_sum = 0.0
    start = 0
    nonfinite = 0
    first_bad: int | None = None
    for outputs, y in model_outputs(model, split, batch_size, device):
        batch = outputs.shape[0]
        bad_rows = ~torch.isfinite(outputs).all(dim=1)
        if bool(bad_rows.any()):
            nonfinite += int(bad_rows.sum())
            if first_bad is None:
                first_bad = start + int(torch.nonzero(bad_rows)[0])
            start += batch
            continue
        y_device = y.to(device)
        batch_loss = float(loss_fn(outputs, y_device)) * batch
        loss_sum += batch_loss
        if task == "regression":
            y_pred[start : start + batch] = outputs.reshape(-1).float().cpu().numpy()
        else:
            batch_probs = probabilities(outputs, output_kind, positive_index).cpu().numpy()
            if probs is None:
                probs = np.empty((n, batch_probs.shape[1]), dtype=np.float32)
            probs[start : start + batch] = batch_probs
            y_pred[start : start + batch] = predicted_classes(outputs, output_kind, positive_index, threshold).cpu().numpy()
        y_true[start : start + batch] = y.reshape(-1).numpy()
        state.update(y_true[start : start + batch], y_pred[start : start + batch], loss_sum=batch_loss)
        start += batch
        if on_batch is not None:
            on_batch(start)
    if nonfinite:
        where = "" if first_bad is None else f" (first at {row_reference(split, first_bad)})"
        inputs_bad = split.features is not None and not np.isfinite(split.features).all()
        cause = "; the inputs contain non-finite values" if inputs_bad else ""
        raise ModelError(f"the model produced non-finite outputs for {nonfinite} of {n} samples of the {split.name} split{where}{cause}")
    if start != n:
        raise ModelError(f"the {split.name} split yielded {start} samples but has {n} labels")
    loss = loss_sum / max(n, 1)
    if task != "regression" and probs is None:
        raise ModelError(f"the {split.name} split yielded no samples")
    return Predictions(split=split.name, y_true=y_true, y_pred=y_pred, probs=probs, loss=loss, state=state)
