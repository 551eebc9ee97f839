"""The PDF worker process: charts it draws equal this process's, and it never outlives a run (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import report_fixtures as F
from conftest import REPO, cancer_config, write_config
from reportgen.render import RenderOptions, chart_batch, html, pdf_engine, view
from reportgen.render.pdf_engine import PdfWorker

pytestmark = pytest.mark.slow
FIXTURES = ("failing_binary", "multiclass", "regression", "passing_binary")


def _jobs(report: Any) -> list[pdf_engine.ChartJob]:
    with chart_batch.collecting() as batch:
        view.build(report)
    return batch.jobs


def _started(warm_pdf: bool = False) -> PdfWorker:
    worker = PdfWorker.start(warm_pdf)
    assert worker is not None
    return worker


@pytest.mark.parametrize("name", FIXTURES)
def test_the_worker_draws_every_chart_as_this_process_does(name: str) -> None:
    jobs = _jobs(F.cached(name))
    assert len(jobs) >= 3
    worker = _started()
    try:
        batch = worker.new_batch()
        assert all(worker.submit(batch, i, job) for i, job in enumerate(jobs))  # offered, never collected:
        drawn: dict[int, Any] = {}                                               # the worker draws them all
        while len(drawn) < len(jobs):
            message = worker._receive(None)
            assert message[:2] in (("drawing", batch), ("svg", batch)), message
            if message[0] == "svg":
                drawn[message[2]] = message[3]
    finally:
        worker.close()
    here = [chart_batch.draw(*job) for job in jobs]
    assert [drawn[i] for i in range(len(jobs))] == here
    assert sum(1 for svg in here if svg) >= 3


@pytest.mark.parametrize("name", ["failing_binary", "multiclass"])
def test_html_drawn_with_the_worker_is_the_html_drawn_in_process(name: str) -> None:
    alone = html.render_html(getattr(F, name)(), RenderOptions())
    worker = _started()
    try:
        with pdf_engine.rendering_with(worker):
            assert pdf_engine.active_worker() is worker
            shared = html.render_html(getattr(F, name)(), RenderOptions())  # a new Report: not the cached page
    finally:
        worker.close()
    assert shared == alone
    assert shared.count(b'class="chart"') >= 3


def test_charts_that_skip_drop_out_of_a_list_and_leave_none_elsewhere() -> None:
    with chart_batch.collecting() as batch:
        empty = chart_batch.charts.loss_history([], None)  # no epochs: no chart
        present = chart_batch.charts.loss_history([{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.5}], 2)
    resolved = batch.resolve({"list": [empty, present], "one": empty, "pair": (present, 1)})
    assert resolved["one"] is None
    assert len(resolved["list"]) == 1 and resolved["list"][0].startswith("<svg")
    assert resolved["pair"][0] == resolved["list"][0] and resolved["pair"][1] == 1


def test_a_worker_that_died_leaves_the_charts_and_the_pdf_to_this_process() -> None:
    jobs = _jobs(F.cached("failing_binary"))
    worker = _started()
    worker._process.kill()
    worker._process.wait()
    try:
        batch = worker.new_batch()
        offered = [worker.submit(batch, i, job) for i, job in enumerate(jobs)]
        assert worker.collect(batch, jobs, offered, chart_batch.draw) == [chart_batch.draw(*job) for job in jobs]
        assert worker.convert(b"<html><body>x</body></html>") is None
        assert not worker.alive()
    finally:
        worker.close()


def test_a_chart_that_fails_in_the_worker_is_drawn_here_and_raises_here() -> None:
    worker = _started()
    try:
        with chart_batch.collecting(worker) as batch:
            charts = [chart_batch.charts.roc_pr({}), chart_batch.charts.no_such_chart(), chart_batch.charts.roc_pr({})]
        with pytest.raises(AttributeError, match="no_such_chart"):
            batch.resolve(charts)
        # the next batch of the same worker is unaffected
        jobs = _jobs(F.cached("regression"))
        again = worker.new_batch()
        offered = [worker.submit(again, i, job) for i, job in enumerate(jobs)]
        assert worker.collect(again, jobs, offered, chart_batch.draw) == [chart_batch.draw(*job) for job in jobs]
    finally:
        worker.close()
    assert worker._process.returncode is not None


def test_the_early_worker_is_taken_by_the_render_and_ended_with_the_block() -> None:
    with pdf_engine.started_early():
        early = pdf_engine._early
        assert early is not None and early.alive()
        assert pdf_engine.take_or_start() is early
        assert pdf_engine._early is None
    assert early._process.returncode is not None
    assert pdf_engine._early is None


def test_the_early_worker_is_ended_when_the_run_fails() -> None:
    with pytest.raises(RuntimeError, match="training failed"):
        with pdf_engine.started_early():
            early = pdf_engine._early
            assert early is not None
            raise RuntimeError("training failed")
    assert early._process.returncode is not None


# ---------------------------------------------------------------- whole runs, real processes


def _marked_processes(mark: str) -> list[int]:
    """Processes (other than zombies) whose environment holds ``mark``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if mark.encode() in environ:
            found.append(int(entry))
    return found


def _environment(mark: str) -> dict[str, str]:
    return {**os.environ, "REPORTGEN_TEST_MARK": mark, "PYTHONPATH": str(REPO)}


def _pdf_config(folder: Path, csv: Path, **overrides: Any) -> Path:
    document = cancer_config(csv, **overrides)
    document["report"] = {"formats": ["json", "pdf"]}
    return write_config(folder, document)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_run_with_a_pdf_leaves_no_worker_and_its_report_renders_the_same(tmp_path: Path, cancer_csv: Path) -> None:
    mark = uuid.uuid4().hex
    config = _pdf_config(tmp_path, cancer_csv, training={"epochs": 3, "lr": 0.01})
    done = subprocess.run([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(tmp_path / "out"), "--quiet"],
                          cwd=REPO, env=_environment(mark), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _marked_processes(mark) == []
    again = subprocess.run([sys.executable, "-m", "reportgen", "render", str(tmp_path / "out" / "results.json"),
                            "--out", str(tmp_path / "again"), "--format", "pdf"],
                           cwd=REPO, env=_environment(mark), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "report.pdf").read_bytes() == (tmp_path / "out" / "report.pdf").read_bytes()
    assert _marked_processes(mark) == []


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_bad_data_found_after_the_worker_started_exits_2_and_ends_the_worker(tmp_path: Path, breast_cancer_frame: Any) -> None:
    frame = breast_cancer_frame.copy()
    frame.loc[17, "mean_radius"] = np.nan
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    mark = uuid.uuid4().hex
    config = _pdf_config(tmp_path, tmp_path / "cancer.csv")
    done = subprocess.run([sys.executable, "-m", "reportgen", "run", str(config), "--out", str(tmp_path / "out"), "--quiet"],
                          cwd=REPO, env=_environment(mark), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "empty cell" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _marked_processes(mark) == []
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_ctrl_c_during_training_ends_the_early_worker(tmp_path: Path, cancer_csv: Path) -> None:
    mark = uuid.uuid4().hex
    config = _pdf_config(tmp_path, cancer_csv, training={"epochs": 100000, "lr": 0.001})
    process = subprocess.Popen(
        [sys.executable, "-m", "reportgen", "run", str(config), "--out", str(tmp_path / "out")],
        cwd=REPO, env=_environment(mark), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until training is under way
        if "epoch 2/" in line:
            break
    workers = [pid for pid in _marked_processes(mark) if pid != process.pid]
    assert len(workers) == 1  # started before the training, and running beside it
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130
    assert rest.strip().endswith("reportgen: interrupted; no report was written")
    assert _marked_processes(mark) == []
