"""Training checks on real training runs (reportgen.training.train), planted defects and clean cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reportgen.numbers import number, percent
from reportgen.render import fmt

from check_helpers import breast_cancer, context, diabetes, memorisable_noisy_cancer, mlp, run, tabular_bundle, train_model


@pytest.fixture(scope="module")
def cancer():
    bundle, *_ = tabular_bundle(breast_cancer, "binary", val=0.2)
    return bundle


@pytest.fixture(scope="module")
def clean_run(cancer):
    model = mlp(30, 2, hidden=(16,))
    return train_model(model, cancer, epochs=12, lr=3e-3)


# ----------------------------------------------------------------------------- loss_curve


@pytest.fixture(scope="module")
def finished_run(cancer):
    """A run early stopping ended: its validation loss had stopped improving."""
    return train_model(mlp(30, 2, hidden=(16,)), cancer, epochs=100, lr=3e-3, early_stopping={"patience": 5})


def test_loss_curve_clean_run_passes(cancer, finished_run):
    assert finished_run.stopped_early
    result = run("loss_curve", context(cancer, training=finished_run))
    assert result.status == "pass", result.message
    assert "unfinished" not in result.evidence
    assert fmt.value_text(result) == number(result.value) and fmt.threshold_text(result) == "≤ 0.9"
    history = finished_run.history
    start = max(history[0]["train_loss"], finished_run.init_loss)
    assert result.value == pytest.approx(history[-1]["train_loss"] / start)
    assert result.value < 0.5


def _window_oracle(losses: list[float], k: int) -> tuple[float, float]:
    """Least-squares slope (numpy.polyfit) and relative drop over the last k epochs, written out independently."""
    window = np.asarray(losses[-k - 1:], dtype=float)
    slope = float(np.polyfit(np.arange(len(window)), window, 1)[0])
    return slope, float((window[0] - window.min()) / window[0])


@pytest.mark.parametrize("val", [0.2, 0.0], ids=["validation loss", "training loss without val"])
def test_loss_curve_flags_training_cut_short_on_diabetes(val):
    """Planted: 30 epochs of a regression MLP on load_diabetes whose loss is still falling fast at the end."""
    bundle, *_ = tabular_bundle(diabetes, "regression", val=val)
    training = train_model(mlp(10, 1, hidden=(16,)), bundle, epochs=30, lr=3e-2)
    result = run("loss_curve", context(bundle, training=training))
    key = "val_loss" if val else "train_loss"
    losses = [h[key] for h in training.history]
    assert int(np.argmin(losses)) + 1 >= len(losses) - 1  # the best epoch is at the end
    assert result.status == "warn", result.message
    unfinished = result.evidence["unfinished"]
    slope, drop = _window_oracle(losses, 5)
    assert unfinished["monitored"] == ("validation" if val else "training") and unfinished["window_epochs"] == 5
    assert unfinished["slope_per_epoch"] == pytest.approx(slope, rel=1e-9) and slope < 0
    assert unfinished["relative_drop"] == pytest.approx(drop, rel=1e-9) and drop >= 0.01
    assert result.message.startswith("Training may be unfinished: the " + unfinished["monitored"] + " loss was lowest at epoch")
    assert f" and fell {percent(drop)} over the last 5 epochs" in result.message  # 43.3%, not 43.286%
    assert ("per epoch); raise training.epochs, or set training.early_stopping to stop when the loss stops "
            "improving; the training loss went") in result.message
    # page 1's Value and Required cells show what warned (the fall against unfinished_min_drop), not only the ratio
    assert fmt.value_text(result) == f"{number(result.value)}; loss fall {percent(drop)}"
    assert fmt.threshold_text(result) == "≤ 0.9; loss fall < 1%"
    assert result.value <= 0.9  # the ratio alone meets its requirement: it is not what warned
    from text_scan import all_keys, shown_evidence_problems, unlabelled_keys
    from reportgen.render import view
    assert not unlabelled_keys(result.evidence, set(), set())  # the evidence table labels what warned
    assert not shown_evidence_problems(view.evidence_view(result), all_keys(result.evidence), set())
    # a wider window or a larger drop requirement is a setting: a 50% drop over 5 epochs is not reached here
    assert "unfinished" not in run("loss_curve", context(bundle, training=training),
                                   {"unfinished_min_drop": 0.5}).evidence


def test_loss_curve_unfinished_under_early_stopping_that_did_not_trigger_advises_more_epochs_only():
    """Planted: the same cut-short diabetes run with early stopping configured; the loss kept falling, so it never
    stopped training, and "use early stopping" would be advice the config already follows."""
    bundle, *_ = tabular_bundle(diabetes, "regression", val=0.2)
    training = train_model(mlp(10, 1, hidden=(16,)), bundle, epochs=30, lr=3e-2, early_stopping={"patience": 7})
    assert not training.stopped_early and training.early_stopping_patience == 7 and training.epochs_run == 30
    result = run("loss_curve", context(bundle, training=training))
    assert result.status == "warn" and "unfinished" in result.evidence, result.message
    assert ("per epoch); raise training.epochs: early stopping (patience 7) had not stopped training in its 30 "
            "epochs; the training loss went") in result.message
    assert "use early stopping" not in result.message and "set training.early_stopping" not in result.message


def test_loss_curve_does_not_call_an_early_stopped_diabetes_run_unfinished():
    bundle, *_ = tabular_bundle(diabetes, "regression", val=0.2)
    training = train_model(mlp(10, 1, hidden=(16,)), bundle, epochs=400, lr=3e-2, early_stopping={"patience": 5})
    assert training.stopped_early
    result = run("loss_curve", context(bundle, training=training))
    assert result.status == "pass", result.message
    assert "unfinished" not in result.evidence


def test_loss_curve_divergence_to_nan_fails(cancer):
    model = mlp(30, 2, hidden=(32,))
    training = train_model(model, cancer, epochs=10, lr=1e6, optimizer="sgd", momentum=0.9)
    assert training.first_nonfinite_loss is not None
    result = run("loss_curve", context(cancer, training=training))
    assert result.status == "fail"
    assert result.value is None
    assert "diverged" in result.message and f"epoch {training.first_nonfinite_loss['epoch']}" in result.message


def test_loss_curve_not_learning_fails(cancer):
    model = mlp(30, 2, hidden=(32,))
    training = train_model(model, cancer, epochs=4, lr=1e-7, optimizer="sgd")
    result = run("loss_curve", context(cancer, training=training))
    assert result.status == "fail"
    assert "not learning" in result.message
    assert result.value > 0.99


def test_loss_curve_names_the_overfitting_onset():
    bundle = memorisable_noisy_cancer()
    training = train_model(mlp(30, 2, hidden=(256, 256)), bundle, epochs=60, lr=3e-3, batch_size=80)
    result = run("loss_curve", context(bundle, training=training))
    val = [h["val_loss"] for h in training.history]
    best_epoch = int(np.argmin(val)) + 1
    assert result.status == "warn", result.message
    assert result.evidence["best_val_epoch"] == best_epoch
    assert f"Overfitting from epoch {best_epoch}" in result.message
    # with early stopping the best epoch's weights are kept: no concern
    stopped = train_model(mlp(30, 2, hidden=(256, 256)), bundle, epochs=60, lr=3e-3, batch_size=80,
                          early_stopping={"patience": 5})
    assert stopped.stopped_early
    assert run("loss_curve", context(bundle, training=stopped)).status == "pass"


# ----------------------------------------------------------------------------- init_loss


def test_init_loss_clean_and_confidently_wrong(cancer, clean_run):
    ok = run("init_loss", context(cancer, training=clean_run))
    assert ok.status == "pass"
    assert ok.value == pytest.approx(clean_run.init_loss / math.log(2))
    model = mlp(30, 2, hidden=(32,))
    with torch.no_grad():
        model[-1].weight.mul_(60.0)  # a mis-scaled head: huge logits before any training
    training = train_model(model, cancer, epochs=1, lr=1e-3)
    bad = run("init_loss", context(cancer, training=training))
    assert bad.status == "warn"  # default severity warning
    assert bad.value == pytest.approx(training.init_loss / math.log(2))
    assert bad.value > 3.0 and "confidently wrong" in bad.message


def test_init_loss_skips_regression():
    from check_helpers import diabetes

    bundle, *_ = tabular_bundle(diabetes, "regression")
    training = train_model(mlp(10, 1, hidden=(8,)), bundle, epochs=1, lr=1e-3)
    assert run("init_loss", context(bundle, training=training)).status == "skip"


# ----------------------------------------------------------------------------- gradient_flow


class SkipsALayer(nn.Module):
    """A registered layer that forward never calls, and a sub-module list the module never registers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(30, 16)
        self.refine = nn.Linear(16, 16)  # built, registered, never used
        self.head = nn.Linear(16, 2)
        self.hidden_blocks = [nn.Linear(16, 16)]  # a plain list: invisible to parameters() and the probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_gradient_flow_names_a_skipped_layer(cancer, clean_run):
    model = SkipsALayer()
    training = train_model(model, cancer, epochs=1, lr=1e-3)
    result = run("gradient_flow", context(cancer, training=training))
    assert result.status == "fail"
    assert result.evidence["no_gradient"] == ["refine.weight", "refine.bias"]
    assert "refine.weight" in result.message and "refine.bias" in result.message
    assert result.evidence["parameters_without_gradient"] == 16 * 16 + 16
    assert result.evidence["parameters"] == sum(p.numel() for p in model.parameters())  # the list's 272 are not there
    assert result.value == 0.0
    ok = run("gradient_flow", context(cancer, training=clean_run))
    assert ok.status == "pass" and ok.evidence["no_gradient"] == []


class DeepSigmoid(nn.Module):
    """20 sigmoid layers, optionally with residual shortcuts around each."""

    def __init__(self, residual: bool, width: int = 32, depth: int = 20) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(30, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, 2)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for layer in self.layers:
            h = h + torch.sigmoid(layer(h)) if self.residual else torch.sigmoid(layer(h))
        return self.out(h)


def test_gradient_flow_vanishing_only_without_shortcuts(cancer):
    plain = train_model(DeepSigmoid(residual=False), cancer, epochs=1, lr=1e-3)
    result = run("gradient_flow", context(cancer, training=plain))
    assert result.status == "warn", result.message  # a concern: warn even at severity error
    assert "inp.weight" in result.evidence["vanishing"]
    assert result.value < 1e-5
    shortcut = train_model(DeepSigmoid(residual=True), cancer, epochs=1, lr=1e-3)
    ok = run("gradient_flow", context(cancer, training=shortcut))
    assert ok.status == "pass", ok.message
    assert ok.evidence["vanishing"] == []
