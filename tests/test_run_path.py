"""The run path's fast code gives the results of the plain definitions it replaces (data, inference, metrics)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reportgen.config import validate
from reportgen.data import TablePreprocessor, _numeric_or_error, load_data
from reportgen.errors import DataError

from conftest import SAMPLES


def load(tmp_path: Path, task: str = "binary", **data):
    """Validate a data section and load it relative to tmp_path."""
    config = validate({"name": "t", "task": task, "data": data, "model": {"kind": "mlp"}})
    return load_data(config.data, task, lambda rel: tmp_path / rel, seed=config.seed)


def test_csv_fingerprint_hashes_are_the_files_sha256(tmp_path: Path, breast_cancer_frame: pd.DataFrame):
    """The hash is computed on the bytes the parser reads, in the same pass: it must equal hashlib's of the file."""
    half = len(breast_cancer_frame) // 2
    breast_cancer_frame.iloc[:half].to_csv(tmp_path / "train.csv", index=False)
    breast_cancer_frame.iloc[half:].to_csv(tmp_path / "test.csv", index=False)
    bundle = load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="diagnosis")
    for name in ("train.csv", "test.csv"):
        assert bundle.fingerprint["files"][name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    (tmp_path / "default.csv").write_bytes((SAMPLES / "data" / "default.csv").read_bytes())
    whole = load(tmp_path, kind="csv", path="default.csv", target="default", ignore=["rownames"], categorical=["student"])
    assert whole.fingerprint["files"]["default.csv"] == hashlib.sha256((tmp_path / "default.csv").read_bytes()).hexdigest()


def _column_by_column(pre: TablePreprocessor, frame: pd.DataFrame, impute: bool) -> np.ndarray:
    """The plain definition: each numeric column imputed with its train mean, then (x - mean) / std, as float32."""
    out = np.zeros((len(frame), len(pre.numeric)), dtype=np.float32)
    for position, column in enumerate(pre.numeric):
        values = frame[column].to_numpy(dtype=np.float64)
        if impute:
            values = np.where(np.isnan(values), pre.means[column], values)
        if pre.standardize:
            values = (values - pre.means[column]) / pre.stds[column]
        out[:, position] = values
    return out


@pytest.mark.parametrize("standardize", [True, False])
def test_numeric_block_equals_the_column_by_column_definition(breast_cancer_frame: pd.DataFrame, standardize: bool):
    frame = breast_cancer_frame.drop(columns=["diagnosis"]).astype(np.float64)
    numeric = list(frame.columns)
    rng = np.random.default_rng(0)
    holes = frame.to_numpy().copy()
    holes[rng.random(holes.shape) < 0.05] = np.nan  # empty cells, imputed with the train mean
    with_holes = pd.DataFrame(holes, columns=numeric)
    big = pd.concat([with_holes] * 40, ignore_index=True)  # 22,760 rows: several row chunks
    pre = TablePreprocessor.fit(big, numeric, [], standardize)
    matrix = pre.transform(big, impute=True)
    assert np.array_equal(matrix, _column_by_column(pre, big, impute=True))  # bit for bit
    assert np.array_equal(pre.transform(frame, impute=False), _column_by_column(pre, frame, impute=False))


def test_numeric_conversion_leaves_the_callers_frame_alone():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [1.5, np.inf, 2.5], "c": [0.5, 1.0, 2.0], "y": ["p", "q", "p"]})
    before = frame.copy()
    converted = _numeric_or_error(frame, ["a", "b", "c"], "t.csv", "mean")
    pd.testing.assert_frame_equal(frame, before)
    assert converted["a"].dtype == np.float64 and np.isnan(converted["b"].iloc[1])
    assert converted["c"].to_numpy().tolist() == [0.5, 1.0, 2.0]
    with pytest.raises(DataError, match="column 'b' has 1 infinite cell"):
        _numeric_or_error(frame, ["a", "b"], "t.csv", "error")


def test_labels_are_encoded_by_class_index_and_an_unknown_label_is_named(tmp_path: Path):
    default = pd.read_csv(SAMPLES / "data" / "default.csv")
    default.to_csv(tmp_path / "d.csv", index=False)
    bundle = load(tmp_path, kind="csv", path="d.csv", target="default", ignore=["rownames"], categorical=["student"],
                  classes=["No", "Yes"])
    for split in bundle.splits.values():
        expected = (default.loc[split.source_rows, "default"].to_numpy() == "Yes").astype(np.int64)
        assert split.labels.dtype == np.int64 and np.array_equal(split.labels, expected)
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"test.csv: label 'c' at data row 3 is not one of the classes \['a', 'b'\]"):
        load(tmp_path, kind="csv", train="train.csv", test="test.csv", target="y")


def test_inference_batch_is_larger_than_the_training_batch_and_bounded():
    from reportgen.evaluation import inference_batch_size

    assert inference_batch_size(512, (32,)) == 4096  # the default batch, a small table: the sample cap
    assert inference_batch_size(128, (4,)) == 1024  # 8x the training batch
    assert inference_batch_size(8, (3, 224, 224)) == 27  # 16 MiB of float32 input
    assert inference_batch_size(64, (3, 224, 224)) == 64  # never below the training batch
    assert inference_batch_size(10_000, (32,)) == 10_000


def test_scoring_with_the_inference_batch_gives_the_training_batch_scores(tmp_path: Path, breast_cancer_frame):
    """Per-sample scores do not depend on how samples are batched (up to float rounding), nor do the classes."""
    import torch

    from reportgen.evaluation import evaluate, inference_batch_size
    from reportgen.outputs import make_loss

    big = pd.concat([breast_cancer_frame] * 8, ignore_index=True)  # 4,552 rows: several batches of either size
    big.to_csv(tmp_path / "c.csv", index=False)
    bundle = load(tmp_path, kind="csv", path="c.csv", target="diagnosis", split={"val": 0.0, "test": 0.5}, batch_size=64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    loss_fn = make_loss("bce", "sigmoid", bundle.positive_index, None)
    runs = [evaluate(model, bundle.splits["test"], task="binary", output_kind="sigmoid", positive_index=bundle.positive_index,
                     threshold=0.5, loss_fn=loss_fn, batch_size=size, device=torch.device("cpu"), num_classes=2)
            for size in (64, inference_batch_size(64, bundle.input_shape))]
    assert inference_batch_size(64, bundle.input_shape) == 512
    assert np.allclose(runs[0].probs, runs[1].probs, rtol=0, atol=1e-6)
    assert np.array_equal(runs[0].y_pred, runs[1].y_pred) and np.array_equal(runs[0].y_true, runs[1].y_true)
    assert runs[0].loss == pytest.approx(runs[1].loss, rel=1e-6)


def _binary_predictions_with_ties(seed: int = 0):
    """Breast-cancer labels with scores from a logistic regression, rounded to 2 decimals (many ties)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from reportgen.types import Predictions

    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    p = np.round(LogisticRegression(C=0.05, max_iter=500).fit(x[::2], y[::2]).predict_proba(x)[:, 1], 2)
    probs = np.stack([1 - p, p], axis=1).astype(np.float32)
    return Predictions(split="test", y_true=y.astype(np.int64), y_pred=(probs[:, 1] >= 0.5).astype(np.int64),
                       probs=probs, loss=0.0)


def test_threshold_sweep_from_the_splits_one_sort_matches_scikit_learn():
    from sklearn.metrics import precision_score, recall_score

    from reportgen.metrics import SWEEP_THRESHOLDS, prediction_threshold_sweep, threshold_sweep

    pred = _binary_predictions_with_ties()
    scores = pred.probs[:, 1].astype(np.float64)
    thresholds = list(SWEEP_THRESHOLDS) + [0.0, 0.5, 1.0, 1.5, float(scores[3])]  # on tied values, outside [0, 1]
    sweep = prediction_threshold_sweep(pred, 1, thresholds)
    assert sweep == threshold_sweep(pred.y_true == 1, scores, thresholds)
    for i, t in enumerate(thresholds):
        flagged = scores >= t
        assert sweep["predicted_positive"][i] == int(flagged.sum())
        assert sweep["recall"][i] == pytest.approx(recall_score(pred.y_true, flagged.astype(int), zero_division=0), abs=1e-15)
        if flagged.any():
            assert sweep["precision"][i] == pytest.approx(precision_score(pred.y_true, flagged.astype(int)), abs=1e-15)


def test_metrics_curves_and_sweeps_share_one_sort_per_split():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from reportgen.metrics import classification_metrics, plot_curves, prediction_threshold_sweep

    pred = _binary_predictions_with_ties()
    metrics = classification_metrics(pred, ("malignant", "benign"), 1)
    curve = pred.score_curves[1]
    curves = plot_curves(pred, "binary", 1, 0.5, classes=("malignant", "benign"))
    prediction_threshold_sweep(pred, 1, [0.3])
    assert pred.score_curves == {1: curve} and pred.score_curves[1] is curve  # nothing sorted again
    scores = pred.probs[:, 1].astype(np.float64)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(pred.y_true, scores), abs=1e-12)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(pred.y_true, scores), abs=1e-12)
    assert curves["roc"]["auc"] == metrics["roc_auc"] and curves["pr"]["auc"] == metrics["pr_auc"]


def test_target_leakage_binary_auc_is_scikit_learns_exactly_with_ties_and_outliers():
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import roc_auc_score

    from reportgen.checks.data_checks import _rank_auc_scores

    x, y = load_breast_cancer(return_X_y=True)
    columns = [x[:, j] for j in range(x.shape[1])]
    columns += [np.round(x[:, 0]), np.where(np.arange(y.size) == 7, 1e12, x[:, 3])]  # heavy ties; one huge outlier
    for column in columns:
        reference = roc_auc_score(y, column)
        assert _rank_auc_scores(column, y.astype(np.int64), 2) == pytest.approx(max(reference, 1 - reference), abs=1e-15)
    assert _rank_auc_scores(x[:, 0], np.zeros(y.size, np.int64), 2) is None  # one class: no AUC


def test_fingerprints_are_computed_per_kind_when_read_and_match_as_before(breast_cancer_frame: pd.DataFrame):
    """Lazy hashes equal the one-pass hashes; a clean pair of splits never needs the exact hashes;
    planted copies (bit-identical and reformatted) are matched with the right exactness."""
    import torch
    from torch.utils.data import TensorDataset

    from reportgen.checks import fingerprints
    from reportgen.types import SplitData

    x = breast_cancer_frame.drop(columns=["diagnosis"]).to_numpy(dtype=np.float32, copy=True)
    y = np.zeros(len(x), dtype=np.int64)

    def split(name: str, rows: np.ndarray) -> SplitData:
        return SplitData(name=name, dataset=TensorDataset(torch.from_numpy(rows), torch.from_numpy(y[: len(rows)])),
                         labels=y[: len(rows)], features=rows)

    train, test = split("train", x[:400]), split("test", x[400:].copy())
    ref, query = fingerprints.compute(train, 64), fingerprints.compute(test, 64)
    assert ref.nonfinite_values == 0 and ref.width == 30 and ref._hashes == {}  # counting hashed nothing
    clean = fingerprints.match(ref, query)
    assert not clean.found.any() and set(ref._hashes) == {"norm", "norm_shifted"}  # no exact hashes needed
    one_pass = [fingerprints.fingerprint_block(x[:400][i:i + 64]) for i in range(0, 400, 64)]
    for kind, column in (("exact", 0), ("norm", 1), ("norm_shifted", 2)):
        assert np.array_equal(getattr(ref, kind), np.concatenate([part[column] for part in one_pass]))

    planted = x[400:].copy()
    planted[3] = x[10]  # a bit-identical copy of train row 10
    planted[5] = np.float32(np.float64(x[20]) * (1 + 3e-8))  # train row 20 after a float32 rounding step
    found = fingerprints.match(ref, fingerprints.compute(split("test", planted), 64))
    assert np.flatnonzero(found.found).tolist() == [3, 5]
    assert found.index[[3, 5]].tolist() == [10, 20] and found.exact[[3, 5]].tolist() == [True, False]
