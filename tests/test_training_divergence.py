"""A diverging run still gets its whole report: exit 1, loss_curve names where, history nulls, finite weights only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from test_cli import run_cli

from conftest import cancer_config, read_results, user_model, write_config


def _run(tmp_path: Path, document: dict) -> tuple[int, str, dict]:
    path = write_config(tmp_path, document)
    code, _, err = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--format", "json,html,md,junit")
    assert (tmp_path / "out" / "report.html").is_file(), err
    return code, err, read_results(tmp_path / "out")


def _assert_diverged_report(code: int, err: str, results: dict) -> None:
    assert code == 1, err
    training = results["training"]
    where = training["first_nonfinite_loss"]
    assert where is not None and where["epoch"] >= 1 and where["step"] >= 1
    loss_curve = next(c for c in results["checks"] if c["id"] == "loss_curve")
    assert loss_curve["status"] == "fail"
    assert f"epoch {where['epoch']}, step {where['step']}" in loss_curve["message"]
    assert "Evaluated:" in loss_curve["message"] and "diverged" in training["evaluated_weights"]
    for record in training["history"]:  # JSON has no NaN: every undefined value is null
        for value in record.values():
            assert value is None or math.isfinite(value)
    for split_metrics in results["metrics"].values():  # the evaluated weights were finite
        assert split_metrics["loss"] is not None and math.isfinite(split_metrics["loss"])


@pytest.mark.parametrize("batch_size", [1000, 64])
def test_float32_mlp_with_sgd_at_lr_1e30_diverges_into_a_failing_report(tmp_path: Path, cancer_csv: Path, batch_size: int):
    """Breast cancer CSV, mlp [16], SGD at lr 1e30: the weights blow up within two steps.

    batch_size 1000 is one batch per epoch (the NaN appears after the epoch's last step, so only the
    end-of-epoch weight check sees it); 64 is several batches per epoch (the next step's loss is NaN).
    """
    document = cancer_config(cancer_csv, training={"epochs": 4, "optimizer": "sgd", "lr": 1e30})
    document["data"]["batch_size"] = batch_size
    code, err, results = _run(tmp_path, document)
    _assert_diverged_report(code, err, results)
    assert results["training"]["first_nonfinite_loss"]["epoch"] <= 2


@pytest.mark.parametrize("batch_size", [1000, 64])
@pytest.mark.parametrize("monitor", ["train_loss", "val_loss"])
def test_float16_model_with_adam_never_restores_nan_weights(tmp_path: Path, cancer_csv: Path, batch_size: int, monitor: str):
    """A python model held in float16 (inputs cast to half in forward) trained with Adam at its default lr 0.001.

    Adam's eps (1e-8) underflows to 0 in half precision, so the first update divides by zero and the weights
    become NaN after step 1 while that step's loss was finite; with one batch per epoch and early stopping on
    train_loss, epoch 1 has a finite loss, yet its (NaN) weights must not be kept as best.
    """
    model = user_model(
        tmp_path, "HalfNet", "self.net = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).half()",
        "self.net(x.half()).float()",
    )
    document = cancer_config(cancer_csv, model=model, training={
        "epochs": 5, "optimizer": "adam", "lr": 0.001, "early_stopping": {"patience": 5, "monitor": monitor},
    })
    document["data"]["batch_size"] = batch_size
    code, err, results = _run(tmp_path, document)
    _assert_diverged_report(code, err, results)
    json.dumps(results, allow_nan=False)
