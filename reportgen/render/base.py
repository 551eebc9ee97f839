"""The renderer contract shared by every output format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager

if TYPE_CHECKING:
    from reportgen.report import Report


@dataclass(frozen=True)
class RenderOptions:
    """Settings every renderer receives.

    ``template_dir`` is a folder of user templates searched before the built-in ones
    (any of ``report.html.j2``, ``report.css``, ``macros.html.j2`` may be overridden).
    """

    template_dir: Path | None = None


@dataclass(frozen=True)
class Renderer:
    """One output format: its name, the file it writes and a pure ``render`` returning the bytes.

    ``prepare``, when set, starts work that needs no report (e.g. getting a PDF engine ready in another
    process) before any format renders; it is a context manager giving the render function to use
    instead of ``render`` (same bytes) and ending that work when the rendering is over.
    """

    format: str
    filename: str
    render: Callable[["Report", RenderOptions], bytes]
    prepare: Callable[[], ContextManager[Callable[["Report", RenderOptions], bytes]]] | None = None
