"""Config schema v1: validation, helpful errors, overrides, safe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.config import apply_overrides, load_config, validate
from reportgen.errors import ConfigError

MINIMAL = {
    "name": "m",
    "task": "binary",
    "data": {"kind": "csv", "path": "d.csv", "target": "y"},
    "model": {"kind": "mlp"},
}


def with_changes(**sections):
    """MINIMAL with top-level sections replaced."""
    document = {key: (dict(value) if isinstance(value, dict) else value) for key, value in MINIMAL.items()}
    document.update(sections)
    return document


def test_minimal_config_gets_documented_defaults():
    config = validate(with_changes())
    assert config.seed == 0 and config.device == "auto"
    assert config.data.batch_size == 512 and config.data.standardize is True and config.data.missing == "error"
    assert config.model.threshold == 0.5 and config.training is None
    assert config.report.formats == ["html", "pdf", "json", "junit", "md"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (with_changes(trainig={"epochs": 3}), "unknown key 'trainig' (did you mean 'training'?)"),
        (with_changes(data={"kind": "csv", "path": "d.csv", "targt": "y", "target": "y"}), "unknown key 'data.targt' (did you mean 'data.target'?)"),
        (with_changes(training={"epocs": 3}), "unknown key 'training.epocs' (did you mean 'training.epochs'?)"),
        (with_changes(model={"kind": "mlp", "hiden": [3]}), "unknown key 'model.hiden' (did you mean 'model.hidden'?)"),
    ],
)
def test_unknown_keys_are_named_with_the_nearest_valid_key(document, expected):
    with pytest.raises(ConfigError) as caught:
        validate(document)
    assert str(caught.value) == expected


def test_unknown_check_and_check_setting_are_named():
    with pytest.raises(ConfigError, match=r"unknown check 'checks.minority_recal' \(did you mean 'checks.minority_recall'\?\)"):
        validate(with_changes(checks={"minority_recal": {"min": 0.5}}))
    with pytest.raises(ConfigError, match=r"unknown key 'checks.minority_recall.minimum' \(did you mean 'checks.minority_recall.min'\?\)"):
        validate(with_changes(checks={"minority_recall": {"minimum": 0.5}}))
    with pytest.raises(ConfigError, match="severity must be error, warning or info"):
        validate(with_changes(checks={"minority_recall": {"severity": "fatal"}}))


def test_missing_required_key_and_bad_values():
    document = with_changes()
    del document["task"]
    with pytest.raises(ConfigError, match="missing required key 'task'"):
        validate(document)
    with pytest.raises(ConfigError, match="task: Input should be 'binary', 'multiclass' or 'regression'"):
        validate(with_changes(task="ranking"))
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        validate(with_changes(device="tpu"))
    with pytest.raises(ConfigError, match="val \\+ test must be below 1"):
        validate(with_changes(data={"kind": "csv", "path": "d.csv", "target": "y", "split": {"val": 0.5, "test": 0.5}}))
    with pytest.raises(ConfigError, match="data.target"):
        validate(with_changes(data={"kind": "csv", "path": "d.csv"}))


def test_malformed_yaml_names_the_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntask: binary\ndata: {kind: csv, path: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_config(path)


def test_yaml_is_loaded_safely(tmp_path: Path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)


def test_missing_and_empty_config_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="the config is empty"):
        load_config(empty)


def test_overrides_use_dotted_paths_and_yaml_values():
    raw = with_changes(training={"epochs": 30})
    changed = apply_overrides(raw, ["training.epochs=3", "data.split.test=0.2", "checks.minority_recall.min=0.7", "name=other"])
    assert changed["training"]["epochs"] == 3
    assert changed["data"]["split"] == {"test": 0.2}
    assert changed["checks"] == {"minority_recall": {"min": 0.7}}
    assert changed["name"] == "other"
    assert raw["training"]["epochs"] == 30, "overrides must not change the input"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(raw, ["training.epochs"])
    with pytest.raises(ConfigError, match="name is not a mapping"):
        apply_overrides(raw, ["name.x=1"])


def test_paths_resolve_relative_to_the_yaml_and_hash_is_stable(tmp_path: Path):
    folder = tmp_path / "sub"
    folder.mkdir()
    path = folder / "c.yaml"
    path.write_text("name: m\ntask: binary\ndata: {kind: csv, path: d.csv, target: y}\nmodel: {kind: mlp}\n", encoding="utf-8")
    first = load_config(path)
    assert first.resolve("d.csv") == folder.resolve() / "d.csv"
    assert load_config(path).sha256 == first.sha256
    assert load_config(path, ["seed=1"]).sha256 != first.sha256


def test_formats_are_stored_in_the_canonical_order_so_the_hash_describes_what_runs(tmp_path: Path):
    import yaml

    from reportgen.render import FORMATS

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(with_changes(report={"formats": ["md", "json", "md"]})), encoding="utf-8")
    typed = load_config(path)
    flagged = [load_config(path, flags={"report.formats": order}) for order in (["json", "md"], ["md", "json"])]
    canonical = [name for name in FORMATS if name in ("md", "json")]
    assert typed.config.report.formats == typed.raw["report"]["formats"] == canonical
    assert flagged[0].sha256 == flagged[1].sha256 == typed.sha256
    assert flagged[0].with_flags({"report.formats": ["md", "json"]}).sha256 == typed.sha256
    different = load_config(path, flags={"report.formats": ["json"]})
    assert different.sha256 != typed.sha256


def test_a_name_is_bounded_so_that_it_fits_a_folder_name_and_the_report():
    assert validate(with_changes(name="n" * 200)).name == "n" * 200
    with pytest.raises(ConfigError, match="name: String should have at most 200 characters"):
        validate(with_changes(name="n" * 201))
