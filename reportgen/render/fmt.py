"""Formatting shared by the text renderers: numbers, thresholds, statuses, metric names."""

from __future__ import annotations

import re
from typing import Any, Mapping

from reportgen import metric_registry, numbers
from reportgen.checks.base import (CONCERN_MEASURE_KEY, PAIRED_METRICS_KEY, SIGNIFICANCE_LEVEL_KEY, VALUE_P_KEY, CheckResult,
                                   meets_threshold)
from reportgen.vocabulary import SPLIT_ORDER, Status

STATUS_WORD = {s.value: s.value.upper() for s in Status}
STATUS_ICON = {Status.PASS.value: "✔", Status.WARN.value: "▲", Status.FAIL.value: "✖", Status.ERROR.value: "⚠",
               Status.SKIP.value: "–"}

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Everything outside the Char production of XML 1.0 (section 2.2): control characters, lone
surrogates, U+FFFE and U+FFFF."""

_CONSOLE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                             "\ud800-\udfff\ufeff]")
"""Control characters (C0, DEL, C1: escape sequences, newlines, carriage returns), bidirectional
controls, line and paragraph separators, lone surrogates and the byte-order mark."""


def is_number(value: Any) -> bool:
    """True for ints and floats, not bools."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def num(value: Any, digits: int = 3) -> str:
    """A measured value, by the report's one number rule (reportgen.numbers.number); None as an em dash.

    Strings are clipped to 80 characters.
    """
    if isinstance(value, str):
        return clip(value, 80)
    return numbers.number(value, digits)


NUMERIC_CELL_CHARS = 24
"""The longest text a right-aligned, unwrapped number cell holds ("0.912 (0.889–0.934)" is 19); a longer
value (a sentence such as the data-parallel description) is laid out as wrapping text, so that it cannot
push the other cells of its row off the page."""


def numeric_cell(text: str) -> bool:
    """True when ``text`` fits a number cell (``td.num``: right-aligned, no wrapping), else it is set as text."""
    return len(text) <= NUMERIC_CELL_CHARS


def pct(value: Any) -> str:
    """A share in [0, 1] as a percentage (reportgen.numbers.percent)."""
    return numbers.percent(value)


def direction(higher_is_better: bool | None) -> str:
    """The comparison a value must satisfy: ≥ when higher is better, ≤ otherwise."""
    if higher_is_better is None:
        return ""
    return "≥" if higher_is_better else "≤"


def significance_level(check: CheckResult) -> float | None:
    """The level a p-value must fall below for a value past the threshold to count, when the check has one."""
    level = check.evidence.get(SIGNIFICANCE_LEVEL_KEY) if isinstance(check.evidence, Mapping) else None
    return float(level) if is_number(level) else None


def value_p(check: CheckResult) -> tuple[str, float] | None:
    """(label, p-value) of the comparison the check's value measures (``VALUE_P_KEY``), when the check records one."""
    entry = check.evidence.get(VALUE_P_KEY) if isinstance(check.evidence, Mapping) else None
    if not isinstance(entry, Mapping) or not is_number(entry.get("p_value")):
        return None
    return one_line(entry.get("label") or "p", 40), float(entry["p_value"])


def threshold_text(check: CheckResult) -> str:
    """'≥ 0.8' / '≤ 0.05' (a setting, as the config writes it), or an em dash for checks without a threshold.

    A check whose verdict also needs significance shows its whole condition for passing:
    '≤ 0.1 or p ≥ 0.05' (the p named as the check names it, ``VALUE_P_KEY``: '≤ 0.1 or adjusted p ≥ 0.05'),
    so a passing value past the threshold does not contradict it. When the
    evidence lists which metrics have a paired test (``PAIRED_METRICS_KEY``, release_comparison), the
    p-value condition names them: '≤ 0.02 (or p ≥ 0.05 for Accuracy, Recall)', or is left out when none has.
    """
    if check.threshold is None:
        return "—"
    sign = direction(check.higher_is_better)
    text = f"{sign} {numbers.setting(check.threshold)}".strip()
    level = significance_level(check)
    if level is None:
        return text + _concern_text(check, required=True)
    paired = check.evidence.get(PAIRED_METRICS_KEY) if isinstance(check.evidence, Mapping) else None
    measured = value_p(check)
    name = measured[0] if measured else "p"
    if isinstance(paired, list):
        if not paired:
            return text
        return f"{text} (or {name} ≥ {numbers.setting(level)} for {', '.join(metric_label(str(m)) for m in paired)})"
    return f"{text} or {name} ≥ {numbers.setting(level)}"


def value_text(check: CheckResult) -> str:
    """The check's measured value (with the decimals that tell it from its threshold, ``numbers.number_beside``);
    for a value past its threshold whose verdict also needs significance, that p-value after it
    ('0.251; adjusted p 0.38', ``VALUE_P_KEY``); for a warning raised by a second condition, that condition's value."""
    beside = is_number(check.value) and is_number(check.threshold)
    shown = numbers.number_beside(check.value, check.threshold) if beside else num(check.value)
    measured = value_p(check)
    if beside and measured is not None and significance_level(check) is not None and check.higher_is_better is not None \
            and not meets_threshold(float(check.value), float(check.threshold), check.higher_is_better):
        shown += f"; {measured[0]} {numbers.p_value(measured[1])}"
    return shown + _concern_text(check, required=False)


def _concern_text(check: CheckResult, *, required: bool) -> str:
    """'; loss fall 43.3%' (``required``: '; loss fall < 1%'): what made a warning (``CONCERN_MEASURE_KEY``),
    empty for other statuses and for results without it."""
    measure = check.evidence.get(CONCERN_MEASURE_KEY) if isinstance(check.evidence, Mapping) else None
    if check.status != Status.WARN or not isinstance(measure, Mapping):
        return ""
    value, limit = measure.get("value"), measure.get("warns_at")
    if not is_number(value) or not is_number(limit):
        return ""
    as_percent = measure.get("percent") is True
    if required:
        shown = f"< {numbers.setting(100 * limit)}%" if as_percent else f"< {numbers.setting(limit)}"
    else:
        shown = numbers.percent(value) if as_percent else num(value)
    return f"; {one_line(measure.get('label', ''), 40)} {shown}"


def comparison_text(check: CheckResult) -> str:
    """'value 0.712, required ≥ 0.8' for the plain-text formats."""
    text = f"value {value_text(check)}"
    if check.threshold is not None:
        text += f", required {threshold_text(check)}"
    return text


def metric_label(key: str) -> str:
    """Human name of a metric key (reportgen.metric_registry)."""
    return metric_registry.label(key)


def headline_metrics(task: str, metrics: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(key, label, value) of the task's headline metrics in one split, skipping missing ones."""
    rows = []
    for key in metric_registry.headline(task):
        value = metrics.get(key)
        if is_number(value):
            rows.append((key, metric_registry.label(key), value))
    return rows


def one_line(text: Any, limit: int = 300) -> str:
    """Collapse whitespace to one line and clip to ``limit`` characters."""
    return clip(" ".join(str(text).split()), limit)


def clip(text: str, limit: int) -> str:
    """Clip ``text`` to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def xml_safe(text: Any) -> str:
    """Replace the characters XML 1.0 cannot carry (outside its Char production) with U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def console_safe(text: Any) -> str:
    """``text`` made safe to print as one terminal line, e.g. a name or message from a results.json.

    Control characters (escape sequences that could repaint FAIL as PASS, carriage returns,
    newlines), bidirectional controls and lone surrogates are shown as visible escapes (``\\x1b``,
    ``\\n``, ``\\u202e``), so what is printed is what the file says.
    """
    return _CONSOLE_UNSAFE.sub(_escape_char, str(text))


def console_line(text: Any) -> str:
    """One printable console line: ``console_safe``, and never the start of a CI command.

    A line starting with ``::`` is a GitHub Actions workflow command (``::error file=...::``) and one
    starting with ``##`` an Azure Pipelines one; such a line gets a leading ``> `` so CI shows it as text.
    """
    line = console_safe(text)
    if line.lstrip().startswith(("::", "##")):
        line = "> " + line
    return line


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in named:
        return named[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def split_order(splits: Any) -> list[str]:
    """train, val, test first, then any other split names in their given order."""
    names = list(splits)
    known = [s for s in SPLIT_ORDER if s in names]
    return known + [s for s in names if s not in known]
