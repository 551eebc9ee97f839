"""Shared fixtures: real data sets written to files, and configs that use them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads OpenMP

import numpy as np
import pandas as pd
import pytest
import yaml

from reportgen.types import Predictions

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_configs"


@pytest.fixture(scope="session")
def breast_cancer_frame() -> pd.DataFrame:
    """scikit-learn's breast cancer data as a frame with a string label column."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(bunch.target == 1, "benign", "malignant")
    return frame.drop(columns=["target"])


def write_config(folder: Path, document: dict[str, Any], name: str = "config.yaml") -> Path:
    """Write a YAML config and return its path."""
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture()
def cancer_csv(tmp_path: Path, breast_cancer_frame: pd.DataFrame) -> Path:
    """The breast cancer data as CSV in a temp folder."""
    path = tmp_path / "cancer.csv"
    breast_cancer_frame.to_csv(path, index=False)
    return path


def cancer_config(csv: Path, **overrides: Any) -> dict[str, Any]:
    """A binary config on the breast cancer CSV that trains a small MLP briefly."""
    document: dict[str, Any] = {
        "name": "cancer",
        "task": "binary",
        "seed": 0,
        "data": {
            "kind": "csv", "path": csv.name, "target": "diagnosis", "classes": ["benign", "malignant"],
            "positive_class": "malignant", "split": {"val": 0.2, "test": 0.25}, "batch_size": 64,
        },
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 15, "lr": 0.01},
        "report": {"formats": ["json"]},
    }
    for key, value in overrides.items():
        document[key] = value
    return document


@pytest.fixture()
def cancer_config_path(tmp_path: Path, cancer_csv: Path) -> Path:
    """Path of a passing binary config (breast cancer, trained MLP)."""
    return write_config(tmp_path, cancer_config(cancer_csv))


def user_model(folder: Path, name: str, layers: str, forward: str) -> dict[str, Any]:
    """Write ``<name>.py`` holding an nn.Module ``name`` and return the model section that loads it.

    ``layers`` is the body of ``__init__`` after ``super().__init__()``; ``forward`` the returned expression.
    """
    (folder / f"{name.lower()}.py").write_text(
        f"import torch\nclass {name}(torch.nn.Module):\n"
        f"    def __init__(self):\n        super().__init__(); {layers}\n"
        f"    def forward(self, x):\n        return {forward}\n",
        encoding="utf-8",
    )
    return {"kind": "python", "target": f"{name.lower()}.py:{name}"}


def read_results(out_dir: Path) -> dict[str, Any]:
    """Load results.json from an output folder."""
    return json.loads((out_dir / "results.json").read_text(encoding="utf-8"))


def synthetic_predictions(n: int, task: str, seed: int = 0) -> Predictions:
    """Large synthetic predictions for size bounds (scores carry signal, many distinct values)."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(size=n).astype(np.float32)
        return Predictions("test", y, (y + rng.normal(0, 0.5, n)).astype(np.float32), None, 0.25)
    c = 2 if task == "binary" else 4
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions("test", y, probs.argmax(axis=1), probs.astype(np.float32), 0.5)
