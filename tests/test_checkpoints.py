"""Checkpoint mistakes get one plain line saying what the file is; hostile archives are refused before torch reads them."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from reportgen.errors import ModelError
from reportgen.models import _read_state_dict, build_mlp, inspect_archive

from conftest import REPO, cancer_config, read_results, write_config
from test_cli import assert_one_line_error, run_cli


def _mlp(hidden=(16,), dropout=0.0) -> nn.Module:
    return build_mlp((30,), 1, list(hidden), dropout)


def _expect_exit_2(tmp_path: Path, csv: Path, model: dict, *fragments: str) -> None:
    document = cancer_config(csv, model=model)
    del document["training"]
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2, err
    assert_one_line_error(err, *fragments)
    assert "\x1b" not in err and "weights_only" not in err and "two options" not in err


def test_a_whole_pickled_model_says_save_the_state_dict(tmp_path: Path, cancer_csv: Path):
    """torch.save(model) of the built-in mlp (the nn.Sequential object itself, not its state_dict)."""
    torch.save(_mlp(), tmp_path / "whole.pt")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "mlp", "hidden": [16], "checkpoint": "whole.pt"},
                   "whole.pt holds a pickled model object (Sequential from torch.nn.modules.container), not a state_dict",
                   "save model.state_dict()")


def test_state_dict_given_as_torchscript_and_torchscript_given_as_checkpoint(tmp_path: Path, cancer_csv: Path):
    """A state_dict file named as model.path of kind torchscript; a torch.jit.save file named as model.checkpoint."""
    torch.save(_mlp().state_dict(), tmp_path / "weights.pt")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "torchscript", "path": "weights.pt"},
                   "model.path: weights.pt is a checkpoint (torch.save), not a TorchScript file")
    torch.jit.save(torch.jit.script(_mlp()), tmp_path / "scripted.pt")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "mlp", "hidden": [16], "checkpoint": "scripted.pt"},
                   "model.checkpoint: scripted.pt is a TorchScript file", "model.kind: torchscript")


def test_a_zip_that_is_not_a_checkpoint(tmp_path: Path, cancer_csv: Path):
    """A zip archive holding one text file, named as a checkpoint and as a TorchScript file."""
    with zipfile.ZipFile(tmp_path / "notes.pt", "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "mlp", "hidden": [16], "checkpoint": "notes.pt"},
                   "notes.pt is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "torchscript", "path": "notes.pt"}, "notes.pt is not a TorchScript file")


def _zip_bomb(path: Path, inflated: int) -> None:
    """A real state_dict archive whose pickle record ('bomb/data.pkl', which torch.load reads whole) is deflated
    and padded with ``inflated`` zero bytes: well under 1 MB on disk."""
    torch.save(_mlp().state_dict(), path.with_suffix(".real"))
    with zipfile.ZipFile(path.with_suffix(".real")) as real, zipfile.ZipFile(path, "w") as bomb:
        for info in real.infolist():
            if not info.filename.endswith("/data.pkl"):
                bomb.writestr(info, real.read(info.filename))
                continue
            record_info = zipfile.ZipInfo(info.filename)
            record_info.compress_type = zipfile.ZIP_DEFLATED
            with bomb.open(record_info, "w") as record:
                record.write(real.read(info.filename))  # the real pickle, then zeros pickle never reads
                chunk = bytes(1 << 20)
                for _ in range(inflated >> 20):
                    record.write(chunk)


_UNDER_LIMIT = """
import resource, sys
from pathlib import Path
import torch
from reportgen.errors import ModelError
from reportgen.models import _read_state_dict
used = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), resource.RLIM_INFINITY))
path = Path(sys.argv[2])
if sys.argv[1] == 'torch':
    try:
        torch.load(path, weights_only=True)
    except BaseException as exc:  # what torch does alone under the limit
        print('torch failed:', type(exc).__name__)
        sys.exit(0)
    sys.exit(5)
try:
    _read_state_dict(path)
except ModelError as exc:
    print('refused:', exc)
    sys.exit(0)
sys.exit(5)
"""


def test_a_zip_bomb_checkpoint_is_refused_under_a_memory_limit(tmp_path: Path):
    """A checkpoint whose pickle record inflates to 320 MiB (under 1 MB on disk), loaded in a subprocess whose
    address space is limited to what it already uses plus 256 MiB. torch.load alone runs out of memory there;
    reportgen refuses the file from its central directory, before anything is inflated."""
    bomb = tmp_path / "bomb.pt"
    _zip_bomb(bomb, 320 << 20)
    assert bomb.stat().st_size < 1 << 20
    alone = subprocess.run([sys.executable, "-c", _UNDER_LIMIT, "torch", str(bomb)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0 and "torch failed" in alone.stdout, alone.stdout + alone.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", _UNDER_LIMIT, "reportgen", str(bomb)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "refused: model.checkpoint: bomb.pt is refused: record 'bomb/data.pkl' is compressed" in done.stdout


def test_archive_bounds(tmp_path: Path):
    """A stored record that declares more bytes than it stores; a real TorchScript file (deflated code/ records) passes."""
    torch.jit.save(torch.jit.script(_mlp()), tmp_path / "scripted.pt")
    assert inspect_archive(tmp_path / "scripted.pt", "model.path").kind == "torchscript"
    torch.save(_mlp().state_dict(), tmp_path / "w.pt")
    facts = inspect_archive(tmp_path / "w.pt", "model.checkpoint")
    assert facts.kind == "checkpoint" and facts.pickle_name == "w/data.pkl"
    raw = bytearray((tmp_path / "w.pt").read_bytes())
    central = raw.rindex(b"PK\x01\x02")  # the last central directory entry: bump its declared size
    raw[central + 24 : central + 28] = (10**9).to_bytes(4, "little")
    (tmp_path / "lying.pt").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="is refused: record .* declares 1000000000 bytes"):
        inspect_archive(tmp_path / "lying.pt", "model.checkpoint")


def test_mlp_weights_do_not_depend_on_dropout(tmp_path: Path, cancer_csv: Path):
    """Train the built-in mlp with dropout 0.1, then evaluate its model.pt with dropout 0.0 (and a 0.1 reportgen
    layout checkpoint, Linear layers at 1, 4), and get the same test metrics."""
    trained = cancer_config(cancer_csv, model={"kind": "mlp", "hidden": [16, 8], "dropout": 0.1})
    trained["training"] = {"epochs": 3, "lr": 0.01}
    code, _, err = run_cli("run", str(write_config(tmp_path, trained)), "--out", str(tmp_path / "a"))
    assert code in (0, 1), err
    state = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert sorted(state) == ["1.bias", "1.weight", "3.bias", "3.weight", "5.bias", "5.weight"]
    assert set(state) == set(_mlp((16, 8), 0.0).state_dict())
    evaluated = cancer_config(cancer_csv, model={"kind": "mlp", "hidden": [16, 8], "dropout": 0.0, "checkpoint": "a/model.pt"})
    del evaluated["training"]
    code, _, err = run_cli("run", str(write_config(tmp_path, evaluated)), "--out", str(tmp_path / "b"))
    assert code in (0, 1), err
    assert read_results(tmp_path / "b")["metrics"]["test"] == read_results(tmp_path / "a")["metrics"]["test"]
    old_layout = {key.replace("3.", "4.").replace("5.", "7.") if key[0] in "35" else key: value for key, value in state.items()}
    torch.save(old_layout, tmp_path / "old.pt")
    evaluated["model"]["checkpoint"] = "old.pt"
    code, _, err = run_cli("run", str(write_config(tmp_path, evaluated)), "--out", str(tmp_path / "c"))
    assert code in (0, 1), err
    assert read_results(tmp_path / "c")["metrics"]["test"] == read_results(tmp_path / "a")["metrics"]["test"]


def _junk_files(tmp_path: Path) -> dict[str, bytes]:
    """Bytes that are no checkpoint: torch.load raised IndexError, KeyError or struct.error on several of them."""
    buffer = io.BytesIO()
    torch.save(_mlp().state_dict(), buffer)
    archive = buffer.getvalue()
    legacy = io.BytesIO()
    torch.save(_mlp().state_dict(), legacy, _use_new_zipfile_serialization=False)
    old = legacy.getvalue()
    return {"empty": b"", "one_byte": b"a", "text": b"hello", "truncated_zip": archive[: len(archive) // 2],
            "legacy_prefix": old[:40], "legacy_cut": old[: len(old) // 2], "pickle_header": b"\x80\x02junk"}


def test_every_malformed_checkpoint_is_not_a_pytorch_checkpoint(tmp_path: Path):
    """Empty, one byte, text, a cut zip archive, a cut legacy torch.save file: ModelError (exit 2), never a crash."""
    for name, content in _junk_files(tmp_path).items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(content)
        with pytest.raises(ModelError, match="is not a PyTorch checkpoint") as caught:
            _read_state_dict(path)
        assert "\n" not in str(caught.value), name


def test_a_text_file_as_checkpoint_exits_2(tmp_path: Path, cancer_csv: Path):
    (tmp_path / "hello.pt").write_text("hello")
    _expect_exit_2(tmp_path, cancer_csv, {"kind": "mlp", "hidden": [16], "checkpoint": "hello.pt"},
                   "hello.pt is not a PyTorch checkpoint", "not a pickle that torch.load can read")


def test_a_checkpoint_missing_many_keys_says_how_many_more(tmp_path: Path, cancer_csv: Path):
    """Weights of a one-layer mlp for a two-layer one: four keys missing, three shown and 'and 1 more'."""
    torch.save(_mlp(hidden=(16,)).state_dict(), tmp_path / "small.pt")
    document = cancer_config(cancer_csv, model={"kind": "mlp", "hidden": [16, 8, 4], "checkpoint": "small.pt"})
    del document["training"]
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    expected = sorted(set(_mlp(hidden=(16, 8, 4)).state_dict()) - set(_mlp(hidden=(16,)).state_dict()))
    assert len(expected) > 3
    assert f"and {len(expected) - 3} more" in line, line
    assert not line.rstrip().endswith(";") and "; ;" not in line, line
