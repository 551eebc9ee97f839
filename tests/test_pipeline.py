"""The pipeline end to end on real data: every data and model kind, training or not, and the results.json contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reportgen.config import load_config
from reportgen.errors import ModelError
from reportgen.pipeline import execute, run

from conftest import SAMPLES, cancer_config, read_results, user_model, write_config

CHECK_KEYS = {"id", "title", "family", "status", "severity", "value", "threshold", "higher_is_better", "message", "evidence"}
CLASSIFICATION_KEYS = {
    "n", "loss", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro",
    "f1_macro", "f1_weighted", "mcc", "roc_auc", "pr_auc", "log_loss", "classes", "confusion_matrix", "per_class",
}


def run_to(tmp_path: Path, document: dict, formats=("json",)) -> dict:
    """Run a config document and return its results.json."""
    path = write_config(tmp_path, document)
    outcome = run(load_config(path), out_dir=tmp_path / "out", formats=list(formats))
    assert (tmp_path / "out" / "results.json").is_file()
    assert outcome.report.document()["status"] == read_results(tmp_path / "out")["status"]
    return read_results(tmp_path / "out")


def test_results_json_contract_for_a_trained_binary_model(tmp_path: Path, cancer_csv: Path):
    results = run_to(tmp_path, cancer_config(cancer_csv))
    assert results["schema_version"] == 1 and results["name"] == "cancer" and results["task"] == "binary"
    assert results["status"] in ("pass", "fail")
    env = results["environment"]
    assert {"reportgen_version", "torch_version", "python", "device", "seed", "config_sha256", "created_at"} <= set(env)
    assert env["device"] == "cpu" and env["seed"] == 0 and env["created_at"].endswith("Z")
    data = results["data"]
    assert data["classes"] == ["benign", "malignant"] and data["positive_class"] == "malignant"
    assert len(data["features"]) == 30
    assert sum(s["n"] for s in data["splits"].values()) == 569
    assert set(data["splits"]["train"]["class_counts"]) == {"benign", "malignant"}
    training = results["training"]
    assert training["epochs_run"] == 15 and 1 <= training["best_epoch"] <= 15 and training["stopped_early"] is False
    assert training["init_loss"] == pytest.approx(np.log(2), rel=0.5)
    first = training["history"][0]
    assert {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(first)
    for split in ("train", "val", "test"):
        metrics = results["metrics"][split]
        assert CLASSIFICATION_KEYS <= set(metrics)
        assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"] == data["splits"][split]["n"]
    test = results["metrics"]["test"]
    assert test["accuracy"] > 0.9 and test["roc_auc"] > 0.95
    assert test["recall"] == test["per_class"]["malignant"]["recall"]
    assert {c["id"] for c in results["checks"]} >= {"baseline_comparison", "minority_recall", "train_test_overlap", "gradient_flow"}
    for check in results["checks"]:
        assert set(check) == CHECK_KEYS | ({"skip_kind"} if check["status"] == "skip" else set())  # docs/gate.md
        assert check.get("skip_kind") in ((None,) if check["status"] != "skip" else ("not_applicable", "not_measured"))
        assert check["status"] in ("pass", "warn", "fail", "error", "skip")
    assert results["status"] == "pass", [c for c in results["checks"] if c["status"] in ("fail", "error")]


def test_checkpoint_round_trip_gives_identical_metrics(tmp_path: Path, cancer_csv: Path):
    trained = run_to(tmp_path, cancer_config(cancer_csv))
    model_file = tmp_path / "out" / "model.pt"
    state = torch.load(model_file, weights_only=True)
    assert set(state) == {"1.weight", "1.bias", "3.weight", "3.bias"}
    document = cancer_config(cancer_csv, model={"kind": "mlp", "hidden": [16], "checkpoint": str(model_file)})
    del document["training"]
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    evaluated = run_to(again_dir, {**document, "data": {**document["data"], "path": str(cancer_csv)}})
    assert evaluated["training"] is None
    for split in ("train", "val", "test"):
        assert evaluated["metrics"][split] == trained["metrics"][split]


def test_same_seed_gives_identical_results(tmp_path: Path, cancer_csv: Path):
    path = write_config(tmp_path, cancer_config(cancer_csv))
    first, _ = execute(load_config(path))
    second, _ = execute(load_config(path))
    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if k != "timing"} | {
            "environment": {k: v for k, v in d["environment"].items() if k != "created_at"}}

    assert json.dumps(strip(first.document()), sort_keys=True) == json.dumps(strip(second.document()), sort_keys=True)
    third, _ = execute(load_config(path, ["seed=1"]))
    assert third.document()["metrics"] != first.document()["metrics"]


def test_python_data_and_model_kinds_on_digits_images(tmp_path: Path):
    document = {
        "name": "digits", "task": "multiclass", "seed": 0,
        "data": {"kind": "python", "factory": str(SAMPLES / "digits_data.py") + ":make_splits", "kwargs": {"seed": 0}, "batch_size": 128},
        "model": {"kind": "python", "target": str(SAMPLES / "digits_model.py") + ":DigitsCNN", "kwargs": {"num_classes": 10}},
        "training": {"epochs": 3, "lr": 0.003},
    }
    results = run_to(tmp_path, document)
    assert results["data"]["input_shape"] == [1, 8, 8] and results["data"]["features"] is None
    assert results["data"]["classes"] == [str(i) for i in range(10)]
    assert results["metrics"]["test"]["accuracy"] > 0.8
    assert len(results["metrics"]["test"]["confusion_matrix"]) == 10


def test_npz_data_with_linear_and_torchscript_models_evaluate_only(tmp_path: Path):
    from sklearn.datasets import load_wine

    wine = load_wine()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(wine.target))
    x = ((wine.data - wine.data.mean(0)) / wine.data.std(0)).astype(np.float32)[order]
    y = wine.target[order]
    np.savez(tmp_path / "wine.npz", X_train=x[:120], y_train=y[:120], X_test=x[120:], y_test=y[120:])
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(13, 3))
    torch.save(linear.state_dict(), tmp_path / "linear.pt")
    torch.jit.script(linear).save(str(tmp_path / "linear_script.pt"))
    base = {"name": "wine", "task": "multiclass", "data": {"kind": "npz", "path": "wine.npz", "classes": [str(n) for n in wine.target_names]}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    as_linear = run_to(tmp_path / "a", {**base, "data": {**base["data"], "path": str(tmp_path / "wine.npz")}, "model": {"kind": "linear", "checkpoint": str(tmp_path / "linear.pt")}})
    as_script = run_to(tmp_path / "b", {**base, "data": {**base["data"], "path": str(tmp_path / "wine.npz")}, "model": {"kind": "torchscript", "path": str(tmp_path / "linear_script.pt")}})
    assert as_linear["training"] is None and as_linear["metrics"]["test"] == as_script["metrics"]["test"]
    assert set(as_linear["metrics"]) == {"train", "test"}


def test_head_replacement_fits_a_body_to_the_classes(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv, model={
        **user_model(tmp_path, "Pretrained", "self.body = torch.nn.Linear(30, 16); self.fc = torch.nn.Linear(16, 1000)", "self.fc(torch.relu(self.body(x)))"),
        "head": {"attribute": "fc", "out_features": 2},
    })
    results = run_to(tmp_path, document)
    assert results["model"]["outputs"] == 2 and results["model"]["output_kind"] == "softmax"
    assert results["metrics"]["test"]["accuracy"] > 0.9
    document["model"]["head"] = {"attribute": "body.fc", "out_features": 2}
    with pytest.raises(ModelError, match="model.head.attribute 'body.fc'"):
        execute(load_config(write_config(tmp_path, document)))


def test_regression_sample_metrics(tmp_path: Path):
    config = next(SAMPLES.glob("*regression*.yaml"))
    report, _ = execute(load_config(config, ["training.epochs=5"]))
    metrics = report.document()["metrics"]["test"]
    assert {"mse", "rmse", "mae", "r2"} <= set(metrics)
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5)
    assert "scatter" in report.curves["test"]
