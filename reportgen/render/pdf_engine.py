"""WeasyPrint behind one function (HTML bytes to PDF bytes), and a worker process that gets it ready early.

Getting WeasyPrint ready costs about as much as drawing the report's charts: importing it (Pango,
fontconfig, HarfBuzz through cffi), then, on the first document, loading the fonts and parsing the C
types cffi meets. :class:`PdfWorker` pays that in a second process while this one draws the charts
and fills the HTML template, then converts the finished HTML there. The PDF is the same, byte for
byte, as :func:`html_to_pdf` gives in this process (WeasyPrint's output depends only on the HTML).

This module imports only the standard library at module level: the worker runs this file by path,
so it never imports reportgen's package (numpy, pydantic, Jinja2) that it does not need.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from typing import Any, Iterator


class ExternalResourceRefused(ValueError):
    """The report tried to load something other than a ``data:`` URL."""


def _fetcher() -> Any:  # imported lazily: WeasyPrint loads Pango and friends on import
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


@contextlib.contextmanager
def _no_library_search() -> Iterator[None]:
    """While WeasyPrint imports, ``ctypes.util.find_library`` finds nothing instead of searching.

    WeasyPrint tries several names per library (``libgobject-2.0-0``, ``gobject-2.0``, ...,
    ``libgobject-2.0.so.0``); for each name the dynamic loader cannot open, cffi asks
    ``find_library``, which on Linux runs ``ldconfig -p``, ``gcc`` and ``ld``: about 50 processes and a
    quarter of a CPU second per import. The loader opens the right name by itself further down the list.
    """
    import ctypes.util

    search = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None
    try:
        yield
    finally:
        ctypes.util.find_library = search


def import_weasyprint() -> Any:
    """The ``weasyprint`` module, imported without the library search where the loader finds the libraries.

    Where it does not (libraries only a search finds, e.g. outside the loader's paths), the import is
    repeated with the search, so it succeeds or fails exactly as a plain ``import weasyprint``.
    """
    if "weasyprint" in sys.modules:
        return sys.modules["weasyprint"]
    try:
        # WeasyPrint prints installation advice before it gives up on a library: not for this attempt.
        with _no_library_search(), contextlib.redirect_stdout(io.StringIO()):
            import weasyprint
    except OSError:
        for name in [n for n in sys.modules if n == "weasyprint" or n.startswith("weasyprint.")]:
            del sys.modules[name]
        import weasyprint
    return weasyprint


def html_to_pdf(html: bytes) -> bytes:
    """Lay out a self-contained HTML page as a PDF with its print CSS; nothing outside it is fetched.

    Raises ExternalResourceRefused when the page asks for anything but a ``data:`` URL.
    """
    weasyprint = import_weasyprint()

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


_WARM_UP = (b'<html><body><p>ready <b>bold</b> <i>italic</i> <code>mono</code></p>'
            b'<svg width="20" height="10" viewBox="0 0 20 10"><path d="M 0 0 L 20 10" style="stroke: #000"/>'
            b'<text x="0" y="9" style="font-size: 8px; font-family: \'DejaVu Sans\'">x</text></svg></body></html>')
"""A page with the report's kinds of text and an SVG chart's elements: converting it loads the fonts and
the cffi types that the first real page would otherwise wait for."""


def serve() -> int:
    """The worker's main: get WeasyPrint ready, read one HTML page from stdin, write its PDF to stdout.

    Exit status 0 with the PDF, or 0 with nothing when stdin closes empty (the parent needed no PDF
    after all); any error is a traceback on stderr and status 1, and the parent converts in-process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends this process
    pdf_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may mix into the PDF
    html_to_pdf(_WARM_UP)
    html = sys.stdin.buffer.read()
    if html:
        pdf_out.write(html_to_pdf(html))
        pdf_out.flush()
    return 0


_WORKER_MAIN = ("import runpy, sys\n"
                "if sys.path and sys.path[0] == '':\n"
                "    del sys.path[0]\n"  # the current folder must not shadow a module WeasyPrint imports
                "runpy.run_path(sys.argv[1], run_name='__main__')\n")


class PdfWorker:
    """A child Python process that gets WeasyPrint ready now and converts one HTML page later.

    Use :meth:`start`, then :meth:`convert` once, and :meth:`close` in a ``finally``. The child ignores
    SIGINT (the parent handles Ctrl-C and closes it), exits when its stdin closes, and is killed by
    :meth:`close` if still running, so it never outlives the render.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @classmethod
    def start(cls) -> "PdfWorker | None":
        """Start the worker; None where no child Python can be started (then convert in-process)."""
        if not sys.executable:
            return None
        try:
            process = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN, os.path.abspath(__file__)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError:
            return None
        return cls(process)

    def convert(self, html: bytes) -> bytes | None:
        """The PDF of ``html``, or None when the worker failed (the caller converts in-process, which
        raises the error itself, e.g. ExternalResourceRefused)."""
        try:
            pdf, errors = self._process.communicate(html)
        except OSError:
            return None
        if self._process.returncode != 0 or not pdf:
            logging.getLogger(__name__).debug("PDF worker failed (%s): %s", self._process.returncode,
                                              errors.decode("utf-8", "replace")[-2000:])
            return None
        return pdf

    def close(self) -> None:
        """End the worker if it still runs, and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    sys.exit(serve())
