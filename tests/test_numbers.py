"""The report's one number rule (reportgen.numbers), by example, and the checks that follow it."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

from reportgen import numbers as N
from reportgen.render import fmt

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value, text", [
    (0.9726666, "0.973"), (0.07905021, "0.079"), (0.11064, "0.111"), (-0.016659, "−0.017"), (29.042918, "29.043"),
    (0.0, "0"), (-0.0, "0"), (4.761904761906022e-05, "4.8×10⁻⁵"), (5.96e-08, "6.0×10⁻⁸"), (-2e-4, "−2.0×10⁻⁴"),
    (0.001, "0.001"), (34539.564, "34,539.6"), (12000.0, "12,000"), (1500, "1,500"), (np.int64(7000), "7,000"),
    (np.float32(0.5), "0.500"), (None, "—"), (math.nan, "—"), (math.inf, "—"), (True, "yes"), (False, "no"),
])
def test_measured_values(value, text):
    assert N.number(value) == text
    assert fmt.num(value) == text  # the renderers' formatter is the same rule


@pytest.mark.parametrize("value, threshold, text", [
    (0.7640449438, 0.7640449438222, "0.7640449"),  # 0.764 would read as the 0.764045 minimum rounded
    (0.76451, 0.76452, "0.76451"),  # 0.765 would read as above a threshold the value is below
    (0.9004, 0.9, "0.9004"), (0.8995, 0.9, "0.899"),
    (0.93, 0.9, "0.930"), (0.1, 1e-5, "0.100"), (0.5, 0.6, "0.500"),  # apart at 3 decimals: as ``number``
    (0.5, 0.5, "0.500"), (0.49999999999999, 0.5, "0.500"),  # at the threshold (within 10⁻¹²)
    (3, 4, "3"), (1234.5, 1234.6, "1,234.5"), (math.nan, 1.0, "—"), (0.5, None, "0.500"),
    (np.float64(0.76451), np.float64(0.76452), "0.76451"), (np.float32(0.25), 0.2, "0.250"),  # numpy scalars
])
def test_a_value_beside_its_threshold_shows_the_decimals_that_tell_them_apart(value, threshold, text):
    assert N.number_beside(value, threshold) == text
    shown, limit = float(text.replace(",", "")) if text != "—" else math.nan, float(f"{threshold or 0:.6g}")
    if isinstance(value, float) and math.isfinite(value) and abs(value - limit) > 1e-12:
        assert shown != limit and (shown > limit) == (value > limit)  # never reads as equal or on the other side


@pytest.mark.parametrize("value, text", [
    (0.5, "0.5"), (3.0, "3"), (0, "0"), (0.0125, "0.0125"), (1e-4, "1×10⁻⁴"), (2.5e-4, "2.5×10⁻⁴"), (1e-5, "1×10⁻⁵"),
    (0.35000000000000003, "0.35"), (5000.0, "5,000"), (10, "10"), (None, "—"),
])
def test_settings_read_as_the_config_writes_them(value, text):
    assert N.setting(value) == text


@pytest.mark.parametrize("value, text", [
    (0.7063437955380509, "p = 0.706"), (0.0449, "p = 0.045"), (0.001, "p = 0.001"), (0.00099, "p < 0.001"), (1e-30, "p < 0.001"),
])
def test_p_values(value, text):
    assert N.p_clause(value) == text


@pytest.mark.parametrize("share, text", [
    (0.03328, "3.3%"), (0.0, "0%"), (1.0, "100%"), (0.5, "50.0%"), (0.0004, "0.04%"), (0.99996, "> 99.9%"),
    # below 1%, two significant digits: rounding never changes a small share's magnitude (1 of 1,500)
    (1 / 1500, "0.067%"), (0.0025, "0.25%"), (0.005, "0.5%"), (0.0099, "0.99%"), (0.00999, "1.0%"), (0.01, "1.0%"),
    (1e-5, "0.001%"), (1e-6, "< 0.001%"),
])
def test_percentages(share, text):
    assert N.percent(share) == text
    assert fmt.pct(share) == text


@pytest.mark.parametrize("value, text", [
    (9.284459423818941e+29, "9.3×10²⁹"), (-3.7e57, "−3.7×10⁵⁷"), (1e300, "1.0×10³⁰⁰"), (1e15, "1.0×10¹⁵"),
    (999_999_999_999_999.0, "999,999,999,999,999"), (10**30, "1.0×10³⁰"), (10**400, "—"),
    (999.9996, "1,000"), (-999.9996, "−1,000"), (999.96, "999.960"), (1000.04, "1,000.0"),
    (0.00099996, "0.001"), (-0.00099996, "−0.001"), (-1e-300, "−1.0×10⁻³⁰⁰"), (-0.0, "0"), (-1234.5, "−1,234.5"),
])
def test_extreme_magnitudes_rounding_and_signs(value, text):
    """From 10¹⁵ up the power of ten, as below 0.001; rounding carries into the separator; a true minus."""
    assert N.number(value) == text
    assert "-" not in N.number(value)


@pytest.mark.parametrize("value, text", [
    (29.043478, "29.0 to 1"), (1.0, "1.0 to 1"), (1234.56, "1,234.6 to 1"), (float("inf"), "—"), (None, "—"),
])
def test_ratios_have_one_decimal(value, text):
    assert N.ratio(value) == text


def test_a_true_minus_in_every_form_and_never_minus_zero():
    assert N.interval(-1e-300, -1e-300) == "−1.0×10⁻³⁰⁰–−1.0×10⁻³⁰⁰"
    assert N.interval(-0.5, 0.25) == "−0.500–0.250"
    assert N.signed(-1e30) == "−1.0×10³⁰" and N.signed(2e20) == "+2.0×10²⁰"
    assert N.percent(-0.0) == "0%" and N.percent(-1e-300) == "> −0.001%" and N.percent(-0.25) == "−25.0%"
    assert N.percent(1e30) == "1.0×10³²%"
    assert N.setting(-0.5) == "−0.5" and N.setting(1e300) == "1×10³⁰⁰" and N.setting(999.9999996) == "1,000"
    assert N.count(-1500) == "−1,500" and N.count(1e20) == "1.0×10²⁰" and N.count(-0.2) == "0"
    assert N.duration(-2.5) == "−2.50 s" and N.duration(1e20) == "1.0×10²⁰ s"
    for text in (N.number(-0.0), N.signed(-0.0), N.percent(-0.0), N.count(-0.0), N.setting(-0.0)):
        assert text in ("0", "0%"), text


def test_differences_intervals_and_counts():
    assert N.signed(0.0104) == "+0.010" and N.signed(-0.034) == "−0.034" and N.signed(0.0) == "0"
    assert N.interval(0.22412, 0.47813) == "0.224–0.478" and N.interval(None, 0.4) == "—"
    assert N.count(1234567) == "1,234,567" and N.count(12.0) == "12"
    assert N.duration(5.5432) == "5.54 s" and N.duration(0.001) == "< 0.01 s" and N.duration(1234.5) == "1,234.50 s"


def test_one_scientific_form():
    for value in (4.76e-05, 5.96e-08, -3.2e-9, 1e-300):
        text = N.number(value)
        assert N.ALLOWED_SCIENTIFIC.fullmatch(text) and not N.RAW_SCIENTIFIC.search(text), text
        mantissa, exponent = text.replace("−", "-").split("×10")
        power = int(exponent.translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))
        assert float(mantissa) * 10.0 ** power == pytest.approx(value, rel=0.05)
    assert N.RAW_SCIENTIFIC.search("value 4.76e-05 and 1.1e-01") and not N.RAW_SCIENTIFIC.search("sha256 4e5f01 px1e2")


def test_no_check_builds_a_message_with_its_own_float_format():
    """Check modules format numbers through reportgen.numbers: no ``:.3g``, ``:.2e``, ``:.1f`` in their f-strings.

    Only config-error texts (``Param`` / ``CheckSpec`` validation, which a user copies back into YAML)
    keep ``:g``.
    """
    offenders = []
    for path in sorted((REPO / "reportgen" / "checks").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
                spec = "".join(v.value for v in node.format_spec.values if isinstance(v, ast.Constant))
                if re.search(r"[eEfFgG%]$", spec) and not (path.name in ("base.py", "catalog.py") and spec == "g"):
                    offenders.append(f"{path.name}:{node.lineno} :{spec}")
    assert not offenders, offenders
