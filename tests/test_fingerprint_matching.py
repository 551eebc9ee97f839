"""The fast paths of reportgen/checks/fingerprints.py against plain oracles: matching by sorts and hash
tables against a Python dictionary, scaling by powers of two against ``np.ldexp`` bit for bit, and the
normalised hash against the grid rule written out with ``np.ldexp`` and ``np.abs(...).max``."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine

from reportgen.checks import fingerprints


def _hashes(rng: np.random.Generator, n: int, alphabet: int) -> np.ndarray:
    """uint64 hashes drawn from ``alphabet`` spread-out values (many repeats), some with the top bit set."""
    values = rng.integers(0, 2**64 - 1, size=alphabet, dtype=np.uint64, endpoint=True)
    return values[rng.integers(0, alphabet, size=n)]


@pytest.mark.parametrize("alphabet", [1, 7, 500, 10**9])
def test_first_match_is_the_first_occurrence_a_dictionary_finds(alphabet: int):
    rng = np.random.default_rng(alphabet % 1000)
    reference, query = _hashes(rng, 3_000, min(alphabet, 4_000)), _hashes(rng, 2_000, min(alphabet, 4_000))
    if alphabet == 10**9:  # almost no repeats: plant a few shared values
        query[[5, 50, 500]] = reference[[2_999, 0, 77]]
    first: dict[int, int] = {}
    for i, h in enumerate(reference.tolist()):
        first.setdefault(h, i)
    expected = [first.get(h, -1) for h in query.tolist()]
    assert fingerprints.first_match(reference, query).tolist() == expected
    assert fingerprints.first_match(reference[:0], query).tolist() == [-1] * query.size
    assert fingerprints.first_match(reference, query[:0]).tolist() == []


def test_repeated_common_and_member_are_the_set_answers():
    rng = np.random.default_rng(3)
    a, b = _hashes(rng, 1_000, 300), _hashes(rng, 800, 5_000)
    counts: dict[int, int] = {}
    for h in a.tolist():
        counts[h] = counts.get(h, 0) + 1
    assert fingerprints.repeated(a).tolist() == sorted(h for h, c in counts.items() if c > 1)
    shared = fingerprints.common(a, b)
    assert shared.tolist() == sorted(set(a.tolist()) & set(b.tolist()))
    assert fingerprints.member(b, shared).tolist() == [h in set(a.tolist()) for h in b.tolist()]
    assert fingerprints.distinct_sorted(a).tolist() == sorted(set(a.tolist()))
    assert fingerprints.repeated(a[:0]).size == fingerprints.common(a[:0], b).size == 0


def test_scaling_by_a_power_of_two_is_ldexp_bit_for_bit():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 9)) * 10.0 ** rng.integers(-320, 300, size=(400, 9))
    x[0] = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1.0, -1.0, 3.0]
    for low, high in ((-999, 999), (-1100, -900), (900, 1100)):  # in range: a product; outside: ldexp itself
        shift = rng.integers(low, high, size=(400, 1))
        with np.errstate(over="ignore", under="ignore"):
            expected = np.ldexp(x, shift)
            got = fingerprints._times_power_of_two(x, shift)
            in_place = fingerprints._times_power_of_two(x.copy(), shift, in_place=True)
        np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))
        np.testing.assert_array_equal(in_place.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("width", [1, 2, 3, 7, 8, 13, 32, 33])
def test_folded_row_maxima_equal_numpy(width: int):
    x = np.random.default_rng(width).standard_normal((300, width)).astype(np.float32)
    x[0] = -0.0
    np.testing.assert_array_equal(fingerprints._row_abs_max(x), np.abs(x).max(axis=1).astype(np.float64))


def test_normalised_hashes_follow_the_grid_rule_written_out():
    """The rule of the module docstring, with ldexp and abs().max, on wine data with planted edge values."""
    x = load_wine().data.astype(np.float32)
    x[3, 2], x[4, 0], x[5] = np.nan, -np.inf, -0.0
    x[6, :4] = np.float32(1e-40)  # subnormal float32
    x64 = x.astype(np.float64)
    finite = np.isfinite(x64)
    safe = np.where(finite, x64, 0.0)
    _, exponent = np.frexp(np.abs(safe).max(axis=1))
    shift = (fingerprints.GRID_BITS - exponent)[:, None]
    for shifted, seed, got in ((False, 23, 1), (True, 37, 2)):
        scaled = np.ldexp(safe, shift)
        codes = np.floor(scaled) if shifted else np.floor(scaled + 0.5)
        rounded = np.ldexp(codes, -shift) + 0.0
        rounded = np.where(finite, rounded, np.where(np.isnan(x64), np.nan, x64))
        expected = fingerprints.hash_words(rounded.view(np.uint64), seed=seed)
        np.testing.assert_array_equal(fingerprints.fingerprint_block(x)[got], expected)


def _splitmix_python(z: int) -> int:
    mask = 2**64 - 1
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & mask
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_hash_words_is_the_splitmix_sum_computed_in_python_integers():
    words = np.random.default_rng(9).integers(0, 2**64 - 1, size=(5, 6), dtype=np.uint64, endpoint=True)
    keys, mult = fingerprints._position_keys(6, 23)
    mask = 2**64 - 1
    expected = []
    for row in words.tolist():
        total = sum(_splitmix_python(w ^ int(k)) * int(m) for w, k, m in zip(row, keys.tolist(), mult.tolist())) & mask
        expected.append(_splitmix_python(total ^ ((6 * 0x9E3779B97F4A7C15) & mask)))
    assert fingerprints.hash_words(words, seed=23).tolist() == expected
