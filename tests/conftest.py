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
