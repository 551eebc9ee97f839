"""Sharded reading of CSV and Parquet tables: each worker reads only its rows of every split.

Used by ``data.load_data`` for a worker of an evaluate-only run on several workers (docs/sharded-reading.md).
Every global fact of a single-process read is rebuilt from the workers' parts, exactly:

- the record boundaries of each file: reportgen.csv_records (each worker scans 1/N of the bytes);
- the rows: worker ``rank`` parses the records of rows ``shard_bounds(n, rank, N, align)`` with the header
  in front, ``align`` a multiple of the scoring batch and of ``FIT_BLOCK_ROWS``, so that its scoring batches
  are the single-process run's and its train rows hold whole blocks of the fixed summation order;
- what a column is: the pandas dtype of each column, agreed over the workers (integers and floats mix as
  floats, as one parse of the whole column gives);
- what is fitted on train: means and variances (reportgen.train_statistics: the same floats on any number
  of workers), category counts summed over the workers (categories, their order, the imputation modes),
  the label classes and the positive class from train class counts summed over the workers.

Whenever a worker meets something whose single-process outcome it cannot rebuild exactly (any input error,
whose message names counts and rows over the whole file; rows removed by ``data.missing: drop``; columns
whose dtypes disagree beyond integer/float; a file the record scan cannot vouch for; a width that changes
the scoring batch), every worker learns it in the same collective step and ``load_tables_sharded`` returns
None: each then reads the tables whole, as one process does, and says the single-process error, if any.
Parquet files are read by row group (only the groups holding the worker's rows, converted as
``pandas.read_parquet`` converts a whole file). One ``data.path`` file split at random is parsed in parts
of ``FIT_BLOCK_ROWS``-aligned file rows; every worker draws the same split from all rows' strata (label
codes gathered in file order), fits on the train rows it parsed, and receives the rows of its evaluation
shards from the workers that parsed them (``exchange_objects``: an all-to-all, so no worker receives
every row).
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from reportgen.config import SplitSpec, TableData
from reportgen.csv_records import RangeScan, header_end, record_offset, scan_range
from reportgen.data import (
    MAX_CATEGORIES, TablePreprocessor, _as_text, _check_header, _text_columns, read_csv_rows, _encode_labels, _existing,
    _handle_missing, _header, _label_strings, _numeric_or_error, _positive, _sorted_classes, _stratified_split,
    csv_read_options, feature_columns, file_sha256,
)
from reportgen.distributed import ShardPlan, World, all_gather_objects, all_gather_scalars, all_reduce_sum, shard_bounds
from reportgen.errors import DataError
from reportgen.train_statistics import FIT_BLOCK_ROWS
from reportgen.types import SPLIT_ORDER, DataBundle, SplitData

Resolver = Callable[[str], Path]

MAX_GATHERED_LABELS = 1 << 16
"""Distinct train labels a worker may send; more is no classification task a whole read accepts either."""
_ASCII_MARKS = '"\n\r \t,;|'


class _WholeRead(Exception):
    """Some worker found what only a whole read says exactly (internal: load_tables_sharded returns None)."""


def _agree(problem: bool, world: World) -> None:
    """Raise _WholeRead on every worker when any worker has a ``problem``; one collective step."""
    if all_gather_scalars([problem], world, dtype=np.int64).any():
        raise _WholeRead


def _attempt(step: Callable[[], Any], world: World) -> Any:
    """``step()``; a DataError or a parse error on any worker makes every worker read whole."""
    result, problem = None, False
    try:
        result = step()
    except (DataError, ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError, ImportError, _WholeRead):
        problem = True
    _agree(problem, world)
    return result


def _separator_byte(cfg: TableData) -> int | None:
    """The byte that separates CSV fields in the file's encoding; None when it is not one ASCII-compatible byte."""
    try:
        name = codecs.lookup(cfg.csv.encoding).name
        sep = cfg.csv.sep.encode("utf-8" if name == "utf-8-sig" else cfg.csv.encoding)  # the BOM opens the file only
    except (LookupError, UnicodeError):
        return None
    ascii_compatible = name in ("utf-8", "utf-8-sig", "ascii", "latin-1") or name.startswith(("iso8859", "cp125"))
    return sep[0] if ascii_compatible and len(sep) == 1 and cfg.csv.sep not in '"\n\r' else None


def _scannable(cfg: TableData) -> bool:
    """Whether the config allows a sharded read (the same answer on every worker)."""
    return cfg.kind == "parquet" or _separator_byte(cfg) is not None


class _RangeReader(io.RawIOBase):
    """A file's header bytes followed by its bytes ``[start, stop)``: what pandas parses on one worker."""

    def __init__(self, path: Path, header: bytes, start: int, stop: int) -> None:
        self._handle = path.open("rb")
        self._handle.seek(start)
        self._header = header
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._header:
            count = min(len(view), len(self._header))
            view[:count] = self._header[:count]
            self._header = self._header[count:]
            return count
        if self._left <= 0:
            return 0
        count = self._handle.readinto(view[: min(len(view), self._left)]) or 0
        self._left -= count
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


@dataclass(frozen=True)
class _Layout:
    """Where one file's rows lie: its data row count and this worker's rows and their bytes."""

    rows: int
    start_row: int
    stop_row: int
    start_byte: int
    stop_byte: int
    header: bytes


def _layout(path: Path, sep: int, align: int, world: World) -> _Layout:
    """Scan ``path`` (1/N of its bytes per worker), agree on its records, and place this worker's rows."""
    size = path.stat().st_size
    end = _attempt(lambda: header_end(path), world)
    ends = all_gather_scalars([-1 if end is None else end], world, dtype=np.int64)[:, 0]
    _agree(bool((ends < 0).any() or (ends != ends[0]).any()), world)
    end = int(ends[0])
    rank, size_w = world.rank, world.world_size
    cuts = [end + (size - end) * w // size_w for w in range(size_w + 1)]
    scan: RangeScan = _attempt(lambda: scan_range(path, cuts[rank], cuts[rank + 1], size, sep), world)
    parts = all_gather_scalars([scan.quotes, *scan.records, *scan.unsure], world, dtype=np.int64)
    parities, counts, unsure = [], [], False
    parity = 0
    for quotes, records_even, records_odd, unsure_even, unsure_odd in parts.tolist():
        parities.append(parity)
        counts.append(records_odd if parity else records_even)
        unsure = unsure or bool(unsure_odd if parity else unsure_even)
        parity = (parity + quotes) % 2
    _agree(unsure or parity != 0, world)
    rows = int(sum(counts))
    first_rows = np.cumsum([0, *counts])
    bounds = [shard_bounds(rows, w, size_w, align) for w in range(size_w)]
    starts = [b[0] for b in bounds]
    offsets = np.zeros(size_w, dtype=np.int64)
    for w, row in enumerate(starts):  # the byte where worker w's first row starts, found by the range holding it
        if row < rows and first_rows[rank] <= row < first_rows[rank + 1]:
            offsets[w] = record_offset(path, scan, parities[rank], row - int(first_rows[rank]), size, sep)
    offsets = all_reduce_sum(offsets, world)
    start, stop = bounds[rank]
    start_byte = int(offsets[rank]) if start < rows else size
    stop_byte = int(offsets[rank + 1]) if rank + 1 < size_w and stop < rows else size
    with path.open("rb") as handle:
        header = handle.read(end + 1)
    return _Layout(rows, start, stop, start_byte, stop_byte, header)


def _parse(path: Path, layout: _Layout, options: dict[str, Any], header: list[str]) -> pd.DataFrame:
    """This worker's rows of ``path``, indexed by their data row (0-based), as ``pandas.read_csv`` reads them."""
    with io.BufferedReader(_RangeReader(path, layout.header, layout.start_byte, layout.stop_byte), 1 << 20) as stream:
        frame = read_csv_rows(stream, options, path, header)
    if len(frame) != layout.stop_row - layout.start_row:
        raise ValueError(f"{path.name}: {len(frame)} rows parsed where the scan found {layout.stop_row - layout.start_row}")
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.RangeIndex(layout.start_row, layout.stop_row)
    return frame


def _parquet_columns(path: Path) -> list[str]:
    """The column names ``pandas.read_parquet`` gives the file (its pandas index columns excluded)."""
    import pyarrow.parquet as pq
    from pandas.io._util import arrow_table_to_pandas

    return [str(c) for c in arrow_table_to_pandas(pq.ParquetFile(path).schema_arrow.empty_table()).columns]


def _parquet_rows(path: Path, align: int, world: World, text_columns: set[str]) -> tuple[int, pd.DataFrame]:
    """(the file's rows, this worker's rows ``shard_bounds(rows, rank, N, align)``) of a Parquet file: only the
    row groups holding them are read, and converted as ``pandas.read_parquet`` converts a whole file (a stored
    index is dropped: rows are the file's, as a whole read counts them).
    """
    import pyarrow.parquet as pq
    from pandas.io._util import arrow_table_to_pandas

    parquet = pq.ParquetFile(path)
    rows = parquet.metadata.num_rows
    start, stop = shard_bounds(rows, world.rank, world.world_size, align)
    firsts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    groups = [g for g in range(parquet.num_row_groups) if firsts[g] < stop and firsts[g + 1] > start]
    if groups:
        table = parquet.read_row_groups(groups, use_pandas_metadata=True).slice(start - int(firsts[groups[0]]), stop - start)
    else:
        table = parquet.schema_arrow.empty_table()
    frame = arrow_table_to_pandas(table)
    for column in text_columns & set(frame.columns):
        frame[column] = _as_text(frame[column])
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.RangeIndex(start, stop)
    return rows, frame


def _agree_dtypes(frames: dict[str, pd.DataFrame], world: World,
                  as_floats: Callable[[str, list[str]], pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    """Each column with the dtype a whole read gives it: the one every worker holding rows found, or float64
    where some found integers and others floats. A worker without rows of a split takes the others' dtypes.
    Any other disagreement: every worker reads whole.

    A whole CSV parse reads such a column's every cell as a float, so a worker that read integers reads its
    rows again with ``as_floats(split, columns)`` (casting would turn '-0' into +0.0 where the float parse
    gives -0.0); without ``as_floats`` (Parquet, whose integers have no sign of zero) the integers are cast.
    """
    kinds = {(name, column): str(frame[column].dtype) for name, frame in frames.items() if len(frame) for column in frame.columns}
    seen: dict[tuple[str, str], set[str]] = {}
    for part in all_gather_objects(kinds, world):
        for key, kind in part.items():  # type: ignore[attr-defined]
            seen.setdefault(key, set()).add(kind)
    _agree(any(len(found) > 1 and not found <= {"int64", "float64"} for found in seen.values()), world)
    result = {}
    for name, frame in frames.items():
        wanted = {column: ("float64" if len(found) > 1 else next(iter(found)))
                  for (split, column), found in seen.items() if split == name}
        changed = {column: kind for column, kind in wanted.items() if str(frame[column].dtype) != kind}
        integers = [column for column, kind in changed.items() if kind == "float64" and str(frame[column].dtype) == "int64"]
        if integers and as_floats is not None:
            frame = as_floats(name, integers)
            changed = {column: kind for column, kind in changed.items() if column not in integers}
        result[name] = frame.astype(changed) if changed else frame
    return result


def load_tables_sharded(cfg: TableData, task: str, resolve: Resolver, plan: ShardPlan, seed: int) -> DataBundle | None:
    """This worker's rows of every split of separate train/val/test files, or of one ``data.path`` file split
    at random with ``seed`` (as ``data._load_tables`` splits it), with a single-process read's facts.

    Returns None (on every worker alike) when the tables must be read whole instead (module docstring).
    Collectives: about fifteen small gathers per run; each worker reads 1/N of each file's bytes for the
    record scan, then its own records (and rank 0 every byte once more for the SHA-256 fingerprint). A
    ``data.path`` file adds a gather of one stratum code per row and one all-to-all of the rows each worker
    parsed for another worker's shards.
    """
    world = plan.world
    if not world.distributed or not _scannable(cfg):
        return None
    try:
        return _load_split_file(cfg, task, resolve, plan, seed) if cfg.path is not None else _load(cfg, task, resolve, plan)
    except _WholeRead:
        return None


def _files(cfg: TableData, resolve: Resolver, keys: dict[str, str]) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """(path, column names) of each file; ``keys`` maps the frame's name to its config key (``data.train``)."""
    paths = {name: _existing(resolve, relative, f"data.{key}") for name, key in keys.items()
             if (relative := getattr(cfg, key)) is not None}
    headers = {}
    for name, path in paths.items():
        if cfg.kind == "parquet":
            headers[name] = _parquet_columns(path)
            continue
        headers[name] = _header(path, cfg.csv)
        _check_header(path, headers[name], cfg.csv)
    return paths, headers


def _read_frames(cfg: TableData, task: str, paths: dict[str, Path], headers: dict[str, list[str]], sources: dict[str, str],
                 columns: tuple[list[str], list[str]], align: int, world: World) -> tuple[dict[str, int], dict[str, pd.DataFrame]]:
    """(rows per file, this worker's rows ``shard_bounds(rows, rank, N, align)`` of each file), with the dtypes, the
    numeric conversion and the missing-value checks of a whole read; ``columns`` = (numeric, categorical)."""
    numeric, categorical = columns
    totals: dict[str, int] = {}
    frames: dict[str, pd.DataFrame] = {}
    as_floats = None
    if cfg.kind == "csv":
        sep = _separator_byte(cfg)
        assert sep is not None
        layouts = {name: _layout(path, sep, align, world) for name, path in paths.items()}
        _agree(any(layout.rows == 0 for layout in layouts.values()), world)
        totals = {name: layout.rows for name, layout in layouts.items()}

        def parse(name: str, floats: tuple[str, ...] = ()) -> pd.DataFrame:
            options = csv_read_options(headers[name], cfg, task)
            options["dtype"] = {**options["dtype"], **{column: np.float64 for column in floats}}
            return _parse(paths[name], layouts[name], options, headers[name])

        frames = _attempt(lambda: {name: parse(name) for name in layouts}, world)
        as_floats = lambda name, columns: parse(name, tuple(columns))  # noqa: E731 - the CSV re-parse of some columns
    else:
        text_columns = _text_columns(cfg, task)
        read = _attempt(lambda: {name: _parquet_rows(path, align, world, text_columns) for name, path in paths.items()}, world)
        totals, frames = {name: rows for name, (rows, _) in read.items()}, {name: frame for name, (_, frame) in read.items()}
        _agree(any(rows == 0 for rows in totals.values()), world)
    frames = _attempt(lambda: _agree_dtypes(frames, world, as_floats), world)
    frames = _attempt(lambda: {name: _numeric_or_error(frame, numeric, sources[name], cfg.missing)
                               for name, frame in frames.items()}, world)
    assert cfg.target is not None
    _agree(any(frame[cfg.target].isna().any() for frame in frames.values()), world)
    kept = _attempt(lambda: _handle_missing(frames, numeric + categorical, cfg.missing, sources), world)
    _agree(any(len(kept[name]) != len(frame) for name, frame in frames.items()), world)
    return totals, frames


def _fit(cfg: TableData, train: pd.DataFrame, columns: tuple[list[str], list[str]], train_rows: int, source: str,
         world: World) -> TablePreprocessor:
    """The preprocessor a whole read fits on the train split, from this worker's ``train`` rows (index = file rows,
    whole blocks of FIT_BLOCK_ROWS) and the split's length ``train_rows``."""
    numeric, categorical = columns
    limit = min(MAX_CATEGORIES, max(50, train_rows // 2))
    local_counts = {column: train[column].dropna().astype(str).value_counts() for column in categorical}
    _agree(any(len(counts) > limit for counts in local_counts.values()), world)
    category_counts: dict[str, pd.Series] = {}
    for column in categorical:
        parts = [part for part in all_gather_objects(local_counts[column], world) if len(part)]  # type: ignore[arg-type]
        category_counts[column] = pd.concat(parts).groupby(level=0).sum() if parts else local_counts[column]
    return _attempt(lambda: TablePreprocessor.fit(train, numeric, categorical, cfg.standardize, source,
                                                  world, category_counts, train_rows), world)


def _bundle(cfg: TableData, task: str, parts: _Parts, world: World) -> DataBundle:
    """The DataBundle of this worker's rows: ``parts`` with labels encoded and class totals summed over the workers."""
    assert cfg.target is not None
    splits = {}
    for name in SPLIT_ORDER:
        if name not in parts.frames:
            continue
        frame, x, y, (start, total) = parts.frames[name], parts.matrices[name], parts.labels[name], parts.places[name]
        attributes = frame.drop(columns=[cfg.target])
        attributes.index = pd.RangeIndex(start, start + len(frame))
        splits[name] = SplitData(
            name=name, dataset=TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), labels=y, features=x,
            source_rows=frame.index.to_numpy(dtype=np.int64), source=parts.sources[name],
            attributes=attributes, offset=start, total=total,
        )
    class_totals: dict[str, tuple[int, ...]] = {}
    if task != "regression":
        class_totals = {name: tuple(int(c) for c in all_reduce_sum(np.bincount(y, minlength=len(parts.classes)), world))
                        for name, y in parts.labels.items()}
    hashes = {path.name: file_sha256(path) if world.is_main else "" for path in parts.paths}
    preprocessor = parts.preprocessor
    return DataBundle(
        task=task, splits=splits, classes=tuple(parts.classes), positive_index=parts.positive_index,
        feature_names=preprocessor.feature_names, input_shape=(len(preprocessor.feature_names),),
        fingerprint={"kind": cfg.kind, "files": hashes, "target": cfg.target, "preprocessing": preprocessor.describe()},
        model_columns=tuple(parts.features), class_totals=class_totals, probe_inputs=torch.from_numpy(parts.probe),
    )


@dataclass(frozen=True)
class _Parts:
    """What ``_bundle`` assembles: per split this worker's rows (index = file rows), their inputs and labels, and
    (first split position, split length); the fitted facts; the first two train inputs of the whole split."""

    frames: dict[str, pd.DataFrame]
    matrices: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    places: dict[str, tuple[int, int]]
    sources: dict[str, str]
    paths: list[Path]
    features: list[str]
    preprocessor: TablePreprocessor
    classes: list[str]
    positive_index: int | None
    probe: np.ndarray


def _load(cfg: TableData, task: str, resolve: Resolver, plan: ShardPlan) -> DataBundle:
    world = plan.world
    assert cfg.target is not None
    paths, headers = _attempt(lambda: _files(cfg, resolve, {name: name for name in SPLIT_ORDER}), world)
    sources = {name: path.name for name, path in paths.items()}
    features, numeric, categorical = _attempt(lambda: feature_columns(cfg, headers, sources), world)
    _agree("train" not in paths or "test" not in paths, world)
    align = math.lcm(FIT_BLOCK_ROWS, plan.align((len(features),)))
    totals, frames = _read_frames(cfg, task, paths, headers, sources, (numeric, categorical), align, world)
    preprocessor = _fit(cfg, frames["train"], (numeric, categorical), totals["train"], sources["train"], world)
    classes, positive_index, labels = _labels(cfg, task, frames, sources, world)
    input_shape = (len(preprocessor.feature_names),)
    _agree(align % plan.align(input_shape) != 0, world)  # the true width scores in batches that do not fit the rows
    matrices = _attempt(lambda: {name: preprocessor.transform(frame, impute=cfg.missing == "mean", source=sources[name])
                                 for name, frame in frames.items()}, world)
    probe = all_gather_objects(matrices["train"][:2].copy() if world.is_main else None, world)[0]
    places = {name: (int(frame.index.start), totals[name]) for name, frame in frames.items()}
    return _bundle(cfg, task, _Parts(frames, matrices, labels, places, sources, list(paths.values()), features,
                                     preprocessor, classes, positive_index, np.asarray(probe)), world)


def _load_split_file(cfg: TableData, task: str, resolve: Resolver, plan: ShardPlan, seed: int) -> DataBundle:
    """This worker's rows of each split of one ``data.path`` file split at random as ``data._load_tables`` splits it.

    Each worker parses the file rows ``shard_bounds(rows, rank, N, FIT_BLOCK_ROWS)``, all workers draw the same
    split from every row's stratum, each fits on the train rows it parsed, and the rows of each worker's
    evaluation shard (split positions ``ShardPlan.bounds``) are sent to it by the workers that parsed them.
    """
    world = plan.world
    assert cfg.target is not None
    paths, headers = _attempt(lambda: _files(cfg, resolve, {"all": "path"}), world)
    path = paths["all"]
    sources = {"all": path.name}
    features, numeric, categorical = _attempt(lambda: feature_columns(cfg, headers, sources), world)
    totals, frames = _read_frames(cfg, task, paths, headers, sources, (numeric, categorical), FIT_BLOCK_ROWS, world)
    rows, parsed = totals["all"], frames["all"]
    spec = cfg.split or SplitSpec()
    strata = _strata(parsed[cfg.target], world) if task != "regression" and spec.stratify else None
    indices = {name: idx for name, idx in _stratified_split(strata, rows, spec.val, spec.test, seed).items()
               if name != "val" or spec.val > 0}
    _agree(any(not len(idx) for idx in indices.values()), world)  # a whole read says which split is empty
    first, last = int(parsed.index.start), int(parsed.index.stop)

    def held(idx: np.ndarray) -> pd.DataFrame:  # the rows of a split (given by its file rows) this worker parsed
        lo, hi = np.searchsorted(idx, [first, last])
        return parsed.iloc[idx[lo:hi] - first]

    preprocessor = _fit(cfg, held(indices["train"]), (numeric, categorical), len(indices["train"]), path.name, world)
    classes, positive_index, _ = _labels(cfg, task, {"train": held(indices["train"])}, {"train": path.name}, world)
    input_shape = (len(preprocessor.feature_names),)
    frames = _exchange_rows(parsed, indices, plan.align(input_shape), world)
    sources = {name: path.name for name in frames}
    if task == "regression":
        labels = _attempt(lambda: _encode_labels({name: f[cfg.target] for name, f in frames.items()}, cfg, task, sources), world)[2]
    else:
        with_classes = cfg.model_copy(update={"classes": classes})
        labels = _attempt(lambda: _encode_labels({name: f[cfg.target] for name, f in frames.items()}, with_classes, task,
                                                 sources), world)[2]
    matrices = _attempt(lambda: {name: preprocessor.transform(frame, impute=cfg.missing == "mean", source=path.name)
                                 for name, frame in frames.items()}, world)
    places = {name: (plan.bounds(len(idx), input_shape)[0], len(idx)) for name, idx in indices.items()}
    firsts = matrices["train"][: max(0, 2 - places["train"][0])]  # split positions 0 and 1, where this worker holds them
    probe = np.concatenate([np.asarray(part) for part in all_gather_objects(firsts.copy(), world)])  # type: ignore[call-overload]
    return _bundle(cfg, task, _Parts(frames, matrices, labels, places, sources, [path], features, preprocessor,
                                     classes, positive_index, probe[:2]), world)


def _strata(target: pd.Series, world: World) -> np.ndarray:
    """Every file row's stratum, in file order, from each worker's rows ``target``: the rank of its label string in
    the sorted union of all labels, so that ``_stratified_split`` meets the strata in a whole read's order."""
    local = pd.unique(_label_strings(target))
    _agree(len(local) > MAX_GATHERED_LABELS, world)
    union = sorted(set().union(*(part.tolist() for part in all_gather_objects(local, world))))  # type: ignore[attr-defined]
    codes = pd.Index(union, dtype=object).get_indexer(_label_strings(target))
    return np.concatenate([np.asarray(part, dtype=np.int64) for part in all_gather_objects(codes, world)])  # type: ignore[call-overload]


def _exchange_rows(parsed: pd.DataFrame, indices: dict[str, np.ndarray], align: int, world: World) -> dict[str, pd.DataFrame]:
    """Each split's rows of this worker's evaluation shard (split positions ``shard_bounds(len, rank, N, align)``;
    file rows ``indices[split][start:stop]``), gathered from the workers that parsed them; index = file rows.

    This worker's ``parsed`` rows are a contiguous run of file rows, and the workers' runs follow each other
    in rank order, so the pieces received in rank order are in split order.
    """
    first, last = int(parsed.index.start), int(parsed.index.stop)
    outgoing = []
    for target in range(world.world_size):
        pieces = {}
        for name, idx in indices.items():
            start, stop = shard_bounds(len(idx), target, world.world_size, align)
            wanted = idx[start:stop]
            lo, hi = np.searchsorted(wanted, [first, last])
            pieces[name] = parsed.iloc[wanted[lo:hi] - first]
        outgoing.append(pieces)
    incoming = cast("list[dict[str, pd.DataFrame]]", exchange_objects(outgoing, world))
    frames = {}
    for name in indices:
        parts = [pieces[name] for pieces in incoming if len(pieces[name])]
        frames[name] = pd.concat(parts) if parts else parsed.iloc[:0]
    return frames


def exchange_objects(outgoing: Sequence[object], world: World) -> list[object]:
    """All-to-all of picklable objects: ``outgoing[w]`` goes to worker ``w``; returns what each worker sent this
    one, in rank order. Two ``all_to_all_single`` steps (the byte counts, then the bytes), so each worker
    receives only what is meant for it."""
    import torch.distributed as dist

    payloads = [pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) for value in outgoing]
    if not world.distributed:
        return [pickle.loads(payloads[0])]
    device = world.comm_device
    sizes = torch.tensor([len(payload) for payload in payloads], dtype=torch.int64, device=device)
    received = torch.empty_like(sizes)
    dist.all_to_all_single(received, sizes)
    counts = received.cpu().tolist()
    data = b"".join(payloads)
    send = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    into = torch.empty(sum(counts), dtype=torch.uint8, device=device)
    dist.all_to_all_single(into, send.to(device), output_split_sizes=counts, input_split_sizes=sizes.cpu().tolist())
    raw = into.cpu().numpy().tobytes()
    offsets = np.cumsum([0, *counts])
    return [pickle.loads(raw[int(offsets[w]) : int(offsets[w + 1])]) for w in range(world.world_size)]


def _labels(cfg: TableData, task: str, frames: dict[str, pd.DataFrame], sources: dict[str, str],
            world: World) -> tuple[list[str], int | None, dict[str, np.ndarray]]:
    """(classes, positive class, label array per split) as a whole read finds them."""
    columns = {name: frame[cfg.target] for name, frame in frames.items()}
    if task == "regression":
        return _attempt(lambda: _encode_labels(columns, cfg, task, sources), world)
    if cfg.classes:
        classes = list(cfg.classes)
    else:
        local = pd.unique(_label_strings(frames["train"][cfg.target]))
        _agree(len(local) > MAX_GATHERED_LABELS, world)
        seen = np.concatenate([np.asarray(part, dtype=object) for part in all_gather_objects(local, world)])  # type: ignore[call-overload]
        _agree(not len(seen), world)
        classes = _sorted_classes(pd.unique(seen))
    with_classes = cfg.model_copy(update={"classes": classes})
    _, _, arrays = _attempt(lambda: _encode_labels(columns, with_classes, task, sources), world)
    train_counts = all_reduce_sum(np.bincount(arrays["train"], minlength=len(classes)), world)
    positive = _attempt(lambda: _positive(classes, arrays["train"], cfg, task, train_counts), world)
    return classes, positive, arrays
