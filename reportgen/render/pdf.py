"""report.pdf: the HTML report laid out by WeasyPrint with the print stylesheet (A4, vector charts)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from reportgen.render.base import Renderer, RenderOptions
from reportgen.render.html import render_html
from reportgen.render.pdf_engine import ExternalResourceRefused, _fetcher, html_to_pdf, rendering_with, take_or_start

if TYPE_CHECKING:
    from reportgen.report import Report

__all__ = ["ExternalResourceRefused", "RENDERER", "_fetcher", "html_to_pdf", "prepared", "render_pdf"]


def render_pdf(report: "Report", options: RenderOptions) -> bytes:
    """Return the PDF: same content as the HTML, print CSS, outline, metadata and page numbers."""
    return html_to_pdf(render_html(report, options), _charts_as_img(options))


def _charts_as_img(options: RenderOptions) -> bool:
    """Whether the page's CSS is the built-in one, which styles charts as ``.chart`` (``pdf_engine.charts_as_images``);
    a custom template's CSS may style ``svg.chart``, so its charts stay inline."""
    return options.template_dir is None


@contextmanager
def prepared() -> Iterator[Callable[["Report", RenderOptions], bytes]]:
    """``render_pdf``, with WeasyPrint made ready in a worker process while the other formats render.

    The worker is the one ``reportgen run`` started early when it still runs, else a new one; while the
    block runs it also draws part of the HTML's charts (``pdf_engine.active_worker``). Gives the same
    bytes as ``render_pdf`` (the worker runs the same ``html_to_pdf`` and ``plots``); where the worker
    cannot start or fails, the page is converted in this process, which raises any error itself.
    The worker is ended when the block exits.
    """
    worker = take_or_start()

    def render(report: "Report", options: RenderOptions) -> bytes:
        html = render_html(report, options)
        images = _charts_as_img(options)
        pdf = worker.convert(html, images) if worker is not None else None
        return pdf if pdf is not None else html_to_pdf(html, images)

    try:
        with rendering_with(worker):
            yield render
    finally:
        if worker is not None:
            worker.close()


RENDERER = Renderer(format="pdf", filename="report.pdf", render=render_pdf, prepare=prepared)
