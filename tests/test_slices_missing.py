"""Empty cells in a sliced column (data.missing: mean keeps them as NaN in the attributes) form their own
"missing" slice in slice_performance and group in group_fairness, on the breast cancer data with planted gaps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from check_helpers import breast_cancer, context, make_bundle, run, sklearn_predictions, split_rows, standardiser
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score

from reportgen.checks.slice_checks import encode_column
from reportgen.types import Predictions


def test_empty_cells_form_a_missing_slice_in_every_kind_of_column():
    """A 0/1 flag (at most `bins` values, sliced by value), a binned number and a text column, each with gaps."""
    rng = np.random.default_rng(0)
    flag = pd.Series(rng.integers(0, 2, 200).astype(float))
    flag[rng.random(200) < 0.1] = np.nan
    col = encode_column("flag", flag, bins=5, max_categories=20)
    assert set(col.labels) == {"flag = 0", "flag = 1", "flag missing"}
    missing = col.labels.index("flag missing")
    assert ((col.codes == missing) == flag.isna().to_numpy()).all() and (col.codes >= 0).all()

    amount = pd.Series(np.arange(100, dtype=float))
    amount[[3, 50]] = [np.nan, np.inf]  # data.missing reads an infinite cell as an empty one
    col = encode_column("amount", amount, bins=4, max_categories=20)
    assert col.labels[-1] == "amount missing" and np.flatnonzero(col.codes == len(col.labels) - 1).tolist() == [3, 50]

    text = pd.Series(["a", None, "b", np.nan, "a"], dtype=object)
    col = encode_column("region", text, bins=4, max_categories=20)
    assert [col.labels[c] for c in col.codes] == ["region = a", "region missing", "region = b", "region missing", "region = a"]
    assert encode_column("gaps", pd.Series([np.nan] * 4), 4, 20) is None


def _flag_case(flip_missing: bool, seed: int = 0):
    """Breast cancer with a real 0/1 attribute (mean radius above its median), 10% of its cells emptied;
    with ``flip_missing`` the test labels of 60% of the emptied rows are flipped: the model fails there."""
    X, y, classes, names = breast_cancer()
    rng = np.random.default_rng(seed)
    flag = (X[:, 0] > np.median(X[:, 0])).astype(float)
    gaps = rng.random(len(y)) < 0.1
    flag[gaps] = np.nan
    rows = split_rows(y, len(y), test=0.5, seed=seed)
    y = y.copy()
    if flip_missing:
        flip = gaps & np.isin(np.arange(len(y)), rows["test"]) & (rng.random(len(y)) < 0.6)
        y[flip] = 1 - y[flip]
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names)
    splits = {k: dataclasses.replace(s, attributes=pd.DataFrame({"flag": flag[rows[k]]})) for k, s in bundle.splits.items()}
    bundle = dataclasses.replace(bundle, splits=splits)
    model = LogisticRegression(max_iter=2000, C=0.5).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    return context(bundle, sklearn_predictions(bundle, model)), np.isnan(flag[rows["test"]])


def test_slice_performance_finds_a_model_that_fails_where_values_are_missing():
    ctx, missing = _flag_case(flip_missing=True)
    result = run("slice_performance", ctx, {"min_support": 5})
    assert result.status == "warn", result.message
    worst = result.evidence["worst_slices"][0]
    assert worst["slice"] == "flag missing" and worst["fails"] and worst["size"] == int(missing.sum())
    pred = ctx.predictions["test"]
    assert worst["metric"] == pytest.approx(recall_score(pred.y_true[missing], pred.y_pred[missing]))


def test_slice_performance_with_missing_cells_and_nothing_planted_passes():
    ctx, missing = _flag_case(flip_missing=False)
    result = run("slice_performance", ctx, {"min_support": 5})
    assert result.status == "pass", result.message
    assert result.evidence["slices_tested"] == 3


def test_group_fairness_counts_missing_cells_as_a_group():
    """Fairlearn's definitions with the empty cells as one more group: DP difference = max - min selection rate."""
    ctx, missing = _flag_case(flip_missing=False)
    pred = ctx.predictions["test"]
    y_pred = pred.y_pred.copy()
    y_pred[missing] = 0  # a planted bias: nobody whose value is missing is selected
    ctx = dataclasses.replace(ctx, predictions={**ctx.predictions, "test": Predictions("test", pred.y_true, y_pred, pred.probs, pred.loss)})
    result = run("group_fairness", ctx, {"sensitive": ["flag"]})
    groups = {g["group"]: g for g in result.evidence["groups"]}
    assert set(groups) == {"0", "1", "missing"} and groups["missing"]["n"] == int(missing.sum())
    flag = ctx.data.splits["test"].attributes["flag"].to_numpy()
    labels = np.where(missing, "missing", flag.astype(str))
    selection = pd.Series(y_pred).groupby(labels).mean()
    assert result.evidence["differences"][0]["demographic_parity_difference"] == pytest.approx(selection.max() - selection.min())
    assert groups["missing"]["selection_rate"] == 0.0 and result.status == "warn"
