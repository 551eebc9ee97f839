"""results.json: the Report document, deterministic and strict JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reportgen.render.base import Renderer, RenderOptions

if TYPE_CHECKING:
    from reportgen.report import Report


def render_json(report: "Report", options: RenderOptions) -> bytes:
    """Return ``report.to_dict()`` as indented JSON (NaN and infinity refused).

    Keys keep the order the run built them in (deterministic for a config and seed), because the
    order carries meaning: classes in their configured order, splits as train, val, test, stages
    as they ran. Sorting would scramble all three.
    """
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


RENDERER = Renderer(format="json", filename="results.json", render=render_json)
