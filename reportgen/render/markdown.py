"""summary.md: a GitHub-flavoured summary for pull-request comments and job summaries."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reportgen.render import fmt, page_one as view
from reportgen.render.base import Renderer, RenderOptions
from reportgen.vocabulary import Status

if TYPE_CHECKING:
    from reportgen.checks.base import CheckResult
    from reportgen.report import Report

MAX_CHARS = 60_000
"""GitHub refuses comments of 65,536 characters or more; stay well under."""
_BUDGET = MAX_CHARS - 2_000
"""Room kept for the truncation notes and the footer."""

EMOJI = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skip": "⏭️"}
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]~|#"})
WORD_JOINER = "\u2060"
"""Invisible and zero-width: put inside would-be autolinks, it keeps GitHub from linking them."""
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)(?=\w)|(?<=#)(?=\w)", re.IGNORECASE)
"""Where GitHub would start a link: a scheme's ``://``, ``www.``, an @mention or e-mail, a #reference."""
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def md_text(text: object, limit: int = 300) -> str:
    """Escape text for a GFM table cell or list item: one line, no markup, no raw HTML, no live links.

    Control characters and newlines go (``fmt.one_line`` and XML's Char production), bidirectional
    controls become U+FFFD, and URLs, e-mail addresses, @mentions and #references in names get a
    WORD JOINER (U+2060) where GitHub would start a link, so they read the same but link nowhere.
    """
    line = fmt.one_line(_BIDI.sub("\ufffd", fmt.xml_safe(text)), limit)
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AUTOLINK.sub(WORD_JOINER, line).translate(_MD_SPECIAL)


def _status(check: "CheckResult") -> str:
    return f"{EMOJI.get(check.status, '')} {fmt.STATUS_WORD.get(check.status, check.status.upper())}"


def render_markdown(report: "Report", options: RenderOptions) -> bytes:
    """Return the Markdown summary, always under 60,000 characters."""
    verdict = "✅ PASS" if report.passed else "❌ FAIL"
    model = report.model.get("class_name") or report.model.get("kind") or "model"
    parts: list[str] = [
        f"## reportgen: {md_text(report.name, 200)} — {verdict}",
        "",
        f"**Verdict: {verdict}** · {len(report.checks)} checks: {report.status_summary(always=('fail', 'pass'))}"
        f" · {md_text(report.task)} · model {md_text(model, 100)}"
        + (f" (weights sha256 {md_text(report.model['weights_sha256'][:12], 20)}…)" if report.model.get("weights_sha256") else "")
        + (" · evaluated only" if report.training is None else ""),
        "",
    ]

    test = report.metrics.get("test") or {}
    page = view.page_one(report)
    if page["tiles"]:
        n = test.get("n")
        context = [f"threshold {page['threshold']}" if page["threshold"] else "",
                   f"prevalence of “{md_text(report.data.get('positive_class'), 60)}” {page['prevalence']}" if page["prevalence"] else "",
                   f"data {md_text(', '.join(page['sources']), 300)}" if page["sources"] else ""]
        tiles = " · ".join(
            f"{md_text(t['label'], 60)} {t['value']}" + (f" ({t['ci']})" if t["ci"] else "")
            + (f" ({t['delta']['text']})" if t["delta"] else "") for t in page["tiles"])
        parts += [f"**Test split{f' (n = {fmt.num(n)})' if n is not None else ''}:** {tiles}"
                  + "".join(f" · {c}" for c in context if c), ""]
    if page["not_measured"]:
        strict = " (strict gate: this fails)" if page["strict"] else ""
        parts += [f"**Not measured: {len(page['not_measured'])} blocking check{'s' if len(page['not_measured']) != 1 else ''}"
                  f" skipped because the data did not allow a measurement, so the verdict does not cover"
                  f" {'them' if len(page['not_measured']) != 1 else 'it'}{strict}:**", ""]
        parts += [f"- {md_text(m['text'], 240)}" for m in page["not_measured"][:50]] + [""]
    relaxed = [o for o in page["overrides"] if o["relaxes"]]
    if page["overrides"]:
        strict = " (strict gate: relaxations fail)" if page["strict"] else ""
        title = f"**Gate differs from the default{strict}**" + (f" — {len(relaxed)} relaxed" if relaxed else "") + ":"
        parts += [title, ""] + [f"- {'▼ relaxed: ' if o['relaxes'] else ''}{md_text(o['text'], 200)}" for o in page["overrides"][:50]] + [""]
    else:
        parts += ["Gate: the default thresholds and severities of every check" + (" (strict gate)." if page["strict"] else "."), ""]
    if page["diff"]:
        d = page["diff"]
        parts += [f"**Against {md_text(d['previous'], 100)}:** newly failing: {md_text(', '.join(d['newly_failing']) or 'none')}"
                  f" · fixed: {md_text(', '.join(d['fixed']) or 'none')} · still failing: {md_text(', '.join(d['still_failing']) or 'none')}", ""]
    if page["evaluate_only_limits"]:
        parts += ["**Evaluated only** (model trained elsewhere): these checks judge only the data given here: "
                  + "; ".join(f"{md_text(limit['id'])} {md_text(limit['text'])}" for limit in page["evaluate_only_limits"]), ""]

    used = sum(len(p) + 1 for p in parts)
    blocking = report.blocking_checks()
    if blocking:
        parts += ["### Why the gate fails", ""]
        shown = 0
        for check in blocking:
            line = f"- {_status(check)} **{md_text(check.title, 120)}** ({md_text(check.id, 80)}): {md_text(check.message)} — {md_text(fmt.comparison_text(check))}"
            if shown >= 20 or used + len(line) > _BUDGET // 3:
                parts.append(f"- … and {len(blocking) - shown} more blocking checks (see the full report).")
                break
            parts.append(line)
            used += len(line) + 1
            shown += 1
        if page["fixes"]:
            parts += ["", "**What would fix it:**", ""] + [f"- {md_text(tip, 400)}" for tip in page["fixes"]]
        parts.append("")

    header = ["| Status | Check | Value | Threshold | Message |", "| --- | --- | ---: | ---: | --- |"]
    ordered = report.checks_for_review()
    attention = [c for c in ordered if Status(c.status).is_problem]
    quiet = [c for c in ordered if c not in attention]
    parts += ["### Checks", ""]
    if attention:
        parts += header
    else:
        parts.append("Nothing failed, crashed or warned.")
    used = sum(len(p) + 1 for p in parts)
    rows_left, used = _table_rows(attention, parts, used, len(ordered))
    if quiet and rows_left:
        # Passed and skipped checks fold away, so a pull-request comment shows what needs attention.
        summary = ", ".join(f"{n} {word}" for n, word in (
            (sum(c.status == "pass" for c in quiet), "passed"), (sum(c.status == "skip" for c in quiet), "skipped")) if n)
        parts += ["", f"<details><summary>{summary}</summary>", ""] + header
        rows_left, used = _table_rows(quiet, parts, used + 80, len(ordered))
        parts += ["", "</details>"]
    parts += ["", f"<sub>reportgen {md_text(report.environment.get('reportgen_version', ''), 40)} · "
                  f"seed {md_text(report.environment.get('seed', '—'), 40)} · status is shown by word and emoji, "
                  "never by colour alone</sub>", ""]
    text = "\n".join(parts)
    if len(text) >= MAX_CHARS:  # defensive: the budget above should make this unreachable
        text = text[: MAX_CHARS - 100] + "\n\n_Summary truncated._\n"
    return text.encode("utf-8")


def _table_rows(checks: list["CheckResult"], parts: list[str], used: int, total: int) -> tuple[bool, int]:
    """Append one table row per check while the size budget lasts; (whether all fitted, size used)."""
    for index, check in enumerate(checks):
        row = (f"| {_status(check)} | {md_text(check.title, 80)}<br>{md_text(check.id, 60)} | {md_text(fmt.value_text(check))} "
               f"| {md_text(fmt.threshold_text(check))} | {md_text(check.message, 200)} |")
        if used + len(row) + 1 > _BUDGET:
            parts += ["", f"_Table truncated: {len(checks) - index} more checks not shown (of {total}) "
                          "to stay under GitHub's size limit; see report.html or results.json._"]
            return False, used
        parts.append(row)
        used += len(row) + 1
    return True, used


RENDERER = Renderer(format="md", filename="summary.md", render=render_markdown)
