"""One renderer per output format; ``reportgen.output.write_reports`` writes them atomically.

Every renderer is a pure function ``(Report, RenderOptions) -> bytes``: it reads only the
``Report`` object and never touches the file system (templates excepted).
"""

from __future__ import annotations

from reportgen.render import html, json_report, junit, markdown, pdf
from reportgen.render.base import Renderer, RenderOptions

RENDERERS: dict[str, Renderer] = {
    r.format: r
    for r in (html.RENDERER, pdf.RENDERER, json_report.RENDERER, junit.RENDERER, markdown.RENDERER)
}
"""Renderers by format name: html, pdf, json, junit, md."""
FORMATS: tuple[str, ...] = tuple(RENDERERS)
"""Every output format, in the order a run writes them; config and CLI take the list from here."""

__all__ = ["FORMATS", "RENDERERS", "Renderer", "RenderOptions"]
