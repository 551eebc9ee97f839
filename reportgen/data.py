"""Data loading: files or a factory -> preprocessed splits, with everything fitted on train only."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, cast

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, TensorDataset

from reportgen.batching import iterate_batches
from reportgen.distributed import (
    ShardPlan, World, all_gather_objects, all_reduce_sum, first_flagged, first_flagged_value, first_message, global_max,
)
from reportgen.config import CsvOptions, DataConfig, NpzData, PythonData, SplitSpec, TableData, suggest
from reportgen.errors import ConfigError, DataError
from reportgen.npz_rows import NpzRows
from reportgen.train_statistics import column_moments
from reportgen.plugins import call_user_object
from reportgen.types import SPLIT_ORDER, DataBundle, SplitData

Resolver = Callable[[str], Path]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashingReader(io.RawIOBase):
    """A binary file read once for two purposes: what the parser reads also feeds a SHA-256 digest.

    Used for CSV files, so that the fingerprint's hash costs no second pass over the file.
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` and hash what was read."""
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0

    def hexdigest(self) -> str:
        """SHA-256 of the whole file (the part the parser did not read is read and hashed here)."""
        for chunk in iter(lambda: self.raw.read(1 << 20), b""):
            self.digest.update(chunk)
        return self.digest.hexdigest()


def _existing(resolve: Resolver, relative: str, key: str) -> Path:
    """Resolve a data path and fail clearly when it is missing."""
    path = resolve(relative)
    if not path.is_file():
        raise DataError(f"{key}: file not found: {path}")
    return path


# ---------------------------------------------------------------- tables (csv, parquet)

PANDAS_NA_SPELLINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
)
"""Cells that count as empty in a numeric column: pandas.read_csv's default na_values. In text columns (the
label of a classification task, categorical features) only an empty cell is empty: "NA" or "None" may be a class."""

MAX_CATEGORIES = 1000
"""A categorical column may have at most this many train categories, and at most one per two train rows
(when it has more than 50): beyond that it is an identifier, not a category, and its one-hot block would
be as wide as the data is long."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
_SEPARATORS = (";", "\t", "|")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+$")
_PLAIN_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")


def _header(path: Path, options: CsvOptions) -> list[str]:
    """The header row of a CSV file as written, read by the same parser as the data (so quoting, a byte-order
    mark and leading spaces are treated alike) but without pandas renaming a repeated name 'id' to 'id.1'."""
    try:
        row = pd.read_csv(
            path, sep=options.sep, encoding=options.encoding, header=None, nrows=1, dtype=str, keep_default_na=False,
            skipinitialspace=True, engine="c" if len(options.sep) == 1 else "python",
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path.name}: cannot decode the file as {options.encoding} (byte {exc.start}); set data.csv: {{encoding: ...}}, "
            "e.g. latin-1 or cp1252"
        ) from None
    except LookupError:
        raise DataError(f"data.csv.encoding: unknown encoding {options.encoding!r}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    return [str(name) for name in row.iloc[0].tolist()] if len(row) else []


def _check_header(path: Path, header: list[str], options: CsvOptions) -> None:
    """Stop on a repeated column name, a column without a name and a header that reads as one column because
    of the separator."""
    unnamed = [position for position, name in enumerate(header, start=1) if not name.strip()]
    if unnamed and len(header) > 1:
        raise DataError(
            f"{path.name}: column {unnamed[0]} of the header has no name (pandas would call it "
            f"'Unnamed: {unnamed[0] - 1}'); name it in the file, or drop it (pandas' to_csv writes its row index "
            "as such a column unless index=False)"
        )
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(position)
    for name, where in positions.items():
        if len(where) > 1:
            listed = ", ".join(str(p) for p in where)
            raise DataError(f"{path.name}: the header names column {name!r} {len(where)} times (columns {listed}); "
                            "give each column its own name")
    if len(header) == 1:
        for sep in _SEPARATORS:
            if sep != options.sep and sep in header[0]:
                shown = "\\t" if sep == "\t" else sep
                raise DataError(
                    f"{path.name}: the header reads as one column {header[0][:60]!r} with separator {options.sep!r}; "
                    f"the file looks separated by {shown!r}: set data.csv: {{sep: \"{shown}\"}}"
                )


def _text_columns(cfg: TableData, task: str) -> set[str]:
    """Columns read as text: the categorical ones, and the label of a classification task."""
    return set(cfg.categorical) | ({cfg.target} if task != "regression" and cfg.target else set())


def csv_read_options(header: list[str], cfg: TableData, task: str) -> dict[str, Any]:
    """The ``pandas.read_csv`` arguments every CSV read uses (whole file or one worker's records)."""
    options = cfg.csv
    text_columns = _text_columns(cfg, task)
    extra_na = list(options.na_values)
    na_values = {name: ([""] + extra_na) if name in text_columns else list(PANDAS_NA_SPELLINGS) + extra_na for name in header}
    return dict(
        sep=options.sep, decimal=options.decimal, thousands=options.thousands, encoding=options.encoding,
        skipinitialspace=True, keep_default_na=False, na_values=na_values, index_col=False,
        dtype={name: str for name in header if name in text_columns}, engine="c" if len(options.sep) == 1 else "python",
    )


def read_csv_rows(stream: Any, options: dict[str, Any], path: Path, header: list[str]) -> pd.DataFrame:
    """``pandas.read_csv(stream, **options)`` (``csv_read_options``), refusing a first data row with more fields
    than the header names.

    pandas would take the extra leading fields of such a row as the row index for the whole file (shifting
    every column), or with ``index_col=False`` drop them with a warning (a trailing separator on every row
    too: its empty field is not empty under reportgen's ``na_values``); a later row with more fields is
    pandas' own "Expected N fields" error. Raises DataError for the first row, pandas' errors otherwise.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Length of header or names does not match", category=pd.errors.ParserWarning)
        try:
            return pd.read_csv(stream, **options)
        except pd.errors.ParserWarning:
            raise DataError(
                f"{path.name}: the first data row has more fields than the header's {len(header)} columns; give every "
                "field a column name in the header, or remove the extra fields"
            ) from None


def _read_table(path: Path, cfg: TableData, task: str) -> pd.DataFrame:
    """Read one CSV or Parquet file; the label (classification) and categorical columns are read as text."""
    return _read_table_hashed(path, cfg, task)[0]


def _read_table_hashed(path: Path, cfg: TableData, task: str) -> tuple[pd.DataFrame, str]:
    """``_read_table`` and the file's SHA-256 (of a CSV: computed on the bytes the parser reads, in the same pass)."""
    options = cfg.csv
    text_columns = _text_columns(cfg, task)
    try:
        if cfg.kind == "csv":
            header = _header(path, options)
            _check_header(path, header, options)
            with path.open("rb", buffering=0) as raw:
                hashing = HashingReader(raw)
                frame = read_csv_rows(io.BufferedReader(hashing, 1 << 20), csv_read_options(header, cfg, task), path, header)
                sha256 = hashing.hexdigest()
        else:
            frame = pd.read_parquet(path).reset_index(drop=True)  # rows are counted as in the file, not by a stored index
            sha256 = file_sha256(path)
            for column in text_columns & set(frame.columns):
                frame[column] = _as_text(frame[column])
    except ImportError as exc:
        raise DataError(f"reading {path.name} needs an optional package: {exc}; install reportgen[parquet]") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: cannot decode the file as {options.encoding} (byte {exc.start}); set data.csv: {{encoding: ...}}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(f"cannot read {path}: {first_line}") from None
    if frame.empty:
        raise DataError(f"{path} has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame, sha256


def _as_text(values: pd.Series) -> pd.Series:
    """A column as text, missing cells kept missing; integral floats lose their '.0' (a Parquet float label 1.0 is '1')."""
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return values.astype(object).where(values.notna(), np.nan)  # read as text already: no per-cell work

    def as_text(value: Any) -> Any:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return np.nan
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return pd.Series([as_text(v) for v in values.tolist()], index=values.index, dtype=object)


def _label_strings(values: pd.Series) -> np.ndarray:
    """Label values as strings: the text of the file's cells without leading or trailing whitespace, so " yes"
    and "yes " are the class "yes" (the CSV reader already drops leading spaces; a trailing one is invisible)."""
    return np.array(_as_text(values).str.strip().tolist(), dtype=object)


def _sorted_classes(labels: np.ndarray) -> list[str]:
    """Sorted unique labels; numerically only when every label is a plain number without leading zeros
    ("2" < "10"), else as text, so codes such as "001", "010", "100" keep their order and spelling."""
    unique = sorted(pd.unique(labels).tolist())
    if all(_PLAIN_NUMBER.match(label) for label in unique):
        return sorted(unique, key=float)
    return unique


def is_constant_feature(count: int, mean: float, var: float) -> bool:
    """True when a column's variance is within the rounding error of computing it: its values are all equal.

    The bound is scikit-learn's ``sklearn.preprocessing._data._is_constant_feature`` (used by StandardScaler):
    ``var <= n * eps * var + (n * mean * eps) ** 2`` with eps the float64 machine epsilon. A column equal to
    14.62 in every row has a computed std of about 4e-15, not 0; dividing by it would blow test values up.
    """
    eps = float(np.finfo(np.float64).eps)
    return var <= count * eps * var + (count * mean * eps) ** 2


@dataclass(frozen=True)
class TablePreprocessor:
    """Feature preparation fitted on train: column order, one-hot categories, imputation, scaling."""

    numeric: tuple[str, ...]
    categorical: Mapping[str, tuple[str, ...]]
    means: Mapping[str, float]
    stds: Mapping[str, float]
    standardize: bool
    constant: tuple[str, ...] = ()
    """Numeric columns with a single value in train (they get scale 1)."""
    modes: Mapping[str, str] = field(default_factory=dict)
    """Most frequent train category per categorical column: the value an empty cell takes under missing: mean."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the model's input columns, in order."""
        names = list(self.numeric)
        for column, categories in self.categorical.items():
            names.extend(f"{column}={category}" for category in categories)
        return tuple(names)

    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: list[str], categorical: list[str], standardize: bool, source: str = "train",
            world: World | None = None, category_counts: Mapping[str, pd.Series] | None = None,
            train_rows: int | None = None) -> "TablePreprocessor":
        """Learn categories, means and standard deviations from the train rows only.

        ``train.index`` holds each row's file row; means and variances are summed in a fixed order
        (reportgen.train_statistics), so they are the same floats however the rows are dealt to the workers
        of ``world`` (each holding some train rows; one process by default). A sharded read passes the
        ``category_counts`` of every worker summed, and ``train_rows``, the train split's length.
        Raises DataError when a categorical column has more categories than MAX_CATEGORIES allows.
        """
        means, stds, constant = {}, {}, []
        moments = column_moments([train[column].to_numpy(dtype=np.float64) for column in numeric],
                                 train.index.to_numpy(dtype=np.int64), world)
        for column, moment in zip(numeric, moments):
            if not moment.count:
                means[column], stds[column] = 0.0, 1.0
                continue
            means[column] = moment.mean
            if is_constant_feature(moment.count, moment.mean, moment.variance):
                constant.append(column)
                stds[column] = 1.0
            else:
                stds[column] = float(np.sqrt(moment.variance))
        categories, modes = {}, {}
        rows = len(train) if train_rows is None else train_rows
        limit = min(MAX_CATEGORIES, max(50, rows // 2))
        for column in categorical:
            counts = category_counts[column] if category_counts is not None else train[column].dropna().astype(str).value_counts()
            if len(counts) > limit:
                raise DataError(
                    f"{source}: the categorical column {column!r} has {len(counts)} distinct values in {rows} train rows "
                    f"(at most {limit}): it looks like an identifier; list it under data.ignore"
                )
            categories[column] = tuple(sorted(counts.index.tolist()))
            if len(counts):
                modes[column] = str(counts.sort_index().idxmax())
        return cls(tuple(numeric), categories, means, stds, standardize, tuple(constant), modes)

    def transform(self, frame: pd.DataFrame, impute: bool, source: str = "data") -> np.ndarray:
        """Turn rows into an (n, features) float32 matrix; unseen categories become all-zero one-hot blocks.

        The matrix is allocated once in float32 and one-hot blocks are filled from category codes, so no
        (n, K) float64 or boolean intermediate exists. Raises DataError naming ``source`` (the file) when a
        standardised value lies beyond float32's range.
        """
        n = len(frame)
        matrix = np.zeros((n, len(self.feature_names)), dtype=np.float32)
        self._numeric_block(frame, impute, matrix, source)
        offset = len(self.numeric)
        rows = np.arange(n)
        for column, categories in self.categorical.items():
            text = frame[column]
            if impute and column in self.modes:
                text = text.fillna(self.modes[column])
            codes = pd.Index(list(categories), dtype=object).get_indexer(text.to_numpy(dtype=object))
            known = codes >= 0
            matrix[rows[known], offset + codes[known]] = 1.0
            offset += len(categories)
        return matrix

    def _numeric_block(self, frame: pd.DataFrame, impute: bool, matrix: np.ndarray, source: str) -> None:
        """Fill ``matrix[:, :len(numeric)]`` with the numeric columns, imputed and standardised, in row chunks.

        Each chunk is one (chunk, k) float64 array computed as ``(x - mean) / std`` in place and cast once to
        float32: the same values as column by column, in a fraction of the time, and never an (n, k) float64
        copy of the data. An empty cell (under missing: mean) takes the train mean, i.e. 0 once standardised.
        """
        if not self.numeric:
            return
        columns = [frame[column].to_numpy(dtype=np.float64) for column in self.numeric]  # views of float64 columns
        means = np.array([self.means[c] for c in self.numeric], dtype=np.float64)
        stds = np.array([self.stds[c] for c in self.numeric], dtype=np.float64)
        fill = np.zeros_like(means) if self.standardize else means
        k = len(columns)
        step = max(1, (1 << 22) // (8 * k))  # about 4 MB of float64 per chunk
        for start in range(0, len(frame), step):
            chunk = np.stack([column[start : start + step] for column in columns], axis=1)
            if self.standardize:
                np.subtract(chunk, means, out=chunk)
                np.divide(chunk, stds, out=chunk)
                # float64 holds (x - mean) / std for any float32-range x; the cast to float32 may not
                beyond = np.abs(chunk) > FLOAT32_MAX
                if beyond.any():
                    row, col = (int(i) for i in np.argwhere(beyond)[0])
                    raise DataError(
                        f"{source}: standardising column {self.numeric[col]!r} overflows float32 (the model's input "
                        f"type): data row {int(frame.index[start + row]) + 1} holds {columns[col][start + row]:.4g}, which "
                        f"becomes {chunk[row, col]:.4g} with the train mean {means[col]:.4g} and scale {stds[col]:.4g} "
                        f"(float32 ends at ±{FLOAT32_MAX:.3g}); rescale the column or set data.standardize: false"
                    )
            if impute:
                np.copyto(chunk, np.broadcast_to(fill, chunk.shape), where=np.isnan(chunk))
            matrix[start : start + step, :k] = chunk

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary for the report's data fingerprint."""
        return {
            "fitted_on": "train",
            "standardize": self.standardize,
            "numeric": {c: {"mean": self.means[c], "std": self.stds[c]} for c in self.numeric},
            "categorical": {c: list(v) for c, v in self.categorical.items()},
            "constant_features": list(self.constant),
        }


def _stratified_split(labels: np.ndarray | None, n: int, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices per split, shuffled with ``seed``, stratified by ``labels`` when given."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == v) for v in sorted(set(labels.tolist()))]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for group in groups:
        group = rng.permutation(group)
        n_test = int(round(len(group) * test))
        n_val = int(round(len(group) * val))
        parts["test"].append(group[:n_test])
        parts["val"].append(group[n_test : n_test + n_val])
        parts["train"].append(group[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) if chunks else np.arange(0) for name, chunks in parts.items()}


def _check_columns(columns: list[str], wanted: list[str], key: str, source: str) -> None:
    """Fail clearly when a configured column is not in the file."""
    for column in wanted:
        if column not in columns:
            raise DataError(f"{key}: column {column!r} is not in {source}{suggest(column, columns)}")


def feature_columns(cfg: TableData, columns: Mapping[str, list[str]], sources: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(features, numeric, categorical) column names from each file's ``columns`` (split -> names) and the config.

    The first file decides the features; every file must hold them and the target. Raises DataError naming
    the file and the setting when a configured column is missing.
    """
    assert cfg.target is not None
    first = next(iter(columns.values()))
    first_source = next(iter(sources.values()))
    _check_columns(first, [cfg.target], "data.target", first_source)
    _check_columns(first, cfg.ignore, "data.ignore", first_source)
    _check_columns(first, cfg.categorical, "data.categorical", first_source)
    if cfg.features is not None:
        _check_columns(first, cfg.features, "data.features", first_source)
        features = list(cfg.features)
    else:
        features = [c for c in first if c != cfg.target and c not in cfg.ignore]
    if cfg.target in features:
        raise DataError(f"data.features lists the target column {cfg.target!r}")
    if not features:
        raise DataError(f"{first_source}: no feature columns left after data.target and data.ignore")
    categorical = [c for c in features if c in cfg.categorical]
    numeric = [c for c in features if c not in categorical]
    for name, names in columns.items():
        _check_columns(names, features + [cfg.target], "data", sources[name])
    return features, numeric, categorical


def _handle_missing(frames: dict[str, pd.DataFrame], columns: list[str], policy: str, sources: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Apply data.missing to feature cells (numeric and categorical): error names the first empty cell,
    drop removes its rows, mean is left for transform (train mean, or the most frequent train category)."""
    result = {}
    for name, frame in frames.items():
        missing = frame[columns].isna().to_numpy()
        if not missing.any():
            result[name] = frame
            continue
        if policy == "error":
            rows, cols = np.nonzero(missing)
            count = int(missing.sum())
            row_label = frame.index[rows[0]]
            raise DataError(
                f"{sources[name]}: {count} empty cell{'s' if count > 1 else ''}, first in column "
                f"{columns[cols[0]]!r} at data row {int(row_label) + 1}; set data.missing: drop or mean"
            )
        if policy == "drop" and missing.any(axis=1).all():
            column = columns[int(np.argmax(missing.sum(axis=0)))]
            raise DataError(
                f"{sources[name]}: data.missing: drop removes all {len(frame)} rows (each has an empty feature cell; "
                f"column {column!r} is empty in {int(missing[:, columns.index(column)].sum())}); fill the cells, "
                "set data.missing: mean, or list the emptiest columns in data.ignore"
            )
        result[name] = frame[~missing.any(axis=1)] if policy == "drop" else frame
    return result


def _cells(frame: pd.DataFrame, column: str, mask: np.ndarray, limit: int = 3) -> str:
    """'data row 5: '1,234'; data row 9: 'abc'' for the first cells of ``mask``."""
    positions = np.flatnonzero(mask)[:limit]
    return "; ".join(f"data row {int(frame.index[p]) + 1}: {str(frame[column].iloc[p])[:40]!r}" for p in positions)


def _numeric_or_error(frame: pd.DataFrame, numeric: list[str], source: str, missing: str) -> pd.DataFrame:
    """Convert feature columns to float64, or stop naming the cells that are not numbers.

    Infinite cells are empty cells when data.missing is drop or mean, an error otherwise; a number beyond
    float32's range (the model's input type) is always an error.
    """
    converted: dict[str, np.ndarray] = {}  # only the columns whose values change; the frame itself is not copied
    for column in numeric:
        if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            values = frame[column]
        else:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = (values.isna() & frame[column].notna()).to_numpy()
            if bad.any():
                count, filled = int(bad.sum()), int(frame[column].notna().sum())
                example = str(frame[column][bad].iloc[0])
                if _THOUSANDS.match(example):
                    hint = "numbers with a thousands separator: set data.csv: {thousands: ...}"
                elif _DECIMAL_COMMA.match(example):
                    hint = "numbers with a decimal comma: set data.csv: {decimal: \",\"} (and a separator other than ',')"
                elif count * 2 > filled:
                    hint = "it holds text: list it under data.categorical if its values are categories, or under data.ignore"
                else:
                    hint = ("if these cells mean 'no value', list their spelling in data.csv.na_values and data.missing "
                            "decides what happens to them")
                raise DataError(
                    f"{source}: column {column!r} is numeric but {count} of its cells are not numbers ({_cells(frame, column, bad)}); {hint}"
                )
        array = values.to_numpy(dtype=np.float64)  # a view when the column is float64 already
        changed = frame[column].dtype != np.float64
        infinite = np.isinf(array)
        if infinite.any():
            if missing == "error":
                raise DataError(
                    f"{source}: column {column!r} has {int(infinite.sum())} infinite cell(s) ({_cells(frame, column, infinite)}); "
                    "set data.missing: drop or mean to treat them as empty"
                )
            array, changed = np.where(infinite, np.nan, array), True
        too_large = np.abs(array) > FLOAT32_MAX  # NaN compares False; infinities are gone by now
        if too_large.any():
            raise DataError(
                f"{source}: column {column!r} has {int(too_large.sum())} number(s) beyond float32's range ±{FLOAT32_MAX:.3g} "
                f"({_cells(frame, column, too_large)}); rescale the column (e.g. to thousands or a logarithm)"
            )
        if changed:
            converted[column] = array
    if not converted:
        return frame
    frame = frame.copy(deep=False)  # the caller's frame keeps its columns (pandas copy-on-write)
    for column, array in converted.items():
        frame[column] = array
    return frame


def _load_tables(cfg: TableData, task: str, resolve: Resolver, seed: int) -> DataBundle:
    """Load CSV or Parquet data, split it if needed, and preprocess it."""
    sources: dict[str, str] = {}
    hashes: dict[str, str] = {}
    if cfg.path:
        path = _existing(resolve, cfg.path, "data.path")
        whole, hashes[path.name] = _read_table_hashed(path, cfg, task)
        sources = {"all": path.name}
        frames = {"all": whole}
    else:
        frames = {}
        for name in SPLIT_ORDER:
            relative = getattr(cfg, name)
            if relative is None:
                continue
            path = _existing(resolve, relative, f"data.{name}")
            frames[name], hashes[path.name] = _read_table_hashed(path, cfg, task)
            sources[name] = path.name

    assert cfg.target is not None
    features, numeric, categorical = feature_columns(cfg, {name: list(frame.columns) for name, frame in frames.items()}, sources)

    frames = {name: _numeric_or_error(frame, numeric, sources[name], cfg.missing) for name, frame in frames.items()}
    target_missing = {n: f[f[cfg.target].isna()] for n, f in frames.items()}
    for name, rows in target_missing.items():
        if len(rows):
            raise DataError(f"{sources[name]}: {len(rows)} rows have no value in the target column {cfg.target!r} (first at data row {int(rows.index[0]) + 1})")
    read_rows = {name: len(frame) for name, frame in frames.items()}
    frames = _handle_missing(frames, numeric + categorical, cfg.missing, sources)
    dropped = sum(read_rows.values()) - sum(len(frame) for frame in frames.values())
    after_drop = (f"; data.missing: drop removed {dropped} of {sum(read_rows.values())} rows with empty cells"
                  if dropped else "")

    if cfg.path:
        whole = frames["all"]
        spec = cfg.split or SplitSpec()
        strata = _label_strings(whole[cfg.target]) if task != "regression" and spec.stratify else None
        indices = _stratified_split(strata, len(whole), spec.val, spec.test, seed)
        frames = {name: whole.iloc[idx] for name, idx in indices.items() if name != "val" or spec.val > 0}
        sources = {name: sources["all"] for name in frames}
    for name in ("train", "test"):
        if name not in frames or len(frames[name]) == 0:
            raise DataError(f"the {name} split is empty ({sources.get(name, 'no file')}); check data.split or the file"
                            f"{after_drop}")
    if "val" in frames and len(frames["val"]) == 0:
        raise DataError(f"the val split is empty ({sources['val']}); raise data.split.val or set it to 0{after_drop}")

    preprocessor = TablePreprocessor.fit(frames["train"], numeric, categorical, cfg.standardize, sources["train"])
    classes, positive_index, label_arrays = _encode_labels(
        {name: frame[cfg.target] for name, frame in frames.items()}, cfg, task, sources
    )
    splits = {}
    for name in SPLIT_ORDER:
        if name not in frames:
            continue
        frame = frames[name]
        x = preprocessor.transform(frame, impute=cfg.missing == "mean", source=sources[name])
        y = label_arrays[name]
        splits[name] = SplitData(
            name=name,
            dataset=TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
            labels=y,
            features=x,
            source_rows=frame.index.to_numpy(dtype=np.int64),
            source=sources[name],
            attributes=frame.drop(columns=[cfg.target]).reset_index(drop=True),
        )
    return DataBundle(
        task=task,
        splits=splits,
        classes=tuple(classes),
        positive_index=positive_index,
        feature_names=preprocessor.feature_names,
        input_shape=(len(preprocessor.feature_names),),
        fingerprint={"kind": cfg.kind, "files": hashes, "target": cfg.target, "preprocessing": preprocessor.describe()},
        model_columns=tuple(features),
    )


def _encode_labels(
    columns: Mapping[str, pd.Series], cfg: TableData, task: str, sources: Mapping[str, str]
) -> tuple[list[str], int | None, dict[str, np.ndarray]]:
    """Turn label columns into class indices (or float targets) with classes learned from train."""
    if task == "regression":
        arrays = {}
        for name, column in columns.items():
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            frame = column.to_frame()
            bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
            if bad.any():
                raise DataError(f"{sources[name]}: the regression target {cfg.target!r} has {int(bad.sum())} cell(s) that are "
                                f"not finite float32 numbers ({_cells(frame, cfg.target, bad)})")
            arrays[name] = values.astype(np.float32)
        return [], None, arrays
    texts = {name: _label_strings(column) for name, column in columns.items()}
    classes = list(cfg.classes) if cfg.classes else _sorted_classes(texts["train"])
    index_of = {c: i for i, c in enumerate(classes)}
    names, indices = pd.Index(list(index_of), dtype=object), np.array(list(index_of.values()), dtype=np.int64)
    arrays = {}
    for name, labels in texts.items():
        found = names.get_indexer(labels)  # one hash lookup per row; -1 for a label that is not a class
        unknown = np.flatnonzero(found < 0)
        if len(unknown):
            row = int(columns[name].index[unknown[0]]) + 1
            raise DataError(
                f"{sources[name]}: label {labels[unknown[0]]!r} at data row {row} is not one of the classes "
                f"{classes}{' (data.classes)' if cfg.classes else ' (seen in train)'}"
            )
        arrays[name] = indices[found]
    return classes, _positive(classes, arrays["train"], cfg, task), arrays


def _is_number_text(label: str) -> bool:
    """True when a class name reads as a number ('23.5', '-4')."""
    try:
        float(label)
    except ValueError:
        return False
    return True


def _positive(classes: list[str], train_labels: np.ndarray, cfg: DataConfig, task: str,
              train_counts: np.ndarray | None = None) -> int | None:
    """Index of the positive class: configured, or the minority class of train (``train_counts``, samples per
    class over every worker, when this worker holds a shard of train)."""
    if task == "multiclass":
        if len(classes) < 2:
            raise DataError(f"a multiclass task needs at least 2 classes; found {classes}")
        return None
    if len(classes) != 2:
        numeric = len(classes) > 10 and all(_is_number_text(c) for c in classes)
        hint = " (did you mean task: regression? the labels look like numbers)" if numeric else ""
        raise DataError(f"a binary task needs exactly 2 classes; found {len(classes)}: {classes[:10]}{hint}")
    if cfg.positive_class is not None:
        if cfg.positive_class not in classes:
            raise DataError(f"data.positive_class {cfg.positive_class!r} is not one of the classes {classes}")
        return classes.index(cfg.positive_class)
    counts = np.bincount(train_labels, minlength=2) if train_counts is None else train_counts
    return int(np.argmin(counts))


# ---------------------------------------------------------------- arrays and datasets (npz, python)


INPUT_KEYS = ("input_ids", "pixel_values", "features", "x", "input", "inputs")
"""Keys tried, in order, for the input of a mapping item when data.input_key is not set."""
LABEL_KEYS = ("label", "labels", "y", "target")
"""Keys tried, in order, for the label of a mapping item when data.label_key is not set."""


class MappingItems(Dataset):
    """A dataset whose items are mappings ({"features": x, "label": y}, Hugging Face style), seen as (x, y) pairs."""

    def __init__(self, dataset: Dataset, input_key: str, label_key: str) -> None:
        self.dataset, self.input_key, self.label_key = dataset, input_key, label_key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        item = self.dataset[index]
        return item[self.input_key], item[self.label_key]


def _pick_key(keys: list[str], configured: str | None, defaults: tuple[str, ...], what: str, setting: str, source: str) -> str:
    """The configured key when present, else the first default present; DataError naming the keys found."""
    if configured is not None:
        if configured not in keys:
            raise DataError(f"{source}: items are mappings without the key {configured!r} ({setting}); keys found: {keys[:10]}")
        return configured
    for key in defaults:
        if key in keys:
            return key
    raise DataError(f"{source}: items are mappings with keys {keys[:10]}; none is a known {what} key "
                    f"({', '.join(defaults)}): set {setting}")


def _as_pairs(dataset: Dataset, cfg: PythonData | NpzData, source: str) -> Dataset:
    """Wrap a dataset of mapping items so that its items are (x, y); check that other items are pairs."""
    if getattr(dataset, "tensors", None) is not None:
        return dataset
    try:
        if len(dataset) == 0:  # type: ignore[arg-type]
            return dataset
        first = dataset[0]
    except Exception as exc:  # user code: any failure to index the dataset is an input problem
        raise DataError(f"{source}: cannot read item 0 of the dataset: {exc.__class__.__name__}: {str(exc)[:120]}") from None
    if isinstance(first, Mapping):
        keys = [str(k) for k in first]
        input_key = _pick_key(keys, getattr(cfg, "input_key", None), INPUT_KEYS, "input", "data.input_key", source)
        label_key = _pick_key(keys, getattr(cfg, "label_key", None), LABEL_KEYS, "label", "data.label_key", source)
        return MappingItems(dataset, input_key, label_key)
    if not isinstance(first, (tuple, list)) or len(first) != 2:
        shown = f"a {type(first).__name__}" + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else "")
        raise DataError(f"{source}: each item must be a pair (x, y) or a mapping with input and label keys, not {shown}")
    return dataset


def _labels_of(dataset: Dataset, task: str, source: str) -> np.ndarray:
    """Read all labels of a dataset (tensor datasets without iterating)."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) == 2:
        y = tensors[1]
    else:
        try:
            y = torch.stack([torch.as_tensor(item[1]) for item in _iterate(dataset)])
        except (TypeError, ValueError, IndexError, KeyError, RuntimeError) as exc:
            kind = "number" if task == "regression" else "class index"
            raise DataError(f"{source}: each item must be (x, y) with y a {kind} ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    if y.dim() > 1 and not (y.dim() == 2 and y.shape[1] == 1):
        kind = "a multi-output regression target" if task == "regression" else "a label that is not one class index"
        raise DataError(f"{source}: the labels have shape {tuple(y.shape)} ({kind}); reportgen needs one "
                        f"{'target' if task == 'regression' else 'class index'} per sample, shape (n,)")
    if task == "regression":
        return y.reshape(-1).to(torch.float32).numpy()
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise DataError(f"{source}: labels must be class indices 0..C-1, found fractional values")
    return y.reshape(-1).to(torch.int64).numpy()


def _iterate(dataset: Dataset):
    """Iterate a map-style dataset by index."""
    for i in range(len(dataset)):  # type: ignore[arg-type]
        yield dataset[i]


def _validate_indices(labels: np.ndarray, num_classes: int, source: str, split: str, offset: int = 0,
                      world: World | None = None) -> None:
    """Labels must be integers in 0..C-1 (over every worker's shard: ``labels`` start at global index ``offset``)."""
    bad = (labels < 0) | (labels >= num_classes)
    first, count, value = first_flagged_value(bad, labels.astype(np.float64), offset, world or World.single())
    if count:
        raise DataError(
            f"{source}: {split} label {int(value)} at index {first} is out of range 0..{num_classes - 1} "
            f"({count} such labels)"
        )


@dataclass(frozen=True)
class _Shards:
    """Where this worker's rows lie when it read only a shard of each split (npz read by ``ShardPlan``)."""

    world: World
    offsets: Mapping[str, int]
    """Global index of the shard's first row, per split."""
    totals: Mapping[str, int]
    """Rows of the whole split, per split."""
    input_shape: tuple[int, ...]
    probe_inputs: torch.Tensor
    """The first (up to 2) rows of the train split, for probing the model on every worker."""


def _bundle_from_datasets(
    datasets: Mapping[str, Dataset], cfg: NpzData | PythonData, task: str, source: str, fingerprint: dict[str, Any],
    shards: _Shards | None = None,
) -> DataBundle:
    """Build a DataBundle from per-split datasets whose labels are class indices or targets.

    With ``shards`` each dataset holds one worker's rows; every fact (classes, positive class, class counts)
    and every error is reduced over the workers, so each worker gets what a single-process read would.
    """
    world = shards.world if shards is not None else World.single()
    for name in ("train", "test"):
        if name not in datasets:
            raise DataError(f"{source}: no {name!r} split (expected keys train, test and optionally val)")
    unknown = [k for k in datasets if k not in SPLIT_ORDER]
    if unknown:
        raise DataError(f"{source}: unknown split {unknown[0]!r}{suggest(unknown[0], list(SPLIT_ORDER))}")
    datasets = {name: _as_pairs(ds, cfg, f"{source} [{name}]") for name, ds in datasets.items()}
    labels = {name: _labels_of(ds, task, f"{source} [{name}]") for name, ds in datasets.items()}
    offsets = {name: shards.offsets[name] if shards is not None else 0 for name in labels}
    totals = {name: shards.totals[name] if shards is not None else len(y) for name, y in labels.items()}
    for name in labels:
        if totals[name] == 0:
            raise DataError(f"{source}: the {name} split is empty")
    class_totals: dict[str, tuple[int, ...]] = {}
    if task == "regression":
        classes: list[str] = []
        positive_index = None
        for name, y in labels.items():
            if first_flagged(~np.isfinite(y), offsets[name], world)[1]:
                raise DataError(f"{source}: the {name} split has non-finite regression targets")
    else:
        seen = global_max(max((int(y.max()) for y in labels.values() if len(y)), default=-1), world) + 1
        num_classes = len(cfg.classes) if cfg.classes else max(seen, 2)
        classes = list(cfg.classes) if cfg.classes else [str(i) for i in range(num_classes)]
        for name, y in labels.items():
            _validate_indices(y, len(classes), source, name, offsets[name], world)
        if shards is not None:
            class_totals = {name: tuple(int(c) for c in all_reduce_sum(np.bincount(y, minlength=len(classes)), world))
                            for name, y in labels.items()}
        train_counts = np.array(class_totals["train"]) if shards is not None else None
        positive_index = _positive(classes, labels["train"], cfg, task, train_counts)
    input_shape = shards.input_shape if shards is not None else tuple(torch.as_tensor(datasets["train"][0][0]).shape)
    splits = {}
    for name in SPLIT_ORDER:
        if name not in datasets:
            continue
        ds = datasets[name]
        tensors = getattr(ds, "tensors", None)
        features = None
        if tensors is not None and tensors[0].dim() == 2:
            features = tensors[0].detach().cpu().numpy().astype(np.float32, copy=False)
            bad, _ = first_flagged(~np.isfinite(features).all(axis=1), offsets[name], world)
            if bad >= 0:
                raise DataError(f"{source}: the {name} split has non-finite feature values (first at index {bad})")
        splits[name] = SplitData(name=name, dataset=ds, labels=labels[name], features=features, source=source,
                                 offset=offsets[name], total=totals[name] if shards is not None else None)
    feature_names = tuple(f"x{i}" for i in range(input_shape[0])) if len(input_shape) == 1 else None
    return DataBundle(
        task=task, splits=splits, classes=tuple(classes), positive_index=positive_index,
        feature_names=feature_names, input_shape=input_shape, fingerprint=fingerprint,
        class_totals=class_totals, probe_inputs=shards.probe_inputs if shards is not None else None,
    )


def _load_npz(cfg: NpzData, task: str, resolve: Resolver, plan: ShardPlan | None = None) -> DataBundle:
    """Load X_<split>, y_<split> arrays from one .npz file; with ``plan``, only this worker's rows of each split.

    Shapes and dtypes come from the members' headers (reportgen.npz_rows), so every worker validates the
    same facts before reading a row, and reads only rows [start, stop) of its shard; errors that depend on
    values (fractional labels, labels out of range, non-finite inputs) are reduced over the workers and
    name the same global index as a whole read. Only rank 0 hashes the file for the fingerprint, checking
    the stored members' CRC-32 in that pass; read errors of any worker are raised alike by every worker.
    """
    assert cfg.path is not None
    path = _existing(resolve, cfg.path, "data.path")
    world = plan.world if plan is not None else World.single()

    def unreadable(problem: BaseException | str) -> DataError:
        return DataError(f"cannot read {path} as .npz: {problem}")

    try:
        archive = NpzRows(path)
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error) as exc:
        raise unreadable(exc) from None
    with archive:
        try:
            headers = {key: archive.header(key) for key in archive.keys}
            for key, header in headers.items():
                if header.dtype.hasobject:
                    archive.rows(key, 0, 0)  # numpy's own error for an array of objects
        except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise unreadable(exc) from None
        # Stored members' rows are read at their offsets, past zipfile's CRC check: rank 0 (which alone
        # hashes the file, only it writes the report) checks their CRC-32 in the same pass as the SHA-256.
        sha256, problem = "", None
        if world.is_main:
            try:
                sha256, bad_member = archive.sha256_checking_stored()
                problem = None if bad_member is None else f"Bad CRC-32 for file {bad_member!r}"  # zipfile's words
            except (ValueError, OSError) as exc:
                problem = str(exc)
        problem = first_message(problem, world)
        if problem is not None:
            raise unreadable(problem)

        def read(key: str, start: int, stop: int) -> np.ndarray:
            """Rows [start, stop) of ``key``; a read error of any worker (a compressed member's CRC-32, checked by
            the worker that reads it to its end) is raised by every worker alike, as one process says it."""
            rows, problem = None, None
            try:
                rows = archive.rows(key, start, stop)
            except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                problem = str(exc)
            problem = first_message(problem, world)
            if problem is not None:
                raise unreadable(problem)
            assert rows is not None
            return rows

        present = [s for s in SPLIT_ORDER if f"X_{s}" in headers]
        input_shape = headers[f"X_{present[0]}"].shape[1:] if present else ()
        datasets, offsets, totals = {}, {}, {}
        for name in SPLIT_ORDER:
            x, y = headers.get(f"X_{name}"), headers.get(f"y_{name}")
            if x is None and y is None:
                continue
            if x is None or y is None:
                raise DataError(f"{path.name}: found {'y' if x is None else 'X'}_{name} without {'X' if x is None else 'y'}_{name}")
            for array, label in ((x, "X"), (y, "y")):
                if array.ndim == 0 or array.dtype.kind not in "biuf":
                    what = "a single value" if array.ndim == 0 else f"{array.dtype} values"
                    raise DataError(f"{path.name}: {label}_{name} holds {what}; reportgen needs a numeric array with one row per sample")
            if x.rows != y.rows:
                raise DataError(f"{path.name}: X_{name} has {x.rows} rows but y_{name} has {y.rows}")
            if x.shape[1:] != input_shape:
                raise DataError(f"{path.name}: X_{name} has samples of shape {list(x.shape[1:])} but the first split's "
                                f"have {list(input_shape)}")
            start, stop = plan.bounds(x.rows, input_shape) if plan is not None else (0, x.rows)
            y_rows = read(f"y_{name}", start, stop)
            if task != "regression" and y.dtype.kind == "f":
                flat = y_rows.reshape(-1)
                per_row = int(np.prod(y.shape[1:], dtype=np.int64))
                bad, _, value = first_flagged_value(flat != np.round(flat), flat.astype(np.float64), start * per_row, world)
                if bad >= 0:
                    raise DataError(f"{path.name}: y_{name} holds {y.dtype.type(value)!r} at index {bad}; labels must be whole "
                                    f"class indices 0..C-1")
            if y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
                raise DataError(f"{path.name}: y_{name} has shape {y.shape}; reportgen needs one "
                                f"{'target' if task == 'regression' else 'class index'} per sample, shape (n,)"
                                f"{' (multi-output regression is not supported)' if task == 'regression' else ''}")
            x_rows = read(f"X_{name}", start, stop)
            y_tensor = torch.from_numpy(np.asarray(y_rows, dtype=np.float32 if task == "regression" else np.int64).reshape(-1))
            datasets[name] = TensorDataset(torch.from_numpy(np.asarray(x_rows, dtype=np.float32)), y_tensor)
            offsets[name], totals[name] = start, x.rows
        shards = None
        if plan is not None and "X_train" in headers:
            probe = read("X_train", 0, 2)
            shards = _Shards(world, offsets, totals, input_shape, torch.from_numpy(np.asarray(probe, dtype=np.float32)))
    return _bundle_from_datasets(datasets, cfg, task, path.name, {"kind": "npz", "files": {path.name: sha256}}, shards)


def _load_python(cfg: PythonData, task: str, resolve: Resolver) -> DataBundle:
    """Call the user's factory, which returns {"train": Dataset, "val": Dataset?, "test": Dataset}."""
    assert cfg.factory is not None
    datasets = call_user_object(cfg.factory, cfg.kwargs, resolve, "data.factory", DataError)
    if not isinstance(datasets, Mapping):
        raise DataError(f"data.factory {cfg.factory!r} must return a dict of datasets, not {type(datasets).__name__}")
    datasets = dict(datasets)
    attributes = datasets.pop("attributes", None) or {}  # optional {split: DataFrame or dict of arrays}, for slices
    bundle = _bundle_from_datasets(datasets, cfg, task, cfg.factory, {"kind": "python", "factory": cfg.factory, "kwargs": cfg.kwargs})
    splits = dict(bundle.splits)
    for name, table in dict(attributes).items():
        if name not in splits:
            raise DataError(f"data.factory: 'attributes' names split {name!r}, which the factory did not return")
        frame = pd.DataFrame(table).reset_index(drop=True)
        if len(frame) != splits[name].n:
            raise DataError(f"data.factory: attributes of the {name} split have {len(frame)} rows for {splits[name].n} samples")
        splits[name] = dataclasses.replace(splits[name], attributes=frame)
    return dataclasses.replace(bundle, splits=splits)


def load_data(cfg: DataConfig, task: str, resolve: Resolver, seed: int, shard: ShardPlan | None = None) -> DataBundle:
    """Load and preprocess the data the config names.

    With ``shard`` (a worker of an evaluate-only multi-worker run) each split of the bundle holds only
    this worker's rows (``ShardPlan.bounds``; SplitData ``offset``/``total`` say where they lie), while the
    bundle's facts (classes, positive class, ``class_totals``, preprocessing, input shape) are those of a
    single-process read. npz files are read by row range and CSV and Parquet tables (separate files, or one
    ``data.path`` file split with ``seed``) by record range or row group (reportgen.table_shards); tables
    whose single-process outcome only a whole read gives exactly (e.g. any input error) and factories are
    read and prepared in full, as in one process, and then only the shard is kept (``keep_shard``). Raises
    DataError when a data file changed while it was read (on any worker).
    """
    world = shard.world if shard is not None else World.single()
    files = _input_files(cfg, resolve)
    before = _identities(files)
    bundle = _load(cfg, task, resolve, seed, shard)
    changed = _changed_while_read(files, before, _identities(files), world)
    if changed is not None:
        raise DataError(f"{changed.name}: the file changed while it was read (its size, modification time or inode differ "
                        "between the start and the end of loading, or between workers on this machine); rerun once "
                        "nothing writes to it")
    return bundle


def _input_files(cfg: DataConfig, resolve: Resolver) -> list[Path]:
    """The data files a config names (none for a factory)."""
    names = [getattr(cfg, "path", None)] + ([getattr(cfg, name, None) for name in SPLIT_ORDER] if isinstance(cfg, TableData) else [])
    return [resolve(name) for name in names if name]


def _identities(files: list[Path]) -> list[tuple[int, int, int] | None]:
    """(inode, size, modification time in ns) of each file; None for one that cannot be read."""
    found: list[tuple[int, int, int] | None] = []
    for path in files:
        try:
            info = path.stat()
            found.append((info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            found.append(None)
    return found


def _changed_while_read(files: list[Path], before: list[Any], after: list[Any], world: World) -> Path | None:
    """The first file that changed while this worker read it, or that workers on one machine saw differently.

    Every worker reads the files at its own moments; a file replaced or appended to meanwhile would give
    workers different rows (and rank 0's fingerprint other bytes than a worker read). Compared on one
    machine only: workers on other machines may read copies of the file. The same on every worker.
    """
    mine = (socket.gethostname(), before, after)
    parts = cast("list[tuple[str, list[Any], list[Any]]]", all_gather_objects(mine, world) if world.distributed else [mine])
    for index, path in enumerate(files):
        seen: dict[str, Any] = {}
        for host, first, last in parts:
            if first[index] != last[index] or seen.setdefault(host, first[index]) != first[index]:
                return path
    return None


def _load(cfg: DataConfig, task: str, resolve: Resolver, seed: int, shard: ShardPlan | None) -> DataBundle:
    """``load_data`` without its check that the files did not change meanwhile."""
    if isinstance(cfg, NpzData):
        return _load_npz(cfg, task, resolve, shard)
    if isinstance(cfg, TableData) and shard is not None:
        from reportgen.table_shards import load_tables_sharded  # it builds on this module's readers

        sharded = load_tables_sharded(cfg, task, resolve, shard, seed)
        if sharded is not None:
            return sharded
    bundle = _load_tables(cfg, task, resolve, seed) if isinstance(cfg, TableData) else _load_python(cfg, task, resolve)
    return bundle if shard is None else keep_shard(bundle, shard)


def keep_shard(bundle: DataBundle, plan: ShardPlan) -> DataBundle:
    """``bundle`` with each split cut to this worker's rows, copied so that the whole split can be freed.

    Class counts per split are taken from the whole splits first (``DataBundle.class_totals``), and the first
    two train rows are kept for probing the model. A dataset that is not a pair of tensors (a factory's own
    Dataset class) is wrapped in a ``Subset``, which still refers to the whole dataset.
    """
    from torch.utils.data import Subset

    class_totals = {name: tuple(bundle.class_counts(name).values()) for name in bundle.splits} if bundle.task != "regression" else {}
    first_rows = next(iterate_batches(bundle.splits["train"], 2))[0].clone()  # a copy: a view would keep train alive
    splits = {}
    for name, split in bundle.splits.items():
        start, stop = plan.bounds(split.n, bundle.input_shape)
        tensors = getattr(split.dataset, "tensors", None)
        features = None if split.features is None else np.array(split.features[start:stop])
        part: Dataset
        if tensors is not None and len(tensors) == 2:
            shares = split.features is not None and tensors[0].device.type == "cpu" and np.shares_memory(tensors[0].numpy(), split.features)
            x = torch.from_numpy(features) if shares and features is not None else tensors[0][start:stop].clone()
            part = TensorDataset(x, tensors[1][start:stop].clone())
        else:
            part = Subset(split.dataset, range(start, stop))
        splits[name] = dataclasses.replace(
            split, dataset=part, labels=np.array(split.labels[start:stop]), features=features,
            source_rows=None if split.source_rows is None else np.array(split.source_rows[start:stop]),
            attributes=None if split.attributes is None else split.attributes.iloc[start:stop].copy(),
            offset=start, total=split.n,
        )
    return dataclasses.replace(bundle, splits=splits, class_totals=class_totals, probe_inputs=first_rows)


def load_reference(cfg: DataConfig, resolve: Resolver, task: str) -> pd.DataFrame | None:
    """Read the table named by ``data.reference`` (same kind and parsing as the data), target dropped.

    Raises ConfigError when the data are not a table, DataError when the file is missing or unreadable.
    """
    reference = getattr(cfg, "reference", None)
    if not reference:
        return None
    if not isinstance(cfg, TableData):
        raise ConfigError(f"data.reference needs csv or parquet data, not data.kind {cfg.kind}")
    path = _existing(resolve, reference, "data.reference")
    frame, sha256 = _read_table_hashed(path, cfg, task)
    frame = frame.drop(columns=[cfg.target]) if cfg.target in frame.columns else frame
    frame.attrs["source"] = {"file": path.name, "sha256": sha256}
    return frame
