"""Error messages say what the user meant: classes, not targets; 'did you mean' for the usual slips."""

from __future__ import annotations

import io
from pathlib import Path

from conftest import SAMPLES, cancer_config, user_model, write_config
from reportgen.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_learning_rate_suggests_lr(tmp_path: Path, cancer_csv: Path):
    path = write_config(tmp_path, cancer_config(cancer_csv, training={"epochs": 1, "learning_rate": 0.01}))
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and "unknown key 'training.learning_rate' (did you mean 'training.lr'?)" in err


def test_a_misspelt_set_key_is_answered_with_the_whole_key_to_type(tmp_path: Path, cancer_csv: Path):
    """The suggestion is what --set needs (``training.epochs``), at every depth, not the last part alone."""
    path = write_config(tmp_path, cancer_config(cancer_csv))
    for typed, meant in (("training.epoch=3", "training.epochs"), ("data.standardise=false", "data.standardize"),
                         ("checks.minority_recal.min=0.3", "checks.minority_recall"),
                         ("checks.minority_recall.mn=0.3", "checks.minority_recall.min")):
        code, _, err = run_cli("validate", str(path), "--set", typed)
        assert code == 2 and f"(did you mean {meant!r}?)" in err, (typed, err)


def test_a_binary_task_on_numeric_labels_suggests_regression(tmp_path: Path):
    document = {"name": "auto", "task": "binary", "data": {"kind": "csv", "path": str(SAMPLES / "data" / "auto.csv"),
                "target": "mpg", "ignore": ["rownames", "name"], "categorical": ["origin"]},
                "model": {"kind": "linear"}}
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2 and "a binary task needs exactly 2 classes" in err and "did you mean task: regression?" in err
    assert "2 targets" not in err and len(err.strip().splitlines()) == 1


def test_a_model_of_the_wrong_width_names_classes_and_the_singular(tmp_path: Path, cancer_csv: Path):
    three = user_model(tmp_path, "Three", "self.fc = torch.nn.Linear(30, 3)", "self.fc(x)")
    code, _, err = run_cli("validate", str(write_config(tmp_path, cancer_config(cancer_csv, model=three))))
    assert code == 2 and "outputs 3 values per sample but a binary task with 2 classes needs" in err
    assert "targets" not in err
    document = cancer_config(cancer_csv, model=user_model(tmp_path, "One", "self.fc = torch.nn.Linear(30, 1)", "self.fc(x)"))
    document["task"] = "multiclass"
    document["data"].pop("positive_class")
    document["data"]["classes"] = None
    code, _, err = run_cli("validate", str(write_config(tmp_path, document)))
    assert code == 2 and "outputs 1 value per sample but a multiclass task with 2 classes needs 2" in err
    assert "1 values" not in err and "targets" not in err
