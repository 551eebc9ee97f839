"""Data passed between pipeline stages: splits, predictions, training records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:  # torch and pandas are only needed to run a model, not to read or render a report
    import pandas as pd
    from torch.utils.data import Dataset

SPLIT_ORDER = ("train", "val", "test")


@dataclass(frozen=True)
class SplitData:
    """One split after preprocessing: a dataset of (x, y) and its labels as an array."""

    name: str
    dataset: "Dataset"
    labels: np.ndarray
    """Class indices (int64) for classification, targets (float32) for regression."""
    features: np.ndarray | None = None
    """(n, d) float32 model inputs for tabular data; None for other inputs (images)."""
    source_rows: np.ndarray | None = None
    """Row number of each sample in its source file (0-based, header excluded), for evidence."""
    source: str = ""
    attributes: "pd.DataFrame | None" = None
    """Per-sample attributes in the values a person recognises (one row per sample, in split order):
    for tables, every column of the file but the target, before encoding and scaling (ignored columns
    too, so a sensitive attribute need not be a model input). Used by slice, fairness and drift checks."""
    offset: int = 0
    """Index, within the whole split, of this SplitData's first row: 0 unless it is one worker's shard."""
    total: int | None = None
    """Rows of the whole split over every worker when this SplitData is one worker's shard; None when it is
    the whole split."""

    @property
    def n(self) -> int:
        """Number of samples held here (a worker's shard holds ``n`` of the split's ``global_n``)."""
        return int(len(self.labels))

    @property
    def global_n(self) -> int:
        """Number of samples of the whole split, over every worker."""
        return self.n if self.total is None else int(self.total)

    @property
    def is_shard(self) -> bool:
        """True when this holds only some rows of its split (rows ``offset`` to ``offset + n - 1``)."""
        return self.total is not None and (self.offset != 0 or self.n != self.total)


@dataclass(frozen=True)
class DataBundle:
    """Every split, with the facts the model, checks and report need."""

    task: str
    splits: Mapping[str, SplitData]
    classes: tuple[str, ...]
    positive_index: int | None
    feature_names: tuple[str, ...] | None
    input_shape: tuple[int, ...]
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    """Source files with their sha256 and the preprocessing fitted on train."""
    model_columns: tuple[str, ...] | None = None
    """The attribute columns the model reads (tables: data.features, else every column but the target and
    data.ignore); None when the data kind does not say. Slice checks default to these."""
    class_totals: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Samples per class (in ``classes`` order) of each whole split, when the splits hold one worker's shard
    (``SplitData.is_shard``); empty when every split is held whole (the counts are then the labels')."""
    probe_inputs: Any = None
    """The first (up to 2) train inputs as a tensor when the splits are shards (a worker's train shard may be
    empty), for probing the model's outputs; None when the train split is held whole."""

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.classes)

    def class_counts(self, split: str) -> dict[str, int]:
        """Samples per class name in the whole ``split``, over every worker (empty for regression)."""
        if self.task == "regression":
            return {}
        if split in self.class_totals:
            return dict(zip(self.classes, self.class_totals[split]))
        counts = np.bincount(self.splits[split].labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.classes, counts)}


class ReadsBundle:
    """Mixin for contexts that hold a ``data: DataBundle``: its class facts, defined once."""

    data: DataBundle

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in index order."""
        return self.data.classes

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class (binary tasks)."""
        return self.data.positive_index


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on one split, gathered batch by batch."""

    split: str
    y_true: np.ndarray
    y_pred: np.ndarray
    """Predicted class indices (int64) or predicted values (float32)."""
    probs: np.ndarray | None
    """(n, C) float32 class probabilities for classification; None for regression."""
    loss: float
    state: Any = field(default=None, compare=False, repr=False)
    """The additive metric state (reportgen.metrics ClassificationState or RegressionState) fed while the
    batches were evaluated; None when the predictions were built otherwise (the metrics then replay them)."""
    score_curves: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)
    """Memo of reportgen.metrics.score_curve by class index: each class's scores are sorted once per split,
    and metrics, plot curves, threshold sweeps and checks share that sort."""

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(len(self.y_true))


@dataclass(frozen=True)
class LayerGradient:
    """Gradient facts of one parameter after the first backward pass."""

    name: str
    shape: tuple[int, ...]
    received: bool
    """False when the parameter got no gradient at all (grad is None)."""
    norm: float | None
    finite: bool


@dataclass(frozen=True)
class TrainingResult:
    """What happened while training: per-epoch history and first-step diagnostics."""

    epochs_run: int
    best_epoch: int
    stopped_early: bool
    loss_name: str
    init_loss: float
    """Loss on the first batch before any update."""
    expected_init_loss: float | None
    """The loss a neutral initialisation would give (label entropy); None for regression."""
    history: tuple[Mapping[str, float | None], ...]
    """Per epoch: epoch, train_loss, val_loss and train_/val_ metrics."""
    gradients: tuple[LayerGradient, ...]
    first_nonfinite_loss: Mapping[str, int] | None = None
    """Where training diverged, if it did: {"epoch", "step" (1-based within the epoch), "global_step"} of the
    first step whose loss was non-finite or after which the weights were."""
    evaluated_weights: str = ""
    """Which weights the model was left with and evaluated on, in words (e.g. "epoch 4 (the last epoch's weights)")."""
    data_parallel: str | None = None
    """How training was spread over several workers, in words (reportgen.data_parallel.describe); None for one process."""
    early_stopping_patience: int | None = None
    """training.early_stopping.patience when early stopping was configured (whether or not it stopped training:
    ``stopped_early``); None without early stopping."""
