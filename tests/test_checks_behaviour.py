"""Behaviour checks on real torch models and data: stochasticity, batch dependence, robustness, feature importance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from check_helpers import (
    breast_cancer,
    context,
    digits,
    make_bundle,
    mlp,
    run,
    split_rows,
    standardiser,
    tabular_bundle,
    torch_predictions,
    train_model,
)
from torch import nn

from reportgen.checks.behaviour_checks import feature_groups, sample_indices


def with_model(bundle, model, seed: int = 0):
    """A check context holding the evaluated torch model, as the pipeline builds it."""
    model.eval()
    ctx = context(bundle, torch_predictions(bundle, model))
    return dataclasses.replace(ctx, model=model, device=torch.device("cpu"), output_kind="softmax", seed=seed, batch_size=64)


@pytest.fixture(scope="module")
def cancer():
    bundle, *_ = tabular_bundle(breast_cancer, "binary")
    return bundle


@pytest.fixture(scope="module")
def cancer_mlp(cancer):
    model = mlp(30, 2, hidden=(16,))
    train_model(model, cancer, epochs=30, lr=3e-3)
    return model


class KeepsDropoutOn(nn.Module):
    """A planted defect: dropout called with training=True, so model.eval() does not turn it off."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(F.dropout(x, p=0.3, training=True))


class CentresEachBatch(nn.Module):
    """A planted defect: each batch is centred on its own mean (per-batch normalisation in forward)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x - x.mean(dim=0, keepdim=True))


class BatchStatsNorm(nn.Module):
    """A planted defect: batch normalisation that always uses the batch's statistics (training=True)."""

    def __init__(self, body: nn.Module, width: int):
        super().__init__()
        self.body = body
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x):
        return self.body(F.batch_norm(x, None, None, self.norm.weight, self.norm.bias, training=True))


class Jittery(nn.Module):
    """A planted defect: a high-frequency term in the logits of a good model, so tiny input changes flip answers."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        out = self.body(x)
        wobble = 30.0 * torch.sin(400.0 * x[:, 0])
        return out + torch.stack([-wobble, wobble], dim=1)


# ----------------------------------------------------------------------------- stochasticity


def test_clean_model_is_deterministic_and_leaves_the_rng_alone(cancer, cancer_mlp):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    result = run("stochasticity", with_model(cancer, cancer_mlp))
    assert torch.equal(torch.rand(3), expected)  # the check forked the RNG: the rest of the run is undisturbed
    assert result.status == "pass", result.message
    assert result.value == 0.0
    assert result.evidence["changed"] == 0 and result.evidence["samples"] == cancer.splits["test"].n


def test_dropout_left_on_at_evaluation_fails(cancer, cancer_mlp):
    ctx = with_model(cancer, KeepsDropoutOn(cancer_mlp))
    result = run("stochasticity", ctx)
    assert result.status == "fail"
    assert result.value > 0.01
    assert 0 < result.evidence["changed"] <= result.evidence["samples"]
    assert result.evidence["changed_share"] == pytest.approx(result.evidence["changed"] / result.evidence["samples"])
    assert "dropout" in result.message
    # batch_dependence cannot judge a random model: it says so instead of blaming the batch
    assert run("batch_dependence", ctx).status == "skip"


def test_stochasticity_samples_at_most_max_samples(cancer, cancer_mlp):
    result = run("stochasticity", with_model(cancer, cancer_mlp), {"max_samples": 50})
    assert result.evidence["samples"] == 50
    rows = sample_indices(1000, 50, 7)
    assert len(rows) == 50 and len(set(rows.tolist())) == 50 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, sample_indices(1000, 50, 7))


# ----------------------------------------------------------------------------- batch dependence


def test_clean_model_is_batch_independent(cancer, cancer_mlp):
    result = run("batch_dependence", with_model(cancer, cancer_mlp))
    assert result.status == "pass", result.message
    assert result.value < 1e-5
    names = [a["arrangement"] for a in result.evidence["arrangements"]]
    assert names[1] == "batches of 64 (data.batch_size)" and len(names) == 4, names
    assert "as the metrics were scored" in result.message


class ShiftsLargeBatches(nn.Module):
    """A planted defect: a batch larger than 64 samples gets +5 on the positive logit (the attacker's m.py)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        out = self.body(x)
        return out + torch.tensor([0.0, 5.0]) if x.shape[0] > 64 else out


def test_model_that_changes_in_the_scoring_batch_fails(cancer, cancer_mlp):
    """data.batch_size is 64, but evaluation scores the metrics in larger batches (inference_batch_size):
    the check's reference is that scoring batch, so a model that changes only above 64 samples fails."""
    from reportgen.evaluation import inference_batch_size

    result = run("batch_dependence", with_model(cancer, ShiftsLargeBatches(cancer_mlp)))
    n = result.evidence["samples"]
    assert n > 64 and result.evidence["scoring_batch_size"] == min(inference_batch_size(64, (30,)), n)
    assert result.status == "fail" and result.value > 0.1
    assert "batches of 64 (data.batch_size) instead of batches of" in result.message


def test_the_reference_is_the_batch_the_metrics_come_from(tmp_path, cancer_csv):
    """A run end to end: the metrics are scored in the scoring batch, where the planted shift is on."""
    from conftest import cancer_config, read_results, user_model, write_config
    from test_cli import run_cli

    model = user_model(tmp_path, "Shift", "self.lin = torch.nn.Linear(30, 1)",
                       "self.lin(x) + (5.0 if x.shape[0] > 64 else 0.0)")
    document = cancer_config(cancer_csv, model=model)
    document["data"]["batch_size"] = 64
    document["training"] = {"epochs": 2, "lr": 0.01}
    path = write_config(tmp_path, document)
    code, _, err = run_cli("run", str(path), "--out", str(tmp_path / "out"))
    assert code == 1, err
    check = next(c for c in read_results(tmp_path / "out")["checks"] if c["id"] == "batch_dependence")
    assert check["status"] == "fail", check["message"]
    assert check["evidence"]["scoring_batch_size"] > 64


def test_model_that_centres_each_batch_fails(cancer, cancer_mlp):
    result = run("batch_dependence", with_model(cancer, CentresEachBatch(cancer_mlp)))
    assert result.status == "fail"
    assert result.value > 0.05
    alone = next(a for a in result.evidence["arrangements"] if a["arrangement"].startswith("one sample"))
    assert alone["max_score_difference"] > 0.05  # one sample alone is centred to all zeros


def test_batch_statistics_norm_fails_when_one_sample_is_scored_alone(cancer, cancer_mlp):
    result = run("batch_dependence", with_model(cancer, BatchStatsNorm(cancer_mlp, 30)))
    assert result.status == "fail"
    assert "one sample alone" in result.message
    assert any("error" in a for a in result.evidence["arrangements"])


# ----------------------------------------------------------------------------- robustness


def test_smooth_model_is_robust_to_small_noise(cancer, cancer_mlp):
    result = run("robustness", with_model(cancer, cancer_mlp))
    assert result.status == "pass", result.message
    assert result.value <= 0.05
    assert len(result.evidence["flip_rates"]) == 2
    # each perturbation names its sigma against the noise setting the evidence shows
    assert [r["perturbation"] for r in result.evidence["flip_rates"]] == [
        "Gaussian noise, sigma = 0.025 x train std per numeric feature (half the noise setting 0.05)",
        "Gaussian noise, sigma = 0.05 x train std per numeric feature (the noise setting)"]
    assert result.evidence["noise"] == 0.05


def test_jittery_model_flips_under_small_noise(cancer, cancer_mlp):
    result = run("robustness", with_model(cancer, Jittery(cancer_mlp)))
    assert result.status == "warn"  # warning by default
    assert result.value > 0.2
    worst = max(result.evidence["flip_rates"], key=lambda r: r["flip_rate"])
    assert worst["flip_rate"] == pytest.approx(worst["flipped"] / result.evidence["samples"])
    examples = result.evidence["examples"]
    assert examples and all(e["predicted"] != e["after"] for e in examples)
    assert {e["sample"] for e in examples} <= set(cancer.splits["test"].source_rows.tolist())
    # a zero budget flips nothing
    assert run("robustness", with_model(cancer, Jittery(cancer_mlp)), {"noise": 0.0}).value == 0.0


def test_robustness_leaves_one_hot_columns_alone():
    from reportgen.checks.behaviour_checks import one_hot_columns

    mask = one_hot_columns(("balance", "student=No", "student=Yes"), 3)
    assert mask.tolist() == [False, True, True]
    assert one_hot_columns(None, 2).tolist() == [False, False]


# ----------------------------------------------------------------------------- feature importance


def test_feature_groups_keep_one_hot_columns_of_a_categorical_together():
    groups = feature_groups(("balance", "income", "student=No", "student=Yes"), 4)
    assert groups == [("balance", [0]), ("income", [1]), ("student", [2, 3])]


def test_leaked_feature_dominates_permutation_importance():
    X, y, classes, names = breast_cancer()
    rng = np.random.default_rng(0)
    leak = y + rng.normal(0, 0.05, len(y))  # a planted copy of the label
    X = np.column_stack([X, leak])
    rows = split_rows(y, len(y))
    transform = standardiser(X[rows["train"]])
    bundle = make_bundle("binary", {k: (transform(X[r]), y[r], r) for k, r in rows.items()}, classes, names + ("leak",))
    model = mlp(31, 2, hidden=(16,))
    train_model(model, bundle, epochs=30, lr=3e-3)
    result = run("feature_importance", with_model(bundle, model))
    assert result.status == "pass" and result.severity == "info"
    top = result.evidence["importances"][0]
    assert top["feature"] == "leak"
    assert top["importance"] > 0.04 and top["importance"] > 3 * result.evidence["importances"][1]["importance"]
    assert result.value > 0.3


def test_permutation_importance_matches_a_hand_computed_drop(cancer, cancer_mlp):
    """Oracle: shuffle one column with the same generator sequence and recompute balanced accuracy with sklearn."""
    from sklearn.metrics import balanced_accuracy_score

    ctx = with_model(cancer, cancer_mlp, seed=3)
    result = run("feature_importance", ctx, {"repeats": 2})
    x = cancer.splits["test"].dataset.tensors[0]
    y = cancer.splits["test"].labels
    rng = np.random.default_rng(3)
    with torch.no_grad():
        base = balanced_accuracy_score(y, torch.softmax(cancer_mlp(x), 1)[:, 1].numpy() >= 0.5)
        drops = []
        for _ in range(2):  # the first feature is shuffled first
            perm = torch.from_numpy(rng.permutation(len(x)))
            shuffled = x.clone()
            shuffled[:, [0]] = x[perm][:, [0]]
            drops.append(base - balanced_accuracy_score(y, torch.softmax(cancer_mlp(shuffled), 1)[:, 1].numpy() >= 0.5))
    row = next(r for r in result.evidence["importances"] if r["feature"] == cancer.feature_names[0])
    assert row["importance"] == pytest.approx(np.mean(drops), abs=1e-9)
    assert row["std"] == pytest.approx(np.std(drops), abs=1e-9)


class OnePixel(nn.Module):
    """An image model that only looks at pixel (3, 5)."""

    def forward(self, x):
        v = x[:, 0, 3, 5]
        return torch.stack([-4 * v, 4 * v], dim=1)


def test_gradient_x_input_points_at_the_pixel_an_image_model_uses():
    X, y, _, _ = digits()
    yb = (y >= 5).astype(np.int64)
    rows = split_rows(yb, len(yb))
    bundle = make_bundle("binary", {k: (X[r].astype(np.float32), yb[r], r) for k, r in rows.items()}, ("low", "high"),
                         None, image_shape=(1, 8, 8))
    model = OnePixel()
    result = run("feature_importance", with_model(bundle, model))
    assert result.evidence["method"] == "gradient_x_input"
    assert result.evidence["top_positions"][0] == {"row": 3, "column": 5, "attribution": pytest.approx(result.evidence["attribution_map"][3][5])}
    assert result.value == pytest.approx(1.0)


def test_feature_importance_renders_a_chart(cancer, cancer_mlp, monkeypatch):
    from reportgen.render import plots, view

    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    shown = view.evidence_view(run("feature_importance", with_model(cancer, cancer_mlp), {"repeats": 2}))
    assert shown["chart"].startswith("<svg") and "Permutation importance" in shown["chart"]
    assert next(i for i in shown["items"] if i["key"] == "importances")["table"] is not None


class PixelAbove(nn.Module):
    """An image model that answers 'high' exactly when pixel (6, 10) is at least 0.5."""

    def forward(self, x):
        v = x[:, 0, 6, 10] - 0.5
        return torch.stack([-8 * v, 8 * v], dim=1)


def test_image_robustness_shifts_images_of_16_pixels_and_counts_flips_exactly():
    X, y, _, _ = digits()
    images = np.kron(X.reshape(-1, 8, 8), np.ones((2, 2)))  # 16 x 16 digits
    yb = (y >= 5).astype(np.int64)
    rows = split_rows(yb, len(yb))
    bundle = make_bundle("binary", {k: (images[r].reshape(len(r), -1).astype(np.float32), yb[r], r) for k, r in rows.items()},
                         ("low", "high"), None, image_shape=(1, 16, 16))
    result = run("robustness", with_model(bundle, PixelAbove()))
    rates = {r["perturbation"]: r for r in result.evidence["flip_rates"]}
    test = images[rows["test"]]
    before = test[:, 6, 10] >= 0.5
    # oracle: shifted right, pixel (6, 10) shows what pixel (6, 9) held; shifted down, pixel (5, 10)
    assert rates["shift by 1 pixel right"]["flipped"] == int((before != (test[:, 6, 9] >= 0.5)).sum())
    assert rates["shift by 1 pixel down"]["flipped"] == int((before != (test[:, 5, 10] >= 0.5)).sum())
    assert result.value == max(r["flip_rate"] for r in rates.values())
    small = make_bundle("binary", {k: (X[r].astype(np.float32), yb[r], r) for k, r in rows.items()}, ("low", "high"),
                        None, image_shape=(1, 8, 8))
    only_noise = run("robustness", with_model(small, OnePixel()))
    assert [r["perturbation"] for r in only_noise.evidence["flip_rates"]] == ["Gaussian noise, sigma = 0.05 x pixel std"]


class SqueezesBatch(nn.Module):
    """A planted defect: squeeze() in forward drops the batch axis when a batch holds one sample."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x).squeeze()


def test_model_that_cannot_score_one_sample_alone_fails_batch_dependence(cancer, cancer_mlp):
    result = run("batch_dependence", with_model(cancer, SqueezesBatch(cancer_mlp)))
    assert result.status == "fail"
    assert "returned 2 rows for a batch of 1" in result.message


class PixelTokens(nn.Module):
    """Reads each digit pixel's intensity (0..16) as a token id: a model that needs integer inputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(17, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.embed(x).mean(dim=1))


def test_a_model_of_integer_inputs_is_scored_on_integer_inputs():
    from sklearn.datasets import load_digits

    from reportgen.types import DataBundle, SplitData

    bunch = load_digits()
    tokens, y = bunch.data.astype(np.int64), bunch.target.astype(np.int64)
    rows = split_rows(y, len(y))
    splits = {name: SplitData(name=name, dataset=torch.utils.data.TensorDataset(torch.from_numpy(tokens[r]), torch.from_numpy(y[r])),
                              labels=y[r], source="digits") for name, r in rows.items()}
    bundle = DataBundle(task="multiclass", splits=splits, classes=tuple(str(i) for i in range(10)), positive_index=None,
                        feature_names=None, input_shape=(64,))
    model = PixelTokens().eval()
    with torch.no_grad():
        probs = {name: torch.softmax(model(torch.from_numpy(tokens[r])), dim=1).numpy() for name, r in rows.items()}
    from reportgen.types import Predictions

    predictions = {name: Predictions(split=name, y_true=y[r], y_pred=probs[name].argmax(1), probs=probs[name], loss=0.0)
                   for name, r in rows.items()}
    ctx = dataclasses.replace(context(bundle, predictions), model=model, device=torch.device("cpu"), output_kind="softmax")
    assert ctx.row_sample("test").split.dataset.tensors[0].dtype == torch.int64
    assert run("stochasticity", ctx).status == "pass"
    assert run("batch_dependence", ctx).status == "pass"
    robust = run("robustness", ctx)
    assert robust.status == "skip" and "not floating-point" in robust.message
