"""Names in any script: no warning per missing glyph, a note naming what cannot be drawn, long names wrap."""

from __future__ import annotations

import dataclasses
import io
import re
import warnings

import pytest
from pypdf import PdfReader

import report_fixtures as F
from reportgen.render import RENDERERS, RenderOptions, plots
from reportgen.report import Report

CJK = ["猫", "犬", "鳥類"]
LONG_FEATURE = "W" * 200


def _with(report: Report, **changes: object) -> Report:
    return Report(**{**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)}, **changes})


def _cjk_font_installed() -> bool:
    return any("CJK" in name or "WenQuanYi" in name or "Droid" in name for name in plots.chart_fonts())


def test_cjk_class_names_draw_without_warnings_and_are_reported_when_no_font_has_them() -> None:
    report = F.multiclass(classes=CJK, name="動物 classifier")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")
    assert not [w for w in caught if "Glyph" in str(w.message)]
    note = re.search(r'<p class="note glyphs">.*?<bdi>(.*?)</bdi>', page)
    if _cjk_font_installed():
        assert note is None
    else:
        assert note is not None and note.group(1).split() == ["動", "物", "猫", "犬", "鳥", "類"]


def test_latin_names_need_no_note() -> None:
    report = F.multiclass(classes=["élan", "Zürich", "naïve"], name="ok")
    assert plots.missing_glyphs(["élan", "Zürich", "naïve", "ok", " \t"]) == []
    assert 'class="note glyphs"' not in RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")


@pytest.mark.slow
def test_a_long_unbroken_feature_name_wraps_in_the_pdf() -> None:
    base = F.cached("passing_binary")
    report = _with(base, data={**base.data, "features": ["balance", LONG_FEATURE, "income"]})
    reader = PdfReader(io.BytesIO(RENDERERS["pdf"].render(report, RenderOptions())))
    text = "".join(page.extract_text() for page in reader.pages)
    runs = [len(m) for m in re.findall(r"W{10,}", text)]
    assert sum(runs) >= len(LONG_FEATURE)  # all of it is there ...
    assert max(runs) < 120  # ... on several lines, none wider than the page (A4 holds about 70 W at 9 pt)
