"""Layout facts read from a real report.pdf with pypdf: what is on which page, and how far down each page is used.

Shared by the fixture reports' PDF tests (test_render_layout.py) and the sample runs (test_samples.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pypdf import PdfReader

@dataclass(frozen=True)
class Page:
    """One PDF page: its body text lines (running header and footer removed) and the share of its height used."""

    number: int
    lines: tuple[str, ...]
    used: float
    """From the top of the page to the lowest body text, as a share of the page height (0-1)."""

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.lines).split())


def pages(pdf: bytes | Path) -> list[Page]:
    """Every page of ``pdf`` with its body lines and how far down its HTML text reaches."""
    reader = PdfReader(io.BytesIO(pdf) if isinstance(pdf, bytes) else str(pdf))
    return [_page(number, page, len(reader.pages)) for number, page in enumerate(reader.pages, start=1)]


def _page(number: int, page: Any, count: int) -> Page:
    """One page's body lines and used height.

    The running header and footer (name, date, verdict; "page n of m"), which pypdf extracts last,
    are left out. Charts are inline SVG with real text, so a chart's labels count as lines; their
    positions do not count towards ``used`` (pypdf does not report the charts' transforms), but
    every chart has an HTML caption under it, which does.
    """
    height = float(page.mediabox.height)
    top, bottom = height * (1 - 17 / 297), height * 16 / 297  # the print stylesheet's page margins
    heights: list[float] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: object, _size: object) -> None:
        if text.strip() and cm[3] < 0:  # the page's own text (WeasyPrint flips the y axis); not a chart's
            y = tm[5] * cm[3] + cm[5]  # page coordinates, origin at the bottom left
            if bottom < y < top:
                heights.append(y)

    lines = [line.strip() for line in page.extract_text(visitor_text=visit).splitlines() if line.strip()]
    assert lines and f"page {number} of {count}" in lines[-1], lines[-2:]  # header, then footer, come last
    return Page(number, tuple(lines[:-2]), (height - min(heights)) / height if heights else 0.0)


def page_of(all_pages: list[Page], needle: str) -> list[int]:
    """The numbers of the pages whose text holds ``needle`` (whitespace-insensitive; a word broken after
    its hyphen at a line end, "Kolmogorov-" then "Smirnov", counts as written)."""
    flat = " ".join(needle.split())
    return [p.number for p in all_pages if flat in p.text.replace("- ", "-")]


def assert_reads_well(pdf: bytes, max_pages: int, glossary_terms: Sequence[str] = ()) -> list[Page]:
    """The layout facts every report PDF must have; returns its pages for further checks.

    - at most ``max_pages`` pages;
    - no page but the last is less than half used (a chart or table pushed on, leaving a blank page);
    - no page holds only a line or two (the tail of a table or of the config);
    - the "Terms used in this report" list (``glossary_terms``, as ``view.glossary`` gives them) is on one
      page, with its heading.
    """
    all_pages = pages(pdf)
    assert 3 <= len(all_pages) <= max_pages, len(all_pages)
    sparse = [(p.number, round(p.used, 2)) for p in all_pages[:-1] if p.used < 0.55]
    assert not sparse, f"pages less than half used (page, share of its height): {sparse}"
    thin = [(p.number, p.lines) for p in all_pages if len(p.lines) < 5]
    assert not thin, f"pages holding only a line or two: {thin}"
    if glossary_terms:
        heading = page_of(all_pages, "Terms used in this report")
        assert len(heading) == 1, heading
        spread = {term: page_of(all_pages, term) for term in glossary_terms}
        assert all(heading[0] in found for found in spread.values()), f"glossary on page {heading}: {spread}"
    return all_pages
