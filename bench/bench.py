"""End-to-end benchmark: reportgen against a plain PyTorch inference loop on the same data and model.

    python bench/bench.py [--rows 1000000] [--features 32] [--quick] [--profile] [--keep]
    python bench/bench.py --drift            # the drift checks alone on 1M + 1M rows x 32 features
    python bench/bench.py --history 1000     # reportgen history over 1,000 results.json files

Every case runs in a fresh subprocess; wall time is measured around the process and peak RSS
comes from os.wait4() (the child's own ru_maxrss, so one case never hides another's peak); the
scale-out cases also report each worker's peak RSS (sampled from /proc on Linux).
Only the standard library, numpy and torch are used here; reportgen is run as `python -m reportgen`.
See bench/README.md for what each row means and the figures measured.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
ALL_FORMATS = "html,pdf,json,junit,md"
SEED = 0
BATCH = 4096

# ------------------------------------------------------------------ the plain loop (case a)

PLAIN_LOOP = r'''
"""The minimum a person would write: load, build, load weights, batched no-grad inference, accuracy.

Arguments: data.npz, model.pt, features, splits (comma-separated), and optionally the device (default cpu;
on cuda the model and each batch go to the GPU, the scores stay there, and the clocks stop after a synchronize)."""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from torch import nn

npz, weights, features, splits = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
archive = np.load(npz)
data = {s: (torch.from_numpy(archive[f"X_{s}"]), torch.from_numpy(archive[f"y_{s}"])) for s in splits}
model = nn.Sequential(nn.Flatten(), nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
model.to(device).eval()
sync()
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
result = {}
with torch.no_grad():
    for s, (x, y) in data.items():
        scores = torch.empty(len(x), device=device)
        for start in range(0, len(x), 4096):
            batch = x[start:start + 4096].to(device, non_blocking=True)
            scores[start:start + 4096] = torch.sigmoid(model(batch).reshape(-1))
        result[s] = float(((scores >= 0.5).long().cpu() == y).float().mean())
sync()
t_eval = time.perf_counter() - t2
print(json.dumps({"accuracy": result, "timing": {"import": t_import, "load": t_load, "evaluate": t_eval}}))
'''


PLAIN_LOOP_CSV = r'''
"""The minimum a person would write for CSV files: read, standardise with train's mean/std, batched no-grad inference."""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
import torch
from torch import nn

weights, features, splits = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
frames = {s: pd.read_csv(f"{s}.csv") for s in ["train"] + [s for s in splits if s != "train"]}
columns = [c for c in frames["train"].columns if c != "y"]
train_x = frames["train"][columns].to_numpy(dtype=np.float64)
mean, std = train_x.mean(axis=0), train_x.std(axis=0)
data = {s: (torch.from_numpy(((frames[s][columns].to_numpy(dtype=np.float64) - mean) / std).astype(np.float32)),
            torch.from_numpy(frames[s]["y"].to_numpy(dtype=np.int64, copy=True))) for s in splits}
model = nn.Sequential(nn.Flatten(), nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
model.eval()
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
result = {}
with torch.no_grad():
    for s, (x, y) in data.items():
        scores = torch.empty(len(x))
        for start in range(0, len(x), 4096):
            scores[start:start + 4096] = torch.sigmoid(model(x[start:start + 4096]).reshape(-1))
        result[s] = float(((scores >= 0.5).long() == y).float().mean())
t_eval = time.perf_counter() - t2
print(json.dumps({"accuracy": result, "timing": {"import": t_import, "load": t_load, "evaluate": t_eval}}))
'''


# ------------------------------------------------------------------ inputs


def build_mlp(features: int) -> nn.Module:
    """Same layout as reportgen's built-in mlp (Flatten, Linear, ReLU, ...), so the state_dict keys match."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)
    )


def write_csv(path: Path, columns: dict[str, np.ndarray], labels: np.ndarray) -> None:
    """A CSV of float32 columns written with 7 significant digits (what float32 holds) and an integer label y."""
    names = list(columns)
    matrix = np.column_stack([columns[name] for name in names])
    with path.open("w", encoding="utf-8") as handle:
        handle.write(",".join(names + ["y"]) + "\n")
        body = np.column_stack([matrix.astype(np.float64), labels.astype(np.float64)])
        np.savetxt(handle, body, fmt=["%.7g"] * len(names) + ["%d"], delimiter=",")


def make_inputs(folder: Path, rows: int, features: int, fit_steps: int, csv: bool = False) -> dict[str, float]:
    """Write data.npz, model.pt, config.yaml and plain_loop.py into ``folder``; return generation facts.

    With ``csv`` the splits are also written as train.csv and test.csv and config.yaml reads those
    (data.kind csv, default batch size); plain_loop_csv.py is the plain loop over them."""
    rng = np.random.default_rng(SEED)
    w = rng.normal(size=features).astype(np.float32) / np.sqrt(features)
    arrays = {}
    for split in ("train", "test"):
        x = rng.standard_normal((rows, features), dtype=np.float32)
        logit = x @ w + 0.5 * rng.standard_normal(rows, dtype=np.float32)
        arrays[f"X_{split}"] = x
        arrays[f"y_{split}"] = (logit > 0.5).astype(np.int64)  # about 30% positives
    np.savez(folder / "data.npz", **arrays)

    torch.manual_seed(SEED)
    model = build_mlp(features)
    if fit_steps:  # a short deterministic fit so that metrics and checks see a sensible model
        x_all = torch.from_numpy(arrays["X_train"])
        y_all = torch.from_numpy(arrays["y_train"]).float()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        fit_batch = 1024
        for step in range(fit_steps):
            start = (step * fit_batch) % max(rows - fit_batch, 1)
            logits = model(x_all[start : start + fit_batch]).reshape(-1)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y_all[start : start + fit_batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.state_dict(), folder / "model.pt")

    (folder / "config.yaml").write_text(
        "# written by bench/bench.py: evaluate-only (no training section)\n"
        "name: bench-mlp\n"
        "task: binary\n"
        f"seed: {SEED}\n"
        "device: cpu\n"
        "data:\n"
        "  kind: npz\n"
        "  path: data.npz\n"
        f"  batch_size: {BATCH}\n"
        '  positive_class: "1"\n'
        "model:\n"
        "  kind: mlp\n"
        "  hidden: [64, 32]\n"
        "  checkpoint: model.pt\n"
        "report:\n"
        "  formats: [json]\n",
        encoding="utf-8",
    )
    (folder / "plain_loop.py").write_text(PLAIN_LOOP, encoding="utf-8")
    if csv:  # the same arrays as train.csv / test.csv (column y the label) and a config that reads them
        for split in ("train", "test"):
            columns = {f"x{i}": arrays[f"X_{split}"][:, i] for i in range(features)}
            write_csv(folder / f"{split}.csv", columns, arrays[f"y_{split}"])
        config = (folder / "config.yaml").read_text(encoding="utf-8")
        config = config.replace("  kind: npz\n  path: data.npz\n", "  kind: csv\n  train: train.csv\n  test: test.csv\n  target: y\n")
        config = config.replace(f"  batch_size: {BATCH}\n", "")  # the default batch size, as a CSV user would leave it
        (folder / "config.yaml").write_text(config, encoding="utf-8")
        (folder / "plain_loop_csv.py").write_text(PLAIN_LOOP_CSV, encoding="utf-8")
    return {
        "npz_mb": (folder / "data.npz").stat().st_size / 2**20,
        "positive_rate": float(arrays["y_test"].mean()),
    }


# ------------------------------------------------------------------ measuring


@dataclass
class Measured:
    case: str
    wall: float | None = None
    cpu: float | None = None
    rss_mb: float | None = None
    rc: int | None = None
    timing: dict[str, float] = field(default_factory=dict)
    note: str = ""
    stdout: str = ""
    stderr: str = ""
    ok: bool = False
    worker_rss_mb: list[float] = field(default_factory=list)
    """Peak RSS of each child process of the case (the workers of --nproc-per-node, in start order), sampled."""


# A tiny launcher runs each case. On Linux a child's ru_maxrss starts from the memory high-water
# mark of the process it was forked from (it survives execve), so timing children straight from this
# process (which holds torch) would floor every case at this process's RSS. The launcher is a fresh,
# small interpreter; its own child, the case, starts from the launcher's few MB.
# While the case runs, the launcher samples every 50 ms the peak RSS (VmHWM in /proc/PID/status, Linux) of
# the case's own child processes: the workers of `--nproc-per-node N`. ru_maxrss from wait4 is the largest
# of the case and its waited-for children, so it alone cannot say what each worker held. VmHWM is the
# process's own high-water mark; the last sample before a worker exits is its peak unless memory grew
# in its last 50 ms.
LAUNCHER = r"""
import json, os, subprocess, sys, time
report, argv = sys.argv[1], sys.argv[2:]

def children(parent):
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(name))
    return found

def peak_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None

start = time.perf_counter()
proc = subprocess.Popen(argv)
workers = {}
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    for child in children(proc.pid):
        kb = peak_kb(child)
        if kb:
            workers[child] = max(workers.get(child, 0), kb)
    time.sleep(0.05)
wall = time.perf_counter() - start
with open(report, "w") as handle:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "rc": os.waitstatus_to_exitcode(status), "children_maxrss_kb": [workers[p] for p in sorted(workers)]}, handle)
"""


def measure(case: str, argv: list[str], cwd: Path, logs: Path, ok_codes=(0,), timeout: float = 3600,
            repo: Path = REPO) -> Measured:
    """Run ``argv`` in a fresh process; wall time around it, peak RSS from wait4 (that process only).

    ``repo`` is the checkout whose reportgen the process imports (PYTHONPATH)."""
    logs.mkdir(parents=True, exist_ok=True)
    slug = "".join(ch if ch.isalnum() else "_" for ch in case)[:60]
    out_path, err_path, report = logs / f"{slug}.out", logs / f"{slug}.err", logs / f"{slug}.usage.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("PYTHONSTARTUP", None)
    launcher = [sys.executable, "-S", "-c", LAUNCHER, str(report)]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(launcher + argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the launcher's own session: the case and nothing else
            proc.wait()
    m = Measured(case, stdout=out_path.read_text(errors="replace"), stderr=err_path.read_text(errors="replace"))
    try:
        usage = json.loads(report.read_text())
    except (OSError, ValueError):
        m.note = f"timed out after {timeout:.0f} s" if proc.returncode else "no usage report"
        m.rc = proc.returncode
        return m
    rss_kb = usage["maxrss_kb"] / (1024 if sys.platform == "darwin" else 1)  # Linux: kB, macOS: bytes
    m.wall, m.cpu, m.rss_mb, m.rc = usage["wall"], usage["cpu"], rss_kb / 1024, usage["rc"]
    m.worker_rss_mb = [kb / 1024 for kb in usage.get("children_maxrss_kb", [])]
    m.ok = m.rc in ok_codes
    return m


def read_timing(results: Path) -> dict[str, float]:
    """The ``timing`` block of a results.json, or {} when there is none."""
    try:
        return dict(json.loads(results.read_text(encoding="utf-8")).get("timing") or {})
    except (OSError, ValueError):
        return {}


def check_ids(python: str, logs: Path) -> tuple[list[str], str]:
    """Ids of the registered checks, from `reportgen checks --json`."""
    m = measure("checks --json", [python, "-m", "reportgen", "checks", "--json"], REPO, logs)
    if not m.ok:
        return [], f"`reportgen checks --json` failed (rc {m.rc}): {tail(m.stderr, 1)}"
    try:
        return [row["id"] for row in json.loads(m.stdout)], ""
    except (ValueError, KeyError, TypeError) as exc:
        return [], f"`reportgen checks --json` gave unreadable output ({exc})"


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------ output


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Measured], base: Measured | None) -> str:
    head = ("| case | wall s | CPU s | peak RSS MB | time × plain | RSS × plain | load s | train s | evaluate s "
            "| checks s | rest s | rc |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.wall is None:
            lines.append(f"| {r.case} | not run | | | | | | | | | | {r.note} |")
            continue
        t_ratio = r.wall / base.wall if base and base.wall else None
        m_ratio = r.rss_mb / base.rss_mb if base and base.rss_mb else None
        t = r.timing
        rest = r.wall - sum(v for k, v in t.items() if k in ("load", "train", "evaluate", "checks")) if t else None
        rc = str(r.rc) + ("" if r.ok else " FAILED")
        lines.append(
            f"| {r.case} | {fmt(r.wall)} | {fmt(r.cpu)} | {fmt(r.rss_mb, 0)} | {fmt(t_ratio, 1)} | {fmt(m_ratio, 1)} | "
            f"{fmt(t.get('load'))} | {fmt(t.get('train'))} | {fmt(t.get('evaluate'))} | {fmt(t.get('checks'))} | "
            f"{fmt(rest)} | {rc} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {
        "date": _dt.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpus": str(os.cpu_count()),
        "torch_threads": os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads()),
        "machine": f"{platform.system()} {platform.machine()}",
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()[:90]
    except (OSError, subprocess.SubprocessError):
        return "?"


# ------------------------------------------------------------------ main


def many_classes(args: argparse.Namespace) -> int:
    """--battery-many-classes: the check battery on 400 classes x 400 features x 4,000 train rows.

    Evaluate-only (a linear model with seeded random weights, npz data), json only, so the run is
    dominated by the checks; prints wall time and results.json `timing`.
    """
    classes, features, rows = args.classes, args.mc_features, args.mc_rows
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="reportgen-bench-mc-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rng = np.random.default_rng(SEED)
        centres = rng.normal(size=(classes, features)).astype(np.float32)
        arrays = {}
        for split, n in (("train", rows), ("test", rows // 4)):
            y = np.arange(n) % classes
            rng.shuffle(y)
            arrays[f"X_{split}"] = (centres[y] + 2.0 * rng.standard_normal((n, features), dtype=np.float32))
            arrays[f"y_{split}"] = y.astype(np.int64)
        np.savez(root / "data.npz", **arrays)
        (root / "config.yaml").write_text(
            "name: bench-many-classes\ntask: multiclass\nseed: 0\ndevice: cpu\n"
            "data: {kind: npz, path: data.npz, batch_size: 4096}\nmodel: {kind: linear}\nreport: {formats: [json]}\n",
            encoding="utf-8",
        )
        m = measure("many classes", [args.python, "-m", "reportgen", "run", "config.yaml", "--quiet", "--out", "out"],
                    root, root / "logs", (0, 1))
        timing = read_timing(root / "out" / "results.json") if m.ok else {}
        print(f"## check battery, {classes} classes x {features} features x {rows:,} train + {rows // 4:,} test rows\n")
        print(f"wall {fmt(m.wall)} s, peak RSS {fmt(m.rss_mb, 0)} MB, rc {m.rc}; results.json timing: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in timing.items()))
        if not m.ok:
            print(tail(m.stderr, 8))
        return 0 if m.ok else 1
    finally:
        if not (args.keep or args.workdir):
            shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ slice, fairness and behaviour checks (--checks)

NEW_CHECKS = ("slice_performance", "group_fairness", "stochasticity", "batch_dependence", "robustness", "feature_importance")


def bench_checks(rows: int, features: int) -> int:
    """Time the slice, fairness and behaviour checks in-process on ``rows`` test rows (imports reportgen and pandas).

    The data are the benchmark's noisy linear rule; the test split carries attributes like a CSV
    would: the first four features in their raw values and a categorical 'region' with four levels.
    The model is the benchmark's MLP (one sigmoid logit), untrained: only the cost is measured.
    """
    sys.path.insert(0, str(REPO))
    import pandas as pd
    from torch.utils.data import TensorDataset

    from reportgen.checks.base import registry, run_check
    from reportgen.checks.context import CheckContext
    from reportgen.types import DataBundle, Predictions, SplitData

    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    model = build_mlp(features).eval()
    splits, predictions = {}, {}
    for name, n in (("train", min(rows, 100_000)), ("test", rows)):
        x = rng.standard_normal((n, features), dtype=np.float32)
        y = (x[:, :4].sum(axis=1) + rng.standard_normal(n) > 0.5).astype(np.int64)
        attributes = pd.DataFrame(x[:, :4].astype(np.float64), columns=[f"x{i}" for i in range(4)])
        attributes["region"] = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]
        splits[name] = SplitData(name=name, dataset=TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), labels=y,
                                 features=x, attributes=attributes)
        with torch.no_grad():
            p = torch.cat([torch.sigmoid(model(torch.from_numpy(x[i:i + BATCH]))).reshape(-1) for i in range(0, n, BATCH)]).numpy()
        predictions[name] = Predictions(split=name, y_true=y, y_pred=(p >= 0.5).astype(np.int64),
                                        probs=np.stack([1 - p, p], axis=1), loss=0.0)
    bundle = DataBundle(task="binary", splits=splits, classes=("0", "1"), positive_index=1,
                        feature_names=tuple(f"x{i}" for i in range(features)), input_shape=(features,))
    ctx = CheckContext(task="binary", data=bundle, predictions=predictions, metrics={}, training=None,
                       batch_size=BATCH, model=model, device=torch.device("cpu"), output_kind="sigmoid", seed=SEED)
    overrides = {"group_fairness": {"sensitive": ["region"]}, "slice_performance": {"features": [f"x{i}" for i in range(4)] + ["region"]}}
    print(f"# slice, fairness and behaviour checks on {rows:,} test rows x {features} features "
          f"(torch threads {torch.get_num_threads()})\n")
    print("| check | seconds | status |\n|---|---:|---|")
    total = 0.0
    for check_id in NEW_CHECKS:
        check = registry.get(check_id)
        assert check is not None, check_id
        t0 = time.perf_counter()
        result = run_check(check, ctx, overrides.get(check_id))
        seconds = time.perf_counter() - t0
        total += seconds
        print(f"| {check_id} | {seconds:.2f} | {result.status if result else 'disabled'} |")
    print(f"| all six | {total:.2f} | |")
    return 0


RUN_PATH_CASES = ("plain loop, train+test (CSV)", "eval-only: run, checks off, json", "full: run, all checks, json")
BEFORE = "before: "


def run_path(args: argparse.Namespace) -> int:
    """--run-path: CSV data, evaluate-only, JSON only, at --rows (default 250,000) and a fifth of it.

    Three cases per size, alternated ``--repeat`` times (plain loop, reportgen with every check off,
    reportgen with the whole battery); prints the table per size, the ratios to the plain loop at the
    large size, and the marginal cost per row (the slope between the two sizes) in µs and bytes.
    """
    if args.threads > 0:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    rows_big = args.rows if args.rows != 1_000_000 else 250_000
    sizes = (rows_big // 5, rows_big)
    env = environment()
    print(f"# reportgen run path, {env['date']}: CSV {sizes[0]:,} and {sizes[1]:,} rows per split x {args.features}, "
          f"json only; python {env['python']}, torch {env['torch']}, {env['cpus']} CPUs (torch threads "
          f"{env['torch_threads']}); reportgen at {git_head()}\n")
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="reportgen-bench-runpath-"))
    best: dict[tuple[int, str], Measured] = {}
    before = Path(args.before).resolve() if args.before else None
    scale_out = (tuple(f"scale-out: {what}, json, {args.workers} workers (CSV)" for what in ("eval-only, checks off", "full, all checks"))
                 if args.workers > 1 else ())
    names = (RUN_PATH_CASES + scale_out
             + (tuple(BEFORE + name for name in (RUN_PATH_CASES[1], RUN_PATH_CASES[2], *scale_out)) if before else ()))
    if before:
        print(f"'{BEFORE.strip()}' rows: reportgen imported from {before}\n")
    try:
        ids: list[str] = []
        for rows in sizes:
            folder = root / f"rows{rows}"
            folder.mkdir(parents=True, exist_ok=True)
            make_inputs(folder, rows, args.features, args.fit_steps, csv=True)
            if not ids:
                ids, note = check_ids(args.python, folder / "logs")
                if note:
                    print(f"note: {note}")
            disable = [a for cid in ids for a in ("--set", f"checks.{cid}.enabled=false")]
            run = [args.python, "-m", "reportgen", "run", "config.yaml", "--quiet", "--format", "json"]
            commands = {
                RUN_PATH_CASES[0]: ([args.python, "plain_loop_csv.py", "model.pt", str(args.features), "train,test"], None, REPO),
                RUN_PATH_CASES[1]: (run + ["--out", "out-eval"] + disable, folder / "out-eval" / "results.json", REPO),
                RUN_PATH_CASES[2]: (run + ["--out", "out-full"], folder / "out-full" / "results.json", REPO),
            }
            if scale_out:
                workers = ["--nproc-per-node", str(args.workers)]
                commands[scale_out[0]] = (run + ["--out", "out-eval-n"] + workers + disable, folder / "out-eval-n" / "results.json", REPO)
                commands[scale_out[1]] = (run + ["--out", "out-full-n"] + workers, folder / "out-full-n" / "results.json", REPO)
            if before is not None:  # the same cases with the other checkout's reportgen, alternated with these
                for name in (RUN_PATH_CASES[1], RUN_PATH_CASES[2], *scale_out):
                    cmd, results_json, _ = commands[name]
                    out = cmd[cmd.index("--out") + 1]
                    cmd = [*cmd[: cmd.index("--out") + 1], out + "-b", *cmd[cmd.index("--out") + 2 :]]
                    commands[BEFORE + name] = (cmd, folder / (out + "-b") / "results.json", before)
            for _ in range(max(args.repeat, 1)):  # alternate the cases so that a busy minute hits them alike
                for name, (cmd, results_json, repo) in commands.items():
                    one = measure(name, cmd, folder, folder / "logs", (0, 1), repo=repo)
                    if results_json is not None and one.ok:
                        one.timing = read_timing(results_json)
                    elif one.ok:
                        try:
                            inner = json.loads(one.stdout.strip().splitlines()[-1])["timing"]
                            one.timing = {"load": inner["load"], "evaluate": inner["evaluate"]}
                        except (ValueError, KeyError, IndexError):
                            pass
                    if not one.ok:
                        print(f"  {name} at {rows:,}: FAILED rc {one.rc}: {tail(one.stderr, 4)}")
                    if "scale-out" in name and one.worker_rss_mb:
                        one.note = "peak RSS per worker: " + ", ".join(f"rank {r} {mb:.0f} MB" for r, mb in enumerate(one.worker_rss_mb))
                    kept = best.get((rows, name))
                    if kept is None or (one.ok and (not kept.ok or one.wall < kept.wall)):
                        if kept is not None and kept.rss_mb:
                            one.rss_mb = max(one.rss_mb or 0.0, kept.rss_mb)
                        best[(rows, name)] = one
                    elif one.rss_mb and kept.rss_mb:
                        kept.rss_mb = max(kept.rss_mb, one.rss_mb)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
        for rows in sizes:
            results = [best[(rows, name)] for name in names]
            print(f"## {rows:,} + {rows:,} rows, best of {max(args.repeat, 1)} (× plain: the plain loop over train+test)\n")
            print(table(results, results[0]))
            for r in results:
                if "scale-out" in r.case and r.note:
                    print(f"- {r.case}: {r.note}")
            print()
        plain_small, plain_big = best[(sizes[0], RUN_PATH_CASES[0])], best[(sizes[1], RUN_PATH_CASES[0])]
        print("## Ratios and marginal cost per row (both splits' rows counted)\n")
        delta_rows = 2 * (sizes[1] - sizes[0])
        for name in names:
            small, big = best[(sizes[0], name)], best[(sizes[1], name)]
            if not (small.ok and big.ok and plain_big.ok and plain_small.ok):
                continue
            slope_us = (big.wall - small.wall) / delta_rows * 1e6
            slope_cpu_us = (big.cpu - small.cpu) / delta_rows * 1e6
            slope_b = (big.rss_mb - small.rss_mb) * 2**20 / delta_rows
            plain_us = (plain_big.wall - plain_small.wall) / delta_rows * 1e6
            plain_cpu_us = (plain_big.cpu - plain_small.cpu) / delta_rows * 1e6
            plain_b = (plain_big.rss_mb - plain_small.rss_mb) * 2**20 / delta_rows
            print(f"- {name}: at {sizes[1]:,} time {big.wall / plain_big.wall:.2f}x (CPU {big.cpu / plain_big.cpu:.2f}x), "
                  f"peak RSS {big.rss_mb / plain_big.rss_mb:.2f}x; per row {slope_us:.2f} µs wall "
                  f"({slope_us / plain_us:.2f}x the plain loop's), {slope_cpu_us:.2f} µs CPU ({slope_cpu_us / plain_cpu_us:.2f}x), "
                  f"{slope_b:.0f} bytes ({slope_b / plain_b:.2f}x)")
        return 0
    finally:
        if args.keep or args.workdir:
            print(f"\ninputs and outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per split (train and test)")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, without the floor and render-only rows: a smoke run of under a minute")
    parser.add_argument("--fit-steps", type=int, default=200,
                        help="Adam steps given to the model before saving (0: random initial weights)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each case N times; report the fastest wall time (and the highest peak RSS)")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS/MKL_NUM_THREADS for every case (0: leave torch's default, one per core)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the cases")
    parser.add_argument("--only", default="", help="comma-separated case prefixes to run (e.g. plain,eval-only)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the full-battery case under cProfile and print the hot spots")
    parser.add_argument("--workdir", help="where to put the generated inputs and outputs (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--json-out", help="also write the measurements to this JSON file")
    parser.add_argument("--battery-many-classes", action="store_true",
                        help="only time the check battery on many classes (see --classes, --mc-features, --mc-rows)")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--mc-features", type=int, default=400)
    parser.add_argument("--mc-rows", type=int, default=4000, help="train rows of --battery-many-classes (test: a quarter)")
    parser.add_argument("--drift", action="store_true", help="only time feature_drift and prediction_drift on in-memory arrays")
    parser.add_argument("--history", type=int, default=0, metavar="N", help="only time reportgen history over N results.json files")
    parser.add_argument("--checks", action="store_true",
                        help="only time the slice, fairness and behaviour checks in-process on --rows test rows")
    parser.add_argument("--workers", type=int, default=0,
                        help="--run-path: also run the two reportgen cases with --nproc-per-node WORKERS (per-worker peak RSS)")
    parser.add_argument("--run-path", action="store_true",
                        help="only the run path on CSV data: plain loop, eval-only and full battery, json, at --rows "
                             "(default 250,000) and a fifth of it, alternated --repeat times; prints the marginal cost per row")
    parser.add_argument("--before", metavar="CHECKOUT",
                        help="with --run-path: also run the reportgen cases with another checkout's reportgen (e.g. a "
                             "`git worktree` of the previous commit), alternated with this one's")
    args = parser.parse_args(argv)
    if args.run_path:
        return run_path(args)
    if args.checks:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        return bench_checks(100_000 if args.quick else args.rows, args.features)
    if args.battery_many_classes:
        return many_classes(args)
    if args.drift or args.history:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import drift_history

        root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="reportgen-bench-"))
        root.mkdir(parents=True, exist_ok=True)
        try:
            if args.drift:
                print("\n".join(drift_history.run_drift(measure, args.python, root, root / "logs", args.rows, args.features)))
            if args.history:
                print("\n".join(drift_history.run_history(measure, args.python, root, root / "logs", args.history, REPO)))
        finally:
            if not args.keep and not args.workdir:
                shutil.rmtree(root, ignore_errors=True)
        return 0
    rows = 100_000 if args.quick else args.rows
    if args.threads > 0:  # children inherit it through measure()'s copy of os.environ
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    py = args.python

    env = environment()
    print(f"# reportgen benchmark, {env['date']}")
    print(f"python {env['python']}, torch {env['torch']}, numpy {env['numpy']}, {env['cpus']} CPUs "
          f"(torch threads {env['torch_threads']}), {env['machine']}; reportgen at {git_head()}")

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="reportgen-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    try:
        t0 = time.perf_counter()
        facts = make_inputs(root, rows, args.features, args.fit_steps)
        print(f"inputs: {rows:,} train + {rows:,} test rows x {args.features} features, npz {facts['npz_mb']:.0f} MB, "
              f"positives {facts['positive_rate']:.1%}, generated in {time.perf_counter() - t0:.1f} s in {root}\n")

        ids, ids_note = check_ids(py, logs)
        if ids_note:
            print(f"note: {ids_note}")
        elif not ids:
            print("note: no checks are registered yet; the check-free and full-battery cases are the same run")
        disable = [a for cid in ids for a in ("--set", f"checks.{cid}.enabled=false")]
        sample = REPO / "sample_configs" / "credit_default.yaml"
        big_json = root / "out-full-json" / "results.json"
        sample_json = root / "out-sample" / "results.json"

        run = [py, "-m", "reportgen", "run", "config.yaml", "--quiet"]
        cases: list[tuple[str, list[str], Path, tuple[int, ...], Path | None]] = [
            # (name, argv, cwd, accepted exit codes, results.json to read timing from)
            ("python -c pass (floor)", [py, "-c", "pass"], root, (0,), None),
            ("import torch (floor)", [py, "-c", "import torch"], root, (0,), None),
            ("import reportgen (cli+pipeline)", [py, "-c", "import reportgen.cli, reportgen.pipeline"], root, (0,), None),
            ("plain loop, test", [py, "plain_loop.py", "data.npz", "model.pt", str(args.features), "test"], root, (0,), None),
            ("plain loop, train+test", [py, "plain_loop.py", "data.npz", "model.pt", str(args.features), "train,test"],
             root, (0,), None),
            ("eval-only: run, checks off, json", run + ["--format", "json", "--out", "out-eval"] + disable, root, (0, 1),
             root / "out-eval" / "results.json"),
            ("scale-out: eval-only, checks off, json, 2 workers",
             run + ["--format", "json", "--out", "out-eval-2", "--nproc-per-node", "2"] + disable, root, (0, 1),
             root / "out-eval-2" / "results.json"),
            ("full: run, all checks, json", run + ["--format", "json", "--out", "out-full-json"], root, (0, 1), big_json),
            ("scale-out: full, all checks, json, 2 workers",
             run + ["--format", "json", "--out", "out-full-json-2", "--nproc-per-node", "2"], root, (0, 1),
             root / "out-full-json-2" / "results.json"),
            ("full: run, all checks, all formats", run + ["--format", ALL_FORMATS, "--out", "out-full-all"], root, (0, 1),
             root / "out-full-all" / "results.json"),
            ("render-only: big results.json, all formats",
             [py, "-m", "reportgen", "render", str(big_json), "--out", str(root / "out-render-big"), "--format", ALL_FORMATS],
             root, (0, 1), None),
            ("sample: credit_default run (train), all formats",
             [py, "-m", "reportgen", "run", str(sample), "--quiet", "--out", str(root / "out-sample"), "--format", ALL_FORMATS],
             REPO, (0, 1), sample_json),
            ("sample: credit_default render-only, all formats",
             [py, "-m", "reportgen", "render", str(sample_json), "--out", str(root / "out-sample-render"), "--format", ALL_FORMATS],
             REPO, (0, 1), None),
        ]
        only = [p.strip() for p in args.only.split(",") if p.strip()]
        results: list[Measured] = []
        base: Measured | None = None
        for name, cmd, cwd, ok_codes, results_json in cases:
            if only and not any(name.startswith(p) for p in only):
                continue
            if args.quick and not only and ("(floor)" in name or "render-only" in name):
                continue  # smoke run: these rows are fixed costs, the same at any size
            if "render-only" in name and not Path(cmd[4]).is_file():
                m = Measured(name, note="no results.json to render")
                results.append(m)
                print(f"  {name}: skipped ({m.note})", flush=True)
                continue
            m = None
            for _attempt in range(max(args.repeat, 1)):
                one = measure(name, cmd, cwd, logs, ok_codes)
                if results_json is not None and one.ok:
                    one.timing = read_timing(results_json)
                if m is None or (one.ok and (not m.ok or one.wall < m.wall)):
                    peak = max(m.rss_mb or 0.0, one.rss_mb or 0.0) if m else one.rss_mb
                    m = one
                    m.rss_mb = peak
                elif one.rss_mb:
                    m.rss_mb = max(m.rss_mb or 0.0, one.rss_mb)
                if not one.ok:
                    break
            if name.startswith("plain loop") and m.ok:
                try:
                    inner = json.loads(m.stdout.strip().splitlines()[-1])
                    m.timing = {"load": inner["timing"]["load"], "evaluate": inner["timing"]["evaluate"]}
                    m.note = "accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in inner["accuracy"].items())
                except (ValueError, KeyError, IndexError):
                    pass
            elif m.stdout.strip():
                m.note = m.stdout.strip().splitlines()[0][:120]
            if name.startswith("scale-out") and m.worker_rss_mb:
                peaks = ", ".join(f"rank {rank} {mb:.0f} MB" for rank, mb in enumerate(m.worker_rss_mb))
                m.note = f"peak RSS per worker (sampled every 50 ms): {peaks}" + (f"; {m.note}" if m.note else "")
            if name == "plain loop, test" and m.ok:
                base = m
            results.append(m)
            status = "ok" if m.ok else f"FAILED rc {m.rc}: {tail(m.stderr, 2)}"
            print(f"  {name}: {m.wall:.2f} s, {m.rss_mb:.0f} MB, {status}", flush=True)

        load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"\nload average before {env['load_before']}, after {load_after} (1, 5, 15 min)")
        if max(float(v) for v in load_after.split()[:2]) > (os.cpu_count() or 1):
            print("warning: the machine was busy with other work; wall times are inflated, CPU s is steadier")
        env["load_after"] = load_after
        print()
        print(f"## {rows:,} rows x {args.features} features, batch {BATCH}, {env['cpus']} CPUs, "
              f"best of {max(args.repeat, 1)}\n")
        print(table(results, base))
        print("\nload/train/evaluate/checks: results.json `timing` (plain loop: its own load/evaluate timers); "
              "rest = wall - those = interpreter start, imports, config, rendering, writing.")
        for m in results:
            if m.note:
                print(f"- {m.case}: {m.note}")
        failed = [m for m in results if m.wall is not None and not m.ok]
        for m in failed:
            print(f"\nFAILED {m.case} (rc {m.rc}); stderr tail:\n{tail(m.stderr, 8)}")

        by_name = {m.case: m for m in results if m.ok}
        if base:
            print("\n## Ratios (reportgen / plain loop on test)")
            for name in ("eval-only: run, checks off, json", "full: run, all checks, json",
                         "full: run, all checks, all formats"):
                m = by_name.get(name)
                if m:
                    print(f"- {name}: time {m.wall / base.wall:.1f}x, peak RSS {m.rss_mb / base.rss_mb:.1f}x")
            both = by_name.get("plain loop, train+test")
            ev = by_name.get("eval-only: run, checks off, json")
            if both and ev:
                print(f"- like for like (reportgen evaluates train and test): eval-only vs plain loop on train+test: "
                      f"time {ev.wall / both.wall:.1f}x, peak RSS {ev.rss_mb / both.rss_mb:.1f}x")
            full, full_all = by_name.get("full: run, all checks, json"), by_name.get("full: run, all checks, all formats")
            if ev and full:
                print(f"- cost of the check battery: {full.wall - ev.wall:+.2f} s wall "
                      f"(results.json checks: {full.timing.get('checks', float('nan')):.2f} s)")
            if full and full_all:
                print(f"- cost of html+pdf+junit+md on the big run: {full_all.wall - full.wall:+.2f} s wall")

        if args.profile:
            prof = root / "full.prof"
            cmd = [py, "-m", "cProfile", "-o", str(prof), "-m", "reportgen", "run", "config.yaml", "--quiet",
                   "--format", "json", "--out", "out-profile"]
            m = measure("profile", cmd, root, logs, (0, 1))
            if prof.is_file():
                import io
                import pstats

                for key in ("tottime", "cumulative"):
                    buffer = io.StringIO()
                    pstats.Stats(str(prof), stream=buffer).sort_stats(key).print_stats(25)
                    text = buffer.getvalue()
                    print(f"\n## cProfile of the full-battery json run, top 25 by {key}\n")
                    print(text[text.find("   ncalls"):].rstrip())
            else:
                print(f"\nprofile run failed (rc {m.rc}): {tail(m.stderr, 4)}")

        if args.json_out:
            Path(args.json_out).write_text(json.dumps({
                "environment": env, "rows": rows, "features": args.features, "head": git_head(),
                "cases": [{"case": m.case, "wall_s": m.wall, "peak_rss_mb": m.rss_mb, "cpu_s": m.cpu, "rc": m.rc, "ok": m.ok,
                           "timing": m.timing, "note": m.note, "worker_peak_rss_mb": m.worker_rss_mb} for m in results],
            }, indent=2) + "\n", encoding="utf-8")
        return 1 if failed else 0
    finally:
        if args.keep or args.workdir:
            print(f"\ninputs and outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
