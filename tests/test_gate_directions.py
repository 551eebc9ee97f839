"""Which way each check setting moves the gate: a declared direction ranks a change; --strict refuses only loosening."""

from __future__ import annotations

import io
import json
from pathlib import Path

from conftest import SAMPLES
from reportgen.checks.base import Param, registry
from reportgen.cli import main
from reportgen.gate import gate_overrides

# Every built-in parameter and the way it tightens its check (None: a change cannot be ranked).
DIRECTIONS = {
    ("stochasticity", "max_samples"): "more", ("batch_dependence", "max_samples"): "more",
    ("batch_dependence", "single_samples"): "more", ("robustness", "noise"): "more",
    ("robustness", "max_samples"): "more", ("feature_importance", "max_samples"): "more",
    ("feature_importance", "repeats"): None,
    ("release_comparison", "metrics"): None, ("release_comparison", "allow_different_data"): "less",
    ("release_comparison", "alpha"): "more", ("release_comparison", "bootstrap_replicates"): None,
    ("data_integrity", "min_class_support"): "more",
    ("feature_drift", "alpha"): "more", ("feature_drift", "min_effect"): "less", ("feature_drift", "max_features"): "more",
    ("prediction_drift", "alpha"): "more",
    ("overfit_gap", "metric"): None, ("calibration", "bins"): None, ("threshold_tradeoff", "target_recall"): "more",
    ("slice_performance", "metric"): None, ("slice_performance", "features"): None,
    ("slice_performance", "min_support"): "less", ("slice_performance", "alpha"): "more",
    ("slice_performance", "bins"): None, ("slice_performance", "max_categories"): "more",
    ("slice_performance", "pair_features"): "more", ("slice_performance", "max_pairs"): "more",
    ("group_fairness", "sensitive"): "more", ("group_fairness", "bins"): None, ("group_fairness", "max_groups"): "more",
    ("loss_curve", "patience"): "less", ("loss_curve", "unfinished_epochs"): None,
    ("loss_curve", "unfinished_min_drop"): "less", ("gradient_flow", "min_ratio"): "more",
}


def specs():
    return [c.spec for c in registry.all()]


def test_every_builtin_parameter_declares_its_direction():
    declared = {(c.spec.id, p.name): p.stricter for c in registry.all()
                if type(c).__module__.startswith("reportgen.checks.") for p in c.spec.params}
    assert declared == DIRECTIONS


def test_a_list_of_columns_to_check_tightens_when_it_grows():
    effects = {(o.check, o.setting): o.effect for o in gate_overrides(specs(), {
        "group_fairness": {"sensitive": ["student"]},
        "feature_drift": {"min_effect": 0.3, "alpha": 0.01},
        "loss_curve": {"patience": 1},
        "slice_performance": {"features": ["balance"], "bins": 8},
        "release_comparison": {"allow_different_data": True},
        "threshold_tradeoff": {"target_recall": 0.9},
    })}
    assert effects == {
        ("group_fairness", "sensitive"): "tightened",
        ("feature_drift", "alpha"): "relaxed", ("feature_drift", "min_effect"): "relaxed",
        ("loss_curve", "patience"): "tightened",
        ("slice_performance", "features"): "changed", ("slice_performance", "bins"): "changed",
        ("release_comparison", "allow_different_data"): "relaxed",
        ("threshold_tradeoff", "target_recall"): "tightened",
    }


def test_list_containment_ranks_and_a_swap_is_unranked():
    more = Param("columns", ["a"], "columns checked", kind=list, stricter="more")
    assert more.tightens(["a", "b"]) is True
    assert more.tightens([]) is False
    assert more.tightens(["b"]) is None
    assert Param("x", 3, "undeclared").tightens(5) is None
    assert Param("allow_x", False, "a permission", stricter="less").tightens(True) is False


def test_strict_gate_passes_the_readme_fairness_example_on_the_credit_sample(tmp_path: Path):
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(SAMPLES / "credit_default_balanced.yaml"), "--out", str(tmp_path / "r"), "--quiet",
                 "--strict", "--set", "checks.group_fairness.sensitive=[student]", "--set", "report.formats=[json]"],
                out=out, err=err)
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert code == 0, out.getvalue() + err.getvalue()
    assert "gate_strict" not in {c["id"] for c in results["checks"]}
    assert results["gate"]["overrides"] == [{"check": "group_fairness", "setting": "sensitive", "default": [],
                                             "value": ["student"], "effect": "tightened"}]
    fairness = next(c for c in results["checks"] if c["id"] == "group_fairness")
    assert fairness["status"] != "skip"
