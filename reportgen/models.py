"""Models: build the configured network, load weights safely, fit a head, and check the output size."""

from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import re
import struct
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from reportgen.config import ModelConfig, suggest
from reportgen.data import file_sha256
from reportgen.errors import ModelError
from reportgen.outputs import output_kind_for
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


class ReLUDropout(nn.Module):
    """ReLU followed by dropout with probability ``p``, as one parameter-free module.

    Keeping both in one module makes the built-in mlp's state_dict keys independent of ``dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(x), then dropout in training mode."""
        return nn.functional.dropout(torch.relu(x), self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def build_mlp(input_shape: tuple[int, ...], outputs: int, hidden: list[int], dropout: float) -> nn.Module:
    """A multi-layer perceptron: Flatten, then (Linear, ReLUDropout) per hidden width, then the output Linear.

    state_dict layout (docs/models.md): the Linear layers sit at positions 1, 3, 5, ... of an nn.Sequential,
    so the keys are ``1.weight`` (hidden[0] x inputs), ``1.bias``, ``3.weight``, ... whatever ``dropout`` is.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat_size(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), ReLUDropout(dropout)]
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def upgrade_mlp_state(state: dict[str, torch.Tensor], hidden: list[int]) -> dict[str, torch.Tensor]:
    """Rename a checkpoint written by reportgen 0.1's mlp with dropout > 0 (Linear layers at 1, 4, 7, ...)
    to the current layout (1, 3, 5, ...); any other state_dict is returned as it is."""
    old = {f"{3 * i + 1}.{p}": f"{2 * i + 1}.{p}" for i in range(len(hidden) + 1) for p in ("weight", "bias")}
    if set(state) != set(old):
        return state
    return {old[key]: value for key, value in state.items()}


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
        facts = inspect_archive(path, "model.path")
        if facts is None or facts.kind == "other":
            raise ModelError(f"model.path: {path.name} is not a TorchScript file (torch.jit.save writes a zip archive with "
                             "a code/ folder); save one with torch.jit.save(torch.jit.script(model), path)")
        if facts.kind == "checkpoint":
            raise ModelError(f"model.path: {path.name} is a checkpoint (torch.save), not a TorchScript file; give a "
                             "state_dict as model.checkpoint with model.kind linear, mlp or python, or save the model "
                             "with torch.jit.save(torch.jit.script(model), path)")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"model.path: cannot load TorchScript model {path.name}: {plain_message(str(exc))}") from None
    assert cfg.target is not None
    model = call_user_object(cfg.target, cfg.kwargs, resolve, "model.target", ModelError)
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.target {cfg.target!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")

MAX_CODE_INFLATION = 100
"""A compressed TorchScript source record may inflate to at most this many times its stored size (text
compresses 3-10x; a zip bomb 1000x), and all of them together to at most MAX_CODE_BYTES."""
MAX_CODE_BYTES = 256 << 20


def plain_message(text: str) -> str:
    """The first line of a library's message without terminal escape codes or control characters."""
    first = _ANSI.sub("", text).strip().splitlines()
    return first[0].strip() if first else ""


@dataclass(frozen=True)
class ArchiveFacts:
    """What a PyTorch zip archive holds, read from its central directory (nothing is inflated)."""

    kind: str
    """"checkpoint" (torch.save: data.pkl and data/), "torchscript" (also code/ and constants.pkl) or "other"."""
    pickle_name: str | None


def inspect_archive(path: Path, setting: str) -> ArchiveFacts | None:
    """Refuse an archive that would inflate beyond its size; None when ``path`` is not a zip archive.

    torch.save and torch.jit.save write tensor records *stored* (uncompressed), so a stored record's size is
    bounded by the file's size. Refused (ModelError, exit 2): a compressed record outside TorchScript's code/
    folder, a stored record whose declared size differs from its stored size, records that together are larger
    than the file, and compressed code records beyond MAX_CODE_INFLATION or MAX_CODE_BYTES.
    """
    if not zipfile.is_zipfile(path):
        return None
    archive_size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{setting}: {path.name} is a damaged zip archive ({plain_message(str(exc))})") from None
    stored_total, code_total = 0, 0
    for info in infos:
        in_code = "/code/" in f"/{info.filename}"
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise ModelError(f"{setting}: {path.name} is refused: record {info.filename!r} declares {info.file_size} bytes "
                                 f"but stores {info.compress_size}")
            stored_total += info.file_size
        elif in_code and info.file_size <= MAX_CODE_INFLATION * max(info.compress_size, 1):
            code_total += info.file_size
        else:
            raise ModelError(
                f"{setting}: {path.name} is refused: record {info.filename!r} is compressed ({info.compress_size} bytes "
                f"inflating to {info.file_size}); torch.save writes its records uncompressed, so this is not a file torch wrote"
            )
    if stored_total > archive_size or code_total > MAX_CODE_BYTES:
        raise ModelError(f"{setting}: {path.name} is refused: its records declare {stored_total + code_total} bytes, "
                         f"more than the file's {archive_size}")
    names = [info.filename for info in infos]
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if any("/code/" in f"/{n}" for n in names) or any(n.endswith("/constants.pkl") for n in names):
        return ArchiveFacts("torchscript", pickles[0] if pickles else None)
    return ArchiveFacts("checkpoint" if pickles else "other", pickles[0] if pickles else None)


MAX_PICKLE_SCAN = 16 << 20
"""At most this many bytes of a checkpoint's pickle are scanned to explain a refusal."""


def pickled_classes(path: Path, pickle_name: str | None) -> list[str]:
    """'module.Name' of every global a checkpoint's pickle refers to, read with pickletools (nothing runs).

    ``pickle_name`` is the data.pkl record of a zip checkpoint; None reads the file itself as one pickle.
    """
    try:
        if pickle_name is None:
            with path.open("rb") as handle:
                data = handle.read(MAX_PICKLE_SCAN)
        else:
            with zipfile.ZipFile(path) as archive, archive.open(pickle_name) as handle:
                data = handle.read(MAX_PICKLE_SCAN)
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                module, _, name = arg.partition(" ")
                found.append(f"{module}.{name}")
            elif isinstance(arg, str):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except (ValueError, pickle.UnpicklingError, EOFError, IndexError, KeyError, struct.error):
        pass
    return found


_TENSOR_GLOBALS = ("collections.OrderedDict", "builtins.set", "__builtin__.set")


def _is_tensor_global(name: str) -> bool:
    """Globals a plain state_dict refers to: torch's tensor rebuilders and storages, OrderedDict."""
    return name in _TENSOR_GLOBALS or (name.startswith("torch.") and ".nn.modules." not in name)


def _explain_refused(path: Path, facts: ArchiveFacts | None, detail: str) -> str:
    """One line saying what a checkpoint that torch.load(weights_only=True) refused holds, and what to do."""
    odd = [c for c in pickled_classes(path, facts.pickle_name if facts else None) if not _is_tensor_global(c)]
    if odd:
        module, _, name = odd[0].rpartition(".")
        what = "a pickled model object" if ".nn.modules." in odd[0] else "a pickled Python object"
        return (f"model.checkpoint: {path.name} holds {what} ({name} from {module}), not a state_dict; "
                "save model.state_dict() with torch.save and point model.checkpoint at that file")
    if facts is None:
        return (f"model.checkpoint: {path.name} is not a PyTorch checkpoint (torch.save writes a zip archive) and cannot "
                f"be read as weights: {detail}")
    return f"model.checkpoint: {path.name} cannot be read as weights: {detail}; save model.state_dict() with torch.save"


_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError, IndexError,
               KeyError, TypeError, OverflowError, struct.error)
"""What torch.load raises on bytes that are not a checkpoint: its legacy reader and the unpickler fail on junk
with any of these (b"hello": KeyError 101, one byte: IndexError, a cut legacy file: struct.error)."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict with weights_only=True (a checkpoint is data, never code), after inspect_archive."""
    if not path.is_file():
        raise ModelError(f"model.checkpoint: file not found: {path}")
    facts = inspect_archive(path, "model.checkpoint")
    if facts is not None and facts.kind == "torchscript":
        raise ModelError(f"model.checkpoint: {path.name} is a TorchScript file (a whole compiled model), not a state_dict; "
                         f"use model.kind: torchscript with model.path: {path.name}")
    if facts is not None and facts.kind == "other":
        raise ModelError(f"model.checkpoint: {path.name} is a zip archive but not a PyTorch checkpoint (no data.pkl inside); "
                         "save the weights with torch.save(model.state_dict(), path)")
    try:
        with warnings.catch_warnings():  # torch warns about unusual pickles; the error below says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        detail = plain_message(str(exc).split("WeightsUnpickler error:")[-1]) or exc.__class__.__name__
        if isinstance(exc, (IndexError, KeyError, TypeError, OverflowError, struct.error)):
            detail = "its bytes are not a pickle that torch.load can read"  # the raw message ("101") says nothing
        if "weights_only" in detail or "two options" in detail:
            detail = "it refers to objects other than tensors"
        raise ModelError(_explain_refused(path, facts, detail)) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"model.checkpoint: {path.name} is not a state_dict (a mapping of parameter names to tensors)")
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


def _first_keys(keys: list[str], shown: int = 3) -> str:
    """The first ``shown`` keys, then "and N more" for the rest: ['a', 'b', 'c'] and 2 more."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{keys[:shown]}{more}"


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict strictly, explaining missing or unexpected keys."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = str(exc)
        missing = sorted(set(model.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(model.state_dict()))
        if missing or unexpected:
            detail = "; ".join(f"{what} {_first_keys(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected))
                               if keys)
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
        if cfg.kind == "mlp":
            state = upgrade_mlp_state(state, cfg.hidden)
        _load_weights(model, state, Path(cfg.checkpoint or "").name)
    return model


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


def model_identity(model: nn.Module, checkpoint: Path | None) -> dict[str, Any]:
    """What identifies the evaluated model: weights and checkpoint hashes, class, architecture summary.

    ``weights_sha256`` hashes every state_dict entry (name, dtype, shape, bytes) in order, so it
    is the same for the same weights however they were saved; ``checkpoint_sha256`` hashes the
    checkpoint file as given (None without one).
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    summary = " ".join(str(model).split())
    module = type(model).__module__
    source = getattr(sys.modules.get(module), "__file__", None)
    if module.startswith("reportgen_user_") and source:  # a model file named in the config, imported under a private name
        module = Path(source).name
    return {
        "weights_sha256": digest.hexdigest(),
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint and checkpoint.is_file() else None,
        "module": f"{module}:{type(model).__qualname__}" if module.endswith(".py") else f"{module}.{type(model).__qualname__}",
        "architecture": summary if len(summary) <= 600 else summary[:599] + "…",
    }
