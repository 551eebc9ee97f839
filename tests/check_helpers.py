"""Builders for check tests: real data sets, real models, real contexts (no mocks)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from reportgen import metrics as M
from reportgen.checks.base import CheckResult, registry, run_check
from reportgen.checks.context import CheckContext
from reportgen.config import TrainingConfig
from reportgen.training import train
from reportgen.types import DataBundle, Predictions, SplitData, TrainingResult

# ----------------------------------------------------------------------------- raw data


def breast_cancer() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """(X, y, classes, feature names); class 1 is malignant (the positive class)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    y = (bunch.target == 0).astype(np.int64)  # sklearn codes malignant as 0
    return bunch.data.astype(np.float64), y, ("benign", "malignant"), tuple(str(n) for n in bunch.feature_names)


def wine() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), tuple(str(c) for c in bunch.target_names), tuple(bunch.feature_names)


def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Pixels scaled to [0, 1] (no standardisation: the images stay images)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float64), bunch.target.astype(np.int64), tuple(str(i) for i in range(10)), tuple(f"px{i}" for i in range(64))


def diabetes() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Regression: (X, target, (), feature names)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return bunch.data.astype(np.float64), bunch.target.astype(np.float64), (), tuple(bunch.feature_names)


def default_credit() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """ISLR Default (the copy the sample ships): balance, income and student (0/1) -> default (Yes = positive, ~3.3%)."""
    import pandas as pd

    frame = pd.read_csv(Path(__file__).resolve().parents[1] / "sample_configs" / "data" / "default.csv")
    X = np.column_stack([frame["balance"].to_numpy(np.float64), frame["income"].to_numpy(np.float64),
                         (frame["student"] == "Yes").to_numpy(np.float64)])
    y = (frame["default"] == "Yes").to_numpy().astype(np.int64)
    return X, y, ("No", "Yes"), ("balance", "income", "student")


# ----------------------------------------------------------------------------- bundles


def split_rows(y: np.ndarray | None, n: int, test: float = 0.25, val: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified (when y is given) row indices for train, (val) and test."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(n)
    rest, test_rows = train_test_split(rows, test_size=test, random_state=seed, stratify=None if y is None else y)
    out = {"test": np.sort(test_rows)}
    if val:
        train_rows, val_rows = train_test_split(rest, test_size=val / (1 - test), random_state=seed,
                                                stratify=None if y is None else y[rest])
        out["val"] = np.sort(val_rows)
    else:
        train_rows = rest
    out["train"] = np.sort(train_rows)
    return out


def standardiser(train_x: np.ndarray):
    """Fit mean/std on train (float64, like reportgen.data) and return a transform to float32."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return lambda x: ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)


def make_bundle(
    task: str,
    parts: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    classes: Sequence[str],
    feature_names: Sequence[str] | None,
    positive_index: int | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> DataBundle:
    """A DataBundle from already-preprocessed (X float32, y, source_rows) per split.

    With ``image_shape`` the inputs are stored as image tensors in a TensorDataset and the split has
    no ``features`` table, like a bundle from an image data set.
    """
    splits = {}
    for name, (x, y, rows) in parts.items():
        x = np.asarray(x, dtype=np.float32)
        y_t = torch.as_tensor(y, dtype=torch.float32 if task == "regression" else torch.int64)
        if image_shape is not None:
            dataset = TensorDataset(torch.from_numpy(x.reshape(len(x), *image_shape).copy()), y_t)
            features = None
        else:
            dataset = TensorDataset(torch.from_numpy(x.copy()), y_t)
            features = x
        labels = np.asarray(y, dtype=np.float32 if task == "regression" else np.int64)
        splits[name] = SplitData(name=name, dataset=dataset, labels=labels, features=features,
                                 source_rows=None if rows is None else np.asarray(rows, dtype=np.int64), source="test")
    input_shape = image_shape if image_shape is not None else (next(iter(parts.values()))[0].shape[1],)
    if task == "binary" and positive_index is None:
        positive_index = 1
    return DataBundle(task=task, splits=splits, classes=tuple(classes), positive_index=positive_index,
                      feature_names=None if image_shape is not None or feature_names is None else tuple(feature_names),
                      input_shape=tuple(input_shape))


def tabular_bundle(loader, task: str, test: float = 0.25, val: float = 0.0, seed: int = 0, standardise: bool = True):
    """Load a data set, split it (stratified for classification), standardise on train."""
    X, y, classes, names = loader()
    rows = split_rows(None if task == "regression" else y, len(y), test=test, val=val, seed=seed)
    transform = standardiser(X[rows["train"]]) if standardise else (lambda x: np.asarray(x, dtype=np.float32))
    parts = {name: (transform(X[r]), y[r], r) for name, r in rows.items()}
    return make_bundle(task, parts, classes, names), X, y, rows, transform


# ----------------------------------------------------------------------------- predictions and contexts


def predictions_from_probs(split: str, y: np.ndarray, probs: np.ndarray, threshold: float = 0.5,
                           positive_index: int | None = None) -> Predictions:
    """Predictions from class probabilities; binary decisions use ``threshold`` on the positive class."""
    probs = np.asarray(probs, dtype=np.float32)
    if positive_index is not None:
        positive = probs[:, positive_index] >= threshold
        y_pred = np.where(positive, positive_index, 1 - positive_index)
    else:
        y_pred = probs.argmax(axis=1)
    clipped = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-7, 1.0)
    return Predictions(split=split, y_true=np.asarray(y, dtype=np.int64), y_pred=y_pred.astype(np.int64),
                       probs=probs, loss=float(-np.log(clipped).mean()))


def sklearn_predictions(bundle: DataBundle, model, threshold: float = 0.5) -> dict[str, Predictions]:
    """Predictions of a fitted sklearn classifier (or regressor) on every split of a tabular bundle."""
    out = {}
    for name, split in bundle.splits.items():
        if bundle.task == "regression":
            pred = model.predict(split.features).astype(np.float32)
            out[name] = Predictions(split=name, y_true=split.labels, y_pred=pred, probs=None,
                                    loss=float(np.mean((pred - split.labels) ** 2)))
        else:
            out[name] = predictions_from_probs(name, split.labels, model.predict_proba(split.features), threshold,
                                               bundle.positive_index)
    return out


@torch.no_grad()
def torch_predictions(bundle: DataBundle, model: nn.Module, threshold: float = 0.5) -> dict[str, Predictions]:
    """Predictions of a torch model on every split: softmax outputs, or one output for regression."""
    model.eval()
    out = {}
    for name, split in bundle.splits.items():
        x = split.dataset.tensors[0]
        if bundle.task == "regression":
            pred = model(x)[:, 0].numpy().astype(np.float32)
            out[name] = Predictions(split=name, y_true=split.labels, y_pred=pred, probs=None,
                                    loss=float(np.mean((pred - split.labels) ** 2)))
            continue
        probs = torch.softmax(model(x), dim=1).numpy()
        out[name] = predictions_from_probs(name, split.labels, probs, threshold, bundle.positive_index)
    return out


def context(bundle: DataBundle, predictions: Mapping[str, Predictions] | None = None,
            training: TrainingResult | None = None, threshold: float = 0.5, batch_size: int = 512) -> CheckContext:
    """A CheckContext with metric dictionaries computed by reportgen.metrics, as the pipeline does."""
    predictions = dict(predictions or {})
    metric_dicts: dict[str, Any] = {}
    for name, pred in predictions.items():
        metric_dicts[name] = (M.regression_metrics(pred) if bundle.task == "regression"
                              else M.classification_metrics(pred, bundle.classes, bundle.positive_index))
    return CheckContext(task=bundle.task, data=bundle, predictions=predictions, metrics=metric_dicts,
                        training=training, threshold=threshold, batch_size=batch_size)


def run(check_id: str, ctx: CheckContext, overrides: Mapping[str, Any] | None = None) -> CheckResult:
    """Run one registered check the way run_checks does."""
    check = registry.get(check_id)
    assert check is not None, check_id
    result = run_check(check, ctx, overrides)
    assert result is not None
    return result


# ----------------------------------------------------------------------------- training


def train_model(model: nn.Module, bundle: DataBundle, seed: int = 0, **config: Any) -> TrainingResult:
    """Train with reportgen.training.train on CPU, softmax outputs for classification.

    Runs on one torch thread: these models are tiny, and on a busy 2-core machine two spinning
    threads make each step ~50 times slower.
    """
    torch.manual_seed(seed)
    batch_size = config.pop("batch_size", 64)
    output_kind = "regression" if bundle.task == "regression" else "softmax"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(model, bundle, TrainingConfig(**config), task=bundle.task, device=torch.device("cpu"),
                     generator=torch.Generator().manual_seed(seed), output_kind=output_kind, batch_size=batch_size)
    finally:
        torch.set_num_threads(threads)


def mlp(inputs: int, outputs: int, hidden: Sequence[int] = (32,), seed: int = 0) -> nn.Sequential:
    """A plain ReLU MLP with a fixed initialisation."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def entropy_nats(labels: np.ndarray) -> float:
    counts = np.bincount(labels)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum()) if p.size else math.nan


def memorisable_noisy_cancer() -> DataBundle:
    """80 breast-cancer training rows with 24 labels flipped, plus clean val and test: easy to memorise."""
    X, y, classes, names = breast_cancer()
    rows = split_rows(y, len(y), test=0.3, val=0.2)
    small = rows["train"][:80]
    noisy = y.copy()
    flip = np.random.default_rng(0).choice(small, 24, replace=False)
    noisy[flip] = 1 - noisy[flip]
    transform = standardiser(X[small])
    parts = {"train": (transform(X[small]), noisy[small], small), "val": (transform(X[rows["val"]]), y[rows["val"]], rows["val"]),
             "test": (transform(X[rows["test"]]), y[rows["test"]], rows["test"])}
    return make_bundle("binary", parts, classes, names)

