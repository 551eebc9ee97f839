"""report.pdf: the HTML report laid out by WeasyPrint with the print stylesheet (A4, vector charts)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from reportgen.render.base import Renderer, RenderOptions
from reportgen.render.html import render_html

if TYPE_CHECKING:
    from reportgen.report import Report


class ExternalResourceRefused(ValueError):
    """The report tried to load something other than a ``data:`` URL."""


def _fetcher():  # imported lazily: WeasyPrint loads Pango and friends on import
    from weasyprint.urls import URLFetcher

    class DataOnlyFetcher(URLFetcher):
        """Fetches ``data:`` URLs and refuses everything else: a report never reaches outside."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data",), fail_on_errors=True)

        def fetch(self, url, headers=None):  # noqa: ANN001 - WeasyPrint's signature
            if not str(url).startswith("data:"):
                raise ExternalResourceRefused(f"reportgen reports load no external resources (refused {url[:80]!r})")
            return super().fetch(url, headers)

    return DataOnlyFetcher()


def html_to_pdf(html: bytes) -> bytes:
    """Lay out a self-contained HTML page as a PDF with its print CSS; nothing outside it is fetched.

    Raises ExternalResourceRefused when the page asks for anything but a ``data:`` URL.
    """
    import weasyprint

    # WeasyPrint logs every unsupported CSS property at WARNING; keep CI logs quiet.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    from weasyprint.urls import FatalURLFetchingError

    document = weasyprint.HTML(string=html.decode("utf-8"), base_url=None, url_fetcher=_fetcher(),
                               media_type="print")
    try:
        return document.write_pdf(uncompressed_pdf=False)
    except FatalURLFetchingError as exc:  # a BaseException in WeasyPrint: turn it into an ordinary error
        cause = exc.__cause__ or exc
        raise ExternalResourceRefused(str(cause)) from exc


def render_pdf(report: "Report", options: RenderOptions) -> bytes:
    """Return the PDF: same content as the HTML, print CSS, outline, metadata and page numbers."""
    return html_to_pdf(render_html(report, options))


RENDERER = Renderer(format="pdf", filename="report.pdf", render=render_pdf)
