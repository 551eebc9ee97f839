"""Models: build the configured network, load weights safely, fit a head, and check the output size."""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from reportgen.config import ModelConfig, suggest
from reportgen.errors import ModelError
from reportgen.plugins import call_user_object

Resolver = Callable[[str], Path]


@dataclass(frozen=True)
class ModelInfo:
    """What the report says about the model."""

    kind: str
    class_name: str
    parameters: int
    trainable_parameters: int
    outputs: int
    output_kind: str
    """softmax, sigmoid (one logit for the positive class) or regression."""
    threshold: float
    checkpoint: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the results.json form."""
        return {
            "kind": self.kind, "class_name": self.class_name, "parameters": self.parameters,
            "trainable_parameters": self.trainable_parameters, "outputs": self.outputs,
            "output_kind": self.output_kind, "threshold": self.threshold, "checkpoint": self.checkpoint,
        }


def default_outputs(task: str, num_classes: int) -> int:
    """Outputs of the built-in models: one logit for binary and regression, C logits for multiclass."""
    return num_classes if task == "multiclass" else 1


def _flat_size(input_shape: tuple[int, ...]) -> int:
    size = 1
    for dim in input_shape:
        size *= dim
    return size


def build_linear(input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    """A linear model (logistic or softmax regression, or least squares)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat_size(input_shape), outputs))


def build_mlp(input_shape: tuple[int, ...], outputs: int, hidden: list[int], dropout: float) -> nn.Module:
    """A multi-layer perceptron with ReLU activations."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat_size(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def _construct(cfg: ModelConfig, input_shape: tuple[int, ...], outputs: int, resolve: Resolver) -> nn.Module:
    """Build the module the config names, without weights."""
    if cfg.kind == "linear":
        return build_linear(input_shape, outputs)
    if cfg.kind == "mlp":
        return build_mlp(input_shape, outputs, cfg.hidden, cfg.dropout)
    if cfg.kind == "torchscript":
        assert cfg.path is not None
        path = resolve(cfg.path)
        if not path.is_file():
            raise ModelError(f"model.path: file not found: {path}")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load TorchScript model {path}: {str(exc).splitlines()[0]}") from None
    assert cfg.target is not None
    model = call_user_object(cfg.target, cfg.kwargs, resolve, "model.target", ModelError)
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.target {cfg.target!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict with weights_only=True (a checkpoint is data, never code)."""
    if not path.is_file():
        raise ModelError(f"model.checkpoint: file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickles; the error below says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelError(f"cannot load checkpoint {path.name} safely (weights only): {first}") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"checkpoint {path.name} is not a state_dict (a mapping of parameter names to tensors)")
    return state


def _replace_head(model: nn.Module, attribute: str, out_features: int) -> None:
    """Swap the final nn.Linear at ``attribute`` for one with ``out_features`` outputs."""
    parent: Any = model
    parts = attribute.split(".")
    for part in parts[:-1]:
        parent = getattr(parent, part, None)
        if parent is None:
            raise ModelError(f"model.head.attribute {attribute!r}: the model has no {part!r}")
    old = getattr(parent, parts[-1], None)
    if not isinstance(old, nn.Linear):
        names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        found = "nothing" if old is None else type(old).__name__
        raise ModelError(
            f"model.head.attribute {attribute!r} is {found}, not an nn.Linear{suggest(attribute, names)}"
        )
    setattr(parent, parts[-1], nn.Linear(old.in_features, out_features, bias=old.bias is not None))


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict strictly, explaining missing or unexpected keys."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = str(exc)
        missing = sorted(set(model.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(model.state_dict()))
        if missing or unexpected:
            detail = f"missing {missing[:3]}" if missing else ""
            detail += ("; " if detail else "") + (f"unexpected {unexpected[:3]}" if unexpected else "")
        else:
            detail = text.splitlines()[1].strip() if len(text.splitlines()) > 1 else text
        raise ModelError(f"checkpoint {source} does not fit the model: {detail}") from None


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], task: str, num_classes: int, resolve: Resolver) -> nn.Module:
    """Build the model, replace its head if asked, and load its checkpoint."""
    model = _construct(cfg, input_shape, default_outputs(task, num_classes), resolve)
    state = _read_state_dict(resolve(cfg.checkpoint)) if cfg.checkpoint else None
    if cfg.head is not None and state is not None:
        # A checkpoint may hold the body before fine-tuning (old head) or the whole fine-tuned model (new head).
        try:
            _load_weights(model, state, Path(cfg.checkpoint or "").name)
            _replace_head(model, cfg.head.attribute, cfg.head.out_features)
            return model
        except ModelError:
            pass
    if cfg.head is not None:
        _replace_head(model, cfg.head.attribute, cfg.head.out_features)
    if state is not None:
        _load_weights(model, state, Path(cfg.checkpoint or "").name)
    return model


def output_kind_for(task: str, outputs: int, num_classes: int) -> str | None:
    """The output convention a width implies for a task, or None when it does not fit."""
    if task == "regression":
        return "regression" if outputs == 1 else None
    if task == "binary":
        return {1: "sigmoid", 2: "softmax"}.get(outputs)
    return "softmax" if outputs == num_classes else None


@torch.no_grad()
def probe_outputs(model: nn.Module, sample_x: torch.Tensor, task: str, num_classes: int, head_configured: bool) -> tuple[int, str]:
    """Run one batch to learn the output width, and fail clearly when it does not fit the task."""
    was_training = model.training
    model.eval()
    try:
        outputs = model(sample_x)
    except Exception as exc:
        raise ModelError(
            f"the model cannot run on inputs of shape {tuple(sample_x.shape[1:])} (per sample): "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(outputs, torch.Tensor):
        raise ModelError(f"the model's forward must return a tensor, not {type(outputs).__name__}")
    if outputs.dim() == 1:
        outputs = outputs.unsqueeze(1)
    if outputs.dim() != 2 or outputs.shape[0] != sample_x.shape[0]:
        raise ModelError(f"the model's output has shape {tuple(outputs.shape)}; expected (batch, outputs)")
    width = int(outputs.shape[1])
    kind = output_kind_for(task, width, num_classes)
    if kind is None:
        expected = {"binary": "1 (a sigmoid logit) or 2 (softmax)", "multiclass": str(num_classes), "regression": "1"}[task]
        hint = "" if head_configured else "; to replace the final layer, set model.head: {attribute: <its name>, out_features: N}"
        what = "a regression task needs" if task == "regression" else f"a {task} task with {num_classes} classes needs"
        raise ModelError(f"the model outputs {width} value{'' if width == 1 else 's'} per sample but {what} {expected}{hint}")
    return width, kind


def describe_model(model: nn.Module, cfg: ModelConfig, outputs: int, output_kind: str) -> ModelInfo:
    """Summarise the model for the report."""
    return ModelInfo(
        kind=cfg.kind,
        class_name=type(model).__name__,
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        outputs=outputs,
        output_kind=output_kind,
        threshold=cfg.threshold,
        checkpoint=cfg.checkpoint,
    )


def state_dict_bytes(model: nn.Module) -> bytes:
    """Serialise the model's state_dict for ``model.pt``."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()
