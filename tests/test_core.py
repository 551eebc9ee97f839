"""The core's seams: one evaluation loop feeding the metric states, outputs' meaning in one module, no import cycle."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import confusion_matrix, mean_squared_error
from torch.utils.data import TensorDataset

from reportgen.evaluation import evaluate, model_outputs
from reportgen.metrics import classification_metrics, regression_metrics
from reportgen.outputs import make_loss
from reportgen.types import SplitData

from conftest import REPO


def _split(x: np.ndarray, y: np.ndarray) -> SplitData:
    xt = torch.from_numpy(x.astype(np.float32))
    return SplitData("test", TensorDataset(xt, torch.from_numpy(y)), y, x.astype(np.float32))


def test_evaluation_feeds_the_metric_state_as_batches_arrive():
    """Breast cancer, standardised, through a random linear model with one logit, in batches of 64."""
    data = load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    y = data.target.astype(np.int64)
    split = _split(x, y)
    torch.manual_seed(0)
    model = torch.nn.Linear(30, 1)
    pred = evaluate(model, split, task="binary", output_kind="sigmoid", positive_index=1, threshold=0.5,
                    loss_fn=make_loss("bce", "sigmoid", 1, None), batch_size=64, device=torch.device("cpu"), num_classes=2)
    assert np.array_equal(pred.state.confusion, confusion_matrix(y, pred.y_pred, labels=[0, 1]))
    assert pred.state.n == len(y)
    streamed = classification_metrics(pred, ("0", "1"), 1)
    replayed = classification_metrics(dataclasses.replace(pred, state=None), ("0", "1"), 1)
    assert streamed == replayed


def test_regression_state_matches_scikit_learn_and_the_loop_restores_the_model():
    """Diabetes-like random regression (200 x 5) through a linear model in batches of 32, model left in train mode."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x @ rng.normal(size=5)).astype(np.float32)
    split = _split(x, y)
    model = torch.nn.Linear(5, 1)
    model.train()
    pred = evaluate(model, split, task="regression", output_kind="regression", positive_index=None, threshold=0.5,
                    loss_fn=make_loss("mse", "regression", None, None), batch_size=32, device=torch.device("cpu"))
    assert model.training and torch.is_grad_enabled()
    metrics = regression_metrics(pred)
    assert abs(metrics["mse"] - mean_squared_error(y, pred.y_pred)) < 1e-6 * max(1.0, metrics["mse"])
    batches = list(model_outputs(model, split, 64, torch.device("cpu")))
    assert [o.shape for o, _ in batches] == [(64, 1), (64, 1), (64, 1), (8, 1)]
    assert not batches[0][0].requires_grad and torch.is_grad_enabled()


def test_config_and_checks_do_not_import_training():
    """Validating a config loads the check registry; that must not pull in training, torch or the data loader."""
    probe = ("import sys; from reportgen.config import validate; from reportgen.checks import registry; registry.ids(); "
             "print(sorted(m for m in ('reportgen.training', 'reportgen.data', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_early_stopping_keeps_the_best_epochs_weights():
    """Monitored val_loss 3.0, 2.0, 2.5, 2.6 with patience 2: stop after epoch 4 and restore epoch 2's weights."""
    from reportgen.training import EarlyStopping

    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(model, "val_loss", patience=2)
    stops = []
    for epoch, value in enumerate([3.0, 2.0, 2.5, 2.6], start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stops.append(stopper.update(epoch, {"epoch": epoch, "val_loss": value}, model))
    assert stops == [False, False, False, True] and stopper.best_epoch == 2
    stopper.restore(model)
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))
    never = EarlyStopping(model, "val_loss", patience=None)
    assert not any(never.update(e, {"val_loss": 1.0}, model) for e in range(1, 20))


def test_a_batch_scores_the_same_wherever_its_rows_sit_in_memory():
    """A worker holds its shard's rows in an array of their own, one process the whole split: the same batch then
    starts at other addresses, and CPU kernels round by alignment (1203 inputs: batches of 3486 rows, 16 MiB, are
    not a multiple of 32 bytes). Scores must be bit for bit the same, as world-size invariance promises."""
    rng = np.random.default_rng(0)
    batch, width = 3486, 1203
    x = rng.standard_normal((3 * batch, width)).astype(np.float32)
    y = rng.integers(0, 2, 3 * batch)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(width, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    whole = [o for o, _ in model_outputs(model, _split(x, y), batch, torch.device("cpu"))]
    for k in range(3):  # the rows of batch k alone in their own array, as a worker holding them has them
        alone = next(model_outputs(model, _split(x[k * batch : (k + 1) * batch].copy(), y[k * batch : (k + 1) * batch]),
                                   batch, torch.device("cpu")))[0]
        assert torch.equal(alone, whole[k]), k
