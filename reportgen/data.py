"""Data loading: files or a factory -> preprocessed splits, with everything fitted on train only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, TensorDataset

from reportgen.config import DataConfig, SplitSpec, suggest
from reportgen.errors import DataError
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


def _existing(resolve: Resolver, relative: str, key: str) -> Path:
    """Resolve a data path and fail clearly when it is missing."""
    path = resolve(relative)
    if not path.is_file():
        raise DataError(f"{key}: file not found: {path}")
    return path


# ---------------------------------------------------------------- tables (csv, parquet)


def _read_table(path: Path, kind: str) -> pd.DataFrame:
    """Read one CSV or Parquet file into a DataFrame."""
    try:
        if kind == "csv":
            frame = pd.read_csv(path, skipinitialspace=True)
        else:
            frame = pd.read_parquet(path)
    except ImportError as exc:
        raise DataError(f"reading {path.name} needs an optional package: {exc}; install reportgen[parquet]") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(f"cannot read {path}: {first_line}") from None
    if frame.empty:
        raise DataError(f"{path} has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _label_strings(values: pd.Series) -> np.ndarray:
    """Label values as strings; integral floats lose their '.0'."""
    def as_text(value: Any) -> str:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return np.array([as_text(v) for v in values.tolist()], dtype=object)


def _sorted_classes(labels: np.ndarray) -> list[str]:
    """Sorted unique labels, numerically when every label is a number."""
    unique = sorted(set(labels.tolist()))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


@dataclass(frozen=True)
class TablePreprocessor:
    """Feature preparation fitted on train: column order, one-hot categories, imputation, scaling."""

    numeric: tuple[str, ...]
    categorical: Mapping[str, tuple[str, ...]]
    means: Mapping[str, float]
    stds: Mapping[str, float]
    standardize: bool

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the model's input columns, in order."""
        names = list(self.numeric)
        for column, categories in self.categorical.items():
            names.extend(f"{column}={category}" for category in categories)
        return tuple(names)

    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: list[str], categorical: list[str], standardize: bool) -> "TablePreprocessor":
        """Learn categories, means and standard deviations from the train rows only."""
        means, stds = {}, {}
        for column in numeric:
            values = train[column].to_numpy(dtype=np.float64)
            means[column] = float(np.nanmean(values)) if len(values) else 0.0
            std = float(np.nanstd(values)) if len(values) else 1.0
            stds[column] = std if std > 0 and np.isfinite(std) else 1.0
        categories = {
            column: tuple(sorted({str(v) for v in train[column].dropna().tolist()})) for column in categorical
        }
        return cls(tuple(numeric), categories, means, stds, standardize)

    def transform(self, frame: pd.DataFrame, impute: bool) -> np.ndarray:
        """Turn rows into a float32 matrix; unseen categories become all-zero one-hot blocks."""
        blocks = []
        for column in self.numeric:
            values = frame[column].to_numpy(dtype=np.float64)
            if impute:
                values = np.where(np.isnan(values), self.means[column], values)
            if self.standardize:
                values = (values - self.means[column]) / self.stds[column]
            blocks.append(values[:, None])
        for column, categories in self.categorical.items():
            text = frame[column].astype(str).to_numpy()
            blocks.append(np.stack([text == c for c in categories], axis=1).astype(np.float64) if categories else np.zeros((len(frame), 0)))
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return matrix.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary for the report's data fingerprint."""
        return {
            "fitted_on": "train",
            "standardize": self.standardize,
            "numeric": {c: {"mean": self.means[c], "std": self.stds[c]} for c in self.numeric},
            "categorical": {c: list(v) for c, v in self.categorical.items()},
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
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _check_columns(frame: pd.DataFrame, wanted: list[str], key: str, source: str) -> None:
    """Fail clearly when a configured column is not in the file."""
    columns = list(frame.columns)
    for column in wanted:
        if column not in columns:
            raise DataError(f"{key}: column {column!r} is not in {source}{suggest(column, columns)}")


def _handle_missing(frames: dict[str, pd.DataFrame], columns: list[str], policy: str, sources: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Apply data.missing: error names the first empty cell, drop removes rows, mean is left for transform."""
    result = {}
    for name, frame in frames.items():
        missing = frame[columns].isna()
        if not missing.to_numpy().any():
            result[name] = frame
            continue
        if policy == "error":
            rows, cols = np.nonzero(missing.to_numpy())
            count = int(missing.to_numpy().sum())
            row_label = frame.index[rows[0]]
            raise DataError(
                f"{sources[name]}: {count} empty or non-numeric cell{'s' if count > 1 else ''}, first in column "
                f"{columns[cols[0]]!r} at data row {int(row_label) + 1}; set data.missing: drop or mean"
            )
        result[name] = frame[~missing.any(axis=1)] if policy == "drop" else frame
    return result


def _numeric_or_error(frame: pd.DataFrame, numeric: list[str], source: str) -> pd.DataFrame:
    """Convert feature columns to numbers; text in a numeric column is an error naming the column."""
    frame = frame.copy()
    for column in numeric:
        if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype(np.float64)
            continue
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = converted.isna() & frame[column].notna()
        if bad.any():
            example = frame[column][bad].iloc[0]
            raise DataError(
                f"{source}: column {column!r} is not numeric (e.g. {str(example)[:40]!r}); "
                "list it under data.categorical or data.ignore"
            )
        frame[column] = converted
    return frame


def _load_tables(cfg: DataConfig, task: str, resolve: Resolver, seed: int) -> DataBundle:
    """Load CSV or Parquet data, split it if needed, and preprocess it."""
    sources: dict[str, str] = {}
    hashes: dict[str, str] = {}
    if cfg.path:
        path = _existing(resolve, cfg.path, "data.path")
        whole = _read_table(path, cfg.kind)
        sources = {"all": path.name}
        hashes[path.name] = file_sha256(path)
        frames = {"all": whole}
    else:
        frames = {}
        for name in SPLIT_ORDER:
            relative = getattr(cfg, name)
            if relative is None:
                continue
            path = _existing(resolve, relative, f"data.{name}")
            frames[name] = _read_table(path, cfg.kind)
            sources[name] = path.name
            hashes[path.name] = file_sha256(path)

    first = next(iter(frames.values()))
    first_source = next(iter(sources.values()))
    assert cfg.target is not None
    _check_columns(first, [cfg.target], "data.target", first_source)
    _check_columns(first, cfg.ignore, "data.ignore", first_source)
    _check_columns(first, cfg.categorical, "data.categorical", first_source)
    if cfg.features is not None:
        _check_columns(first, cfg.features, "data.features", first_source)
        features = list(cfg.features)
    else:
        features = [c for c in first.columns if c != cfg.target and c not in cfg.ignore]
    if cfg.target in features:
        raise DataError(f"data.features lists the target column {cfg.target!r}")
    if not features:
        raise DataError(f"{first_source}: no feature columns left after data.target and data.ignore")
    categorical = [c for c in features if c in cfg.categorical]
    numeric = [c for c in features if c not in categorical]
    for name, frame in frames.items():
        _check_columns(frame, features + [cfg.target], "data", sources[name])

    frames = {name: _numeric_or_error(frame, numeric, sources[name]) for name, frame in frames.items()}
    target_missing = {n: f[f[cfg.target].isna()] for n, f in frames.items()}
    for name, rows in target_missing.items():
        if len(rows):
            raise DataError(f"{sources[name]}: {len(rows)} rows have no value in the target column {cfg.target!r} (first at data row {int(rows.index[0]) + 1})")
    frames = _handle_missing(frames, numeric, cfg.missing, sources)

    if cfg.path:
        whole = frames["all"]
        spec = cfg.split or SplitSpec()
        strata = _label_strings(whole[cfg.target]) if task != "regression" and spec.stratify else None
        indices = _stratified_split(strata, len(whole), spec.val, spec.test, seed)
        frames = {name: whole.iloc[idx] for name, idx in indices.items() if name != "val" or spec.val > 0}
        sources = {name: sources["all"] for name in frames}
    for name in ("train", "test"):
        if name not in frames or len(frames[name]) == 0:
            raise DataError(f"the {name} split is empty ({sources.get(name, 'no file')}); check data.split or the file")
    if "val" in frames and len(frames["val"]) == 0:
        raise DataError(f"the val split is empty ({sources['val']}); raise data.split.val or set it to 0")

    preprocessor = TablePreprocessor.fit(frames["train"], numeric, categorical, cfg.standardize)
    classes, positive_index, label_arrays = _encode_labels(
        {name: frame[cfg.target] for name, frame in frames.items()}, cfg, task, sources
    )
    splits = {}
    for name in SPLIT_ORDER:
        if name not in frames:
            continue
        frame = frames[name]
        x = preprocessor.transform(frame, impute=cfg.missing == "mean")
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
    )


def _encode_labels(
    columns: Mapping[str, pd.Series], cfg: DataConfig, task: str, sources: Mapping[str, str]
) -> tuple[list[str], int | None, dict[str, np.ndarray]]:
    """Turn label columns into class indices (or float targets) with classes learned from train."""
    if task == "regression":
        arrays = {}
        for name, column in columns.items():
            values = pd.to_numeric(column, errors="coerce")
            if values.isna().any():
                raise DataError(f"{sources[name]}: the regression target {cfg.target!r} has non-numeric values (e.g. {column[values.isna()].iloc[0]!r})")
            arrays[name] = values.to_numpy(dtype=np.float32)
            if not np.isfinite(arrays[name]).all():
                raise DataError(f"{sources[name]}: the regression target {cfg.target!r} has non-finite values")
        return [], None, arrays
    texts = {name: _label_strings(column) for name, column in columns.items()}
    classes = list(cfg.classes) if cfg.classes else _sorted_classes(texts["train"])
    index_of = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for name, labels in texts.items():
        unknown = [i for i, label in enumerate(labels) if label not in index_of]
        if unknown:
            row = int(columns[name].index[unknown[0]]) + 1
            raise DataError(
                f"{sources[name]}: label {labels[unknown[0]]!r} at data row {row} is not one of the classes "
                f"{classes}{' (data.classes)' if cfg.classes else ' (seen in train)'}"
            )
        arrays[name] = np.array([index_of[label] for label in labels], dtype=np.int64)
    return classes, _positive(classes, arrays["train"], cfg, task), arrays


def _is_number_text(label: str) -> bool:
    """True when a class name reads as a number ('23.5', '-4')."""
    try:
        float(label)
    except ValueError:
        return False
    return True


def _positive(classes: list[str], train_labels: np.ndarray, cfg: DataConfig, task: str) -> int | None:
    """Index of the positive class: configured, or the minority class of train."""
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
    counts = np.bincount(train_labels, minlength=2)
    return int(np.argmin(counts))


# ---------------------------------------------------------------- arrays and datasets (npz, python)


def _labels_of(dataset: Dataset, task: str, source: str) -> np.ndarray:
    """Read all labels of a dataset (tensor datasets without iterating)."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) == 2:
        y = tensors[1]
    else:
        try:
            y = torch.as_tensor([float(item[1]) if task == "regression" else int(item[1]) for item in _iterate(dataset)])
        except (TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{source}: each item must be (x, y) with y a {'number' if task == 'regression' else 'class index'} ({exc})") from None
    if task == "regression":
        return y.reshape(-1).to(torch.float32).numpy()
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise DataError(f"{source}: labels must be class indices 0..C-1, found fractional values")
    return y.reshape(-1).to(torch.int64).numpy()


def _iterate(dataset: Dataset):
    """Iterate a map-style dataset by index."""
    for i in range(len(dataset)):  # type: ignore[arg-type]
        yield dataset[i]


def _validate_indices(labels: np.ndarray, num_classes: int, source: str, split: str) -> None:
    """Labels must be integers in 0..C-1."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(
            f"{source}: {split} label {int(labels[bad[0]])} at index {int(bad[0])} is out of range 0..{num_classes - 1} "
            f"({len(bad)} such labels)"
        )


def _bundle_from_datasets(
    datasets: Mapping[str, Dataset], cfg: DataConfig, task: str, source: str, fingerprint: dict[str, Any]
) -> DataBundle:
    """Build a DataBundle from per-split datasets whose labels are class indices or targets."""
    for name in ("train", "test"):
        if name not in datasets:
            raise DataError(f"{source}: no {name!r} split (expected keys train, test and optionally val)")
    unknown = [k for k in datasets if k not in SPLIT_ORDER]
    if unknown:
        raise DataError(f"{source}: unknown split {unknown[0]!r}{suggest(unknown[0], list(SPLIT_ORDER))}")
    labels = {name: _labels_of(ds, task, f"{source} [{name}]") for name, ds in datasets.items()}
    for name, y in labels.items():
        if len(y) == 0:
            raise DataError(f"{source}: the {name} split is empty")
    if task == "regression":
        classes: list[str] = []
        positive_index = None
        for name, y in labels.items():
            if not np.isfinite(y).all():
                raise DataError(f"{source}: the {name} split has non-finite regression targets")
    else:
        seen = int(max(y.max() for y in labels.values())) + 1
        num_classes = len(cfg.classes) if cfg.classes else max(seen, 2)
        classes = list(cfg.classes) if cfg.classes else [str(i) for i in range(num_classes)]
        for name, y in labels.items():
            _validate_indices(y, len(classes), source, name)
        positive_index = _positive(classes, labels["train"], cfg, task)
    first_x = datasets["train"][0][0]
    input_shape = tuple(torch.as_tensor(first_x).shape)
    splits = {}
    for name in SPLIT_ORDER:
        if name not in datasets:
            continue
        ds = datasets[name]
        tensors = getattr(ds, "tensors", None)
        features = None
        if tensors is not None and tensors[0].dim() == 2:
            features = tensors[0].detach().cpu().numpy().astype(np.float32, copy=False)
            if not np.isfinite(features).all():
                bad = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
                raise DataError(f"{source}: the {name} split has non-finite feature values (first at index {bad})")
        splits[name] = SplitData(name=name, dataset=ds, labels=labels[name], features=features, source=source)
    feature_names = tuple(f"x{i}" for i in range(input_shape[0])) if len(input_shape) == 1 else None
    return DataBundle(
        task=task, splits=splits, classes=tuple(classes), positive_index=positive_index,
        feature_names=feature_names, input_shape=input_shape, fingerprint=fingerprint,
    )


def _load_npz(cfg: DataConfig, task: str, resolve: Resolver) -> DataBundle:
    """Load X_<split>, y_<split> arrays from one .npz file."""
    assert cfg.path is not None
    path = _existing(resolve, cfg.path, "data.path")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}") from None
    datasets = {}
    for name in SPLIT_ORDER:
        x, y = arrays.get(f"X_{name}"), arrays.get(f"y_{name}")
        if x is None and y is None:
            continue
        if x is None or y is None:
            raise DataError(f"{path.name}: found {'y' if x is None else 'X'}_{name} without {'X' if x is None else 'y'}_{name}")
        if len(x) != len(y):
            raise DataError(f"{path.name}: X_{name} has {len(x)} rows but y_{name} has {len(y)}")
        y_tensor = torch.from_numpy(np.asarray(y, dtype=np.float32 if task == "regression" else np.int64).reshape(-1))
        datasets[name] = TensorDataset(torch.from_numpy(np.asarray(x, dtype=np.float32)), y_tensor)
    return _bundle_from_datasets(datasets, cfg, task, path.name, {"kind": "npz", "files": {path.name: file_sha256(path)}})


def _load_python(cfg: DataConfig, task: str, resolve: Resolver) -> DataBundle:
    """Call the user's factory, which returns {"train": Dataset, "val": Dataset?, "test": Dataset}."""
    assert cfg.factory is not None
    datasets = call_user_object(cfg.factory, cfg.kwargs, resolve, "data.factory", DataError)
    if not isinstance(datasets, Mapping):
        raise DataError(f"data.factory {cfg.factory!r} must return a dict of datasets, not {type(datasets).__name__}")
    return _bundle_from_datasets(dict(datasets), cfg, task, cfg.factory, {"kind": "python", "factory": cfg.factory, "kwargs": cfg.kwargs})


def load_data(cfg: DataConfig, task: str, resolve: Resolver, seed: int) -> DataBundle:
    """Load and preprocess the data the config names."""
    loaders = {
        "csv": lambda: _load_tables(cfg, task, resolve, seed),
        "parquet": lambda: _load_tables(cfg, task, resolve, seed),
        "npz": lambda: _load_npz(cfg, task, resolve),
        "python": lambda: _load_python(cfg, task, resolve),
    }
    return loaders[cfg.kind]()
