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
