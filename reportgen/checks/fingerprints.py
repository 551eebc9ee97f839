"""Sample fingerprints: vectorised 64-bit hashes of every sample's model input, per split.

Two kinds of hash are computed for each sample, in one streaming pass over the split:

* ``exact``: the bytes of the preprocessed input (float32 as stored); equal only for bit-identical
  inputs.
* ``normalised`` (two of them, ``norm`` and ``norm_shifted``): every value is rounded to about 6
  significant digits of the largest magnitude in its sample (a grid of 2**(e - 20) where 2**e bounds
  the row's largest absolute value), so values that differ only by how they were formatted in a CSV
  (``f"{v:.9g}"`` vs ``repr(v)``), by -0.0 vs 0.0 or by a float32 rounding step still agree. The
  grid is relative to the row, not to each value, because standardisation turns formatting noise
  into an absolute error, which would split values near zero on a per-value grid. Two samples that
  agree on this grid differ by less than about 1e-6 of their largest value in every position.
  A value lying right on a cell edge could still land in two cells, so a second hash uses cells
  shifted by half a cell; two samples count as the same when either normalised hash agrees.

Hashing is linear in the data: rows are viewed as 64-bit words, each word is mixed with a
per-position key through splitmix64 and the mixed words are summed (mod 2**64). Matching uses pandas'
hash tables (``pd.factorize``), never pairwise distances. Seeds are fixed, so hashes are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from reportgen.types import SplitData

CACHE_PREFIX = "fingerprints:"
GRID_BITS = 20
"""Rounding grid: 2**-20 of the power of two above the row's largest magnitude (~6 digits)."""
_FEATURE_CHUNK = 65_536
_CACHE_VALUES = 131_072

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class SplitFingerprints:
    """Per-sample hashes of one split, each kind computed on first use, and what a scan of the inputs saw.

    ``exact``, ``norm`` and ``norm_shifted`` are (n,) uint64 arrays, computed when a check first reads
    them (one streaming pass over the split per kind; the two normalised kinds share theirs) and kept:
    data_integrity reads only the counts of non-finite values, conflicting_labels only ``norm``, and
    train_test_overlap reads all three (it meets rows by both normalised hashes and carries the exact
    one, since on a worker's shard it cannot know whether a sample elsewhere matches). ``match`` below
    still computes ``exact`` only when some sample matches on a normalised hash.
    """

    def __init__(self, split: SplitData, batch_size: int) -> None:
        self._split, self._batch_size = split, batch_size
        self._hashes: dict[str, np.ndarray] = {}
        self._scan: tuple[int, int, int] | None = None
        if split.features is None:  # inputs read through the dataset (maybe from disk): one pass for everything
            self._everything_at_once()

    def _everything_at_once(self) -> None:
        exact, norm, shifted = [], [], []
        tally = _ScanTally()
        for block in _blocks(self._split, self._batch_size):
            if block.shape[0] == 0:
                continue
            tally.add(block)
            for piece in _cut(block):
                e, a, b = fingerprint_block(piece)
                exact.append(e)
                norm.append(a)
                shifted.append(b)
        self._hashes = {"exact": _concatenate(exact), "norm": _concatenate(norm), "norm_shifted": _concatenate(shifted)}
        self._scan = tally.result()

    @property
    def exact(self) -> np.ndarray:
        """Hash of each sample's input bytes (float32 as stored)."""
        if "exact" not in self._hashes:
            self._hashes["exact"] = _concatenate([hash_words(_bytes_as_words(piece), seed=11)
                                                  for piece in _pieces(self._split, self._batch_size)])
        return self._hashes["exact"]

    @property
    def norm(self) -> np.ndarray:
        """Hash of each sample's values rounded on the grid (module docstring)."""
        self._normalised()
        return self._hashes["norm"]

    @property
    def norm_shifted(self) -> np.ndarray:
        """Hash of each sample's values rounded on the grid shifted by half a cell."""
        self._normalised()
        return self._hashes["norm_shifted"]

    @property
    def nonfinite_values(self) -> int:
        """Number of NaN or infinite input values in the split."""
        return self._scanned()[0]

    @property
    def nonfinite_rows(self) -> int:
        """Number of samples with at least one NaN or infinite input value."""
        return self._scanned()[1]

    @property
    def width(self) -> int:
        """Number of values per sample (after flattening); -1 when samples differ in size."""
        return self._scanned()[2]

    def _normalised(self) -> None:
        if "norm" in self._hashes:
            return
        norm, shifted = [], []
        for piece in _pieces(self._split, self._batch_size):
            scaled, shift, finite = _scaled(piece)
            norm.append(hash_words(_rounded(scaled, shift, finite, piece, False).view(np.uint64), seed=23))
            shifted.append(hash_words(_rounded(scaled, shift, finite, piece, True).view(np.uint64), seed=37))
        self._hashes["norm"], self._hashes["norm_shifted"] = _concatenate(norm), _concatenate(shifted)

    def _scanned(self) -> tuple[int, int, int]:
        if self._scan is None:
            tally = _ScanTally()
            for block in _blocks(self._split, self._batch_size):
                if block.shape[0]:
                    tally.add(block)
            self._scan = tally.result()
        return self._scan


class _ScanTally:
    """What a scan of a split's blocks saw: non-finite values, rows holding one, and the sample widths."""

    def __init__(self) -> None:
        self.values = self.rows = 0
        self.widths: set[int] = set()

    def add(self, block: np.ndarray) -> None:
        self.widths.add(block.shape[1])
        values, rows = _nonfinite(block)
        self.values, self.rows = self.values + values, self.rows + rows

    def result(self) -> tuple[int, int, int]:
        """(non-finite values, non-finite rows, width): width -1 when samples differ in size, 0 when none was seen."""
        width = next(iter(self.widths)) if len(self.widths) == 1 else (-1 if self.widths else 0)
        return self.values, self.rows, width


def _nonfinite(block: np.ndarray) -> tuple[int, int]:
    """(non-finite values, samples holding one) in a 2-d block."""
    if not np.issubdtype(block.dtype, np.floating):
        return 0, 0
    finite = np.isfinite(block)
    if finite.all():
        return 0, 0
    return int((~finite).sum()), int((~finite.all(axis=1)).sum())


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _splitmix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wrapping arithmetic), in place: ``z`` is overwritten
    and returned (one scratch array instead of a new array per step)."""
    scratch = z >> np.uint64(30)
    z ^= scratch
    z *= _M1
    np.right_shift(z, np.uint64(27), out=scratch)
    z ^= scratch
    z *= _M2
    np.right_shift(z, np.uint64(31), out=scratch)
    z ^= scratch
    return z


_KEY_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _position_keys(width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random per-position xor keys and odd multipliers."""
    cached = _KEY_CACHE.get((width, seed))
    if cached is None:
        rng = np.random.default_rng(seed)
        keys = rng.integers(0, 2**63, size=width, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=width, dtype=np.uint64)
        mult = rng.integers(0, 2**63, size=width, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        cached = _KEY_CACHE[(width, seed)] = (keys, mult)
    return cached


def hash_words(words: np.ndarray, seed: int) -> np.ndarray:
    """Hash each row of an (n, m) uint64 matrix to one uint64."""
    n, m = words.shape
    keys, mult = _position_keys(m, seed)
    with np.errstate(over="ignore"):
        mixed = _splitmix(words ^ keys)
        mixed *= mult
        total = mixed.sum(axis=1, dtype=np.uint64) if m else np.zeros(n, dtype=np.uint64)
        return _splitmix(total ^ (np.uint64(m) * _GOLDEN))


def _bytes_as_words(rows: np.ndarray) -> np.ndarray:
    """View an (n, d) array's rows as uint64 words, zero-padding each row to a multiple of 8 bytes."""
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((raw.shape[0], pad), dtype=np.uint8)], axis=1)
    return np.ascontiguousarray(raw).view(np.uint64)


def _scaled(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values in grid units, the per-row scale exponent, the finite mask) of a 2-d block."""
    x = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(rows)  # on the stored dtype: fewer bytes, the same answer as on float64
    all_finite = bool(finite.all())
    safe = x if all_finite else np.where(finite, x, 0.0)
    # float32 values widen to float64 exactly, so their largest magnitude has the same exponent
    stored = rows if all_finite and isinstance(rows, np.ndarray) and rows.dtype == np.float32 else safe
    row_max = _row_abs_max(stored) if x.shape[1] else np.zeros(x.shape[0])
    _, row_exponent = np.frexp(row_max)  # row_max < 2**row_exponent
    shift = (GRID_BITS - row_exponent)[:, None]
    return _times_power_of_two(safe, shift), shift, finite


def _row_abs_max(x: np.ndarray) -> np.ndarray:
    """(n,) largest absolute value of each row of a finite (n, d) block, d >= 1: the columns folded in halves
    by elementwise maxima (about 2x faster than ``np.abs(x).max(axis=1)`` on narrow rows, the same values)."""
    folded = np.abs(x)
    while folded.shape[1] > 1:
        half = folded.shape[1] // 2
        odd = folded[:, -1] if folded.shape[1] % 2 else None
        folded = np.maximum(folded[:, :half], folded[:, half:2 * half])
        if odd is not None:
            np.maximum(folded[:, 0], odd, out=folded[:, 0])
    return np.asarray(folded[:, 0], dtype=np.float64)


def _times_power_of_two(x: np.ndarray, shift: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``np.ldexp(x, shift)``, by a multiplication with 2**shift where that power is a normal float64
    (then both are the one correctly rounded product, bit for bit), about 3x faster than ldexp.
    ``in_place``: ``x`` (float64) may be overwritten with the result."""
    if shift.size and int(shift.min()) > -1000 and int(shift.max()) < 1000:
        if in_place:
            x *= np.ldexp(1.0, shift)
            return x
        return x * np.ldexp(1.0, shift)
    return np.ldexp(x, shift)


def _rounded(scaled: np.ndarray, shift: np.ndarray, finite: np.ndarray, x: np.ndarray, shifted: bool) -> np.ndarray:
    """Each value rounded on a grid of 2**-GRID_BITS of the power of two above its row's largest magnitude.

    That is about 6 significant digits of the sample's largest value, the same absolute grid for
    every value of the sample: after standardisation a formatting difference is an absolute error,
    so a grid relative to each value would split values near zero. Returns float64, (n, d); -0.0
    becomes 0.0 and NaN is canonical. ``shifted`` moves the cell edges by half a cell.
    """
    codes = np.floor(scaled) if shifted else scaled + 0.5
    if not shifted:
        np.floor(codes, out=codes)
    rounded = _times_power_of_two(codes, -shift, in_place=True)
    rounded += 0.0  # turns -0.0 into 0.0
    if not finite.all():
        x = np.asarray(x, dtype=np.float64)
        rounded = np.where(finite, rounded, np.where(np.isnan(x), np.nan, x))
    return rounded


def _blocks(split: SplitData, batch_size: int) -> Iterator[np.ndarray]:
    """Yield the split's inputs as (batch, values) arrays, flattening each sample."""
    if split.features is not None:
        features = split.features
        for start in range(0, len(features), _FEATURE_CHUNK):
            yield np.asarray(features[start:start + _FEATURE_CHUNK])
        return
    # Imported here so that listing checks and validating a config (which load this module) need no torch.
    from reportgen.batching import iterate_batches

    for x, _ in iterate_batches(split, batch_size):
        array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        yield array.reshape(array.shape[0], -1)


def fingerprint_block(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact, norm, norm_shifted) hashes of each row of a 2-d block."""
    exact = hash_words(_bytes_as_words(block), seed=11)
    scaled, shift, finite = _scaled(block)
    norm = hash_words(_rounded(scaled, shift, finite, block, False).view(np.uint64), seed=23)
    shifted = hash_words(_rounded(scaled, shift, finite, block, True).view(np.uint64), seed=37)
    return exact, norm, shifted


def _pieces(split: SplitData, batch_size: int) -> Iterator[np.ndarray]:
    """The split's inputs in cache-sized 2-d pieces (about 2x faster to hash than whole blocks)."""
    for block in _blocks(split, batch_size):
        yield from _cut(block)


def _cut(block: np.ndarray) -> Iterator[np.ndarray]:
    """A 2-d block in pieces of about _CACHE_VALUES values."""
    step = max(64, _CACHE_VALUES // max(1, block.shape[1]))
    for start in range(0, block.shape[0], step):
        yield block[start:start + step]


def compute(split: SplitData, batch_size: int) -> SplitFingerprints:
    """The fingerprints of a split; each kind of hash is computed when first read."""
    return SplitFingerprints(split, batch_size)


def for_split(cache: dict, split: SplitData, batch_size: int) -> SplitFingerprints:
    """Fingerprints of a split, computed once per run and kept in the check context's cache."""
    key = CACHE_PREFIX + split.name
    found = cache.get(key)
    if found is None:
        found = cache[key] = compute(split, batch_size)
    return found


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-d array, sorted (``np.unique`` without its cost: one sort and a comparison)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered


def repeated(values: np.ndarray) -> np.ndarray:
    """The values that occur more than once in a 1-d array, distinct and sorted."""
    ordered = np.sort(values)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    return twice[np.r_[True, twice[1:] != twice[:-1]]] if twice.size else twice


def common(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The values that occur in both 1-d arrays, distinct and sorted: sorts only, O(n log n) with a small constant."""
    return repeated(np.concatenate([distinct_sorted(a), distinct_sorted(b)]))


def member(values: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """(n,) bool: which ``values`` occur in the sorted ``distinct`` array (binary search; fast when it is small)."""
    if not distinct.size:
        return np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(distinct, values), distinct.size - 1)
    return distinct[at] == values


def first_match(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each query hash, the index of its first occurrence in ``reference``, or -1.

    The hashes present on both sides are found by sorting first, so the hash table is built only
    over the rows that hold one of them (usually few): O(n log n) sorts, then linear work on those rows.
    """
    out = np.full(query.size, -1, dtype=np.int64)
    if reference.size == 0 or query.size == 0:
        return out
    shared = common(reference, query)
    if not shared.size:
        return out
    ref_at, query_at = np.flatnonzero(member(reference, shared)), np.flatnonzero(member(query, shared))
    out[query_at] = ref_at[_first_match_table(reference[ref_at], query[query_at])]
    return out


def _first_match_table(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``first_match`` by one hash table over both arrays. Linear time."""
    n_ref = reference.size
    if n_ref == 0 or query.size == 0:
        return np.full(query.size, -1, dtype=np.int64)
    import pandas as pd  # imported here: report rendering loads the check modules for their texts only

    codes, _ = pd.factorize(np.concatenate([reference, query]))
    ref_codes, query_codes = codes[:n_ref], codes[n_ref:]
    # factorize numbers values by first appearance, and the reference comes first: the codes seen
    # in the reference are exactly 0..k-1, and their first positions are where a new code appears.
    k = int(ref_codes.max()) + 1
    running = np.maximum.accumulate(ref_codes)
    new = np.r_[True, running[1:] > running[:-1]]
    first_position = np.flatnonzero(new)
    out = np.full(query.size, -1, dtype=np.int64)
    hit = query_codes < k
    out[hit] = first_position[query_codes[hit]]
    return out


@dataclass(frozen=True)
class Matches:
    """Which samples of one split also occur in another."""

    index: np.ndarray
    """Per query sample: the reference index it matches (first occurrence), or -1."""
    exact: np.ndarray
    """Per query sample: True when the match is bit-identical."""

    @property
    def found(self) -> np.ndarray:
        return self.index >= 0


def match(reference: SplitFingerprints, query: SplitFingerprints) -> Matches:
    """Match query samples against reference samples: exact bytes first, then normalised values.

    Bit-identical inputs also agree on the normalised hash, so when no query sample matches on either
    normalised hash there is no exact match either, and the exact hashes are not computed.
    """
    candidates = first_match(reference.norm, query.norm) >= 0
    if not candidates.all():
        candidates[~candidates] = first_match(reference.norm_shifted, query.norm_shifted[~candidates]) >= 0
    if not candidates.any():
        return Matches(index=np.full(query.norm.size, -1, dtype=np.int64), exact=np.zeros(query.norm.size, dtype=bool))
    exact = first_match(reference.exact, query.exact)
    index = exact.copy()
    for ref_hash, query_hash in ((reference.norm, query.norm), (reference.norm_shifted, query.norm_shifted)):
        missing = index < 0
        if not missing.any():
            break
        found = first_match(ref_hash, query_hash[missing])
        index[np.flatnonzero(missing)] = found
    return Matches(index=index, exact=exact >= 0)
