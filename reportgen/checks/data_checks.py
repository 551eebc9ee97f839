"""Checks of the data family: integrity, leakage between splits, label problems, class balance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen.checks import fingerprints
from reportgen.checks.base import NOT_APPLICABLE, NOT_MEASURED, Check, CheckSettings, CheckSpec, Finding, Measurement, Param, register
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, number, percent
from reportgen.numbers import ratio as ratio_format
from reportgen.types import SPLIT_ORDER, DataBundle, SplitData

if TYPE_CHECKING:  # the shard types are read when checks run, not when a report renders
    from reportgen.checks.shards import KeyedRows, LocalPart, ShardContext

CLASSIFICATION = frozenset({"binary", "multiclass"})
MAX_EXAMPLES = 10
GROUP_EXAMPLE_SAMPLES = 6
"""conflicting_labels lists at most this many samples of each example group."""
LEAKAGE_MAX_CLASSES = 100
"""target_leakage compares at most this many classes (the most frequent in train) pairwise: K² pairs per feature."""


def _row_id(source_row: int, global_row: int, has_source_rows: bool) -> int:
    """1-based row number for evidence, as every input error counts them: the source file's data row
    (header excluded) when known, else the position in the split."""
    return int(source_row) + 1 if has_source_rows else int(global_row) + 1


def _present(data: DataBundle) -> list[SplitData]:
    """The bundle's splits in train, val, test order."""
    return [data.splits[name] for name in SPLIT_ORDER if name in data.splits]


def _shard_prints(shard: ShardContext, split: SplitData) -> fingerprints.SplitFingerprints:
    """The fingerprints of this worker's rows of ``split``, computed once per worker."""
    return fingerprints.for_split(shard.cache, split, shard.batch_size)


def _global_rows(split: SplitData) -> np.ndarray:
    """(n,) int64: the index in the whole split of each row held here."""
    return split.offset + np.arange(split.n, dtype=np.int64)


def _source_rows(split: SplitData) -> np.ndarray:
    """(n,) int64: each row's source-file row (0-based), -1 where the data kind does not say."""
    if split.source_rows is None:
        return np.full(split.n, -1, dtype=np.int64)
    return np.asarray(split.source_rows, dtype=np.int64)


def _source_row(split: SplitData, position: int) -> int:
    """The source-file row (0-based) of the row at ``position`` here, -1 where the data kind does not say."""
    return -1 if split.source_rows is None else int(split.source_rows[position])


def _first_rows(hashes: np.ndarray, rows: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct hashes, the smallest row holding each, that row's source row): O(n log n)."""
    order = np.lexsort((rows, hashes))
    hashes, rows, sources = hashes[order], rows[order], sources[order]
    first = np.r_[True, hashes[1:] != hashes[:-1]] if hashes.size else np.zeros(0, dtype=bool)
    return hashes[first], rows[first], sources[first]


def _lookup(distinct: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each query hash, its index in the sorted ``distinct`` hashes, or -1. The hashes found are picked
    out by sorts first, so the binary search (slow on large arrays) runs only for those."""
    out = np.full(query.size, -1, dtype=np.int64)
    if not distinct.size or not query.size:
        return out
    found = np.flatnonzero(fingerprints.member(query, fingerprints.common(distinct, query)))
    out[found] = np.searchsorted(distinct, query[found])
    return out


def _take(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values[at]`` where ``at`` >= 0, else -1 (also when ``values`` is empty)."""
    if not values.size:
        return np.full(at.size, -1, dtype=np.int64)
    return np.where(at >= 0, values[np.maximum(at, 0)], -1)


def _smallest(rows: np.ndarray, limit: int = MAX_EXAMPLES) -> np.ndarray:
    """Positions of the ``limit`` smallest values of ``rows``, in increasing order (the examples' rule,
    which does not depend on how the rows are spread over workers)."""
    order = np.argsort(rows, kind="stable")
    return order[:limit]


def _categorical(data: DataBundle) -> dict[str, Any]:
    """The train categories of each categorical feature column, from the preprocessing fitted on train."""
    preprocessing = data.fingerprint.get("preprocessing") or {}
    return dict(preprocessing.get("categorical") or {})


def _join(parts: list[str]) -> str:
    return "; ".join(parts)


def _block_payload(at: np.ndarray, stops: np.ndarray, blocks: list[tuple[SplitData, tuple[int, ...], tuple[Any, ...]]],
                   width: int) -> np.ndarray:
    """(m, ``width``) int64 payload of the keyed rows at positions ``at`` (sorted (m,) int64) of blocks laid end to end.

    Block b holds one key per row of split ``blocks[b][0]`` as held here, in row order, and ends before
    ``stops[b]`` (the cumulative block sizes). A row's payload is the block's constants ``blocks[b][1]``, then
    its split index in SPLIT_ORDER, global row and source row (-1 where the data kind does not say), then its
    entry of each (n,) per-row column of ``blocks[b][2]``: ``width`` columns in all. Only the rows at ``at``
    are read from the columns, so a payload is built for the rows that travel only.
    """
    out = np.empty((at.size, width), dtype=np.int64)
    which = np.searchsorted(stops, at, side="right")
    for b, (split, constants, per_row) in enumerate(blocks):
        here = np.flatnonzero(which == b)
        rows = at[here] - (stops[b] - split.n)
        first = len(constants)
        for c, value in enumerate(constants):
            out[here, c] = value
        out[here, first] = SPLIT_ORDER.index(split.name)
        out[here, first + 1] = split.offset + rows
        out[here, first + 2] = -1 if split.source_rows is None else np.asarray(split.source_rows, dtype=np.int64)[rows]
        for c, column in enumerate(per_row, start=first + 3):
            out[here, c] = np.asarray(column, dtype=np.int64)[rows]
    return out


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
                  kind=int, minimum=1, stricter="more"),
        ),
    )

    def local(self, shard: ShardContext, settings: CheckSettings) -> dict[str, dict[str, Any]]:
        """Per split, this worker's exact counts: non-finite input values and samples, and labels outside the
        classes (classification: with the count of each valid class) or non-finite targets (regression)."""
        classification = shard.task in CLASSIFICATION
        num_classes = shard.data.num_classes
        state: dict[str, dict[str, Any]] = {}
        for split in _present(shard.data):
            info: dict[str, Any] = {"nonfinite_values": 0, "nonfinite_samples": 0, "bad_labels": 0,
                                    "class_counts": np.zeros(num_classes, dtype=np.int64)}
            state[split.name] = info
            if split.n == 0:
                continue
            prints = _shard_prints(shard, split)
            info["nonfinite_values"], info["nonfinite_samples"] = prints.nonfinite_values, prints.nonfinite_rows
            labels = np.asarray(split.labels)
            as_float = labels.astype(np.float64, copy=False)
            if classification:
                valid = np.isfinite(as_float) & (as_float == np.round(as_float)) & (as_float >= 0) & (as_float < num_classes)
                info["bad_labels"] = int((~valid).sum())
                info["class_counts"] = np.bincount(labels[valid].astype(np.int64), minlength=num_classes)
            else:
                info["bad_labels"] = int((~np.isfinite(as_float)).sum())
        return state

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        min_support = int(settings.params["min_class_support"])
        classification = ctx.task in CLASSIFICATION
        num_classes = ctx.data.num_classes
        parts = [worker.state for worker in ctx.local_results(self.spec.id)]
        violations: list[str] = []
        concerns: list[str] = []
        per_split: dict[str, Any] = {}
        for split in _present(ctx.data):
            n = split.n
            info: dict[str, Any] = {"n": n}
            per_split[split.name] = info
            if n == 0:
                violations.append(f"the {split.name} split is empty")
                continue
            nonfinite_values = sum(int(part[split.name]["nonfinite_values"]) for part in parts)
            nonfinite_samples = sum(int(part[split.name]["nonfinite_samples"]) for part in parts)
            bad = sum(int(part[split.name]["bad_labels"]) for part in parts)
            info["nonfinite_values"] = nonfinite_values
            info["nonfinite_samples"] = nonfinite_samples
            if nonfinite_values:
                violations.append(
                    f"{split.name} has {count(nonfinite_values)} non-finite input values in {count(nonfinite_samples)} samples"
                )
            if classification:
                info["labels_out_of_range"] = bad
                if bad:
                    violations.append(f"{split.name} has {count(bad)} labels outside 0..{num_classes - 1}")
                counts = np.asarray(np.sum([part[split.name]["class_counts"] for part in parts], axis=0), dtype=np.int64)
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
                info["nonfinite_targets"] = bad
                if bad:
                    violations.append(f"{split.name} has {count(bad)} non-finite targets")
            if n < min_support:
                concerns.append(f"the {split.name} split has only {count(n)} samples")
        evidence: dict[str, Any] = {"splits": per_split, "violations": violations, "concerns": concerns}
        if classification:  # a regression run has no classes; the setting then only bounds the split sizes
            evidence["min_class_support"] = min_support
        problems = len(violations) + len(concerns)
        if violations:
            return Finding("violation", problems, f"Broken data: {_join(violations + concerns)}.", evidence)
        if concerns:
            return Finding("concern", problems, f"Data too thin to judge: {_join(concerns)}.", evidence)
        sizes = ", ".join(f"{name} {count(info['n'])}" for name, info in per_split.items())
        labels_ok = "every label is a known class" if classification else "every target is finite"
        return Finding("ok", 0, f"All inputs are finite and {labels_ok} ({sizes} samples).", evidence)


OVERLAP_PAIRS = (("test_in_train", "test", "train"), ("val_in_train", "val", "train"), ("test_in_val", "test", "val"))
"""train_test_overlap's (name, query split, reference split) pairs, in the order of its evidence."""
_NORM, _SHIFTED = 0, 1
"""Kinds of keyed row in train_test_overlap's first meeting: by normalised hash, by the half-cell-shifted one."""


def _overlap_pairs(data: DataBundle) -> list[tuple[int, str, str, str]]:
    """(pair index, name, query split, reference split) of the pairs whose splits both exist (test needed)."""
    if "test" not in data.splits:
        return []
    return [(i, name, q, r) for i, (name, q, r) in enumerate(OVERLAP_PAIRS) if q in data.splits and r in data.splits]


def _examples(query_rows: np.ndarray, query_sources: np.ndarray, ref_rows: np.ndarray,
              ref_sources: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The MAX_EXAMPLES matches of smallest query row: (query row, its source row, reference row, its source row)."""
    chosen = _smallest(query_rows)
    return [(int(query_rows[i]), int(query_sources[i]), int(ref_rows[i]), int(ref_sources[i])) for i in chosen]


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

    # A query sample matches when its normalised hash or its shifted normalised hash occurs in the reference
    # split (reportgen/checks/fingerprints.py); the match is exact when its exact hash occurs there too. Bit-
    # identical inputs agree on every hash, so exact matches are found where rows meet by normalised hash.
    # First meeting: every row twice, once by each normalised hash. Where rows meet by normalised hash, the
    # matches A and their exact matches are counted outright. Where they meet by shifted hash, the matches B
    # are found; a sample of B whose reference there also shares its normalised hash is in A; the others meet
    # again by their normalised hash, where the worker that held it in the first meeting tells whether they
    # are in A. So |A or B| = |A| + |B not in A|, each sample counted once, for any number of workers.

    def local(self, shard: ShardContext, settings: CheckSettings) -> LocalPart:
        """Every row of the compared splits, keyed once by each normalised hash.

        Payload (n, 5) int64: kind (_NORM or _SHIFTED), split index in SPLIT_ORDER, global row, source row,
        and the exact hash (rows keyed by normalised hash) or the normalised hash (rows keyed by shifted hash).
        """
        from reportgen.checks.shards import KeyedRows, LocalPart

        state = {"source_rows": {s.name: s.source_rows is not None for s in _present(shard.data)}}
        if not _overlap_pairs(shard.data):
            return LocalPart(state)
        if not shard.world.distributed:  # every row is here: meet in place, without payload matrices
            shard.cache[self._in_place_key()] = self._overlap_in_place(shard)
            return LocalPart(state, KeyedRows(np.zeros(0, dtype=np.uint64), np.zeros((0, 1), dtype=np.int64)))
        # One block of keyed rows per (split, kind). Only rows whose hash of a kind may occur in the split they are
        # compared with (either way) travel (KeyedRows.meets), and only they get a payload (built by ``payload``).
        width = len(SPLIT_ORDER)
        blocks: list[tuple[SplitData, tuple[int, ...], tuple[Any, ...]]] = []
        keys, groups = [np.zeros(0, dtype=np.uint64)], [np.zeros(0, dtype=np.int8)]
        for split in _present(shard.data):
            if not split.n:
                continue
            prints = _shard_prints(shard, split)
            for kind, key, extra in ((_NORM, prints.norm, prints.exact), (_SHIFTED, prints.norm_shifted, prints.norm)):
                blocks.append((split, (kind,), (extra.view(np.int64),)))
                keys.append(key)
                groups.append(np.full(key.size, kind * width + SPLIT_ORDER.index(split.name), dtype=np.int8))
        hashes = np.concatenate(keys)
        stops = np.cumsum([key.size for key in keys[1:]], dtype=np.int64)
        meets = tuple((kind * width + SPLIT_ORDER.index(q), kind * width + SPLIT_ORDER.index(r))
                      for _pair, _name, q, r in _overlap_pairs(shard.data) for kind in (_NORM, _SHIFTED))

        def payload(at: np.ndarray) -> np.ndarray:
            """(m, 5) int64 payload of the keyed rows at ``at``: kind, split index, global row, source row, extra hash."""
            return _block_payload(at, stops, blocks, 5)

        return LocalPart(state, KeyedRows(hashes, np.empty((0, 5), dtype=np.int64), np.concatenate(groups), meets, payload_of=payload))

    def meet(self, received: KeyedRows, shard: ShardContext, settings: CheckSettings) -> Any:
        if not shard.world.distributed:
            return shard.cache.pop(self._in_place_key())
        if received.payload.shape[1] == 5:
            return self._first_meeting(received, shard)
        return self._second_meeting(received, shard)

    def _stash_key(self) -> str:
        return f"{self.spec.id}:first meeting"

    def _in_place_key(self) -> str:
        return f"{self.spec.id}:met in place"

    @staticmethod
    def _overlap_in_place(shard: ShardContext) -> dict[int, dict[str, Any]]:
        """What the meetings find, computed on one process that holds every row: the same counts and examples.

        Each split's rows are in row order, so a hash table's first occurrence (``fingerprints.first_match``)
        is the smallest reference row, the rule of the meetings. The exact hashes are computed only when some
        query sample matches on its normalised hash, and the shifted ones are looked up only for the rest.
        Memory: a few (n,) arrays per split, no payload matrices.
        """
        pairs: dict[int, dict[str, Any]] = {}
        for pair, _name, query_name, reference_name in _overlap_pairs(shard.data):
            query, reference = shard.data.splits[query_name], shard.data.splits[reference_name]
            found: dict[str, Any] = {"a": 0, "exact": 0, "examples": [], "b_only": 0, "b_examples": []}
            pairs[pair] = found
            if not query.n or not reference.n:
                continue
            q_prints, r_prints = _shard_prints(shard, query), _shard_prints(shard, reference)
            at = fingerprints.first_match(r_prints.norm, q_prints.norm)  # the matches A
            in_a = at >= 0
            exact = np.zeros(query.n, dtype=bool)
            if in_a.any():
                at_exact = fingerprints.first_match(r_prints.exact, q_prints.exact[in_a])
                exact[in_a] = at_exact >= 0
                at[in_a] = np.where(at_exact >= 0, at_exact, at[in_a])
            rest = np.flatnonzero(~in_a)
            at[rest] = fingerprints.first_match(r_prints.norm_shifted, q_prints.norm_shifted[rest])  # B not in A
            matched = np.flatnonzero(at >= 0)
            found["a"], found["exact"] = int(in_a.sum()), int(exact.sum())
            found["b_only"] = int(matched.size) - found["a"]
            found["examples"] = [
                (int(query.offset + q), _source_row(query, q), int(reference.offset + at[q]), _source_row(reference, at[q]))
                for q in matched[:MAX_EXAMPLES]
            ]
        return pairs

    def _first_meeting(self, received: KeyedRows, shard: ShardContext) -> LocalPart:
        from reportgen.checks.shards import KeyedRows, LocalPart

        kind, split_index, rows, sources, extra = received.payload.T
        pairs: dict[int, dict[str, Any]] = {}
        reference_norms: dict[int, np.ndarray] = {}
        again_hashes, again_payload = [np.zeros(0, dtype=np.uint64)], [np.zeros((0, 6), dtype=np.int64)]
        for pair, _name, query_name, reference_name in _overlap_pairs(shard.data):
            q_id, r_id = SPLIT_ORDER.index(query_name), SPLIT_ORDER.index(reference_name)
            # rows met by normalised hash: the matches A, exact ones among them
            ref, query = (kind == _NORM) & (split_index == r_id), (kind == _NORM) & (split_index == q_id)
            norms, norm_rows, norm_sources = _first_rows(received.hashes[ref], rows[ref], sources[ref])
            reference_norms[r_id] = norms
            exacts, exact_rows, exact_sources = _first_rows(extra[ref].view(np.uint64), rows[ref], sources[ref])
            at_norm = _lookup(norms, received.hashes[query])
            at_exact = _lookup(exacts, extra[query].view(np.uint64))
            in_a = at_norm >= 0
            is_exact = in_a & (at_exact >= 0)
            ref_rows = np.where(is_exact, _take(exact_rows, at_exact), _take(norm_rows, at_norm))[in_a]
            ref_sources = np.where(is_exact, _take(exact_sources, at_exact), _take(norm_sources, at_norm))[in_a]
            found = {
                "a": int(in_a.sum()), "exact": int(is_exact.sum()),
                "examples": _examples(rows[query][in_a], sources[query][in_a], ref_rows, ref_sources),
            }
            pairs[pair] = found
            # rows met by shifted hash: the matches B; those whose reference group shares no normalised hash meet again
            ref, query = (kind == _SHIFTED) & (split_index == r_id), (kind == _SHIFTED) & (split_index == q_id)
            shifts, shift_rows, shift_sources = _first_rows(received.hashes[ref], rows[ref], sources[ref])
            at_shift = _lookup(shifts, received.hashes[query])
            in_b = at_shift >= 0
            if in_b.any():
                import pandas as pd  # imported here: report rendering loads this module for its texts only

                groups = pd.MultiIndex.from_arrays([received.hashes[ref].view(np.int64), extra[ref]])
                probe = pd.MultiIndex.from_arrays([received.hashes[query].view(np.int64), extra[query]])
                unsure = in_b & ~np.asarray(probe.isin(groups))
                k = int(unsure.sum())
                again_hashes.append(extra[query][unsure].view(np.uint64))
                again_payload.append(np.column_stack([
                    np.full(k, pair, dtype=np.int64), np.full(k, r_id, dtype=np.int64), rows[query][unsure],
                    sources[query][unsure], shift_rows[at_shift[unsure]], shift_sources[at_shift[unsure]],
                ]))
        shard.cache[self._stash_key()] = (pairs, reference_norms)
        return LocalPart(None, KeyedRows(np.concatenate(again_hashes), np.concatenate(again_payload)))

    def _second_meeting(self, received: KeyedRows, shard: ShardContext) -> dict[int, dict[str, Any]]:
        pairs, reference_norms = shard.cache.pop(self._stash_key())
        pair_index, reference, rows, sources, ref_rows, ref_sources = received.payload.T
        for pair, found in pairs.items():
            mine = pair_index == pair
            if not mine.any():
                found["b_only"], found["b_examples"] = 0, []
                continue
            norms = reference_norms[int(reference[mine][0])]
            b_only = mine.copy()
            b_only[mine] = _lookup(norms, received.hashes[mine]) < 0
            found["b_only"] = int(b_only.sum())
            found["b_examples"] = _examples(rows[b_only], sources[b_only], ref_rows[b_only], ref_sources[b_only])
        return pairs

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        splits = ctx.data.splits
        if "test" not in splits:
            return Finding.skip("there is no test split to compare with train", NOT_MEASURED)
        workers = ctx.local_results(self.spec.id)
        has_source_rows = workers[0].state["source_rows"]
        pairs: dict[str, Any] = {}
        for pair, name, query_name, reference_name in _overlap_pairs(ctx.data):
            found = [worker.met[pair] for worker in workers]
            matched = sum(f["a"] + f["b_only"] for f in found)
            exact = sum(f["exact"] for f in found)
            candidates = sorted(e for f in found for e in (*f["examples"], *f["b_examples"]))[:MAX_EXAMPLES]
            n = splits[query_name].n
            pairs[name] = {
                "count": matched,
                "share": matched / n if n else 0.0,
                "n": n,
                "exact": exact,
                "normalised": matched - exact,
                "examples": [
                    {f"{query_name}_row": _row_id(q_source, q_row, has_source_rows[query_name]),
                     f"{reference_name}_row": _row_id(r_source, r_row, has_source_rows[reference_name])}
                    for q_row, q_source, r_row, r_source in candidates
                ],
            }
        main = pairs["test_in_train"]
        value = main["share"]
        evidence = {
            "pairs": pairs,
            "rows": "data rows of the source file (1-based, header excluded)" if has_source_rows["test"]
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

    def local(self, shard: ShardContext, settings: CheckSettings) -> LocalPart:
        """Every row keyed by its normalised hash; payload (n, 4): split index in SPLIT_ORDER, global row,
        source row, label. Rows with equal inputs meet on one worker, whatever shards they came from."""
        from reportgen.checks.shards import KeyedRows, LocalPart

        state = {"source_rows": {s.name: s.source_rows is not None for s in _present(shard.data)}}
        if not shard.world.distributed:  # every row is here: meet in place, without a payload matrix
            shard.cache[self._in_place_key()] = self._conflicts_in_place(shard)
            return LocalPart(state, KeyedRows(np.zeros(0, dtype=np.uint64), np.zeros((0, 1), dtype=np.int64)))
        # Only rows whose hash occurs more than once over every split and worker can be in a group: only they
        # travel (KeyedRows.meets), and only they get a payload (built by ``payload``).
        splits = [split for split in _present(shard.data) if split.n]
        hashes = np.concatenate([np.zeros(0, dtype=np.uint64)] + [_shard_prints(shard, split).norm for split in splits])
        stops = np.cumsum([split.n for split in splits], dtype=np.int64)
        blocks: list[tuple[SplitData, tuple[int, ...], tuple[Any, ...]]] = [(split, (), (split.labels,)) for split in splits]

        def payload(at: np.ndarray) -> np.ndarray:
            """(m, 4) int64 payload of the keyed rows at ``at``: split index, global row, source row, label."""
            return _block_payload(at, stops, blocks, 4)

        return LocalPart(state, KeyedRows(hashes, np.empty((0, 4), dtype=np.int64), meets=((0, 0),), payload_of=payload))

    def meet(self, received: KeyedRows, shard: ShardContext, settings: CheckSettings) -> dict[str, Any]:
        """The groups of equal inputs met here that carry more than one label: their counts, and the
        MAX_EXAMPLES groups whose first sample (in train, val, test order, then row) comes first."""
        if not shard.world.distributed:
            return shard.cache.pop(self._in_place_key())
        split_index, rows, sources, labels = received.payload.T
        return _label_conflicts(received.hashes, labels,
                                lambda at: (split_index[at], rows[at], sources[at], labels[at]))

    def _in_place_key(self) -> str:
        return f"{self.spec.id}:met in place"

    @staticmethod
    def _conflicts_in_place(shard: ShardContext) -> dict[str, Any]:
        """What the meeting finds, computed on one process that holds every row: (n,) hashes and labels of
        all splits; split, row and source row only for the members of conflicting groups."""
        splits = [split for split in _present(shard.data) if split.n]
        hashes = [np.zeros(0, dtype=np.uint64)] + [_shard_prints(shard, split).norm for split in splits]
        labels = [np.zeros(0, dtype=np.int64)] + [np.asarray(split.labels, dtype=np.int64) for split in splits]
        stops = np.cumsum([split.n for split in splits], dtype=np.int64)
        blocks: list[tuple[SplitData, tuple[int, ...], tuple[Any, ...]]] = [
            (split, (), (split_labels,)) for split, split_labels in zip(splits, labels[1:])]

        def members(at: np.ndarray) -> tuple[np.ndarray, ...]:
            return tuple(_block_payload(at, stops, blocks, 4).T)

        return _label_conflicts(np.concatenate(hashes), np.concatenate(labels), members)

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        workers = ctx.local_results(self.spec.id)
        has_source_rows = workers[0].state["source_rows"]
        met = [worker.met for worker in workers]
        groups = sum(m["groups"] for m in met)
        within_train = sum(m["within_train"] for m in met)
        across = sum(m["across_splits"] for m in met)
        evidence: dict[str, Any] = {"groups": groups, "within_train": within_train, "across_splits": across,
                                    "within_other_split": groups - across - within_train,
                                    "samples": sum(m["samples"] for m in met), "examples": []}
        for _first, size, samples in sorted((e for m in met for e in m["examples"]), key=lambda e: e[0])[:MAX_EXAMPLES]:
            evidence["examples"].append({"size": size, "samples": [
                {"split": SPLIT_ORDER[split], "row": _row_id(source, row, has_source_rows[SPLIT_ORDER[split]]),
                 "label": ctx.classes[label] if 0 <= label < len(ctx.classes) else str(label)}
                for split, row, source, label in samples
            ]})
        rows_in_all = sum(split.n for split in _present(ctx.data))
        return Measurement(
            groups, f"{count(groups)} groups of identical inputs carry different labels ({count(within_train)} within train, "
            f"{count(across)} across splits, {count(evidence['samples'])} samples in all, of {count(rows_in_all)})",
            evidence,
        )


def _label_conflicts(hashes: np.ndarray, labels: np.ndarray, members: Any) -> dict[str, Any]:
    """Groups of equal ``hashes`` (n,) uint64 whose ``labels`` (n,) int64 differ: their counts and the MAX_EXAMPLES
    groups whose first sample (in train, val, test order, then row) comes first.

    ``members(at)`` gives (split index, global row, source row, label), each (k,) int64, of the rows at positions
    ``at`` (sorted): it is called once, for the members of conflicting groups. Only rows whose hash occurs more
    than once can be in a group, so they are found by one sort first; hash tables then run on those rows only.
    """
    import pandas as pd  # imported here: report rendering loads this module for its texts only

    shared = np.flatnonzero(fingerprints.member(hashes, fingerprints.repeated(hashes)))
    codes, uniques = pd.factorize(hashes[shared])
    label_codes, label_values = pd.factorize(labels[shared])
    width = max(1, len(label_values))
    distinct = pd.unique(codes.astype(np.int64) * width + label_codes)  # one entry per (group, label)
    labels_per_group = np.bincount(distinct // width, minlength=len(uniques))
    conflicting = labels_per_group > 1
    found: dict[str, Any] = {"groups": int(conflicting.sum()), "within_train": 0, "across_splits": 0, "samples": 0,
                             "examples": []}
    if not found["groups"]:
        return found
    in_group = np.flatnonzero(conflicting[codes])
    at = shared[in_group]
    split_index, rows, sources, member_labels = members(at)
    frame = pd.DataFrame({"group": codes[in_group], "split": split_index, "row": rows, "source": sources, "label": member_labels})
    frame = frame.sort_values(["split", "row"], kind="stable")
    per_group = frame.groupby("group", sort=False)["split"].agg(["nunique", "min"])
    train = SPLIT_ORDER.index("train")
    found["across_splits"] = int((per_group["nunique"] > 1).sum())
    found["within_train"] = int(((per_group["nunique"] == 1) & (per_group["min"] == train)).sum())
    found["samples"] = int(at.size)
    for _group, group_members in list(frame.groupby("group", sort=False))[:MAX_EXAMPLES]:
        first = group_members.iloc[0]
        found["examples"].append(((int(first["split"]), int(first["row"])), int(len(group_members)), [
            (int(split), int(row), int(source), int(label))
            for split, row, source, label in group_members[["split", "row", "source", "label"]].head(GROUP_EXAMPLE_SAMPLES).itertuples(index=False)
        ]))
    return found


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

    uses_row_sample = True

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        names = ctx.data.feature_names
        if names is None:
            return Finding.skip("the inputs are not a table of named features", NOT_APPLICABLE)
        n_total = ctx.data.splits["train"].n
        if n_total < 2:
            return Finding.skip("the train split has fewer than 2 samples", NOT_MEASURED)
        drawn = ctx.row_sample("train")  # every row up to ROW_SAMPLE_MAX_ROWS (reportgen/checks/shards.py)
        if drawn.split.features is None:
            return Finding.skip("the inputs are not a table of named features", NOT_APPLICABLE)
        X = np.asarray(drawn.split.features)
        y = np.asarray(drawn.split.labels)
        classes_compared, limited = ctx.data.num_classes, False
        rows_used = int(X.shape[0])
        if ctx.task == "regression":
            finite_y = y[np.isfinite(y.astype(np.float64))]
            if finite_y.size < 2 or np.ptp(finite_y) == 0:
                return Finding.skip("the train target is constant, so no feature can correlate with it", NOT_MEASURED)
            kind = "abs_pearson_r"
            scores = self._correlations(X, y)
        else:
            kind = "roc_auc" if ctx.task == "binary" else "mean_one_vs_one_auc"
            y = y.astype(np.int64)
            present = np.bincount(y, minlength=ctx.data.num_classes)
            if int((present > 0).sum()) < 2:
                return Finding.skip("the train split holds a single class, so no feature can separate classes", NOT_MEASURED)
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
            return Finding.skip("no feature varies enough to be scored", NOT_MEASURED)
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
            return Finding.skip("the train split is empty", NOT_MEASURED)
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
        ratio_text = ratio_format(ratio) if ratio is not None else "no samples"
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
            return Finding.skip("train and test are both needed to compare class mixes", NOT_MEASURED)
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

    def local(self, shard: ShardContext, settings: CheckSettings) -> dict[str, Any]:
        """Per val/test split, this worker's samples holding a category unseen in train, and per column the
        unseen values with their counts in order of first appearance (the train categories are global: they
        come from the preprocessing fitted on the whole train split). ``attributes`` False when a split has none."""
        import pandas as pd  # imported here: report rendering loads this module for its texts only

        known = _categorical(shard.data)
        splits = [s for s in _present(shard.data) if s.name != "train"]
        state: dict[str, Any] = {"attributes": all(s.attributes is not None for s in splits), "splits": {}}
        if not known or not state["attributes"]:
            return state
        for split in splits:
            frame = split.attributes
            assert frame is not None
            unseen_any = np.zeros(split.n, dtype=bool)
            columns: dict[str, Any] = {}
            for column, categories in known.items():
                values = frame[column]
                unseen = (values.notna() & ~values.astype(str).isin(set(categories))).to_numpy()
                if unseen.any():
                    codes, uniques = pd.factorize(values[unseen].astype(str))
                    counts = np.bincount(codes, minlength=len(uniques))
                    columns[column] = {"samples": int(unseen.sum()),
                                       "values": [(str(v), int(c)) for v, c in zip(uniques, counts)]}
                    unseen_any |= unseen
            state["splits"][split.name] = {"samples": int(unseen_any.sum()), "columns": columns}
        return state

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        known = _categorical(ctx.data)
        if not known:
            return Finding.skip("the data has no categorical feature columns", NOT_APPLICABLE)
        parts = [worker.state for worker in ctx.local_results(self.spec.id)]
        splits = [s for s in _present(ctx.data) if s.name != "train"]
        if not splits or not all(part["attributes"] for part in parts):
            return Finding.skip("the per-sample attributes (original category values) are not available", NOT_APPLICABLE)
        per_split: dict[str, Any] = {}
        worst_share, worst_split = 0.0, ""
        for split in splits:
            shares = [part["splits"][split.name] for part in parts]
            columns: dict[str, Any] = {}
            for column in known:
                seen = [s["columns"][column] for s in shares if column in s["columns"]]
                if not seen:
                    continue
                counts: dict[str, int] = {}  # rank order is row order: first appearance over the whole split
                for part in seen:
                    for value, n in part["values"]:
                        counts[value] = counts.get(value, 0) + n
                frequent = sorted(counts.items(), key=lambda item: -item[1])  # stable: ties by first appearance
                columns[column] = {
                    "samples": sum(int(part["samples"]) for part in seen),
                    "distinct": len(counts),
                    "examples": dict(frequent[:MAX_EXAMPLES]),
                }
            samples = sum(int(s["samples"]) for s in shares)
            share = samples / split.n if split.n else 0.0
            per_split[split.name] = {"samples": samples, "n": split.n, "share": share, "columns": columns}
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
