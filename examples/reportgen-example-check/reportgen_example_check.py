"""An example reportgen check plug-in (docs/plugins.md).

``positive_rate``: does a binary model flag about as many cases as there really are? The value is
the share of test samples predicted positive divided by the share that are positive (1.0 = as many
flagged as exist). A model far below 1 misses cases wholesale; far above, it floods reviewers.
"""

from __future__ import annotations

import numpy as np

from reportgen import Check, CheckContext, CheckSettings, CheckSpec, Finding, Measurement, Param


class PositiveRate(Check):
    """Predicted-positive rate against the real positive rate on the evaluation split."""

    spec = CheckSpec(
        id="positive_rate",
        title="Predicted positive rate",
        family="performance",
        detects="A binary model that flags far fewer (or far more) cases as positive than there really are.",
        how_to_read="The value is the share of test samples the model calls positive divided by the share that "
        "really are positive. 1.0 means it flags as many cases as exist; 0.5 means it flags half as many, so at "
        "best it finds half of them.",
        default_severity="warning",
        threshold_key="min",
        default_threshold=0.5,
        threshold_range=(0.0, None),
        tasks=frozenset({"binary"}),
        measures="predicted ÷ actual positive share on test",
        params=(Param("split", "test", "Split to measure.", choices=("test", "val"), kind=str),),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split = settings.params["split"]
        pred = ctx.predictions.get(split)
        if pred is None:
            return Finding.skip(f"there are no predictions on the {split} split")
        y_true = np.asarray(pred.y_true) == ctx.positive_index
        y_pred = np.asarray(pred.y_pred) == ctx.positive_index
        if not y_true.any():
            return Finding.skip(f"the {split} split holds no positive samples, so the ratio is undefined")
        actual, flagged = float(y_true.mean()), float(y_pred.mean())
        ratio = flagged / actual
        evidence = {"split": split, "actual_positive_share": actual, "predicted_positive_share": flagged}
        return Measurement(
            ratio,
            f"the model flags {flagged:.1%} of {split} samples as {ctx.classes[ctx.positive_index]!r} where "
            f"{actual:.1%} are, a ratio of {ratio:.2f}",
            evidence,
            advice="lower the decision threshold (model.threshold) or weight the classes",
        )
