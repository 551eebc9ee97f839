"""The gate as a reviewer and a CI owner see it: overrides of the default gate, --strict, page 1, summary.md, junit.xml."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

import report_fixtures as F
from conftest import SAMPLES, cancer_config, write_config
from reportgen import numbers
from reportgen.checks.base import registry
from reportgen.cli import main
from reportgen.config import load_config
from reportgen.gate import correctness_record, gate_overrides, unpack_bits
from reportgen.pipeline import execute
from reportgen.render import RENDERERS, RenderOptions
from reportgen.render.page_one import page_one


def specs():
    return [c.spec for c in registry.all()]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def page1_text(report) -> str:
    reader = PdfReader(io.BytesIO(RENDERERS["pdf"].render(report, RenderOptions())))
    return " ".join(reader.pages[0].extract_text().split())


def test_overrides_name_each_difference_from_the_default_gate_with_its_direction():
    config = {
        "minority_recall": {"min": 0.2, "severity": "warning"},          # relaxed + severity lowered
        "overfit_gap": {"max": 0.05},                                       # a max lowered: tightened
        "calibration": {"enabled": False, "max": 0.5},                      # disabled: nothing else matters
        "release_comparison": {"allow_different_data": True, "max": 0.02},  # max at its default: no override
        "class_imbalance": {"severity": "error"},                           # raised
    }
    found = {(o.check, o.setting): o for o in gate_overrides(specs(), config)}
    assert {k: o.effect for k, o in found.items()} == {
        ("minority_recall", "min"): "relaxed", ("minority_recall", "severity"): "severity_lowered",
        ("overfit_gap", "max"): "tightened", ("calibration", "enabled"): "disabled",
        ("release_comparison", "allow_different_data"): "relaxed", ("class_imbalance", "severity"): "severity_raised",
    }
    assert found[("minority_recall", "min")].describe() == "minority_recall.min relaxed from 0.5 to 0.2"
    assert {o.effect for o in gate_overrides(specs(), config) if o.relaxes} == {"relaxed", "severity_lowered", "disabled"}
    assert gate_overrides(specs(), {"minority_recall": {"min": 0.5, "severity": "error", "enabled": True}}) == ()


@pytest.fixture(scope="module")
def cancer_path(tmp_path_factory, breast_cancer_frame) -> Path:
    folder = tmp_path_factory.mktemp("gate")
    breast_cancer_frame.to_csv(folder / "cancer.csv", index=False)
    document = cancer_config(folder / "cancer.csv")
    document["report"] = {"formats": ["json", "junit", "md"]}
    return write_config(folder, document)


def test_a_disabled_blocking_check_is_listed_wherever_the_verdict_is(cancer_path: Path, tmp_path: Path):
    code, out, _ = run_cli("run", str(cancer_path), "--out", str(tmp_path / "r"), "--quiet",
                           "--set", "checks.minority_recall.enabled=false", "--set", "checks.calibration.max=0.5")
    assert code == 0
    assert "gate overrides: minority_recall disabled; calibration.max relaxed from 0.1 to 0.5" in out
    document = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    gate = document["gate"]
    assert gate["verdict"] == "pass" and gate["strict"] is False and gate["blocking"] == []
    assert gate["overrides"] == [
        {"check": "minority_recall", "setting": "enabled", "default": True, "value": False, "effect": "disabled"},
        {"check": "calibration", "setting": "max", "default": 0.1, "value": 0.5, "effect": "relaxed"},
    ]
    summary = (tmp_path / "r" / "summary.md").read_text(encoding="utf-8")
    assert "**Gate differs from the default** — 2 relaxed:" in summary
    assert "- ▼ relaxed: minority\\_recall disabled" in summary
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "r" / "junit.xml").iter("property")}
    assert props["gate_relaxations"] == "2" and props["gate_strict"] == "false"
    assert props["gate_override_1"] == "disabled: minority_recall disabled"
    from reportgen.report import Report

    first = page1_text(Report.from_document(document))
    assert "only because the config relaxes 2 settings of the default gate" in first
    assert "minority_recall disabled" in first and "calibration.max relaxed from 0.1 to 0.5" in first
    html = RENDERERS["html"].render(Report.from_document(document), RenderOptions()).decode("utf-8")
    summary_section = html[html.index('<section class="summary"'):html.index('<section class="major" id="checks"')]
    assert "▼ relaxed: minority_recall disabled" in summary_section  # the HTML's first screen, beside the verdict
    assert "▼ relaxed: calibration.max relaxed from 0.1 to 0.5" in summary_section


def test_strict_turns_a_relaxation_into_exit_1_with_the_reason(cancer_path: Path, tmp_path: Path):
    code, out, _ = run_cli("run", str(cancer_path), "--out", str(tmp_path / "r"), "--quiet", "--strict",
                           "--set", "checks.minority_recall.min=0.1")
    assert code == 1
    assert "FAIL gate_strict: The strict gate refuses 1 relaxation of the default gate: minority_recall.min relaxed from 0.5 to 0.1." in out
    gate = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))["gate"]
    assert gate["strict"] is True and gate["verdict"] == "fail" and gate["blocking"] == ["gate_strict"]
    # A tightened gate is no relaxation: strict passes it, and the config key does what the flag does.
    code, out, _ = run_cli("run", str(cancer_path), "--out", str(tmp_path / "t"), "--quiet",
                           "--set", "gate.strict=true", "--set", "checks.minority_recall.min=0.6")
    assert code == 0 and "gate overrides (strict gate): minority_recall.min tightened from 0.5 to 0.6" in out


def test_render_keeps_the_gate_block_byte_for_byte(cancer_path: Path, tmp_path: Path):
    run_cli("run", str(cancer_path), "--out", str(tmp_path / "r"), "--quiet", "--set", "checks.minority_recall.min=0.1")
    code, _, _ = run_cli("render", str(tmp_path / "r" / "results.json"), "--out", str(tmp_path / "again"), "--format", "json,md,junit")
    assert code == 0
    for name in ("results.json", "summary.md", "junit.xml"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "r" / name).read_bytes(), name


def test_per_sample_outcomes_are_packed_to_one_bit_per_row(breast_cancer_frame):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 1_001)
    y_pred = np.where(rng.random(1_001) < 0.9, y_true, 1 - y_true)
    record = correctness_record(y_true, y_pred, positive_index=1)
    assert len(base64.b64decode(record["correct"])) == 126  # ceil(1001 / 8)
    assert np.array_equal(unpack_bits(record["correct"], 1_001), y_true == y_pred)
    assert np.array_equal(unpack_bits(record["positive"], 1_001), y_true == 1)
    assert record["labels_sha256"] != correctness_record(y_true[::-1], y_pred[::-1], 1)["labels_sha256"]


@pytest.fixture(scope="module")
def credit_naive():
    report, _ = execute(load_config(SAMPLES / "credit_default.yaml"))
    return report


def test_page_one_of_the_failing_credit_sample_says_what_the_verdict_turns_on(credit_naive):
    from scipy.stats import binomtest

    report = credit_naive
    (tn, fp), (fn, tp) = report.metrics["test"]["confusion_matrix"]
    tiles = {t["key"]: t for t in page_one(report)["tiles"]}
    for key, k, n in (("precision", tp, tp + fp), ("recall", tp, tp + fn), ("accuracy", tp + tn, tp + tn + fp + fn)):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert tiles[key]["ci"] == f"95% CI {ci.low:.3f}–{ci.high:.3f}"
    first = page1_text(report)
    for fragment in ("Precision (Yes)", "Recall (Yes)", tiles["precision"]["ci"], "Decision threshold 0.5",
                     "is 3.3% (50 of 1,500) of test", "default.csv (sha256", "What would fix it",
                     "Lower the decision threshold to", "would still fail", "class_weights: balanced",
                     "the default thresholds and severities of every check"):
        assert fragment.replace(" ", "") in first.replace(" ", ""), fragment  # tiles wrap their lines
    summary = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    headline = next(line for line in summary.splitlines() if line.startswith("**Test split"))
    for fragment in ("Precision (Yes) 0.680 (95% CI", "Recall (Yes) 0.340", "threshold 0.5",
                     "prevalence of “Yes” 3.3% (50 of 1,500)", "data default.csv (sha256"):
        assert fragment in headline, fragment
    assert "Lower the decision threshold to" in summary


def test_the_best_f1_threshold_is_never_offered_as_a_fix_when_it_fails_the_gate(credit_naive):
    sweep = credit_naive.curves["test"]["threshold_sweep"]
    best = int(np.argmax(sweep["f1"]))
    fixes = page_one(credit_naive)["fixes"]
    minimum = next(c.threshold for c in credit_naive.checks if c.id == "minority_recall")
    proposed = next(f for f in fixes if f.startswith("Lower the decision threshold"))
    val_sweep = credit_naive.curves["val"]["threshold_sweep"]  # the threshold is chosen on val, never on test
    meeting = [i for i, r in enumerate(val_sweep["recall"]) if r >= minimum]
    chosen = max(meeting, key=lambda i: val_sweep["thresholds"][i])
    assert f"to {numbers.setting(val_sweep['thresholds'][chosen])} (model.threshold)" in proposed and "chosen on val" in proposed
    # ... and says what it costs: the precision at that threshold, on val and then on test
    assert f"at a precision of {val_sweep['precision'][chosen]:.3f}" in proposed
    on_test = sweep["thresholds"].index(val_sweep["thresholds"][chosen])
    assert f"on test it gives recall {sweep['recall'][on_test]:.3f} at precision {sweep['precision'][on_test]:.3f}" in proposed
    # On this sample the best-F1 threshold misses the recall minimum: it is named only as failing.
    assert sweep["recall"][best] < minimum
    best_f1 = [f for f in fixes if "best-F1" in f]
    assert len(best_f1) == 1 and "would still fail" in best_f1[0] and f"{numbers.setting(sweep['thresholds'][best])}" in best_f1[0]


def test_a_passing_report_offers_no_fix_and_class_weights_only_when_training_is_imbalanced(credit_naive):
    assert "Train with training.class_weights: balanced" in " ".join(page_one(credit_naive)["fixes"])
    balanced, _ = execute(load_config(SAMPLES / "credit_default_balanced.yaml"))
    assert balanced.passed and page_one(balanced)["fixes"] == []
    text = page1_text(balanced)
    assert "What would fix it" not in text and "best-F1" not in text


def test_the_accuracy_chart_draws_the_majority_class_baseline(credit_naive):
    """The accuracy paradox stays visible: the per-epoch accuracy is drawn against always answering "No"."""
    counts = credit_naive.data["splits"]["train"]["class_counts"]
    majority = max(counts.values()) / sum(counts.values())
    html = RENDERERS["html"].render(credit_naive, RenderOptions()).decode("utf-8")
    assert f"always the majority class ({majority:.3f})" in html


def test_multiclass_tiles_show_the_worst_class_recall():
    report = F.multiclass()
    per_class = report.metrics["test"]["per_class"]
    worst = min(per_class, key=lambda k: per_class[k]["recall"])
    tile = next(t for t in page_one(report)["tiles"] if t["key"] == "worst_class_recall")
    assert worst[:24] in tile["label"] and tile["value"] == f"{per_class[worst]['recall']:.3f}"


def test_an_evaluate_only_run_says_which_checks_judge_only_the_data_given():
    report = dataclasses.replace(F.passing_binary(), training=None)
    limits = page_one(report)["evaluate_only_limits"]
    assert limits and all(limit["id"] in {c.id for c in report.checks} for limit in limits)
    assert page_one(F.passing_binary())["evaluate_only_limits"] == []


def test_an_evaluate_only_run_records_the_models_identity_and_what_its_checks_cannot_see(cancer_path: Path, tmp_path: Path):
    import hashlib

    trained = cancer_path.parent / "trained.yaml"
    document = json.loads(json.dumps(__import__("yaml").safe_load(cancer_path.read_text(encoding="utf-8"))))
    document["training"]["save_checkpoint"] = True
    write_config(cancer_path.parent, document, "trained.yaml")
    code, _, _ = run_cli("run", str(trained), "--out", str(tmp_path / "trained"), "--quiet")
    assert code == 0
    first = json.loads((tmp_path / "trained" / "results.json").read_text(encoding="utf-8"))["model"]
    assert len(first["weights_sha256"]) == 64 and first["checkpoint_sha256"] is None
    assert first["module"] == "torch.nn.modules.container.Sequential" and "Linear(in_features=30" in first["architecture"]

    evaluate = dict(document)
    evaluate.pop("training")
    evaluate["model"] = {**document["model"], "checkpoint": str(tmp_path / "trained" / "model.pt")}
    report, _ = execute(load_config(write_config(cancer_path.parent, evaluate, "evaluate.yaml")))
    assert report.model["weights_sha256"] == first["weights_sha256"]  # the same weights, however they were saved
    assert report.model["checkpoint_sha256"] == hashlib.sha256((tmp_path / "trained" / "model.pt").read_bytes()).hexdigest()
    data_sha256 = hashlib.sha256((cancer_path.parent / "cancer.csv").read_bytes()).hexdigest()
    assert data_sha256 in report.data["fingerprint"]["files"].values()  # the data files' hashes, beside the model's
    limits = {row["id"] for row in page_one(report)["evaluate_only_limits"]}
    assert "train_test_overlap" in limits
    text = page1_text(report)
    assert "Evaluated only" in text and "cannot see data the model was trained on elsewhere" in text
    assert f"weights sha256 {first['weights_sha256'][:12]}" in text


def test_precision_is_drawn_undefined_where_nothing_is_predicted_positive(credit_naive):
    from reportgen.render import plots

    sweep = credit_naive.curves["test"]["threshold_sweep"]
    flagged = np.asarray(sweep["predicted_positive"], dtype=float)
    shown = plots.undefined_where_nothing_flagged(np.asarray(sweep["precision"], dtype=float), flagged)
    assert np.array_equal(np.isnan(shown), flagged == 0)
    assert np.allclose(shown[flagged > 0], np.asarray(sweep["precision"], dtype=float)[flagged > 0])
    assert [p is None for p in sweep["precision"]] == (flagged == 0).tolist()  # stored undefined too, not as 0
    assert plots.threshold_sweep(sweep, 0.5) is not None
    planted = plots.undefined_where_nothing_flagged(np.array([0.5, 0.0]), np.array([3.0, 0.0]))  # 0 of 0 flagged
    assert planted[0] == 0.5 and np.isnan(planted[1])


def test_delong_auc_interval_matches_its_definition_written_out(breast_cancer_frame):
    """Oracle: the O(m n) structural components of DeLong et al. (1988), and scikit-learn's AUC."""
    from sklearn.metrics import roc_auc_score

    from reportgen.intervals import delong_auc_interval

    y = (breast_cancer_frame["diagnosis"] == "malignant").to_numpy()
    scores = np.round(breast_cancer_frame["worst_radius"].to_numpy(), 0)  # rounded: many ties
    low, high = delong_auc_interval(y, scores)
    pos, neg = scores[y], scores[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    auc = roc_auc_score(y, scores)
    assert v10.mean() == pytest.approx(auc)
    half = 1.959964 * np.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    assert (low, high) == pytest.approx((auc - half, min(1.0, auc + half)))
    assert delong_auc_interval([True, False, False], [0.9, 0.1, 0.2]) is None


def test_the_auc_tile_carries_the_delong_interval(credit_naive):
    low, high = credit_naive.metrics["test"]["roc_auc_ci95"]
    tile = next(t for t in page_one(credit_naive)["tiles"] if t["key"] == "roc_auc")
    assert low < credit_naive.metrics["test"]["roc_auc"] < high and tile["ci"] == f"95% CI {low:.3f}–{high:.3f}"
