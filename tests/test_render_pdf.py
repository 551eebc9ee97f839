"""report.pdf via WeasyPrint (real, no mocks): text, metadata, outline, pages that rasterise."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

import report_fixtures as F
from reportgen.render import RENDERERS, RenderOptions
from reportgen.render.pdf import ExternalResourceRefused, _fetcher

pytestmark = pytest.mark.slow
OPTIONS = RenderOptions()


@pytest.fixture(scope="module")
def pdfs() -> dict[str, bytes]:
    return {name: RENDERERS["pdf"].render(F.cached(name), OPTIONS) for name in ("failing_binary", "hostile_names")}


def _text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_text_has_verdict_checks_and_metrics(pdfs: dict[str, bytes]) -> None:
    report = F.failing_binary()
    reader, text = _text(pdfs["failing_binary"])
    flat = " ".join(text.split())
    assert 3 <= len(reader.pages) <= 20
    first = " ".join(reader.pages[0].extract_text().split())
    assert "FAIL" in first and "Do not ship" in first and "fraud-detector-v3" in first
    for check in report.checks:
        assert check.id in flat, check.id
    test = report.metrics["test"]
    for key in ("accuracy", "balanced_accuracy", "roc_auc"):
        assert f"{test[key]:.3f}" in flat
    assert "page 1 of" in flat


def test_pdf_metadata_and_outline(pdfs: dict[str, bytes]) -> None:
    reader = PdfReader(io.BytesIO(pdfs["failing_binary"]))
    meta = reader.metadata
    assert meta.title.startswith("fraud-detector-v3")
    assert meta.get("/Creator", "").startswith("reportgen") or meta.get("/Producer", "")
    assert "reportgen 0.1.0" in (meta.get("/Creator") or "")
    assert str(meta.get("/CreationDate", "")).startswith("D:20240517")
    titles = []

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                titles.append(item.title)

    walk(reader.outline)
    for section in ("Checks in detail", "Data", "Metrics", "Curves", "Training", "Leakage evidence", "Appendix"):
        assert section in titles


def test_pdf_keeps_hostile_names_as_text(pdfs: dict[str, bytes]) -> None:
    _, text = _text(pdfs["hostile_names"])
    assert F.XSS_CLASS in " ".join(text.split())


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler's pdftoppm")
def test_every_page_rasterises(pdfs: dict[str, bytes], tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(pdfs["failing_binary"])
    pages = len(PdfReader(io.BytesIO(pdfs["failing_binary"])).pages)
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(source), str(tmp_path / "page")], check=True, timeout=60,
                   capture_output=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    assert all(image.stat().st_size > 1000 for image in images)


def test_fetcher_refuses_everything_but_data_urls() -> None:
    fetcher = _fetcher()
    for url in ("https://example.com/a.css", "http://127.0.0.1/x.png", "file:///etc/passwd"):
        with pytest.raises(ExternalResourceRefused):
            fetcher.fetch(url)
    response = fetcher.fetch("data:text/plain;base64,aGk=")
    assert response is not None


def test_external_reference_in_a_user_template_stops_the_pdf(tmp_path: Path) -> None:
    from reportgen.errors import RunError
    from reportgen.output import write_reports

    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "report.html.j2").write_text(
        '<html><head><link rel="stylesheet" href="https://example.com/x.css"></head><body>{{ r.name }}</body></html>',
        encoding="utf-8")
    with pytest.raises(RunError, match="report.pdf"):
        write_reports(F.cached("multiclass"), tmp_path / "out", ["pdf"], template_dir=tmp_path / "tpl")
    assert not (tmp_path / "out").exists()


def test_pdf_from_the_worker_process_is_the_in_process_pdf(pdfs: dict[str, bytes]) -> None:
    from reportgen.render.pdf import prepared

    with prepared() as render:
        assert render(F.cached("failing_binary"), OPTIONS) == pdfs["failing_binary"]


def test_pdf_worker_failure_is_none_and_the_worker_is_reaped() -> None:
    from reportgen.render.pdf_engine import PdfWorker

    worker = PdfWorker.start()
    assert worker is not None
    try:
        page = b'<html><head><link rel="stylesheet" href="https://example.com/x.css"></head><body>x</body></html>'
        assert worker.convert(page) is None  # the caller then converts in-process and raises the error
    finally:
        worker.close()
    assert worker._process.returncode not in (None, 0)


def test_unused_pdf_worker_is_ended_by_close() -> None:
    from reportgen.render.pdf_engine import PdfWorker

    worker = PdfWorker.start()
    assert worker is not None
    worker.close()
    assert worker._process.returncode is not None
