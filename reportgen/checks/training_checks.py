"""Checks of the training family: the loss curve, the initial loss and the first gradients."""

from __future__ import annotations

import math
from typing import Any

from reportgen.checks.base import CONCERN_MEASURE_KEY, NOT_APPLICABLE, NOT_MEASURED, Check, CheckSettings, CheckSpec, Finding, Measurement, Param, register
from reportgen.checks.context import CheckContext
from reportgen.numbers import count, number, percent, setting


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


UNFINISHED_EPOCHS = 5
"""Default k: the loss curve's last k epochs judge whether training was still improving when it ended."""
UNFINISHED_MIN_DROP = 0.01
"""Default relative drop over those k epochs (1%) below which a falling loss counts as flat (finished)."""


def unfinished_training(epochs: list[int], losses: list[float], k: int, min_drop: float) -> dict[str, Any] | None:
    """Evidence that training ended while the loss was still falling, else None.

    ``epochs`` and ``losses`` are the monitored loss per epoch (validation loss, else training
    loss), finite values only. It fires when the lowest loss is at the last or the next-to-last
    epoch (one noisy uptick at the end does not hide the trend), the least-squares slope over
    the last ``k`` epochs (k + 1 points: k epoch-to-epoch steps) is negative, and the loss fell by
    at least ``min_drop`` of its value at the window's start: ``(L[-k-1] - min L[-k-1:]) / L[-k-1]``.
    Needs more than ``k`` epochs. The slope is in loss units per epoch.
    """
    if len(losses) <= k:
        return None
    best_index = min(range(len(losses)), key=lambda i: losses[i])
    window_epochs, window = epochs[-k - 1:], losses[-k - 1:]
    mean_epoch, mean_loss = sum(window_epochs) / len(window), sum(window) / len(window)
    spread = sum((e - mean_epoch) ** 2 for e in window_epochs)
    slope = sum((e - mean_epoch) * (v - mean_loss) for e, v in zip(window_epochs, window)) / spread
    drop = (window[0] - min(window)) / window[0] if window[0] > 0 else 0.0
    if best_index < len(losses) - 2 or slope >= 0 or drop < min_drop:
        return None
    return {"best_epoch": epochs[best_index], "last_epoch": epochs[-1], "window_epochs": k,
            "window_start_loss": window[0], "window_best_loss": min(window), "relative_drop": drop, "slope_per_epoch": slope}


@register
class LossCurve(Check):
    spec = CheckSpec(
        id="loss_curve",
        measures="final ÷ starting training loss",
        threshold_range=(0.0, None),
        title="Loss curve",
        family="training",
        detects="Training that diverged (the loss became NaN or infinite), a model that is not learning, "
        "validation loss rising after its best epoch (the onset of overfitting), and training that ended while "
        "the loss was still falling (unfinished).",
        how_to_read="The loss measures how wrong the model is on the data it trains on and should fall over the "
        "epochs. The value is the final training loss divided by the starting loss (the larger of the loss "
        "before the first update and the first epoch's average); near 1 the model learned nothing. A "
        "validation loss that keeps rising after its lowest point means the model started memorising.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.9,
        needs_training=True,
        params=(Param("patience", 3, "Epochs of rising validation loss after its best that count as overfitting.",
                      kind=int, minimum=1, stricter="less"),
                Param("unfinished_epochs", UNFINISHED_EPOCHS, "Last epochs over which a loss still falling at the "
                      "end of training counts as unfinished training.", kind=int, minimum=2, maximum=100),
                Param("unfinished_min_drop", UNFINISHED_MIN_DROP, "Relative loss drop over those epochs that counts "
                      "as still falling (0.01: 1%).", kind=float, minimum=0.0, maximum=1.0, stricter="less")),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        training = ctx.training
        assert training is not None
        history = list(training.history)
        patience = int(settings.params["patience"])
        epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]
        train_losses = [h.get("train_loss") for h in history]
        evidence: dict[str, Any] = {
            "epochs": epochs,
            "train_loss": train_losses,
            "val_loss": [h.get("val_loss") for h in history],
            "init_loss": training.init_loss,
            "first_nonfinite_loss": dict(training.first_nonfinite_loss) if training.first_nonfinite_loss else None,
        }
        bad_epoch = next((e for e, v in zip(epochs, train_losses) if v is not None and not _finite(v)), None)
        if training.first_nonfinite_loss or bad_epoch is not None:
            where = training.first_nonfinite_loss or {"epoch": bad_epoch}
            step = f", step {where['step']}" if "step" in where else ""
            last_good = [v for v in train_losses if _finite(v)]
            before = f" (last finite epoch loss {number(last_good[-1])})" if last_good else ""
            kept = f" Evaluated: {training.evaluated_weights}." if training.evaluated_weights else ""
            return Finding("violation", None, f"Training diverged: the loss or the weights became non-finite at epoch "
                           f"{where.get('epoch')}{step}{before}; lower the learning rate or check the inputs.{kept}", evidence)
        finite = [(e, v) for e, v in zip(epochs, train_losses) if _finite(v)]
        if not finite:
            return Finding.skip("the training history holds no training loss", NOT_MEASURED)
        first_epoch, first = finite[0]
        last_epoch, final = finite[-1]
        start = max(first, training.init_loss) if _finite(training.init_loss) else first
        if len(finite) < 2 and not _finite(training.init_loss):
            return Finding.skip("one epoch and no initial loss: nothing to compare the final loss with", NOT_MEASURED)
        ratio = final / start if start > 0 else (1.0 if final <= 0 else math.inf)
        evidence.update(start_loss=start, final_loss=final, ratio=ratio)
        summary = f"the training loss went from {number(start)} to {number(final)} by epoch {last_epoch} (ratio {number(ratio)})"
        val = [(e, h.get("val_loss")) for e, h in zip(epochs, history) if _finite(h.get("val_loss"))]
        concern = None
        if len(val) > patience:
            best_epoch, best = min(val, key=lambda t: t[1])
            after = [v for e, v in val if e > best_epoch]
            evidence.update(best_val_epoch=best_epoch, best_val_loss=best, epochs_after_best=len(after))
            if len(after) >= patience and after[-1] > best:
                if training.stopped_early:
                    evidence["restored_best_epoch"] = training.best_epoch
                    summary += (f"; validation loss was lowest at epoch {best_epoch} and early stopping kept that "
                                f"epoch's weights")
                else:
                    concern = (f"overfitting from epoch {best_epoch}: validation loss rose from {number(best)} to "
                               f"{number(after[-1])} over the next {len(after)} epochs")
        if concern is None and not training.stopped_early:
            monitored = "validation" if val else "training"
            curve = val if monitored == "validation" else finite
            min_drop = float(settings.params["unfinished_min_drop"])
            unfinished = unfinished_training([e for e, _ in curve], [float(v) for _, v in curve],
                                             int(settings.params["unfinished_epochs"]), min_drop)
            if unfinished is not None:
                evidence["unfinished"] = {"monitored": monitored, **unfinished, "min_drop": min_drop}
                evidence[CONCERN_MEASURE_KEY] = {"label": "loss fall", "value": unfinished["relative_drop"],
                                                 "warns_at": min_drop, "percent": True}
                concern = (f"training may be unfinished: the {monitored} loss was lowest at epoch "
                           f"{unfinished['best_epoch']} of {unfinished['last_epoch']} and fell "
                           f"{percent(unfinished['relative_drop'])} over the last {unfinished['window_epochs']} "
                           f"epochs (slope {number(unfinished['slope_per_epoch'])} per epoch); "
                           + _unfinished_advice(training.early_stopping_patience, training.epochs_run))
        return Measurement(ratio, summary, evidence, violation="The model is not learning", concern=concern)


def _unfinished_advice(patience: int | None, epochs_run: int) -> str:
    """What to change when training looks unfinished: with early stopping configured (it had not stopped training,
    or the check would not ask), only more epochs help; without it, more epochs or early stopping."""
    if patience is None:
        return "raise training.epochs, or set training.early_stopping to stop when the loss stops improving"
    return (f"raise training.epochs: early stopping (patience {patience}) had not stopped training in its "
            f"{epochs_run} epochs")


@register
class InitLoss(Check):
    spec = CheckSpec(
        id="init_loss",
        measures="initial loss ÷ ln(C)",
        threshold_range=(0.0, None),
        title="Initial loss",
        family="training",
        detects="A model that starts training far more wrong than a neutral guess, a sign of a broken "
        "initialisation, a mis-scaled output or a mismatched loss.",
        how_to_read="Before any training, a sensibly initialised classifier spreads its probability evenly and "
        "its loss is about ln(number of classes). The value is the measured first-batch loss divided by that "
        "expectation; far above 1 means the model starts confidently wrong and training wastes its first steps "
        "undoing that, or never recovers.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=3.0,
        tasks=frozenset({"binary", "multiclass"}),
        needs_training=True,
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        training = ctx.training
        assert training is not None
        expected = training.expected_init_loss
        if expected is None or not _finite(expected) or expected <= 0:
            return Finding.skip("there is no expected initial loss to compare with", NOT_APPLICABLE)
        init = training.init_loss
        evidence = {"init_loss": init, "expected_init_loss": expected, "loss": training.loss_name}
        if not _finite(init):
            return Finding("violation", None, f"The loss before the first update is not finite ({init}); the expected "
                           f"value is {number(expected)}.", evidence)
        ratio = init / expected
        evidence["ratio"] = ratio
        return Measurement(ratio, f"the initial loss {number(init)} is {number(ratio)} times the {number(expected)} of a neutral start",
                           evidence, advice="the model starts confidently wrong")


def _count(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape)) if shape else 1


@register
class GradientFlow(Check):
    spec = CheckSpec(
        id="gradient_flow",
        measures="weakest ÷ largest gradient norm (0 when a parameter got none)",
        title="Gradient flow",
        family="training",
        detects="Trainable parameters that receive no gradient (a layer built but never used), non-finite "
        "gradients, and gradients that vanish before reaching the early layers.",
        how_to_read="After the first training step each trainable parameter should have received a gradient, the "
        "signal that tells it how to change. A parameter with none is never trained; a gradient millions of times "
        "smaller than the largest one means that layer barely learns (vanishing gradients). Layers kept in a plain "
        "Python list are not registered and do not appear at all, so compare the parameter count with what you "
        "expect.",
        default_severity="error",
        needs_training=True,
        params=(Param("min_ratio", 1e-5, "A gradient norm below this fraction of the largest one counts as vanishing.",
                      kind=float, minimum=0.0, maximum=1.0, stricter="more"),),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        training = ctx.training
        assert training is not None
        grads = list(training.gradients)
        if not grads:
            return Finding.skip("no gradients were recorded (training ran no backward pass)", NOT_MEASURED)
        min_ratio = float(settings.params["min_ratio"])
        layers = [{"name": g.name, "shape": list(g.shape), "parameters": _count(g.shape), "norm": g.norm,
                   "received": g.received, "finite": g.finite} for g in grads]
        no_grad = [g for g in grads if not g.received]
        nonfinite = [g for g in grads if g.received and (not g.finite or g.norm is None or not math.isfinite(g.norm))]
        healthy = [g for g in grads if g.received and g not in nonfinite]
        largest = max((g.norm for g in healthy), default=0.0)
        vanishing = [g for g in healthy if largest > 0 and g.norm < min_ratio * largest]
        weakest = min((g.norm / largest for g in healthy), default=None) if largest > 0 else None
        value = 0.0 if no_grad else weakest
        total = sum(_count(g.shape) for g in grads)
        unused = sum(_count(g.shape) for g in no_grad)
        evidence = {
            "layers": layers,
            "no_gradient": [g.name for g in no_grad],
            "vanishing": [g.name for g in vanishing],
            "nonfinite": [g.name for g in nonfinite],
            "largest_norm": largest,
            "weakest_ratio": weakest,
            "min_ratio": min_ratio,
            "parameter_tensors": len(grads),
            "parameters": total,
            "parameters_without_gradient": unused,
        }
        if nonfinite:
            names = ", ".join(g.name for g in nonfinite[:5])
            return Finding("violation", None, f"{len(nonfinite)} of {len(grads)} parameter tensors got non-finite gradients "
                           f"in the first step ({names}).", evidence)
        if no_grad:
            names = ", ".join(g.name for g in no_grad[:8]) + (", ..." if len(no_grad) > 8 else "")
            return Finding("violation", value, f"{len(no_grad)} of {len(grads)} trainable parameter tensors ({count(unused)} of "
                           f"{count(total)} parameters) received no gradient, so they are never trained: {names}.", evidence)
        if vanishing:
            first = min(vanishing, key=lambda g: g.norm)
            return Finding("concern", value, f"Gradients vanish: {len(vanishing)} of {len(grads)} parameter tensors get less "
                           f"than {setting(min_ratio)} of the largest gradient norm ({number(largest)}); the weakest, {first.name}, "
                           f"gets {number(first.norm)} ({number(first.norm / largest)} of it).", evidence)
        ratio_text = f"; the weakest gets {number(weakest)} of the largest norm" if weakest is not None else ""
        return Finding("ok", value, f"All {len(grads)} trainable parameter tensors ({count(total)} parameters) received finite "
                       f"gradients{ratio_text}.", evidence)
