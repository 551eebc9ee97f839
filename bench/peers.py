"""reportgen against its peers, Evidently 0.7 and Deepchecks 0.19, and against a plain PyTorch script.

    python bench/peers.py --setup              # create the peers' venvs (once; idempotent)
    python bench/peers.py                      # both cases: breast_cancer (3 alternated rounds) and 250k + 250k rows
    python bench/peers.py --case small --repeat 5
    python bench/peers.py --case large --rows 250000 --cap 600

The peers are never a dependency of reportgen: `--setup` installs each into its own venv under
the cache folder (default ~/.cache/reportgen-bench/peers, or $REPORTGEN_BENCH_CACHE), pinned to
the versions below. Every case is a whole fresh process (interpreter start and imports included),
timed by bench.py's launcher: wall around the process, CPU = user + sys of that process, peak RSS
from os.wait4. See bench/README.md, section "Against the peers".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
ALL_FORMATS = "html,pdf,json,junit,md"
SEED = 0
CAP_S = 600  # a peer run still going after 10 minutes is recorded as "did not finish in 10 min"
MEMORY_CAP_GB = 10  # address-space limit of a peer process (prlimit --as), so one peer cannot take the shared machine
TIMEOUT_RC = 124  # coreutils timeout's exit status when it stopped the command
DID_NOT_FINISH = "did not finish in {minutes:g} min"
OUT_OF_MEMORY = "out of memory"

# The peers, each in its own venv: pinned to the releases the issue names, with the caps they need
# on Python 3.11 (Deepchecks 0.19 imports pkg_resources, which setuptools 81 removes).
PEERS: dict[str, tuple[str, ...]] = {
    "evidently": ("evidently==0.7.23", "pandas<3"),
    "deepchecks": ("deepchecks==0.19.1", "numpy<2", "pandas<3", "scikit-learn==1.5.2", "plotly<6", "setuptools<81"),
}
VERSION_PROBE = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({p: m.version(p) for p in ('{name}', 'pandas', 'numpy', 'scikit-learn')}))"
)


def bench_module():  # noqa: ANN201 - bench.py, which imports torch: loaded only when a case runs
    """bench.py (its launcher, ``measure``, ``make_inputs``), imported from this folder."""
    folder = str(Path(__file__).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import bench

    return bench


def default_cache() -> Path:
    """Where the peers' venvs live: $REPORTGEN_BENCH_CACHE, else ~/.cache/reportgen-bench."""
    return Path(os.environ.get("REPORTGEN_BENCH_CACHE") or Path.home() / ".cache" / "reportgen-bench") / "peers"


def venv_python(cache: Path, peer: str) -> Path:
    return cache / peer / "bin" / "python"


def peer_versions(cache: Path, peer: str) -> dict[str, str] | None:
    """Versions of the peer and its main libraries in its venv, or None when the venv is missing or broken."""
    python = venv_python(cache, peer)
    if not python.is_file():
        return None
    done = subprocess.run([str(python), "-c", VERSION_PROBE.replace("{name}", peer)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        return None
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return None


def setup(cache: Path, python: str = sys.executable) -> int:
    """Create (or keep) one venv per peer under ``cache``; a venv whose requirements changed is rebuilt.

    Idempotent: a venv is left alone when its stamp file lists the same requirements and its
    peer imports. Returns 0 when every peer is usable, 1 otherwise (pip's output is shown).
    """
    status = 0
    for peer, requirements in PEERS.items():
        folder = cache / peer
        stamp = folder / "reportgen-bench-requirements.txt"
        wanted = "\n".join(requirements) + "\n"
        if stamp.is_file() and stamp.read_text() == wanted and peer_versions(cache, peer):
            print(f"{peer}: ready in {folder}")
            continue
        print(f"{peer}: creating {folder} ({', '.join(requirements)})", flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([python, "-m", "venv", "--clear", str(folder)], check=True)
        pip = [str(venv_python(cache, peer)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        done = subprocess.run(pip + list(requirements))
        if done.returncode != 0 or not peer_versions(cache, peer):
            print(f"{peer}: installation failed (rc {done.returncode})", file=sys.stderr)
            status = 1
            continue
        stamp.write_text(wanted)
        print(f"{peer}: {peer_versions(cache, peer)}")
    return status


# ------------------------------------------------------------------ the scripts each case runs

# Every script prints one JSON line with its own phase timers; the wall time that counts is the launcher's.
PLAIN_TORCH = r'''
"""The floor: the least PyTorch a person writes to train and score the same model on the same files, no report."""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
import torch
from torch import nn

train_csv, test_csv, target, positive = sys.argv[1:5]
epochs, batch, lr = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
features = [c for c in train.columns if c != target]
x_train, x_test = train[features].to_numpy(np.float32), test[features].to_numpy(np.float32)
mean, std = x_train.mean(axis=0), x_train.std(axis=0)
std[std == 0] = 1.0
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
y_train = (train[target].astype(str) == positive).to_numpy(np.float32)
y_test = (test[target].astype(str) == positive).to_numpy(np.float32)
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
torch.manual_seed(0)
model = nn.Linear(len(features), 1)
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
order = torch.Generator().manual_seed(0)
for epoch in range(epochs):
    for idx in torch.randperm(len(x), generator=order).split(batch):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[idx]).reshape(-1), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
t_train = time.perf_counter() - t2
t3 = time.perf_counter()
with torch.no_grad():
    scores = torch.sigmoid(model(torch.from_numpy(x_test)).reshape(-1)).numpy()
ranks = scores.argsort().argsort() + 1.0  # rank AUC (Mann-Whitney); ties are rare with float scores
positives = y_test == 1
auc = (ranks[positives].sum() - positives.sum() * (positives.sum() + 1) / 2) / (positives.sum() * (~positives).sum())
accuracy = float(((scores >= 0.5) == positives).mean())
t_score = time.perf_counter() - t3
print(json.dumps({"metrics": {"accuracy": accuracy, "roc_auc": float(auc)},
                  "timing": {"import": t_import, "load": t_load, "train": t_train, "score": t_score}}))
'''

PLAIN_CSV_LOOP = r'''
"""The floor of the large case: read both CSVs, load the MLP's weights, score both splits, accuracy. No report."""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
import torch
from torch import nn

train_csv, test_csv, target, weights = sys.argv[1:5]
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
frames = {"train": pd.read_csv(train_csv), "test": pd.read_csv(test_csv)}
features = [c for c in frames["test"].columns if c != target]
model = nn.Sequential(nn.Flatten(), nn.Linear(len(features), 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
model.eval()
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
accuracy = {}
with torch.no_grad():
    for split, frame in frames.items():
        x = torch.from_numpy(frame[features].to_numpy(np.float32))
        scores = torch.cat([torch.sigmoid(model(x[i:i + 4096]).reshape(-1)) for i in range(0, len(x), 4096)])
        accuracy[split] = float(((scores >= 0.5).numpy() == (frame[target].to_numpy() == 1)).mean())
print(json.dumps({"metrics": {"accuracy": accuracy},
                  "timing": {"import": t_import, "load": t_load, "score": time.perf_counter() - t2}}))
'''

# The peers score a scikit-learn LogisticRegression (StandardScaler + LogisticRegression, fitted in
# the script on train and counted in its time, also reported apart as "fit"): neither peer trains or
# runs a PyTorch model; Deepchecks wants a model object with predict/predict_proba, Evidently reads
# prediction columns.
PEER_PROLOGUE = r'''
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
'''

PEER_LOAD_AND_FIT = r'''
train_csv, test_csv, target, positive, out_html = sys.argv[1:6]
t1 = time.perf_counter()
frames = {"train": pd.read_csv(train_csv), "test": pd.read_csv(test_csv)}
features = [c for c in frames["train"].columns if c != target]
for frame in frames.values():
    frame["target"] = (frame.pop(target).astype(str) == positive).astype(int)
t_load = time.perf_counter() - t1
t2 = time.perf_counter()
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
model.fit(frames["train"][features], frames["train"]["target"])
t_fit = time.perf_counter() - t2
'''

EVIDENTLY = PEER_PROLOGUE + r'''
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.presets import ClassificationPreset, DataDriftPreset
t_import = time.perf_counter() - t0
''' + PEER_LOAD_AND_FIT + r'''
t3 = time.perf_counter()
for frame in frames.values():
    frame["prediction"] = model.predict_proba(frame[features])[:, 1]
definition = DataDefinition(numerical_columns=features,
                            classification=[BinaryClassification(target="target", prediction_probas="prediction")])
data = {name: Dataset.from_pandas(frame, data_definition=definition) for name, frame in frames.items()}
snapshot = Report([DataDriftPreset(), ClassificationPreset()]).run(current_data=data["test"], reference_data=data["train"])
t_report = time.perf_counter() - t3
t4 = time.perf_counter()
snapshot.save_html(out_html)
print(json.dumps({"timing": {"import": t_import, "load": t_load, "fit": t_fit, "report": t_report,
                             "save": time.perf_counter() - t4}}))
'''

DEEPCHECKS = PEER_PROLOGUE + r'''
from deepchecks.tabular import Dataset
from deepchecks.tabular.suites import full_suite
t_import = time.perf_counter() - t0
''' + PEER_LOAD_AND_FIT + r'''
t3 = time.perf_counter()
data = {name: Dataset(frame, label="target", cat_features=[]) for name, frame in frames.items()}
result = full_suite().run(train_dataset=data["train"], test_dataset=data["test"], model=model)
t_report = time.perf_counter() - t3
t4 = time.perf_counter()
result.save_as_html(out_html)
print(json.dumps({"timing": {"import": t_import, "load": t_load, "fit": t_fit, "report": t_report,
                             "save": time.perf_counter() - t4}}))
'''

# Breast cancer: training as small as logistic regression; the plain script gets the same numbers.
SMALL_EPOCHS, SMALL_BATCH, SMALL_LR = 30, 32, 0.01


# ------------------------------------------------------------------ inputs


def write_breast_cancer(folder: Path) -> tuple[Path, Path]:
    """scikit-learn's breast_cancer as bc_train.csv / bc_test.csv: 70/30, stratified, seed 0.

    569 rows x 30 numeric features; the label column ``diagnosis`` is "malignant" or "benign"
    (scikit-learn's target 0 is malignant). Every case reads these two files, so all score the same rows.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer(as_frame=True)
    table = bunch.frame.drop(columns="target")
    table["diagnosis"] = [str(bunch.target_names[t]) for t in bunch.target]
    train, test = train_test_split(table, test_size=0.3, stratify=table["diagnosis"], random_state=SEED)
    paths = folder / "bc_train.csv", folder / "bc_test.csv"
    for frame, path in zip((train, test), paths):
        frame.to_csv(path, index=False)
    return paths


def breast_cancer_config() -> str:
    """reportgen's YAML for the breast_cancer case: linear model, the plain script's training, all formats."""
    return (
        "# written by bench/peers.py: train a logistic-regression-sized model, all five formats\n"
        "name: bench-breast-cancer\ntask: binary\nseed: 0\ndevice: cpu\n"
        "data:\n  kind: csv\n  train: bc_train.csv\n  test: bc_test.csv\n  target: diagnosis\n"
        '  classes: ["benign", "malignant"]\n  positive_class: "malignant"\n  standardize: true\n'
        f"  batch_size: {SMALL_BATCH}\n"
        "model:\n  kind: linear\n"
        f"training:\n  epochs: {SMALL_EPOCHS}\n  optimizer: adam\n  lr: {SMALL_LR}\n"
        f"report:\n  formats: [{ALL_FORMATS.replace(',', ', ')}]\n"
    )


def write_linear_rule_csv(folder: Path, rows: int, features: int, fit_steps: int = 200) -> tuple[Path, Path]:
    """bench.py's data as CSV: train.csv / test.csv (``rows`` each, columns x0..x{features-1} and y), model.pt.

    The same noisy linear rule (about 30% positives, seed 0) and the same fitted MLP checkpoint as
    bench.py's npz case, so the two benchmarks measure the same kind of data.
    """
    import numpy as np
    import pandas as pd

    bench_module().make_inputs(folder, rows, features, fit_steps)
    archive = np.load(folder / "data.npz")
    paths = folder / "train.csv", folder / "test.csv"
    for split, path in zip(("train", "test"), paths):
        frame = pd.DataFrame(archive[f"X_{split}"], columns=[f"x{i}" for i in range(features)])
        frame["y"] = archive[f"y_{split}"]
        frame.to_csv(path, index=False, float_format="%.7g")
    (folder / "data.npz").unlink()
    return paths


def large_config() -> str:
    """reportgen's YAML for the large case: evaluate-only (no training section), bench.py's MLP checkpoint."""
    return (
        "# written by bench/peers.py: evaluate-only\n"
        "name: bench-peers-large\ntask: binary\nseed: 0\ndevice: cpu\n"
        "data:\n  kind: csv\n  train: train.csv\n  test: test.csv\n  target: y\n  standardize: false\n"
        '  positive_class: "1"\n  batch_size: 4096\n'
        "model:\n  kind: mlp\n  hidden: [64, 32]\n  checkpoint: model.pt\n"
        "report:\n  formats: [json]\n"
    )


# ------------------------------------------------------------------ measuring and the table


@dataclass(frozen=True)
class Sample:
    """One fresh-process run: wall and CPU (user + sys) seconds, peak RSS MB; ``outcome`` "" when it succeeded."""

    wall: float | None
    cpu: float | None
    rss_mb: float | None
    outcome: str = ""
    load1: float | None = None  # 1-minute load average when the run started


@dataclass(frozen=True)
class Row:
    """A case summarised over its runs: best and median of the successful ones; ``outcome`` when none succeeded."""

    case: str
    runs: int
    best_wall: float | None = None
    median_wall: float | None = None
    best_cpu: float | None = None
    median_cpu: float | None = None
    peak_rss_mb: float | None = None
    outcome: str = ""
    load1: tuple[float, ...] = field(default_factory=tuple)


def outcome_of(wall: float | None, rc: int | None, stderr: str, accepted: Sequence[int], cap_s: float) -> str:
    """What became of a run: "" (success), "did not finish in N min", "out of memory" or "failed (rc N)".

    ``wall`` is None when the launcher was stopped at its backstop; rc 124 is coreutils ``timeout``
    stopping a peer at the cap (its CPU and RSS up to then are kept). A MemoryError, an allocation
    failure under the address-space limit or a SIGKILL (the kernel's OOM killer) count as out of memory.
    """
    if wall is None or rc == TIMEOUT_RC or (rc in (-9, 137) and wall >= cap_s):
        return DID_NOT_FINISH.format(minutes=cap_s / 60)
    if rc in accepted:
        return ""
    if rc in (-9, 137) or any(s in stderr for s in ("MemoryError", "Cannot allocate memory", "std::bad_alloc")):
        return OUT_OF_MEMORY
    return f"failed (rc {rc})"


def summarise(case: str, samples: Sequence[Sample]) -> Row:
    """Best and median wall/CPU over the successful samples, the highest peak RSS; else the first failure."""
    good = [s for s in samples if not s.outcome and s.wall is not None and s.cpu is not None]
    loads = tuple(s.load1 for s in samples if s.load1 is not None)
    if not good:  # the first failure, with what it had used when it stopped (when known)
        first = samples[0] if samples else Sample(None, None, None, "not run")
        return Row(case, len(samples), first.wall, first.wall, first.cpu, first.cpu, first.rss_mb, first.outcome, loads)
    walls, cpus = [s.wall for s in good], [s.cpu for s in good]
    return Row(case, len(samples), min(walls), statistics.median(walls), min(cpus), statistics.median(cpus),
               max(s.rss_mb or 0.0 for s in good), "", loads)


def ratio(numerator: Row | None, denominator: Row | None, attribute: str = "median_wall") -> float | None:
    """numerator / denominator of one figure (e.g. median wall), None when either is missing or did not succeed."""
    if numerator is None or denominator is None or numerator.outcome or denominator.outcome:
        return None
    top, bottom = getattr(numerator, attribute), getattr(denominator, attribute)
    return top / bottom if top is not None and bottom else None


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[Row], base: str | None = None) -> str:
    """A Markdown table of ``rows``; "× base" divides median wall and median CPU by those of the row named ``base``.

    A row without a successful run shows its outcome (e.g. "did not finish in 10 min") in place of the best wall
    and, where known, the wall, CPU and peak RSS it had reached when it stopped; no ratios.
    """
    by_case = {r.case: r for r in rows}
    head = "| case | runs | best wall s | median wall s | best CPU s | median CPU s | peak RSS MB | wall × base | CPU × base | load 1 min |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        loads = "–".join(f"{v:.1f}" for v in (min(r.load1), max(r.load1))) if r.load1 else "-"
        if r.outcome:  # figures, where known, are those at the stop
            lines.append(f"| {r.case} | {r.runs} | **{r.outcome}** | {_cell(r.median_wall)} | | {_cell(r.median_cpu)} | "
                         f"{_cell(r.peak_rss_mb, 0)} | | | {loads} |")
            continue
        base_row = by_case.get(base) if base else None
        lines.append(
            f"| {r.case} | {r.runs} | {_cell(r.best_wall)} | {_cell(r.median_wall)} | {_cell(r.best_cpu)} | "
            f"{_cell(r.median_cpu)} | {_cell(r.peak_rss_mb, 0)} | {_cell(ratio(r, base_row), 2)} | "
            f"{_cell(ratio(r, base_row, 'median_cpu'), 2)} | {loads} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    cwd: Path
    accepted: tuple[int, ...] = (0,)
    cap_s: float = CAP_S


def run_case(case: Case, logs: Path) -> tuple[Sample, str]:
    """Run one case in a fresh process with bench.py's launcher; the sample and the script's last stdout line."""
    bench = bench_module()
    load1 = os.getloadavg()[0]
    m = bench.measure(case.name, case.argv, case.cwd, logs, case.accepted, timeout=case.cap_s + 60)
    outcome = outcome_of(m.wall, m.rc, m.stderr, case.accepted, case.cap_s)
    last = m.stdout.strip().splitlines()[-1] if m.stdout.strip() else ""
    if outcome:
        print(f"  {case.name}: {outcome}; stderr: {bench.tail(m.stderr, 3)}", flush=True)
    else:
        print(f"  {case.name}: {m.wall:.2f} s wall, {m.cpu:.2f} s CPU, {m.rss_mb:.0f} MB (load {load1:.1f})", flush=True)
    return Sample(m.wall, m.cpu, m.rss_mb, outcome, load1), last


def run_alternated(cases: Sequence[Case], rounds: int, logs: Path) -> tuple[list[Row], dict[str, str]]:
    """``rounds`` rounds over ``cases``, each round starting one case later, so no case always runs first or last."""
    samples: dict[str, list[Sample]] = {c.name: [] for c in cases}
    last_lines: dict[str, str] = {}
    for index in range(rounds):
        shift = index % len(cases)
        print(f"round {index + 1} of {rounds}", flush=True)
        for case in list(cases[shift:]) + list(cases[:shift]):
            sample, line = run_case(case, logs)
            samples[case.name].append(sample)
            if line:
                last_lines[case.name] = line
    return [summarise(c.name, samples[c.name]) for c in cases], last_lines


# ------------------------------------------------------------------ the two cases

PLAIN = "plain PyTorch script (train + score, no report)"
REPORTGEN_ALL = "reportgen run: train + all five formats"
EVIDENTLY_ROW = "Evidently: DataDriftPreset + ClassificationPreset, HTML"
DEEPCHECKS_ROW = "Deepchecks: full_suite, HTML"
PLAIN_LARGE = "plain PyTorch loop over the CSVs (score, no report)"
REPORTGEN_JSON = "reportgen run, evaluate-only: json"
REPORTGEN_LARGE_ALL = "reportgen run, evaluate-only: all five formats"


def peer_cases(cache: Path, train: Path, test: Path, target: str, positive: str, folder: Path, tag: str,
               peers: Sequence[str], cap_s: float, memory_cap_gb: float) -> list[Case]:
    """The peer rows: each peer's script in its own venv, under the address-space cap (prlimit --as).

    coreutils ``timeout`` stops a peer at ``cap_s`` (TERM, then KILL 10 s later) inside the launcher, so the
    launcher still reports the CPU and peak RSS it had used; the launcher's own backstop is a minute later.
    """
    cases = []
    for peer, script, name in (("evidently", EVIDENTLY, EVIDENTLY_ROW), ("deepchecks", DEEPCHECKS, DEEPCHECKS_ROW)):
        if peer not in peers:
            continue
        path = folder / f"peer_{peer}.py"
        path.write_text(script, encoding="utf-8")
        stop = ["timeout", "--kill-after=10", f"{cap_s:g}"]
        limit = ["prlimit", f"--as={int(memory_cap_gb * 2**30)}"] if memory_cap_gb > 0 else []
        cases.append(Case(name, stop + limit + [str(venv_python(cache, peer)), str(path), str(train), str(test), target,
                                                positive, str(folder / f"{peer}-{tag}.html")], folder, cap_s=cap_s))
    return cases


def small_cases(args: argparse.Namespace, folder: Path) -> list[Case]:
    train, test = write_breast_cancer(folder)
    (folder / "config.yaml").write_text(breast_cancer_config(), encoding="utf-8")
    (folder / "plain_torch.py").write_text(PLAIN_TORCH, encoding="utf-8")
    py = args.python
    return [
        Case(PLAIN, [py, "plain_torch.py", train.name, test.name, "diagnosis", "malignant", str(SMALL_EPOCHS),
                     str(SMALL_BATCH), str(SMALL_LR)], folder),
        Case(REPORTGEN_ALL, [py, "-m", "reportgen", "run", "config.yaml", "--quiet", "--out", "out-reportgen",
                             "--format", ALL_FORMATS], folder, (0, 1)),
        *peer_cases(args.cache, train, test, "diagnosis", "malignant", folder, "small", args.peers, args.cap,
                    args.memory_cap_gb),
    ]


def large_cases(args: argparse.Namespace, folder: Path) -> list[Case]:
    train, test = write_linear_rule_csv(folder, args.rows, args.features)
    (folder / "config-large.yaml").write_text(large_config(), encoding="utf-8")
    (folder / "plain_csv_loop.py").write_text(PLAIN_CSV_LOOP, encoding="utf-8")
    py = args.python
    run = [py, "-m", "reportgen", "run", "config-large.yaml", "--quiet"]
    return [
        Case(PLAIN_LARGE, [py, "plain_csv_loop.py", train.name, test.name, "y", "model.pt"], folder),
        Case(REPORTGEN_JSON, run + ["--format", "json", "--out", "out-json"], folder, (0, 1), args.cap),
        Case(REPORTGEN_LARGE_ALL, run + ["--format", ALL_FORMATS, "--out", "out-all"], folder, (0, 1), args.cap),
        *peer_cases(args.cache, train, test, "y", "1", folder, "large", args.peers, args.cap, args.memory_cap_gb),
    ]


def verdicts(rows: Sequence[Row], large: bool) -> list[str]:
    """The issue's targets against the measured medians (wall; CPU in brackets)."""
    by = {r.case: r for r in rows}
    lines = []

    def both(a: str, b: str) -> str:
        wall, cpu = ratio(by.get(a), by.get(b)), ratio(by.get(a), by.get(b), "median_cpu")
        return f"{_cell(wall)}× wall ({_cell(cpu)}× CPU)"

    if not large:
        lines.append(f"- reportgen / plain script: {both(REPORTGEN_ALL, PLAIN)} (target ≤ 1.3×)")
        lines.append(f"- Evidently / plain script: {both(EVIDENTLY_ROW, PLAIN)} (target ≥ 2.5×)")
        lines.append(f"- Deepchecks / plain script: {both(DEEPCHECKS_ROW, PLAIN)} (target ≥ 3×)")
        lines.append(f"- Evidently / reportgen: {both(EVIDENTLY_ROW, REPORTGEN_ALL)}; "
                     f"Deepchecks / reportgen: {both(DEEPCHECKS_ROW, REPORTGEN_ALL)}")
    else:
        for peer in (EVIDENTLY_ROW, DEEPCHECKS_ROW):
            row = by.get(peer)
            if row is None:
                continue
            if row.outcome:
                lines.append(f"- {peer}: {row.outcome} (target: ≥ 10× reportgen)")
                continue
            lines.append(f"- {peer} / reportgen json: {both(peer, REPORTGEN_JSON)}; "
                         f"/ reportgen all formats: {both(peer, REPORTGEN_LARGE_ALL)} (target ≥ 10×)")
        lines.append(f"- reportgen json / plain CSV loop: {both(REPORTGEN_JSON, PLAIN_LARGE)}")
    return lines


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="create the peers' venvs under --cache and exit")
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="folder of the peers' venvs (default: $REPORTGEN_BENCH_CACHE/peers or ~/.cache/reportgen-bench/peers)")
    parser.add_argument("--case", choices=("small", "large", "both"), default="both",
                        help="small: breast_cancer, train + report; large: --rows + --rows CSV rows, evaluate-only")
    parser.add_argument("--repeat", type=int, default=3, help="alternated rounds of the small case (default 3)")
    parser.add_argument("--repeat-large", type=int, default=1, help="rounds of the large case (default 1)")
    parser.add_argument("--rows", type=int, default=250_000, help="rows per split of the large case (default 250,000)")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--peers", type=lambda text: [p for p in text.split(",") if p], default=list(PEERS),
                        help=f"comma-separated peers to run (default {','.join(PEERS)})")
    parser.add_argument("--cap", type=float, default=CAP_S, help="seconds after which a run is stopped and "
                        "recorded as not finished (default 600)")
    parser.add_argument("--memory-cap-gb", type=float, default=MEMORY_CAP_GB,
                        help="address-space limit of a peer process in GB (prlimit --as; 0: none; default 10)")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL/OPENBLAS threads of every case (default 1; 0: "
                        "leave the libraries' defaults)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the reportgen and plain-script cases")
    parser.add_argument("--workdir", type=Path, help="keep inputs, outputs and logs here (default: a temp folder, removed)")
    parser.add_argument("--json-out", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        return setup(args.cache)
    versions = {peer: peer_versions(args.cache, peer) for peer in args.peers}
    missing = [peer for peer, found in versions.items() if found is None]
    if missing:
        print(f"peers not installed in {args.cache}: {', '.join(missing)}; run `python bench/peers.py --setup` first "
              "(or pass --peers)", file=sys.stderr)
        return 2
    bench = bench_module()
    if args.threads > 0:  # children inherit these through bench.measure's copy of os.environ
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    os.environ["DISABLE_DEEPCHECKS_ANONYMOUS_TELEMETRY"] = "True"
    os.environ["DO_NOT_TRACK"] = "1"

    env = bench.environment()
    print(f"# reportgen against its peers, {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"reportgen at {bench.git_head()}; python {env['python']}, torch {env['torch']}, {env['cpus']} CPUs, "
          f"{env['machine']}, threads {args.threads or 'default'}; load average before {env['load_before']}")
    for peer, found in versions.items():
        print(f"{peer} venv: {found}")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="reportgen-peers-"))
    report: dict[str, object] = {"environment": env, "head": bench.git_head(), "versions": versions}
    try:
        for which in ("small", "large"):
            if args.case not in (which, "both"):
                continue
            folder = root / which
            folder.mkdir(parents=True, exist_ok=True)
            if which == "small":
                cases, rounds, base = small_cases(args, folder), args.repeat, PLAIN
                title = ("breast_cancer (398 train + 171 test rows x 30), train + report, "
                         f"{rounds} alternated rounds")
            else:
                print(f"writing {args.rows:,} + {args.rows:,} rows x {args.features} as CSV ...", flush=True)
                cases, rounds, base = large_cases(args, folder), args.repeat_large, REPORTGEN_JSON
                title = f"{args.rows:,} + {args.rows:,} rows x {args.features} (CSV), evaluate-only, {rounds} round(s)"
            rows, last_lines = run_alternated(cases, rounds, folder / "logs")
            print(f"\n## {title}\n")
            print(markdown_table(rows, base))
            print(f"\n× base: median over median of the row \"{base}\"; load 1 min: lowest–highest at the runs' starts.\n")
            print("\n".join(verdicts(rows, large=which == "large")))
            for case, line in last_lines.items():
                print(f"- {case}: {line[:300]}")
            report[which] = [vars(r) for r in rows]
        load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"\nload average after {load_after} (1, 5, 15 min)")
        report["load_after"] = load_after
        if args.json_out:
            args.json_out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    finally:
        if args.workdir:
            print(f"inputs, outputs and logs kept in {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
