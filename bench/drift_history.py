"""Benchmark modes of bench.py for the drift checks and `reportgen history` (see bench/README.md).

    python bench/bench.py --drift [--rows 1000000] [--features 32]
    python bench/bench.py --history 1000

Each case runs in a fresh process through bench.measure (wall time, CPU time, the process's peak RSS).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

DRIFT_CASE = r'''
"""feature_drift and prediction_drift on in-memory arrays: train and test of ROWS rows x FEATURES features."""
import json, sys, time, tracemalloc
import numpy as np
import pandas as pd
from reportgen.checks.base import registry, run_check
from reportgen.checks.context import CheckContext
from reportgen.types import DataBundle, Predictions, SplitData

rows, features, table = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "table"
t0 = time.perf_counter()
rng = np.random.default_rng(0)
x = {s: rng.normal(size=(rows, features)).astype(np.float32) for s in ("train", "test")}
x["test"][:, 0] += 0.3      # a real shift (KS D about 0.12): must be flagged
x["test"][:, 1] += 0.01     # a trivial one (D about 0.004): significant at this n, under the effect floor
weights = rng.normal(size=features).astype(np.float32) / np.sqrt(features)
splits, preds = {}, {}
for s in ("train", "test"):
    attributes = None
    if table:  # the last 4 columns as categories (text), the rest numeric, like SplitData.attributes of a CSV
        frame = pd.DataFrame(x[s][:, : features - 4].astype(np.float64), columns=[f"f{i}" for i in range(features - 4)])
        levels = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
        for j in range(4):
            codes = rng.integers(0, 6 if s == "train" or j else 5, size=rows)  # test's c0: one category gone
            frame[f"c{j}"] = levels[codes]
        attributes = frame
    labels = (x[s] @ weights > 0).astype(np.int64)
    splits[s] = SplitData(name=s, dataset=None, labels=labels, features=x[s], attributes=attributes)
    p = 1.0 / (1.0 + np.exp(-(x[s] @ weights)))
    probs = np.stack([1 - p, p], axis=1).astype(np.float32)
    preds[s] = Predictions(s, labels, (p >= 0.5).astype(np.int64), probs, 0.0)
names = tuple(f"f{i}" for i in range(features))
bundle = DataBundle("binary", splits, ("0", "1"), 1, names, (features,))
ctx = CheckContext(task="binary", data=bundle, predictions=preds, metrics={}, training=None)
build = time.perf_counter() - t0
out = {"build_s": build}
for check_id in ("feature_drift", "prediction_drift"):
    tracemalloc.start()
    t1, c1 = time.perf_counter(), time.process_time()
    result = run_check(registry.get(check_id), ctx, {})
    out[check_id] = {"seconds": time.perf_counter() - t1, "cpu": time.process_time() - c1, "extra_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                     "status": result.status, "value": result.value, "message": result.message[:160]}
    tracemalloc.stop()
print(json.dumps(out))
'''


def run_drift(measure, py: str, root: Path, logs: Path, rows: int, features: int) -> list[str]:
    """Time both drift checks on rows + rows in-memory arrays; return Markdown lines."""
    (root / "drift_case.py").write_text(DRIFT_CASE)
    lines = [f"## drift checks: {rows:,} train + {rows:,} test rows x {features} features (in-memory arrays)", "",
             "| input | check | wall s | CPU s | extra peak MB (tracemalloc) | status | value | process wall s | process peak RSS MB |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for kind in ("features", "table"):
        m = measure(f"drift {kind}", [py, "drift_case.py", str(rows), str(features), kind], root, logs)
        if not m.ok:
            lines.append(f"| {kind} | failed rc {m.rc}: {m.stderr.strip().splitlines()[-1:]} | | | | | | | |")
            continue
        facts = json.loads(m.stdout.strip().splitlines()[-1])
        label = "float32 matrix (npz-like)" if kind == "features" else "DataFrame: 28 numeric + 4 text columns"
        for check_id in ("feature_drift", "prediction_drift"):
            f = facts[check_id]
            lines.append(f"| {label} | {check_id} | {f['seconds']:.2f} | {f['cpu']:.2f} | {f['extra_peak_mb']:.0f} | {f['status']} | "
                         f"{f['value']:.4g} | {m.wall:.1f} | {m.rss_mb:.0f} |")
        lines.append(f"|  | (building the arrays) | {facts['build_s']:.2f} | | | | | | |")
    return lines


def _make_runs(root: Path, count: int, template: dict) -> Path:
    """``count`` results.json files of one job, a day apart, from one real run's results.json."""
    folder = root / "history-runs"
    start = _dt.datetime(2024, 1, 1, 2, 0, tzinfo=_dt.timezone.utc)
    for i in range(count):
        document = copy.deepcopy(template)
        document["environment"]["created_at"] = (start + _dt.timedelta(days=i)).isoformat().replace("+00:00", "Z")
        document["environment"]["seed"] = i
        failing = i % 7 == 3
        for check in document["checks"]:
            if check["severity"] == "error" and check["status"] in ("fail", "error") and not failing:
                check["status"] = "pass"
        document["status"] = "fail" if any(c["severity"] == "error" and c["status"] in ("fail", "error")
                                           for c in document["checks"]) else "pass"
        target = folder / f"run-{i:04d}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.json").write_text(json.dumps(document))
    return folder


def run_history(measure, py: str, root: Path, logs: Path, count: int, repo: Path) -> list[str]:
    """Time `reportgen history` over ``count`` results.json files; return Markdown lines."""
    sample = root / "history-sample"
    done = subprocess.run([py, "-m", "reportgen", "run", str(repo / "sample_configs" / "credit_default.yaml"),
                           "--format", "json", "--out", str(sample), "--quiet"], cwd=repo, capture_output=True, text=True)
    if not (sample / "results.json").is_file():
        return [f"history: the sample run failed (rc {done.returncode}): {done.stderr.strip()[-200:]}"]
    folder = _make_runs(root, count, json.loads((sample / "results.json").read_text()))
    lines = [f"## reportgen history over {count:,} results.json files", "",
             "| formats | wall s | CPU s | peak RSS MB | rc | output sizes |", "|---|---:|---:|---:|---:|---|"]
    for formats in ("json", "html,md,json", "html,pdf,md,json"):
        out = root / f"history-out-{formats.replace(',', '-')}"
        m = measure(f"history {formats}", [py, "-m", "reportgen", "history", str(folder), "--out", str(out),
                                           "--format", formats], root, logs, ok_codes=(0, 1))
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} kB" for p in sorted(out.glob("history.*")))
        lines.append(f"| {formats} | {m.wall:.2f} | {m.cpu:.2f} | {m.rss_mb:.0f} | {m.rc} | {sizes} |")
    render = measure("render floor", [py, "-m", "reportgen", "render", str(sample / "results.json"), "--out",
                                      str(root / "render-floor"), "--format", "md"], root, logs, ok_codes=(0, 1))
    lines.append(f"| (for scale: `reportgen render` of one results.json, md) | {render.wall:.2f} | {render.cpu:.2f} | "
                 f"{render.rss_mb:.0f} | {render.rc} | |")
    return lines


if __name__ == "__main__":  # pragma: no cover - run through bench.py
    sys.exit("run this through bench/bench.py --drift or --history N")
