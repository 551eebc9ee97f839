"""The README's set-up commands: exactly two, and CI runs the same test command."""

from __future__ import annotations

import re

from conftest import REPO


def setup_commands() -> list[str]:
    """The fenced one-line commands of the README's 'Set up' section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", section, flags=re.S)]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    main_job, tests = commands
    assert "reportgen run sample_configs/" in main_job and "pip install -e ." in main_job
    assert "pytest" in tests
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci_lines


def test_main_job_config_exists():
    main_job = setup_commands()[0]
    config = re.search(r"reportgen run (\S+)", main_job).group(1)
    assert (REPO / config).is_file()


def test_cpu_only_variant_installs_torch_from_the_cpu_index_and_the_main_command_keeps_pypi():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up without a GPU", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]
    assert len(commands) == 1 and "\n" not in commands[0]
    cpu_torch = ".venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert cpu_torch in commands[0]
    assert commands[0].index(cpu_torch) < commands[0].index("pip install -e .")  # torch first: -e . then keeps it
    assert commands[0].endswith(setup_commands()[0].split(" && ")[-1])  # the same main job
    assert all("download.pytorch.org" not in c for c in setup_commands())
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"torch>=2\.\d+"', pyproject)  # any recent torch, CPU or CUDA build


def test_results_json_sketch_names_every_key_of_a_real_binary_run(tmp_path, cancer_csv):
    """The README's results.json sketch lists the keys a real run writes (a binary run: every optional block)."""
    from conftest import cancer_config, write_config
    from reportgen.config import load_config
    from reportgen.pipeline import execute

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## results.json (schema_version 1)", 1)[1].split("\n## ", 1)[0]
    sketch = re.search(r"```\n(.*?)```", section, flags=re.S).group(1)
    named = set(re.findall(r'"([a-z_0-9]+)"', sketch))
    config = cancer_config(cancer_csv, report={"formats": ["json"]})
    report, _ = execute(load_config(write_config(cancer_csv.parent, config)))
    document = report.document()
    gate = document["gate"]
    blocks = {"": document, "environment": document["environment"], "data": document["data"],
              "model": document["model"], "training": document["training"], "metrics.test": document["metrics"]["test"],
              "check": document["checks"][0], "gate": gate, "gate.test_outcomes": gate["test_outcomes"],
              "gate.test_scores": gate["test_scores"], "timing": document["timing"]}
    missing = {f"{where}.{key}".lstrip(".") for where, block in blocks.items() for key in block if key not in named}
    assert missing == set()
