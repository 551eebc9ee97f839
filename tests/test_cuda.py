"""The CUDA path: the same evaluate-only config on ``device: cuda`` and on the CPU gives the same report.

Runs only where a CUDA device exists (skipped in CI, which has none); bench/gpu.py measures the same path's
throughput against a plain CUDA loop and exercises NCCL with two or more GPUs.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import cancer_config, write_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(out), "--quiet", *extra],
                          capture_output=True, text=True, timeout=600)


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences beyond float rounding between two results.json documents (run facts skipped)."""
    if isinstance(a, dict) and isinstance(b, dict):
        skip = {"created_at", "timing", "device", "config_sha256", "config_file"}
        return [d for k in sorted((set(a) | set(b)) - skip)
                for d in (_close(a[k], b[k], f"{path}/{k}") if k in a and k in b else [f"{path}/{k}: only in one"])]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return [] if math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def test_an_evaluate_only_run_on_cuda_matches_the_cpu_run(tmp_path: Path, cancer_csv: Path):
    trained = _run(write_config(tmp_path, cancer_config(cancer_csv)), tmp_path / "trained")
    assert trained.returncode in (0, 1), trained.stderr
    document = cancer_config(cancer_csv)
    del document["training"]
    document["model"] = {**document["model"], "checkpoint": str(tmp_path / "trained" / "model.pt")}
    results = {}
    for device in ("cuda", "cpu"):
        config = write_config(tmp_path, {**document, "device": device}, name=f"{device}.yaml")
        done = _run(config, tmp_path / device)
        assert done.returncode in (0, 1), done.stderr
        results[device] = json.loads((tmp_path / device / "results.json").read_text())
    assert results["cuda"]["environment"]["device"].startswith("cuda")
    assert results["cpu"]["environment"]["device"] == "cpu"
    assert _close(results["cuda"], results["cpu"]) == []

