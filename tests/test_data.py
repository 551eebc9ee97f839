"""Data loading: every data kind, preprocessing fitted on train only, and clear input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reportgen.config import validate
from reportgen.data import load_data
from reportgen.errors import DataError

from conftest import SAMPLES


def load(tmp_path: Path, task: str = "binary", **data):
    """Validate a data section and load it relative to tmp_path."""
    config = validate({"name": "t", "task": task, "data": data, "model": {"kind": "mlp"}})
    return load_data(config.data, task, lambda rel: tmp_path / rel, seed=config.seed)


def test_default_csv_split_is_stratified_deterministic_and_fitted_on_train(tmp_path: Path):
    default = pd.read_csv(SAMPLES / "data" / "default.csv")
    default.to_csv(tmp_path / "d.csv", index=False)
    kwargs = dict(kind="csv", path="d.csv", target="default", ignore=["rownames"], categorical=["student"], classes=["No", "Yes"])
    bundle = load(tmp_path, **kwargs)
    assert bundle.classes == ("No", "Yes") and bundle.positive_index == 1  # the minority class by default
    assert bundle.feature_names == ("balance", "income", "student=No", "student=Yes")
    sizes = {name: split.n for name, split in bundle.splits.items()}
    assert sizes == {"train": 7000, "val": 1500, "test": 1500}
    for split in bundle.splits.values():  # stratified: 3.33% defaults everywhere
        assert split.labels.mean() == pytest.approx(333 / 10_000, abs=0.002)
    train_rows = bundle.splits["train"].source_rows
    raw_train_balance = default.loc[train_rows, "balance"].to_numpy()
    standardized = bundle.splits["train"].features[:, 0]
    assert standardized.mean() == pytest.approx(0.0, abs=1e-5)
    assert np.allclose(standardized * raw_train_balance.std() + raw_train_balance.mean(), raw_train_balance, rtol=1e-5, atol=1e-3)
    test_means = bundle.splits["test"].features[:, :2].mean(axis=0)
    assert not np.allclose(test_means, 0.0, atol=1e-6), "test data must not be standardised with its own statistics"
    again = load(tmp_path, **kwargs)
    assert np.array_equal(again.splits["test"].source_rows, bundle.splits["test"].source_rows)
    assert set(train_rows).isdisjoint(bundle.splits["test"].source_rows)


def test_categories_come_from_train_and_unseen_ones_encode_as_zeros(tmp_path: Path):
    pd.DataFrame({"colour": ["red", "blue", "red", "blue"], "x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"colour": ["green", "red"], "x": [1.0, 2.0], "y": ["a", "b"]}).to_csv(tmp_path / "test.csv", index=False)
    bundle = load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="y", categorical=["colour"])
    assert bundle.feature_names == ("x", "colour=blue", "colour=red")
    assert bundle.splits["test"].features[0, 1:].tolist() == [0.0, 0.0]
    assert bundle.splits["test"].features[1, 1:].tolist() == [0.0, 1.0]
    assert "val" not in bundle.splits


def test_missing_values_policies(tmp_path: Path):
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 5.0, 7.0, 9.0] * 5, "y": ["a", "b"] * 15})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"d.csv: 5 empty cells, first in column 'x' at data row 2; set data.missing"):
        load(tmp_path, kind="csv", path="d.csv", target="y")
    dropped = load(tmp_path, kind="csv", path="d.csv", target="y", missing="drop", standardize=False)
    assert sum(s.n for s in dropped.splits.values()) == 25
    imputed = load(tmp_path, kind="csv", path="d.csv", target="y", missing="mean", standardize=False)
    assert sum(s.n for s in imputed.splits.values()) == 30
    assert all(np.isfinite(s.features).all() for s in imputed.splits.values())


def test_npz_and_parquet_kinds(tmp_path: Path, breast_cancer_frame):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    np.savez(tmp_path / "digits.npz", X_train=images[:1200], y_train=digits.target[:1200], X_test=images[1200:], y_test=digits.target[1200:])
    bundle = load(tmp_path, task="multiclass", kind="npz", path="digits.npz")
    assert bundle.input_shape == (1, 8, 8) and bundle.classes == tuple(str(i) for i in range(10))
    assert bundle.splits["test"].features is None and bundle.splits["test"].n == 597
    breast_cancer_frame.to_parquet(tmp_path / "cancer.parquet")
    parquet = load(tmp_path, kind="parquet", path="cancer.parquet", target="diagnosis")
    assert parquet.classes == ("benign", "malignant") and parquet.positive_index == 1
    assert len(parquet.feature_names) == 30


def test_python_factory_kind(tmp_path: Path):
    (tmp_path / "factory.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def make(n=40):\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(n, 3, generator=g); y = (x[:, 0] > 0).long()\n"
        "    return {'train': TensorDataset(x, y), 'test': TensorDataset(x[:10], y[:10])}\n",
        encoding="utf-8",
    )
    bundle = load(tmp_path, kind="python", factory="factory.py:make", kwargs={"n": 60})
    assert bundle.splits["train"].n == 60 and bundle.feature_names == ("x0", "x1", "x2")


@pytest.mark.parametrize(
    ("frame", "data", "message"),
    [
        (pd.DataFrame({"x": [1, 2, 3, 4], "label": ["a", "b", "a", "b"]}), {"target": "labl"}, r"data.target: column 'labl' is not in d.csv \(did you mean 'label'\?\)"),
        (pd.DataFrame({"x": [1, 2, 3, 4], "label": ["a", "b", "c", "b"]}), {"target": "label", "classes": ["a", "b"], "split": {"val": 0.0, "test": 0.5, "stratify": False}}, r"label 'c' at data row 3 is not one of the classes \['a', 'b'\]"),
        (pd.DataFrame({"x": ["1", "two", "3", "4"], "label": ["a", "b", "a", "b"]}), {"target": "label"}, r"column 'x' is numeric but 1 of its cells are not numbers \(data row 2: 'two'\); if these cells mean 'no value', list their spelling in data.csv.na_values"),
        (pd.DataFrame({"x": [1, 2, 3, 4], "label": ["a", "a", "a", "a"]}), {"target": "label", "split": {"val": 0.0, "test": 0.25}}, r"a binary task needs exactly 2 classes; found 1"),
        (pd.DataFrame({"x": [1, 2], "label": ["a", "b"]}), {"target": "label", "split": {"val": 0.0, "test": 0.2}}, r"the test split is empty"),
    ],
)
def test_bad_tables_give_one_clear_error(tmp_path: Path, frame, data, message):
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=message):
        load(tmp_path, kind="csv", path="d.csv", **data)


def test_bad_arrays_give_one_clear_error(tmp_path: Path):
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.savez(tmp_path / "range.npz", X_train=x, y_train=np.arange(20) % 3, X_test=x, y_test=np.arange(20) % 3)
    with pytest.raises(DataError, match=r"train label 2 at index 2 is out of range 0..1"):
        load(tmp_path, kind="npz", path="range.npz", classes=["a", "b"])
    x_nan = x.copy()
    x_nan[5, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X_train=x, y_train=np.arange(20) % 2, X_test=x_nan, y_test=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"the test split has non-finite feature values \(first at index 5\)"):
        load(tmp_path, kind="npz", path="nan.npz")
    with pytest.raises(DataError, match="data.path: file not found"):
        load(tmp_path, kind="npz", path="absent.npz")
