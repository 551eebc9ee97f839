"""Checks of the data family: integrity, leakage between splits, label problems, class balance."""

from __future__ import annotations

from typing import Any

import numpy as np

from reportgen.checks import fingerprints
from reportgen.checks.base import Check, CheckSettings, CheckSpec, Finding, Measurement, Param, register
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, number, percent
from reportgen.types import SPLIT_ORDER, SplitData

CLASSIFICATION = frozenset({"binary", "multiclass"})
MAX_EXAMPLES = 10
LEAKAGE_MAX_ROWS = 200_000
LEAKAGE_MAX_CLASSES = 100
"""target_leakage compares at most this many classes (the most frequent in train) pairwise: K² pairs per feature."""


def _row_ids(split: SplitData, index: np.ndarray) -> list[int]:
    """1-based row numbers for evidence, as every input error counts them: the source file's data rows
    (header excluded) when known, else positions in the split."""
    if split.source_rows is not None:
        return [int(r) + 1 for r in np.asarray(split.source_rows)[index]]
    return [int(i) + 1 for i in index]


def _splits(ctx: CheckContext) -> list[SplitData]:
    """The bundle's splits in train, val, test order."""
    return [ctx.data.splits[name] for name in SPLIT_ORDER if name in ctx.data.splits]


def _fingerprints(ctx: CheckContext, split: SplitData) -> fingerprints.SplitFingerprints:
    return fingerprints.for_split(ctx.cache, split, ctx.batch_size)


def _join(parts: list[str]) -> str:
    return "; ".join(parts)


@register
class DataIntegrity(Check):
    spec = CheckSpec(
        id="data_integrity",
        measures="number of problems",
        title="Data integrity",
        family="data",
        detects="Broken inputs: non-finite feature values, labels outside the known classes, empty splits, "
        "splits holding a single class, and test classes too small to measure.",
        how_to_read="Each split is scanned for values the model cannot use (NaN or infinity) and labels that "
        "name no known class; any of these makes every other number in the report unreliable. A class with "
        "fewer test samples than the minimum support still gets a recall, but from so few cases that it "
        "means little, so that is reported as a warning.",
        default_severity="error",
        params=(
            Param("min_class_support", 10, "A test class (or split) with fewer samples than this is too small to measure.",
                  kind=int, minimum=1),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        min_support = int(settings.params["min_class_support"])
        classification = ctx.task in CLASSIFICATION
        num_classes = ctx.data.num_classes
        violations: list[str] = []
        concerns: list[str] = []
        per_split: dict[str, Any] = {}
        for split in _splits(ctx):
            info: dict[str, Any] = {"n": split.n}
            per_split[split.name] = info
            if split.n == 0:
                violations.append(f"the {split.name} split is empty")
                continue
            prints = _fingerprints(ctx, split)
            info["nonfinite_values"] = prints.nonfinite_values
            info["nonfinite_samples"] = prints.nonfinite_rows
            if prints.nonfinite_values:
                violations.append(
                    f"{split.name} has {count(prints.nonfinite_values)} non-finite input values in {count(prints.nonfinite_rows)} samples"
                )
            labels = np.asarray(split.labels)
            if classification:
                as_float = labels.astype(np.float64, copy=False)
                valid = np.isfinite(as_float) & (as_float == np.round(as_float)) & (as_float >= 0) & (as_float < num_classes)
                bad = int((~valid).sum())
                info["labels_out_of_range"] = bad
                if bad:
                    violations.append(f"{split.name} has {count(bad)} labels outside 0..{num_classes - 1}")
                counts = np.bincount(labels[valid].astype(np.int64), minlength=num_classes)
                present = [ctx.classes[i] for i in np.flatnonzero(counts)]
                info["classes_present"] = len(present)
                if len(present) == 1:
                    text = f"{split.name} holds a single class ({present[0]!r})"
                    (concerns if split.name == "val" else violations).append(text)
                if split.name == ctx.evaluation_split():
                    small = {ctx.classes[i]: int(c) for i, c in enumerate(counts) if c < min_support}
                    info["class_support"] = {ctx.classes[i]: int(c) for i, c in enumerate(counts)}
                    if small and len(present) > 1:
                        listed = ", ".join(f"{name!r} {count(support)}" for name, support in small.items())
                        concerns.append(
                            f"test classes under {min_support} samples ({listed}) have recalls that cannot be measured reliably"
                        )
            else:
                bad = int((~np.isfinite(labels.astype(np.float64, copy=False))).sum())
                info["nonfinite_targets"] = bad
                if bad:
                    violations.append(f"{split.name} has {count(bad)} non-finite targets")
            if split.n < min_support:
                concerns.append(f"the {split.name} split has only {count(split.n)} samples")
        evidence = {"splits": per_split, "violations": violations, "concerns": concerns, "min_class_support": min_support}
        problems = len(violations) + len(concerns)
        if violations:
            return Finding("violation", problems, f"Broken data: {_join(violations + concerns)}.", evidence)
        if concerns:
            return Finding("concern", problems, f"Data too thin to judge: {_join(concerns)}.", evidence)
        sizes = ", ".join(f"{name} {count(info['n'])}" for name, info in per_split.items())
        labels_ok = "every label is a known class" if classification else "every target is finite"
        return Finding("ok", 0, f"All inputs are finite and {labels_ok} ({sizes} samples).", evidence)


def _pair_evidence(ctx: CheckContext, query: SplitData, reference: SplitData) -> dict[str, Any]:
    """How many samples of ``query`` also occur in ``reference``, with example row pairs."""
    matches = fingerprints.match(_fingerprints(ctx, reference), _fingerprints(ctx, query))
    found = matches.found
    count = int(found.sum())
    exact = int((found & matches.exact).sum())
    hits = np.flatnonzero(found)[:MAX_EXAMPLES]
    query_rows = _row_ids(query, hits)
    reference_rows = _row_ids(reference, matches.index[hits])
    return {
        "count": count,
        "share": count / query.n if query.n else 0.0,
        "n": query.n,
        "exact": exact,
        "normalised": count - exact,
        "examples": [
            {f"{query.name}_row": q, f"{reference.name}_row": r} for q, r in zip(query_rows, reference_rows)
        ],
    }


@register
class TrainTestOverlap(Check):
    spec = CheckSpec(
        id="train_test_overlap",
        measures="share of test samples also in train",
        threshold_range=(0.0, 1.0),
        title="Train/test overlap",
        family="data",
        detects="Test (and validation) samples whose inputs also occur in the training data, which inflates "
        "every test score.",
        how_to_read="Every sample is fingerprinted by its exact values and by its values rounded to about five "
        "significant digits, so copies that were merely reformatted still match. The value is the share of "
        "test samples that the model already saw in training; anything above zero means the test score "
        "partly measures memory rather than generalisation.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.0,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        splits = ctx.data.splits
        train, test, val = splits["train"], splits.get("test"), splits.get("val")
        if test is None:
            return Finding.skip("there is no test split to compare with train")
        pairs = {"test_in_train": _pair_evidence(ctx, test, train)}
        if val is not None:
            pairs["val_in_train"] = _pair_evidence(ctx, val, train)
            pairs["test_in_val"] = _pair_evidence(ctx, test, val)
        main = pairs["test_in_train"]
        value = main["share"]
        evidence = {
            "pairs": pairs,
            "rows": "data rows of the source file (1-based, header excluded)" if test.source_rows is not None
            else "positions within each split (1-based)",
        }
        how = f"{count(main['exact'])} identical, {count(main['normalised'])} equal after rounding"
        first = main["examples"][0] if main["examples"] else {}
        example = f" (e.g. test row {first.get('test_row')} = train row {first.get('train_row')})" if first else ""
        others = [(name, p) for name, p in pairs.items() if name != "test_in_train" and p["count"]]
        listed = ", ".join(f"{count(p['count'])} of {count(p['n'])} {name.replace('_in_', ' samples in ')}" for name, p in others)
        return Measurement(
            value, f"{count(main['count'])} of {count(main['n'])} test samples ({percent(value)}) also occur in train ({how}){example}",
            evidence, concern=f"{listed}, which biases model selection" if others else None,
        )


@register
class ConflictingLabels(Check):
    spec = CheckSpec(
        id="conflicting_labels",
        measures="groups of identical inputs with different labels",
        threshold_range=(0.0, None),
        title="Conflicting labels",
        family="data",
        detects="Identical inputs that carry different labels, within train or across splits.",
        how_to_read="Samples whose inputs are the same (after rounding to about five significant digits) should "
        "have the same label; when they do not, the labels are noisy or the inputs miss the information that "
        "decides the label. The value counts such groups; no model can get all members of a group right.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.0,
        tasks=CLASSIFICATION,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        import pandas as pd  # imported here: report rendering loads this module for its texts only

        splits = [s for s in _splits(ctx) if s.n]
        hashes = np.concatenate([_fingerprints(ctx, s).norm for s in splits])
        labels = np.concatenate([np.asarray(s.labels, dtype=np.int64) for s in splits])
        split_id = np.concatenate([np.full(s.n, i, dtype=np.int64) for i, s in enumerate(splits)])
        position = np.concatenate([np.arange(s.n) for s in splits])
        codes, uniques = pd.factorize(hashes)
        c = max(ctx.data.num_classes, int(labels.max(initial=0)) + 1)
        label_pairs = pd.unique(codes.astype(np.int64) * c + labels)
        labels_per_group = np.bincount(label_pairs // c, minlength=len(uniques))
        conflicting = np.flatnonzero(labels_per_group > 1)
        evidence: dict[str, Any] = {"groups": int(conflicting.size), "within_train": 0, "across_splits": 0,
                                    "within_other_split": 0, "samples": 0, "examples": []}
        if conflicting.size:
            member = np.isin(codes, conflicting)
            frame = pd.DataFrame({"group": codes[member], "split": split_id[member], "label": labels[member],
                                  "position": position[member]})
            per_group = frame.groupby("group", sort=False)["split"].agg(["nunique", "min"])
            train_id = next((i for i, s in enumerate(splits) if s.name == "train"), -1)
            across = int((per_group["nunique"] > 1).sum())
            within_train = int(((per_group["nunique"] == 1) & (per_group["min"] == train_id)).sum())
            evidence.update(within_train=within_train, across_splits=across,
                            within_other_split=int(conflicting.size) - across - within_train, samples=int(member.sum()))
            for _group, rows in list(frame.groupby("group", sort=False))[:MAX_EXAMPLES]:
                samples = []
                for split_index, label, pos in rows[["split", "label", "position"]].head(6).itertuples(index=False):
                    split = splits[split_index]
                    samples.append({"split": split.name, "row": _row_ids(split, np.array([pos]))[0],
                                    "label": ctx.classes[label] if 0 <= label < len(ctx.classes) else str(label)})
                evidence["examples"].append({"size": int(len(rows)), "samples": samples})
        value = int(conflicting.size)
        return Measurement(
            value, f"{count(value)} groups of identical inputs carry different labels ({count(evidence['within_train'])} within train, "
            f"{count(evidence['across_splits'])} across splits, {count(evidence['samples'])} samples in all, of {count(len(labels))})",
            evidence,
        )


def _rank_auc_scores(x: np.ndarray, y: np.ndarray, num_classes: int) -> float | None:
    """Separation of the classes by one feature: ROC AUC (binary) or mean one-vs-one AUC (multiclass).

    ``x``: (n,) feature values; ``y``: (n,) class indices in ``0..num_classes-1``. Each AUC is folded
    to max(AUC, 1 - AUC), so the direction does not matter. The one-vs-one mean is 1.0 exactly when
    sorting by the feature puts the classes into disjoint intervals, in any order. Ties count one
    half (the Mann-Whitney U statistic). Cost: one sort, O(n log n), plus O((n + V) * K + K²) for
    V distinct values and K classes, all in numpy: ``wins[i, j]`` (pairs a in i, b in j with
    x_a > x_b) sums, over the samples of class i, the count of class j below each sample's value.
    None when fewer than two classes are present.
    """
    finite = np.isfinite(x)
    if not finite.all():
        x, y = x[finite], y[finite]
    if x.size < 2:
        return None
    if num_classes == 2:
        return _binary_rank_auc(x, y == 1)
    values, inverse = np.unique(x, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse * num_classes + y, minlength=values.size * num_classes)
    counts = counts.reshape(values.size, num_classes).astype(np.float64)
    below = np.cumsum(counts, axis=0) - 0.5 * counts  # class-j samples under each value, ties halved
    order = np.argsort(y, kind="stable")
    sorted_y = y[order]
    starts = np.flatnonzero(np.r_[True, sorted_y[1:] != sorted_y[:-1]])
    if starts.size < 2:
        return None
    wins = np.zeros((num_classes, num_classes))
    wins[sorted_y[starts]] = np.add.reduceat(below[inverse[order]], starts, axis=0)
    sizes = counts.sum(axis=0)
    first, second = np.triu_indices(num_classes, 1)
    both = (sizes[first] > 0) & (sizes[second] > 0)
    first, second = first[both], second[both]
    auc = wins[first, second] / (sizes[first] * sizes[second])
    return float(np.maximum(auc, 1.0 - auc).mean())


def _binary_rank_auc(x: np.ndarray, positive: np.ndarray) -> float | None:
    """The binary case of ``_rank_auc_scores``, exact, from two value sorts instead of an argsort and ``np.unique``.

    For each positive, the negatives below it and tied with it are found by binary search in the sorted
    negatives: U = sum(below) + sum(tied) / 2 (Mann-Whitney), AUC = U / (P * N), folded to max(AUC, 1 - AUC).
    The counts are integers, so U is exact; sorting values (not indices) is several times faster in numpy.
    """
    positives, negatives = np.sort(x[positive]), np.sort(x[~positive])
    if positives.size == 0 or negatives.size == 0:
        return None
    below = np.searchsorted(negatives, positives, side="left")
    at_or_below = np.searchsorted(negatives, positives, side="right")
    wins = float(below.sum()) + 0.5 * float((at_or_below - below).sum())
    auc = wins / (float(positives.size) * float(negatives.size))
    return max(auc, 1.0 - auc)


@register
class TargetLeakage(Check):
    spec = CheckSpec(
        id="target_leakage",
        measures="best single-feature score on train (tabular data)",
        threshold_range=(0.0, 1.0),
        title="Target leakage",
        family="data",
        detects="A single input feature that on its own predicts the label almost perfectly, which usually "
        "means the label leaked into the inputs.",
        how_to_read="Each feature is scored alone on the training data: by ROC AUC for classification (1.0 "
        "means the feature sorts the classes perfectly, 0.5 means it carries no information) and by the "
        "absolute correlation with the target for regression. Real predictive features rarely exceed the "
        "limit on their own; one that does is usually a copy, an encoding or a consequence of the label.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.99,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        train = ctx.data.splits["train"]
        names = ctx.data.feature_names
        if train.features is None or names is None:
            return Finding.skip("the inputs are not a table of named features")
        X = np.asarray(train.features)
        y = np.asarray(train.labels)
        n_total = X.shape[0]
        if n_total < 2:
            return Finding.skip("the train split has fewer than 2 samples")
        rows = np.arange(n_total)
        classes_compared, limited = ctx.data.num_classes, False
        if n_total > LEAKAGE_MAX_ROWS:
            rows = np.sort(np.random.default_rng(0).choice(n_total, LEAKAGE_MAX_ROWS, replace=False))
            X, y = X[rows], y[rows]
        rows_used = int(X.shape[0])
        if ctx.task == "regression":
            finite_y = y[np.isfinite(y.astype(np.float64))]
            if finite_y.size < 2 or np.ptp(finite_y) == 0:
                return Finding.skip("the train target is constant, so no feature can correlate with it")
            kind = "abs_pearson_r"
            scores = self._correlations(X, y)
        else:
            kind = "roc_auc" if ctx.task == "binary" else "mean_one_vs_one_auc"
            y = y.astype(np.int64)
            present = np.bincount(y, minlength=ctx.data.num_classes)
            if int((present > 0).sum()) < 2:
                return Finding.skip("the train split holds a single class, so no feature can separate classes")
            compared = np.argsort(-present, kind="stable")[:LEAKAGE_MAX_CLASSES]
            compared = compared[present[compared] > 0]
            if compared.size < int((present > 0).sum()):
                limited = True
                keep = np.isin(y, compared)
                relabel = np.full(ctx.data.num_classes, -1, dtype=np.int64)
                relabel[compared] = np.arange(compared.size)
                X, y = X[keep], relabel[y[keep]]
            classes_compared = int(compared.size)
            scores = [_rank_auc_scores(X[:, j].astype(np.float64), y, classes_compared) for j in range(X.shape[1])]
        ranked = sorted(((s, names[j]) for j, s in enumerate(scores) if s is not None), key=lambda t: -t[0])
        evidence = {
            "score": kind,
            "features": [{"name": name, "score": score} for score, name in ranked[:5]],
            "rows_used": rows_used,
            "rows_total": int(n_total),
            "subsampled": bool(rows_used < n_total),
        }
        if limited:
            evidence["classes_compared"] = classes_compared
        if not ranked:
            return Finding.skip("no feature varies enough to be scored")
        best, best_name = ranked[0]
        label = {"abs_pearson_r": "|r| with the target", "roc_auc": "ROC AUC",
                 "mean_one_vs_one_auc": "mean one-vs-one AUC"}[kind]
        sample = f" on a {count(rows_used)}-row sample of train" if evidence["subsampled"] else " on train"
        if "classes_compared" in evidence:
            sample += f" (the {classes_compared} most frequent classes)"
        over = sum(1 for score, _ in ranked if settings.threshold is not None and score > settings.threshold)
        return Measurement(
            best, f"the strongest single feature, {best_name!r}, reaches {label} {number(best)}{sample} "
            f"({over} feature{'s' if over != 1 else ''} over the limit)", evidence,
            violation=f"Feature {best_name!r} alone predicts the label", advice="check it is not derived from the label",
        )

    @staticmethod
    def _correlations(X: np.ndarray, y: np.ndarray) -> list[float | None]:
        """|Pearson r| of each column with the target; None for a constant column."""
        X = X.astype(np.float64)
        y = y.astype(np.float64)
        keep = np.isfinite(X).all(axis=1) & np.isfinite(y)
        X, y = X[keep], y[keep]
        xc = X - X.mean(axis=0)
        yc = y - y.mean()
        denominator = np.sqrt((xc * xc).sum(axis=0) * float(yc @ yc))
        r = np.divide(xc.T @ yc, denominator, out=np.zeros(X.shape[1]), where=denominator > 0)
        return [float(abs(v)) if d > 0 else None for v, d in zip(r, denominator)]


@register
class ClassImbalance(Check):
    spec = CheckSpec(
        id="class_imbalance",
        measures="rarest class share ÷ balanced share (1/C)",
        threshold_range=(0.0, None),
        title="Class imbalance",
        family="data",
        detects="A class so rare in the training data that accuracy says little about how it is handled.",
        how_to_read="The value is the smallest class's share of the training data divided by the share it would "
        "have if all classes were equally common (1.0 = perfectly balanced; 0.2 in a two-class problem = a 10% "
        "minority). Below the limit, a model can score high accuracy while ignoring the rare class, so read "
        "balanced accuracy and per-class recall instead.",
        default_severity="warning",
        threshold_key="min",
        default_threshold=0.2,
        tasks=CLASSIFICATION,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        counts = ctx.data.class_counts("train")
        total = sum(counts.values())
        if total == 0:
            return Finding.skip("the train split is empty")
        c = len(counts)
        shares = {name: count / total for name, count in counts.items()}
        minority = min(shares, key=shares.get)
        majority = max(shares, key=shares.get)
        ratio = counts[majority] / counts[minority] if counts[minority] else None
        value = shares[minority] * c
        evidence = {
            "per_class": {name: {"count": counts[name], "share": shares[name]} for name in counts},
            "minority_class": minority,
            "minority_share": shares[minority],
            "majority_class": majority,
            "imbalance_ratio": ratio,
            "balanced_share": 1.0 / c,
        }
        ratio_text = f"{number(ratio)} to 1" if ratio is not None else "no samples"
        return Measurement(
            value, f"the rarest class {minority!r} is {percent(shares[minority])} of train ({count(counts[minority])} samples, "
            f"majority/minority ratio {ratio_text}), {number(value)} of a balanced share", evidence,
            advice="accuracy will mislead, read balanced accuracy and per-class recall",
        )


def _tvd(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


@register
class LabelShift(Check):
    spec = CheckSpec(
        id="label_shift",
        measures="total variation distance, train vs test classes",
        threshold_range=(0.0, 1.0),
        title="Label shift",
        family="data",
        detects="Class proportions that differ between the training and test data.",
        how_to_read="The value is the total variation distance between the class mixes of train and test: the "
        "share of samples that would have to change class to make the two mixes equal (0 = identical). A large "
        "shift means test scores reflect a different population than the one the model learned from.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.1,
        tasks=CLASSIFICATION,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split_names = [s for s in ("train", "val", "test") if s in ctx.data.splits]
        if "test" not in split_names or not ctx.data.splits["train"].n or not ctx.data.splits["test"].n:
            return Finding.skip("train and test are both needed to compare class mixes")
        shares = {}
        for name in split_names:
            counts = np.array(list(ctx.data.class_counts(name).values()), dtype=np.float64)
            shares[name] = counts / counts.sum() if counts.sum() else counts
        value = _tvd(shares["train"], shares["test"])
        evidence: dict[str, Any] = {
            "per_class": {cls: {f"{name}_share": float(shares[name][i]) for name in split_names}
                          for i, cls in enumerate(ctx.classes)},
            "tvd_train_test": value,
        }
        if "val" in shares and ctx.data.splits["val"].n:
            evidence["tvd_train_val"] = _tvd(shares["train"], shares["val"])
        moved = int(np.argmax(np.abs(shares["train"] - shares["test"])))
        detail = (f"class {ctx.classes[moved]!r} is {percent(shares['train'][moved])} of train and "
                  f"{percent(shares['test'][moved])} of test")
        return Measurement(value, f"the class mix differs by {number(value)} (total variation) between train and test "
                           f"({detail})", evidence)


@register
class UnseenCategories(Check):
    spec = CheckSpec(
        id="unseen_categories",
        title="Unseen categories",
        family="data",
        detects="Validation or test values of a categorical feature that never occur in train: the model "
        "receives an all-zero one-hot block for them and has learned nothing about them.",
        how_to_read="Categories are learned from the train rows only. The value is the largest share, over "
        "the val and test splits, of samples holding at least one category never seen in train; the evidence "
        "lists, per split and column, how many samples and which values (the most frequent first).",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.0,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        preprocessing = ctx.data.fingerprint.get("preprocessing") or {}
        known = preprocessing.get("categorical") or {}
        if not known:
            return Finding.skip("the data has no categorical feature columns")
        splits = [s for s in _splits(ctx) if s.name != "train"]
        if not splits or any(s.attributes is None for s in splits):
            return Finding.skip("the per-sample attributes (original category values) are not available")
        per_split: dict[str, Any] = {}
        worst_share, worst_split = 0.0, ""
        for split in splits:
            frame = split.attributes
            assert frame is not None
            unseen_any = np.zeros(split.n, dtype=bool)
            columns: dict[str, Any] = {}
            for column, categories in known.items():
                values = frame[column]
                unseen = (values.notna() & ~values.astype(str).isin(set(categories))).to_numpy()
                if unseen.any():
                    counts = values[unseen].astype(str).value_counts()
                    columns[column] = {
                        "samples": int(unseen.sum()),
                        "distinct": int(len(counts)),
                        "examples": {str(k): int(v) for k, v in counts.head(MAX_EXAMPLES).items()},
                    }
                    unseen_any |= unseen
            share = float(unseen_any.mean()) if split.n else 0.0
            per_split[split.name] = {"samples": int(unseen_any.sum()), "n": split.n, "share": share, "columns": columns}
            if share > worst_share:
                worst_share, worst_split = share, split.name
        evidence = {"splits": per_split, "train_categories": {c: len(v) for c, v in known.items()}}
        if worst_share == 0:
            return Measurement(0.0, "every val and test category also occurs in train", evidence)
        info = per_split[worst_split]
        listed = "; ".join(
            f"{column}: {', '.join(repr(k) for k in list(c['examples'])[:3])}" for column, c in info["columns"].items()
        )
        return Measurement(
            worst_share,
            f"{count(info['samples'])} of {count(info['n'])} {worst_split} samples ({percent(worst_share)}) hold a category never seen "
            f"in train ({listed})",
            evidence,
            advice="the model encodes them as all zeros",
        )
