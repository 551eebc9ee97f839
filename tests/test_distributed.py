"""reportgen.distributed: shards, and every collective run by two real gloo workers on 127.0.0.1.

The two-worker tests start real processes (this file's ``_worker`` in ``python -c``) that join one gloo
process group, run each collective on their shard, and write what they got to JSON; the test compares
that with an oracle computed on the whole array in this process (NumPy, scikit-learn).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reportgen.distributed import (
    World,
    all_reduce_sum,
    choose_device,
    collective_timeout,
    count_conflicting_labels,
    count_overlap,
    exchange_by_hash,
    gather_rows,
    join_world,
    mix64,
    reduce_state,
    sample_global_rows,
    sample_mask,
    shard_bounds,
)
from reportgen.errors import ConfigError
from reportgen.launch import strip_nproc
from reportgen.metrics import ClassificationState, RegressionState
from worlds import run_world

from conftest import REPO, cancer_config, write_config

TESTS = Path(__file__).resolve().parent
N_ROWS = 101  # odd: the two shards differ in length
N_CLASSES = 3
SAMPLE_SIZE = 17


# --------------------------------------------------------------------------- data both sides derive


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, N_CLASSES, N_ROWS)
    y_pred = np.where(rng.random(N_ROWS) < 0.7, y_true, rng.integers(0, N_CLASSES, N_ROWS))
    probs = rng.dirichlet(np.ones(N_CLASSES), N_ROWS).astype(np.float32)
    target = rng.normal(3.0, 2.0, N_ROWS)
    estimate = target + rng.normal(0.0, 0.5, N_ROWS)
    # row hashes with planted duplicates: rows 0..9 of "test" repeat train rows, and 5 hashes carry two labels
    train_hashes = rng.integers(0, 2**63, N_ROWS, dtype=np.int64).astype(np.uint64)
    test_hashes = rng.integers(0, 2**63, N_ROWS, dtype=np.int64).astype(np.uint64)
    test_hashes[:10] = train_hashes[50:60]
    labels = y_true.copy()
    conflict_hashes = train_hashes.copy()
    conflict_hashes[90:95] = conflict_hashes[10:15]
    labels[90:95] = (labels[10:15] + 1) % N_CLASSES
    return {
        "y_true": y_true, "y_pred": y_pred, "probs": probs, "target": target, "estimate": estimate,
        "train_hashes": train_hashes, "test_hashes": test_hashes, "conflict_hashes": conflict_hashes, "labels": labels,
        "loss": rng.random(N_ROWS),
    }


def _battery(world: World) -> dict[str, object]:
    """Every collective on this worker's shard; JSON-safe results."""
    data = _data()
    lo, hi = shard_bounds(N_ROWS, world.rank, world.world_size)
    part = {k: v[lo:hi] for k, v in data.items()}
    out: dict[str, object] = {"bounds": [lo, hi]}

    state = ClassificationState(N_CLASSES).update(part["y_true"], part["y_pred"], float(part["loss"].sum()))
    merged = reduce_state(state, world)
    out["confusion"] = merged.confusion.tolist()  # type: ignore[attr-defined]
    out["n"] = merged.n  # type: ignore[attr-defined]
    out["loss_sum"] = merged.loss_sum  # type: ignore[attr-defined]

    regression = RegressionState().update(part["target"], part["estimate"])
    out["regression"] = reduce_state(regression, world).metrics()  # type: ignore[attr-defined]

    gathered = gather_rows(part["probs"], world)
    out["probs"] = None if gathered is None else gathered.tolist()
    flags = gather_rows(part["y_true"] == part["y_pred"], world)
    out["flags"] = None if flags is None else flags.tolist()
    # one worker holds no rows at all
    lonely = gather_rows(data["probs"][:1] if world.rank == 0 else data["probs"][:0], world)
    out["lonely"] = None if lonely is None else lonely.tolist()

    got_hashes, got_labels = exchange_by_hash(part["conflict_hashes"], part["labels"][:, None], world)
    assert got_labels is not None
    out["received"] = [[str(h), int(label)] for h, label in zip(got_hashes, got_labels[:, 0])]
    out["overlap"] = count_overlap(part["train_hashes"], part["test_hashes"], world)
    out["conflicts"] = count_conflicting_labels(part["conflict_hashes"], part["labels"], world)
    out["sample"] = sample_global_rows(N_ROWS, lo, hi, SAMPLE_SIZE, 42, world).tolist()
    out["mask"] = sample_mask(np.arange(lo, hi), 0.3, 42).tolist()
    out["ones"] = all_reduce_sum(np.array([1, hi - lo]), world).tolist()
    return out


def _worker(out_dir: str) -> None:
    """Entry point of one worker process (RANK etc. come from the environment)."""
    from reportgen.distributed import broadcast_module

    with join_world("cpu") as world:
        torch.manual_seed(world.rank)  # every worker builds different weights...
        module = torch.nn.Linear(4, 2)
        broadcast_module(module, world)  # ...and then holds rank 0's
        result = _battery(world)
        result["weights"] = module.weight.detach().tolist()
        result["backend"] = world.backend
        result["world_size"] = world.world_size
        if os.environ.get("TIMEOUT_PROBE"):
            # rank 1 sits out one collective: rank 0 must raise within the collective timeout, not hang
            if world.rank == 0:
                started = time.monotonic()
                try:
                    all_reduce_sum(np.array([1]), world)
                    result["timeout"] = "returned"
                except RuntimeError as exc:
                    result["timeout"] = f"raised {type(exc).__name__}"
                result["timeout_seconds"] = time.monotonic() - started
            else:
                time.sleep(float(os.environ["REPORTGEN_COLLECTIVE_TIMEOUT_S"]) + 1.5)
        Path(out_dir, f"rank{world.rank}.json").write_text(json.dumps(result), encoding="utf-8")
        if os.environ.get("TIMEOUT_PROBE"):
            os._exit(0)  # the group is broken after a timed-out collective; do not wait on its teardown


def _run_two_workers(tmp_path: Path, **extra_env: str) -> list[dict]:
    run_world("test_distributed", f"_worker({str(tmp_path)!r})", 2, extra_env, timeout=120)
    return [json.loads((tmp_path / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(2)]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return _run_two_workers(tmp_path_factory.mktemp("workers"))


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize("align", [1, 4, 64])
@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 101, 256, 1000])
def test_shards_are_contiguous_disjoint_and_cover_every_row_once(n: int, world_size: int, align: int):
    bounds = [shard_bounds(n, r, world_size, align) for r in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, stop), (start, _) in itertools.pairwise(bounds):
        assert stop == start  # contiguous, nothing repeated (no DistributedSampler padding)
    sizes = [hi - lo for lo, hi in bounds]
    assert sum(sizes) == n
    assert max(sizes) - min(sizes) < 2 * align  # one block more, and the last block may be partial
    for lo, _ in bounds:
        assert lo % align == 0 or lo == n  # each shard starts on a batch boundary of the whole split


def test_shard_bounds_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError):
        shard_bounds(10, 2, 2)


# --------------------------------------------------------------------------- single process


def test_single_process_world_calls_no_collective():
    import torch.distributed as dist

    world = World.single()
    assert (world.rank, world.world_size, world.is_main, world.distributed, world.backend) == (0, 1, True, False, None)
    array = np.arange(6).reshape(3, 2)
    assert gather_rows(array, world) is array
    hashes = np.array([5, 9], dtype=np.uint64)
    got, _ = exchange_by_hash(hashes, None, world)
    assert got.tolist() == [5, 9]
    assert not dist.is_available() or not dist.is_initialized()


def test_join_world_without_world_size_is_single_process():
    with join_world("cpu", environ={}) as world:
        assert world.world_size == 1 and world.backend is None


@pytest.mark.parametrize("environ, fragment", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK='2'"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
])
def test_malformed_worker_environment_is_a_config_error(environ: dict[str, str], fragment: str):
    with pytest.raises(ConfigError, match=fragment), join_world("cpu", environ=environ):
        pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only choices")
def test_workers_without_a_gpu_each_use_gloo_on_the_cpu():
    assert choose_device("auto", 1, 2) == (torch.device("cpu"), "gloo")
    assert choose_device("cpu", 0, 2) == (torch.device("cpu"), "gloo")
    with pytest.raises(ConfigError, match="2 workers on this machine but 0 CUDA device"):
        choose_device("cuda", 0, 2)


def test_collective_timeout_reads_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("REPORTGEN_COLLECTIVE_TIMEOUT_S", raising=False)
    assert collective_timeout().total_seconds() == 300
    monkeypatch.setenv("REPORTGEN_COLLECTIVE_TIMEOUT_S", "2.5")
    assert collective_timeout().total_seconds() == 2.5
    for text in ("0", "inf", "1e300", "1e-300", "0.5", "86401", "nan", "-inf", "soon"):
        monkeypatch.setenv("REPORTGEN_COLLECTIVE_TIMEOUT_S", text)
        with pytest.raises(ConfigError, match="positive number of seconds from 1 to 86400"):
            collective_timeout()
    for text, seconds in (("1", 1), ("86400", 86400)):
        monkeypatch.setenv("REPORTGEN_COLLECTIVE_TIMEOUT_S", text)
        assert collective_timeout().total_seconds() == seconds


@pytest.mark.parametrize("text", ["inf", "1e300", "1e-300"])
def test_an_unbounded_collective_timeout_is_refused_before_launch(tmp_path: Path, cancer_csv: Path, text: str):
    """inf and 1e300 overflowed the timedelta (exit 3); 1e-300 started workers that failed with a c10d trace."""
    path = write_config(tmp_path, cancer_config(cancer_csv))
    result = subprocess.run([sys.executable, "-m", "reportgen", "run", str(path), "--nproc-per-node", "2",
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "REPORTGEN_COLLECTIVE_TIMEOUT_S": text}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "from 1 to 86400" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs fewer GPUs than workers")
def test_cuda_with_fewer_gpus_than_workers_is_refused_before_launch(tmp_path: Path, cancer_csv: Path):
    """It started both workers, which each failed: 'worker 0 of 2: error: ...' after about 10 s."""
    path = write_config(tmp_path, {**cancer_config(cancer_csv), "device": "cuda"})
    result = subprocess.run([sys.executable, "-m", "reportgen", "run", str(path), "--nproc-per-node", "2",
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    gpus = torch.cuda.device_count()
    assert result.stderr.splitlines() == [f"reportgen: error: device 'cuda': 2 workers on this machine but {gpus} CUDA "
                                          "device(s); start at most one worker per GPU or use device: cpu"]
    assert not (tmp_path / "out").exists()


def test_sample_does_not_depend_on_the_number_of_shards():
    whole = sample_global_rows(N_ROWS, 0, N_ROWS, SAMPLE_SIZE, 42, World.single())
    assert len(whole) == SAMPLE_SIZE == len(set(whole.tolist()))
    keys = mix64(np.arange(N_ROWS, dtype=np.uint64), 42)
    assert sorted(whole.tolist()) == sorted(np.argsort(keys, kind="stable")[:SAMPLE_SIZE].tolist())
    assert sample_global_rows(N_ROWS, 0, N_ROWS, SAMPLE_SIZE, 43, World.single()).tolist() != whole.tolist()
    mask = sample_mask(np.arange(100_000), 0.3, 1)
    assert 0.29 < mask.mean() < 0.31  # a fair Bernoulli sample
    assert sample_mask(np.arange(10), 1.0, 1).all()


def test_strip_nproc_removes_the_flag_in_every_spelling():
    assert strip_nproc(["run", "c.yaml", "--nproc-per-node", "2", "--quiet"]) == ["run", "c.yaml", "--quiet"]
    assert strip_nproc(["run", "--nproc-per-node=2", "c.yaml"]) == ["run", "c.yaml"]
    assert strip_nproc(["run", "--nproc", "2", "c.yaml"]) == ["run", "c.yaml"]
    assert strip_nproc(["--debug", "run", "c.yaml"]) == ["--debug", "run", "c.yaml"]


# --------------------------------------------------------------------------- two gloo workers


def test_workers_join_one_gloo_group_on_odd_shards(two_workers: list[dict]):
    assert [w["world_size"] for w in two_workers] == [2, 2]
    assert [w["backend"] for w in two_workers] == ["gloo", "gloo"]
    assert [w["bounds"] for w in two_workers] == [[0, 51], [51, 101]]
    assert [w["ones"] for w in two_workers] == [[2, N_ROWS]] * 2


def test_classification_state_reduces_to_the_whole_confusion_matrix(two_workers: list[dict]):
    from sklearn.metrics import confusion_matrix

    data = _data()
    expected = confusion_matrix(data["y_true"], data["y_pred"], labels=list(range(N_CLASSES))).tolist()
    for worker in two_workers:  # every worker holds the reduced state
        assert worker["confusion"] == expected
        assert worker["n"] == N_ROWS
        assert worker["loss_sum"] == pytest.approx(float(data["loss"].sum()), rel=1e-12)


def test_regression_state_reduces_to_the_whole_split_metrics(two_workers: list[dict]):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    data = _data()
    t, p = data["target"], data["estimate"]
    for worker in two_workers:
        got = worker["regression"]
        assert got["mse"] == pytest.approx(mean_squared_error(t, p), rel=1e-12)
        assert got["mae"] == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
        assert got["r2"] == pytest.approx(r2_score(t, p), rel=1e-12)
        assert got["target_std"] == pytest.approx(float(np.std(t)), rel=1e-12)


def test_rows_of_unequal_shards_are_gathered_in_global_order_on_rank_0_only(two_workers: list[dict]):
    data = _data()
    rank0, rank1 = two_workers
    assert np.array_equal(np.asarray(rank0["probs"], dtype=np.float32), data["probs"])
    assert rank0["flags"] == (data["y_true"] == data["y_pred"]).tolist()
    assert np.array_equal(np.asarray(rank0["lonely"], dtype=np.float32), data["probs"][:1])
    assert rank1["probs"] is None and rank1["flags"] is None and rank1["lonely"] is None


def test_hash_exchange_sends_each_row_once_to_its_owner(two_workers: list[dict]):
    data = _data()
    sent = sorted(zip(data["conflict_hashes"].tolist(), data["labels"].tolist()))
    received = []
    for rank, worker in enumerate(two_workers):
        for text, label in worker["received"]:
            assert int(text) % 2 == rank
            received.append((int(text), label))
    assert sorted(received) == sent  # every row exactly once, not every hash to every worker


def test_overlap_and_conflicting_labels_are_found_across_shards(two_workers: list[dict]):
    data = _data()
    overlap = int(np.isin(data["test_hashes"], data["train_hashes"]).sum())
    pairs = {(int(h), int(y)) for h, y in zip(data["conflict_hashes"], data["labels"])}
    per_hash: dict[int, int] = {}
    for h, _ in pairs:
        per_hash[h] = per_hash.get(h, 0) + 1
    conflicts = sum(1 for count in per_hash.values() if count > 1)
    assert overlap >= 10 and conflicts == 5  # the planted defects
    for worker in two_workers:
        assert worker["overlap"] == overlap
        assert worker["conflicts"] == conflicts


def test_sampled_rows_are_the_single_process_sample(two_workers: list[dict]):
    whole = sample_global_rows(N_ROWS, 0, N_ROWS, SAMPLE_SIZE, 42, World.single()).tolist()
    assert [w["sample"] for w in two_workers] == [whole, whole]
    mask = two_workers[0]["mask"] + two_workers[1]["mask"]
    assert mask == sample_mask(np.arange(N_ROWS), 0.3, 42).tolist()


def test_every_worker_evaluates_rank_0_weights(two_workers: list[dict]):
    torch.manual_seed(0)
    expected = torch.nn.Linear(4, 2).weight.detach().tolist()
    assert [w["weights"] for w in two_workers] == [expected, expected]


@pytest.mark.slow
def test_a_collective_a_peer_never_joins_raises_within_the_timeout(tmp_path: Path):
    rank0, _ = _run_two_workers(tmp_path, TIMEOUT_PROBE="1", REPORTGEN_COLLECTIVE_TIMEOUT_S="1")
    assert rank0["timeout"] == "raised RuntimeError"
    assert rank0["timeout_seconds"] < 30


class _RowDataset(torch.utils.data.Dataset):
    """A dataset without ``tensors``: shards of it go through torch.utils.data.Subset."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


@pytest.mark.parametrize("tensor_dataset", [True, False])
def test_shards_evaluated_apart_concatenate_to_the_whole_split(tensor_dataset: bool):
    from sklearn.datasets import load_wine

    from reportgen.distributed import shard_split
    from reportgen.evaluation import evaluate
    from reportgen.types import SplitData

    bunch = load_wine()
    x = ((bunch.data - bunch.data.mean(0)) / bunch.data.std(0)).astype(np.float32)
    y = bunch.target.astype(np.int64)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) if tensor_dataset else _RowDataset(x, y)
    split = SplitData("test", dataset, y, features=x, source_rows=np.arange(len(y)))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(13, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def run(part: SplitData):
        return evaluate(model, part, task="multiclass", output_kind="softmax", positive_index=None, threshold=0.5,
                        loss_fn=torch.nn.CrossEntropyLoss(), batch_size=16, device=torch.device("cpu"), num_classes=3)

    whole = run(split)
    parts = [run(shard_split(split, *shard_bounds(split.n, r, 3, align=16))) for r in range(3)]
    assert [p.n for p in parts] == [64, 64, 50]
    assert np.array_equal(np.concatenate([p.probs for p in parts]), whole.probs)
    assert np.array_equal(np.concatenate([p.y_pred for p in parts]), whole.y_pred)
    assert np.array_equal(np.concatenate([p.y_true for p in parts]), y)
    loss = sum(p.loss * p.n for p in parts) / split.n
    assert loss == pytest.approx(whole.loss, rel=1e-12)
