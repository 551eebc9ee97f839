"""bench/peers.py: its command line and its pure helpers (outcomes, summaries, table, data and config writers).

Nothing here times anything or reaches the network: the peers' venvs are never created in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from reportgen.config import load_config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import peers  # noqa: E402  (bench/ is not a package)


def test_help_names_the_setup_step_and_the_cases() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "peers.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("--setup", "--case", "--cap", "--memory-cap-gb", "--peers"):
        assert option in done.stdout


def test_without_the_peers_venvs_it_says_to_run_setup_and_exits_2(tmp_path: Path, capsys) -> None:
    assert peers.peer_versions(tmp_path, "evidently") is None
    assert peers.main(["--cache", str(tmp_path), "--case", "small"]) == 2
    err = capsys.readouterr().err
    assert "--setup" in err and "evidently" in err and "deepchecks" in err
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_an_unknown_peer_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as stop:
        peers.parse_args(["--peers", "evidently,whylogs"])
    assert stop.value.code == 2


def test_outcomes_name_what_became_of_a_run() -> None:
    assert peers.outcome_of(12.0, 0, "", (0,), 600) == ""
    assert peers.outcome_of(12.0, 1, "", (0, 1), 600) == ""  # reportgen's failed gate is a finished run
    assert peers.outcome_of(None, -9, "", (0,), 600) == "did not finish in 10 min"
    assert peers.outcome_of(600.2, 124, "", (0,), 600) == "did not finish in 10 min"  # coreutils timeout
    assert peers.outcome_of(610.3, 137, "", (0,), 600) == "did not finish in 10 min"  # killed after the TERM
    assert peers.outcome_of(3.0, 1, "Traceback ...\nMemoryError: Unable to allocate 4.0 GiB", (0,), 600) == "out of memory"
    assert peers.outcome_of(3.0, -9, "", (0,), 600) == "out of memory"
    assert peers.outcome_of(3.0, 1, "ValueError: bad", (0,), 600) == "failed (rc 1)"


def test_summary_takes_best_and_median_of_the_successful_runs_and_the_highest_peak() -> None:
    samples = [peers.Sample(3.0, 2.5, 300.0, load1=1.0), peers.Sample(5.0, 4.0, 320.0, load1=2.0),
               peers.Sample(4.0, 3.0, 310.0, load1=3.0), peers.Sample(None, None, None, "did not finish in 10 min")]
    row = peers.summarise("x", samples)
    assert (row.runs, row.best_wall, row.median_wall, row.best_cpu, row.median_cpu, row.peak_rss_mb) == (
        4, 3.0, 4.0, 2.5, 3.0, 320.0)
    assert row.outcome == "" and row.load1 == (1.0, 2.0, 3.0)
    failed = peers.summarise("y", [peers.Sample(600.1, 170.0, 2048.0, "did not finish in 10 min")])
    assert failed.outcome == "did not finish in 10 min"
    assert (failed.median_wall, failed.median_cpu, failed.peak_rss_mb) == (600.1, 170.0, 2048.0)  # at the stop


def test_table_divides_by_the_base_row_and_shows_an_outcome_instead_of_figures() -> None:
    rows = [peers.Row("plain", 3, 2.0, 2.0, 1.5, 1.6, 300.0, load1=(0.5, 0.7)),
            peers.Row("peer", 3, 5.0, 6.0, 4.0, 4.8, 500.0, load1=(0.6,)),
            peers.Row("slow peer", 1, 600.1, 600.1, 170.0, 170.0, 2048.0, outcome="did not finish in 10 min")]
    lines = peers.markdown_table(rows, base="plain").splitlines()
    assert len(lines) == 5 and lines[0].startswith("| case | runs |")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells == ["peer", "3", "5.00", "6.00", "4.00", "4.80", "500", "3.00", "3.00", "0.6–0.6"]
    stopped = [c.strip() for c in lines[4].strip("|").split("|")]
    assert stopped[2:7] == ["**did not finish in 10 min**", "600.10", "", "170.00", "2048"] and stopped[7:9] == ["", ""]
    assert peers.ratio(rows[1], rows[0]) == 3.0 and peers.ratio(rows[2], rows[0]) is None


def test_breast_cancer_files_are_a_stratified_70_30_split_and_the_config_validates(tmp_path: Path) -> None:
    train_path, test_path = peers.write_breast_cancer(tmp_path)
    train, test = pd.read_csv(train_path), pd.read_csv(test_path)
    assert (len(train), len(test)) == (398, 171) and train.shape[1] == test.shape[1] == 31
    assert set(train["diagnosis"]) == set(test["diagnosis"]) == {"malignant", "benign"}
    rate = (train["diagnosis"] == "malignant").mean(), (test["diagnosis"] == "malignant").mean()
    assert abs(rate[0] - rate[1]) < 0.01  # 212 of 569 malignant, kept in both splits
    assert not set(map(tuple, train.to_numpy())) & set(map(tuple, test.to_numpy()))  # no row in both splits
    (tmp_path / "config.yaml").write_text(peers.breast_cancer_config(), encoding="utf-8")
    config = load_config(tmp_path / "config.yaml").config
    assert config.model.kind == "linear" and config.training is not None
    assert (config.training.epochs, config.training.lr, config.data.batch_size) == (
        peers.SMALL_EPOCHS, peers.SMALL_LR, peers.SMALL_BATCH)
    assert set(config.report.formats) == set(peers.ALL_FORMATS.split(","))


def test_linear_rule_csv_holds_bench_data_and_a_checkpoint_the_config_reads(tmp_path: Path) -> None:
    train_path, test_path = peers.write_linear_rule_csv(tmp_path, rows=400, features=4, fit_steps=2)
    train, test = pd.read_csv(train_path), pd.read_csv(test_path)
    assert list(train.columns) == ["x0", "x1", "x2", "x3", "y"] and len(train) == len(test) == 400
    assert set(np.unique(train["y"])) == {0, 1} and 0.15 < train["y"].mean() < 0.45
    assert not (tmp_path / "data.npz").exists()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    peers.bench_module().build_mlp(4).load_state_dict(state)  # the layout reportgen's mlp [64, 32] expects
    (tmp_path / "config-large.yaml").write_text(peers.large_config(), encoding="utf-8")
    config = load_config(tmp_path / "config-large.yaml").config
    assert config.training is None and config.model.kind == "mlp" and config.report.formats == ["json"]


@pytest.mark.slow
def test_the_plain_script_trains_a_working_model_on_the_breast_cancer_files(tmp_path: Path) -> None:
    train_path, test_path = peers.write_breast_cancer(tmp_path)
    script = tmp_path / "plain_torch.py"
    script.write_text(peers.PLAIN_TORCH, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(train_path), str(test_path), "diagnosis", "malignant",
                           "5", "32", "0.01"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.strip().splitlines()[-1])["metrics"]
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95
