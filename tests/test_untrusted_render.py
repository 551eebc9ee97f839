"""What a results.json, a template folder or a name can do to the console, summary.md, report.html and junit.xml."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import report_fixtures as F
from reportgen.cli import main
from reportgen.errors import InputError
from reportgen.render import RENDERERS, RenderOptions, fmt
from reportgen.render.html import check_templates
from reportgen.render.view import loss_caption
from reportgen.report import Report
from reportgen.vocabulary import ExitCode

REPO = Path(__file__).resolve().parent.parent
HOSTILE_ID = "leak\n::error file=app.py,line=1::owned"
HOSTILE_MESSAGE = "recall 0.2\x1b[1A\x1b[2K\rPASS: all good \u202eSSAP"


def _hostile_report(**changes: str) -> Report:
    base = F.failing_binary()
    checks = list(base.checks)
    index = next(i for i, c in enumerate(checks) if c.status == "fail" and c.severity == "error")
    checks[index] = dataclasses.replace(checks[index], id=HOSTILE_ID, message=HOSTILE_MESSAGE)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    return Report(**{**fields, "checks": tuple(checks), **changes})


def _render_cli(report: Report, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "results.json"
    path.write_bytes(RENDERERS["json"].render(report, RenderOptions()))
    out, err = io.StringIO(), io.StringIO()
    code = main(["render", str(path), "--out", str(tmp_path / "out"), *extra], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_console_lines_cannot_be_repainted_or_become_ci_commands(tmp_path: Path) -> None:
    code, out, err = _render_cli(_hostile_report(name="::warning::fake\x1b]0;title\x07"), tmp_path, "--format", "md")
    assert code == ExitCode.GATE_FAILED, err
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", out)
    lines = out.splitlines()
    assert lines[0].startswith("FAIL: ::warning::fake\\x1b]0;title\\x07: ")
    assert not any(line.lstrip().startswith("::") for line in lines)
    blocking = [line for line in lines if "owned" in line]
    assert blocking == ["  FAIL leak\\n::error file=app.py,line=1::owned: recall 0.2\\x1b[1A\\x1b[2K\\rPASS: all good \\u202eSSAP"]


def test_console_line_neutralises_controls_and_ci_commands() -> None:
    assert fmt.console_line("::error::x") == "> ::error::x"
    assert fmt.console_line("  ##vso[task.setvariable]x") == ">   ##vso[task.setvariable]x"
    assert fmt.console_safe("a\tb\r\nc\x9b\ud800") == "a\\tb\\r\\nc\\x9b\\ud800"
    assert fmt.console_safe("Ünïcode ✔ 名前") == "Ünïcode ✔ 名前"


def test_summary_md_links_nothing_and_keeps_one_line_per_row() -> None:
    names = ["https://evil.example/login", "www.evil.example", "ops@evil.example", "@octocat", "#1234", "HTTP://X.Y"]
    report = F.multiclass(classes=names, name="see https://evil.example and @admins")
    report = Report(**{**{f.name: getattr(report, f.name) for f in dataclasses.fields(report)},
                       "checks": report.checks + (dataclasses.replace(report.checks[0], id="x", message=" ".join(names) + "\n| injected |"),)})
    text = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    assert "https://" not in text and "HTTP://" not in text and "www." not in text
    assert not re.search(r"@\w", text) and not re.search(r"#\d", text)
    assert "https:\u2060//evil.example/login" in text and "@\u2060octocat" in text
    assert "| injected |" not in text


def test_html_isolates_names_and_drops_bidi_controls() -> None:
    report = F.multiclass(classes=["\u202eevil", "ok"], name="model \u202eLIAF")
    page = RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")
    assert "\u202e" not in page
    assert '<h1 class="report-name"><bdi>model \ufffdLIAF</bdi></h1>' in page
    assert "unicode-bidi: isolate" in page


def test_lone_surrogates_and_controls_give_well_formed_junit() -> None:
    report = _hostile_report(name="bad \ud800 name \x00")
    data = RENDERERS["junit"].render(report, RenderOptions())
    root = ET.fromstring(data)
    assert root.get("name") == "bad \ufffd name \ufffd"
    assert fmt.xml_safe("a\ud800\udfff\ufffe\uffff\x0b\U0001f600") == "a\ufffd\ufffd\ufffd\ufffd\ufffd\U0001f600"
    RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    RENDERERS["html"].render(report, RenderOptions()).decode("utf-8")


def test_a_template_cannot_reach_python_internals(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text(
        "{{ cycler.__init__.__globals__.os.popen('echo pwned-$((6*7))').read() }}", encoding="utf-8")
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT, err
    assert err.startswith("reportgen: error: could not render report.html: template report.html.j2: refused by the template sandbox")
    assert "pwned-42" not in out + err and not (tmp_path / "out").exists()


def test_a_template_symlink_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.css").symlink_to(secret)
    with pytest.raises(InputError, match="resolves outside its template folder"):
        check_templates(templates)
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT and "resolves outside its template folder" in err
    assert not (tmp_path / "out").exists()
    inside = templates / "extra.css"
    inside.write_text("p {}", encoding="utf-8")
    (templates / "report.css").unlink()
    (templates / "report.css").symlink_to(inside)  # a link within the folder is fine
    check_templates(templates)


def test_the_readme_exit_code_table_is_the_exit_code_enum() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Exit codes"):]
    codes = [int(code) for code in re.findall(r"^\| (\d+) \|", table[: table.index("\n\n", table.index("| ---"))], re.M)]
    assert codes == [int(c) for c in ExitCode]


@pytest.mark.parametrize("training, config, expected", [
    ({"best_epoch": 8, "epochs_run": 17, "stopped_early": False}, {"training": {"epochs": 17}},
     "the dotted line marks the best epoch (8); without early stopping the last epoch's (17) weights were kept."),
    ({"best_epoch": 12, "epochs_run": 16, "stopped_early": True}, {"training": {"early_stopping": {"patience": 4}}},
     "the dotted line marks the best epoch (12), whose weights were kept."),
    ({"best_epoch": 20, "epochs_run": 30, "stopped_early": False}, {"training": {"early_stopping": {"patience": 20}}},
     "the dotted line marks the best epoch (20), whose weights were kept."),
    ({"best_epoch": 17, "epochs_run": 17, "stopped_early": False}, {},
     "the dotted line marks the best epoch (17), whose weights were kept."),
])
def test_the_loss_caption_says_which_weights_were_kept(training: dict, config: dict, expected: str) -> None:
    assert loss_caption(training, config).endswith(expected)


def test_the_html_caption_of_a_run_without_early_stopping() -> None:
    page = RENDERERS["html"].render(F.cached("failing_binary"), RenderOptions()).decode("utf-8")
    config = F.cached("failing_binary").config["training"]
    assert ("early_stopping" in config) == ("whose weights were kept" in page)
    json.dumps(config)


RUNAWAY_TEMPLATES = {
    "a power of a power": "{{ ((10**1000)**1000)**1000 }}",
    "a product of huge integers": "{{ (7**500) * (7**500) * (7**500) * (7**500) * (7**500) }}",
    "a repeated list joined": '{{ (["x" * 1000000] * 1000000)|join }}',
    "str.join": '{{ "".join(["x" * 1000000] * 1000000) }}',
    "the center filter": '{{ "x"|center(2000000000) }}',
    "str.ljust": '{{ "x".ljust(2000000000) }}',
    "a format width": '{{ "{:>2000000000}".format("x") }}',
    "a format width argument": '{{ "{:>{w}}".format("x", w=2000000000) }}',
    "a printf width": '{{ "%2000000000s" % "x" }}',
    "the format filter": '{{ "%2000000000s"|format("x") }}',
    "the replace filter": '{{ ("a" * 1000000)|replace("a", "a" * 1000000) }}',
    "str.replace": '{{ ("a" * 1000000).replace("a", "a" * 1000000) }}',
    "the wordwrap filter": '{{ "x"|wordwrap(2000000000) }}',
    "the indent filter": '{{ ("x\n" * 500000)|indent(100) }}',
    "a concatenation": '{% set ns = namespace(s="x" * 1000000) %}{{ ns.s + ns.s }}',
    "a ~ doubled in a namespace": '{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
    "a ~ of long strings": '{{ ("x" * 600000) ~ ("y" * 600000) }}',
    "a ~ of a list long only as text": '{{ "" ~ (["xxxxxxxxxx"] * 200000) }}',
    "lipsum": "{{ lipsum(n=100000000) }}",
    "a join over a generator": '{% set s = range(100000)|join("x"*1000) %}{{ s|length }}',
    "map then join": '{% set s = "y"*900000 %}{{ ([s]*100)|map("string")|join|length }}',
    "str.join over a generator": '{{ ("z"*1000).join(range(100000)|map("string"))|length }}',
    "repeated bytes": '{{ ("x".encode() * 100000000)|length }}',
    "batch with fill_with": '{% for b in [1]|batch(5000000, fill_with=0) %}{{ b|length }}{% endfor %}',
    "a tojson indent": '{{ {"a": {"b": [1]}}|tojson(indent=5000000)|length }}',
    "a * width of the format filter": '{{ "%*d"|format(100000000, 1) }}',
    "a * width of %": '{{ "%*d" % (100000000, 1) }}',
    "a wordwrap wrapstring": '{{ ("a "*400000)|wordwrap(1, break_long_words=true, wrapstring="<br>"*200000)|length }}',
    "upper growing a string": '{{ ("\u00df"*900000)|upper|length }}',
    "a sum of lists": "{{ ([[0]*1000]*3000)|sum(start=[])|length }}",
}


@pytest.mark.parametrize("case", sorted(RUNAWAY_TEMPLATES))
def test_a_template_cannot_build_a_huge_string_list_or_number(tmp_path: Path, case: str) -> None:
    """Every operation that pads, repeats or multiplies is bounded before it runs: exit 2, nothing written."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text(RUNAWAY_TEMPLATES[case], encoding="utf-8")
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT, err
    assert err.startswith("reportgen: error: could not render report.html: template report.html.j2: refused by the "
                          "template sandbox: "), err
    assert "more than" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source, error", [
    ("{{ 1/0 }}", "ZeroDivisionError: division by zero"),
    ('{{ ("x"*1000) * 1000.0 }}', "TypeError: can't multiply sequence by non-int of type 'float'"),
])
def test_an_error_raised_by_a_custom_template_is_bad_input_naming_it(tmp_path: Path, source: str, error: str) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text(source, encoding="utf-8")
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT, err
    assert err.strip() == f"reportgen: error: could not render report.html: template report.html.j2: {error}"
    assert not (tmp_path / "out").exists()


def test_sums_joins_and_filters_of_ordinary_size_still_work(tmp_path: Path) -> None:
    from reportgen.render.html import environment

    (tmp_path / "ok.j2").write_text(
        '{{ [[1], [2, 3]]|sum(start=[]) }}|{{ [(1,), (2,)]|sum(start=()) }}|{{ [1, 2, 3]|sum }}'
        '|{{ range(3)|map("string")|join("-") }}|{{ "+".join(range(3)|map("string")) }}|{{ "%*d"|format(3, 7) }}'
        '|{{ "a b c"|wordwrap(1, wrapstring="/") }}|{{ "\u00df"|upper }}|{{ [1, 2, 3]|batch(2, fill_with=0)|list }}',
        encoding="utf-8")
    env = environment(tmp_path)
    assert env.render(env.get_template("ok.j2")) == "[1, 2, 3]|(1, 2)|6|0-1-2|0+1+2|  7|a/b/c|SS|[[1, 2], [3, 0]]"


@pytest.mark.parametrize("loop", [
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in 'x' * 100000 %}{% for b in 'y' * 100000 %}{{ '' }}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% for i in range(100000) %}{{ f(n - 1) if n else '' }}{% endfor %}{% endmacro %}{{ f(3) }}",
])
def test_a_runaway_template_ends_at_its_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str) -> None:
    from reportgen.render import sandbox

    monkeypatch.setattr(sandbox, "TEMPLATE_TIME_BUDGET_S", 0.5)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text(loop, encoding="utf-8")
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT, err
    assert err.strip() == ("reportgen: error: could not render report.html: template report.html.j2: exceeded its time "
                           "budget of 0.5 s; a template must not loop or compute without bound")
    assert not (tmp_path / "out").exists()


def test_the_deadline_holds_outside_the_main_thread(tmp_path: Path) -> None:
    """No SIGALRM off the main thread: the checks in the sandbox's hooks and range() end the render."""
    import threading

    from reportgen.render.html import environment
    from reportgen.render.sandbox import TemplateTimeExceeded

    (tmp_path / "loop.j2").write_text("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                                      encoding="utf-8")
    env = environment(tmp_path)
    env.time_budget_s = 0.3
    raised: list[BaseException] = []

    def render() -> None:
        try:
            env.render(env.get_template("loop.j2"))
        except TemplateTimeExceeded as exc:
            raised.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive() and len(raised) == 1
    assert str(raised[0]) == "exceeded its time budget of 0.3 s"


def test_the_time_budget_never_raises_inside_a_garbage_collector_callback(tmp_path: Path) -> None:
    """The repeating SIGALRM lands in whatever Python code runs; a gc callback must not get the error
    (Python could only print it as an "unraisable exception"): the template's own code gets it."""
    import gc
    import sys
    import time

    from reportgen.render.html import environment
    from reportgen.render.sandbox import TemplateTimeExceeded

    (tmp_path / "loop.j2").write_text("{% for a in range(100000) %}{% for b in range(100000) %}{{ [a, b]|length }}"
                                      "{% endfor %}{% endfor %}", encoding="utf-8")
    env = environment(tmp_path)
    env.time_budget_s = 0.5
    unraisable: list = []

    def slow_callback(phase: str, info: dict) -> None:  # most of the render's time is spent in here
        if phase == "start":
            time.sleep(0.002)

    previous_hook, threshold = sys.unraisablehook, gc.get_threshold()
    sys.unraisablehook = unraisable.append
    gc.callbacks.append(slow_callback)
    gc.set_threshold(50)
    try:
        with pytest.raises(TemplateTimeExceeded, match="exceeded its time budget of 0.5 s"):
            env.render(env.get_template("loop.j2"))
    finally:
        gc.callbacks.remove(slow_callback)
        gc.set_threshold(*threshold)
        sys.unraisablehook = previous_hook
    assert [repr(u.exc_value) for u in unraisable] == []


def test_the_history_page_renders_under_the_template_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen import history
    from reportgen.render import sandbox
    from reportgen.render.sandbox import TemplateTimeExceeded

    results = tmp_path / "results.json"
    results.write_bytes(RENDERERS["json"].render(F.cached("passing_binary"), RenderOptions()))
    collected = history.collect([str(results)])
    assert b"<html" in history.render_html(collected.histories[0])  # within the budget: renders
    monkeypatch.setattr(sandbox, "TEMPLATE_TIME_BUDGET_S", 1e-9)
    with pytest.raises(TemplateTimeExceeded):
        history.render_html(collected.histories[0])


def test_the_rendered_output_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen.render import sandbox

    monkeypatch.setattr(sandbox, "MAX_TEMPLATE_OUTPUT", 100_000)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", encoding="utf-8")
    code, out, err = _render_cli(F.cached("passing_binary"), tmp_path, "--format", "html", "--template-dir", str(templates))
    assert code == ExitCode.BAD_INPUT, err
    assert "its output is longer than 100,000 characters" in err and not (tmp_path / "out").exists()


def test_bounded_operations_of_ordinary_size_still_work(tmp_path: Path) -> None:
    from reportgen.render.html import environment

    (tmp_path / "ok.j2").write_text(
        '{{ "x"|center(5) }}|{{ 2**10 }}|{{ [1, 2]|join(",") }}|{{ "%5.2f"|format(3.14159) }}|{{ "{:>3}".format("a") }}'
        '|{{ "{:>{w}}".format("b", w=2) }}|{{ "ab".replace("b", "cd") }}|{{ "a" + "b" }}|{{ "%s!" % "hi" }}'
        '|{{ (lipsum(2, html=false)|wordcount) > 0 }}', encoding="utf-8")
    env = environment(tmp_path)
    assert env.render(env.get_template("ok.j2")) == "  x  |1024|1,2| 3.14|  a| b|acd|ab|hi!|True"


def test_memory_of_a_render_follows_its_characters_not_its_parts(tmp_path: Path) -> None:
    """A template that emits 300,000 short parts: the render holds about its output, not a Python
    object per part (which made a runaway template take gigabytes before the output cap stopped it)."""
    import tracemalloc

    from reportgen.render.html import environment

    (tmp_path / "many.j2").write_text("{% for i in range(300) %}{% for j in range(100, 1100) %}{{ j }}{% endfor %}{% endfor %}",
                                      encoding="utf-8")
    env = environment(tmp_path)
    template = env.get_template("many.j2")
    tracemalloc.start()
    try:
        text = env.render(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == "".join(str(j) for j in range(100, 1100)) * 300
    # The output is 0.9 MB of ASCII, held twice while the blocks are joined; a str object per part
    # (about 52 bytes for 3 or 4 characters) would be over ten times the output.
    assert peak < 4 * len(text), (peak, len(text))
