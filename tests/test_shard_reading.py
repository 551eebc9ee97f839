"""Sharded reading: each worker of an evaluate-only run reads only its rows, with the single-process facts.

The multi-worker tests start real processes (this file's ``_worker`` in ``python -c``) that join one gloo
process group on 127.0.0.1 and call ``load_data(..., shard=ShardPlan(world, batch_size))``; the test compares
what each worker holds with the same rows of a whole read in this process (the oracle).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_config
from test_distributed_run import differences, run_launcher

from reportgen.config import load_config
from reportgen.data import load_data
from reportgen.distributed import ShardPlan, World, shard_bounds
from reportgen.errors import DataError
from reportgen.evaluation import inference_batch_size
from reportgen.npz_rows import NpzRows
from reportgen.pipeline import reads_sharded
from worlds import run_world

TESTS = Path(__file__).resolve().parent
BATCH = 16  # data.batch_size; the scoring batch (and shard alignment) is 8 x 16 = 128 rows
SIZES = {"train": 1000, "val": 333, "test": 517}  # no split divides evenly among 2 or 3 workers
FEATURES = 5


def _arrays(label_defect: str = "", sizes: dict[str, int] = SIZES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    arrays: dict[str, np.ndarray] = {}
    for split, n in sizes.items():
        x = rng.standard_normal((n, FEATURES)).astype(np.float32)
        arrays[f"X_{split}"] = x
        arrays[f"y_{split}"] = (x[:, 0] + 0.3 * x[:, 1] > 0.4).astype(np.int64)
    if label_defect == "fractional":  # in the last worker's rows whatever the world size
        y = arrays["y_test"].astype(np.float32)
        y[500], y[510] = 0.5, 1.5
        arrays["y_test"] = y
    elif label_defect == "out_of_range":  # two classes named by data.classes; index 7 is none of them
        arrays["y_val"][[300, 320]] = 7
    return arrays


def _write_npz(folder: Path, compressed: bool, label_defect: str = "", sizes: dict[str, int] = SIZES) -> Path:
    path = folder / ("data_z.npz" if compressed else "data.npz")
    (np.savez_compressed if compressed else np.savez)(path, **_arrays(label_defect, sizes))
    return path


def _npz_config(folder: Path, data_file: str, classes: list[str] | None = None) -> Path:
    data: dict[str, Any] = {"kind": "npz", "path": data_file, "batch_size": BATCH}
    if classes:
        data["classes"] = classes
    document = {"name": "shards", "task": "binary", "seed": 0, "data": data,
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name=f"{data_file}.yaml")


def _csv_config(folder: Path) -> Path:
    """Separate train/val/test CSV files with a categorical column and empty cells filled by the train mean."""
    rng = np.random.default_rng(5)
    for split, n in SIZES.items():
        x = rng.standard_normal((n, 3))
        frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1] * 10 + 3, "colour": rng.choice(["red", "green", "blue"], n),
                              "y": np.where(x[:, 0] + x[:, 2] > 0, "yes", "no")})
        frame.loc[frame.index % 97 == 3, "b"] = np.nan
        frame.to_csv(folder / f"{split}.csv", index=False)
    document = {"name": "shards-csv", "task": "binary", "seed": 0,
                "data": {"kind": "csv", "train": "train.csv", "val": "val.csv", "test": "test.csv", "target": "y",
                         "categorical": ["colour"], "missing": "mean", "batch_size": BATCH},
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name="csv.yaml")


# --------------------------------------------------------------------------- workers


def _describe(config: Path, world: World) -> dict[str, Any]:
    """What this worker holds after a sharded read, JSON-safe (arrays as lists)."""
    loaded = load_config(config)
    try:
        bundle = load_data(loaded.config.data, loaded.config.task, loaded.resolve, loaded.config.seed,
                           shard=ShardPlan(world, loaded.config.data.batch_size))
    except DataError as exc:
        return {"error": str(exc)}
    splits = {}
    for name, split in bundle.splits.items():
        x, y = split.dataset.tensors  # type: ignore[attr-defined]
        splits[name] = {
            "offset": split.offset, "total": split.total, "n": split.n, "labels": split.labels.tolist(),
            "features": split.features.tolist(), "x_storage_bytes": x.untyped_storage().nbytes(),
            "y_storage_bytes": y.untyped_storage().nbytes(), "features_bytes": split.features.nbytes,
            "features_owner_bytes": (split.features.base if split.features.base is not None else split.features).nbytes,
            "class_counts": bundle.class_counts(name),
        }
    return {"classes": list(bundle.classes), "positive_index": bundle.positive_index, "input_shape": list(bundle.input_shape),
            "feature_names": list(bundle.feature_names or ()), "splits": splits,
            "preprocessing": bundle.fingerprint.get("preprocessing"), "probe": bundle.probe_inputs.tolist()}


def _worker(config: str, out_dir: str) -> None:
    """Entry point of one worker process (RANK etc. come from the environment)."""
    from reportgen.distributed import join_world

    with join_world("cpu") as world:
        result = _describe(Path(config), world)
        Path(out_dir, f"rank{world.rank}.json").write_text(json.dumps(result), encoding="utf-8")


def _run_workers(config: Path, out_dir: Path, world_size: int) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if world_size == 1:  # the plan of a one-process world: the same code path, no process group
        return [_describe(config, World.single())]
    run_world("test_shard_reading", f"_worker({str(config)!r}, {str(out_dir)!r})", world_size, {"OMP_NUM_THREADS": "1"})
    return [json.loads((out_dir / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(world_size)]


def _whole(config: Path):
    loaded = load_config(config)
    return load_data(loaded.config.data, loaded.config.task, loaded.resolve, loaded.config.seed)


def _assert_shards_are_the_whole_read(config: Path, workers: list[dict[str, Any]]) -> None:
    whole = _whole(config)
    align = inference_batch_size(BATCH, whole.input_shape)
    assert align == 128
    for rank, got in enumerate(workers):
        assert got["classes"] == list(whole.classes) and got["positive_index"] == whole.positive_index
        assert got["input_shape"] == list(whole.input_shape)
        assert got["feature_names"] == list(whole.feature_names or ())
        assert got["preprocessing"] == whole.fingerprint.get("preprocessing")
        assert np.array_equal(np.array(got["probe"], dtype=np.float32), whole.splits["train"].features[:2])
        for name, split in whole.splits.items():
            part = got["splits"][name]
            start, stop = shard_bounds(split.n, rank, len(workers), align=align)
            assert (part["offset"], part["n"], part["total"]) == (start, stop - start, split.n)
            assert part["labels"] == split.labels[start:stop].tolist()
            features = np.array(part["features"], dtype=np.float32).reshape(stop - start, -1)
            assert np.array_equal(features, split.features[start:stop])  # bit for bit
            assert part["class_counts"] == whole.class_counts(name)
            # memory: each worker's arrays are its shard's size, not views of a whole split
            row_bytes = 4 * split.features.shape[1]
            assert part["x_storage_bytes"] == part["features_bytes"] == (stop - start) * row_bytes
            assert part["features_owner_bytes"] == (stop - start) * row_bytes
            assert part["y_storage_bytes"] == (stop - start) * split.labels.itemsize
    sizes = [[w["splits"][name]["n"] for w in workers] for name in whole.splits]
    if len(workers) > 1:
        assert any(len(set(s)) > 1 for s in sizes)  # the shards are not all alike: uneven splits


# --------------------------------------------------------------------------- npz members by row range


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_are_the_rows_of_a_whole_read(tmp_path: Path, compressed: bool):
    rng = np.random.default_rng(3)
    arrays = {"X": rng.standard_normal((1001, 3, 4)).astype(np.float32), "y": rng.integers(0, 5, (1001, 1)),
              "F": np.asfortranarray(rng.standard_normal((50, 3))), "one": np.arange(7, dtype=np.int16),
              "empty": np.zeros((0, 3), np.float64)}
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    with zipfile.ZipFile(path) as archive:  # the file really is stored / deflated as the case says
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    with NpzRows(path) as reader:
        assert sorted(reader.keys) == sorted(arrays)
        for key, array in arrays.items():
            header = reader.header(key)
            assert (header.shape, header.dtype) == (array.shape, array.dtype)
            n = len(array)
            for start, stop in [(0, n), (0, 0), (0, 1), (n // 3, n // 2), (n - 1, n), (n // 2, n + 10)]:
                got = reader.rows(key, start, stop)
                assert got.dtype == array.dtype and np.array_equal(got, array[start:stop])
                assert got.base is None or got.base.nbytes == got.nbytes  # a copy of the rows, not a map of the file


def test_a_file_that_is_not_an_npz_archive_is_a_data_error(tmp_path: Path):
    np.save(tmp_path / "plain.npy", np.zeros((3, 2)))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    config = _npz_config(tmp_path, "plain.npz")
    with pytest.raises(DataError, match=r"cannot read .*plain.npz as .npz: the file is a single .npy array"):
        _whole(config)


# --------------------------------------------------------------------------- one worker, two, three


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True])
def test_each_worker_reads_its_npz_rows_with_the_single_process_facts(tmp_path: Path, compressed: bool):
    config = _npz_config(tmp_path, _write_npz(tmp_path, compressed).name)
    for world_size in ((1, 2, 3) if not compressed else (3,)):  # the reader itself is tested on both above
        _assert_shards_are_the_whole_read(config, _run_workers(config, tmp_path / f"n{world_size}", world_size))


@pytest.mark.slow
def test_each_worker_keeps_its_rows_of_csv_tables_with_the_train_fitted_preprocessing(tmp_path: Path):
    config = _csv_config(tmp_path)
    for world_size in (2, 3):
        _assert_shards_are_the_whole_read(config, _run_workers(config, tmp_path / f"n{world_size}", world_size))


@pytest.mark.slow
@pytest.mark.parametrize(("defect", "classes"), [("fractional", None), ("out_of_range", ["0", "1"])])
def test_a_bad_label_in_one_shard_is_the_single_process_error_on_every_worker(tmp_path: Path, defect: str, classes):
    config = _npz_config(tmp_path, _write_npz(tmp_path, compressed=False, label_defect=defect).name, classes)
    with pytest.raises(DataError) as whole:
        _whole(config)
    expected = {"fractional": "y_test holds np.float32(0.5) at index 500", "out_of_range": "val label 7 at index 300"}[defect]
    assert expected in str(whole.value)
    workers = _run_workers(config, tmp_path / "n3", 3)
    assert [w["error"] for w in workers] == [str(whole.value)] * 3


# --------------------------------------------------------------------------- the run


def test_sharded_reading_is_for_evaluate_only_runs_on_several_workers(tmp_path: Path):
    from reportgen.checks import registry

    config = _npz_config(tmp_path, _write_npz(tmp_path, compressed=False).name)
    two = World(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"), backend="gloo")
    off = {f"checks.{check.spec.id}.enabled": False for check in registry.all()}
    loaded = load_config(config)
    assert not reads_sharded(loaded, World.single())
    assert reads_sharded(loaded.with_flags(off), two)
    assert reads_sharded(loaded, two)  # the checks read rows through local phases and the row sample
    trained = load_config(config).with_flags({**off, "training": {"epochs": 1}})
    assert not reads_sharded(trained, two)  # DDP draws every batch from the whole train split


@pytest.mark.slow
@pytest.mark.parametrize("checks", ["off", "on"])
def test_two_workers_reading_shards_write_the_single_process_results(tmp_path: Path, checks: str):
    from reportgen.checks import registry

    # train and val shorter than one scoring batch (128 rows): rank 1 holds none of their rows
    sizes = {"train": 120, "val": 100, "test": 517}
    config = _npz_config(tmp_path, _write_npz(tmp_path, compressed=True, sizes=sizes).name)
    disable = ([arg for check in registry.all() for arg in ("--set", f"checks.{check.spec.id}.enabled=false")]
               if checks == "off" else [])
    one = run_launcher("run", str(config), "--out", str(tmp_path / "one"), "--quiet", *disable)
    assert one.returncode in (0, 1), one.stderr
    two = run_launcher("run", str(config), "--out", str(tmp_path / "two"), "--quiet", "--nproc-per-node", "2", *disable)
    assert two.returncode == one.returncode, two.stdout + two.stderr
    single = json.loads((tmp_path / "one" / "results.json").read_text(encoding="utf-8"))
    multi = json.loads((tmp_path / "two" / "results.json").read_text(encoding="utf-8"))
    assert multi["environment"]["world_size"] == 2
    if checks == "off":
        assert single["checks"] == multi["checks"] == []
    else:  # every check ran on both, none crashed, and each reports the same status, value and evidence
        assert len(multi["checks"]) == len(registry.all()) and not [c for c in multi["checks"] if c["status"] == "error"]
    assert {name: split["n"] for name, split in multi["data"]["splits"].items()} == sizes
    assert differences(single, multi) == []


# --------------------------------------------------------------------------- corrupt members (CRC-32)


def _flip_x_test_byte(path: Path, row: int) -> None:
    """Flip one byte of X_test's data inside the zip: in row ``row`` of a stored member, or at the matching
    fraction of a compressed member's deflate stream (which then fails zipfile's CRC-32 or zlib's check)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("X_test.npy")
    with path.open("r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), dtype="<u2")
        data = info.header_offset + 30 + int(name_length) + int(extra_length)
        rows_after = SIZES["test"] - row  # the array's float32 rows end the member
        where = (data + info.file_size - rows_after * FEATURES * 4 if info.compress_type == zipfile.ZIP_STORED
                 else data + info.compress_size * row // SIZES["test"])
        handle.seek(where)
        byte = handle.read(1)
        handle.seek(where)
        handle.write(bytes([byte[0] ^ 0x10]))


def _numpy_error(path: Path) -> str:
    """What numpy's whole read of X_test says of the file (the oracle for the message)."""
    with np.load(path) as archive, pytest.raises((zipfile.BadZipFile, zlib.error, EOFError)) as raised:
        archive["X_test"]
    return str(raised.value)


def test_the_sha256_pass_checks_the_crc_of_every_stored_member(tmp_path: Path):
    import hashlib

    path = _write_npz(tmp_path, compressed=False)
    with NpzRows(path) as reader:
        assert reader.sha256_checking_stored() == (hashlib.sha256(path.read_bytes()).hexdigest(), None)
    _flip_x_test_byte(path, row=500)
    with NpzRows(path) as reader:
        digest, bad = reader.sha256_checking_stored()
    assert (digest, bad) == (hashlib.sha256(path.read_bytes()).hexdigest(), "X_test.npy")
    assert _numpy_error(path) == "Bad CRC-32 for file 'X_test.npy'"
    with pytest.raises(DataError) as raised:
        _whole(_npz_config(tmp_path, path.name))
    assert str(raised.value) == f"cannot read {path} as .npz: Bad CRC-32 for file 'X_test.npy'"


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True])
def test_a_corrupt_member_is_the_single_process_error_on_every_worker(tmp_path: Path, compressed: bool):
    path = _write_npz(tmp_path, compressed)
    _flip_x_test_byte(path, row=500)  # in the last worker's rows for 2 and 3 workers
    config = _npz_config(tmp_path, path.name)
    with pytest.raises(DataError) as whole:
        _whole(config)
    assert str(whole.value) == f"cannot read {path} as .npz: {_numpy_error(path)}"
    for world_size in (2, 3):
        workers = _run_workers(config, tmp_path / f"n{world_size}", world_size)
        assert [w.get("error") for w in workers] == [str(whole.value)] * world_size


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True])
def test_a_run_on_a_corrupt_member_says_one_line_and_writes_nothing(tmp_path: Path, compressed: bool):
    path = _write_npz(tmp_path, compressed)
    _flip_x_test_byte(path, row=500)
    config = _npz_config(tmp_path, path.name)
    expected = f"reportgen: error: cannot read {path} as .npz: {_numpy_error(path)}"
    for nproc in ("1", "2"):
        out = tmp_path / f"out{nproc}"
        done = run_launcher("run", str(config), "--out", str(out), "--quiet", "--nproc-per-node", nproc)
        assert (done.returncode, done.stderr.strip().splitlines()) == (2, [expected]), done.stderr
        assert not out.exists()
