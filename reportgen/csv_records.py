"""Where the records of a CSV file start, found by each worker over its own byte range.

A worker of a sharded read parses only the records of its rows (reportgen.table_shards). To know which
bytes those are, the file's data bytes (after the header) are cut in equal byte ranges, one per worker;
each worker scans its range once, and the workers then agree on the record count of every range and on
the byte offset of any record.

A record starts after a newline that is not inside a quoted field: a newline is inside one when an odd
number of quote characters precede it in the file. A worker does not know the parity at the start of
its range before the others have counted their quotes, so it counts for both parities and keeps the
count that turns out true.

The scan vouches for a file only where it reads records exactly as pandas' C parser does (quote ``"``,
doubled to escape, no escape character, blank lines skipped). Anything else makes ``RangeScan.unsure``
true and the caller reads the whole file instead, where pandas itself decides:

- a quote that cannot open or close a quoted field where it stands (an opening quote not right after a
  separator, a newline or another quote; a closing one not right before a separator, a line end, another
  quote or the end of the file): pandas reads such a quote as a plain character, the parity count would not;
- a carriage return not followed by a newline (pandas ends a record there too);
- a record that starts with a space or a tab (a line of blanks may be skipped as empty);
- an odd number of quotes in the file (a quoted field that never ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUOTE = ord('"')
NEWLINE = ord("\n")
RETURN = ord("\r")
BLANKS = (ord(" "), ord("\t"))
PIECE_BYTES = 16 << 20
"""Bytes scanned at a time (with two bytes of context on each side): the scan's memory bound."""
HEADER_SCAN_BYTES = 1 << 20
"""The header must end within this many bytes, or the file is read whole."""


@dataclass(frozen=True)
class RangeScan:
    """One worker's byte range ``[start, stop)`` of the data bytes, scanned for both parities at its start.

    Index 0 of each pair assumes an even number of quotes before ``start``, index 1 an odd number.
    """

    start: int
    stop: int
    quotes: int
    """Quote characters in the range."""
    records: tuple[int, int]
    """Records (blank lines excluded) that start after a newline of the range."""
    unsure: tuple[bool, bool]
    """The range holds something the scan cannot read as pandas does (module docstring)."""


def header_end(path: Path) -> int | None:
    """Byte offset of the newline that ends the header record, or None when the scan cannot vouch for it
    (no newline outside quotes in the first ``HEADER_SCAN_BYTES``, or a file that starts with a blank line)."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_SCAN_BYTES)
    if not head or head[0] in (NEWLINE, RETURN) or head.startswith(b"\xef\xbb\xbf\n"):
        return None
    quotes = 0
    position = 0
    while True:
        newline = head.find(b"\n", position)
        if newline < 0:
            return None
        quotes += head.count(b'"', position, newline)
        if quotes % 2 == 0:
            return newline
        position = newline + 1


def _read(handle, start: int, stop: int, size: int) -> tuple[np.ndarray, int]:
    """Bytes [start - 2, stop + 2) clipped to the file, and the offset of ``start`` in them."""
    lo, hi = max(0, start - 2), min(size, stop + 2)
    handle.seek(lo)
    return np.frombuffer(handle.read(hi - lo), dtype=np.uint8), start - lo


def _byte_after(buffer: np.ndarray, positions: np.ndarray, step: int) -> np.ndarray:
    """The byte ``step`` after each position of ``buffer``, -1 past its end."""
    at = positions + step
    inside = (at >= 0) & (at < len(buffer))
    found = np.full(len(positions), -1, dtype=np.int16)
    found[inside] = buffer[at[inside]]
    return found


@dataclass
class _Piece:
    """One piece of a range: record starts (file offsets) and doubts under each parity at the range's start."""

    starts: tuple[np.ndarray, np.ndarray]
    unsure: tuple[bool, bool]
    quotes: int


def _scan_piece(buffer: np.ndarray, lo: int, hi: int, base: int, size: int, sep: int, quotes_before: int) -> _Piece:
    """Scan ``buffer[lo:hi]`` (its first byte at file offset ``base + lo``), ``quotes_before`` quotes
    earlier in the range."""
    core = buffer[lo:hi]
    quotes = np.flatnonzero(core == QUOTE) + lo
    newlines = np.flatnonzero(core == NEWLINE) + lo
    returns = np.flatnonzero(core == RETURN) + lo
    lone_return = bool(np.any(_byte_after(buffer, returns, 1) != NEWLINE))
    # parity (within the range) of the quotes before each newline and of each quote's own rank
    before_newline = (quotes_before + np.searchsorted(quotes, newlines)) % 2
    quote_rank = (quotes_before + np.arange(len(quotes))) % 2
    previous = _byte_after(buffer, quotes, -1)
    following = _byte_after(buffer, quotes, 1)
    can_open = np.isin(previous, (sep, NEWLINE, QUOTE))
    can_close = np.isin(following, (sep, RETURN, NEWLINE, QUOTE)) | (quotes + 1 + base >= size)
    starts, unsure = [], []
    for parity in (0, 1):
        opening = (quote_rank + parity) % 2 == 0
        misplaced = bool(np.any(opening & ~can_open) or np.any(~opening & ~can_close))
        record_starts = newlines[(before_newline + parity) % 2 == 0] + 1
        record_starts = record_starts[record_starts + base < size]
        first = _byte_after(buffer, record_starts, 0)
        second = _byte_after(buffer, record_starts, 1)
        blank = (first == NEWLINE) | ((first == RETURN) & (second == NEWLINE))
        starts.append(record_starts[~blank] + base)
        unsure.append(misplaced or lone_return or bool(np.any(np.isin(first, BLANKS))))
    return _Piece((starts[0], starts[1]), (unsure[0], unsure[1]), len(quotes))


def _pieces(path: Path, start: int, stop: int, size: int, sep: int):
    """Yield the ``_Piece`` s of ``[start, stop)`` in order."""
    quotes_before = 0
    with path.open("rb") as handle:
        for piece_start in range(start, stop, PIECE_BYTES):
            piece_stop = min(stop, piece_start + PIECE_BYTES)
            buffer, lo = _read(handle, piece_start, piece_stop, size)
            piece = _scan_piece(buffer, lo, lo + piece_stop - piece_start, piece_start - lo, size, sep, quotes_before)
            quotes_before += piece.quotes
            yield piece


def scan_range(path: Path, start: int, stop: int, size: int, sep: int) -> RangeScan:
    """Scan the bytes ``[start, stop)`` of a file of ``size`` bytes whose separator is the byte ``sep``.

    Memory: one piece of ``PIECE_BYTES`` and its positions at a time.
    """
    records, unsure, quotes = [0, 0], [False, False], 0
    for piece in _pieces(path, start, stop, size, sep):
        for parity in (0, 1):
            records[parity] += len(piece.starts[parity])
            unsure[parity] = unsure[parity] or piece.unsure[parity]
        quotes += piece.quotes
    return RangeScan(start, stop, quotes, (records[0], records[1]), (unsure[0], unsure[1]))


def record_offset(path: Path, scan: RangeScan, parity: int, index: int, size: int, sep: int) -> int:
    """File offset of the ``index``-th record (0-based) that starts in ``scan``'s range, whose start parity
    is ``parity`` (0 even, 1 odd). Raises IndexError when the range holds fewer records."""
    seen = 0
    for piece in _pieces(path, scan.start, scan.stop, size, sep):
        starts = piece.starts[parity]
        if index < seen + len(starts):
            return int(starts[index - seen])
        seen += len(starts)
    raise IndexError(f"record {index} of a range holding {seen}")
