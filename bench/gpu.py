"""The CUDA and NCCL paths: reportgen's evaluate-only run with ``device: cuda`` against a plain CUDA loop.

Prepared for a machine with a GPU (there is none in CI). One command, about two minutes:

    python bench/gpu.py                      # 2,000,000 + 2,000,000 rows x 32, bench.py's data and MLP
    python bench/gpu.py --rows 500000 --json-out gpu.json

What it measures and checks, each in a fresh process:

1. A plain CUDA loop (bench.py's plain loop with the model and every batch on ``cuda``, scores kept on the
   GPU, ``torch.cuda.synchronize()`` before the clock stops): the rows per second of its scoring.
2. ``reportgen run`` of the same config with ``device: cuda``, every check off, JSON only: the rows per
   second of its ``evaluate`` phase (results.json ``timing``; it also computes metrics, curves and the
   calibration table, which the plain loop does not). Target (issue 14): at least 0.9x the plain loop.
3. The same run with ``device: cpu``: results.json must agree (same check statuses, same integer
   metrics, floats within 1e-4 relative: CUDA kernels round differently).
4. The NCCL path: with two or more GPUs, ``--nproc-per-node 2`` (one worker per GPU, NCCL) must give the
   results.json of one process (but timing, created_at, world size); with one GPU, ``device: cuda`` with
   two workers must be refused with exit 2 before any worker starts, and ``device: auto`` with two
   workers must fall back to gloo on the CPU.

Exit status 0 when every check holds, 1 otherwise; the figures are printed as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench/bench.py: the data, the model and the measuring launcher)

VOLATILE = ("created_at", "timing", "world_size", "device", "config_sha256", "config_file")


def _config(folder: Path, device: str, name: str) -> Path:
    text = (folder / "config.yaml").read_text(encoding="utf-8").replace("device: cpu\n", f"device: {device}\n")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(folder: Path, config: Path, out: str, checks_off: list[str], *extra: str) -> tuple[bench.Measured, dict]:
    argv = [sys.executable, "-m", "reportgen", "run", str(config), "--out", out, "--format", "json", "--quiet",
            *[f"--set=checks.{c}.enabled=false" for c in checks_off], *extra]
    measured = bench.measure(f"reportgen {config.stem} {' '.join(extra)}", argv, folder, folder / "logs", ok_codes=(0, 1))
    results_path = folder / out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return measured, results


def _differences(a: object, b: object, path: str = "", rel: float = 1e-4) -> list[str]:
    """Where two results.json documents disagree beyond ``rel`` (volatile keys skipped)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE:
                continue
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in one")
            else:
                out += _differences(a[key], b[key], f"{path}/{key}", rel)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if math.isclose(a, b, rel_tol=rel, abs_tol=1e-9) or (math.isnan(a) and math.isnan(float(b))):
            return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per split (train and test)")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--json-out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run it on a machine with a GPU", file=sys.stderr)
        return 2
    gpus = torch.cuda.device_count()
    folder = Path(tempfile.mkdtemp(prefix="reportgen-gpu-"))
    bench.make_inputs(folder, args.rows, args.features, fit_steps=200)
    checks, _ = bench.check_ids(sys.executable, folder / "logs")
    failures: list[str] = []
    rows: list[tuple[str, str]] = [("GPU", f"{torch.cuda.get_device_name(0)} x {gpus}, torch {torch.__version__}")]

    plain = bench.measure("plain CUDA loop", [sys.executable, "plain_loop.py", "data.npz", "model.pt", str(args.features),
                                              "train,test", "cuda"], folder, folder / "logs")
    plain_out = json.loads(plain.stdout.strip().splitlines()[-1]) if plain.ok else {}
    if not plain_out:
        failures.append(f"the plain CUDA loop failed: {plain.stderr[-500:]}")
        print("\n".join(failures), file=sys.stderr)
        return 1
    plain_rate = 2 * args.rows / plain_out["timing"]["evaluate"]

    cuda_run, cuda_results = _run(folder, _config(folder, "cuda", "cuda.yaml"), "out-cuda", checks)
    cpu_run, cpu_results = _run(folder, _config(folder, "cpu", "cpu.yaml"), "out-cpu", checks)
    if not cuda_results:
        failures.append(f"reportgen on cuda wrote no results.json (rc {cuda_run.rc}): {cuda_run.stderr[-500:]}")
    else:
        evaluate_s = cuda_results["timing"]["evaluate"]
        rate = 2 * args.rows / evaluate_s
        rows += [("plain CUDA loop: scoring", f"{plain_rate:,.0f} rows/s ({plain_out['timing']['evaluate']:.3f} s; process {plain.wall:.2f} s)"),
                 ("reportgen device: cuda: evaluate phase", f"{rate:,.0f} rows/s ({evaluate_s:.3f} s; process {cuda_run.wall:.2f} s)"),
                 ("ratio (target >= 0.9)", f"{rate / plain_rate:.2f}x")]
        if rate < 0.9 * plain_rate:
            failures.append(f"reportgen's evaluate phase on cuda is {rate / plain_rate:.2f}x the plain CUDA loop's rows/s (target 0.9x)")
        differences = _differences(cuda_results, cpu_results)
        rows.append(("cuda vs cpu results.json (rel 1e-4)", "equal" if not differences else f"{len(differences)} differences"))
        failures += [f"cuda vs cpu: {d}" for d in differences[:20]]

    if gpus >= 2:
        nccl_run, nccl_results = _run(folder, _config(folder, "cuda", "cuda.yaml"), "out-nccl", checks, "--nproc-per-node", "2")
        differences = _differences(cuda_results, nccl_results, rel=1e-9)
        rows.append(("NCCL, 2 workers, vs one process (rel 1e-9)", f"rc {nccl_run.rc}, process {nccl_run.wall:.2f} s, "
                     + ("equal" if not differences and nccl_results else f"{len(differences)} differences")))
        if not nccl_results or differences:
            failures += [f"NCCL vs one process: {d}" for d in differences[:20]] or [f"NCCL run wrote nothing: {nccl_run.stderr[-500:]}"]
    else:
        refused = subprocess.run([sys.executable, "-m", "reportgen", "run", str(folder / "cuda.yaml"), "--out", str(folder / "out-refused"),
                                  "--nproc-per-node", "2", "--quiet"], cwd=folder, capture_output=True, text=True)
        said = refused.stderr.strip().splitlines()
        rows.append(("1 GPU: device cuda, 2 workers", f"rc {refused.returncode}: {said[-1] if said else ''}"))
        if refused.returncode != 2 or len(said) != 1 or (folder / "out-refused").exists():
            failures.append(f"device cuda with 2 workers on 1 GPU: expected one line and exit 2, got rc {refused.returncode}: {said}")
        auto_run, auto_results = _run(folder, _config(folder, "auto", "auto.yaml"), "out-auto", checks, "--nproc-per-node", "2")
        differences = _differences(cpu_results, auto_results, rel=1e-9)
        rows.append(("1 GPU: device auto, 2 workers (gloo on CPU) vs one CPU process", f"rc {auto_run.rc}, "
                     + ("equal" if auto_results and not differences else f"{len(differences)} differences")))
        if not auto_results or differences:
            failures += [f"auto, 2 workers vs cpu: {d}" for d in differences[:20]] or ["device auto with 2 workers wrote nothing"]

    print(f"# reportgen on CUDA, {args.rows:,} + {args.rows:,} rows x {args.features}; reportgen at {bench.git_head()}\n")
    print("| what | measured |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows, "failures": failures}, indent=2), encoding="utf-8")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
