"""Metric metadata, defined once: label, direction, tasks, whether it is a headline or per-epoch metric.

Renderers take labels and headline lists from here; the release comparison and the overfitting check
take directions from here; the progress display takes per-epoch keys from here. The values themselves
are computed in ``reportgen.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
CLASSIFICATION = frozenset({BINARY, MULTICLASS})
ALL_TASKS = frozenset({BINARY, MULTICLASS, REGRESSION})


@dataclass(frozen=True)
class MetricSpec:
    """What one key of a split's metric dictionary means.

    ``higher_is_better`` is None for descriptive values (sample count, target spread) that have no
    better direction. ``headline`` lists the tasks whose report shows it on page 1, in registry order.
    ``per_epoch`` marks the metric tracked in the training history (``train_<key>``, ``val_<key>``).
    ``proportion`` marks values in [0, 1] that get a Wilson interval.
    """

    key: str
    label: str
    higher_is_better: bool | None
    tasks: frozenset[str]
    headline: frozenset[str] = frozenset()
    per_epoch: frozenset[str] = frozenset()
    proportion: bool = False
    description: str = ""


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n", "Samples", None, ALL_TASKS),
    MetricSpec("loss", "Loss", False, ALL_TASKS, description="The training loss function on this split."),
    MetricSpec("accuracy", "Accuracy", True, CLASSIFICATION, headline=CLASSIFICATION, proportion=True),
    MetricSpec("balanced_accuracy", "Balanced accuracy", True, CLASSIFICATION, headline=CLASSIFICATION,
               per_epoch=CLASSIFICATION,
               description="The mean of the per-class recalls: 1/C for a model that always answers one class."),
    MetricSpec("precision", "Precision", True, CLASSIFICATION, headline=frozenset({BINARY}), proportion=True,
               description="Of the samples predicted positive, the share that are (binary: the positive class; multiclass: macro)."),
    MetricSpec("recall", "Recall", True, CLASSIFICATION, headline=frozenset({BINARY}), proportion=True,
               description="Of the samples of the positive class, the share found (binary; multiclass: macro)."),
    MetricSpec("f1", "F1", True, CLASSIFICATION, headline=frozenset({BINARY}),
               description="The harmonic mean of precision and recall: high only when both are."),
    MetricSpec("precision_macro", "Precision (macro)", True, CLASSIFICATION),
    MetricSpec("recall_macro", "Recall (macro)", True, CLASSIFICATION),
    MetricSpec("f1_macro", "F1 (macro)", True, CLASSIFICATION, headline=frozenset({MULTICLASS})),
    MetricSpec("f1_weighted", "F1 (weighted)", True, CLASSIFICATION),
    MetricSpec("mcc", "Matthews corr. (MCC)", True, CLASSIFICATION, headline=frozenset({MULTICLASS}),
               description="Matthews correlation coefficient: 0 for chance, 1 for perfect, robust to imbalance."),
    MetricSpec("roc_auc", "ROC AUC", True, CLASSIFICATION, headline=frozenset({BINARY}),
               description="The chance that a random positive sample scores above a random negative one: 0.5 is guessing, "
               "1 perfect; blind to the threshold and to how rare the positive class is."),
    MetricSpec("pr_auc", "PR AUC", True, CLASSIFICATION, headline=frozenset({BINARY}),
               description="Average precision (AP): the step-wise area under the precision-recall curve, as scikit-learn "
               "computes it (a trapezoidal PR AUC interpolates optimistically and is not used); chance level is the "
               "positive class's share, so it shows what ROC AUC hides on rare classes."),
    MetricSpec("log_loss", "Log loss", False, CLASSIFICATION, headline=frozenset({MULTICLASS})),
    MetricSpec("brier", "Brier score", False, CLASSIFICATION),
    MetricSpec("mse", "MSE", False, frozenset({REGRESSION})),
    MetricSpec("rmse", "RMSE", False, frozenset({REGRESSION}), headline=frozenset({REGRESSION}),
               per_epoch=frozenset({REGRESSION}),
               description="Root mean squared error, in the target's units; large errors weigh most."),
    MetricSpec("mae", "MAE", False, frozenset({REGRESSION}), headline=frozenset({REGRESSION})),
    MetricSpec("r2", "R²", True, frozenset({REGRESSION}), headline=frozenset({REGRESSION}),
               description="The share of the target's variance explained: 0 for always predicting the mean, 1 perfect."),
    MetricSpec("target_mean", "Target mean", None, frozenset({REGRESSION})),
    MetricSpec("target_std", "Target std", None, frozenset({REGRESSION}), headline=frozenset({REGRESSION})),
)

BY_KEY: dict[str, MetricSpec] = {m.key: m for m in METRICS}


def metric(key: str) -> MetricSpec | None:
    """The spec of a metric key, or None for keys that are not metrics (classes, per_class, ...)."""
    return BY_KEY.get(key)


def label(key: str) -> str:
    """A metric's human label; unknown keys read with spaces for underscores."""
    spec = BY_KEY.get(key)
    return spec.label if spec else key.replace("_", " ")


def headline(task: str) -> tuple[str, ...]:
    """The headline metric keys of a task, in display order."""
    return tuple(m.key for m in METRICS if task in m.headline)


def per_epoch(task: str) -> tuple[str, ...]:
    """The metric keys tracked per epoch for a task (besides the loss)."""
    return tuple(m.key for m in METRICS if task in m.per_epoch)


def comparable(task: str) -> tuple[str, ...]:
    """Metrics of a task with a direction, for comparisons between runs."""
    return tuple(m.key for m in METRICS if task in m.tasks and m.higher_is_better is not None)
