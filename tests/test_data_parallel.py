"""reportgen.data_parallel: training on two real gloo workers (127.0.0.1) against the one-process training.

Each scenario trains a small model on scikit-learn data whose train split does not divide evenly
between two workers (nor into batches; some have a last batch of one row, so one worker's part is
empty). The two workers (this file's ``_worker`` in ``python -c``) call ``reportgen.training.train``
with their World and write what they got; the oracle is the same ``train`` in one process here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from reportgen.config import TrainingConfig
from reportgen.data_parallel import has_unused_parameters, mean_denominator
from reportgen.distributed import World, join_world, shard_bounds
from reportgen.models import build_mlp
from reportgen.outputs import class_weights_for
from reportgen.runinfo import seed_everything
from reportgen.training import train
from reportgen.types import DataBundle, SplitData
from worlds import run_world

TESTS = Path(__file__).resolve().parent
WEIGHT_RTOL = 1e-5
"""Largest relative difference (per tensor, in the max norm; per history value) allowed between the
two-worker and the one-process training. Observed: at most 1.8e-7 for the weights and 3e-7 for the
history (float32 sums added in another order, through 4-5 epochs)."""


class _RowDataset(torch.utils.data.Dataset):
    """A dataset without ``tensors``: training batches it through a DataLoader."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


def _standardised(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _split(name: str, x: np.ndarray, y: np.ndarray, tensors: bool) -> SplitData:
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) if tensors else _RowDataset(x, y)
    return SplitData(name, dataset, y, features=x)


def _bundle(task: str, x: np.ndarray, y: np.ndarray, n_train: int, n_val: int, classes: tuple[str, ...],
            positive_index: int | None, tensors: bool = True) -> DataBundle:
    order = np.random.default_rng(0).permutation(len(y))
    train_rows, val_rows = order[:n_train], order[n_train : n_train + n_val]
    splits = {"train": _split("train", x[train_rows], y[train_rows], tensors),
              "val": _split("val", x[val_rows], y[val_rows], tensors)}
    return DataBundle(task, splits, classes, positive_index, None, (x.shape[1],))


def _wine_weighted() -> dict[str, Any]:
    """Multiclass, softmax, class-weighted cross-entropy, Adam, early stopping on val_loss (patience 1).

    101 train rows in batches of 25: parts of 13 and 12 rows, and a last batch of one row (rank 1 empty).
    """
    from sklearn.datasets import load_wine

    bunch = load_wine()
    data = _bundle("multiclass", _standardised(bunch.data), bunch.target.astype(np.int64), 101, 50, ("0", "1", "2"), None)
    config = TrainingConfig(epochs=12, lr=0.05, class_weights="balanced", early_stopping={"patience": 1})
    return {"data": data, "config": config, "outputs": 3, "hidden": [8], "output_kind": "softmax", "batch_size": 25}


def _cancer_one_bad_row() -> dict[str, Any]:
    """Binary, one sigmoid logit, BCE; one train row holds an infinite feature, so its batch's loss is NaN.

    Only the worker whose part holds that row sees the NaN; both must stop at that step.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = _standardised(bunch.data)
    data = _bundle("binary", x, bunch.target.astype(np.int64), 151, 60, ("malignant", "benign"), 1)
    train_x = data.splits["train"].dataset.tensors[0]  # type: ignore[attr-defined]
    train_x[97, 3] = math.inf
    config = TrainingConfig(epochs=3, lr=0.01)
    return {"data": data, "config": config, "outputs": 1, "hidden": [4], "output_kind": "sigmoid", "batch_size": 33}


def _diabetes_rows() -> dict[str, Any]:
    """Regression, MSE, SGD with momentum, a dataset without tensors (the DataLoader's shuffle)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    target = ((bunch.target - bunch.target.mean()) / bunch.target.std()).astype(np.float32)
    data = _bundle("regression", _standardised(bunch.data), target, 113, 60, (), None, tensors=False)
    config = TrainingConfig(epochs=4, optimizer="sgd", lr=0.02, momentum=0.9)
    return {"data": data, "config": config, "outputs": 1, "hidden": [8], "output_kind": "regression", "batch_size": 16}


class WithUnusedLayer(torch.nn.Module):
    """An MLP beside a trainable layer its forward never uses (no gradient reaches it)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.used = build_mlp((inputs,), outputs, [8], 0.0)
        self.unused = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def _wine_unused_layer() -> dict[str, Any]:
    """Multiclass with a layer the forward skips: DDP must not wait for its gradient, which stays None."""
    scenario = _wine_weighted()
    scenario["config"] = TrainingConfig(epochs=2, lr=0.05)
    scenario["model"] = lambda: WithUnusedLayer(13, 3)
    return scenario


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "wine_weighted": _wine_weighted, "cancer_one_bad_row": _cancer_one_bad_row, "diabetes_rows": _diabetes_rows,
    "wine_unused_layer": _wine_unused_layer,
}


def _train(name: str, world: World) -> dict[str, Any]:
    """Train scenario ``name`` as one worker of ``world`` (seeded as a run seeds it); JSON-safe facts."""
    scenario = SCENARIOS[name]()
    data: DataBundle = scenario["data"]
    generator = seed_everything(5)
    model = scenario["model"]() if "model" in scenario else build_mlp(data.input_shape, scenario["outputs"], scenario["hidden"], 0.0)
    result = train(model, data, scenario["config"], task=data.task, device=torch.device("cpu"), generator=generator,
                   output_kind=scenario["output_kind"], batch_size=scenario["batch_size"], world=world)
    return {
        "history": [dict(h) for h in result.history], "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early, "init_loss": result.init_loss, "evaluated_weights": result.evaluated_weights,
        "first_nonfinite_loss": result.first_nonfinite_loss, "data_parallel": result.data_parallel,
        "gradients": [[g.name, g.received, g.norm] for g in result.gradients],
        "state": {k: v.tolist() for k, v in model.state_dict().items()},
    }


def _worker(out_dir: str) -> None:
    """Entry point of one worker process (RANK etc. come from the environment)."""
    with join_world("cpu") as world:
        result = {name: _train(name, world) for name in SCENARIOS}
        Path(out_dir, f"rank{world.rank}.json").write_text(json.dumps(result), encoding="utf-8")


def _run_two_workers(folder: Path) -> list[dict[str, Any]]:
    run_world("test_data_parallel", f"_worker({str(folder)!r})", 2, {"OMP_NUM_THREADS": "1", "REPORTGEN_COLLECTIVE_TIMEOUT_S": "60"})
    return [json.loads((folder / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(2)]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _run_two_workers(tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    return {name: _train(name, World.single()) for name in SCENARIOS}


def _relative_gap(a: list, b: list) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-12))


# --------------------------------------------------------------------------- the loss share rule


@pytest.mark.parametrize("weighted", [False, True])
def test_a_parts_share_of_the_batch_mean_adds_up_to_torchs_mean(weighted: bool):
    """mean_denominator is what torch's mean reduction divides by: parts' shares sum to the batch's mean loss."""
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 0, 1, 2, 2, 0, 0, 1, 0], dtype=np.int64)  # unbalanced, so weights matter
    logits = torch.from_numpy(rng.normal(size=(len(labels), 3)).astype(np.float32))
    weights = class_weights_for(labels, 3) if weighted else None
    loss = torch.nn.CrossEntropyLoss(weight=weights)
    whole = float(loss(logits, torch.from_numpy(labels)))
    total = mean_denominator("cross_entropy", weights, labels)
    shares = 0.0
    for rank in range(3):
        lo, hi = shard_bounds(len(labels), rank, 3)
        part = float(loss(logits[lo:hi], torch.from_numpy(labels[lo:hi])))
        shares += part * mean_denominator("cross_entropy", weights, labels[lo:hi]) / total
    assert shares == pytest.approx(whole, rel=1e-6)
    expected_total = float(weights.double()[labels].sum()) if weighted else float(len(labels))
    assert total == pytest.approx(expected_total, rel=1e-12)
    # BCE's pos_weight scales terms but not the divisor: the denominator is the count
    assert mean_denominator("bce", torch.tensor([1.0, 3.0]), labels) == len(labels)


def test_a_layer_outside_the_forward_pass_is_found_on_a_sample():
    torch.manual_seed(0)
    sample = torch.randn(2, 13)
    assert has_unused_parameters(WithUnusedLayer(13, 3), sample)
    model = build_mlp((13,), 3, [8], 0.1)
    model.train()
    assert not has_unused_parameters(model, sample)
    assert model.training  # the mode is restored
    frozen = WithUnusedLayer(13, 3)
    frozen.unused.requires_grad_(False)
    assert not has_unused_parameters(frozen, sample)  # only trainable parameters count


# --------------------------------------------------------------------------- two gloo workers


def test_every_scenario_splits_unevenly_between_two_workers():
    for name, make in SCENARIOS.items():
        scenario = make()
        n, batch = scenario["data"].splits["train"].n, scenario["batch_size"]
        parts = [[hi - lo for lo, hi in (shard_bounds(min(batch, n - start), r, 2) for r in range(2))]
                 for start in range(0, n, batch)]
        assert any(p0 != p1 for p0, p1 in parts), name  # some batch gives rank 0 one row more than rank 1
        if name == "wine_weighted":
            assert parts[-1] == [1, 0]  # a last batch of one row: rank 1's part is empty


@pytest.mark.slow
def test_both_workers_end_with_the_same_weights_and_record(two_workers: list[dict[str, Any]]):
    rank0, rank1 = two_workers
    for name in SCENARIOS:
        assert rank0[name] == rank1[name], name  # bitwise: the same history, decisions and weights on every rank
        assert rank0[name]["data_parallel"].startswith("DistributedDataParallel on 2 workers (gloo)")


@pytest.mark.slow
def test_two_workers_take_the_one_process_steps(two_workers: list[dict[str, Any]], one_process: dict[str, Any]):
    for name in SCENARIOS:
        multi, single = two_workers[0][name], one_process[name]
        assert single["data_parallel"] is None
        for key in ("epochs_run", "best_epoch", "stopped_early", "evaluated_weights", "first_nonfinite_loss"):
            assert multi[key] == single[key], (name, key)
        assert set(multi["state"]) == set(single["state"])
        for key, value in single["state"].items():
            assert _relative_gap(multi["state"][key], value) < WEIGHT_RTOL, (name, key)
        for got, expected in zip(multi["history"], single["history"]):
            assert got.keys() == expected.keys()
            for key, value in expected.items():
                assert (got[key] is None) == (value is None), (name, key)
                if value is not None:
                    assert got[key] == pytest.approx(value, rel=WEIGHT_RTOL), (name, key)
        assert multi["init_loss"] == pytest.approx(single["init_loss"], rel=1e-6)
        for (g_name, g_received, g_norm), (s_name, s_received, s_norm) in zip(multi["gradients"], single["gradients"]):
            assert (g_name, g_received) == (s_name, s_received)
            assert g_norm == (None if s_norm is None else pytest.approx(s_norm, rel=1e-5))  # the whole batch's gradient


@pytest.mark.slow
def test_a_layer_the_forward_skips_trains_as_in_one_process(two_workers: list[dict[str, Any]], one_process: dict[str, Any]):
    single = one_process["wine_unused_layer"]
    assert [name for name, received, _ in single["gradients"] if not received] == ["unused.weight", "unused.bias"]
    for worker in two_workers:
        assert worker["wine_unused_layer"]["gradients"][-2:] == single["gradients"][-2:]  # no gradient on any rank
        assert worker["wine_unused_layer"]["state"]["unused.weight"] == single["state"]["unused.weight"]


@pytest.mark.slow
def test_early_stopping_restores_the_same_best_epoch(two_workers: list[dict[str, Any]], one_process: dict[str, Any]):
    single = one_process["wine_weighted"]
    assert single["stopped_early"] and single["best_epoch"] < single["epochs_run"]  # the scenario does stop early
    for worker in two_workers:
        got = worker["wine_weighted"]
        assert (got["stopped_early"], got["best_epoch"], got["epochs_run"]) == (True, single["best_epoch"], single["epochs_run"])


@pytest.mark.slow
def test_a_nan_on_one_worker_is_divergence_for_both(two_workers: list[dict[str, Any]], one_process: dict[str, Any]):
    single = one_process["cancer_one_bad_row"]
    assert single["first_nonfinite_loss"] is not None  # the planted row makes its batch's loss NaN
    # the row lies in exactly one worker's part of its batch; the other worker's loss was finite
    for worker in two_workers:
        got = worker["cancer_one_bad_row"]
        assert got["first_nonfinite_loss"] == single["first_nonfinite_loss"]
        assert "training diverged" in got["evaluated_weights"]
        assert all(math.isfinite(v) for values in got["state"].values() for v in np.ravel(values))
