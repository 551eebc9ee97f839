"""Charts as small, deterministic, self-contained SVG strings (matplotlib, headless, no pyplot).

Every function takes plain report data and returns SVG markup, or None when the data is missing
or unusable, so a report renders whatever parts of a run exist. Charts use the Okabe–Ito
colour-blind-safe palette and also differ by line style and marker, so they read in grey print.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import unicodedata
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MAX_POINTS = 400
"""Points per line after thinning: keeps SVGs small and the PDF fast."""
MAX_SCATTER = 1500
MAX_SERIES = 10
MAX_CLASSES_ANNOTATED = 15
MAX_CLASSES_MATRIX = 40
MAX_LAYERS = 40

BASE_FONT = "DejaVu Sans"
"""The font the README's install command provides (Debian's fonts-dejavu-core)."""
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                  "WenQuanYi Zen Hei", "Droid Sans Fallback", "Noto Color Emoji", "Noto Emoji")
"""Fonts used, when installed (e.g. Debian's fonts-noto-cjk), for glyphs DejaVu Sans lacks."""


@functools.lru_cache(maxsize=1)
def chart_fonts() -> tuple[str, ...]:
    """DejaVu Sans, then the installed fallback fonts, in the order matplotlib tries them."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return (BASE_FONT, *(name for name in FALLBACK_FONTS if name in installed))


@functools.lru_cache(maxsize=1)
def _covered_codepoints() -> frozenset[int]:
    """Every code point some chart font has a glyph for."""
    from matplotlib import font_manager, ft2font

    covered: set[int] = set()
    for name in chart_fonts():
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
            covered.update(ft2font.FT2Font(path).get_charmap())
        except (ValueError, RuntimeError, OSError):  # a font that cannot be opened covers nothing
            continue
    return frozenset(covered)


def missing_glyphs(texts: Iterable[Any], limit: int = 40) -> list[str]:
    """The characters of ``texts`` that no installed chart font can draw (at most ``limit``, in order).

    Those show as boxes in the charts and, with the same fonts, in the PDF. Whitespace and
    control characters are not counted. Cost: linear in the total text length.
    """
    covered = _covered_codepoints()
    missing: dict[str, None] = {}
    for value in texts:
        for char in str(value):
            if ord(char) not in covered and not char.isspace() and unicodedata.category(char)[0] not in "CZ":
                missing[char] = None
                if len(missing) >= limit:
                    return list(missing)
    return list(missing)


RC = {
    "svg.hashsalt": "reportgen",
    "svg.fonttype": "none",
    "font.family": list(chart_fonts()),
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "figure.dpi": 72,
    "path.simplify": True,
}

_BLUES = LinearSegmentedColormap.from_list("reportgen_blues", ["#f7fbff", "#0072B2"])


def text(value: Any) -> str:
    """A label safe for matplotlib: ``$`` would start mathtext, so escape it."""
    return str(value).replace("$", r"\$")


def short(value: Any, limit: int = 24) -> str:
    """A label clipped for axes and legends."""
    label = str(value)
    return text(label if len(label) <= limit else label[: limit - 1] + "…")


def numbers(values: Any) -> np.ndarray | None:
    """A 1-D float array from a list (None becomes NaN); None when not a non-empty sequence."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None


def thin(*arrays: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """Keep at most ``limit`` evenly spaced points (always the first and last)."""
    n = len(arrays[0])
    if n <= limit:
        return arrays
    index = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return tuple(a[index] for a in arrays)


def style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series."""
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


@contextmanager
def figure(width: float, height: float, ncols: int = 1, **subplots: Any) -> Iterator[tuple[Figure, Any]]:
    """A figure (inches) and its axes, built under the report's rcParams.

    A bare ``Figure``, not pyplot: no global figure registry to close or leak, no GUI backend to
    import, and the host process's pyplot backend is left alone. ``to_svg`` picks the SVG canvas.
    """
    with matplotlib.rc_context(RC), _quiet_missing_glyphs():
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, fig.subplots(subplots.pop("nrows", 1), ncols, squeeze=True, **subplots)


@contextmanager
def _quiet_missing_glyphs() -> Iterator[None]:
    """Silence matplotlib's one-warning-per-missing-glyph: the report lists them once (view.build)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font", category=UserWarning)
        yield


_TAG = re.compile(r"<[^>]+>")
_ID = re.compile(r'\bid="([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_HREF = re.compile(r'href="#([^"]+)"')
_GROUP = re.compile(r"<(/?)g\b([^>]*)>\s*")
_BARE_GROUP = re.compile(r'\s*(id="[^"]*")?\s*')
_NO_ROTATION = re.compile(r' transform="rotate\(-?0 [^"]*\)"')


def _flatten(svg: str) -> str:
    """Drop the ``<g>`` wrappers that carry nothing but an id, and zero-angle rotations.

    matplotlib wraps every artist in such a group: about half the elements of a chart. Nothing
    refers to those ids, so removing them changes no pixel, while every element less is less
    work for the browser and for WeasyPrint, which styles and paints each one.
    """
    pieces: list[str] = []
    dropped: list[bool] = []
    position = 0
    for tag in _GROUP.finditer(svg):
        if tag.group(1):
            drop = dropped.pop()
        else:
            drop = _BARE_GROUP.fullmatch(tag.group(2)) is not None
            dropped.append(drop)
        pieces.append(svg[position:tag.start()])
        if not drop:
            pieces.append(tag.group(0))
        position = tag.end()
    pieces.append(svg[position:])
    return _NO_ROTATION.sub("", "".join(pieces))


VERIFY_LAYOUT = False
"""When True (the tests set it), ``to_svg`` raises ChartOverflow for a chart that draws outside its
figure (e.g. a title wider than its panel) or whose legend covers a plotting area or a label.
Off by default: the check costs a layout pass per chart."""


class ChartOverflow(AssertionError):
    """A chart's text or artists reach outside its figure, or a legend covers data or text."""


def _check_fits(fig: Any, name: str, tolerance: float = 0.05) -> None:
    """Raise ChartOverflow when the tight bounding box of ``fig`` leaves the figure (inches).

    The tolerance (3.6 pt) admits a frameless legend's invisible border padding, which constrained
    layout lets reach just past the edge; any cut glyph overshoots by more.
    """
    with matplotlib.rc_context(RC), _quiet_missing_glyphs():
        box = fig.get_tightbbox()
    width, height = fig.get_size_inches()
    if box.x0 < -tolerance or box.y0 < -tolerance or box.x1 > width + tolerance or box.y1 > height + tolerance:
        raise ChartOverflow(f"chart {name!r} draws outside its {width:.2f} x {height:.2f} in figure: "
                            f"x {box.x0:.2f}..{box.x1:.2f}, y {box.y0:.2f}..{box.y1:.2f}")
    _check_legends(fig, name)


def _check_legends(fig: Any, name: str, tolerance: float = 2.0) -> None:
    """Raise ChartOverflow when a legend overlaps a plotting area, a title, an axis label or a tick label.

    The charts' rule: legends sit outside the data (below or beside the axes), so no data point
    can hide behind one whatever the data, and they never cover the text that names an axis.
    ``tolerance`` is in pixels at the figure's dpi (72: points).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with matplotlib.rc_context(RC), _quiet_missing_glyphs():
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        legends = [lg for lg in [*(ax.get_legend() for ax in fig.axes), *fig.legends] if lg is not None]
        if not legends:
            return
        obstacles: list[tuple[str, Any]] = []
        for ax in fig.axes:
            if ax.axison and ax.patch.get_visible():
                obstacles.append(("the plotting area", ax.get_window_extent(renderer)))
            texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
            obstacles += [(f"the text {t.get_text()!r}", t.get_window_extent(renderer))
                          for t in texts if t.get_visible() and t.get_text().strip()]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for what, other in obstacles:
                overlap_x = min(box.x1, other.x1) - max(box.x0, other.x0)
                overlap_y = min(box.y1, other.y1) - max(box.y0, other.y0)
                if overlap_x > tolerance and overlap_y > tolerance:
                    raise ChartOverflow(f"chart {name!r}: a legend covers {what}")


def to_svg(fig: Any, name: str) -> str:
    """Serialise ``fig`` as inline SVG: no XML prologue, no metadata, ids prefixed by ``name``.

    Prefixing keeps the ids of several inline SVGs in one HTML page unique.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context(RC), _quiet_missing_glyphs():
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    if VERIFY_LAYOUT:
        _check_fits(fig, name)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = _flatten(svg)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", name)

    def fix(tag: re.Match[str]) -> str:
        t = tag.group(0)
        t = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', t)
        t = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", t)
        return _HREF.sub(lambda m: f'href="#{prefix}-{m.group(1)}"', t)

    svg = _TAG.sub(fix, svg)
    titles = [" ".join(ax.get_title().replace("\\$", "$").split()) for ax in fig.axes if ax.get_title()]
    label = html.escape("; ".join(titles) or name.replace("-", " "), quote=True)
    svg = svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{label}" data-chart="{prefix}" ', 1)
    return svg.strip()


LEGEND_GAP_PT = 34.0
"""How far below the axes a legend starts (points): below the tick marks, one line of tick labels
and the x-axis label (3.5 + 3.5 + 8 pt text + 4 + 9 pt text, with line spacing), whatever the axes' height."""


def _legend_below(ax: Any, ncols: int = 2, handles_of: Any = None, **options: Any) -> None:
    """A legend under the axes (and under their x-axis label), so it never hides a curve or a label.

    ``handles_of``: another axes whose artists the legend names (a reliability diagram's legend
    sits under its histogram). The offset is fixed in points, not a fraction of the axes'
    height, so a short axes does not pull its legend up onto its own axis label.
    """
    from matplotlib.transforms import ScaledTranslation

    below = ax.transAxes + ScaledTranslation(0, -LEGEND_GAP_PT / 72, ax.figure.dpi_scale_trans)
    handles, labels = (handles_of or ax).get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below, ncols=ncols,
              fontsize=7.5, **options)


def _finish(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(text(title))
    ax.set_xlabel(text(xlabel))
    ax.set_ylabel(text(ylabel))


# --- data -----------------------------------------------------------------------------------

def class_distribution(splits: Mapping[str, Any], classes: Sequence[str], name: str = "class-distribution") -> str | None:
    """Grouped bars: share of each class per split (counts in the table next to it)."""
    names = [s for s in splits if isinstance(splits[s], Mapping) and isinstance(splits[s].get("class_counts"), Mapping)]
    if not names:
        return None
    classes = list(classes) or sorted({c for s in names for c in splits[s]["class_counts"]})
    if not classes or len(classes) > MAX_CLASSES_MATRIX:
        return None
    x = np.arange(len(classes))
    width = 0.8 / len(names)
    hatches = ("", "//", "\\\\", "xx")
    top = 0.0
    height = 2.3 if len(classes) <= 4 else 2.8  # two bars of a binary task need no more
    with figure(max(4.5, min(7.0, 1.6 + 0.16 * len(classes) * len(names))), height) as (fig, ax):
        for i, split in enumerate(names):
            counts = splits[split]["class_counts"]
            total = sum(v for v in counts.values() if isinstance(v, (int, float))) or 1
            shares = [float(counts.get(c, 0) or 0) / total for c in classes]
            top = max(top, *shares)
            ax.bar(x + (i - (len(names) - 1) / 2) * width, shares, width, label=text(split),
                   color=OKABE_ITO[i % len(OKABE_ITO)], hatch=hatches[i % len(hatches)], edgecolor="white",
                   linewidth=0.5)
        labels = [short(c, 16) for c in classes]
        crowded = len(labels) * max(len(label) for label in labels) > 40
        ax.set_xticks(x, labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        # Balanced classes (10 % each) would be flat slivers on a 0-100 % axis: scale to the tallest bar.
        ax.set_ylim(0, min(1.0, top * 1.15) or 1.0)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.grid(axis="x", visible=False)
        ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _finish(ax, "Class distribution per split", "class", "share of split")
        return to_svg(fig, name)


# --- classification -----------------------------------------------------------------------

STACK_CONFUSION_ABOVE = 10
"""Above this many classes the two confusion panels are stacked (the template prints them tall)."""
PRINT_WIDTH_IN = 7.1
"""The A4 text width (210 mm less 2 x 14 mm margins = 7.17 in): a chart this wide prints at its own size."""


def _cell_font(cell_pt: float, texts: Iterable[str], bold: float = 0.65) -> float:
    """The font size (pt) at which the longest of ``texts`` fills at most 85 % of a ``cell_pt`` wide cell.

    ``bold``: DejaVu Sans Bold's average digit advance in em. Between 5.5 and 8.5 pt.
    """
    longest = max((len(t) for t in texts), default=1)
    return float(np.clip(0.85 * cell_pt / (bold * longest), 5.5, 8.5))


def confusion(matrix: Any, classes: Sequence[str], name: str = "confusion") -> str | None:
    """Two annotated heatmaps: counts, and rows normalised (each actual class sums to 100 %).

    Up to 10 classes the panels sit side by side within the printed page width, so they print at
    their own size (a 10 x 10 pair at about 8 pt per number); more classes are stacked.
    """
    try:
        counts = np.array(matrix, dtype=float)
    except (TypeError, ValueError):
        return None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        return None
    k = counts.shape[0]
    if k > MAX_CLASSES_MATRIX:
        return None
    labels = [short(c, 14) for c in classes] if len(classes) == k else [str(i) for i in range(k)]
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    annotate = k <= MAX_CLASSES_ANNOTATED
    stacked = k > STACK_CONFUSION_ABOVE
    if stacked:  # two panels and their labels within the A4 text height under a heading (8.4 in)
        side = min(3.8, 1.2 + 0.35 * k)
        size = (side + 1.2, 2 * side + 0.8)
    else:
        side = min((PRINT_WIDTH_IN - 1.2) / 2, max(2.4, 1.6 + 0.32 * k))
        size = (2 * side + 1.2, side + 0.5)
    cell_pt = (side - 0.6) * 72 / k  # the panel less its tick labels and axis label, per class
    # From 7 classes a cell is too narrow for "100%" at a readable size: the panel's title gives the unit.
    percent = "%" if k <= 6 else ""
    normalised_title = "Row-normalised (recall per class)" if percent else "Row-normalised, % (recall per class)"
    with figure(*size, ncols=1 if stacked else 2, nrows=2 if stacked else 1) as (fig, axes):
        for ax, values, title, cells, vmax in (
            (axes[0], counts, "Counts", [f"{int(v):,}" for v in counts.ravel()], max(counts.max(), 1)),
            (axes[1], normalised, normalised_title if stacked else normalised_title.replace(" (", "\n("),
             [f"{v * 100:.0f}{percent}" for v in normalised.ravel()], 1.0),
        ):
            ax.imshow(values / vmax if vmax else values, cmap=_BLUES, vmin=0, vmax=1, aspect="equal",
                      interpolation="nearest")
            ax.grid(False)
            crowded = k > 3 and max(len(label) for label in labels) > 2  # digits "0".."9" stand upright
            ax.set_xticks(range(k), labels, rotation=45 if crowded else 0, ha="right" if crowded else "center")
            ax.set_yticks(range(k), labels)
            if annotate:
                font_size = _cell_font(cell_pt, cells)
                for i in range(k):
                    for j in range(k):
                        share = values[i, j] / vmax if vmax else 0
                        # Empty cells in grey: the few mistakes stand out among a hundred cells in print.
                        colour = "white" if share > 0.55 else ("#1a1a1a" if values[i, j] else "#9a9a9a")
                        ax.text(j, i, cells[i * k + j], ha="center", va="center", fontsize=font_size, color=colour,
                                fontweight="bold" if i == j else "normal")
            for spine in ax.spines.values():
                spine.set_visible(False)
            _finish(ax, title, "predicted class", "actual class")
        return to_svg(fig, name)


@dataclass(frozen=True)
class _CurvePanel:
    """One panel of the ROC/PR pair: where its data lives and how it is labelled."""

    title: str
    x_key: str
    y_key: str
    x_label: str
    y_label: str
    score_name: str
    missing: str


_ROC = _CurvePanel("ROC curve", "fpr", "tpr", "false positive rate", "true positive rate (recall)", "AUC", "no ROC data")
_PR = _CurvePanel("Precision–recall curve", "recall", "precision", "recall", "precision", "AP", "no precision–recall data")


def _curve_points(panel: _CurvePanel, curve: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The (x, y) points of one panel's curve, or None when the data is missing or malformed."""
    x = numbers(curve.get(panel.x_key)) if isinstance(curve, Mapping) else None
    y = numbers(curve.get(panel.y_key)) if isinstance(curve, Mapping) else None
    return (x, y) if x is not None and y is not None and len(x) == len(y) else None


def _curve_panel(ax: Any, panel: _CurvePanel, curve: Any, op: Mapping[str, Any], op_label: str) -> None:
    """Draw one curve with its chance line and operating point, or a note when its data is unusable."""
    points = _curve_points(panel, curve)
    if points is not None:
        x, y = thin(*points)
        auc = curve.get("auc")
        ax.plot(x, y, color=OKABE_ITO[0],
                label=f"model ({panel.score_name} {auc:.3f})" if isinstance(auc, (int, float)) else "model")
        chance = {"color": "#777777", "linestyle": "--", "linewidth": 1}
        if panel is _ROC:
            ax.plot([0, 1], [0, 1], label="chance", **chance)
        elif isinstance(curve.get("prevalence"), (int, float)):
            ax.axhline(curve["prevalence"], label=f"chance (prevalence {curve['prevalence']:.2f})", **chance)
        if isinstance(op.get(panel.x_key), (int, float)) and isinstance(op.get(panel.y_key), (int, float)):
            ax.plot([op[panel.x_key]], [op[panel.y_key]], linestyle="none", marker="D", markersize=7,
                    color=OKABE_ITO[1], markeredgecolor="black", label=op_label)
        _legend_below(ax, 1)
    else:
        ax.text(0.5, 0.5, panel.missing, ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    _finish(ax, panel.title, panel.x_label, panel.y_label)


def roc_pr(curves: Mapping[str, Any], name: str = "roc-pr") -> str | None:
    """ROC and precision–recall side by side, with the operating threshold marked."""
    panels = ((_ROC, curves.get("roc")), (_PR, curves.get("pr")))
    if all(_curve_points(panel, curve) is None for panel, curve in panels):
        return None  # multiclass and regression reports have neither: draw no figure at all
    op = curves.get("operating_point") if isinstance(curves.get("operating_point"), Mapping) else {}
    threshold = op.get("threshold")
    op_label = f"operating point (threshold {threshold:.2f})" if isinstance(threshold, (int, float)) else "operating point"
    with figure(8.0, 3.4, ncols=2) as (fig, axes):
        for ax, (panel, curve) in zip(axes, panels):
            _curve_panel(ax, panel, curve, op, op_label)
        return to_svg(fig, name)


def roc_per_class(per_class: Mapping[str, Any], name: str = "roc-per-class") -> str | None:
    """One-vs-rest ROC curve per class; beyond ten classes, the ten with the lowest AUC."""
    series = []
    for cls, curve in per_class.items():
        if not isinstance(curve, Mapping):
            continue
        fpr, tpr = numbers(curve.get("fpr")), numbers(curve.get("tpr"))
        if fpr is not None and tpr is not None and len(fpr) == len(tpr):
            series.append((cls, fpr, tpr, curve.get("auc")))
    if not series:
        return None
    total = len(series)
    if total > MAX_SERIES:  # the classes the model separates worst are the ones a reviewer must see
        series = sorted(series, key=lambda s: s[3] if isinstance(s[3], (int, float)) else math.inf)[:MAX_SERIES]
    with figure(5.6, 3.8) as (fig, ax):
        for i, (cls, fpr, tpr, auc) in enumerate(series):
            f, t = thin(fpr, tpr, limit=150)
            label = f"{short(cls, 18)} (AUC {auc:.3f})" if isinstance(auc, (int, float)) else short(cls, 18)
            ax.plot(f, t, label=label, markevery=max(1, len(f) // 8), markersize=3, **style(i))
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=":", linewidth=1, label="chance")
        title = "ROC per class (one vs rest)"
        if total > MAX_SERIES:
            title = f"ROC per class: the {MAX_SERIES} lowest AUCs of {total}"
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        _finish(ax, title, "false positive rate", "true positive rate")
        return to_svg(fig, name)


def reliability(calibration: Mapping[str, Any], name: str = "reliability") -> str | None:
    """Reliability diagram (fraction positive against mean predicted) over a count histogram."""
    bins = calibration.get("bins") if isinstance(calibration, Mapping) else None
    if not isinstance(bins, list) or not bins:
        return None
    rows = [b for b in bins if isinstance(b, Mapping)]
    pred = numbers([b.get("mean_predicted") for b in rows])
    frac = numbers([b.get("fraction_positive") for b in rows])
    lower = numbers([b.get("lower") for b in rows])
    upper = numbers([b.get("upper") for b in rows])
    count = numbers([b.get("count", 0) for b in rows])
    if pred is None or frac is None:
        return None
    ok = np.isfinite(pred) & np.isfinite(frac)
    with figure(4.6, 4.5, ncols=1, nrows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1]}) as (fig, (ax, hist)):
        ax.plot([0, 1], [0, 1], color="#777777", linestyle="--", linewidth=1, label="perfectly calibrated")
        ax.plot(pred[ok], frac[ok], color=OKABE_ITO[0], marker="o", label="model")
        ece = calibration.get("ece")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.01, 1.01)
        ax.set_title("Reliability diagram" + (f" (ECE {ece:.3f})" if isinstance(ece, (int, float)) else ""))
        ax.set_ylabel("observed fraction positive")
        if lower is not None and upper is not None and count is not None and np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)):
            hist.bar(lower, np.nan_to_num(count), width=upper - lower, align="edge", color=OKABE_ITO[5],
                     edgecolor="white", linewidth=0.5)
        hist.set_ylabel("samples")
        hist.set_xlabel("mean predicted probability")
        _legend_below(hist, 2, handles_of=ax)  # under the histogram: points above or below the diagonal stay visible
        return to_svg(fig, name)


def undefined_where_nothing_flagged(precision: np.ndarray, predicted_positive: np.ndarray | None) -> np.ndarray:
    """Precision with NaN (drawn as a gap) where nothing is predicted positive: 0/0 is undefined, not 0."""
    if predicted_positive is None or len(predicted_positive) != len(precision):
        return precision
    return np.where(predicted_positive == 0, np.nan, precision)


def threshold_sweep(sweep: Mapping[str, Any], operating_threshold: Any, name: str = "threshold-sweep") -> str | None:
    """Precision, recall and F1 against the decision threshold, operating threshold marked."""
    thresholds = numbers(sweep.get("thresholds")) if isinstance(sweep, Mapping) else None
    if thresholds is None:
        return None
    series = [(key, numbers(sweep.get(key))) for key in ("precision", "recall", "f1")]
    series = [(k, v) for k, v in series if v is not None and len(v) == len(thresholds)]
    if not series:
        return None
    flagged = numbers(sweep.get("predicted_positive"))
    series = [(k, undefined_where_nothing_flagged(v, flagged) if k == "precision" else v) for k, v in series]
    with figure(4.6, 3.6) as (fig, ax):  # printed beside the 4.6 in reliability diagram: same scale
        for i, (key, values) in enumerate(series):
            t, v = thin(thresholds, values)
            ax.plot(t, v, label=text("F1" if key == "f1" else key), markevery=max(1, len(t) // 6), **style(i))
        if isinstance(operating_threshold, (int, float)):
            ax.axvline(operating_threshold, color="black", linestyle=(0, (1, 1)), linewidth=1.2,
                       label=f"operating threshold {operating_threshold:.2f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.01, 1.01)
        _legend_below(ax, 2)
        _finish(ax, "Precision, recall and F1 vs threshold", "decision threshold", "score")
        return to_svg(fig, name)


# --- regression -----------------------------------------------------------------------------

def predicted_vs_actual(scatter: Mapping[str, Any], name: str = "pred-vs-actual", target: str | None = None) -> str | None:
    """Predicted against actual values of ``target`` (the label column) with the identity line."""
    y_true = numbers(scatter.get("y_true")) if isinstance(scatter, Mapping) else None
    y_pred = numbers(scatter.get("y_pred")) if isinstance(scatter, Mapping) else None
    if y_true is None or y_pred is None or len(y_true) != len(y_pred):
        return None
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    y_true, y_pred = thin(y_true[ok], y_pred[ok], limit=MAX_SCATTER)
    if len(y_true) == 0:
        return None
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    with figure(4.4, 4.0) as (fig, ax):
        ax.scatter(y_true, y_pred, s=8, alpha=0.55, color=OKABE_ITO[0], edgecolors="none", label="test samples",
                   rasterized=False)
        ax.plot([lo, hi], [lo, hi], color=OKABE_ITO[1], linestyle="--", linewidth=1.2, label="perfect prediction")
        ax.set_aspect("equal", adjustable="datalim")
        what = short(target, 30) if target else "value"
        _finish(ax, "Predicted vs actual", f"actual {what}", f"predicted {what}")
        _legend_below(ax, 2)
        return to_svg(fig, name)


def residual_histogram(residuals: Mapping[str, Any], name: str = "residuals", target: str | None = None) -> str | None:
    """Histogram of residuals (prediction minus actual ``target``) from precomputed bins."""
    edges = numbers(residuals.get("bin_edges")) if isinstance(residuals, Mapping) else None
    counts = numbers(residuals.get("counts")) if isinstance(residuals, Mapping) else None
    if edges is None or counts is None or len(edges) != len(counts) + 1:
        return None
    with figure(4.4, 3.0) as (fig, ax):
        ax.bar(edges[:-1], np.nan_to_num(counts), width=np.diff(edges), align="edge", color=OKABE_ITO[0],
               edgecolor="white", linewidth=0.4)
        ax.axvline(0, color="black", linestyle="--", linewidth=1, label="zero error")
        _finish(ax, "Residuals", f"residual: predicted − actual {short(target, 30) if target else 'value'}", "samples")
        _legend_below(ax, 1)
        return to_svg(fig, name)


def _power_of_ten(value: float, _pos: Any = None) -> str:
    """Log-axis tick labels as plain text ('1e-3'): mathtext would be slow and bloat the SVG."""
    if value <= 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    exponent = int(round(exponent))
    return {0: "1", 1: "10", 2: "100", -1: "0.1", -2: "0.01"}.get(exponent, f"1e{exponent}")


# --- training -------------------------------------------------------------------------------

def loss_history(history: Sequence[Mapping[str, Any]], best_epoch: Any, expected_init: Any = None,
                 name: str = "loss-history") -> str | None:
    """Train and validation loss per epoch, best epoch marked."""
    return metric_history(history, "loss", best_epoch, expected_init=expected_init, name=name)


def metric_history(history: Sequence[Mapping[str, Any]], metric: str, best_epoch: Any,
                   expected_init: Any = None, name: str = "metric-history",
                   baseline: tuple[str, float] | None = None) -> str | None:
    """``train_<metric>`` and ``val_<metric>`` per epoch, best epoch marked.

    ``baseline`` (label, value), e.g. the majority-class accuracy, is drawn as a line and kept in
    the y-range, with 1 as the top for proportions: a zoom onto 0.967-0.974 would hide that the
    model does no better than always answering the majority class.
    """
    rows = [h for h in history if isinstance(h, Mapping)] if isinstance(history, (list, tuple)) else []
    if not rows:
        return None
    epochs = numbers([h.get("epoch", i + 1) for i, h in enumerate(rows)])
    series = []
    for split in ("train", "val"):
        values = numbers([h.get(f"{split}_{metric}") for h in rows])
        if values is not None and np.isfinite(values).any():
            series.append((split, values))
    if not series or epochs is None:
        return None
    from reportgen import metric_registry

    label = "loss" if metric == "loss" else metric_registry.label(metric)
    with figure(4.6, 3.2) as (fig, ax):  # printed in pairs, at the scale of the other half-width charts
        for i, (split, values) in enumerate(series):
            e, v = thin(epochs, values, limit=200)
            ax.plot(e, v, label="train" if split == "train" else "validation", markevery=max(1, len(e) // 6),
                    **style(i))
        if isinstance(best_epoch, (int, float)) and not isinstance(best_epoch, bool):
            ax.axvline(best_epoch, color="black", linestyle=(0, (1, 1)), linewidth=1.2,
                       label=f"best epoch ({int(best_epoch)})")
        if isinstance(expected_init, (int, float)) and not isinstance(expected_init, bool) and math.isfinite(expected_init):
            ax.axhline(expected_init, color="#777777", linestyle="--", linewidth=0.8,
                       label=f"expected initial loss ({expected_init:.3f})")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if baseline is not None and math.isfinite(baseline[1]):
            ax.axhline(baseline[1], color=OKABE_ITO[1], linestyle="--", linewidth=1.2, label=text(baseline[0]))
            spec = metric_registry.metric(metric)
            if spec is not None and (spec.proportion or metric == "balanced_accuracy"):
                low = min([baseline[1]] + [float(np.nanmin(v)) for _, v in series])
                ax.set_ylim(max(0.0, low - 0.05), 1.005)
        _legend_below(ax, 2)
        _finish(ax, f"{label[:1].upper()}{label[1:]} per epoch", "epoch", text(label))
        return to_svg(fig, name)


def gradient_norms(layers: Sequence[Mapping[str, Any]], name: str = "gradient-norms") -> str | None:
    """Per-layer gradient norm on a log scale; layers without a finite gradient are labelled."""
    rows = [g for g in layers if isinstance(g, Mapping)] if isinstance(layers, (list, tuple)) else []
    if not rows:
        return None
    rows = rows[:MAX_LAYERS]
    names = [short(g.get("name", f"layer {i}"), 32) for i, g in enumerate(rows)]
    norms = numbers([g.get("norm") for g in rows])
    if norms is None:
        return None
    positive = norms[np.isfinite(norms) & (norms > 0)]
    floor = float(positive.min()) / 10 if len(positive) else 1e-8
    with figure(6.2, max(1.6, 0.6 + 0.24 * len(rows))) as (fig, ax):
        y = np.arange(len(rows))
        for i, (g, norm) in enumerate(zip(rows, norms)):
            received = g.get("received", True) is not False
            finite = g.get("finite", True) is not False and math.isfinite(norm)
            if received and finite and norm > 0:
                ax.barh(i, norm, color=OKABE_ITO[0], height=0.7)
            else:
                why = "no gradient" if not received else ("non-finite" if not finite else "zero")
                ax.barh(i, floor * 2, color="white", edgecolor=OKABE_ITO[1], hatch="////", height=0.7)
                ax.text(floor * 3, i, f"  {why}", va="center", fontsize=7, color=OKABE_ITO[1], fontweight="bold")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_power_of_ten))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(left=floor)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        _finish(ax, "Gradient norm per layer (log scale)", "gradient L2 norm", "parameter")
        return to_svg(fig, name)


def drift_effects(rows: Sequence[Mapping[str, Any]], floor: Any, name: str = "feature-drift", limit: int = 10) -> str | None:
    """Horizontal bars: effect size (KS D or total variation distance) of the most shifted features, floor marked.

    Orange bars are the features flagged as drifted (significant and at or past the floor); a bar at
    or past the floor that is not significant is hatched grey, so no bar past the line reads as drift
    the check did not find. The legend names each kind shown.
    """
    rows = [r for r in rows if isinstance(r, Mapping) and isinstance(r.get("effect"), (int, float))][:limit]
    if not rows:
        return None
    has_floor = isinstance(floor, (int, float)) and not isinstance(floor, bool)
    labels = [short(r.get("feature", "?"), 28) for r in rows][::-1]
    effects = [float(r["effect"]) for r in rows][::-1]

    def kind(r: Mapping[str, Any]) -> str:
        if r.get("drifted"):
            return "drifted"
        return "not significant" if has_floor and float(r["effect"]) >= float(floor) else "below the floor"

    kinds = [kind(r) for r in rows][::-1]
    looks = {"drifted": {"color": OKABE_ITO[1], "edgecolor": "white", "label": "drifted (significant, past the floor)"},
             "not significant": {"color": "#BBBBBB", "edgecolor": "#666666", "hatch": "////",
                                 "label": "past the floor, not significant"},
             "below the floor": {"color": OKABE_ITO[0], "edgecolor": "white", "label": "not drifted"}}
    shown = [k for k in looks if k in kinds]
    entries = len(shown) + int(has_floor) if has_floor or len(shown) > 1 else 0
    legend_rows = (entries + 1) // 2
    with figure(6.0, 0.6 + 0.24 * len(rows) + 0.3 * legend_rows) as (fig, ax):  # + the legend rows below
        y = np.arange(len(rows))
        for k in shown:
            at = [i for i, found in enumerate(kinds) if found == k]
            ax.barh([y[i] for i in at], [effects[i] for i in at], **looks[k])
        for i, k in enumerate(kinds):
            if k != "below the floor":
                ax.text(effects[i], i, f" {k}", va="center", fontsize=7.5)
        if has_floor:
            ax.axvline(float(floor), color="black", linestyle="--", linewidth=1.0, label=f"effect floor ({float(floor):g})")
        if entries:
            _legend_below(ax, min(2, entries))
        ax.set_yticks(y, labels)
        ax.set_xlim(0, max(1e-3, max(effects), float(floor) if has_floor else 0) * 1.35)
        ax.grid(axis="y", visible=False)
        _finish(ax, "Most shifted features", "effect size (KS D or total variation distance)", "")
        return to_svg(fig, name)


def slice_metrics(rows: Sequence[Mapping[str, Any]], metric: str, name: str = "slice-metrics") -> str | None:
    """The worst slices' metric with its 95% interval (bars) against the rest of the data (tick); failing slices in orange."""
    rows = [r for r in rows if isinstance(r, Mapping)][:MAX_SERIES] if isinstance(rows, (list, tuple)) else []
    values = numbers([r.get("metric") for r in rows])
    if values is None or not np.isfinite(values).any():
        return None
    rest = numbers([r.get("rest") for r in rows])
    low, high = numbers([r.get("ci_low") for r in rows]), numbers([r.get("ci_high") for r in rows])
    with figure(6.2, max(1.8, 0.7 + 0.3 * len(rows))) as (fig, ax):
        y = np.arange(len(rows))
        colours = [OKABE_ITO[1] if r.get("fails") else OKABE_ITO[0] for r in rows]
        ax.barh(y, np.nan_to_num(values), color=colours, height=0.6)
        if low is not None and high is not None:
            err = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
            ax.errorbar(np.nan_to_num(values), y, xerr=np.nan_to_num(err), fmt="none", ecolor="#333333", capsize=2, linewidth=0.9)
        if rest is not None:
            ax.scatter(rest, y, marker="|", s=160, color=OKABE_ITO[7], zorder=3, label="rest of the data")
            _legend_below(ax, 1)
        ax.set_yticks(y, [short(r.get("slice", ""), 40) for r in rows])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        _finish(ax, f"{metric} in the worst slices (95% interval)", text(metric), "")
        return to_svg(fig, name)


def feature_importance(rows: Sequence[Mapping[str, Any]], metric: str, name: str = "feature-importance") -> str | None:
    """Permutation importance per feature (largest first) with its standard deviation over repeats."""
    rows = [r for r in rows if isinstance(r, Mapping)][:15] if isinstance(rows, (list, tuple)) else []
    values = numbers([r.get("importance") for r in rows])
    if values is None or not np.isfinite(values).any():
        return None
    spread = numbers([r.get("std") for r in rows])
    with figure(6.2, max(1.8, 0.7 + 0.26 * len(rows))) as (fig, ax):
        y = np.arange(len(rows))
        ax.barh(y, np.nan_to_num(values), color=OKABE_ITO[0], height=0.6,
                xerr=None if spread is None else np.nan_to_num(spread), error_kw={"ecolor": "#333333", "capsize": 2, "linewidth": 0.9})
        ax.axvline(0.0, color="#555555", linewidth=0.8)
        ax.set_yticks(y, [short(r.get("feature", ""), 32) for r in rows])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        _finish(ax, "Permutation importance (mean ± sd over repeats)", text(metric), "")
        return to_svg(fig, name)


def attribution_map(grid: Any, name: str = "attribution-map") -> str | None:
    """Mean |gradient × input| per pixel position as a heatmap."""
    try:
        values = np.array(grid, dtype=float)
    except (TypeError, ValueError):
        return None
    if values.ndim != 2 or values.size == 0 or not np.isfinite(values).all():
        return None
    with figure(3.2, 3.0) as (fig, ax):
        image = ax.imshow(values, cmap=_BLUES, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.grid(False)
        ax.set_title(text("Mean |gradient × input|"))
        return to_svg(fig, name)
