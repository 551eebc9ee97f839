"""How data is read: each thing pandas or numpy would silently reinterpret is parsed as written or stopped (exit 2).

Every input here is built in the test; row numbers in messages are 1-based data rows (header excluded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from reportgen.config import validate
from reportgen.data import MAX_CATEGORIES, TablePreprocessor, load_data
from reportgen.errors import DataError

from conftest import read_results, write_config
from test_cli import assert_one_line_error, run_cli


def load(tmp_path: Path, task: str = "binary", **data):
    config = validate({"name": "t", "task": task, "data": data, "model": {"kind": "mlp"}})
    return load_data(config.data, task, lambda rel: tmp_path / rel, seed=config.seed)


def _write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.write_text(text, encoding=encoding)


def _two_files(tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)


# ----------------------------------------------------------------------------- constant columns


def test_constant_train_column_gets_scale_one_as_scikit_learn_decides(tmp_path: Path):
    """Train: 'rate' is 14.62 in all 200 rows (its computed std is ~1e-15, not 0); test has 14.7 and 14.5."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"rate": [14.62] * 200, "x": rng.normal(size=200), "y": ["a", "b"] * 100})
    test = pd.DataFrame({"rate": [14.7, 14.5], "x": [0.0, 1.0], "y": ["a", "b"]})
    _two_files(tmp_path, train, test)
    bundle = load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="y")
    oracle = StandardScaler().fit(train[["rate", "x"]].to_numpy())
    assert oracle.scale_[0] == 1.0  # scikit-learn's own decision for this column
    assert np.allclose(bundle.splits["test"].features[:, 0], [14.7 - 14.62, 14.5 - 14.62], atol=1e-5)
    assert np.allclose(bundle.splits["test"].features[:, 1], oracle.transform(test[["rate", "x"]].to_numpy())[:, 1], atol=1e-5)
    assert bundle.fingerprint["preprocessing"]["constant_features"] == ["rate"]


# ----------------------------------------------------------------------------- categorical cells


def test_missing_policy_applies_to_categorical_cells(tmp_path: Path):
    """Column 'colour' has an empty cell at data row 3 of a 40-row file; x is complete."""
    colours = ["red", "blue", "", "red"] * 10
    _write(tmp_path / "d.csv", "colour,x,y\n" + "".join(f"{c},{i},{'ab'[i % 2]}\n" for i, c in enumerate(colours)))
    common = dict(kind="csv", path="d.csv", target="y", categorical=["colour"])
    with pytest.raises(DataError, match=r"d.csv: 10 empty cells, first in column 'colour' at data row 3; set data.missing"):
        load(tmp_path, **common)
    dropped = load(tmp_path, **common, missing="drop")
    assert sum(s.n for s in dropped.splits.values()) == 30
    assert dropped.feature_names == ("x", "colour=blue", "colour=red")  # no 'nan' category
    imputed = load(tmp_path, **common, missing="mean", split={"val": 0.0, "test": 0.25, "stratify": False})
    train = imputed.splits["train"]
    empty = train.attributes["colour"].isna().to_numpy()
    assert empty.any()
    # an empty cell takes the most frequent train category (red: 20 of 30 filled cells)
    assert (train.features[empty][:, 2] == 1.0).all() and (train.features[empty][:, 1] == 0.0).all()


def test_unseen_test_categories_are_reported_per_split(tmp_path: Path):
    """Train knows cities A, B, C; 28 of 100 test rows hold city 'Z' or 'Q' (never seen in train)."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"city": rng.choice(["A", "B", "C"], 300), "x": rng.normal(size=300), "y": ["n", "p"] * 150})
    test_city = np.array(["A"] * 72 + ["Z"] * 20 + ["Q"] * 8)
    test = pd.DataFrame({"city": test_city, "x": rng.normal(size=100), "y": ["n", "p"] * 50})
    _two_files(tmp_path, train, test)
    document = {"name": "u", "task": "binary", "data": {"kind": "csv", "train": "train.csv", "test": "test.csv",
                "target": "y", "categorical": ["city"]}, "model": {"kind": "linear"}, "report": {"formats": ["json"]}}
    code, _, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"))
    check = next(c for c in read_results(tmp_path / "out")["checks"] if c["id"] == "unseen_categories")
    assert check["status"] == "warn" and check["severity"] == "warning"
    assert check["value"] == pytest.approx(0.28)
    assert check["evidence"]["splits"]["test"]["columns"]["city"] == {"samples": 28, "distinct": 2, "examples": {"Z": 20, "Q": 8}}
    assert "28 of 100 test samples" in check["message"]
    clean = test.assign(city=rng.choice(["A", "B", "C"], 100))
    _two_files(tmp_path, train, clean)
    run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out2"))
    check = next(c for c in read_results(tmp_path / "out2")["checks"] if c["id"] == "unseen_categories")
    assert check["status"] == "pass" and check["value"] == 0.0


def test_an_identifier_listed_as_categorical_is_refused_before_encoding(tmp_path: Path):
    """An 'account' column with 2,400 distinct values in 3,000 rows, listed under data.categorical."""
    frame = pd.DataFrame({"account": [f"AC{i:05d}" for i in range(2400)] + ["AC00001"] * 600,
                          "x": np.arange(3000.0), "y": ["a", "b"] * 1500})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"'account' has \d+ distinct values in \d+ train rows \(at most 1000\): it looks like an identifier; list it under data.ignore"):
        load(tmp_path, kind="csv", path="d.csv", target="y", categorical=["account"])
    assert MAX_CATEGORIES == 1000


def test_one_hot_block_is_built_in_float32(tmp_path: Path):
    """600 rows, 200 categories: the matrix comes back float32 with exactly one 1 per row in the block."""
    train = pd.DataFrame({"c": [f"k{i % 200}" for i in range(600)], "x": np.arange(600.0)})
    prep = TablePreprocessor.fit(train, ["x"], ["c"], True)
    matrix = prep.transform(train.assign(c=train["c"].astype(object)), impute=False)
    assert matrix.dtype == np.float32 and matrix.shape == (600, 201)
    assert (matrix[:, 1:].sum(axis=1) == 1).all()


# ----------------------------------------------------------------------------- header and labels


def test_duplicated_header_names_are_refused_with_positions(tmp_path: Path):
    """Header id,amount,balance,id,label: pandas would rename the second 'id' to 'id.1' and use it as a feature."""
    _write(tmp_path / "d.csv", "id,amount,balance,id,label\n" + "".join(f"{i},{i}.5,{i * 2},{i},{'ab'[i % 2]}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"d.csv: the header names column 'id' 2 times \(columns 1, 4\)"):
        load(tmp_path, kind="csv", path="d.csv", target="label", ignore=["id"])


def test_label_codes_keep_their_text(tmp_path: Path):
    """Labels written "001", "010", "100" (three classes), also first in a file with a UTF-8 byte-order mark;
    labels 2, 10, NA (text order, 'NA' a class); labels 2, 10, 1 (plain numbers sort as numbers)."""
    codes = ["001", "010", "100"] * 20
    _write(tmp_path / "d.csv", "x,code\n" + "".join(f"{i},{c}\n" for i, c in enumerate(codes)))
    bundle = load(tmp_path, task="multiclass", kind="csv", path="d.csv", target="code")
    assert bundle.classes == ("001", "010", "100")
    configured = load(tmp_path, task="multiclass", kind="csv", path="d.csv", target="code", classes=["100", "010", "001"])
    assert configured.classes == ("100", "010", "001")
    _write(tmp_path / "n.csv", "x,k\n" + "".join(f"{i},{k}\n" for i, k in enumerate(["2", "10", "NA"] * 20)))
    numbers = load(tmp_path, task="multiclass", kind="csv", path="n.csv", target="k")
    assert numbers.classes == ("10", "2", "NA")  # 'NA' is a label here, not a missing value; mixed -> text order
    _write(tmp_path / "m.csv", "x,k\n" + "".join(f"{i},{k}\n" for i, k in enumerate(["2", "10", "1"] * 20)))
    assert load(tmp_path, task="multiclass", kind="csv", path="m.csv", target="k").classes == ("1", "2", "10")
    # A spreadsheet export with a byte-order mark and the label as first column: still text.
    _write(tmp_path / "b.csv", "code,x\n" + "".join(f"{c},{i}\n" for i, c in enumerate(codes)), encoding="utf-8-sig")
    assert load(tmp_path, task="multiclass", kind="csv", path="b.csv", target="code").classes == ("001", "010", "100")


# ----------------------------------------------------------------------------- CSV dialects


def test_semicolon_and_decimal_comma_files_read_with_the_csv_options(tmp_path: Path):
    """A European export: 'x;amount;y' with decimal commas and '.' thousands separators in quotes."""
    rows = "".join(f'{i};"{i}.000,{i % 10}";{"ab"[i % 2]}\n' for i in range(1, 41))
    _write(tmp_path / "d.csv", "x;amount;y\n" + rows)
    with pytest.raises(DataError, match=r"d.csv: the header reads as one column 'x;amount;y' with separator ','; the file looks separated by ';': set data.csv: \{sep: \";\"\}"):
        load(tmp_path, kind="csv", path="d.csv", target="y")
    with pytest.raises(DataError, match=r"column 'amount' is numeric but 40 of its cells are not numbers \(data row 1: '1.000,1'.*thousands separator"):
        load(tmp_path, kind="csv", path="d.csv", target="y", csv={"sep": ";"})
    bundle = load(tmp_path, kind="csv", path="d.csv", target="y", csv={"sep": ";", "decimal": ",", "thousands": "."}, standardize=False)
    amounts = sorted(bundle.splits["train"].attributes["amount"].tolist())
    assert amounts[0] == pytest.approx(1000.1) and all(a >= 1000 for a in amounts)


def test_a_few_non_numeric_cells_name_the_cells_and_never_suggest_one_hot(tmp_path: Path):
    """Column 'amount' holds 38 numbers, '?' at data row 4 and 'unknown' at data row 9."""
    cells = [str(i) for i in range(40)]
    cells[3], cells[8] = "?", "unknown"
    _write(tmp_path / "d.csv", "amount,y\n" + "".join(f"{c},{'ab'[i % 2]}\n" for i, c in enumerate(cells)))
    with pytest.raises(DataError) as caught:
        load(tmp_path, kind="csv", path="d.csv", target="y")
    message = str(caught.value)
    assert "2 of its cells are not numbers (data row 4: '?'; data row 9: 'unknown')" in message
    assert "data.csv.na_values" in message and "categorical" not in message
    bundle = load(tmp_path, kind="csv", path="d.csv", target="y", csv={"na_values": ["?", "unknown"]}, missing="drop")
    assert sum(s.n for s in bundle.splits.values()) == 38


def test_wrong_encoding_suggests_the_option(tmp_path: Path):
    """A latin-1 file with 'café' in a categorical column."""
    _write(tmp_path / "d.csv", "shop,x,y\n" + "".join(f"café,{i},{'ab'[i % 2]}\n" for i in range(30)), encoding="latin-1")
    with pytest.raises(DataError, match=r"cannot decode the file as utf-8 .*data.csv: \{encoding"):
        load(tmp_path, kind="csv", path="d.csv", target="y", categorical=["shop"])
    bundle = load(tmp_path, kind="csv", path="d.csv", target="y", categorical=["shop"], csv={"encoding": "latin-1"})
    assert bundle.feature_names == ("x", "shop=café")


def test_infinite_and_out_of_float32_range_cells(tmp_path: Path):
    """'x' holds 'inf' at data row 5 (an error, or an empty cell under missing: drop); 'z' holds 1e39 at data row 7."""
    x = [str(float(i)) for i in range(30)]
    x[4] = "inf"
    _write(tmp_path / "d.csv", "x,y\n" + "".join(f"{v},{'ab'[i % 2]}\n" for i, v in enumerate(x)))
    with pytest.raises(DataError, match=r"d.csv: column 'x' has 1 infinite cell\(s\) \(data row 5: 'inf'\); set data.missing"):
        load(tmp_path, kind="csv", path="d.csv", target="y")
    assert sum(s.n for s in load(tmp_path, kind="csv", path="d.csv", target="y", missing="drop").splits.values()) == 29
    z = ["1.0"] * 30
    z[6] = "1e39"
    _write(tmp_path / "z.csv", "z,y\n" + "".join(f"{v},{'ab'[i % 2]}\n" for i, v in enumerate(z)))
    with pytest.raises(DataError, match=r"z.csv: column 'z' has 1 number\(s\) beyond float32's range .*\(data row 7: '1e\+39'\)"):
        load(tmp_path, kind="csv", path="z.csv", target="y", missing="mean")


# ----------------------------------------------------------------------------- datasets from a factory and npz


_DICT_FACTORY = """
import torch
from torch.utils.data import Dataset

class Rows(Dataset):
    def __init__(self, n, keys):
        g = torch.Generator().manual_seed(n)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.keys = keys
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return {self.keys[0]: self.x[i], self.keys[1]: self.y[i]}

def make(keys=("features", "label")):
    return {"train": Rows(80, keys), "test": Rows(30, keys)}
"""


def test_mapping_items_from_a_factory(tmp_path: Path):
    """Items {"features": x, "label": y} (defaults found), {"pixels": x, "target_class": y} (configured keys or exit 2)."""
    _write(tmp_path / "factory.py", _DICT_FACTORY)
    bundle = load(tmp_path, kind="python", factory="factory.py:make")
    assert bundle.splits["train"].n == 80 and bundle.input_shape == (4,)
    odd = {"keys": ["pixels", "target_class"]}
    with pytest.raises(DataError, match=r"items are mappings with keys \['pixels', 'target_class'\]; none is a known input key .*set data.input_key"):
        load(tmp_path, kind="python", factory="factory.py:make", kwargs=odd)
    configured = load(tmp_path, kind="python", factory="factory.py:make", kwargs=odd, input_key="pixels", label_key="target_class")
    assert configured.splits["test"].n == 30
    document = {"name": "d", "task": "binary", "data": {"kind": "python", "factory": "factory.py:make"},
                "model": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 2}, "report": {"formats": ["json"]}}
    path = write_config(tmp_path, document)
    assert run_cli("validate", str(path))[0] == 0
    code, _, err = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    assert code in (0, 1), err
    document["data"]["kwargs"] = odd
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2
    assert_one_line_error(err, "keys ['pixels', 'target_class']", "data.input_key")


def test_two_dimensional_regression_targets_are_exit_2_naming_the_shape(tmp_path: Path):
    """npz with y_train of shape (50, 2); a factory whose items carry a target of shape (2,)."""
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.savez(tmp_path / "two.npz", X_train=x, y_train=np.zeros((50, 2)), X_test=x, y_test=np.zeros((50, 2)))
    with pytest.raises(DataError, match=r"two.npz: y_train has shape \(50, 2\).*multi-output regression is not supported"):
        load(tmp_path, task="regression", kind="npz", path="two.npz")
    _write(tmp_path / "pairs.py", "import torch\n"
           "def make():\n    items = [(torch.zeros(3), torch.zeros(2)) for _ in range(20)]\n"
           "    return {'train': items, 'test': items}\n")
    with pytest.raises(DataError, match=r"the labels have shape \(20, 2\) \(a multi-output regression target\)"):
        load(tmp_path, task="regression", kind="python", factory="pairs.py:make")


def test_regression_target_cells_are_named_by_row(tmp_path: Path):
    """Train file: target 'price' holds 'unknown' at data row 3 and 'inf' at data row 6."""
    prices = [str(float(i)) for i in range(30)]
    prices[2], prices[5] = "unknown", "inf"
    _write(tmp_path / "d.csv", "x,price\n" + "".join(f"{i},{p}\n" for i, p in enumerate(prices)))
    _write(tmp_path / "t.csv", "x,price\n1,1.0\n2,2.0\n")
    with pytest.raises(DataError, match=r"d.csv: the regression target 'price' has 2 cell\(s\) that are not finite float32 numbers \(data row 3: 'unknown'; data row 6: 'inf'\)"):
        load(tmp_path, task="regression", kind="csv", train="d.csv", test="t.csv", target="price")


# ----------------------------------------------------------------------------- missing: drop


@pytest.mark.parametrize("stratify", [True, False])
def test_missing_drop_that_removes_every_row_names_the_setting(tmp_path: Path, breast_cancer_frame: pd.DataFrame, stratify: bool):
    """The breast cancer table with one feature emptied in every row: drop leaves nothing to split."""
    frame = breast_cancer_frame.copy()
    frame["mean_radius"] = np.nan
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    with pytest.raises(DataError, match=r"data.missing: drop removes all 569 rows .*'mean_radius' is empty in 569"):
        load(tmp_path, kind="csv", path="cancer.csv", target="diagnosis", missing="drop", split={"stratify": stratify})


def test_missing_drop_that_empties_a_split_says_how_many_rows_it_removed(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    """All but two rows have an empty cell: the test split is empty, and the message says drop removed 567 rows."""
    frame = breast_cancer_frame.copy()
    frame.loc[frame.index[2:], "mean_texture"] = np.nan
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    with pytest.raises(DataError, match=r"split is empty .*data.missing: drop removed 567 of 569 rows"):
        load(tmp_path, kind="csv", path="cancer.csv", target="diagnosis", missing="drop", split={"val": 0.2, "test": 0.25})


def test_missing_drop_cli_exits_2(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    frame = breast_cancer_frame.copy()
    frame["mean_area"] = np.nan
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    document = {"name": "t", "task": "binary", "data": {"kind": "csv", "path": "cancer.csv", "target": "diagnosis",
                                                        "missing": "drop", "split": {"stratify": True}},
                "model": {"kind": "mlp"}}
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2, err
    assert_one_line_error(err, "data.missing: drop removes all 569 rows")


# ----------------------------------------------------------------------------- standardising beyond float32


def test_standardising_that_overflows_float32_names_the_column(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    """Every value fits float32, but train is constant at -3e38 and test holds 3e38: standardised, 6e38 does not.
    One line naming the file, column and row (exit 2), and no numpy overflow warning on stderr."""
    frame = breast_cancer_frame.copy()
    train, test = frame.iloc[:400].copy(), frame.iloc[400:].copy()
    train["extreme"], test["extreme"] = -3e38, 3e38
    _two_files(tmp_path, train, test)
    with pytest.raises(DataError, match=r"test.csv: standardising column 'extreme' overflows float32 .* data row 1 holds "
                                        r"3e\+38, which becomes 6e\+38 with the train mean -3e\+38 and scale 1"):
        load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="diagnosis")
    document = {"name": "t", "task": "binary", "data": {"kind": "csv", "train": "train.csv", "test": "test.csv",
                                                        "target": "diagnosis"}, "model": {"kind": "mlp"}}
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2, err
    assert_one_line_error(err, "standardising column 'extreme' overflows float32", "data.standardize: false")
    assert "RuntimeWarning" not in err and "non-finite" not in err
    # unstandardised, the same values fit float32 as they are
    bundle = load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="diagnosis", standardize=False)
    assert np.isfinite(bundle.splits["test"].dataset.tensors[0].numpy()).all()


# ----------------------------------------------------------------------------- labels and names that look alike


def test_labels_differing_only_in_surrounding_spaces_are_one_class(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    """' malignant' (a space after the comma) and 'malignant ' (a trailing space) read as the class 'malignant'."""
    frame = breast_cancer_frame.copy()
    malignant = np.flatnonzero(frame["diagnosis"] == "malignant")
    frame.loc[frame.index[malignant[::2]], "diagnosis"] = "malignant "
    frame.loc[frame.index[malignant[1::2]], "diagnosis"] = " malignant"
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    bundle = load(tmp_path, kind="csv", path="cancer.csv", target="diagnosis", split={"val": 0.2, "test": 0.25})
    assert list(bundle.classes) == ["benign", "malignant"]
    counts = sum(np.bincount(split.labels, minlength=2) for split in bundle.splits.values())
    assert counts.tolist() == [int((breast_cancer_frame["diagnosis"] == "benign").sum()), len(malignant)]


def test_a_column_without_a_header_name_is_refused(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    """pandas' to_csv with its default index=True writes a first column with an empty name."""
    breast_cancer_frame.to_csv(tmp_path / "cancer.csv")
    with pytest.raises(DataError, match=r"cancer.csv: column 1 of the header has no name \(pandas would call it 'Unnamed: 0'\)"):
        load(tmp_path, kind="csv", path="cancer.csv", target="diagnosis")


# ----------------------------------------------------------------------------- parquet


def test_parquet_rows_are_counted_in_the_file_whatever_index_it_stores(tmp_path: Path):
    """pandas restores an index stored in a Parquet file (here the text names of the rows, or integers out of
    order): rows are still the file's rows, 1-based, in every message, and the train statistics read them."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"})
    frame["y"] = np.where(frame["y"] == 1, "benign", "malignant")
    named = frame.set_index(pd.Index([f"patient-{i}" for i in range(len(frame))]))
    named.iloc[:400].to_parquet(tmp_path / "train.parquet")
    named.iloc[400:].to_parquet(tmp_path / "test.parquet")
    bundle = load(tmp_path, kind="parquet", train="train.parquet", test="test.parquet", target="y")
    expected = StandardScaler().fit(frame.iloc[:400].drop(columns="y").to_numpy())
    assert np.allclose(bundle.splits["train"].features, expected.transform(frame.iloc[:400].drop(columns="y").to_numpy()),
                       atol=1e-5)
    assert bundle.splits["test"].source_rows.tolist() == list(range(169))
    shuffled = frame.iloc[400:].sample(frac=1.0, random_state=0)  # a stored integer index out of order
    shuffled.iloc[7, shuffled.columns.get_loc("y")] = "unknown"
    shuffled.to_parquet(tmp_path / "test.parquet")
    with pytest.raises(DataError, match="label 'unknown' at data row 8 is not one of the classes"):
        load(tmp_path, kind="parquet", train="train.parquet", test="test.parquet", target="y")


# ----------------------------------------------------------------------------- malformed rows and moving files


def test_a_first_row_with_more_fields_than_the_header_is_refused_not_read_as_an_index(tmp_path: Path):
    """pandas takes the extra leading field of such a row as every row's index and shifts every column (a
    trailing separator on every data row shifted them too); both are one clear error now."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(columns={"target": "y"}).sample(frac=1.0, random_state=0)
    text = frame.to_csv(index=False).splitlines()
    _write(tmp_path / "train.csv", "\n".join([text[0], "7," + text[1], *text[2:100]]) + "\n")
    _write(tmp_path / "test.csv", "\n".join([text[0], *text[100:]]) + "\n")
    with pytest.raises(DataError, match=r"train.csv: the first data row has more fields than the header's 5 columns"):
        load(tmp_path, task="multiclass", kind="csv", train="train.csv", test="test.csv", target="y")
    _write(tmp_path / "train.csv", "\n".join([text[0], *(line + "," for line in text[1:100])]) + "\n")
    with pytest.raises(DataError, match=r"train.csv: the first data row has more fields than the header's 5 columns"):
        load(tmp_path, task="multiclass", kind="csv", train="train.csv", test="test.csv", target="y")
    _write(tmp_path / "train.csv", "\n".join(text[:100]) + "\n")
    assert load(tmp_path, task="multiclass", kind="csv", train="train.csv", test="test.csv", target="y").splits["train"].n == 99


def test_a_file_that_changes_while_it_is_read_is_refused(tmp_path: Path):
    """A writer appends to train.csv between reportgen's first look at the file and its read (the resolver
    runs at both moments): the rows read may not be the rows fingerprinted, so the run stops with exit 2."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(columns={"target": "y"}).sample(frac=1.0, random_state=0)
    _two_files(tmp_path, frame.iloc[:100], frame.iloc[100:])
    calls: list[str] = []

    def resolve_while_writing(relative: str) -> Path:
        calls.append(relative)
        if relative == "train.csv" and calls.count(relative) == 2:
            with (tmp_path / "train.csv").open("a", encoding="utf-8") as handle:
                handle.write("5.0,3.0,1.5,0.2,0\n")
        return tmp_path / relative

    config = validate({"name": "t", "task": "multiclass", "model": {"kind": "mlp"},
                       "data": {"kind": "csv", "train": "train.csv", "test": "test.csv", "target": "y"}})
    with pytest.raises(DataError, match=r"^train.csv: the file changed while it was read"):
        load_data(config.data, "multiclass", resolve_while_writing, seed=0)
    assert load_data(config.data, "multiclass", lambda relative: tmp_path / relative, seed=0).splits["train"].n == 101
