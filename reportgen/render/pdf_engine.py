"""WeasyPrint behind one function (HTML bytes to PDF bytes), and a worker process that gets it ready early.

Getting WeasyPrint ready costs about as much as drawing the report's charts: importing it (Pango,
fontconfig, HarfBuzz through cffi), then, on the first document, loading the fonts and parsing the C
types cffi meets. :class:`PdfWorker` pays that in a second process, draws part of the charts there
while this process draws the rest (:meth:`PdfWorker.submit`, :meth:`PdfWorker.collect`), then converts the finished HTML.
The PDF is the same, byte for byte, as :func:`html_to_pdf` gives in this process (WeasyPrint's output
depends only on the HTML), and so are the charts (the same ``plots`` functions on the same data).
``reportgen run`` starts the worker before it imports torch (:func:`started_early`), so its start-up
overlaps loading and training; ``reportgen render`` starts it when rendering starts.

This module imports only the standard library at module level: the worker runs this file by path,
and loads ``plots.py`` by path, so it never imports reportgen's package (pydantic, Jinja2) that it
does not need.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import logging
import os
import itertools
import pickle
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from typing import Any, Callable, Iterator, Sequence
from xml.etree import ElementTree


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


_CHART = re.compile(rb'<svg class="chart" role="img" aria-label="([^"<>]*)" data-chart="[^"<>]*" [^<>]*>.*?</svg>',
                    re.S)
"""A chart as ``plots.to_svg`` writes it (no nested ``<svg>``; its text is escaped, so ``</svg>`` ends it)."""


def charts_as_images(html: bytes) -> bytes:
    """``html`` with each inline chart SVG of ``plots.to_svg`` as an ``<img class="chart">`` of the same SVG
    (a ``data:`` URL), for WeasyPrint only: the same vector drawing, laid out at the same intrinsic size.

    Why: WeasyPrint parses an inline SVG's elements as HTML and gives each one (a few hundred per chart)
    a computed style in the page's cascade before its SVG code draws them; an image's SVG is parsed by
    ElementTree and styled by that code only. A chart that ElementTree cannot parse stays inline.
    The page's CSS must style ``.chart`` rather than ``svg.chart`` (report.css does).
    """
    def image(match: re.Match[bytes]) -> bytes:
        svg = match.group(0)
        try:
            ElementTree.fromstring(svg)
        except ElementTree.ParseError:
            return svg
        return (b'<img class="chart" alt="' + match.group(1) + b'" src="data:image/svg+xml;base64,'
                + base64.b64encode(svg) + b'">')

    return _CHART.sub(image, html)


def html_to_pdf(html: bytes, charts_as_img: bool = False) -> bytes:
    """Lay out a self-contained HTML page as a PDF with its print CSS; nothing outside it is fetched.

    ``charts_as_img``: convert the page's charts as images (:func:`charts_as_images`): the same PDF
    pages, faster, for a page whose CSS styles ``.chart``. Raises ExternalResourceRefused when the page
    asks for anything but a ``data:`` URL.
    """
    weasyprint = import_weasyprint()
    if charts_as_img:
        html = charts_as_images(html)

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


ChartJob = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A chart to draw: (name of a ``plots`` function, positional arguments, keyword arguments)."""

_HEADER = struct.Struct(">Q")
_NOTHING = object()
"""What :meth:`_Frames.read` returns when no whole message arrived in time."""
_PIPE_BYTES = 1 << 20
"""Capacity asked for the worker's output pipe (Linux ``F_SETPIPE_SZ``): a dozen charts' SVG fits, so
the worker never waits for this process to read while it draws."""


def _frame(message: Any) -> bytes:
    """One message as written on a pipe: its pickle's length (8 bytes, big-endian), then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class _Frames:
    """Reads the messages of :func:`_frame` from a file descriptor, whole, with or without waiting.

    Only a reportgen process and the worker it started talk over these pipes (both pickle and unpickle).
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._buffer = bytearray()

    def _complete(self) -> Any:
        if len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) >= _HEADER.size + size:
                message = pickle.loads(bytes(self._buffer[_HEADER.size:_HEADER.size + size]))
                del self._buffer[:_HEADER.size + size]
                return message
        return _NOTHING

    def read(self, timeout: float | None) -> Any:
        """The next message; ``_NOTHING`` when none is whole within ``timeout`` seconds (None: wait).

        Raises EOFError when the other end closed the pipe.
        """
        while True:
            message = self._complete()
            if message is not _NOTHING:
                return message
            if timeout is not None and not select.select([self._descriptor], [], [], timeout)[0]:
                return _NOTHING
            chunk = os.read(self._descriptor, _PIPE_BYTES)
            if not chunk:
                raise EOFError
            self._buffer += chunk


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def _load_plots(path: str) -> Any:
    """reportgen's ``plots`` module loaded from its file (it imports only matplotlib, numpy and the
    standard library), or None when it cannot be loaded here (the parent then draws every chart)."""
    try:
        spec = importlib.util.spec_from_file_location("_reportgen_worker_plots", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    except Exception:  # noqa: BLE001 - any failure only means: no charts drawn here
        traceback.print_exc()
        return None


def serve(plots_path: str, warm_pdf: bool) -> int:
    """The worker's main: get ready, then answer the parent's messages until its pipe closes.

    Messages in: ("chart", batch, i, job, verify_layout) -> ("drawing", batch, i), then ("svg", batch, i, svg)
    or ("failed", batch, i), for each chart in the order they came, until ("stop", batch) drops the rest
    of that batch; ("mine", batch, i) drops chart i (the parent draws it); ("pdf", html, charts_as_img) -> ("pdf",
    pdf bytes or None). A failure is a traceback on stderr and
    a "failed" or None answer: the parent then does that part itself, which raises the error in its own
    process. Exit status 0 when the pipe closes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it ends this process
    out = os.dup(1)
    os.dup2(2, 1)  # nothing printed by a library, in Python or in C, may mix into the messages
    sys.stdout = sys.stderr
    frames = _Frames(0)

    def send(message: Any) -> None:
        _write_all(out, _frame(message))

    plots = _load_plots(plots_path)
    if plots is not None:
        try:  # the first chart of a process loads the fonts and builds matplotlib's caches: before it is needed
            plots.loss_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.5}, {"epoch": 2, "train_loss": 0.5}], 1)
        except Exception:  # noqa: BLE001 - a real chart would fail the same way, and the parent redraws it
            traceback.print_exc()
    if warm_pdf:
        try:
            html_to_pdf(_WARM_UP)
        except Exception:  # noqa: BLE001 - the parent converts in-process and raises the error itself
            traceback.print_exc()
    charts: list[Any] = []  # ("chart", ...) messages not drawn yet, in order
    while True:
        try:
            incoming = [frames.read(None if not charts else 0)]
            while incoming[-1] is not _NOTHING:
                incoming.append(frames.read(0))
        except EOFError:
            return 0
        for message in incoming[:-1]:
            if message[0] == "chart":
                charts.append(message)
            elif message[0] == "stop":
                charts = [c for c in charts if c[1] != message[1]]
            elif message[0] == "mine":
                charts = [c for c in charts if (c[1], c[2]) != (message[1], message[2])]
            elif message[0] == "pdf":
                try:
                    pdf: bytes | None = html_to_pdf(message[1], message[2])
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
                    pdf = None
                send(("pdf", pdf))
        if charts:
            _, batch, index, (name, args, kwargs), verify_layout = charts.pop(0)
            if plots is None:
                continue  # never claimed: the parent draws it
            send(("drawing", batch, index))
            plots.VERIFY_LAYOUT = verify_layout
            try:
                svg = getattr(plots, name)(*args, **kwargs)
            except Exception:  # noqa: BLE001 - the parent draws it again and raises the error itself
                traceback.print_exc()
                send(("failed", batch, index))
            else:
                send(("svg", batch, index, svg))


_WORKER_MAIN = ("import runpy, sys\n"
                "if sys.path and sys.path[0] == '':\n"
                "    del sys.path[0]\n"  # the current folder must not shadow a module WeasyPrint imports
                "sys.exit(runpy.run_path(sys.argv[1])['serve'](sys.argv[2], sys.argv[3] == 'pdf'))\n")

_PLOTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots.py")


class PdfWorker:
    """A child Python process that gets WeasyPrint and matplotlib ready now, helps draw the charts and
    converts the HTML page later.

    Use :meth:`start` (or :func:`take_or_start`), then :meth:`submit` and :meth:`collect` charts and :meth:`convert` as needed,
    and :meth:`close` in a ``finally``. The child ignores SIGINT (the parent handles Ctrl-C and closes
    it), exits when its stdin closes (so also when the parent dies), and is killed by :meth:`close`,
    so it never outlives the render. Every method returns None or draws in-process when the child has
    failed; none raises for the child's sake.
    """

    def __init__(self, process: subprocess.Popen[bytes], errors: Any) -> None:
        self._process = process
        self._errors = errors
        assert process.stdout is not None
        self._frames = _Frames(process.stdout.fileno())
        self._writer: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._batches = itertools.count()
        self._broken = False

    @classmethod
    def start(cls, warm_pdf: bool = True) -> "PdfWorker | None":
        """Start the worker; None where no child Python can be started (then convert in-process)."""
        if not sys.executable:
            return None
        errors = tempfile.TemporaryFile()
        try:
            process = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN, os.path.abspath(__file__), _PLOTS_PATH,
                                        "pdf" if warm_pdf else "charts"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
        except OSError:
            errors.close()
            return None
        with contextlib.suppress(AttributeError, OSError):  # Linux only; the default 64 kB works, slower
            import fcntl

            fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr, attr-defined]
        return cls(process, errors)

    def alive(self) -> bool:
        """Whether the child runs and has not failed."""
        return not self._broken and self._process.poll() is None

    def _send(self, message: Any) -> None:
        """Queue ``message`` for the writer thread; raises what pickling ``message`` raises.

        A thread writes, in order, so that neither process waits on the other's full pipe while both
        write (the charts' answers and a large HTML page cross), and this process goes on drawing.
        """
        data = _frame(message)
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_queued, name="reportgen-pdf-worker-input", daemon=True)
            self._writer.start()
        self._outbox.put(data)

    def _write_queued(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        while (data := self._outbox.get()) is not None:
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):  # the child is gone: its output pipe says so (EOF)
                return

    def _receive(self, timeout: float | None) -> Any:
        """The child's next message or ``_NOTHING``; raises EOFError (and marks the child broken) when it ended."""
        try:
            return self._frames.read(timeout)
        except (EOFError, OSError, pickle.UnpicklingError, ValueError) as exc:
            self._broken = True
            self._log_failure()
            raise EOFError from exc

    def _log_failure(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._errors.seek(0)
            logging.getLogger(__name__).debug("PDF worker failed (%s): %s", self._process.poll(),
                                              self._errors.read().decode("utf-8", "replace")[-2000:])

    def new_batch(self) -> int:
        """A number for the charts of one view (answers about another batch are ignored)."""
        return next(self._batches)

    def submit(self, batch: int, index: int, job: ChartJob, verify_layout: bool = False) -> bool:
        """Offer chart ``index`` of ``batch`` to the child, which draws offered charts in order as soon as
        it can; False when it cannot take it (arguments that do not pickle, a child that failed)."""
        if not self.alive():
            return False
        try:
            self._send(("chart", batch, index, job, verify_layout))
        except Exception:  # noqa: BLE001 - e.g. arguments that do not pickle: drawn here
            return False
        return True

    def collect(self, batch: int, jobs: Sequence[ChartJob], offered: Sequence[bool],
                draw: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]) -> list[Any]:
        """``[draw(*job) for job in jobs]``: this process draws from the last chart down while the child goes
        on from the first offered up, until they meet; the same values (``plots`` is deterministic).

        A chart the child failed to draw, or has not drawn when it ends, is drawn here (so its error is
        raised here); then the rest of the batch is withdrawn from the child.
        """
        done: dict[int, Any] = {}
        claimed: set[int] = set()

        def absorb(message: Any) -> None:
            if len(message) < 3 or message[1] != batch:
                return
            if message[0] == "drawing":
                claimed.add(message[2])
            elif message[0] == "svg":
                done.setdefault(message[2], message[3])
            elif message[0] == "failed":
                claimed.discard(message[2])

        try:
            for index in reversed(range(len(jobs))):
                if offered[index] and not self._broken:
                    while (message := self._receive(0)) is not _NOTHING:
                        absorb(message)
                    if index not in claimed and index not in done:
                        # Said before drawing it: the child, between two charts, drops it instead of drawing
                        # it too (where they meet, it would otherwise start the chart this process draws
                        # and read the PDF's HTML only once done with it).
                        self._send(("mine", batch, index))
                    while index in claimed and index not in done:  # the child is drawing it: wait
                        absorb(self._receive(None))
                if index not in done:
                    done[index] = draw(*jobs[index])
        except EOFError:  # the child ended: the rest is drawn here
            pass
        finally:
            if any(offered) and not self._broken:
                self._send(("stop", batch))
        for index in range(len(jobs)):
            if index not in done:
                done[index] = draw(*jobs[index])
        return [done[index] for index in range(len(jobs))]

    def convert(self, html: bytes, charts_as_img: bool = False) -> bytes | None:
        """``html_to_pdf(html, charts_as_img)``, or None when the worker failed (the caller converts
        in-process, which raises the error itself, e.g. ExternalResourceRefused)."""
        if not self.alive():
            return None
        self._send(("pdf", html, charts_as_img))
        try:
            while True:
                message = self._receive(None)
                if message[0] == "pdf":  # answers about charts this process drew first are stale: skipped
                    if message[1] is None:
                        self._log_failure()
                    return message[1]
        except EOFError:
            return None

    def close(self) -> None:
        """End the worker if it still runs, and reap it; closing twice is harmless."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._writer is not None:
            self._outbox.put(None)
            self._writer.join()
        for stream in (self._process.stdin, self._process.stdout, self._errors):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


_early: PdfWorker | None = None
"""The worker :func:`started_early` started, until :func:`take_or_start` takes it."""
_active: PdfWorker | None = None
"""The worker of the render in progress (:func:`rendering_with`): the HTML renderer draws charts with it."""


@contextlib.contextmanager
def started_early(warm_pdf: bool = True) -> Iterator[None]:
    """Start a worker now for the next :func:`take_or_start` of this process, and end it when the block
    exits, however it exits (a run that fails before rendering never uses it)."""
    global _early
    worker = PdfWorker.start(warm_pdf)
    _early = worker
    try:
        yield
    finally:
        _early = None
        if worker is not None:
            worker.close()


def take_or_start() -> PdfWorker | None:
    """The worker :func:`started_early` started when it still runs, else a new one (None if none starts)."""
    global _early
    worker, _early = _early, None
    if worker is not None and worker.alive():
        return worker
    return PdfWorker.start()


@contextlib.contextmanager
def rendering_with(worker: PdfWorker | None) -> Iterator[None]:
    """Within the block, :func:`active_worker` is ``worker``."""
    global _active
    previous, _active = _active, worker
    try:
        yield
    finally:
        _active = previous


def active_worker() -> PdfWorker | None:
    """The worker of the render in progress, when it still runs."""
    return _active if _active is not None and _active.alive() else None


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], sys.argv[2] == "pdf"))
