"""Rows [start, stop) of the arrays in a .npz file, without reading the rest.

A .npz file is a zip archive of .npy members. ``NpzRows`` opens it with ``numpy.load`` (so an
unreadable file fails exactly as it does there), reads each member's .npy header for its shape and
dtype, and reads only the rows asked for:

- a stored (uncompressed, ``numpy.savez``) member is read at its data offset inside the zip: the bytes
  of rows [start, stop) go straight into the result, nothing else of the member is read;
- a compressed (``numpy.savez_compressed``) member is decompressed as a stream: rows before ``start``
  are decompressed and discarded in chunks of about 8 MiB, rows [start, stop) kept, the rest never read;
- a Fortran-ordered member, or one whose dtype holds Python objects, is read whole with ``numpy.load``
  (the latter raises numpy's own error, as a whole read would) and then sliced.

Since a stored member's rows are read at their offset, bypassing ``zipfile`` (which checks a member's
CRC-32 only once it has read the member to its end), ``NpzRows.sha256_checking_stored`` hashes the
whole file in one stream and checks every stored member's CRC-32 in the same pass.

Format references: numpy.lib.format (the .npy header), and the zip format's local file header
(APPNOTE.TXT 4.3.7: 30 fixed bytes, then the file name and the extra field, then the data; the CRC-32
of 4.4.7 is over the uncompressed data, which for a stored member are the bytes in the file).
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
"""The zip local file header's 30 fixed bytes; the last two fields are the file name and extra field lengths."""
_LOCAL_SIGNATURE = b"PK\x03\x04"
_STREAM_CHUNK_BYTES = 8 << 20
_HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredSpan:
    """Where a stored member's data lie in the file: bytes [start, start + size), with the directory's CRC-32."""

    name: str
    start: int
    size: int
    crc: int


@dataclass(frozen=True)
class MemberHeader:
    """What a .npy member's header says: the array's shape, dtype and memory order."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def rows(self) -> int:
        """Length of the first axis (0 for a 0-d array, which has no rows)."""
        return int(self.shape[0]) if self.shape else 0


def _read_header(handle: IO[bytes]) -> MemberHeader:
    """Read the magic string and header of a .npy stream; the stream is left at the first data byte."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    return MemberHeader(tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran_order))


class NpzRows:
    """An open .npz file whose arrays can be read by row range. Use as a context manager.

    Raises what ``numpy.load(path, allow_pickle=False)`` raises for a file that is not an .npz archive
    (ValueError, OSError, zipfile.BadZipFile), and numpy's ValueError for a member holding objects.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._archive: Any = np.load(self.path, allow_pickle=False)
        if not hasattr(self._archive, "zip"):  # a plain .npy file: numpy.load returned the array itself
            raise ValueError("the file is a single .npy array, not an .npz archive of X_<split> and y_<split>")
        self._zip: zipfile.ZipFile = self._archive.zip
        self._headers: dict[str, MemberHeader] = {}

    def __enter__(self) -> "NpzRows":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive."""
        self._archive.close()

    @property
    def keys(self) -> list[str]:
        """Array names in the archive (member names without '.npy')."""
        return list(self._archive.files)

    def _member(self, key: str) -> str:
        return f"{key}.npy" if f"{key}.npy" in self._zip.namelist() else key

    def header(self, key: str) -> MemberHeader:
        """Shape, dtype and order of array ``key``, read from its header only."""
        if key not in self._headers:
            with self._zip.open(self._member(key)) as handle:
                self._headers[key] = _read_header(handle)
        return self._headers[key]

    @property
    def members(self) -> list[str]:
        """Member file names in the zip directory's order (e.g. 'X_train.npy')."""
        return self._zip.namelist()

    def sha256_checking_stored(self) -> tuple[str, str | None]:
        """(SHA-256 hex digest of the whole file, name of the first stored member whose CRC-32 is wrong, or None).

        One streamed pass over the file (1 MiB chunks, nothing held): each chunk feeds the digest and the
        CRC-32 of the stored member data it overlaps, compared with the zip directory's CRC once the
        member's last byte is read. A member that the file ends inside is not judged here (reading its
        rows reports the truncation). Compressed members are checked by ``zipfile`` when read to their end.
        """
        digest = hashlib.sha256()
        with self.path.open("rb", buffering=0) as raw:
            spans = sorted((span for span in (self._stored_span(raw, info) for info in self._zip.infolist())
                            if span is not None), key=lambda span: span.start)
            raw.seek(0)
            crcs = [0] * len(spans)
            bad: str | None = None
            first_open = 0  # spans before this one are wholly read
            position = 0
            for chunk in iter(lambda: raw.read(_HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
                end = position + len(chunk)
                view = memoryview(chunk)
                index = first_open
                while index < len(spans) and spans[index].start < end:
                    span = spans[index]
                    span_end = span.start + span.size
                    low, high = max(span.start, position), min(span_end, end)
                    if low < high:
                        crcs[index] = zlib.crc32(view[low - position : high - position], crcs[index])
                    if span_end <= end:
                        if bad is None and crcs[index] != span.crc:
                            bad = span.name
                        if index == first_open:
                            first_open += 1
                    index += 1
                position = end
        return digest.hexdigest(), bad

    def _stored_span(self, raw: Any, info: zipfile.ZipInfo) -> StoredSpan | None:
        """The data span of a stored member (None for a compressed one)."""
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        return StoredSpan(info.filename, _data_offset(raw, info), info.compress_size, info.CRC)

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """A new array holding rows [start, stop) of array ``key`` (its first axis), read without the others."""
        header = self.header(key)
        start, stop = max(0, start), max(start, min(stop, header.rows))
        if header.ndim == 0 or header.fortran_order or header.dtype.hasobject:
            return np.array(self._archive[key][start:stop])  # numpy's own reading (and errors)
        info = self._zip.getinfo(self._member(key))
        row_shape = header.shape[1:]
        row_items = int(np.prod(row_shape, dtype=np.int64))
        row_bytes = row_items * header.dtype.itemsize
        if info.compress_type == zipfile.ZIP_STORED:
            return self._stored_rows(info, header, start, stop)
        out = np.empty((stop - start, *row_shape), dtype=header.dtype)
        if row_bytes == 0 or stop == start:
            return out
        with self._zip.open(info) as handle:
            _read_header(handle)
            _skip(handle, start * row_bytes)
            _read_exactly(handle, out, info.filename)
        return out

    def _stored_rows(self, info: zipfile.ZipInfo, header: MemberHeader, start: int, stop: int) -> np.ndarray:
        """Rows of a stored member, read straight into the result from their byte offset inside the zip file.

        A positioned read rather than a memory map: the bytes read pass through the page cache, which does
        not count towards the process's resident memory, whereas mapped pages touched while copying do
        (they would double a worker's peak RSS while its shard is read)."""
        out = np.empty((stop - start, *header.shape[1:]), dtype=header.dtype)
        if out.nbytes == 0:
            return out
        row_bytes = out.nbytes // len(out)
        with self.path.open("rb", buffering=0) as raw:
            raw.seek(_data_offset(raw, info))
            _read_header(raw)
            raw.seek(raw.tell() + start * row_bytes)
            _read_exactly(raw, out, info.filename)
        return out


def _data_offset(raw: Any, info: zipfile.ZipInfo) -> int:
    """Byte offset in the file of a member's data, after its local file header (which ``raw`` is read for)."""
    raw.seek(info.header_offset)
    fixed = raw.read(_LOCAL_HEADER.size)
    if len(fixed) != _LOCAL_HEADER.size or fixed[:4] != _LOCAL_SIGNATURE:
        raise ValueError(f"{info.filename}: no zip local file header at byte {info.header_offset}")
    name_length, extra_length = _LOCAL_HEADER.unpack(fixed)[-2:]
    return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)


def _read_exactly(handle: Any, out: np.ndarray, member: str) -> None:
    """Fill ``out`` (C-contiguous) from ``handle`` in chunks of at most _STREAM_CHUNK_BYTES."""
    target = out.reshape(-1).view(np.uint8).data  # a writable memoryview of out
    filled = 0
    while filled < len(target):
        got = handle.readinto(target[filled : filled + _STREAM_CHUNK_BYTES])
        if not got:
            raise ValueError(f"{member}: the member ends after {filled} of {len(target)} bytes")
        filled += got


def _skip(handle: IO[bytes], count: int) -> None:
    """Read and discard ``count`` bytes of a decompressing stream, in bounded chunks."""
    while count > 0:
        got = len(handle.read(min(count, _STREAM_CHUNK_BYTES)))
        if not got:
            raise ValueError("the member ends before the rows asked for")
        count -= got
