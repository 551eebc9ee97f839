"""What a reviewer reads on page 1 and in the charts, from the rendered PDF, summary.md and HTML (issue-level checks)."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader

import report_fixtures as F
from reportgen.render import RENDERERS, RenderOptions


def pdf_page_one(report) -> str:
    reader = PdfReader(io.BytesIO(RENDERERS["pdf"].render(report, RenderOptions())))
    return " ".join(reader.pages[0].extract_text().split())


def test_the_worst_class_recall_is_on_page_one_and_in_the_summary_headline():
    report = F.multiclass()
    per_class = report.metrics["test"]["per_class"]
    worst = min(per_class, key=lambda k: per_class[k]["recall"])
    value = f"{per_class[worst]['recall']:.3f}"
    first = pdf_page_one(report).replace(" ", "")
    assert worst.replace(" ", "") in first and value in first
    summary = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    headline = next(line for line in summary.splitlines() if line.startswith("**Test split"))
    assert worst in headline and value in headline


def test_regression_charts_name_the_target_and_metrics_keep_their_acronyms():
    from conftest import SAMPLES
    from reportgen.config import load_config
    from reportgen.pipeline import execute

    report, _ = execute(load_config(SAMPLES / "auto_regression.yaml"))
    target = report.data["fingerprint"]["target"]
    assert target == "mpg"
    html = RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")
    texts = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", html))
    assert f"actual {target}" in texts and "actual value" not in texts  # the axes name what is predicted
    assert "Rmse" not in html and "RMSE" in html
