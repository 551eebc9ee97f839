"""Checks over rows spread across workers (reportgen/checks/shards.py), with real gloo process groups.

Each world (N = 2 and N = 3) is a set of real worker processes (this file's ``_worker`` in ``python -c``)
joined in one gloo group on 127.0.0.1. Every worker builds the same data, keeps its contiguous shard of
each split (the splits do not divide evenly), runs the local phases, meetings and row samples as the
pipeline does, and rank 0 runs the checks on labels-only data and writes what it got to JSON. The test
compares that with the one-process run in this process, and with oracles computed on the whole data
(the whole-split fingerprint matcher, pandas group-bys, NumPy).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from check_helpers import breast_cancer, make_bundle, predictions_from_probs, split_rows, standardiser

from reportgen.checks.base import Check, CheckSettings, CheckSpec, Finding, registry, run_check
from reportgen.checks.context import CheckContext
from reportgen.checks.shards import (
    KeyedRows,
    LocalPart,
    RowsElsewhere,
    ShardContext,
    gather_row_samples,
    labels_only,
    run_local_phases,
)
from reportgen.distributed import World, join_world, shard_bounds, shard_split
from reportgen.types import DataBundle, Predictions
from worlds import run_world

TESTS = Path(__file__).resolve().parent
MY_CHECKS = ("data_integrity", "train_test_overlap", "conflicting_labels", "target_leakage", "unseen_categories",
             "class_imbalance", "label_shift")
SAMPLE_BOUND = 50
"""A row-sample bound below the train split's size, so the sample is a true subset."""
EDGE = np.float32(1000.5 / 2**19)
"""A value on a rounding-cell edge of a row whose largest magnitude is 1.5 (grid 2**-19): one float32 step
either side rounds to different cells on the normalised grid and to the same cell on the shifted one."""


# --------------------------------------------------------------------------- the data every worker builds


def _bundle() -> tuple[DataBundle, dict[str, Predictions]]:
    """Breast cancer, train/val/test, with planted defects: non-finite inputs, test rows copied into train
    (bit-identical, one float32 step off, and one copy that matches only on the shifted grid), conflicting
    labels within train and across splits, a feature that leaks the label, and unseen categories."""
    X, y, classes, names = breast_cancer()
    rng = np.random.default_rng(5)
    X = np.column_stack([X, y + rng.normal(0, 0.05, len(y))])
    names = (*names, "leak")
    rows = split_rows(y, len(y), test=0.25, val=0.15)
    transform = standardiser(X[rows["train"]])
    parts = {name: [transform(X[r]), y[r].copy(), r.copy()] for name, r in rows.items()}
    train_x, test_x, val_x = parts["train"][0], parts["test"][0], parts["val"][0]
    test_x[5, 2] = np.nan
    test_x[40, [0, 3]] = np.inf
    val_x[7, 1] = -np.inf
    # copies of test rows in train: 4 bit-identical, 3 one float32 step off in one value
    copies = [test_x[i].copy() for i in (3, 17, 60, 101)]
    nudged = [test_x[i].copy() for i in (9, 33, 77)]
    for row in nudged:
        row[4] = np.nextafter(row[4], np.float32(np.inf))
    # a copy on a cell edge: the normalised hashes differ, the shifted ones agree
    edge = np.zeros(train_x.shape[1], dtype=np.float32)
    edge[0], edge[1] = 1.5, np.nextafter(EDGE, np.float32(-np.inf))
    test_x[120] = edge
    test_x[120, 1] = np.nextafter(EDGE, np.float32(np.inf))
    # conflicting labels: two train rows repeated with the other label, one val row copied into train flipped
    flips = [train_x[i].copy() for i in (10, 200)]
    flip_labels = [1 - parts["train"][1][i] for i in (10, 200)]
    across = val_x[12].copy()
    twins = train_x[[50, 51]]  # duplicates with their own labels: no conflict (and 353 train rows, uneven for 2 and 3)
    extra_x = np.vstack([*copies, *nudged, edge, *flips, across, *twins])
    extra_y = np.r_[[parts["test"][1][i] for i in (3, 17, 60, 101, 9, 33, 77)], parts["test"][1][120], flip_labels,
                    1 - parts["val"][1][12], parts["train"][1][[50, 51]]]
    parts["train"] = [np.vstack([train_x, extra_x]), np.r_[parts["train"][1], extra_y],
                      np.r_[parts["train"][2], 10_000 + np.arange(len(extra_y))]]
    bundle = make_bundle("binary", {k: tuple(v) for k, v in parts.items()}, classes, names)
    colours = {"train": ["red", "green"], "val": ["red", "green", "blue"], "test": ["red", "green", "blue", "violet"]}
    splits = {}
    for name, split in bundle.splits.items():
        palette = colours[name]
        colour = [palette[i % len(palette)] for i in range(split.n)]
        attributes = pd.DataFrame({"colour": colour, "size": np.arange(split.n, dtype=np.float64)})
        splits[name] = dataclasses.replace(split, attributes=attributes)
    fingerprint = {"preprocessing": {"categorical": {"colour": ["green", "red"]}}}
    bundle = dataclasses.replace(bundle, splits=splits, fingerprint=fingerprint)
    weights = np.random.default_rng(1).normal(size=bundle.splits["train"].features.shape[1])
    predictions = {}
    for name, split in bundle.splits.items():
        score = 1.0 / (1.0 + np.exp(-np.nan_to_num(split.features.astype(np.float64), posinf=0, neginf=0) @ weights))
        predictions[name] = predictions_from_probs(name, split.labels, np.column_stack([1 - score, score]), 0.5, 1)
    return bundle, predictions


def _shard_predictions(pred: Predictions, start: int, stop: int) -> Predictions:
    return Predictions(split=pred.split, y_true=pred.y_true[start:stop], y_pred=pred.y_pred[start:stop],
                       probs=None if pred.probs is None else pred.probs[start:stop], loss=pred.loss)


# --------------------------------------------------------------------------- checks that exercise the framework


def _spec(check_id: str) -> CheckSpec:
    return CheckSpec(id=check_id, title=check_id, family="data", detects="a framework probe",
                     how_to_read="a framework probe", default_severity="error")


class FailsOnOneWorker(Check):
    """A local phase that raises on worker ``rank`` only."""

    spec = _spec("probe_fails_on_one_worker")

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def local(self, shard: ShardContext, settings: CheckSettings) -> Any:
        if shard.world.rank == self.rank:
            raise ValueError("this worker's rows are bad")
        return LocalPart(shard.world.rank, KeyedRows(np.arange(3, dtype=np.uint64), np.zeros((3, 1))))

    def meet(self, received: KeyedRows, shard: ShardContext, settings: CheckSettings) -> Any:
        return len(received.hashes)

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        return Finding("ok", 0, "never reached")


class FailsInMeeting(FailsOnOneWorker):
    """A meeting that raises on worker ``rank`` only (every local phase succeeds)."""

    spec = _spec("probe_fails_in_meeting")

    def local(self, shard: ShardContext, settings: CheckSettings) -> Any:
        return LocalPart(shard.world.rank, KeyedRows(np.arange(3, dtype=np.uint64), np.zeros((3, 1))))

    def meet(self, received: KeyedRows, shard: ShardContext, settings: CheckSettings) -> Any:
        if shard.world.rank == self.rank:
            raise ValueError("this worker's meeting went wrong")
        return len(received.hashes)


class EchoMeeting(Check):
    """Keys every train row by ``global row % 7`` and records what each worker receives, then meets once more
    by ``global row % 5`` (a chained meeting)."""

    spec = _spec("probe_echo_meeting")

    def local(self, shard: ShardContext, settings: CheckSettings) -> LocalPart:
        split = shard.data.splits["train"]
        rows = split.offset + np.arange(split.n, dtype=np.int64)
        return LocalPart(None, KeyedRows((rows % 7).astype(np.uint64), rows[:, None]))

    def meet(self, received: KeyedRows, shard: ShardContext, settings: CheckSettings) -> Any:
        if received.payload.shape[1] == 1:
            shard.cache["echo"] = [[int(h), int(r)] for h, r in zip(received.hashes, received.payload[:, 0])]
            rows = received.payload[:, 0]
            return LocalPart(None, KeyedRows((rows % 5).astype(np.uint64), np.column_stack([rows, rows])))
        second = [[int(h), int(r)] for h, r in zip(received.hashes, received.payload[:, 0])]
        return {"first": shard.cache.pop("echo"), "second": second}

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        return Finding("ok", 0, "met", {"met": [w.met for w in ctx.local_results(self.spec.id)]})


# --------------------------------------------------------------------------- one worker


def _worker(out_dir: str) -> None:
    """Entry point of one worker process (RANK etc. come from the environment)."""
    bundle, predictions = _bundle()
    with join_world("cpu") as world:
        local_splits, local_predictions = {}, {}
        for name, split in bundle.splits.items():
            start, stop = shard_bounds(split.n, world.rank, world.world_size)
            local_splits[name] = shard_split(split, start, stop)
            local_predictions[name] = _shard_predictions(predictions[name], start, stop)
        shard = ShardContext(task=bundle.task, data=dataclasses.replace(bundle, splits=local_splits),
                             predictions=local_predictions, world=world, batch_size=64, seed=11)
        checks: list[tuple[Check, CheckSettings]] = [
            (FailsOnOneWorker(world.world_size - 1), FailsOnOneWorker.spec.settings_from(None)),
            (FailsInMeeting(0), FailsInMeeting.spec.settings_from(None)),
            (EchoMeeting(), EchoMeeting.spec.settings_from(None)),
        ]
        mine = [registry.get(check_id) for check_id in MY_CHECKS]
        checks += [(c, c.spec.settings_from(None)) for c in mine if c is not None]
        local_states = run_local_phases(checks, shard)
        samples = gather_row_samples(shard)
        small = gather_row_samples(shard, ["train"], max_rows=SAMPLE_BOUND)
        if not world.is_main:
            return
        assert local_states is not None and samples is not None and small is not None
        context = CheckContext(task=bundle.task, data=labels_only(bundle, predictions), predictions=predictions,
                               metrics={}, training=None, batch_size=64, seed=11, local_states=local_states,
                               samples=samples)
        results = {check.spec.id: _plain(run_check(check, context, None)) for check, _ in checks}
        out = {"results": results, "world_size": world.world_size,
               "sample": {"rows": small["train"].rows.tolist(), "labels": small["train"].split.labels.tolist(),
                          "features": small["train"].split.features.tolist(),
                          "source_rows": small["train"].split.source_rows.tolist(),
                          "sizes": small["train"].split.attributes["size"].tolist(),
                          "y_pred": small["train"].predictions.y_pred.tolist()},
               "whole_sample_rows": {name: s.rows.tolist() for name, s in samples.items()}}
        Path(out_dir, "rank0.json").write_text(json.dumps(out), encoding="utf-8")


def _plain(result: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(result)))


def _run_world(tmp_path: Path, world_size: int) -> dict[str, Any]:
    run_world("test_check_shards", f"_worker({str(tmp_path)!r})", world_size, {"REPORTGEN_COLLECTIVE_TIMEOUT_S": "60"})
    return json.loads((tmp_path / "rank0.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=[2, 3], ids=["N=2", "N=3"])
def spread(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_world(tmp_path_factory.mktemp(f"world{request.param}"), request.param)


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    """The same checks on one process, on the whole data: the path every existing test takes."""
    bundle, predictions = _bundle()
    context = CheckContext(task=bundle.task, data=bundle, predictions=predictions, metrics={}, training=None,
                           batch_size=64, seed=11)
    results = {}
    for check_id in MY_CHECKS:
        check = registry.get(check_id)
        assert check is not None
        results[check_id] = _plain(run_check(check, context, None))
    shard = context.as_shard()
    small = gather_row_samples(shard, ["train"], max_rows=SAMPLE_BOUND)
    assert small is not None
    return {"results": results, "sample_rows": small["train"].rows.tolist(), "bundle": bundle, "predictions": predictions}


# --------------------------------------------------------------------------- the framework


def test_the_splits_do_not_divide_evenly(spread: dict[str, Any], single: dict[str, Any]):
    world_size = spread["world_size"]
    for name in ("train", "test"):
        n = single["bundle"].splits[name].n
        assert len({stop - start for start, stop in (shard_bounds(n, r, world_size) for r in range(world_size))}) == 2, name


def test_a_local_phase_failing_on_one_worker_is_one_error_on_rank_0(spread: dict[str, Any]):
    failed = spread["results"]["probe_fails_on_one_worker"]
    last = spread["world_size"] - 1
    assert failed["status"] == "error"
    assert failed["message"] == f"the check crashed: ValueError: this worker's rows are bad (worker {last})"
    assert failed["evidence"] == {"exception": "ValueError", "at": "local phase"}
    # the phases after it ran on every worker as usual: nobody waited on the failed one
    assert spread["results"]["probe_echo_meeting"]["status"] == "pass"


def test_a_meeting_failing_on_one_worker_is_an_error_too(spread: dict[str, Any]):
    failed = spread["results"]["probe_fails_in_meeting"]
    assert failed["status"] == "error"
    assert failed["message"] == "the check crashed: ValueError: this worker's meeting went wrong (worker 0)"


def test_keyed_meetings_bring_equal_hashes_to_one_worker_and_may_chain(spread: dict[str, Any], single: dict[str, Any]):
    world_size = spread["world_size"]
    met = spread["results"]["probe_echo_meeting"]["evidence"]["met"]
    n_train = single["bundle"].splits["train"].n
    for round_name, modulus in (("first", 7), ("second", 5)):
        owner: dict[int, int] = {}
        rows: list[int] = []
        for rank, worker in enumerate(met):
            for key, row in worker[round_name]:
                assert key == row % modulus
                assert key % world_size == rank  # the worker a hash is routed to
                assert owner.setdefault(key, rank) == rank  # every row of a hash meets on that one worker
                rows.append(row)
        assert sorted(rows) == list(range(n_train))  # every row arrives once


def test_the_row_sample_is_the_same_rows_for_any_number_of_workers(spread: dict[str, Any], single: dict[str, Any]):
    bundle, predictions = single["bundle"], single["predictions"]
    train = bundle.splits["train"]
    rows = np.array(spread["sample"]["rows"])
    assert rows.tolist() == single["sample_rows"]
    assert len(rows) == SAMPLE_BOUND < train.n and np.all(np.diff(rows) > 0)
    # the sampled rows carry their own inputs, labels, source rows, attributes and predictions
    np.testing.assert_array_equal(np.array(spread["sample"]["features"], dtype=np.float32), train.features[rows])
    assert spread["sample"]["labels"] == train.labels[rows].tolist()
    assert spread["sample"]["source_rows"] == train.source_rows[rows].tolist()
    assert spread["sample"]["sizes"] == train.attributes["size"].to_numpy()[rows].tolist()
    assert spread["sample"]["y_pred"] == predictions["train"].y_pred[rows].tolist()
    # a split within the bound is sampled whole, in order
    for name, split in bundle.splits.items():
        assert spread["whole_sample_rows"][name] == list(range(split.n))


def test_the_row_sample_of_one_process_is_the_same_rule():
    bundle, predictions = _bundle()
    context = CheckContext(task=bundle.task, data=bundle, predictions=predictions, metrics={}, training=None, seed=11)
    drawn = gather_row_samples(context.as_shard(), ["train"], max_rows=SAMPLE_BOUND)
    again = gather_row_samples(context.as_shard(), ["train"], max_rows=SAMPLE_BOUND)
    assert drawn is not None and again is not None
    assert drawn["train"].rows.tolist() == again["train"].rows.tolist()
    other_seed = dataclasses.replace(context.as_shard(), seed=12)
    moved = gather_row_samples(other_seed, ["train"], max_rows=SAMPLE_BOUND)
    assert moved is not None and moved["train"].rows.tolist() != drawn["train"].rows.tolist()
    assert context.row_sample("train").is_whole


def test_rows_elsewhere_raises_and_a_check_reading_rows_directly_errs():
    bundle, predictions = _bundle()
    spread_data = labels_only(bundle, predictions)
    test = spread_data.splits["test"]
    assert isinstance(test.dataset, RowsElsewhere) and len(test.dataset) == bundle.splits["test"].n
    with pytest.raises(LookupError, match="spread over the workers"):
        test.dataset[0]
    for stand_in in (test.features, test.attributes, test.source_rows):
        assert isinstance(stand_in, RowsElsewhere)
        with pytest.raises(LookupError, match="spread over the workers"):
            stand_in[0]
    np.testing.assert_array_equal(test.labels, bundle.splits["test"].labels)

    class ReadsRows(Check):
        spec = _spec("probe_reads_rows")

        def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
            ctx.data.splits["test"].dataset[3]
            return Finding("ok", 0, "read")

    context = CheckContext(task=bundle.task, data=spread_data, predictions=predictions, metrics={}, training=None)
    result = run_check(ReadsRows(), context, None)
    assert result is not None and result.status == "error"
    assert "rows are spread over the workers" in result.message and "docs/plugins.md" in result.message


def test_a_one_process_local_phase_failure_is_an_error_result():
    bundle, predictions = _bundle()
    context = CheckContext(task=bundle.task, data=bundle, predictions=predictions, metrics={}, training=None)
    result = run_check(FailsOnOneWorker(0), context, None)
    assert result is not None and result.status == "error"
    assert result.message == "the check crashed: ValueError: this worker's rows are bad"
    meeting = run_check(FailsInMeeting(0), context, None)
    assert meeting is not None and meeting.status == "error"
    assert meeting.message == "the check crashed: ValueError: this worker's meeting went wrong"


def test_an_empty_shard_hands_over_no_keyed_rows_without_breaking():
    rows = KeyedRows(np.zeros(0, dtype=np.uint64), np.zeros((0, 5), dtype=np.int64))
    assert rows.payload.shape == (0, 5)
    world = World.single()
    bundle, predictions = _bundle()
    empty = {name: shard_split(split, 0, 0) for name, split in bundle.splits.items()}
    shard = ShardContext(task=bundle.task, data=dataclasses.replace(bundle, splits=empty),
                         predictions={k: _shard_predictions(p, 0, 0) for k, p in predictions.items()}, world=world)
    overlap = registry.get("train_test_overlap")
    assert overlap is not None
    ran = run_local_phases([(overlap, overlap.spec.settings_from(None))], shard)
    assert ran is not None
    (worker,) = ran["train_test_overlap"]  # type: ignore[misc]
    assert worker.met[0]["a"] == 0 and worker.met[0]["b_only"] == 0


# --------------------------------------------------------------------------- the data checks, spread and whole


@pytest.mark.parametrize("check_id", MY_CHECKS)
def test_spread_results_equal_the_one_process_results(spread: dict[str, Any], single: dict[str, Any], check_id: str):
    assert spread["results"][check_id] == single["results"][check_id]
    assert spread["results"][check_id]["status"] != "error", spread["results"][check_id]["message"]


def test_planted_defects_are_found_on_any_number_of_workers(spread: dict[str, Any], single: dict[str, Any]):
    results = spread["results"]
    bundle: DataBundle = single["bundle"]
    integrity = results["data_integrity"]["evidence"]["splits"]
    assert integrity["test"]["nonfinite_values"] == 3 and integrity["test"]["nonfinite_samples"] == 2
    assert integrity["val"]["nonfinite_values"] == 1
    counts = np.bincount(bundle.splits["test"].labels, minlength=2)
    assert integrity["test"]["class_support"] == {"benign": int(counts[0]), "malignant": int(counts[1])}
    assert results["data_integrity"]["status"] == "fail"

    from reportgen.checks import fingerprints

    train, test = (fingerprints.compute(bundle.splits[name], 64) for name in ("train", "test"))
    oracle = fingerprints.match(train, test)  # the whole-split matcher
    pair = results["train_test_overlap"]["evidence"]["pairs"]["test_in_train"]
    assert pair["count"] == int(oracle.found.sum()) == 8  # 4 identical, 3 one step off, 1 on a cell edge
    assert pair["exact"] == int((oracle.found & oracle.exact).sum()) == 4
    first = np.flatnonzero(oracle.found)[:10]
    test_rows, train_rows = bundle.splits["test"].source_rows, bundle.splits["train"].source_rows
    assert pair["examples"] == [{"test_row": int(test_rows[q]) + 1, "train_row": int(train_rows[r]) + 1}
                                for q, r in zip(first, oracle.index[first])]
    assert {"test_row": int(test_rows[120]) + 1, "train_row": 10_000 + 7 + 1} in pair["examples"]
    assert results["train_test_overlap"]["status"] == "fail"

    # conflicting labels: groups of equal normalised hash over train, val, test holding two labels
    hashes = np.concatenate([fingerprints.compute(bundle.splits[s], 64).norm for s in ("train", "val", "test")])
    labels = np.concatenate([bundle.splits[s].labels for s in ("train", "val", "test")])
    per_group = pd.DataFrame({"h": hashes.view(np.int64), "y": labels}).groupby("h")["y"].nunique()
    conflicts = results["conflicting_labels"]
    assert conflicts["value"] == int((per_group > 1).sum()) == 3
    assert (conflicts["evidence"]["within_train"], conflicts["evidence"]["across_splits"]) == (2, 1)

    leak = results["target_leakage"]
    assert leak["status"] == "fail" and leak["evidence"]["features"][0]["name"] == "leak"
    assert leak["evidence"]["rows_used"] == bundle.splits["train"].n

    unseen = results["unseen_categories"]["evidence"]["splits"]
    for name, palette_size in (("val", 3), ("test", 4)):
        colours = bundle.splits[name].attributes["colour"]
        novel = colours[~colours.isin(["red", "green"])]
        assert unseen[name]["samples"] == len(novel)
        assert unseen[name]["columns"]["colour"]["examples"] == {str(k): int(v) for k, v in novel.value_counts().items()}
        assert unseen[name]["columns"]["colour"]["distinct"] == palette_size - 2

    for check_id in ("class_imbalance", "label_shift"):
        assert results[check_id]["status"] in ("pass", "warn")
    train_counts = np.bincount(bundle.splits["train"].labels, minlength=2)
    assert results["class_imbalance"]["value"] == pytest.approx(2 * train_counts.min() / train_counts.sum())


# --------------------------------------------------------------------------- memory: what travels and what is kept


def test_only_rows_that_may_meet_travel_and_only_they_get_a_payload():
    from reportgen.checks.shards import _rows_that_may_meet

    rng = np.random.default_rng(3)
    shared = rng.integers(0, 2**63, size=10, dtype=np.uint64)
    query = np.concatenate([rng.integers(0, 2**63, size=3000, dtype=np.uint64), shared])
    reference = np.concatenate([shared, rng.integers(0, 2**63, size=3000, dtype=np.uint64)])
    hashes = np.concatenate([query, reference])
    groups = np.repeat(np.array([0, 1], dtype=np.int8), [query.size, reference.size])
    asked: list[np.ndarray] = []

    def payload_of(at: np.ndarray) -> np.ndarray:
        asked.append(at)
        return np.column_stack([at, at * 2])

    kept = _rows_that_may_meet(KeyedRows(hashes, np.empty((0, 2), np.int64), groups, ((0, 1),), payload_of), World.single())
    (at,) = asked
    assert np.all(np.diff(at) > 0)
    np.testing.assert_array_equal(kept.hashes, hashes[at])
    np.testing.assert_array_equal(kept.payload, np.column_stack([at, at * 2]))
    # every row whose hash occurs in the other group travels, in both directions; few others do
    must = np.flatnonzero(np.isin(hashes, shared))
    assert set(must.tolist()) <= set(at.tolist()) and must.size == 20
    assert at.size < 0.1 * hashes.size

    # a group met with itself: rows whose hash occurs twice travel, single ones mostly stay
    twice = np.concatenate([query, shared])
    alone = _rows_that_may_meet(KeyedRows(twice, np.zeros((twice.size, 1), np.int64), meets=((0, 0),)), World.single())
    assert np.isin(shared, alone.hashes).all() and alone.hashes.size < 0.1 * twice.size


def test_hash_presence_misses_no_hash_and_counts_repeats():
    from reportgen.distributed import hash_presence, presence_bits

    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64)
    hashes[:50] = hashes[50:100]
    presence = hash_presence(hashes, presence_bits(hashes.size), World.single())
    assert presence.contains(hashes).all()
    assert presence.contains(hashes[:50], "repeated").all()
    others = rng.integers(0, 2**64 - 1, size=5000, dtype=np.uint64)
    assert presence.contains(others).mean() < 0.1
    assert presence.contains(hashes[100:], "repeated").mean() < 0.1


def test_a_one_process_row_sample_copies_rows_out_only_while_they_are_read():
    import gc
    import weakref

    bundle, predictions = _bundle()
    context = CheckContext(task=bundle.task, data=bundle, predictions=predictions, metrics={}, training=None, seed=11)
    drawn = gather_row_samples(context.as_shard(), ["train"], max_rows=SAMPLE_BOUND)
    assert drawn is not None
    sample, whole = drawn["train"], bundle.splits["train"]
    rows = sample.rows
    assert whole.features is not None and whole.attributes is not None and sample.predictions is not None
    features = sample.split.features
    assert features is sample.split.features  # one copy while it is held
    np.testing.assert_array_equal(features, whole.features[rows].astype(np.float32))
    np.testing.assert_array_equal(sample.split.dataset.tensors[0].numpy(), features)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(sample.split.labels, whole.labels[rows])
    np.testing.assert_array_equal(sample.predictions.probs, predictions["train"].probs[rows])
    pd.testing.assert_frame_equal(sample.split.attributes, whole.attributes.iloc[rows].reset_index(drop=True))
    held = weakref.ref(features)
    del features
    gc.collect()
    assert held() is None  # the sample kept no copy of the rows
    assert sample.split.n == len(rows) and not sample.is_whole

    # a split within the bound is its own sample: the same arrays, not copies
    every = gather_row_samples(context.as_shard(), ["train"], max_rows=whole.n)
    assert every is not None and every["train"].is_whole
    assert np.shares_memory(every["train"].split.features, whole.features)
    assert every["train"].split.attributes is whole.attributes or whole.attributes.index.tolist() != list(range(whole.n))


def test_block_payload_maps_positions_in_blocks_laid_end_to_end_to_their_rows():
    import torch
    from torch.utils.data import TensorDataset

    from reportgen.checks.data_checks import _block_payload
    from reportgen.types import SplitData

    rng = np.random.default_rng(5)

    def split(name: str, n: int, offset: int, sources: bool) -> SplitData:
        labels = rng.integers(0, 3, size=n).astype(np.int64)
        source_rows = rng.permutation(100)[:n] if sources else None
        return SplitData(name, TensorDataset(torch.zeros(n, 1)), labels, source_rows=source_rows, offset=offset, total=n + offset)

    train, val, test = split("train", 4, 10, True), split("val", 3, 0, False), split("test", 5, 7, True)
    extra = rng.integers(-(2**62), 2**62, size=5, dtype=np.int64)
    blocks: list[tuple[SplitData, tuple[int, ...], tuple[Any, ...]]] = [
        (train, (0, 9), (train.labels,)), (val, (1, 9), (val.labels,)), (test, (1, 8), (extra,))]
    stops = np.cumsum([train.n, val.n, test.n])
    # oracle: each block's rows written out one by one, then the rows at ``at`` picked
    every = [
        [*constants, ("train", "val", "test").index(s.name), s.offset + r,
         -1 if s.source_rows is None else int(s.source_rows[r]), int(column[r])]
        for s, constants, (column,) in blocks for r in range(s.n)
    ]
    at = np.array([0, 3, 4, 6, 7, 11], dtype=np.int64)
    got = _block_payload(at, stops, blocks, 6)
    assert got.dtype == np.int64 and got.shape == (6, 6)
    np.testing.assert_array_equal(got, np.array([every[i] for i in at], dtype=np.int64))
    assert _block_payload(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], 5).shape == (0, 5)
