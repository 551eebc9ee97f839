"""Drift, slice, fairness and behaviour checks over rows spread across two real gloo workers.

The planted defects (on the ISLR Default data): test incomes raised by half (feature drift); test labels
of students reversed (a weak slice, and unequal true-positive rates by ``student``); a model that adds
a share of its batch's mean to every score (batch dependence). Each must be found the same by one
process holding every row and by two workers holding a shard each, on a test split that does not
divide evenly between them. The worker tests run the checks on a row sample smaller than the split
(``gather_row_samples(max_rows=...)``), so the sampled path is compared too; the CLI test runs the
whole pipeline with ``--nproc-per-node 2``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, read_results, write_config
from torch import nn

from reportgen.distributed import shard_bounds
from worlds import run_world

TESTS = Path(__file__).resolve().parent
DEFAULT_CSV = REPO / "sample_configs" / "data" / "default.csv"
TRAIN_ROWS = 6000
"""The first 6,000 rows of Default train; the other 4,000 are test."""
ALIGN = 64
SAMPLE_ROWS = 1500
"""Row sample bound of the worker tests: smaller than both splits, so the checks read a sample."""
CHECKS = ("feature_drift", "prediction_drift", "slice_performance", "group_fairness", "stochasticity",
          "batch_dependence", "robustness", "feature_importance")
OVERRIDES: dict[str, dict[str, Any]] = {"group_fairness": {"sensitive": ["student"]}}
MODEL_SOURCE = (
    "import torch\n"
    "class BalanceRule(torch.nn.Module):\n"
    "    '''Positive when the standardised balance (input column 0) is above 0, plus 1% of the batch's mean.'''\n"
    "    def __init__(self):\n"
    "        super().__init__(); self.scale = torch.nn.Parameter(torch.tensor(3.0))\n"
    "    def forward(self, x):\n"
    "        s = self.scale * x[:, 0] + 0.01 * x[:, 0].mean()\n"
    "        return torch.stack([-s, s], dim=1)\n"
)


def planted_tables(folder: Path) -> None:
    """train.csv and test.csv in ``folder``: Default with labels a balance rule decides, and the defects planted."""
    frame = pd.read_csv(DEFAULT_CSV)
    train, test = frame.iloc[:TRAIN_ROWS].copy(), frame.iloc[TRAIN_ROWS:].copy()
    mean = train["balance"].mean()
    for part in (train, test):
        part["default"] = np.where(part["balance"] > mean, "Yes", "No")
    students = test["student"] == "Yes"
    test.loc[students, "default"] = np.where(test.loc[students, "balance"] > mean, "No", "Yes")
    test["income"] *= 1.5
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    (folder / "balancerule.py").write_text(MODEL_SOURCE, encoding="utf-8")


def _load(folder: Path):
    from reportgen.config import TableData
    from reportgen.data import load_data

    cfg = TableData(kind="csv", train="train.csv", test="test.csv", target="default", categorical=["student"],
                    ignore=["rownames"])
    return load_data(cfg, "binary", lambda p: folder / p, 0)


def _model(folder: Path) -> nn.Module:
    namespace: dict[str, Any] = {}
    exec(compile((folder / "balancerule.py").read_text(encoding="utf-8"), "balancerule.py", "exec"), namespace)
    return namespace["BalanceRule"]().eval()


def _predictions(bundle, model: nn.Module) -> dict:
    """Each split scored in batches of ALIGN, as the shards are aligned: the same scores in any world."""
    from reportgen.evaluation import probabilities
    from reportgen.types import Predictions

    out = {}
    with torch.no_grad():
        for name, split in bundle.splits.items():
            x = torch.as_tensor(split.features)
            probs = torch.cat([probabilities(model(x[i:i + ALIGN]), "softmax", bundle.positive_index)
                               for i in range(0, len(x), ALIGN)]).numpy()
            y_pred = (probs[:, bundle.positive_index] >= 0.5).astype(np.int64)
            out[name] = Predictions(split=name, y_true=split.labels, y_pred=y_pred, probs=probs, loss=0.0)
    return out


def plugin_example():
    """The local-phase plug-in of docs/plugins.md, run from the page's own code block (so the page stays true)."""
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    block = next(b.split("```", 1)[0] for b in text.split("```python\n") if "class NegativeInputs" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    return namespace["NegativeInputs"]()


def _run_checks(ctx) -> dict[str, dict[str, Any]]:
    from reportgen.checks.base import registry, run_check

    results = {}
    for check in [registry.get(check_id) for check_id in CHECKS] + [plugin_example()]:
        assert check is not None
        result = run_check(check, ctx, OVERRIDES.get(check.spec.id))
        assert result is not None
        results[check.spec.id] = json.loads(json.dumps(dataclasses.asdict(result)))
    return results


def _context(bundle, predictions, model, **extra):
    from reportgen.checks.context import CheckContext

    return CheckContext(task="binary", data=bundle, predictions=predictions, metrics={}, training=None,
                        threshold=0.5, batch_size=ALIGN, model=model, device=torch.device("cpu"),
                        output_kind="softmax", seed=5, **extra)


def one_process_results(folder: Path) -> dict[str, dict[str, Any]]:
    """The checks on one process holding every row, on row samples of SAMPLE_ROWS."""
    from reportgen.checks.shards import gather_row_samples

    bundle, model = _load(folder), _model(folder)
    predictions = _predictions(bundle, model)
    ctx = _context(bundle, predictions, model)
    samples = gather_row_samples(ctx.as_shard(), max_rows=SAMPLE_ROWS)
    return _run_checks(dataclasses.replace(ctx, samples=samples))


def _worker(folder: str) -> None:
    """One of two workers: keep a shard of each split, send rank 0 the row sample; rank 0 runs the checks."""
    from reportgen.checks.shards import ShardContext, gather_row_samples, labels_only, run_local_phases
    from reportgen.distributed import join_world, shard_split

    with join_world("cpu") as world:
        bundle, model = _load(Path(folder)), _model(Path(folder))
        whole = _predictions(bundle, model)
        splits, predictions, bounds = {}, {}, {}
        for name, split in bundle.splits.items():
            start, stop = shard_bounds(split.n, world.rank, world.world_size, align=ALIGN)
            splits[name] = shard_split(split, start, stop)
            predictions[name] = dataclasses.replace(
                whole[name], y_true=whole[name].y_true[start:stop], y_pred=whole[name].y_pred[start:stop],
                probs=whole[name].probs[start:stop])
            bounds[name] = [start, stop]
        shard = ShardContext(task="binary", data=dataclasses.replace(bundle, splits=splits), predictions=predictions,
                             world=world, batch_size=ALIGN, seed=5, model=model, threshold=0.5, output_kind="softmax")
        example = plugin_example()
        local_states = run_local_phases([(example, example.spec.settings_from(None))], shard)
        samples = gather_row_samples(shard, max_rows=SAMPLE_ROWS)
        out: dict[str, Any] = {"bounds": bounds}
        if world.is_main:
            ctx = _context(labels_only(bundle, whole), whole, model, samples=samples, local_states=local_states)
            out["results"] = _run_checks(ctx)
        Path(folder, f"rank{world.rank}.json").write_text(json.dumps(out), encoding="utf-8")


def _two_workers(folder: Path) -> list[dict[str, Any]]:
    run_world("test_distributed_checks", f"_worker({str(folder)!r})", 2)
    return [json.loads((folder / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(2)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    planted_tables(folder)
    return folder


@pytest.fixture(scope="module")
def single(planted: Path) -> dict[str, dict[str, Any]]:
    return one_process_results(planted)


@pytest.fixture(scope="module")
def two(planted: Path) -> list[dict[str, Any]]:
    return _two_workers(planted)


def test_the_planted_defects_are_found_on_a_row_sample_of_the_split(planted: Path, single: dict[str, dict[str, Any]]):
    drift = single["feature_drift"]
    assert drift["status"] == "warn" and drift["evidence"]["drifted"] == ["income"]
    assert drift["evidence"]["sample"] == {
        name: {"rows": SAMPLE_ROWS, "of": n, "rule": drift["evidence"]["sample"]["test"]["rule"]}
        for name, n in (("train", TRAIN_ROWS), ("test", 10_000 - TRAIN_ROWS))}
    assert drift["evidence"]["n_reference"] == drift["evidence"]["n_current"] == SAMPLE_ROWS

    weak = single["slice_performance"]
    assert weak["status"] == "warn", weak["message"]
    assert weak["evidence"]["worst_slices"][0]["slice"] == "student = Yes"
    assert weak["evidence"]["worst_slices"][0]["metric"] == 0.0  # no reversed positive is found
    assert weak["evidence"]["sample"]["rows"] == SAMPLE_ROWS and weak["evidence"]["sample"]["of"] == 4000

    fairness = single["group_fairness"]
    assert fairness["status"] == "warn"
    by_group = {g["group"]: g for g in fairness["evidence"]["groups"]}
    assert by_group["Yes"]["tpr"] == 0.0 and by_group["No"]["tpr"] == 1.0
    assert sum(g["n"] for g in fairness["evidence"]["groups"]) == SAMPLE_ROWS

    features = _load(planted).splits["test"].features
    negative = np.flatnonzero((features < 0).any(axis=1))
    example = single["negative_inputs"]
    assert example["status"] == "warn" and example["value"] == negative.size / len(features)
    assert example["evidence"] == {"rows": len(features), "negative": int(negative.size), "first_rows": negative[:5].tolist()}

    assert single["batch_dependence"]["status"] == "fail"
    assert single["stochasticity"]["status"] == "pass"
    for check_id in ("stochasticity", "batch_dependence", "robustness", "feature_importance"):
        assert single[check_id]["evidence"]["sample"]["rows"] == SAMPLE_ROWS, check_id


def test_two_workers_find_what_one_process_finds(single: dict[str, dict[str, Any]], two: list[dict[str, Any]]):
    bounds = two[0]["bounds"]["test"], two[1]["bounds"]["test"]
    assert bounds[0][1] == bounds[1][0] and bounds[0][1] - bounds[0][0] != bounds[1][1] - bounds[1][0]
    assert "results" not in two[1]  # only rank 0 runs the checks
    assert two[0]["results"] == single


@pytest.mark.slow
def test_the_cli_on_two_workers_writes_the_one_process_findings(tmp_path: Path):
    planted_tables(tmp_path)
    document = {
        "name": "planted", "task": "binary", "seed": 5,
        "data": {"kind": "csv", "train": "train.csv", "test": "test.csv", "target": "default",
                 "categorical": ["student"], "ignore": ["rownames"], "batch_size": ALIGN},
        "model": {"kind": "python", "target": "balancerule.py:BalanceRule"},
        "checks": {**OVERRIDES, **{c: {"enabled": False} for c in (
            "data_integrity", "train_test_overlap", "conflicting_labels", "target_leakage", "unseen_categories")}},
        "report": {"formats": ["json"]},
    }
    config = write_config(tmp_path, document)

    def launch(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reportgen", "run", str(config), "--quiet", *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=240, check=False)

    one = launch("--out", str(tmp_path / "one"))
    assert one.returncode == 1, one.stderr  # batch_dependence is an error-severity failure
    two = launch("--out", str(tmp_path / "two"), "--nproc-per-node", "2")
    assert two.returncode == 1, two.stdout + two.stderr
    single, multi = read_results(tmp_path / "one"), read_results(tmp_path / "two")
    found = {c["id"]: c for c in single["checks"]}
    assert found["feature_drift"]["evidence"]["drifted"] == ["income"]
    assert found["slice_performance"]["status"] == "warn" and found["group_fairness"]["status"] == "warn"
    assert found["batch_dependence"]["status"] == "fail"
    assert "sample" not in found["slice_performance"]["evidence"]  # 4,000 rows: the sample is the whole split
    assert [(c["id"], c["status"], c["value"], c["evidence"]) for c in multi["checks"]] == \
        [(c["id"], c["status"], c["value"], c["evidence"]) for c in single["checks"]]


def _reads_rows(read: str):
    """A plug-in written for one process: its ``run`` reads ``ctx.data`` rows of test (``read`` says how)."""
    from reportgen.checks.base import Check, CheckSpec, Finding

    class ReadsRows(Check):
        spec = CheckSpec(id="reads_rows", title="Reads rows", family="data", detects="nothing",
                         how_to_read="a test plug-in", default_severity="warning")

        def run(self, ctx, settings):
            split = ctx.data.splits["test"]
            if read == "features":
                value = float(np.asarray(split.features).mean())
            elif read == "attributes":
                value = float(split.attributes["balance"].mean())
            elif read == "shape":
                value = float(split.features.shape[1])
            else:
                value = float(split.dataset[0][0].sum())
            return Finding("ok", value, "read")

    return ReadsRows()


@pytest.mark.parametrize("read", ["features", "attributes", "shape", "dataset"])
def test_a_check_that_reads_rows_on_rank_0_of_many_workers_says_what_to_do(planted: Path, read: str):
    from reportgen.checks.base import run_check
    from reportgen.checks.shards import labels_only

    bundle, model = _load(planted), _model(planted)
    predictions = _predictions(bundle, model)
    check = _reads_rows(read)
    assert run_check(check, _context(bundle, predictions, model), None).status == "pass"  # one process: it works
    spread = _context(labels_only(bundle, predictions), predictions, model)
    assert spread.data.splits["test"].features is not None and spread.data.splits["test"].attributes is not None
    result = run_check(check, spread, None)
    assert result.status == "error"
    assert "test split's" in result.message and "spread over the workers" in result.message
    assert "local phase (Check.local) or the row sample (ctx.row_sample, with uses_row_sample = True" in result.message
    assert "docs/plugins.md" in result.message
    assert len(spread.data.splits["test"].features) == bundle.splits["test"].n  # sizes stay known


def test_the_row_sample_without_uses_row_sample_on_many_workers_is_a_clear_error(planted: Path):
    from reportgen.checks.shards import labels_only

    bundle, model = _load(planted), _model(planted)
    predictions = _predictions(bundle, model)
    spread = _context(labels_only(bundle, predictions), predictions, model)
    with pytest.raises(LookupError, match="uses_row_sample = True"):
        spread.row_sample("test")
