"""The console: the last epoch stays readable on a terminal, and early stopping is announced."""

from __future__ import annotations

import io
from pathlib import Path

from conftest import cancer_config, write_config
from reportgen.cli import ConsoleProgress, main


def test_on_a_terminal_the_last_epochs_losses_stay_on_screen():
    stream = io.StringIO()
    progress = ConsoleProgress(stream, interactive=True)
    for epoch in (1, 2, 3):
        progress.epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.5 / epoch}, total=3)
    progress.stage("evaluating")
    screen = stream.getvalue()
    # What a terminal keeps: the text after the last carriage return of each line.
    lines = [line.rsplit("\r", 1)[-1].replace("\033[K", "") for line in screen.split("\n")]
    assert any("epoch 3/3" in line and "val_loss=0.500" in line for line in lines), lines
    assert any(line.endswith("evaluating") for line in lines)


def test_early_stopping_is_announced(tmp_path: Path, cancer_csv: Path):
    document = cancer_config(cancer_csv, training={"epochs": 60, "lr": 0.05, "early_stopping": {"patience": 1}})
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "r"), "--quiet"], out=out, err=err)
    assert code in (0, 1), err.getvalue()
    assert "early stopping: stopped after epoch" in out.getvalue() and "were restored and evaluated" in out.getvalue()



def test_the_two_validation_losses_of_an_early_stopped_run_are_told_apart(tmp_path: Path, cancer_csv: Path):
    """The last epoch's validation loss and the restored best epoch's (the one evaluated) carry their epochs and a note."""
    import json
    import re

    document = cancer_config(cancer_csv, training={"epochs": 60, "lr": 0.05, "early_stopping": {"patience": 1}},
                             report={"formats": ["json", "html"]})
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(write_config(tmp_path, document)), "--out", str(tmp_path / "r"), "--quiet"], out=out, err=err)
    assert code in (0, 1), err.getvalue()
    training = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))["training"]
    best, last = training["best_epoch"], training["epochs_run"]
    assert best < last
    html = re.sub(r"\s+", " ", (tmp_path / "r" / "report.html").read_text(encoding="utf-8"))
    assert f"Validation loss, last epoch ({last})" in html
    assert f"Validation loss, best epoch ({best}; these weights were evaluated)" in html
    assert f"Early stopping restored the weights of epoch {best}" in html
