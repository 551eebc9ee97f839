"""Checks of the behaviour family: does the model behave like a function of its input?

``stochasticity``, ``batch_dependence``, ``robustness`` and ``feature_importance`` run a few extra
forward passes of the evaluated model on a bounded, seeded sample of the test split (at most
``max_samples`` rows, 10,000 by default), so their cost never grows with the size of the test split
beyond that sample. The sample is drawn from the test split's row sample (``CheckContext.row_sample``:
every row up to 200,000, reportgen/checks/shards.py), so it is the same whatever the number of workers;
the model runs on rank 0. They draw every random number from their own generators inside
``torch.random.fork_rng``, so the RNG state of the rest of the run is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen.checks.base import (
    NOT_APPLICABLE,
    NOT_MEASURED,
    Check,
    CheckSettings,
    CheckSpec,
    Finding,
    Measurement,
    Param,
    register,
)
from reportgen.checks.context import CheckContext
from reportgen.checks.read_only import freeze
from reportgen.numbers import count, number, percent, setting

if TYPE_CHECKING:  # torch is imported when a check runs: rendering a report lists these checks without it
    import torch

CLASSIFICATION = frozenset({"binary", "multiclass"})
DEFAULT_MAX_SAMPLES = 10_000
MAX_EXAMPLES = 5
MIN_SHIFT_SIDE = 16
"""Images are shifted by one pixel only from 16 x 16 up: on an 8 x 8 digit one pixel is 12% of the image, not small."""
MAX_IMPORTANCE_GROUPS = 100
"""Permutation importance shuffles at most this many input columns (or one-hot groups), in input order."""


# ----------------------------------------------------------------------------- shared helpers


def _seed(ctx: CheckContext) -> int:
    return int(getattr(ctx, "seed", 0) or 0)


def sample_indices(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most ``limit`` of ``n`` rows (all rows when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def test_inputs(ctx: CheckContext, limit: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(inputs, labels, source rows) of a seeded sample of at most ``limit`` test samples, on the CPU.

    Drawn from the split's row sample (``ctx.row_sample``, the whole split up to ROW_SAMPLE_MAX_ROWS rows,
    reportgen/checks/shards.py), so the same samples are scored whatever the number of workers. The third
    array names each sample by its row in the source table (``source_rows``), else by its row in the split.
    """
    key = f"behaviour_sample:{limit}"
    if key in ctx.cache:  # several checks read the same sample; a non-tensor dataset is read once
        return ctx.cache[key]
    sample = ctx.row_sample(ctx.evaluation_split())
    picked = sample_indices(len(sample.rows), limit, _seed(ctx))
    x = sample.split.dataset.tensors[0][picked]  # type: ignore[attr-defined]  # the sample is a TensorDataset
    source = sample.split.source_rows if sample.split.source_rows is not None else sample.rows
    ctx.cache[key] = (x, freeze(sample.split.labels[picked]), freeze(np.asarray(source)[picked]))  # shared by checks
    return ctx.cache[key]


def _drawn_from(ctx: CheckContext) -> dict[str, Any]:
    """Evidence that the samples came from the row sample of a larger test split (``RowSample.evidence``)."""
    return ctx.row_sample(ctx.evaluation_split()).evidence()


@contextmanager
def evaluation_mode(ctx: CheckContext) -> Iterator[torch.nn.Module]:
    """The model in eval mode with its RNG forked: the rest of the run sees the RNG state unchanged."""
    import torch
    model = ctx.model
    was_training = model.training
    devices = [ctx.device] if ctx.device is not None and getattr(ctx.device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield model
        finally:
            model.train(was_training)


def output_kind(ctx: CheckContext) -> str:
    """How to read the model's raw output (the pipeline's, else softmax for classification)."""
    if ctx.output_kind:
        return ctx.output_kind
    return "regression" if ctx.task == "regression" else "softmax"


def score(ctx: CheckContext, model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Scores of ``x`` in batches of ``batch_size``: (n, C) probabilities, or (n,) predictions for regression."""
    import torch

    from reportgen.evaluation import probabilities

    kind = output_kind(ctx)
    device = ctx.device or torch.device("cpu")
    parts = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        out = model(batch.to(device))
        if out.dim() == 1:
            out = out.unsqueeze(1)
        if out.shape[0] != len(batch):  # e.g. a squeeze() in forward that drops the batch axis of a batch of one
            raise ValueError(f"the model returned {out.shape[0]} rows for a batch of {len(batch)} samples")
        if ctx.task == "regression":
            parts.append(out.reshape(-1).float().cpu().numpy())
        else:
            parts.append(probabilities(out, kind, ctx.positive_index).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)


def decisions(ctx: CheckContext, scores: np.ndarray) -> np.ndarray:
    """Predicted classes from (n, C) probabilities, with the decision threshold for binary tasks."""
    if ctx.positive_index is not None:
        positive = scores[:, ctx.positive_index] >= ctx.threshold
        return np.where(positive, ctx.positive_index, 1 - ctx.positive_index)
    return scores.argmax(axis=1)


def score_scale(ctx: CheckContext, scores: np.ndarray) -> float:
    """What a score difference is measured against: 1 for probabilities, the spread of predictions for regression."""
    if ctx.task != "regression":
        return 1.0
    spread = float(np.std(scores)) if scores.size else 0.0
    return spread if spread > 0 else max(1.0, float(np.max(np.abs(scores))) if scores.size else 1.0)


def compare(ctx: CheckContext, reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Largest score difference (relative to ``score_scale`` for regression) and share of changed decisions."""
    scale = score_scale(ctx, reference)
    diff = np.abs(np.asarray(other, np.float64) - np.asarray(reference, np.float64))
    per_sample = diff.reshape(len(diff), -1).max(axis=1) / scale if diff.size else np.zeros(0)
    out: dict[str, Any] = {"max_score_difference": float(per_sample.max()) if per_sample.size else 0.0}
    if ctx.task != "regression":
        changed = decisions(ctx, reference) != decisions(ctx, other)
        out["changed_share"] = float(changed.mean()) if changed.size else 0.0
        out["changed"] = int(changed.sum())
    return out


def _no_model(ctx: CheckContext) -> Finding | None:
    if ctx.model is None:
        return Finding.skip("no model is available to run extra forward passes", NOT_APPLICABLE)
    if ctx.evaluation_split() not in ctx.data.splits:
        return Finding.skip(f"there is no {ctx.evaluation_split()} split", NOT_MEASURED)
    return None


SAMPLE_PARAM = Param("max_samples", DEFAULT_MAX_SAMPLES, "Test samples scored (a seeded sample when the split is larger).",
                     kind=int, minimum=10, maximum=1_000_000, stricter="more")
TOLERANCE_TEXT = ("Largest tolerated difference between two scorings of the same sample: in probability for "
                  "classification, in units of the predictions' standard deviation for regression.")


# ----------------------------------------------------------------------------- stochasticity


@register
class Stochasticity(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="stochasticity",
        title="Deterministic outputs",
        family="behaviour",
        detects="A model whose outputs change when the same inputs are scored twice in eval mode: dropout called "
        "with training=True in forward, random noise added at inference, sampling layers.",
        how_to_read="The model, in eval mode, scores the same test samples twice. A deterministic model gives the "
        "same outputs up to float rounding, so the value (the largest difference, in probability; for regression "
        "in units of the predictions' spread) should be near 0. A larger value means every metric in this report "
        "would change on a rerun; the evidence gives the share of samples whose predicted class changed.",
        default_severity="error",
        threshold_key="max",
        default_threshold=1e-4,
        params=(SAMPLE_PARAM,),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        import torch
        missing = _no_model(ctx)
        if missing:
            return missing
        x, _, _ = test_inputs(ctx, settings.params["max_samples"])
        with evaluation_mode(ctx) as model:
            torch.manual_seed(_seed(ctx))
            first = score(ctx, model, x, ctx.batch_size)
            second = score(ctx, model, x, ctx.batch_size)
        found = compare(ctx, first, second)
        value = found["max_score_difference"]
        evidence = {"samples": len(x), **_drawn_from(ctx), "batch_size": ctx.batch_size, **found}
        changed = (f"; {count(found['changed'])} of {count(len(x))} predicted classes ({percent(found['changed_share'])}) changed"
                   if "changed" in found else "")
        unit = "in probability" if ctx.task != "regression" else "in units of the predictions' standard deviation"
        if value > settings.threshold:
            return Finding("violation", value, f"Scoring the same {count(len(x))} test samples twice in eval mode gives different "
                           f"outputs: the largest difference is {number(value)} {unit} (max {setting(settings.threshold)}){changed}. "
                           "Look for dropout or noise applied in forward regardless of model.eval().", evidence)
        return Finding("ok", value, f"Scoring the same {count(len(x))} test samples twice in eval mode gives the same outputs "
                       f"(largest difference {number(value)}, max {setting(settings.threshold)}).", evidence)


# ----------------------------------------------------------------------------- batch dependence


@register
class BatchDependence(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="batch_dependence",
        title="Batch independence",
        family="behaviour",
        detects="A model whose output for a sample depends on the other samples in its batch: normalisation by "
        "batch statistics in forward (x - x.mean(0)), BatchNorm left in training mode, attention across the batch.",
        how_to_read="The same test samples are scored as the report's metrics were (in the scoring batch, up to 8 "
        "times data.batch_size), then in batches of data.batch_size, in a shuffled order, in batches of another "
        "size and one at a time. A model that is a function of each input gives the same outputs in all of them; "
        "the value is the largest difference from the scoring batch (in probability; for regression in units of "
        "the predictions' spread). A large value means a sample's score depends on who else is in its batch, so "
        "scores in production (often batch size 1) differ from those in this report.",
        default_severity="error",
        threshold_key="max",
        default_threshold=1e-4,
        params=(
            Param("max_samples", 2048, "Test samples scored in each arrangement.", kind=int, minimum=4, maximum=100_000,
                  stricter="more"),
            Param("single_samples", 32, "Samples among them also scored one at a time (one forward pass each).",
                  kind=int, minimum=1, maximum=1000, stricter="more"),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        import torch

        from reportgen.evaluation import inference_batch_size
        missing = _no_model(ctx)
        if missing:
            return missing
        x, _, _ = test_inputs(ctx, settings.params["max_samples"])
        n = len(x)
        # The reference is the arrangement the metrics were scored in (evaluation's inference batch), so a model
        # that behaves differently in large batches cannot pass while its reported metrics come from them.
        scoring = max(2, min(inference_batch_size(ctx.batch_size, ctx.data.input_shape), n))
        batch = max(2, min(ctx.batch_size, n))
        other_batch = max(2, batch // 2 - 1) if batch > 4 else batch + 3
        singles = min(settings.params["single_samples"], n)
        order = torch.from_numpy(np.random.default_rng(_seed(ctx)).permutation(n))
        with evaluation_mode(ctx) as model:
            reference = score(ctx, model, x, scoring)
            again = score(ctx, model, x, scoring)
            if compare(ctx, reference, again)["max_score_difference"] > settings.threshold:
                return Finding.skip("the model's outputs change between two identical scorings (see stochasticity), "
                                    "so batch effects cannot be told apart from randomness", NOT_MEASURED)
            shuffled = np.empty_like(reference)
            shuffled[order.numpy()] = score(ctx, model, x[order], scoring)
            configured = score(ctx, model, x, batch) if batch != scoring else None
            resized = score(ctx, model, x, other_batch)
            try:
                alone: np.ndarray | str = score(ctx, model, x[:singles], 1)
            except (RuntimeError, ValueError) as exc:  # e.g. BatchNorm in training mode refuses a batch of one
                alone = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}"
        arrangements = [{"arrangement": f"shuffled, batches of {scoring}", **compare(ctx, reference, shuffled)}]
        if configured is not None:
            arrangements.append({"arrangement": f"batches of {batch} (data.batch_size)", **compare(ctx, reference, configured)})
        arrangements.append({"arrangement": f"batches of {other_batch}", **compare(ctx, reference, resized)})
        if isinstance(alone, str):
            arrangements.append({"arrangement": "one sample at a time", "error": alone})
        else:
            arrangements.append({"arrangement": f"one sample at a time ({singles} samples)",
                                 **compare(ctx, reference[:singles], alone)})
        scored = [a["max_score_difference"] for a in arrangements if "max_score_difference" in a]
        value = max(scored) if scored else None
        evidence = {"samples": n, **_drawn_from(ctx), "reference": f"batches of {scoring}", "scoring_batch_size": scoring,
                    "arrangements": arrangements}
        worst = max((a for a in arrangements if "max_score_difference" in a), key=lambda a: a["max_score_difference"])
        if isinstance(alone, str):
            return Finding("violation", value, f"The model cannot score one sample alone ({alone}): its output depends "
                           "on the batch. Look for BatchNorm in training mode or batch statistics in forward.", evidence)
        if value is not None and value > settings.threshold:
            changed = (f", {percent(worst['changed_share'])} of predicted classes change"
                       if "changed_share" in worst else "")
            return Finding("violation", value, f"A sample's output depends on the other samples in its batch: scored "
                           f"{worst['arrangement']} instead of batches of {scoring} (as the metrics were scored), "
                           f"outputs move by up to {number(value)} "
                           f"(max {setting(settings.threshold)}){changed}. Look for batch statistics in forward "
                           "(x - x.mean(0)) or BatchNorm left in training mode.", evidence)
        sizes = f"batches of {scoring} (as the metrics were scored)" + (f", of {batch} (data.batch_size)" if configured is not None else "")
        return Finding("ok", value, f"Outputs of {count(n)} test samples are the same in {sizes}, shuffled, in "
                       f"batches of {other_batch} and one at a time (largest difference {number(value)}).", evidence)


# ----------------------------------------------------------------------------- robustness


def one_hot_columns(feature_names: tuple[str, ...] | None, width: int) -> np.ndarray:
    """Mask of input columns that encode a category (reportgen names them ``column=category``)."""
    if not feature_names or len(feature_names) != width:
        return np.zeros(width, dtype=bool)
    return np.array(["=" in name for name in feature_names], dtype=bool)


def _perturbations(ctx: CheckContext, x: torch.Tensor, noise: float) -> list[tuple[str, Callable[[torch.Generator], torch.Tensor]]]:
    """Named perturbations of ``x`` at the budget: Gaussian noise (tables and images), 1-pixel shifts (images)."""
    import torch
    if x.dim() == 2:
        train = ctx.row_sample("train").split if "train" in ctx.data.splits else None
        spread = (np.std(train.features, axis=0) if train is not None and train.features is not None
                  else x.float().std(dim=0).numpy())
        spread = np.where(one_hot_columns(ctx.data.feature_names, x.shape[1]), 0.0, spread)
        sigma = torch.as_tensor(noise * spread, dtype=x.dtype)

        def gaussian(gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
            return x + scale * sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)

        # Named with the noise setting, so a finding about the half budget reads against the evidence's setting.
        return [(f"Gaussian noise, sigma = {setting(noise / 2)} x train std per numeric feature (half the noise "
                 f"setting {setting(noise)})", lambda g: gaussian(g, 0.5)),
                (f"Gaussian noise, sigma = {setting(noise)} x train std per numeric feature (the noise setting)", gaussian)]
    pixel_sigma = float(x.float().std())

    def image_noise(gen: torch.Generator) -> torch.Tensor:
        return x + noise * pixel_sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)

    def shifted(dim: int) -> torch.Tensor:
        out = torch.roll(x, 1, dims=dim)
        out.narrow(dim, 0, 1).copy_(x.narrow(dim, 0, 1))  # the edge row/column repeats instead of wrapping round
        return out

    perturbations: list[tuple[str, Callable[[torch.Generator], torch.Tensor]]] = [
        (f"Gaussian noise, sigma = {setting(noise)} x pixel std", image_noise)]
    if x.dim() >= 3 and min(x.shape[-2:]) >= MIN_SHIFT_SIDE:
        perturbations += [("shift by 1 pixel right", lambda g: shifted(-1)), ("shift by 1 pixel down", lambda g: shifted(-2))]
    return perturbations


@register
class Robustness(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="robustness",
        title="Robustness to small perturbations",
        family="behaviour",
        detects="Predictions that flip under perturbations too small to matter: a decision boundary that cuts "
        "through the data's noise level, an over-sharp model.",
        how_to_read="Test inputs are perturbed slightly (numeric features: Gaussian noise at a small fraction "
        "`noise` of each feature's training spread, one-hot columns untouched; images: noise, and 1-pixel shifts "
        "from 16 x 16 pixels up) "
        "and scored again. The value is the largest share of predictions that change class under one "
        "perturbation; a few flips near the decision boundary are normal, many mean the model's answers are "
        "fragile.",
        default_severity="warning",
        threshold_key="max",
        default_threshold=0.05,
        tasks=CLASSIFICATION,
        params=(SAMPLE_PARAM,
                Param("noise", 0.05, "Noise budget as a fraction of each feature's train standard deviation "
                      "(for images, of the pixel standard deviation).", kind=float, minimum=0.0, maximum=10.0, stricter="more")),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding | Measurement:
        import torch
        missing = _no_model(ctx)
        if missing:
            return missing
        x, _, source_rows = test_inputs(ctx, settings.params["max_samples"])
        if not torch.is_floating_point(x):
            return Finding.skip("the inputs are not floating-point numbers, so they cannot be perturbed by noise", NOT_APPLICABLE)
        noise = settings.params["noise"]
        gen = torch.Generator().manual_seed(_seed(ctx))
        table: list[dict[str, Any]] = []
        examples: list[dict[str, Any]] = []
        with evaluation_mode(ctx) as model:
            base = decisions(ctx, score(ctx, model, x, ctx.batch_size))
            for name, perturb in _perturbations(ctx, x, noise):
                moved = decisions(ctx, score(ctx, model, perturb(gen), ctx.batch_size))
                flipped = np.flatnonzero(moved != base)
                table.append({"perturbation": name, "flip_rate": float(len(flipped) / len(x)), "flipped": len(flipped)})
                for i in flipped[: max(0, MAX_EXAMPLES - len(examples))]:
                    examples.append({"sample": int(source_rows[i]), "perturbation": name,
                                     "predicted": ctx.classes[int(base[i])], "after": ctx.classes[int(moved[i])]})
        worst = max(table, key=lambda r: r["flip_rate"])
        value = worst["flip_rate"]
        evidence = {"samples": len(x), **_drawn_from(ctx), "noise": noise, "flip_rates": table, "examples": examples}
        return Measurement(value, f"{percent(value)} of {count(len(x))} test predictions change class under "
                           f"{worst['perturbation']}", evidence,
                           advice="the model's answers are fragile under perturbations that should not matter")


# ----------------------------------------------------------------------------- feature importance


def feature_groups(feature_names: tuple[str, ...] | None, width: int) -> list[tuple[str, list[int]]]:
    """Input columns grouped by original column: one-hot columns ``col=cat`` of one categorical go together."""
    names = feature_names if feature_names and len(feature_names) == width else tuple(f"x{i}" for i in range(width))
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.split("=", 1)[0] if "=" in name else name, []).append(i)
    return list(groups.items())


def _headline(ctx: CheckContext, y: np.ndarray, scores: np.ndarray) -> float:
    """Balanced accuracy (classification) or negated RMSE (regression): higher is better."""
    if ctx.task == "regression":
        return -float(np.sqrt(np.mean((scores.astype(np.float64) - y) ** 2)))
    pred = decisions(ctx, scores)
    recalls = [float(np.mean(pred[y == c] == c)) for c in np.unique(y)]
    return float(np.mean(recalls))


@register
class FeatureImportance(Check):
    uses_row_sample = True
    spec = CheckSpec(
        id="feature_importance",
        title="Feature importance",
        family="behaviour",
        detects="Which inputs the model relies on: a single dominant feature points at leakage, a feature that "
        "should matter but does not points at a data problem. It explains target_leakage and slice findings.",
        how_to_read="Tables: permutation importance on the test split, the drop in balanced accuracy (regression: "
        "the rise in RMSE) when one original column is shuffled (all one-hot columns of a categorical together), "
        "averaged over repeats with its standard deviation. Near 0: the model ignores the column. Images: mean "
        "|gradient x input| per pixel position. The value is the share of the total importance held by the "
        "top feature; this check informs and never fails.",
        default_severity="info",
        params=(SAMPLE_PARAM,
                Param("repeats", 5, "Shuffles per feature (seeded from the run seed).", kind=int, minimum=1, maximum=50)),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        import torch
        missing = _no_model(ctx)
        if missing:
            return missing
        x, y, _ = test_inputs(ctx, settings.params["max_samples"])
        if x.dim() != 2:
            return self._gradient_x_input(ctx, x, settings)
        groups = feature_groups(ctx.data.feature_names, x.shape[1])
        skipped = max(0, len(groups) - MAX_IMPORTANCE_GROUPS)
        groups = groups[:MAX_IMPORTANCE_GROUPS]
        rng = np.random.default_rng(_seed(ctx))
        rows: list[dict[str, Any]] = []
        shuffled = x.clone()  # one buffer: each group's columns are shuffled in place, then restored
        with evaluation_mode(ctx) as model:
            base = _headline(ctx, y, score(ctx, model, x, ctx.batch_size))
            for name, columns in groups:
                drops = []
                original = x[:, columns]
                for _ in range(settings.params["repeats"]):
                    perm = torch.from_numpy(rng.permutation(len(x)))
                    shuffled[:, columns] = original[perm]
                    drops.append(base - _headline(ctx, y, score(ctx, model, shuffled, ctx.batch_size)))
                shuffled[:, columns] = original
                rows.append({"feature": name, "importance": float(np.mean(drops)), "std": float(np.std(drops)),
                             "columns": len(columns)})
        rows.sort(key=lambda r: -r["importance"])
        metric = "RMSE increase" if ctx.task == "regression" else "balanced accuracy drop"
        positive = sum(max(0.0, r["importance"]) for r in rows)
        share = rows[0]["importance"] / positive if positive > 0 and rows[0]["importance"] > 0 else 0.0
        evidence = {"method": "permutation", "metric": metric, "samples": len(x), **_drawn_from(ctx), "repeats": settings.params["repeats"],
                    "baseline": -base if ctx.task == "regression" else base, "importances": rows}
        if skipped:
            evidence["not_measured"] = skipped
        top = ", ".join(f"{r['feature']} ({number(r['importance'])})" for r in rows[:3])
        return Finding("ok", share, f"Permutation importance ({metric} when shuffled) on {count(len(x))} test samples: "
                       f"{top}; the top feature holds {percent(share)} of the total.", evidence)

    def _gradient_x_input(self, ctx: CheckContext, x: torch.Tensor, settings: CheckSettings) -> Finding:
        import torch
        if not torch.is_floating_point(x):
            return Finding.skip("the inputs are not floating-point numbers, so there is no gradient to attribute", NOT_APPLICABLE)
        x = x[:256]
        model = ctx.model
        was_training = model.training
        devices = [ctx.device] if ctx.device is not None and getattr(ctx.device, "type", "cpu") == "cuda" else []
        total = torch.zeros(x.shape[1:], dtype=torch.float64)
        with torch.random.fork_rng(devices=devices):
            model.eval()
            try:
                for start in range(0, len(x), ctx.batch_size):
                    batch = x[start : start + ctx.batch_size].to(ctx.device or "cpu").clone().requires_grad_(True)
                    out = model(batch)
                    out = out.unsqueeze(1) if out.dim() == 1 else out
                    target = out[:, 0] if out.shape[1] == 1 else out.gather(1, out.argmax(1, keepdim=True))[:, 0]
                    (grad,) = torch.autograd.grad(target.sum(), batch)
                    total += (grad * batch).detach().abs().sum(0).double().cpu()
            finally:
                model.train(was_training)
        attribution = (total / len(x)).numpy()
        spatial = attribution.sum(axis=0) if attribution.ndim == 3 else attribution
        if spatial.ndim == 1:
            spatial = spatial[None, :]
        sh, sw = (max(1, -(-size // 32)) for size in spatial.shape)
        h, w = (spatial.shape[0] // sh) * sh, (spatial.shape[1] // sw) * sw
        pooled = spatial[:h, :w].reshape(h // sh, sh, w // sw, sw).sum(axis=(1, 3))
        flat = spatial.ravel()
        share = float(flat.max() / flat.sum()) if flat.sum() > 0 else 0.0
        order = np.argsort(-flat)[:10]
        top = [{"row": int(i // spatial.shape[1]), "column": int(i % spatial.shape[1]), "attribution": float(flat[i])}
               for i in order]
        evidence = {"method": "gradient_x_input", "samples": len(x), **_drawn_from(ctx), "pooling": [sh, sw],
                    "attribution_map": pooled.tolist(), "top_positions": top}
        return Finding("ok", share, f"Mean |gradient x input| over {count(len(x))} test images: the strongest position "
                       f"(row {top[0]['row']}, column {top[0]['column']}) holds {percent(share)} of the total.", evidence)
