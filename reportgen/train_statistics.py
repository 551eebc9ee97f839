"""Train-fitted column statistics whose value does not depend on how the rows are dealt to workers.

A float sum depends on the order of its additions: ``np.mean`` over the whole column (pairwise summation)
and a sum of per-worker partial sums differ in the last bits, and so would the standardised inputs of a
run on one worker and on several. Here every column is summed in a fixed way:

1. rows are grouped in blocks of ``FIT_BLOCK_ROWS`` consecutive *file* rows (block ``row // 128``), and
   each block is summed on its own (numpy's pairwise summation over the block's 128 rows): a worker whose
   rows start at a multiple of the block holds whole blocks, so its block sums are bit for bit those of a
   single process;
2. the block sums are added exactly (``ExactSum``: integers, no rounding), on each worker and then over
   the workers, and the total is rounded to float64 once.

The result is the same float on one worker and on any number of workers whose row ranges start at
multiples of ``FIT_BLOCK_ROWS`` (reportgen.table_shards aligns them so), and within an ulp of the
correctly rounded mean. The variance is the population variance (``np.var``'s, ddof 0), summed the same way
around that mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence, cast

import numpy as np

from reportgen.distributed import World, all_gather_objects

FIT_BLOCK_ROWS = 128
"""File rows per block of the fixed summation order; every worker's first row is a multiple of it."""

_MANTISSA_BITS = 53
_HALF_BITS = 26
_EXACT_CHUNK = 1 << 25
"""Values per ``np.bincount`` pass: each bin sums values below 2**27 in magnitude, exactly while under 2**53."""


@dataclass(frozen=True)
class ExactSum:
    """The exact sum of some float64 values: ``numerator * 2 ** exponent`` (integers, no rounding)."""

    numerator: int = 0
    exponent: int = 0

    @classmethod
    def of(cls, values: np.ndarray) -> ExactSum:
        """The exact sum of finite float64 ``values`` (any shape); vectorised, O(n).

        Each value is ``M * 2**e`` with ``M`` a 53-bit integer (``np.frexp``); ``M`` is split in two halves
        whose sums per exponent ``np.bincount`` forms exactly (each bin stays below 2**53), and the bins are
        added as Python integers.
        """
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        flat = flat[flat != 0.0]
        if not len(flat):
            return cls()
        mantissa, exponent = np.frexp(flat)
        integers = (mantissa * float(1 << _MANTISSA_BITS)).astype(np.int64)
        exponent = exponent.astype(np.int64) - _MANTISSA_BITS
        lowest = int(exponent.min())
        bins = exponent - lowest
        high = integers >> _HALF_BITS
        low = integers - (high << _HALF_BITS)
        total = 0
        for start in range(0, len(flat), _EXACT_CHUNK):
            part = slice(start, start + _EXACT_CHUNK)
            high_sums = np.bincount(bins[part], weights=high[part].astype(np.float64))
            low_sums = np.bincount(bins[part], weights=low[part].astype(np.float64))
            for shift in np.flatnonzero((high_sums != 0) | (low_sums != 0)):
                total += ((int(high_sums[shift]) << _HALF_BITS) + int(low_sums[shift])) << int(shift)
        return cls(total, lowest)

    def __add__(self, other: ExactSum) -> ExactSum:
        lowest = min(self.exponent, other.exponent)
        return ExactSum((self.numerator << (self.exponent - lowest)) + (other.numerator << (other.exponent - lowest)), lowest)

    def ratio(self, count: int) -> float:
        """The sum divided by ``count``, rounded once to the nearest float64 (``count`` > 0)."""
        scale = Fraction(2) ** self.exponent
        return float(Fraction(self.numerator) * scale / count)


def _block_sums(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per block of ``FIT_BLOCK_ROWS`` file rows, from the block holding ``rows[0]`` on.

    Each block is laid out as its 128 file rows (a row without a value, NaN or absent, is 0) and summed
    by numpy's pairwise summation, so a block's sum depends only on the block's own rows.
    """
    if not len(values):
        return np.zeros(0)
    base = int(rows[0]) - int(rows[0]) % FIT_BLOCK_ROWS
    blocks = -(-(int(rows[-1]) + 1 - base) // FIT_BLOCK_ROWS)
    dense = np.zeros(blocks * FIT_BLOCK_ROWS)
    first = int(rows[0]) - base
    if int(rows[-1]) - int(rows[0]) + 1 == len(rows):  # consecutive rows (no row dropped): a slice, not a scatter
        np.copyto(dense[first : first + len(values)], values)
    else:
        dense[rows - base] = values
    np.nan_to_num(dense, copy=False, nan=0.0)
    return dense.reshape(blocks, FIT_BLOCK_ROWS).sum(axis=1)


def _over_workers(sums: list[ExactSum], counts: list[int], world: World) -> tuple[list[ExactSum], list[int]]:
    if not world.distributed:
        return sums, counts
    parts = cast("list[tuple[list[ExactSum], list[int]]]", all_gather_objects((sums, counts), world))
    total_sums = [sum((part[0][i] for part in parts), ExactSum()) for i in range(len(sums))]
    total_counts = [sum(part[1][i] for part in parts) for i in range(len(counts))]
    return total_sums, total_counts


@dataclass(frozen=True)
class ColumnMoments:
    """Count of non-missing values, their mean and population variance (float64), over every worker's rows."""

    count: int
    mean: float
    variance: float


def column_moments(columns: Sequence[np.ndarray], rows: np.ndarray, world: World | None = None) -> list[ColumnMoments]:
    """Moments of each float64 column (NaN = missing) over the rows of every worker of ``world``.

    ``rows``: the file row (0-based, increasing) of each value, the same for every column; a worker's
    first row must start a block of ``FIT_BLOCK_ROWS`` (or it holds none). Two gathers of a few integers
    per column; no float is added in an order that depends on the world size. A column without values
    has count 0, mean 0 and variance 0. Raises ValueError when ``rows`` is not increasing from 0 on.
    """
    world = world or World.single()
    if len(rows) and (rows[0] < 0 or np.any(np.diff(rows) <= 0)):
        raise ValueError("column_moments: rows must be increasing file rows, from 0 on")
    counts = [int(np.count_nonzero(~np.isnan(column))) for column in columns]
    sums, counts = _over_workers([ExactSum.of(_block_sums(column, rows)) for column in columns], counts, world)
    means = [total.ratio(count) if count else 0.0 for total, count in zip(sums, counts)]
    squares = [ExactSum.of(_block_sums((column - mean) ** 2, rows)) for column, mean in zip(columns, means)]
    squares, _ = _over_workers(squares, [], world)
    return [ColumnMoments(count, mean, total.ratio(count) if count else 0.0)
            for count, mean, total in zip(counts, means, squares)]
