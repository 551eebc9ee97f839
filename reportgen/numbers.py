"""How every number a reader sees is written: check messages, evidence, page 1, summary.md, console, JUnit.

One set of rules, so that a page never mixes ``4.76e-05``, ``0.000``, ``1.1e-01`` and ``0.07905``.
It imports nothing but the standard library, so checks, renderers and the CLI can all use it.

The rules (``tests/test_numbers.py`` holds them as examples):

- **Measured values** (metrics, proportions, losses, gaps, effect sizes, ratios: ``number``): three
  decimals below 1,000 (``0.973``, ``0.079``, ``-0.016``, ``29.043``); from 1,000 up, thousands
  separators and one decimal unless whole (``34,539.6``, ``12,000``); rounding carries into the
  separator (``999.9996`` is ``1,000``). Exactly zero is ``0``, never ``-0``. A magnitude below 0.001,
  which three decimals would show as ``0.000``, or from 10¹⁵ up, which would be a row of digits, is
  written with two significant digits as a power of ten: ``4.8×10⁻⁵``, ``9.3×10²⁹``. That is the one
  scientific form; ``e-05`` is never shown.
- **Negative numbers** carry a true minus sign (U+2212) in every form: ``−0.017``, ``−2.0×10⁻⁴``,
  ``−1.0×10⁻³–−0.5``.
- **Counts** (``count``): whole numbers with thousands separators (``1,500``); from 10¹⁵ the power of ten.
- **p-values** (``p_value``): three decimals, and ``< 0.001`` below that (``p_clause`` gives
  ``p = 0.706`` / ``p < 0.001``).
- **Percentages** of a share in [0, 1] (``percent``): one decimal (``3.3%``), exactly ``0%`` and
  ``100%``; below 1% two significant digits, so that rounding never changes a small share's magnitude
  (1 of 1,500 is ``0.067%``, not ``0.1%``; ``0.25%``, ``0.5%``); a share that is not zero but below
  0.001% is ``< 0.001%``; one short of 1 that would round to ``100.0%`` is ``> 99.9%``.
- **Ratios** ("n to 1", ``ratio``): one decimal, ``29.0 to 1``; thousands separators from 1,000.
- **Settings** (thresholds, limits, decision thresholds, noise levels: ``setting``): as the config
  writes them, the shortest decimal that gives the value back (``0.5``, ``3``, ``0.0125``), with the
  power-of-ten form below 0.001 (``1×10⁻⁴``), so "below the 0.5 minimum" reads like the YAML.
- **Differences** to an earlier value (``signed``): ``number`` with an explicit sign, ``+0.012`` / ``−0.034``
  (a true minus sign).
- **Intervals** (``interval``): ``0.224–0.478`` (en dash).
- **Durations** (``duration``): seconds with two decimals, ``5.54 s``; ``< 0.01 s`` rather than ``0.00 s``.
- Missing or non-finite values are an em dash ``—``; booleans are ``yes`` / ``no``.
"""

from __future__ import annotations

import math
import numbers as abc_numbers
import re
from typing import Any

DECIMALS = 3
"""Decimals of every measured value below 1,000."""
SMALLEST_PLAIN = 10.0 ** -DECIMALS
"""Magnitudes below this would print as 0.000: they get the power-of-ten form."""
LARGEST_PLAIN = 1e15
"""Magnitudes from this up would print as a row of 16 or more digits: they get the power-of-ten form."""
MINUS = "\u2212"
"""The minus sign of every negative number a reader sees (not the hyphen-minus)."""
SMALLEST_PERCENT = 0.001
"""Percentages of a nonzero share below this are written ``< 0.001%`` (two significant digits would need
a fourth decimal)."""
P_FLOOR = 0.001
"""p-values below this are written ``< 0.001``."""
MISSING = "—"

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

ALLOWED_SCIENTIFIC = re.compile(r"[-\u2212]?\d(?:\.\d+)?×10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
"""The one scientific form these functions write, e.g. ``4.8×10⁻⁵`` (for tests and linters)."""
RAW_SCIENTIFIC = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?[eE][-+]?\d+\b")
"""Python's scientific notation (``4.76e-05``, ``1.1e-01``, ``1e-4``): never shown to a reader."""


def _is_number(value: Any) -> bool:
    return isinstance(value, abc_numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """NumPy scalars as Python int or float; anything else unchanged."""
    if isinstance(value, (bool, int, float)) or not _is_number(value):
        return value
    return int(value) if isinstance(value, abc_numbers.Integral) else float(value)


def _minus(text: str) -> str:
    """``text`` with a leading hyphen-minus written as the true minus sign."""
    return MINUS + text[1:] if text.startswith("-") else text


def power_of_ten(value: float, significant: int = 2) -> str:
    """``value`` as ``m×10ⁿ`` with ``significant`` digits in the mantissa (``4.8×10⁻⁵``, ``−9.3×10²⁹``)."""
    mantissa, exponent = f"{value:.{significant - 1}e}".split("e")
    return _minus(f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}")


def _as_float(value: int) -> float | None:
    """An int as a float; None when it is beyond the float range (more than about 10³⁰⁸)."""
    try:
        return float(value)
    except OverflowError:
        return None


def number(value: Any, digits: int = DECIMALS) -> str:
    """A measured value by the module's rules; ``digits`` decimals below 1,000 (3 unless a layout needs fewer).

    None and non-finite floats give an em dash, bools ``yes``/``no``, ints ``count``, and any other
    object its ``str``.
    """
    value = _plain(value)
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= LARGEST_PLAIN:
        return power_of_ten(value)
    if magnitude >= 1000:
        return _minus(f"{round(value):,}" if value.is_integer() else f"{value:,.1f}")
    if float(f"{magnitude:.{digits}f}") >= 1000:  # rounding carries into the thousands: 999.9996 is 1,000
        return _minus(f"{round(value):,}")
    if magnitude < 10.0 ** -digits and float(f"{magnitude:.1e}") < 10.0 ** -digits:
        return power_of_ten(value)
    return _minus(f"{value:.{digits}f}")


def count(value: Any) -> str:
    """A whole number with thousands separators (``1,500``); an em dash when missing."""
    value = _plain(value)
    if not _is_number(value):
        return MISSING
    as_float = _as_float(value) if isinstance(value, int) else value
    if as_float is None or not math.isfinite(as_float):
        return MISSING
    if abs(as_float) >= LARGEST_PLAIN:
        return power_of_ten(as_float)
    return _minus(f"{int(round(value)):,}")


def p_value(value: Any) -> str:
    """A p-value: ``0.706``, ``0.045``, ``< 0.001``; an em dash when missing."""
    if not _is_number(value) or not math.isfinite(value):
        return MISSING
    return f"< {P_FLOOR:g}" if value < P_FLOOR else f"{value:.{DECIMALS}f}"


def p_clause(value: Any, name: str = "p") -> str:
    """``p = 0.706`` or ``p < 0.001`` (``name`` e.g. ``adjusted p``)."""
    text = p_value(value)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def percent(share: Any) -> str:
    """A share in [0, 1] as a percentage: one decimal from 1%, two significant digits below (``0.067%``);
    ``< 0.001%`` and ``> 99.9%`` at the ends."""
    if not _is_number(share) or not math.isfinite(share):
        return MISSING
    if share == 0:
        return "0%"
    if share == 1:
        return "100%"
    if abs(share) * 100 >= LARGEST_PLAIN:
        return power_of_ten(share * 100) + "%"
    if abs(share) * 100 < SMALLEST_PERCENT:
        return f"< {SMALLEST_PERCENT:g}%" if share > 0 else f"> {MINUS}{SMALLEST_PERCENT:g}%"
    small = f"{share * 100:.2g}"
    if abs(float(small)) < 1:  # one decimal would leave at most one significant digit (0.067% as 0.1%)
        return _minus(small + "%")
    text = f"{share:.1%}"
    if text == "100.0%":
        return "> 99.9%" if share < 1 else "< 100.1%"
    return _minus(text)


def ratio(value: Any) -> str:
    """An "n to 1" ratio (class imbalance: the largest class over the smallest) with one decimal:
    ``29.0 to 1``, ``1,234.5 to 1``; an em dash when missing or non-finite."""
    if not _is_number(value) or not math.isfinite(value):
        return MISSING
    if abs(value) >= LARGEST_PLAIN:
        return power_of_ten(value) + " to 1"
    return _minus(f"{value:,.1f}") + " to 1"


MOST_DECIMALS_BESIDE = 12
"""The most decimals ``number_beside`` shows: a value closer to its threshold than that counts as at it
(reportgen.checks.base.THRESHOLD_TOLERANCE is 1e-12)."""


def number_beside(value: Any, threshold: Any, digits: int = DECIMALS) -> str:
    """A measured value shown next to its threshold: ``number(value, digits)``, with more decimals (up to
    MOST_DECIMALS_BESIDE) while, rounded to that many decimals, the value and the threshold (as ``setting`` shows
    it) read the same, or the value's rounding crosses the threshold: 0.7640449 against a 0.764045 minimum reads
    '0.7640449', not '0.764'. A value within 10^-MOST_DECIMALS_BESIDE of the threshold counts as at it.

    Values that are not finite floats, or that ``number`` writes without decimals (1,000 and above, or as a
    power of ten), are shown as ``number`` shows them.
    """
    value, threshold = _plain(value), _plain(threshold)
    if not (isinstance(value, float) and _is_number(threshold) and not isinstance(threshold, bool)):
        return number(value, digits)
    value = float(value)  # a numpy float compares into numpy booleans
    shown_threshold = float(f"{float(threshold):.6g}")  # what ``setting`` shows (6 significant digits)
    if not (math.isfinite(shown_threshold) and math.isfinite(value)):
        return number(value, digits)
    if abs(value - shown_threshold) <= 10.0 ** -MOST_DECIMALS_BESIDE * max(1.0, abs(shown_threshold)):
        return number(value, digits)  # at the threshold

    def side(x: float) -> int:
        return int(x > shown_threshold) - int(x < shown_threshold)

    for decimals in range(digits, MOST_DECIMALS_BESIDE + 1):
        shown = round(value, decimals)
        if shown != round(shown_threshold, decimals) and side(shown) == side(value):
            return number(value, decimals)
    return number(value, MOST_DECIMALS_BESIDE)


def setting(value: Any, significant: int = 6) -> str:
    """A configured value (threshold, limit, decision threshold) as written: ``0.5``, ``3``, ``0.0125``, ``1×10⁻⁴``.

    The shortest decimal that reads back as the value (up to ``significant`` digits), without
    trailing zeros or exponent; below 0.001 the power-of-ten form with as few digits as it needs.
    Also for values named in labels, such as the bin edges of a slice (``age in [25, 37.5)``).
    """
    value = _plain(value)
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not _is_number(value):
        return str(value)
    if isinstance(value, int):
        return count(value)
    if not math.isfinite(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) < SMALLEST_PLAIN or abs(value) >= LARGEST_PLAIN:
        value = float(f"{value:.{significant - 1}e}")
        digits = next(d for d in range(1, significant + 1) if float(f"{value:.{d - 1}e}") == value)
        return power_of_ten(value, digits)
    text = f"{value:.{significant}g}"
    if "e" in text:  # 1e+06 and beyond: a large setting is a whole number in practice
        return _minus(f"{value:,.0f}")
    if abs(float(text)) >= 1000:  # also when rounding carries into the thousands (999.9999996)
        whole, _, fraction = text.partition(".")
        return _minus(f"{int(whole):,}" + (f".{fraction}" if fraction else ""))
    return _minus(text)


def duration(seconds: Any) -> str:
    """A duration in seconds with two decimals (``5.54 s``, ``1,234.50 s``); below 0.005 s ``< 0.01 s``."""
    if not _is_number(seconds) or not math.isfinite(seconds):
        return MISSING
    if abs(seconds) >= LARGEST_PLAIN:
        return f"{power_of_ten(seconds)} s"
    return "< 0.01 s" if abs(seconds) < 0.005 else _minus(f"{seconds:,.2f} s")


def signed(value: Any, digits: int = DECIMALS) -> str:
    """A difference with its sign: ``+0.012``, ``−0.034`` (U+2212), ``0``."""
    if not _is_number(value) or not math.isfinite(value):
        return MISSING
    text = number(float(value), digits)
    return "+" + text if value > 0 else text


def interval(low: Any, high: Any, digits: int = DECIMALS) -> str:
    """A confidence interval ``0.224–0.478``; an em dash when either end is missing."""
    if not (_is_number(low) and _is_number(high)):
        return MISSING
    return f"{number(float(low), digits)}–{number(float(high), digits)}"
