"""Data factory for the digits sample (referenced from digits_cnn.yaml as "digits_data.py:make_splits").

The images ship in data/digits.npz (see docs/samples.md for where they come from), so this
module needs only numpy and torch. reportgen calls ``make_splits(**data.kwargs)`` and expects
a dict of datasets whose items are ``(x, y)`` pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

DATA_FILE = Path(__file__).resolve().parent / "data" / "digits.npz"


def _stratified_indices(y: np.ndarray, seed: int, val: float, test: float) -> dict[str, np.ndarray]:
    """Split the sample indices class by class so that every split keeps the class proportions."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    # Sort so that each split keeps the file's order (shuffling is the data loader's job).
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def make_splits(seed: int = 0, val: float = 0.15, test: float = 0.2) -> dict[str, TensorDataset]:
    """Return {"train", "val", "test"} TensorDatasets of (x, y).

    x is a float32 tensor of shape (1, 8, 8) with pixel values scaled to [0, 1];
    y is the digit (int64, 0..9). The split is stratified and depends only on ``seed``.
    """
    if not (0.0 <= val < 1.0 and 0.0 < test < 1.0 and val + test < 1.0):
        raise ValueError(f"val ({val}) and test ({test}) must be fractions that leave room for train")
    with np.load(DATA_FILE) as archive:
        images = archive["X"]  # uint8, (1797, 8, 8), values 0..16
        labels = archive["y"].astype(np.int64)
    x_all = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)  # (n, 1, 8, 8)
    y_all = torch.from_numpy(labels)
    splits = _stratified_indices(labels, seed, val, test)
    return {
        name: TensorDataset(x_all[torch.from_numpy(idx)], y_all[torch.from_numpy(idx)])
        for name, idx in splits.items()
    }
