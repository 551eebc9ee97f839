"""reportgen run --nproc-per-node: world-size invariance and failure semantics, with real worker processes.

The two-worker runs start ``python -m reportgen run CONFIG --nproc-per-node 2`` (real subprocesses
joined in a gloo process group on 127.0.0.1) and compare with the same config run in one process.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, cancer_config, read_results, write_config

from reportgen.cli import main
from reportgen.distributed import shard_bounds
from reportgen.launch import free_loopback_port

IGNORED = {("environment", "created_at"), ("environment", "world_size")}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_launcher(*argv: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reportgen", *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


def differences(single: Any, multi: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Where two results.json documents differ beyond timing, created_at, world size and 1e-9 relative on floats."""
    if path[:1] == ("timing",) or path in IGNORED:
        return []
    if isinstance(single, dict) and isinstance(multi, dict):
        if set(single) != set(multi):
            return [f"{'/'.join(path)}: keys {sorted(set(single) ^ set(multi))}"]
        return [d for key in single for d in differences(single[key], multi[key], (*path, key))]
    if isinstance(single, list) and isinstance(multi, list):
        if len(single) != len(multi):
            return [f"{'/'.join(path)}: lengths {len(single)} != {len(multi)}"]
        return [d for i, (a, b) in enumerate(zip(single, multi)) for d in differences(a, b, (*path, str(i)))]
    if isinstance(single, float) and isinstance(multi, float) and not isinstance(single, bool):
        if math.isclose(single, multi, rel_tol=1e-9, abs_tol=0.0) or single == multi:
            return []
        return [f"{'/'.join(path)}: {single!r} != {multi!r}"]
    return [] if single == multi and type(single) is type(multi) else [f"{'/'.join(path)}: {single!r} != {multi!r}"]


def _diabetes_config(folder: Path) -> dict[str, Any]:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(folder / "diabetes.csv", index=False)
    return {
        "name": "diabetes", "task": "regression", "seed": 3,
        "data": {"kind": "csv", "path": "diabetes.csv", "target": "target", "split": {"val": 0.2, "test": 0.25}, "batch_size": 32},
        "model": {"kind": "mlp", "hidden": [8]},
        "report": {"formats": ["json"]},
    }


def _evaluate_only(document: dict[str, Any]) -> dict[str, Any]:
    document = dict(document)
    document.pop("training", None)
    document["data"] = {**document["data"], "batch_size": 32}
    return document


@pytest.mark.slow
@pytest.mark.parametrize("task, launcher", [("binary", "nproc"), ("regression", "nproc"), ("binary", "torchrun")])
def test_two_workers_write_the_single_process_results(tmp_path: Path, cancer_csv: Path, task: str, launcher: str):
    document = _evaluate_only(cancer_config(cancer_csv)) if task == "binary" else _diabetes_config(tmp_path)
    config = write_config(tmp_path, document)
    # the one-process run in a fresh process too: the check order follows import order, which an
    # in-process run would inherit from the tests that ran before it
    one = run_launcher("run", str(config), "--out", str(tmp_path / "one"), "--quiet")
    code = one.returncode
    assert code in (0, 1), one.stderr
    single = read_results(tmp_path / "one")
    test_n = single["data"]["splits"]["test"]["n"]
    shards = [shard_bounds(test_n, rank, 2, align=32) for rank in range(2)]
    assert shards[0][1] - shards[0][0] != shards[1][1] - shards[1][0]  # the test split does not divide evenly

    if launcher == "nproc":
        done = run_launcher("run", str(config), "--out", str(tmp_path / "two"), "--quiet", "--nproc-per-node", "2")
    else:
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
             "--master-addr", "127.0.0.1", "--master-port", str(free_loopback_port()),
             "-m", "reportgen", "run", str(config), "--out", str(tmp_path / "two"), "--quiet"],
            capture_output=True, text=True, cwd=REPO, timeout=240, check=False,
        )
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.count("report: ") == 1  # only rank 0 speaks and writes
    multi = read_results(tmp_path / "two")
    assert single["environment"]["world_size"] == 1 and multi["environment"]["world_size"] == 2
    assert differences(single, multi) == []
    assert [c["status"] for c in multi["checks"]] == [c["status"] for c in single["checks"]]


def _rank_bomb(folder: Path, behaviour: str) -> dict[str, Any]:
    """A python model that misbehaves on evaluation batches of the worker whose RANK is $BOMB_RANK."""
    (folder / "bomb.py").write_text(
        "import os, time, pathlib, torch\n"
        "class Bomb(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.fc = torch.nn.Linear(30, 1)\n"
        "    def forward(self, x):\n"
        "        if x.shape[0] > 2:\n"
        f"            {behaviour}\n"
        "        return self.fc(x)\n",
        encoding="utf-8",
    )
    return {"kind": "python", "target": "bomb.py:Bomb"}


@pytest.mark.slow
def test_an_exception_in_one_worker_ends_all_with_exit_3_and_no_report(tmp_path: Path, cancer_csv: Path):
    model = _rank_bomb(tmp_path, "if os.environ.get('RANK') == os.environ.get('BOMB_RANK'): raise RuntimeError('rank fell over')")
    config = write_config(tmp_path, _evaluate_only(cancer_config(cancer_csv, model=model)))
    done = run_launcher("run", str(config), "--out", str(tmp_path / "out"), "--quiet", "--nproc-per-node", "2",
                        env={"BOMB_RANK": "1"})
    assert done.returncode == 3, done.stdout + done.stderr
    # one line, from the launcher, naming the worker that failed and why (not rank 0 losing its peer)
    assert done.stderr.splitlines() == ["reportgen: worker 1 of 2: runtime error: RuntimeError: rank fell over "
                                        "(rerun with --debug for the traceback); stopped the other worker, no report was written"]
    assert not (tmp_path / "out").exists()
    assert done.stdout == ""


def _training_config(csv: Path) -> dict[str, Any]:
    """The cancer config, trained briefly with early stopping, in batches of an odd size (63 rows)."""
    document = cancer_config(csv)
    document["data"] = {**document["data"], "batch_size": 63}
    document["training"] = {"epochs": 6, "lr": 0.01, "early_stopping": {"patience": 2}}
    return document


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


@pytest.mark.slow
def test_two_workers_train_deterministically_and_close_to_one_process(tmp_path: Path, cancer_csv: Path):
    config = write_config(tmp_path, _training_config(cancer_csv))
    one = run_launcher("run", str(config), "--out", str(tmp_path / "one"), "--quiet")
    assert one.returncode in (0, 1), one.stderr
    single = read_results(tmp_path / "one")
    assert single["data"]["splits"]["train"]["n"] > 63
    parts = [hi - lo for lo, hi in (shard_bounds(63, rank, 2) for rank in range(2))]
    assert parts == [32, 31]  # every full batch splits unevenly between the two workers

    runs = []
    for name in ("two-a", "two-b"):
        done = run_launcher("run", str(config), "--out", str(tmp_path / name), "--quiet", "--nproc-per-node", "2")
        assert done.returncode == one.returncode, done.stdout + done.stderr  # the gate's verdict
        assert done.stdout.count("report: ") == 1  # only rank 0 speaks and writes
        runs.append(read_results(tmp_path / name))
    first, second = runs
    assert first["environment"]["world_size"] == 2
    assert first["training"]["data_parallel"].startswith("DistributedDataParallel on 2 workers (gloo)")
    assert single["training"]["data_parallel"] is None
    code, _, err = run_cli("render", str(tmp_path / "two-a" / "results.json"), "--out", str(tmp_path / "page"), "--format", "html")
    assert code == one.returncode, err
    html = (tmp_path / "page" / "report.html").read_text(encoding="utf-8")
    assert "DistributedDataParallel on 2 workers (gloo)" in html  # the report says how training ran
    for document in (first, second):
        document.pop("timing")
        document["environment"].pop("created_at")
    assert first == second  # deterministic for a given number of workers and seed
    assert (tmp_path / "two-a" / "model.pt").read_bytes() == (tmp_path / "two-b" / "model.pt").read_bytes()

    # the same steps as one process, up to float32 rounding (observed: 2e-7 relative on the weights)
    trained, reference = _weights(tmp_path / "two-a" / "model.pt"), _weights(tmp_path / "one" / "model.pt")
    assert trained.keys() == reference.keys()
    for key, value in reference.items():
        assert np.abs(trained[key] - value).max() <= 1e-5 * np.abs(value).max(), key
    assert [c["status"] for c in first["checks"]] == [c["status"] for c in single["checks"]]
    for key in ("epochs_run", "best_epoch", "stopped_early", "evaluated_weights"):
        assert first["training"][key] == single["training"][key], key
    for split, values in single["metrics"].items():
        for metric, value in values.items():
            if isinstance(value, float):
                assert first["metrics"][split][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), (split, metric)


@pytest.mark.slow
def test_a_worker_failing_during_training_ends_all_with_exit_3_and_no_report(tmp_path: Path, cancer_csv: Path):
    model = _rank_bomb(tmp_path, "if self.training and os.environ.get('RANK') == os.environ.get('BOMB_RANK'): "
                                 "raise RuntimeError('rank fell over while training')")
    config = write_config(tmp_path, cancer_config(cancer_csv, model=model))
    done = run_launcher("run", str(config), "--out", str(tmp_path / "out"), "--quiet", "--nproc-per-node", "2",
                        env={"BOMB_RANK": "1"})
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.splitlines() == ["reportgen: worker 1 of 2: runtime error: RuntimeError: rank fell over while training "
                                        "(rerun with --debug for the traceback); stopped the other worker, no report was written"]
    assert not (tmp_path / "out").exists()
    assert done.stdout == ""


def _marker_model(folder: Path) -> dict[str, Any]:
    """A python model whose module leaves a file behind when a process imports it."""
    (folder / "marker.py").write_text(
        "import os, pathlib, torch\n"
        "pathlib.Path(__file__).with_name(f\"imported-{os.getpid()}\").write_text('x')\n"
        "class Marker(torch.nn.Linear):\n"
        "    def __init__(self):\n"
        "        super().__init__(30, 1)\n",
        encoding="utf-8",
    )
    return {"kind": "python", "target": "marker.py:Marker"}


@pytest.mark.parametrize("change, argv_tail, fragment", [
    ({"data": "not a mapping"}, ["--nproc-per-node", "2"], "data"),
    ({}, ["--nproc-per-node", "0"], "--nproc-per-node 0"),
    ({"training": {"epochs": 0}}, ["--nproc-per-node", "2"], "training.epochs"),
    # whatever `reportgen validate` finds before loading, and every file the config names
    ({}, ["--nproc-per-node", "2", "--compare-to", "absent.json"], "compare_to"),
    ({}, ["--nproc-per-node", "2", "--compare-to", "config.yaml"], "compare_to"),
    ({}, ["--nproc-per-node", "2", "--set", "data.path=absent.csv"], "data.path: file not found"),
    ({}, ["--nproc-per-node", "2", "--set", "model.target=absent.py:Marker"], "model.target: file not found"),
    ({}, ["--nproc-per-node", "2", "--set", "report.template_dir=absent"], "template_dir"),
    ({}, ["--nproc-per-node", "2", "--set", "data.batch_size=-1"], "data.batch_size"),
    ({}, ["--nproc-per-node", "2", "--format", "html,nope"], "--format"),
    ({}, ["--nproc-per-node", "2", "--out", "."], "output folder"),  # the folder holds the config and the data
])
def test_bad_config_is_exit_2_before_any_worker_starts(tmp_path: Path, cancer_csv: Path, change: dict, argv_tail: list[str], fragment: str):
    document = _evaluate_only(cancer_config(cancer_csv, model=_marker_model(tmp_path)))
    document.update(change)
    argv_tail = [str(tmp_path) if arg == "." else str(tmp_path / arg) if arg.endswith((".json", ".yaml")) else arg
                 for arg in argv_tail]
    code, out, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet", *argv_tail)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reportgen: error: ") and fragment in lines[0], err
    assert list(tmp_path.glob("imported-*")) == []  # no worker ever loaded the model
    assert not (tmp_path / "out").exists()


def test_the_launcher_names_the_same_output_folder_problem_as_a_single_process_run(tmp_path: Path, cancer_csv: Path):
    """The folder holds the config (an input) and files reportgen did not write: both runs name the input."""
    config = write_config(tmp_path, _evaluate_only(cancer_config(cancer_csv, model=_marker_model(tmp_path))))
    lines = []
    for argv_tail in ([], ["--nproc-per-node", "2"]):
        code, out, err = run_cli("run", str(config), "--out", str(tmp_path), "--quiet", *argv_tail)
        assert code == 2 and out == "", out + err
        lines.append(err.strip())
    assert lines[0] == lines[1] and "holds the config " in lines[0] and "an input of this run" in lines[0], lines
    assert list(tmp_path.glob("imported-*")) == []


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_sigterm_to_the_launcher_stops_every_worker(tmp_path: Path, cancer_csv: Path):
    model = _rank_bomb(tmp_path, "pathlib.Path(__file__).with_name('busy-' + os.environ['RANK']).write_text('x'); time.sleep(600)")
    config = write_config(tmp_path, _evaluate_only(cancer_config(cancer_csv, model=model)))
    launcher = subprocess.Popen([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(tmp_path / "out"),
                                 "--quiet", "--nproc-per-node", "2"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all((tmp_path / f"busy-{r}").exists() for r in range(2)):
            assert launcher.poll() is None, launcher.communicate()
            time.sleep(0.2)
        workers = _children(launcher.pid)
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        launcher.send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 130, err
    assert err.splitlines() == ["reportgen: interrupted by SIGTERM; stopped every worker; no report was written"]  # one line: no empty line before it off a terminal
    assert not any(_alive(pid) for pid in workers)
    assert not (tmp_path / "out").exists()


def test_differences_sees_what_matters():
    base = {"environment": {"created_at": "a", "world_size": 1}, "timing": {"load": 1.0},
            "metrics": {"test": {"accuracy": 0.5, "n": 3}}, "checks": [{"status": "pass"}]}
    same = json.loads(json.dumps(base))
    same["environment"].update(created_at="b", world_size=2)
    same["timing"]["load"] = 9.0
    same["metrics"]["test"]["accuracy"] = 0.5 * (1 + 1e-12)
    assert differences(base, same) == []
    for path, value in [(("metrics", "test", "accuracy"), 0.5 * (1 + 1e-6)), (("metrics", "test", "n"), 4)]:
        changed = json.loads(json.dumps(base))
        changed[path[0]][path[1]][path[2]] = value
        assert differences(base, changed) == [f"{'/'.join(path)}: {base[path[0]][path[1]][path[2]]!r} != {value!r}"]
    changed = json.loads(json.dumps(base))
    changed["checks"][0]["status"] = "fail"
    assert differences(base, changed) == ["checks/0/status: 'pass' != 'fail'"]


def test_exit_code_file_holds_the_code_of_a_bad_input_run(tmp_path: Path, cancer_csv: Path):
    document = _evaluate_only(cancer_config(cancer_csv))
    document["data"] = {**document["data"], "path": "missing.csv"}
    record = tmp_path / "exit-code"
    record.write_text("0\n", encoding="utf-8")  # a stale file from an earlier run must not survive
    code, _, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet",
                           "--exit-code-file", str(record))
    assert code == 2, err
    assert record.read_text(encoding="utf-8") == "2\n"
    code, _, err = run_cli("run", str(write_config(tmp_path, document)), "--quiet", "--exit-code-file", str(tmp_path / "no" / "x"))
    assert code == 2 and "--exit-code-file" in err and "does not exist" in err


@pytest.mark.slow
def test_torchrun_turns_exit_2_into_1_and_the_exit_code_file_keeps_2(tmp_path: Path, cancer_csv: Path):
    document = _evaluate_only(cancer_config(cancer_csv))
    document["data"] = {**document["data"], "path": "missing.csv"}
    record = tmp_path / "exit-code"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_loopback_port()),
         "-m", "reportgen", "run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "out"),
         "--quiet", "--exit-code-file", str(record)],
        capture_output=True, text=True, cwd=REPO, timeout=240, check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # torchrun's mapping of any worker failure
    assert record.read_text(encoding="utf-8") == "2\n"  # the verdict a CI job reads
    assert "missing.csv" in done.stderr
    assert not (tmp_path / "out").exists()
