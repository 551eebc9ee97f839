"""The report's charts drawn together after the view is built, so two processes can share the drawing.

``view.build`` asks for its charts through :data:`charts` (``charts.roc_pr(test)`` instead of
``plots.roc_pr(test)``). Outside :func:`collecting` that draws at once. Inside, it records the call and
returns a :class:`PendingChart`; with a :class:`~reportgen.render.pdf_engine.PdfWorker` the call is also
sent to the worker, which starts drawing while the view is still being built and this process imports
matplotlib. :meth:`ChartBatch.resolve` then draws the charts the worker has not (from the last one
down, the worker going up) and puts the SVG in place of each PendingChart, so the view is exactly what
drawing at once would have built. The charts are independent of each other and of the rest of the
view, which is what makes this safe.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable, Iterator

from markupsafe import Markup

if TYPE_CHECKING:
    from reportgen.render.pdf_engine import ChartJob, PdfWorker


class PendingChart:
    """Stands for a chart that is not drawn yet (always true: a chart function's None is known only once drawn)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def draw(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """``plots.<name>(*args, **kwargs)``: the SVG markup, or None when the data gives no chart."""
    from reportgen.render import plots

    result: str | None = getattr(plots, name)(*args, **kwargs)
    return result


class ChartBatch:
    """The charts recorded while a view was built, in the order it asked for them."""

    def __init__(self, worker: "PdfWorker | None" = None) -> None:
        self.jobs: list[ChartJob] = []
        self._worker = worker
        self._batch = worker.new_batch() if worker is not None else 0
        self._offered: list[bool] = []

    def add(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> PendingChart:
        """Record ``plots.<name>(*args, **kwargs)`` (and offer it to the worker); the PendingChart for its SVG."""
        index = len(self.jobs)
        self.jobs.append((name, args, kwargs))
        self._offered.append(self._worker is not None and self._worker.submit(self._batch, index, self.jobs[-1],
                                                                              _verify_layout()))
        return PendingChart(index)

    def resolve(self, view: Any) -> Any:
        """``view`` with every PendingChart replaced by its SVG as Markup, or None when it draws nothing.

        A PendingChart inside a list that draws nothing is dropped from the list (the view keeps only
        the charts it has, e.g. its list of metric histories). Dicts, lists and tuples are rebuilt
        where they hold a PendingChart; everything else is kept as it is. The SVG is the same whoever
        drew it.
        """
        if self._worker is not None:
            drawn = self._worker.collect(self._batch, self.jobs, self._offered, draw)
        else:
            drawn = [draw(*job) for job in self.jobs]
        svgs = [Markup(svg) if svg else None for svg in drawn]
        return _replace(view, svgs) if self.jobs else view


def _verify_layout() -> bool:
    """``plots.VERIFY_LAYOUT`` when ``plots`` is loaded (the tests set it), else False, without loading it."""
    import sys

    plots = sys.modules.get("reportgen.render.plots")
    return bool(getattr(plots, "VERIFY_LAYOUT", False))


def _replace(value: Any, svgs: list[Markup | None]) -> Any:
    if isinstance(value, PendingChart):
        return svgs[value.index]
    if type(value) is dict:
        return {key: _replace(item, svgs) for key, item in value.items()}
    if type(value) is list:
        return [_replace(item, svgs) for item in value
                if not (isinstance(item, PendingChart) and svgs[item.index] is None)]
    if type(value) is tuple:
        return tuple(_replace(item, svgs) for item in value)
    return value


_collecting: ContextVar[ChartBatch | None] = ContextVar("reportgen_chart_batch", default=None)
"""The batch of the view being built in this thread (or task), if any."""


@contextmanager
def collecting(worker: "PdfWorker | None" = None) -> Iterator[ChartBatch]:
    """Within the block, :data:`charts` records chart calls in the batch given instead of drawing them,
    and offers them to ``worker`` when given."""
    batch = ChartBatch(worker)
    token = _collecting.set(batch)
    try:
        yield batch
    finally:
        _collecting.reset(token)


class _Charts:
    """``charts.<name>(...)`` is ``plots.<name>(...)`` now, or a PendingChart inside :func:`collecting`."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            batch = _collecting.get()
            if batch is None:
                return draw(name, args, kwargs)
            return batch.add(name, args, kwargs)

        return call


charts = _Charts()
"""The chart functions of ``plots``, drawn at once or collected (see the module's docstring)."""
