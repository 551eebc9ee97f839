"""results.json: the Report document, deterministic and strict JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reportgen import results_schema
from reportgen.render.base import Renderer, RenderOptions

if TYPE_CHECKING:
    from reportgen.report import Report


def render_json(report: "Report", options: RenderOptions) -> bytes:
    """Return the report's results.json document as indented JSON (``results_schema.dumps``).

    Keys keep the order the run built them in (deterministic for a config and seed), because the
    order carries meaning: classes in their configured order, splits as train, val, test, stages
    as they ran. Sorting would scramble all three.
    """
    return results_schema.dumps(report.document())


RENDERER = Renderer(format="json", filename="results.json", render=render_json)
