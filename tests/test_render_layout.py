"""How the report reads on paper: legends off the data, readable confusion matrices, honest accuracy charts,
and PDF pages that are neither near-empty nor split in the middle of a short list (real WeasyPrint, pypdf)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import pdf_layout
import report_fixtures as F
from pdf_layout import assert_reads_well
from reportgen.render import RENDERERS, RenderOptions, plots, view

A4_TEXT_WIDTH_PT = (210 - 2 * 14) / 25.4 * 72  # the print stylesheet's page width less its margins


# --- charts -----------------------------------------------------------------------------------------------


def _svg_with_legend(place: str) -> str:
    """A chart whose legend is placed as ``place`` says: inside the data, or where _legend_below puts it."""
    with plots.figure(4.6, 1.8) as (fig, ax):  # a short axes: where a fractional offset once pulled the legend up
        ax.plot(np.linspace(0, 1, 50), np.linspace(0, 1, 50), label="model")
        ax.plot([0, 1], [0.5, 0.5], label="majority baseline")
        plots._finish(ax, "A chart", "threshold", "score")
        if place == "inside":
            ax.legend(loc="upper left")
        elif place == "fraction below":  # the old placement: 20 % of the axes' height below it
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
        else:
            plots._legend_below(ax, 2)
        return plots.to_svg(fig, f"legend-{place}")


@pytest.mark.parametrize("place", ["inside", "fraction below"])
def test_a_legend_on_the_data_or_on_an_axis_label_is_caught(place: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    with pytest.raises(plots.ChartOverflow, match="a legend covers"):
        _svg_with_legend(place)


def test_a_legend_below_clears_the_axis_label_of_a_short_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    assert "majority baseline" in _svg_with_legend("below")


def test_reliability_residual_and_scatter_legends_sit_outside_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The charts whose legends once sat on the data: an under-confident model's points fill the upper left."""
    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    bins = [{"lower": i / 10, "upper": (i + 1) / 10, "mean_predicted": i / 10 + 0.05,
             "fraction_positive": min(1.0, i / 10 + 0.4), "count": 10} for i in range(10)]
    assert plots.reliability({"bins": bins, "ece": 0.3})
    skewed = {"bin_edges": list(np.linspace(-2, 8, 21)), "counts": [1] * 10 + list(range(30, 40))}
    assert plots.residual_histogram(skewed, target="mpg")
    rng = np.random.default_rng(0)
    y = rng.uniform(10, 45, 200)
    assert plots.predicted_vs_actual({"y_true": list(y), "y_pred": list(y + rng.normal(0, 3, 200))}, target="mpg")


def test_ten_class_confusion_matrix_prints_at_a_readable_size() -> None:
    k = 10
    matrix = (np.eye(k, dtype=int) * 351).tolist()  # 3-digit counts, 100 % rows, mostly empty cells
    matrix[1][8], matrix[5][9] = 12, 3
    svg = plots.confusion(matrix, [str(i) for i in range(k)])
    width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
    scale = min(1.0, A4_TEXT_WIDTH_PT / width)  # the print stylesheet never enlarges a chart, only shrinks it to fit
    cell_sizes = [float(s) for s in re.findall(r'font-size: ([\d.]+)px[^>]*>(?:\d+|\d{1,3}(?:,\d{3})*)<', svg)]
    assert len(cell_sizes) >= 2 * k * k
    assert min(cell_sizes) * scale >= 7.0, (min(cell_sizes), scale)  # points on paper, as the compact tables (7.2 pt)
    assert "rotate(-45" not in svg  # single-digit class names stand upright
    assert 'fill: #9a9a9a' in svg  # empty cells in grey, so the mistakes stand out


def test_accuracy_per_epoch_shows_the_majority_baseline_and_does_not_zoom_past_it() -> None:
    """The accuracy paradox: 0.967-0.974 against always answering "No" (0.967) must not look like a climb."""
    history = [{"epoch": e, "train_accuracy": 0.967 + 0.0005 * e, "val_accuracy": 0.966 + 0.0004 * e} for e in range(1, 16)]
    svg = plots.metric_history(history, "accuracy", 15, baseline=("always the majority class (0.967)", 0.967))
    assert ">always the majority class (0.967)<" in svg
    ticks = [float(t) for t in re.findall(r">(0\.\d+|1\.0+)</text>", svg)]
    assert ticks and min(ticks) <= 0.93 and max(ticks) >= 1.0  # the axis reaches below the baseline and up to 1


# --- the PDF ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fixture_report_pdf_reads_page_by_page() -> None:
    report = F.cached("failing_binary")
    pdf = RENDERERS["pdf"].render(report, RenderOptions())
    pages = assert_reads_well(pdf, max_pages=11, glossary_terms=[term for term, _ in view.glossary(report)])
    accuracy_chart = pdf_layout.page_of(pages, "Accuracy per epoch")
    assert accuracy_chart and accuracy_chart == pdf_layout.page_of(pages, "always the majority class (0.950)")


@pytest.mark.slow
def test_every_value_of_the_training_table_is_on_the_page_when_one_is_a_sentence() -> None:
    """A long text in a column of numbers (the data-parallel description, 140 characters) once sat unwrapped in
    a number cell: the labels shrank to a word a line and every value was pushed off the page's right edge."""
    import dataclasses

    from reportgen import data_parallel
    import torch

    from reportgen.distributed import World

    base = F.passing_binary()
    workers = data_parallel.describe(World(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo"))
    report = dataclasses.replace(base, training={**base.training, "data_parallel": workers})
    assert len(workers) > 100
    pages = pdf_layout.pages(RENDERERS["pdf"].render(report, RenderOptions()))
    summary = view._training_section(report)["summary"]
    assert [numeric for label, _, numeric in summary if label == "Workers"] == [False]  # set as wrapping text
    on_page = pdf_layout.page_of(pages, "Epochs run")
    assert len(on_page) == 1
    text = pages[on_page[0] - 1].text.replace("- ", "-")
    for label, value, _ in summary:
        assert " ".join(f"{label} {value}".split()) in text, (label, value)
