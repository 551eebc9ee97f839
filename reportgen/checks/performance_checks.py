"""Checks of the performance family: baselines, minority recall, overfitting, calibration, thresholds."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from reportgen import metric_registry
from reportgen import metrics as M
from reportgen.checks.base import NOT_APPLICABLE, NOT_MEASURED, Check, CheckSettings, CheckSpec, Finding, Measurement, Param, register
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, interval, number, percent, setting
from reportgen.types import Predictions

CLASSIFICATION = frozenset({"binary", "multiclass"})
OVERFIT_METRICS = ("balanced_accuracy", "accuracy", "f1", "f1_macro", "roc_auc")
"""Scores where a train-minus-holdout difference is a gap in points (higher is better, in [0, 1])."""
SMALL_SUPPORT = 30
"""Below this many test samples a class's recall interval is too wide to trust a single number."""


def _metrics(ctx: CheckContext, split: str) -> Mapping[str, Any]:
    """The metric dictionary of a split: the run's own when present, else computed from predictions."""
    found = ctx.metrics.get(split)
    key = "balanced_accuracy" if ctx.task != "regression" else "rmse"
    if found and key in found:
        return found
    cache_key = f"metrics:{split}"
    if cache_key not in ctx.cache:
        pred = ctx.predictions[split]
        ctx.cache[cache_key] = (M.regression_metrics(pred) if ctx.task == "regression"
                                else M.classification_metrics(pred, ctx.classes, ctx.positive_index))
    return ctx.cache[cache_key]


def _prediction(ctx: CheckContext, split: str) -> Predictions | None:
    return ctx.predictions.get(split)


@register
class BaselineComparison(Check):
    spec = CheckSpec(
        id="baseline_comparison",
        measures="balanced-accuracy gain over majority baseline (regression: R²)",
        threshold_range=(None, 1.0),
        title="Baseline comparison",
        family="performance",
        detects="A model that is no better than always predicting the most common class (the accuracy paradox), "
        "or for regression no better than predicting the mean.",
        how_to_read="A model that always answers the most common class can look very accurate when that class "
        "dominates, while being useless. Balanced accuracy averages the hit rate of every class, so such a "
        "baseline scores 1/number-of-classes; the value is how far the model's balanced accuracy rises above "
        "that (for regression, R², where the mean predictor scores 0).",
        default_severity="error",
        threshold_key="min",
        default_threshold=0.1,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split = ctx.evaluation_split()
        if split not in ctx.predictions:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        m = _metrics(ctx, split)
        if ctx.task == "regression":
            r2 = m.get("r2")
            if r2 is None:
                return Finding.skip(f"R² is undefined: the {split} target is constant", NOT_MEASURED)
            evidence = {"split": split, "r2": r2, "baseline_r2": 0.0, "rmse": m.get("rmse"), "baseline_rmse": m.get("target_std")}
            return Measurement(
                r2, f"R² on {split} is {number(r2)} (the mean predictor scores 0)", evidence,
                violation=f"The model {'barely beats' if r2 >= 0 else 'is worse than'} predicting the mean",
                ok="The model beats predicting the mean",
            )
        train_counts = np.array(list(ctx.data.class_counts("train").values()))
        majority = int(np.argmax(train_counts))
        y = np.asarray(ctx.predictions[split].y_true, dtype=np.int64)
        support = np.bincount(y, minlength=ctx.data.num_classes)
        present = support > 0
        baseline_accuracy = float(support[majority] / y.size) if y.size else 0.0
        baseline_balanced = (1.0 / present.sum()) if present[majority] else 0.0
        accuracy, balanced = m["accuracy"], m["balanced_accuracy"]
        if accuracy is None or balanced is None:
            return Finding.skip(f"the {split} split is empty", NOT_MEASURED)
        if int(present.sum()) < 2:
            only = ctx.classes[int(np.flatnonzero(present)[0])]
            return Finding.skip(f"the {split} split holds a single class ({only!r}), so a gain over the majority-class "
                                f"baseline in balanced accuracy is undefined", NOT_MEASURED)
        gain = balanced - baseline_balanced
        evidence = {
            "split": split,
            "majority_class": ctx.classes[majority],
            "model": {"accuracy": accuracy, "balanced_accuracy": balanced},
            "baseline": {"accuracy": baseline_accuracy, "balanced_accuracy": baseline_balanced},
            "gain": gain,
        }
        compared = (f"accuracy {percent(accuracy)} vs {percent(baseline_accuracy)} for always predicting "
                    f"{ctx.classes[majority]!r}, balanced accuracy {number(balanced)} vs {number(baseline_balanced)}")
        paradox = accuracy >= 0.9 or accuracy >= baseline_accuracy
        return Measurement(
            gain, f"{compared}, a gain of {number(gain)} in balanced accuracy over the majority-class baseline", evidence,
            violation="The accuracy paradox" if paradox else "The model barely beats always predicting the majority class",
            ok=("The model beats the majority-class baseline in balanced accuracy"
                + (" (not in plain accuracy: it gives up majority-class hits to find the other classes)"
                   if accuracy < baseline_accuracy else "")),
        )


NEAR_BALANCED = 0.9
"""A class counts as rarer when its train share is under this fraction of a balanced share 1/C.

Shares within 10% of 1/C differ by split noise (digits' 113-119 train rows a class), so such a class is
no minority; judging only the ones a hair under 1/C would pick classes by chance."""


def _rare_classes(classes: tuple[str, ...] | list[str], shares: np.ndarray) -> tuple[list[int], str]:
    """Multiclass classes minority_recall judges, and the phrase that says which and why.

    ``shares``: (C,) train shares summing to 1. Classes under ``NEAR_BALANCED``/C are judged; when none
    is, the classes are near-balanced and all of them are judged (the value is the worst-class recall).
    The phrase ends where the worst judged class's name follows ("..., so all 10 are judged; the worst recall is ").
    """
    c = len(shares)
    balanced = 1.0 / c
    rare = [i for i in range(c) if shares[i] < NEAR_BALANCED * balanced]
    if not rare:
        return list(range(c)), (f"classes are near-balanced in train ({percent(float(shares.min()))}"
                                f"\u2013{percent(float(shares.max()))} each, a balanced share is {percent(balanced)}), "
                                f"so all {c} are judged; the worst recall is ")
    under = f"{percent(NEAR_BALANCED * balanced)} of train (90% of a balanced share)"
    if len(rare) == 1:
        return rare, f"the rarest class, the only one under {under}, is judged: "
    rarest = int(np.argmin(shares))
    listed = ", ".join(f"{classes[i]!r} {percent(float(shares[i]))}" + (" (the rarest)" if i == rarest else "")
                       for i in rare)
    return rare, f"the {len(rare)} classes under {under} are judged ({listed}); the worst recall is "


@register
class MinorityRecall(Check):
    spec = CheckSpec(
        id="minority_recall",
        measures="worse of positive- and rarest-class recall (multiclass: worst recall of the rarer classes, all when near-balanced)",
        threshold_range=(0.0, 1.0),
        title="Minority-class recall",
        family="performance",
        detects="A model that misses most cases of the rare (or positive) class.",
        how_to_read="Recall is the share of a class's real cases that the model finds. For two-class tasks the "
        "value is the worse recall of the positive class and the rarest class; with more classes, the worst recall "
        "among the classes under 90% of a balanced share of train, or among all classes when they are near-balanced. The 95% interval shows how much that number could move by chance; it is wide when the test "
        "set holds few cases of the class.",
        default_severity="error",
        threshold_key="min",
        default_threshold=0.5,
        tasks=CLASSIFICATION,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split = ctx.evaluation_split()
        if split not in ctx.predictions:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        m = _metrics(ctx, split)
        per_class = []
        for name in ctx.classes:
            info = m["per_class"][name]
            ci = info.get("recall_ci95")
            if ci is None and info["support"]:
                ci = M.wilson_interval(round(info["recall"] * info["support"]), info["support"])
            per_class.append({"class": name, "recall": info["recall"], "support": int(info["support"]),
                              "ci95": list(ci) if ci is not None else None})
        counts = np.array(list(ctx.data.class_counts("train").values()), dtype=np.int64)
        shares = counts / max(int(counts.sum()), 1)
        if ctx.task == "binary":
            # The positive class and the train minority class are both judged: naming the majority class as
            # positive must not move the rare class out of the gate's sight.
            minority = int(np.argmin(counts)) if counts.min() < counts.max() else ctx.positive_index
            candidates = sorted({ctx.positive_index, minority})
            roles = {ctx.positive_index: "positive class", minority: "rarest class"}
            if minority == ctx.positive_index:
                roles[minority] = "positive class"
            scope = ""
        else:
            candidates, scope = _rare_classes(ctx.classes, shares)
            roles = {}
        measurable = [i for i in candidates if per_class[i]["support"] > 0]
        evidence = {"split": split, "per_class": per_class, "judged": [ctx.classes[i] for i in candidates]}
        if not measurable:
            judged = " or ".join(repr(ctx.classes[i]) for i in candidates)
            return Finding.skip(f"the {split} split has no samples of {judged}", NOT_MEASURED)
        unmeasured = [ctx.classes[i] for i in candidates if i not in measurable]
        if unmeasured:
            evidence["unmeasured"] = unmeasured
        worst = min(measurable, key=lambda i: per_class[i]["recall"])
        row = per_class[worst]
        recall, support, ci = row["recall"], row["support"], row["ci95"]
        found = round(recall * support)
        # A judged class without test samples has no recall: the others may still fail the check, but their
        # recall cannot let it pass as if that class had been judged.
        concern = (f"{', '.join(map(repr, unmeasured))} {'has' if len(unmeasured) == 1 else 'have'} no samples on "
                   f"{split}, so {'its' if len(unmeasured) == 1 else 'their'} recall is not judged") if unmeasured else None
        if ctx.task == "binary":
            both = len(measurable) == 2
            scope = (f"both the positive class {ctx.classes[ctx.positive_index]!r} and the rarest class "
                     f"{ctx.classes[minority]!r} are judged; the worst recall is " if both else "")
            who = f"{row['class']!r}" if both else f"the {roles[worst]} {row['class']!r}"
        else:
            who = f"{row['class']!r}" if scope.endswith("is ") else f"{row['class']!r} ({percent(float(shares[worst]))} of train)"
        if scope.endswith("is "):
            text = f"{who} on {split}, {number(recall)} ("
        else:
            text = f"the recall of {who} on {split} is {number(recall)} ("
        text += f"{count(found)} of {count(support)} found, 95% CI {interval(ci[0], ci[1])}"
        text += f"; wide because only {count(support)} test cases)" if support < SMALL_SUPPORT else ")"
        return Measurement(recall, f"{scope}{text}", evidence, concern=concern)


@register
class OverfitGap(Check):
    spec = CheckSpec(
        id="overfit_gap",
        measures="train − held-out metric (regression: relative RMSE increase)",
        title="Overfitting gap",
        family="performance",
        detects="A model that scores much better on its training data than on held-out data (memorisation).",
        how_to_read="The same metric is computed on the training data and on data the model never trained on "
        "(validation, else test); the value is the difference. A large gap means the model learned the "
        "training samples rather than a rule that carries over, so expect real-world scores near the held-out "
        "one. For regression the value is the relative increase in RMSE from train to held-out.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.1,
        params=(
            Param("metric", "balanced_accuracy", "Classification metric compared between train and held-out data.",
                  choices=OVERFIT_METRICS, kind=str),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        holdout = ctx.holdout_split()
        missing = [s for s in ("train", holdout) if s not in ctx.predictions]
        if missing:
            return Finding.skip(f"there are no predictions on the {missing[0]} split", NOT_MEASURED)
        train_m, hold_m = _metrics(ctx, "train"), _metrics(ctx, holdout)
        if ctx.task == "regression":
            train_rmse, hold_rmse = train_m["rmse"], hold_m["rmse"]
            if train_rmse is None or hold_rmse is None:
                return Finding.skip("RMSE is undefined on train or the held-out split", NOT_MEASURED)
            floor = max(train_rmse, 1e-12 * max(1.0, abs(train_m.get("target_std") or 0.0)))
            value = (hold_rmse - train_rmse) / floor
            evidence = {"metric": "relative_rmse_gap", "train_split": "train", "holdout_split": holdout,
                        "train": train_rmse, "holdout": hold_rmse, "gap": value}
            compared = (f"RMSE {number(train_rmse)} on train vs {number(hold_rmse)} on {holdout} "
                        f"({'+' if value > 0 else ''}{percent(value)})")
        else:
            metric = settings.params["metric"]
            present = np.unique(np.asarray(ctx.predictions[holdout].y_true)).size
            if present < 2 and metric != "accuracy":
                return Finding.skip(f"the {holdout} split holds a single class, so its {metric} does not measure the "
                                    f"same thing as train's (use metric: accuracy to compare anyway)", NOT_MEASURED)
            train_v, hold_v = train_m.get(metric), hold_m.get(metric)
            if train_v is None or hold_v is None:
                return Finding.skip(f"{metric} is undefined on train or {holdout}", NOT_MEASURED)
            value = train_v - hold_v
            evidence = {"metric": metric, "train_split": "train", "holdout_split": holdout,
                        "train": train_v, "holdout": hold_v, "gap": value}
            compared = (f"{metric_registry.label(metric).lower()} {number(train_v)} on train vs {number(hold_v)} on "
                        f"{holdout} (gap {number(value)})")
        return Measurement(value, compared, evidence, violation="The model overfits", ok="No worrying overfitting")


@register
class Calibration(Check):
    spec = CheckSpec(
        id="calibration",
        measures="expected calibration error, 15 bins",
        threshold_range=(0.0, 1.0),
        title="Calibration",
        family="performance",
        detects="Predicted probabilities that do not match how often the predictions come true.",
        how_to_read="Predictions are grouped into 15 bins by their stated probability, and each bin's average "
        "probability is compared with how often it was actually right; the value (expected calibration error) "
        "is the average gap, weighted by bin size. 0.1 means the stated probabilities are off by about 10 "
        "percentage points on average, so they should not be read as real chances.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.1,
        tasks=CLASSIFICATION,
        params=(Param("bins", 15, "Number of equal-width probability bins.", kind=int, minimum=2, maximum=1000),),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split = ctx.evaluation_split()
        pred = _prediction(ctx, split)
        if pred is None:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        if pred.probs is None:  # the model gives labels, not probabilities
            return Finding.skip(f"there are no class probabilities on the {split} split", NOT_APPLICABLE)
        probs = np.asarray(pred.probs, dtype=np.float64)
        if not np.isfinite(probs).all():
            return Finding.skip(f"some {split} probabilities are not finite", NOT_MEASURED)
        y = np.asarray(pred.y_true, dtype=np.int64)
        if ctx.task == "binary":
            confidence, outcome = probs[:, ctx.positive_index], y == ctx.positive_index
            kind = f"probability of {ctx.classes[ctx.positive_index]!r} vs how often it is the class"
        else:
            confidence, outcome = probs.max(axis=1), probs.argmax(axis=1) == y
            kind = "top-class confidence vs accuracy"
        result = M.calibration_bins(confidence, outcome, n_bins=int(settings.params["bins"]))
        ece = result["ece"]
        if ece is None:
            return Finding.skip(f"the {split} split is empty", NOT_MEASURED)
        evidence = {"split": split, "kind": kind, "ece": ece, "bins": result["bins"]}
        worst = max((b for b in result["bins"] if b["count"]), key=lambda b: abs(b["fraction_positive"] - b["mean_predicted"]))
        detail = (f"worst bin {interval(worst['lower'], worst['upper'], 2)}: predicted {number(worst['mean_predicted'])}, "
                  f"observed {number(worst['fraction_positive'])} over {count(worst['count'])} samples")
        return Measurement(ece, f"expected calibration error on {split} is {number(ece)} ({detail})", evidence,
                           violation=f"Probabilities are miscalibrated on {split}")


@register
class ThresholdTradeoff(Check):
    spec = CheckSpec(
        id="threshold_tradeoff",
        measures="best-F1 threshold",
        title="Decision threshold trade-off",
        family="performance",
        detects="How precision and recall trade off as the decision threshold moves, and whether a required "
        "recall is reachable.",
        how_to_read="A two-class model flags a case as positive when its score passes a threshold; lowering the "
        "threshold finds more real positives (recall) at the cost of more false alarms (lower precision). The "
        "value is the threshold with the best balance of the two (F1); compare it with the threshold in use.",
        default_severity="info",
        tasks=frozenset({"binary"}),
        params=(Param("target_recall", None, "A recall the operating threshold must reach (0-1), or null.",
                      kind=float, minimum=0.0, maximum=1.0, nullable=True, stricter="more"),),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        split = ctx.evaluation_split()
        pred = _prediction(ctx, split)
        if pred is None:
            return Finding.skip(f"there are no predictions on the {split} split", NOT_MEASURED)
        if pred.probs is None:  # the model gives labels, not probabilities
            return Finding.skip(f"there are no class probabilities on the {split} split", NOT_APPLICABLE)
        scores = np.asarray(pred.probs, dtype=np.float64)[:, ctx.positive_index]
        if not np.isfinite(scores).all():
            return Finding.skip(f"some {split} scores are not finite", NOT_MEASURED)
        y = np.asarray(pred.y_true) == ctx.positive_index
        positives = int(y.sum())
        if positives == 0 or positives == y.size:
            which = "only" if positives else "no"
            return Finding.skip(f"the {split} split holds {which} samples of the positive class "
                                f"{ctx.classes[ctx.positive_index]!r}, so precision and recall cannot trade off", NOT_MEASURED)
        sweep = M.prediction_threshold_sweep(pred, ctx.positive_index, M.SWEEP_THRESHOLDS)  # the split's one sort
        operating = M.prediction_threshold_sweep(pred, ctx.positive_index, [ctx.threshold])
        assert sweep is not None and operating is not None  # probabilities present and finite (checked above)
        f1 = np.asarray(sweep["f1"])
        best = int(np.argmax(f1))
        best_t = sweep["thresholds"][best]
        op = {k: operating[k][0] for k in ("precision", "recall", "f1", "predicted_positive")}
        evidence: dict[str, Any] = {
            "split": split, **sweep,
            "best_f1_threshold": best_t, "best_f1": float(f1[best]),
            "operating_threshold": ctx.threshold, "operating": op,
        }
        message = (f"F1 peaks at {number(float(f1[best]))} at threshold {setting(best_t)} (precision "
                   f"{number(sweep['precision'][best])}, recall {number(sweep['recall'][best])}); the operating threshold "
                   f"{setting(ctx.threshold)} gives precision {number(op['precision'])}, recall {number(op['recall'])}")
        target = settings.params.get("target_recall")
        if target is None:
            return Measurement(best_t, message, evidence)
        recalls = np.asarray(sweep["recall"])
        reaching = np.flatnonzero(recalls >= target)
        if not reaching.size:
            evidence["target"] = {"recall": target, "threshold": None, "precision": None}
            return Measurement(best_t, message, evidence, concern=f"no threshold from 0.05 to 0.95 reaches the target "
                               f"recall {setting(target)} (best {number(float(recalls.max()))})")
        at = int(reaching.max())
        evidence["target"] = {"recall": target, "threshold": sweep["thresholds"][at],
                              "precision": sweep["precision"][at], "achieved_recall": sweep["recall"][at]}
        return Measurement(best_t, message + f"; the target recall {setting(target)} holds up to threshold "
                           f"{setting(sweep['thresholds'][at])}, with precision {number(sweep['precision'][at])} there", evidence)
