"""results.json: the schema, the NaN policy, and the one bounded loader (hostile files exit 2)."""

from __future__ import annotations

import copy
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, get_args

import pytest

import report_fixtures as F
from reportgen import results_schema, vocabulary
from reportgen.cli import main
from reportgen.errors import InputError, ResultsError
from reportgen.pipeline import load_previous_results
from reportgen.render import RENDERERS
from reportgen.render.base import RenderOptions
from reportgen.report import Report, load_results

REPO = Path(__file__).resolve().parent.parent
FREE_FORM = {("curves",), ("config",), ("data", "fingerprint")}


def _document(name: str = "failing_binary") -> dict[str, Any]:
    return F.cached(name).document()


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def render_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["render", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _one_line_exit_2(path: Path, tmp_path: Path, *fragments: str) -> None:
    code, out, err = render_cli(str(path), "--out", str(tmp_path / "out"))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reportgen: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "out").exists()


def test_the_published_schema_is_generated_from_the_models() -> None:
    published = (REPO / "docs" / "results.schema.json").read_text(encoding="utf-8")
    assert published == results_schema.json_schema_text(), "regenerate: python -m reportgen schema > docs/results.schema.json"
    out = io.StringIO()
    assert main(["schema"], out=out, err=io.StringIO()) == 0
    assert json.loads(out.getvalue()) == results_schema.json_schema()
    required = json.loads(published)["required"]
    assert required == ["schema_version", "name", "task", "status", "checks"]


def test_the_schema_words_are_the_vocabulary() -> None:
    assert get_args(results_schema.TaskName) == vocabulary.TASKS
    assert get_args(results_schema.StatusName) == vocabulary.STATUSES
    assert get_args(results_schema.SeverityName) == vocabulary.SEVERITIES
    assert set(get_args(results_schema.VerdictName)) == {v.value for v in vocabulary.Verdict}
    assert results_schema.SCHEMA_VERSION == 1


@pytest.mark.parametrize("name", sorted(F.ALL))
def test_loading_a_saved_results_json_renders_the_same_bytes(name: str, tmp_path: Path) -> None:
    report = F.cached(name)
    path = tmp_path / "results.json"
    path.write_bytes(RENDERERS["json"].render(report, RenderOptions()))
    again = load_results(path)
    for fmt in ("json", "md", "junit"):
        assert RENDERERS[fmt].render(again, RenderOptions()) == RENDERERS[fmt].render(report, RenderOptions())
    assert list(again.document()) == list(report.document())


def test_a_run_document_keeps_its_key_order_and_numbers_their_type(tmp_path: Path) -> None:
    document = _document("multiclass")
    again = Report.from_document(json.loads(json.dumps(document))).document()
    assert json.dumps(again) == json.dumps(document)
    assert isinstance(again["metrics"]["test"]["n"], int)
    assert list(again["metrics"]["test"]["per_class"]) == document["data"]["classes"]


def test_numpy_values_and_non_finite_numbers_pass_one_boundary() -> None:
    np = pytest.importorskip("numpy")
    value = {"a": np.float32(1.5), "b": np.int64(3), "c": float("nan"), "d": (1, float("-inf")),
             "e": np.array([[1, 2]]), "f": np.bool_(True), "g": vocabulary.Status.FAIL, 3: None}
    assert results_schema.to_jsonable(value) == {"a": 1.5, "b": 3, "c": None, "d": [1, None], "e": [[1, 2]],
                                                 "f": True, "g": "fail", "3": None}
    assert type(results_schema.to_jsonable(vocabulary.Status.FAIL)) is str


def test_free_form_sections_accept_any_json_and_open_sections_accept_new_metrics() -> None:
    document = _document()
    document["config"]["my_team"] = {"owner": ["x", 1, None, {"deep": True}]}
    document["curves"]["test"]["my_curve"] = [[0.1, 0.2]]
    document["checks"][0]["evidence"]["anything"] = {"goes": [1, "two", None]}
    document["metrics"]["test"]["expected_calibration_error"] = 0.04
    document["training"]["history"][0]["val_new_metric"] = None
    report = Report.from_document(document)
    assert report.metrics["test"]["expected_calibration_error"] == 0.04
    assert report.document() == document


def _mutations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every typed value of the document replaced by one of a wrong type (free-form parts excepted)."""

    def walk(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if path in FREE_FORM or (len(path) == 3 and path[0] == "checks" and path[2] == "evidence"):
            return
        if path:
            yield path
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, path + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node[:2]):
                yield from walk(value, path + (index,))

    for path in walk(document, ()):
        mutated = copy.deepcopy(document)
        parent = mutated
        for part in path[:-1]:
            parent = parent[part]
        old = parent[path[-1]]
        parent[path[-1]] = "text" if isinstance(old, (dict, list)) else {"wrong": [old]}
        yield ".".join(map(str, path)), mutated


@pytest.mark.parametrize("name", ["failing_binary", "multiclass", "regression"])
def test_every_wrong_type_in_any_section_is_one_clear_results_error(name: str) -> None:
    document = _document(name)
    count = 0
    for where, mutated in _mutations(document):
        with pytest.raises(ResultsError) as caught:
            Report.from_document(mutated)
        message = str(caught.value)
        assert message.startswith(where.split(".")[0]), (where, message)
        assert "\n" not in message and len(message) < 400, message
        count += 1
    assert count > 100


def test_missing_sections_and_unknown_keys_are_named() -> None:
    document = _document()
    for key in ("name", "task", "status", "checks", "schema_version"):
        broken = {k: v for k, v in document.items() if k != key}
        with pytest.raises(ResultsError, match=re.escape(key)):
            Report.from_document(broken)
    with pytest.raises(ResultsError, match=r"environment\.hostnme: unknown key"):
        Report.from_document({**document, "environment": {**document["environment"], "hostnme": "x"}})
    with pytest.raises(ResultsError, match=r"checks\[0\]\.id: missing"):
        Report.from_document({**document, "checks": [{k: v for k, v in document["checks"][0].items() if k != "id"}]})
    with pytest.raises(ResultsError, match=r"training\.history\[0\]\.val_loss"):
        history = [{**document["training"]["history"][0], "val_loss": "low"}]
        Report.from_document({**document, "training": {**document["training"], "history": history}})


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, "nested more than 64 levels deep"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested more than 64 levels deep"),
    ('{"schema_version": 1, "timing": {"load": NaN}}', "contains NaN, which is not JSON"),
    ('{"schema_version": 1, "timing": {"load": -Infinity}}', "contains -Infinity"),
    ('{"schema_version": 1,', "is not valid JSON"),
    ("", "is empty"),
    ('"[[[["', "a JSON string, not an object"),
])
def test_hostile_text_is_refused_with_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    _one_line_exit_2(path, tmp_path, str(path), fragment)


def test_bad_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(b'{"name": "\xff\xfe"}')
    _one_line_exit_2(path, tmp_path, "is not UTF-8 text (byte 10)")


def test_a_folder_is_exit_2_not_3(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    _one_line_exit_2(folder, tmp_path, "is a directory")


def test_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    _one_line_exit_2(fifo, tmp_path, "is not a regular file")
    with pytest.raises(InputError, match="compare_to: .*is not a regular file"):
        load_previous_results(fifo)


def test_a_device_is_refused(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    _one_line_exit_2(Path("/dev/zero"), tmp_path, "is not a regular file")


def test_a_file_over_the_size_bound_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    with open(path, "wb") as handle:  # sparse: no disk used, and nothing is read
        handle.truncate(results_schema.MAX_BYTES + 1)
    _one_line_exit_2(path, tmp_path, "larger than 64 MiB")


def test_compare_to_uses_the_same_loader(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", _document())
    assert load_previous_results(good) == _document()
    bad = _write(tmp_path / "bad.json", {**_document(), "metrics": {"test": {"n": "many"}}})
    with pytest.raises(ResultsError, match=r"compare_to: .*bad\.json: metrics\.test\.n: Input should be a valid integer"):
        load_previous_results(bad)


def test_render_accepts_debug(tmp_path: Path) -> None:
    path = _write(tmp_path / "results.json", {"schema_version": 1})
    out, err = io.StringIO(), io.StringIO()
    assert main(["render", str(path), "--out", str(tmp_path / "o"), "--debug"], out=out, err=err) == 2
    assert "Traceback" in err.getvalue() and "no 'name'" in err.getvalue()


def test_hostile_files_stay_bounded_under_a_memory_limit(tmp_path: Path) -> None:
    """A render of /dev/zero, a FIFO and a 100,000-deep file in a process limited to 1 GiB: exit 2, quickly."""
    import subprocess
    import sys

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30));"
    for target in ("/dev/zero", str(fifo), str(deep)):
        code = (f"{limit} import sys; from reportgen.cli import main; "
                f"sys.exit(main(['render', {target!r}, '--out', {str(tmp_path / 'o')!r}]))")
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("reportgen: error: "), result.stderr


@pytest.mark.slow
def test_render_of_a_runs_results_json_is_byte_identical_to_the_run(tmp_path: Path, cancer_config_path: Path) -> None:
    formats = "html,pdf,json,junit,md"
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", str(cancer_config_path), "--out", str(tmp_path / "run"), "--quiet", "--format", formats],
                out=out, err=err) in (0, 1), err.getvalue()
    assert main(["render", str(tmp_path / "run" / "results.json"), "--out", str(tmp_path / "again"), "--format", formats],
                out=io.StringIO(), err=err) in (0, 1), err.getvalue()
    for name in ("report.html", "report.pdf", "results.json", "junit.xml", "summary.md"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name


def _with_records(document: dict[str, Any]) -> dict[str, Any]:
    """The document with a gate block holding real per-sample records of 27 test rows."""
    import numpy as np

    from reportgen.gate import correctness_record, score_record

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, size=27)
    blocking = [c["id"] for c in document["checks"]
                if vocabulary.Status(c["status"]).blocks_gate(c["severity"])]
    gate = {"verdict": document["status"], "blocking": blocking,
            "test_outcomes": correctness_record(truth, rng.integers(0, 2, size=27), 1),
            "test_scores": score_record(truth, rng.random(27), 1)}
    return {**document, "gate": gate}


@pytest.mark.parametrize("section, key, value, fragment", [
    ("test_outcomes", "correct", "@@@@", "gate.test_outcomes.correct"),
    ("test_outcomes", "correct", "AAAA", "correct holds 3 bytes, but 27 samples need 4"),
    ("test_outcomes", "positive", "AAA=\n", "gate.test_outcomes.positive"),
    ("test_outcomes", "n", "abc", "gate.test_outcomes.n: Input should be a valid integer"),
    ("test_outcomes", "n", 10 ** 30, "gate.test_outcomes.n: Input should be less than or equal"),
    ("test_outcomes", "labels_sha256", "not-hex", "gate.test_outcomes.labels_sha256"),
    ("test_scores", "labels_sha256", "not-hex", "gate.test_scores.labels_sha256"),
    ("test_scores", "labels_sha256", "A" * 64, "gate.test_scores.labels_sha256"),
    ("test_scores", "rows", 26, "scores holds 54 bytes, but 26 scores need 52"),
    ("test_scores", "rows", 28, "rows is 28, more than the 27 test rows"),
    ("test_scores", "positive_index", 7, "gate.test_scores.positive_index"),
    ("test_scores", "scores", "QUJD\nREVG", "gate.test_scores.scores"),
])
def test_damaged_per_sample_records_are_refused_when_read(section: str, key: str, value: Any, fragment: str) -> None:
    document = _with_records(_document("passing_binary"))
    Report.from_document(document)  # the intact records are valid
    damaged = copy.deepcopy(document)
    damaged["gate"][section][key] = value
    with pytest.raises(ResultsError) as caught:
        Report.from_document(damaged)
    assert fragment in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)
