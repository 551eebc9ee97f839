"""The PDF's charts laid out as <img> of the same SVG (pdf_engine.charts_as_images): same pages, real WeasyPrint."""

from __future__ import annotations

import base64
import html as html_module
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

import report_fixtures as F
from reportgen.render import RenderOptions, html
from reportgen.render.pdf_engine import PdfWorker, charts_as_images, html_to_pdf

pytestmark = pytest.mark.slow
_DATA_URL = re.compile(rb'<img class="chart" alt="([^"]*)" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">')
_INLINE = re.compile(rb'<svg class="chart" role="img" aria-label="([^"]*)".*?</svg>', re.S)


@pytest.fixture(scope="module")
def page() -> bytes:
    return html.render_html(F.cached("failing_binary"), RenderOptions())


def test_each_chart_becomes_an_image_of_its_own_svg_and_nothing_else_changes(page: bytes) -> None:
    inline = [(m.group(1), m.group(0)) for m in _INLINE.finditer(page)]
    assert len(inline) >= 5
    converted = charts_as_images(page)
    images = [(m.group(1), base64.b64decode(m.group(2))) for m in _DATA_URL.finditer(converted)]
    assert images == inline
    assert b'<svg class="chart"' not in converted
    restored = _DATA_URL.sub(lambda m: base64.b64decode(m.group(2)), converted)
    assert restored == page


def test_a_chart_that_is_not_well_formed_xml_stays_inline() -> None:
    broken = (b'<p>x</p><svg class="chart" role="img" aria-label="a" data-chart="a" width="10pt" height="10pt">'
              b'<text>&nbsp;</text></svg>')  # an HTML entity: fine inline, refused by ElementTree
    good = (b'<svg class="chart" role="img" aria-label="b" data-chart="b" width="10pt" height="10pt">'
            b'<text>b &amp; c</text></svg>')
    converted = charts_as_images(broken + good)
    assert converted.startswith(broken)
    assert [base64.b64decode(m.group(2)) for m in _DATA_URL.finditer(converted)] == [good]


def _pages(pdf: bytes, folder: Path) -> list[bytes]:
    source = folder / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(source), str(folder / "page")], check=True, timeout=120,
                   capture_output=True)
    return [p.read_bytes() for p in sorted(folder.glob("page-*.png"))]


def test_the_pdf_with_chart_images_has_the_pages_text_and_outline_of_the_inline_one(page: bytes, tmp_path: Path) -> None:
    inline, images = html_to_pdf(page), html_to_pdf(page, charts_as_img=True)
    first, second = PdfReader(io.BytesIO(inline)), PdfReader(io.BytesIO(images))
    assert len(first.pages) == len(second.pages) >= 5
    assert [p.extract_text() for p in first.pages] == [p.extract_text() for p in second.pages]
    assert [o.title for o in first.outline if not isinstance(o, list)] == \
        [o.title for o in second.outline if not isinstance(o, list)]
    title = html_module.unescape(_INLINE.search(page).group(1).decode()).split("; ")[0]
    assert title and " ".join(title.split()) in " ".join("".join(p.extract_text() for p in second.pages).split())
    if shutil.which("pdftoppm") is not None:  # the same pixels, page by page
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        assert _pages(inline, tmp_path / "a") == _pages(images, tmp_path / "b")


def test_the_worker_converts_with_chart_images_as_this_process_does(page: bytes) -> None:
    worker = PdfWorker.start(warm_pdf=False)
    assert worker is not None
    try:
        assert worker.convert(page, charts_as_img=True) == html_to_pdf(page, charts_as_img=True)
    finally:
        worker.close()


def test_the_worker_never_starts_a_chart_this_process_said_it_draws() -> None:
    jobs = [("loss_history", ([{"epoch": 1, "train_loss": 1.0 / k}, {"epoch": 2, "train_loss": 0.5 / k}], 1), {})
            for k in range(1, 5)]
    worker = PdfWorker.start(warm_pdf=False)
    assert worker is not None
    try:
        batch = worker.new_batch()
        assert all(worker.submit(batch, i, job) for i, job in enumerate(jobs))
        worker._send(("mine", batch, 3))  # the worker is still starting: it reads this before drawing chart 3
        messages = []
        while [m[2] for m in messages if m[0] == "svg"] != [0, 1, 2]:
            messages.append(worker._receive(None))
        for _ in range(2):  # a chart the worker took is drawn before it answers the next message but one
            worker._send(("pdf", b"<html><body>x</body></html>", False))
            while (message := worker._receive(None))[0] != "pdf":
                messages.append(message)
        assert ("drawing", batch, 3) not in [m[:3] for m in messages]
    finally:
        worker.close()
