"""slice_performance and group_fairness on real data, with planted weak segments and hand-computed oracles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from check_helpers import (
    breast_cancer,
    context,
    diabetes,
    make_bundle,
    run,
    sklearn_predictions,
    split_rows,
    standardiser,
)
from scipy import stats
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import recall_score

from reportgen.checks.slice_checks import (
    benjamini_hochberg,
    encode_column,
    rmse_interval,
)
from reportgen.config import validate
from reportgen.data import load_data
from reportgen.errors import DataError
from reportgen.numbers import percent
from reportgen.types import Predictions

REGIONS = np.array(["north", "south", "east"])


def with_attributes(bundle, frames: dict[str, pd.DataFrame]):
    splits = {name: dataclasses.replace(split, attributes=frames[name].reset_index(drop=True)) for name, split in bundle.splits.items()}
    return dataclasses.replace(bundle, splits=splits)


def cancer_with_region(noisy_north: bool, seed: int = 0, loader=breast_cancer, task: str = "binary"):
    """A real data set with a planted 'region' column (and a random 'team'); with ``noisy_north`` the north rows'
    test labels are 45% flipped (regression: heavy noise on the target): a segment whose outcomes the model,
    trained on clean data, never learned."""
    X, y, classes, names = loader()
    rng = np.random.default_rng(seed)
    region = REGIONS[rng.integers(0, 3, len(y))]
    team = np.array(["A", "B"])[rng.integers(0, 2, len(y))]
    rows = split_rows(None if task == "regression" else y, len(y), test=0.5, seed=seed)
    y = y.copy()
    if noisy_north:
        north = (region == "north") & np.isin(np.arange(len(y)), rows["test"])
        if task == "regression":
            y[north] = y[north] + rng.normal(0, 120, north.sum())
        else:
            flip = north & (rng.random(len(y)) < 0.45)
            y[flip] = 1 - y[flip]
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle(task, {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names)
    frames = {k: pd.DataFrame(X[r], columns=list(names)).assign(region=region[r], team=team[r]) for k, r in rows.items()}
    bundle = with_attributes(bundle, frames)
    if task == "regression":
        model = LinearRegression().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    else:
        model = LogisticRegression(max_iter=2000, C=0.5).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    return context(bundle, sklearn_predictions(bundle, model)), frames["test"]


# ----------------------------------------------------------------------------- statistics against scipy


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(1).random(200) ** 4
    assert np.allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    assert benjamini_hochberg([]).size == 0


def test_rmse_interval_matches_the_chi_square_interval():
    for n, mse in ((30, 4.0), (500, 0.7)):
        lo, hi = rmse_interval(mse, n)
        assert lo == pytest.approx(np.sqrt(n * mse / stats.chi2.ppf(0.975, n)), rel=5e-3)
        assert hi == pytest.approx(np.sqrt(n * mse / stats.chi2.ppf(0.025, n)), rel=5e-3)


def test_numeric_columns_are_cut_in_quantile_bins_in_their_own_units():
    values = pd.Series(np.arange(100, dtype=float) * 10.0)
    col = encode_column("balance", values, bins=4, max_categories=20)
    assert col.labels == ("balance in [0, 247.5)", "balance in [247.5, 495)", "balance in [495, 742.5)", "balance in [742.5, 990]")
    assert np.bincount(col.codes).tolist() == [25, 25, 25, 25]
    text = encode_column("region", pd.Series(["n", "s", "n", "e"]), bins=4, max_categories=2)
    assert text.labels == ("region = n", "region = e") and text.codes.tolist() == [0, -1, 0, 1]
    assert encode_column("const", pd.Series(["a"] * 5), 4, 20) is None


# ----------------------------------------------------------------------------- slice_performance


def test_weak_region_is_found_with_its_numbers():
    ctx, test_frame = cancer_with_region(noisy_north=True)
    result = run("slice_performance", ctx)
    assert result.status == "warn", result.message  # warning by default
    worst = result.evidence["worst_slices"][0]
    assert worst["slice"] == "region = north" and worst["fails"]
    pred = ctx.predictions["test"]
    north = (test_frame["region"] == "north").to_numpy()
    # oracle: sklearn's recall on the slice and on the rest
    expected = recall_score(pred.y_true[north], pred.y_pred[north])
    rest = recall_score(pred.y_true[~north], pred.y_pred[~north])
    assert worst["metric"] == pytest.approx(expected) and worst["rest"] == pytest.approx(rest)
    assert worst["size"] == int(north.sum()) and worst["n"] == int((pred.y_true[north] == 1).sum())
    k = round(expected * worst["n"])
    ci = stats.binomtest(k, worst["n"]).proportion_ci(method="wilson")
    assert (worst["ci_low"], worst["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert f"The model's recall is {expected:.3f} in region = north (n = {int(north.sum())}) against {rest:.3f} elsewhere" in result.message
    assert result.value == pytest.approx(rest - expected)
    # numeric columns are sliced in the data's own units (raw attributes), not the standardised model inputs
    assert result.evidence["raw_values"] is True and "mean radius" in result.evidence["columns"]


def test_nested_pairs_of_a_weak_region_are_merged_into_it():
    ctx, _ = cancer_with_region(noisy_north=True)
    result = run("slice_performance", ctx, {"features": ["region", "team"], "pair_features": 2, "min_support": 10})
    assert result.evidence["pairs_searched"] == 1
    failing = [r["slice"] for r in result.evidence["worst_slices"] if r["fails"]]
    assert failing == ["region = north"]
    assert result.evidence["nested_merged"] >= 1


def test_clean_breast_cancer_has_no_weak_slice():
    ctx, _ = cancer_with_region(noisy_north=False)
    result = run("slice_performance", ctx)
    assert result.status == "pass", result.message
    assert result.evidence["slices_tested"] > 30
    assert not any(r["fails"] for r in result.evidence["worst_slices"])
    assert all(0 <= r["p_adjusted"] <= 1 for r in result.evidence["worst_slices"])


def test_regression_slices_use_rmse():
    ctx, test_frame = cancer_with_region(noisy_north=True, loader=diabetes, task="regression")
    result = run("slice_performance", ctx, {"features": ["region", "age", "sex"]})
    assert result.status == "warn", result.message
    worst = result.evidence["worst_slices"][0]
    assert worst["slice"] == "region = north"
    pred = ctx.predictions["test"]
    north = (test_frame["region"] == "north").to_numpy()
    err = pred.y_pred.astype(float) - pred.y_true
    assert worst["metric"] == pytest.approx(np.sqrt(np.mean(err[north] ** 2)))
    assert worst["gap"] == pytest.approx(worst["metric"] / np.sqrt(np.mean(err[~north] ** 2)) - 1)
    assert "RMSE" in result.message
    assert f"{percent(worst['gap'])} higher, above the 10% limit" in result.message  # max is relative for RMSE
    clean, _ = cancer_with_region(noisy_north=False, loader=diabetes, task="regression")
    passed = run("slice_performance", clean, {"features": ["region", "age", "sex", "bmi"]})
    assert passed.status == "pass" and passed.value > 0.1  # a gap past max that is not significant
    assert passed.message.startswith("No slice is worse than the rest by more than 10% in RMSE with significance")


def test_unknown_slice_feature_is_a_clear_error():
    ctx, _ = cancer_with_region(noisy_north=False)
    result = run("slice_performance", ctx, {"features": ["regoin"]})
    assert result.status == "error" and "'regoin'" in result.message


def test_python_factory_attributes_reach_the_split(tmp_path: Path):
    (tmp_path / "factory.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def make(n=40):\n"
        "    x = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2); y = (x[:, 0] > n).long()\n"
        "    region = ['north' if i % 3 == 0 else 'south' for i in range(10)]\n"
        "    return {'train': TensorDataset(x, y), 'test': TensorDataset(x[:10], y[:10]),\n"
        "            'attributes': {'test': {'region': region, 'age': list(range(10))}}}\n",
        encoding="utf-8",
    )
    cfg = validate({"name": "t", "task": "binary", "data": {"kind": "python", "factory": "factory.py:make"}, "model": {"kind": "mlp"}})
    bundle = load_data(cfg.data, "binary", lambda rel: tmp_path / rel, seed=0)
    frame = bundle.splits["test"].attributes
    assert list(frame.columns) == ["region", "age"] and frame["region"].tolist()[:4] == ["north", "south", "south", "north"]
    assert bundle.splits["train"].attributes is None
    (tmp_path / "bad.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def make():\n    x = torch.zeros(6, 2); y = torch.tensor([0, 1] * 3)\n"
        "    return {'train': TensorDataset(x, y), 'test': TensorDataset(x, y), 'attributes': {'test': {'r': [1, 2]}}}\n",
        encoding="utf-8",
    )
    cfg = validate({"name": "t", "task": "binary", "data": {"kind": "python", "factory": "bad.py:make"}, "model": {"kind": "mlp"}})
    with pytest.raises(DataError, match="attributes of the test split have 2 rows for 6 samples"):
        load_data(cfg.data, "binary", lambda rel: tmp_path / rel, seed=0)


# ----------------------------------------------------------------------------- group_fairness


def fairlearn_differences(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Fairlearn's definitions written out: DP difference = max - min selection rate over groups;
    EO difference = max(TPR difference, FPR difference), each difference max - min over groups."""
    frame = pd.DataFrame({"y": y_true, "p": y_pred, "g": groups})
    selection = frame.groupby("g")["p"].mean()
    tpr = frame[frame.y == 1].groupby("g")["p"].mean()
    fpr = frame[frame.y == 0].groupby("g")["p"].mean()
    return float(selection.max() - selection.min()), float(max(tpr.max() - tpr.min(), fpr.max() - fpr.min()))


def fairness_case(unfair: bool, seed: int = 0):
    X, y, classes, names = breast_cancer()
    rng = np.random.default_rng(seed)
    sex = np.array(["F", "M"])[rng.integers(0, 2, len(y))]
    rows = split_rows(y, len(y), test=0.5, seed=seed)
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names)
    bundle = with_attributes(bundle, {k: pd.DataFrame({"sex": sex[r], "mean radius": X[r, 0]}) for k, r in rows.items()})
    model = LogisticRegression(max_iter=2000, C=0.05).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    preds = sklearn_predictions(bundle, model)
    if unfair:  # a planted bias: women need a far higher score to be flagged
        test = preds["test"]
        p = test.probs[:, 1]
        women = sex[rows["test"]] == "F"
        y_pred = np.where(p >= np.where(women, 0.97, 0.5), 1, 0).astype(np.int64)
        preds["test"] = Predictions("test", test.y_true, y_pred, test.probs, test.loss)
    return context(bundle, preds), sex[rows["test"]]


@pytest.mark.parametrize("unfair", [True, False])
def test_group_fairness_matches_fairlearn_definitions(unfair):
    ctx, sex = fairness_case(unfair)
    result = run("group_fairness", ctx, {"sensitive": ["sex"]})
    pred = ctx.predictions["test"]
    dp, eo = fairlearn_differences(pred.y_true, pred.y_pred, sex)
    row = result.evidence["differences"][0]
    assert row["demographic_parity_difference"] == pytest.approx(dp)
    assert row["equalized_odds_difference"] == pytest.approx(eo)
    assert result.value == pytest.approx(max(dp, eo))
    women = next(g for g in result.evidence["groups"] if g["group"] == "F")
    k = int(((pred.y_pred == 1) & (sex == "F")).sum())
    ci = stats.binomtest(k, int((sex == "F").sum())).proportion_ci(method="wilson")
    assert women["selection_ci95"] == pytest.approx([ci.low, ci.high])
    if unfair:
        assert result.status == "warn" and eo > 0.3
        assert "'sex'" in result.message
    else:
        assert result.status == "pass", result.message


def test_group_fairness_skips_without_sensitive_columns_and_outside_binary():
    ctx, _ = fairness_case(False)
    result = run("group_fairness", ctx)
    assert result.status == "skip" and "sensitive" in result.message
    multi = dataclasses.replace(ctx, task="multiclass")
    assert run("group_fairness", multi, {"sensitive": ["sex"]}).status == "skip"


def test_numeric_sensitive_column_is_grouped_in_quantile_bins():
    ctx, _ = fairness_case(False)
    result = run("group_fairness", ctx, {"sensitive": ["mean radius"], "bins": 3})
    assert result.evidence["differences"][0]["groups"] == 3
    assert sum(g["n"] for g in result.evidence["groups"]) == ctx.predictions["test"].n


def test_slice_and_fairness_evidence_render_as_tables_and_a_chart(monkeypatch):
    from reportgen.render import plots, view

    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)  # a chart drawing outside its figure raises
    ctx, _ = cancer_with_region(noisy_north=True)
    sliced = view.evidence_view(run("slice_performance", ctx))
    table = sliced["items"][0]["table"]
    assert table["rows"][0]["cells"][0]["text"] == "region = north" and table["rows"][0]["cells"][-1]["text"] == "fails"
    assert sliced["chart"].startswith("<svg") and "region = north" in sliced["chart"]
    fair_ctx, _ = fairness_case(True)
    fair = view.evidence_view(run("group_fairness", fair_ctx, {"sensitive": ["sex"]}))
    groups = next(i for i in fair["items"] if i["key"] == "groups")["table"]
    assert sorted(r["cells"][1]["text"] for r in groups["rows"]) == ["F", "M"]
    assert "–" in groups["rows"][0]["cells"][3]["text"]  # rate and its 95% interval in one cell
    # and the whole report renders them through the real templates (HTML and PDF share them)
    import dataclasses

    import report_fixtures as F
    from reportgen.render import RenderOptions
    from reportgen.render.html import render_html

    results = (run("slice_performance", ctx), run("group_fairness", fair_ctx, {"sensitive": ["sex"]}))
    report = dataclasses.replace(F.passing_binary(), checks=F.passing_binary().checks + results)
    html = render_html(report, RenderOptions()).decode("utf-8")
    assert "region = north" in html and "Worst slices" in html


def test_multiclass_slices_use_accuracy():
    from check_helpers import wine
    from sklearn.metrics import accuracy_score

    X, y, classes, names = wine()
    rng = np.random.default_rng(0)
    region = REGIONS[rng.integers(0, 3, len(y))]
    rows = split_rows(y, len(y), test=0.5)
    y = y.copy()
    north_test = (region == "north") & np.isin(np.arange(len(y)), rows["test"])
    y[north_test] = (y[north_test] + rng.integers(1, 3, north_test.sum())) % 3  # a wrong class for every north test row
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("multiclass", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names)
    bundle = with_attributes(bundle, {k: pd.DataFrame({"region": region[r], "alcohol": X[r, 0]}) for k, r in rows.items()})
    model = LogisticRegression(max_iter=2000).fit(bundle.splits["train"].features, bundle.splits["train"].labels)
    ctx = context(bundle, sklearn_predictions(bundle, model))
    result = run("slice_performance", ctx, {"min_support": 20})
    assert result.status == "warn", result.message
    worst = result.evidence["worst_slices"][0]
    pred = ctx.predictions["test"]
    north = region[rows["test"]] == "north"
    assert worst["slice"] == "region = north" and result.evidence["metric"] == "accuracy"
    assert worst["metric"] == pytest.approx(accuracy_score(pred.y_true[north], pred.y_pred[north]))
    assert worst["rest"] == pytest.approx(accuracy_score(pred.y_true[~north], pred.y_pred[~north]))
    assert "accuracy" in result.message


# ----------------------------------------------------------------------------- slice columns, wording, threshold

AUTO = Path(__file__).resolve().parent.parent / "sample_configs" / "data" / "auto.csv"


def auto_mpg(ignore: list[str], planted: bool = True):
    """ISLR Auto (mpg regression) loaded as the sample config does. With ``planted``, the predictions miss by
    exactly 0.5 mpg on 4-cylinder cars and 2 mpg elsewhere, so the 4-cylinder slice is *better* than the rest."""
    cfg = validate({"name": "auto", "task": "regression", "model": {"kind": "mlp"},
                    "data": {"kind": "csv", "path": str(AUTO), "target": "mpg", "ignore": ignore,
                             "categorical": ["origin"], "split": {"val": 0.15, "test": 0.2, "stratify": False}}})
    bundle = load_data(cfg.data, "regression", lambda rel: Path(rel), seed=0)
    if planted:
        preds = {}
        for name, split in bundle.splits.items():
            four = (split.attributes["cylinders"] == 4).to_numpy()
            preds[name] = Predictions(name, split.labels, (split.labels + np.where(four, 0.5, 2.0)).astype(np.float32), None, 0.0)
    else:
        model = LinearRegression().fit(bundle.splits["train"].features, bundle.splits["train"].labels)
        preds = sklearn_predictions(bundle, model)
    return context(bundle, preds)


def test_ignored_and_identifier_columns_are_not_sliced_and_a_better_slice_is_not_called_weakest():
    ctx = auto_mpg(["rownames", "name"])
    result = run("slice_performance", ctx)
    assert result.evidence["columns"] == ["cylinders", "displacement", "horsepower", "weight", "acceleration", "year", "origin"]
    assert [c["column"] for c in result.evidence["columns_left_out"]] == ["rownames", "name"]
    assert result.status == "pass" and result.threshold == pytest.approx(0.1)  # the Required column reads it
    tested = result.evidence["worst_slices"]
    assert all(r["metric"] < r["rest"] for r in tested) and result.value <= 0  # only better-than-rest slices
    assert result.message.startswith("No slice is worse than the rest in RMSE") and "weakest" not in result.message
    assert "0.500 against 2.000 elsewhere" in result.message  # oracle: the planted errors
    # named explicitly, an ignored column is sliced; identifier-like columns never are
    named = run("slice_performance", ctx, {"features": ["rownames", "name", "year"], "min_support": 10})
    assert named.evidence["columns"] == ["year"]
    assert {c["column"]: c["reason"].split(":")[0] for c in named.evidence["columns_left_out"]} == {
        "rownames": "identifier-like", "name": "identifier-like"}
    ignored_origin = auto_mpg(["rownames", "name", "origin"], planted=False)
    assert "origin" not in run("slice_performance", ignored_origin).evidence["columns"]
    assert run("slice_performance", ignored_origin, {"features": ["origin"], "min_support": 10}).evidence["columns"] == ["origin"]


def test_slice_threshold_is_the_base_max_with_max_gap_as_its_deprecated_name():
    from reportgen.checks.base import registry
    from reportgen.errors import ConfigError

    ctx, _ = cancer_with_region(noisy_north=True)
    strict, loose = run("slice_performance", ctx, {"max": 0.1}), run("slice_performance", ctx, {"max_gap": 0.9})
    assert strict.threshold == 0.1 and strict.status == "warn" and "above the 0.1 limit" in strict.message
    assert loose.threshold == 0.9 and loose.status == "pass"
    assert run("slice_performance", ctx, {"max": 0.9}).evidence == loose.evidence
    spec = registry.get("slice_performance").spec
    assert spec.threshold_key == "max" and spec.default_threshold == 0.1
    base = {"name": "t", "task": "binary", "data": {"kind": "csv", "path": "x.csv", "target": "y"}, "model": {"kind": "mlp"}}
    validate({**base, "checks": {"slice_performance": {"max_gap": 0.2}}})
    with pytest.raises(ConfigError, match="max or its deprecated name max_gap, not both"):
        validate({**base, "checks": {"slice_performance": {"max_gap": 0.2, "max": 0.2}}})
    with pytest.raises(ConfigError, match="max must be from 0 to 1"):
        validate({**base, "checks": {"slice_performance": {"max_gap": 1.5}}})


def test_skip_says_plainly_why_no_slice_was_tested():
    ctx, _ = cancer_with_region(noisy_north=False)
    result = run("slice_performance", ctx, {"min_support": 10_000})
    assert result.status == "skip"
    positive = ctx.classes[ctx.positive_index]
    assert result.message == ("no slice could be tested: every slice, or the rest of the test data outside it, has fewer "
                              f"than 10,000 actual positives ({positive!r}) to measure recall on (lower min_support to "
                              "test smaller slices)")
