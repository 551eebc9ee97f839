"""Read-only inputs for checks: every numpy array a check can reach is flagged not writeable while checks run.

A check (built-in or plug-in) that writes into an input array then raises ``ValueError: assignment destination is
read-only``, which ``run_check`` turns into that check's ``error`` result, the same on any number of workers,
instead of silently changing what later checks see (on one process the row sample of a small split shares the
run's own arrays; on several workers it is a gathered copy). Flagging is free: no array is copied.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    import torch

    from reportgen.checks.shards import RowSample
    from reportgen.types import DataBundle, Predictions, SplitData


def freeze(array: Any) -> Any:
    """``array`` flagged read-only when it is a numpy array (in place; the same object is returned)."""
    if isinstance(array, np.ndarray) and array.flags.writeable:
        array.flags.writeable = False
    return array


def freeze_split(split: "SplitData") -> None:
    """Flag a split's features, labels and source rows read-only (those that are numpy arrays)."""
    for name in ("labels", "features", "source_rows"):
        if isinstance(getattr(type(split), name, None), property):
            continue  # made when read (the one-process row sample's copied-out features): flagged there
        freeze(getattr(split, name, None))


def freeze_predictions(pred: "Predictions | None") -> None:
    """Flag a split's predictions (y_true, y_pred, probs) read-only."""
    if pred is not None:
        for array in (pred.y_true, pred.y_pred, pred.probs):
            freeze(array)


def freeze_sample(sample: "RowSample") -> "RowSample":
    """Flag a row sample's arrays read-only (its split's, its predictions' and its row indices); returns it."""
    freeze_split(sample.split)
    freeze_predictions(sample.predictions)
    freeze(sample.rows)
    return sample


def freeze_inputs(data: "DataBundle", predictions: Mapping[str, "Predictions"],
                  samples: Mapping[str, "RowSample"] | None = None) -> None:
    """Flag every split's arrays, every prediction's arrays and every gathered row sample's arrays read-only."""
    for split in data.splits.values():
        freeze_split(split)
    for pred in predictions.values():
        freeze_predictions(pred)
    for sample in (samples or {}).values():
        freeze_sample(sample)


def shared_tensor(array: np.ndarray) -> "torch.Tensor":
    """A tensor sharing ``array``'s memory, also when ``array`` is flagged read-only.

    torch has no read-only tensors, so ``torch.from_numpy`` warns on a read-only array; the tensors built here
    (the TensorDataset of a row sample) share the inputs without a copy, as the split's own dataset already does.
    """
    import torch

    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(array)
