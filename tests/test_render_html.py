"""report.html: self-contained, escaped, deterministic, complete; plus a headless-Chromium look."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

import report_fixtures as F
from reportgen.metrics import plot_curves
from reportgen.render import RENDERERS, RenderOptions, plots

from conftest import synthetic_predictions

OPTIONS = RenderOptions()
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {name: RENDERERS["html"].render(F.cached(name), OPTIONS).decode("utf-8") for name in F.ALL}


def test_same_report_gives_identical_bytes(pages: dict[str, str]) -> None:
    fresh = F.failing_binary()  # a new, equal Report object: rendered from scratch, not from the cache
    assert fresh is not F.cached("failing_binary")
    assert RENDERERS["html"].render(fresh, OPTIONS).decode("utf-8") == pages["failing_binary"]


def test_timestamp_sits_on_one_line(pages: dict[str, str]) -> None:
    for page in pages.values():
        assert len([line for line in page.splitlines() if F.CREATED_AT in line]) == 1


@pytest.mark.parametrize("name", sorted(F.ALL))
def test_self_contained_no_script_no_external_reference(pages: dict[str, str], name: str) -> None:
    page = pages[name]
    assert "<script" not in page.lower()
    without_ns = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]+"', "", page)
    assert "http://" not in without_ns and "https://" not in without_ns
    for attribute in re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page):
        assert attribute.startswith(("#", "data:")), attribute
    assert "<link" not in page and "@import" not in page and "url(http" not in page


def test_hostile_class_name_renders_as_text(pages: dict[str, str]) -> None:
    page = pages["hostile_names"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert page.count("&lt;script&gt;alert(1)") >= 5  # title, gate, checks, tables, charts
    assert "$x$ &amp; &lt;y&gt;" in page or r"\$x\$" in page


def test_svg_ids_are_unique_across_charts(pages: dict[str, str]) -> None:
    ids = re.findall(r'\bid="([^"]+)"', pages["failing_binary"])
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', pages["failing_binary"]):
        assert ref in ids


def test_first_screen_answers_can_it_ship(pages: dict[str, str]) -> None:
    page = pages["failing_binary"]
    summary = page[: page.index('id="checks"')]
    assert "✖ FAIL" in summary and "Do not ship" in summary
    assert "TabularMLP" in summary and "train 6,000" in summary
    gate = summary[summary.index('<table class="gate">'):]
    statuses = re.findall(r'<tr class="row-(\w+)">', gate)
    assert statuses[:6] == ["error", "fail", "fail", "fail", "fail", "fail"] and statuses[-1] == "pass"
    assert "≥ 0.6" in gate and "≤ 0.05" in gate
    passing = pages["passing_binary"]
    assert "✔ PASS" in passing[: passing.index('id="checks"')]


def test_sections_and_charts_present(pages: dict[str, str]) -> None:
    page = pages["failing_binary"]
    for section in ("checks", "data", "metrics", "curves", "training", "leakage", "appendix"):
        assert f'id="{section}"' in page
    for title in ("Class distribution per split", "Counts", "Row-normalised", "(recall per class)", "ROC curve", "Precision–recall curve",
                  "Precision, recall and F1 vs threshold", "Loss per epoch",
                  "Accuracy per epoch", "Gradient norm per layer (log scale)"):
        assert f">{title}<" in page, title
    assert re.search(r">Reliability diagram \(ECE \d\.\d{3}\)<", page)  # the ECE in the title, not in a legend over the data
    assert "How to read this:" in page
    assert "0.002–0.053" in page  # recall interval of the minority class
    assert "identical train row" in page and "4 more example pairs" in page
    assert "name: fraud-detector-v3" in page  # config as YAML
    regression = pages["regression"]
    assert ">Predicted vs actual<" in regression and ">Residuals<" in regression and 'id="curves"' not in regression
    multiclass = pages["multiclass"]
    assert "ROC per class" in multiclass and 'id="training"' not in multiclass


def test_every_check_has_a_detail_card(pages: dict[str, str]) -> None:
    report = F.failing_binary()
    page = pages["failing_binary"]
    for check in report.checks:
        assert f'id="check-{check.id}"' in page


def test_user_template_dir_overrides_a_template(tmp_path: Path) -> None:
    (tmp_path / "report.css").write_text("body { color: rebeccapurple; }", encoding="utf-8")
    page = RENDERERS["html"].render(F.cached("multiclass"), RenderOptions(template_dir=tmp_path)).decode("utf-8")
    assert "rebeccapurple" in page and "--pass-bg" not in page


def test_plots_are_deterministic_and_escape_text() -> None:
    first = plots.confusion([[5, 1], [2, 7]], [F.XSS_CLASS, "$a$"])
    assert first == plots.confusion([[5, 1], [2, 7]], [F.XSS_CLASS, "$a$"])
    assert "<script>" not in first and "&lt;script&gt;" in first
    assert "<metadata" not in first and "<?xml" not in first
    assert 'role="img" aria-label="Counts; Row-normalised (recall per class)"' in first  # named for screen readers
    assert plots.roc_pr({}) is None and plots.reliability({"bins": []}) is None


def test_flattening_keeps_every_drawn_element_and_meaningful_group() -> None:
    raw = ('<svg><g id="figure_1">\n <g id="patch_1"><path d="M 0 0"/></g>\n'
           ' <g clip-path="url(#p1)"><g><use xlink:href="#m1" x="1"/></g>'
           '<text x="1" transform="rotate(-0 1 2)">a</text><text transform="rotate(-90 1 2)">b</text></g>\n'
           ' <g style="fill: red"><path d="M 1 1"/></g></g></svg>')
    flat = plots._flatten(raw)
    assert re.findall(r"<g\b[^>]*>", flat) == ['<g clip-path="url(#p1)">', '<g style="fill: red">']
    assert flat.count("</g>") == 2
    for element in ("<path", "<use", "<text"):
        assert flat.count(element) == raw.count(element)
    assert "rotate(-0 " not in flat and 'transform="rotate(-90 1 2)"' in flat
    chart = plots.loss_history([{"epoch": 1, "train_loss": 0.7, "val_loss": 0.8},
                                {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6}], best_epoch=2)
    assert not re.search(r'<g( id="[^"]*")?>', chart)  # matplotlib's bare wrappers are gone


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_html_size_does_not_grow_with_the_number_of_samples(task: str) -> None:
    """Charts come from bounded plot data: two million test samples render about as large as ten thousand."""
    base = {"binary": F.failing_binary(), "multiclass": F.multiclass(classes=["a", "b", "c", "d"]),
            "regression": F.regression()}[task]
    classes = base.data.get("classes") or None
    positive = 1 if task == "binary" else None

    def page_for(n: int) -> bytes:
        curves = plot_curves(synthetic_predictions(n, task), task, positive, 0.5, classes=classes)
        report = dataclasses.replace(base, curves={"test": json.loads(json.dumps(curves))})
        return RENDERERS["html"].render(report, OPTIONS)

    small, big = page_for(10_000), page_for(2_000_000)
    assert len(big) < 2_000_000
    assert abs(len(big) - len(small)) < 0.05 * len(small), (len(small), len(big))


def _png_pixels(path: Path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def _open_in_chromium(page: Path, folder: Path) -> tuple[Path, str, list[str]]:
    """Screenshot ``page`` in headless Chromium; return (png, stderr, URLs the page itself requested).

    Chromium's network log records every request with its initiator: the page's own requests carry
    the file's origin, the browser's background traffic (update checks) carries none. Host
    resolution is mapped to nothing, so no request leaves the machine whatever the page asks for.
    """
    shot, netlog = folder / f"{page.stem}.png", folder / f"{page.stem}-net.json"
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={netlog}",
         f"--user-data-dir={folder / (page.stem + '-profile')}", f"--screenshot={shot}", "--window-size=1280,2000",
         "--enable-logging=stderr", "--v=0", page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = [e["params"]["url"] for e in log["events"]
                 if e["type"] == start_job and e.get("params", {}).get("initiator") not in (None, "not an origin")]
    return shot, result.stderr, requested


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_chromium_renders_a_non_blank_page_without_console_errors_or_requests(tmp_path: Path) -> None:
    import numpy as np

    planted = tmp_path / "planted.html"  # proves that both detectors work
    planted.write_text('<html><body><h1>x</h1><img src="https://fonts.example.invalid/logo.png">'
                       '<script>console.error("planted")</script></body></html>')
    _, planted_stderr, planted_requests = _open_in_chromium(planted, tmp_path)
    assert planted_requests == ["https://fonts.example.invalid/logo.png"]
    assert any("CONSOLE" in line and "planted" in line for line in planted_stderr.splitlines())

    page = tmp_path / "report.html"
    page.write_bytes(RENDERERS["html"].render(F.cached("failing_binary"), OPTIONS))
    shot, stderr, requested = _open_in_chromium(page, tmp_path)
    assert requested == []
    assert shot.exists(), stderr[-2000:]
    pixels = _png_pixels(shot)
    assert pixels.shape[0] >= 1900 and pixels.shape[1] >= 1200
    rgb = (pixels[..., :3] * 255).astype(int)
    colours = np.unique(rgb.reshape(-1, 3) @ np.array([65536, 256, 1]))
    assert len(colours) > 50  # text, badges, the verdict banner: far from blank
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 40)
    assert red.sum() > 5000  # the FAIL banner is painted
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_evidence_views_read_what_the_real_checks_write(task: str) -> None:
    """Each special evidence layout must match the evidence the registered check really produces."""
    from check_helpers import breast_cancer, context, diabetes, mlp, tabular_bundle, torch_predictions, train_model
    from reportgen.checks.base import run_checks
    from reportgen.render import view

    bundle, *_ = tabular_bundle(breast_cancer if task == "binary" else diabetes, task, val=0.15)
    model = mlp(bundle.splits["train"].features.shape[1], 2 if task == "binary" else 1)
    training = train_model(model, bundle, epochs=3, lr=1e-2)
    results = run_checks(context(bundle, torch_predictions(bundle, model), training=training), {})
    special = [r for r in results if r.id in view.EVIDENCE_VIEWS and r.evidence]
    assert {r.id for r in special} >= {"baseline_comparison", "train_test_overlap", "gradient_flow"}
    for result in special:
        assert view.evidence_view(result)["kind"] != "generic", result.id
    # every row of the gradient table says whether that parameter learns; a healthy model's say "none"
    gradients = view.evidence_view(next(r for r in special if r.id == "gradient_flow"))
    assert gradients["rows"] and {row["notes"] for row in gradients["rows"]} == {"none"}
    baseline = view.evidence_view(next(r for r in special if r.id == "baseline_comparison"))
    labels = [row["metric"] for row in baseline["rows"]]
    assert labels == (["Accuracy", "Balanced accuracy"] if task == "binary" else ["R²", "RMSE"])


def test_record_evidence_becomes_a_table() -> None:
    from reportgen.render import view

    per_class = view._record_table({"No": {"count": 6767, "share": 0.967}, "Yes": {"count": 233, "share": 0.033}})
    assert per_class["columns"] == [{"label": "Count", "numeric": True}, {"label": "Share", "numeric": True}]
    assert per_class["key_column"] == ""
    assert [r["key"] for r in per_class["rows"]] == ["No", "Yes"]
    assert per_class["rows"][0]["cells"] == [{"text": "6,767", "numeric": True}, {"text": "0.967", "numeric": True}]
    features = view._record_table([{"name": "balance", "score": 0.94}, {"name": "income", "score": 0.51}])
    assert features["key_column"] is None
    assert features["columns"] == [{"label": "Name", "numeric": False}, {"label": "Score used", "numeric": True}]
    assert features["rows"][1]["cells"][0] == {"text": "income", "numeric": False}
    many = view._record_table({str(i): {"x": i} for i in range(view.MAX_EVIDENCE_ROWS + 7)})
    assert len(many["rows"]) == view.MAX_EVIDENCE_ROWS and many["more"] == 7
    shares = view._record_table({"No": {"test_share": 0.9, "train_share": 0.8, "val_share": 0.85}})
    assert [c["label"] for c in shares["columns"]] == ["Share in train", "Share in validation", "Share in test"]
    assert [c["text"] for c in shares["rows"][0]["cells"]] == ["0.800", "0.850", "0.900"]
    assert view._record_table({"a": 1, "b": {"x": 1}}) is None  # not all records
    assert view._record_table([1, 2]) is None and view._record_table({}) is None
    assert view._record_table({"a": {f"c{i}": i for i in range(view.MAX_RECORD_COLUMNS + 1)}}) is None


def test_tables_follow_class_and_split_order_even_from_key_sorted_json() -> None:
    """A results.json re-serialised with sorted keys (jq -S, say) still reads in the configured order."""
    from reportgen.report import Report

    report = F.multiclass(classes=["low", "medium", "high"], name="ordered")
    scrambled = Report.from_document(json.loads(json.dumps(report.document(), sort_keys=True)))
    assert list(scrambled.data["splits"]) == ["test", "train", "val"]
    page = RENDERERS["html"].render(scrambled, OPTIONS).decode("utf-8")
    per_class = page[page.index("Per class"):]
    assert per_class.index(">low<") < per_class.index(">medium<") < per_class.index(">high<")
    data = page[page.index('id="data"'):page.index('id="metrics"')]
    assert data.index(">train<") < data.index(">val<") < data.index(">test<")
    legend = re.findall(r"<text[^>]*>(train|val|test)</text>", data)
    assert legend == ["train", "val", "test"]  # the class-distribution chart's legend


def test_many_classes_show_the_lowest_recalls_first() -> None:
    from reportgen.render import view

    per_class = [{"class": f"c{i:03d}", "recall": 1.0 - (i % 37) / 100, "support": 30} for i in range(200)]
    table = view._per_class_view({"per_class": per_class})
    assert table["worst_first"] and len(table["rows"]) == view.MAX_EVIDENCE_ROWS and table["more"] == 180
    assert [r["recall"] for r in table["rows"][:6]] == ["0.640"] * 5 + ["0.650"]  # i % 37 == 36 for five classes
    few = view._per_class_view({"per_class": per_class[:3]})
    assert not few["worst_first"] and [r["cls"] for r in few["rows"]] == ["c000", "c001", "c002"]


def test_roc_per_class_beyond_ten_classes_draws_the_lowest_aucs() -> None:
    diagonal = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}
    curves = {f"class{i:02d}": dict(diagonal, auc=0.99 - i / 100) for i in range(25)}  # class24 is the worst
    svg = plots.roc_per_class(curves)
    assert "ROC per class: the 10 lowest AUCs of 25" in svg
    drawn = set(re.findall(r"class\d\d", svg))
    assert drawn == {f"class{i:02d}" for i in range(15, 25)}


def test_most_frequent_mistakes_are_listed_for_multiclass_only() -> None:
    from reportgen.render import view

    rows = view._top_confusions([[5, 1, 0], [4, 6, 2], [0, 0, 9]], ["a", "b", "c"])
    assert [(r["actual"], r["predicted"], r["count"], r["share"]) for r in rows] == [
        ("b", "a", "4", "33.3%"), ("b", "c", "2", "16.7%"), ("a", "b", "1", "16.7%")]
    assert view._top_confusions([[5, 1], [4, 6]], ["no", "yes"]) == []
    assert view._top_confusions([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["a", "b", "c"]) == []  # no mistakes
    page = RENDERERS["html"].render(F.cached("multiclass"), OPTIONS).decode("utf-8")
    assert "Most frequent mistakes (test split)" in page


@pytest.mark.parametrize("name", sorted(F.ALL))
def test_no_chart_draws_outside_its_figure(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Titles, tick labels and legends stay inside every chart (nothing is cut off in HTML or PDF)."""
    from reportgen.render import view

    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    view.build(F.ALL[name]())  # raises plots.ChartOverflow on the first chart that overflows


@pytest.mark.parametrize("classes", [
    [f"a rather long class name {i}" for i in range(12)],
    [f"c{i}" for i in range(40)],
    ["a", "b", "c"],
])
def test_no_chart_overflows_with_long_or_many_class_names(classes: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen.render import view

    monkeypatch.setattr(plots, "VERIFY_LAYOUT", True)
    view.build(F.multiclass(classes=classes, name="stress"))


def test_parallel_lists_in_evidence_become_one_table() -> None:
    from reportgen.render import view

    evidence = {"best_f1": 0.5, "precision": [0.2, 0.5, 0.9], "thresholds": [0.25, 0.5, 0.75], "recall": [0.9, 0.5, 0.1],
                "long": list(range(view.MAX_EVIDENCE_ROWS + 1))}
    items = view._generic_items(evidence)
    table = items[0]["table"]
    assert items[0]["key"] == "thresholds" and items[0]["label"] == "By threshold" and table["key_column"] is None
    assert [c["label"] for c in table["columns"]] == ["Threshold", "Precision", "Recall"]  # one table of labels
    assert [c["text"] for c in table["rows"][1]["cells"]] == ["0.500", "0.500", "0.500"]
    assert [i["key"] for i in items[1:]] == ["best_f1", "long"] and items[2]["table"] is None  # too long: a list
    assert view._parallel_columns({"a": [1, 2], "b": "x"}) == []  # one list alone stays a list


def test_every_evidence_key_the_real_checks_write_reads_as_words() -> None:
    """No snake_case key, no empty brackets and no dict literal reaches the reader."""
    import report_fixtures as F
    from reportgen.render import view

    for name in ("passing_binary", "failing_binary", "regression"):
        for check in getattr(F, name)().checks:
            shown = view.evidence_view(check)
            if not shown or shown["kind"] != "generic":
                continue
            for item in shown["items"]:
                assert "_" not in item["label"], (check.id, item["label"])
                assert item["value"] not in ("[]", "{}") and not item["value"].startswith("{"), (check.id, item["value"])
    assert view.evidence_label("tvd_train_test") == "Total variation distance, train vs test"
    assert view.evidence_label("balanced_accuracy") == "Balanced accuracy"
    assert view._compact([]) == "none" and view._compact({"mean": 1.5, "std": 0.25}) == "mean: 1.500 · Standard deviation: 0.250"


def test_page_one_counts_checks_that_ran_apart_from_those_that_did_not_apply():
    import dataclasses as dc

    from reportgen.render import view

    base = F.cached("failing_binary")
    report = dc.replace(base, checks=(*base.checks[:-1], dc.replace(base.checks[-1], status="skip")))
    skipped = sum(c.status == "skip" for c in report.checks)
    assert skipped >= 1
    line = view.checks_line(report)
    assert line.startswith(f"{len(report.checks)} checks: {len(report.checks) - skipped} ran (")
    assert line.endswith(f"), {skipped} did not apply") and "skipped" not in line
    assert ", did not apply" not in view.checks_line(dc.replace(base, checks=tuple(c for c in base.checks if c.status != "skip")))


def test_appendix_shows_the_whole_architecture_and_each_features_preprocessing():
    import dataclasses as dc

    from reportgen.render import view

    base = F.cached("failing_binary")
    layers = " ".join(f"({i}): Linear(in_features=32, out_features=32, bias=True)" for i in range(6))
    architecture = f"Sequential( {layers} )"
    assert len(architecture) > 200  # longer than an appendix cell used to show
    preprocessing = {"fitted_on": "train", "numeric": {"balance": {"mean": 834.5, "std": 483.25}}}
    report = dc.replace(base, model={**base.model, "architecture": architecture},
                        data={**base.data, "fingerprint": {**(base.data.get("fingerprint") or {}), "preprocessing": preprocessing}})
    built = view.build(report)
    shown = dict(built["model_rows"])["architecture"]
    assert shown.splitlines()[0] == "Sequential(" and shown.splitlines()[-1] == ")" and len(shown.splitlines()) == 8
    assert "…" not in shown and all(f"  ({i}): Linear(in_features=32, out_features=32, bias=True)" in shown.splitlines() for i in range(6))
    assert "balance: mean 834.500, std 483.250" in dict(built["fingerprint"])["preprocessing"]
    html = RENDERERS["html"].render(report, OPTIONS).decode("utf-8")
    assert 'class="mono architecture"' in html and "(5): Linear(in_features=32" in html


def test_backticks_in_check_texts_become_code_and_the_rest_is_escaped():
    from reportgen.render import view

    assert str(view.inline_code("a fraction `noise` of <b>")) == "a fraction <code>noise</code> of &lt;b&gt;"
    assert str(view.inline_code("a lone ` stays")) == "a lone ` stays"
    import dataclasses as dc

    base = F.cached("failing_binary")  # its last check read as robustness, whose "How to read this" names `noise`
    report = dc.replace(base, checks=(*base.checks[:-1], dc.replace(base.checks[-1], id="robustness")))
    html = RENDERERS["html"].render(report, OPTIONS).decode("utf-8")
    assert "fraction <code>noise</code> of" in html and "`noise`" not in html


def test_the_gradient_table_names_each_parameters_problem_or_none(pages: dict[str, str]) -> None:
    """The last column of the gradient-flow table was headed "Flag" and empty on every healthy row."""
    for name, problems in (("passing_binary", {"none"}), ("failing_binary", {"none", "no gradient", "vanishing"})):
        table = pages[name].split("<th>Problem</th>", 1)[1].split("</table>", 1)[0]
        last_cells = set(re.findall(r"<td>([^<]*)</td></tr>", table))
        assert last_cells == problems, (name, last_cells)
