"""release_comparison: a model worse than the earlier run is caught; an equal one is not."""

from __future__ import annotations

import base64
import dataclasses
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from reportgen import numbers
from reportgen.checks.comparison_checks import RECORDS_DISAGREE, metric_drop
from reportgen.config import load_config
from reportgen.errors import InputError
from reportgen.pipeline import execute
from reportgen.render import fmt

from conftest import cancer_config, write_config


def check(report, check_id: str):
    """The result of one check."""
    return next(c for c in report.checks if c.id == check_id)


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory, breast_cancer_frame):
    """One trained run on breast cancer: its config path and results.json document."""
    folder = tmp_path_factory.mktemp("comparison")
    breast_cancer_frame.to_csv(folder / "cancer.csv", index=False)
    path = write_config(folder, cancer_config(folder / "cancer.csv"))
    report, _ = execute(load_config(path))
    return path, report.document()


def test_metric_drop_is_absolute_for_scores_and_relative_for_errors():
    assert metric_drop(0.90, 0.85, True) == pytest.approx(0.05)
    assert metric_drop(2.0, 2.2, False) == pytest.approx(0.1)
    assert metric_drop(0.85, 0.90, True) < 0


def test_an_identical_earlier_run_passes_and_no_earlier_run_skips(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    (tmp_path / "previous.json").write_text(json.dumps(previous), encoding="utf-8")
    report, _ = execute(load_config(path), compare_to=tmp_path / "previous.json")
    result = check(report, "release_comparison")
    assert result.status == "pass" and result.value == pytest.approx(0.0, abs=1e-12)
    assert result.evidence["same_test_data"] is True
    report, _ = execute(load_config(path))
    skipped = check(report, "release_comparison")
    assert skipped.status == "skip" and "(" not in skipped.message  # it is shown in parentheses on page 1
    assert skipped.message == "no earlier results given: name an earlier results.json or a folder of runs with --compare-to"


def _write(folder: Path, document: dict, name: str = "previous.json") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_better_earlier_release_without_per_sample_outcomes_fails_the_gate(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    better = copy.deepcopy(previous)
    better["metrics"]["test"]["recall"] = min(1.0, previous["metrics"]["test"]["recall"] + 0.05)
    del better["gate"]  # a results.json written before per-sample outcomes were recorded
    report, _ = execute(load_config(path), compare_to=_write(tmp_path, better))
    result = check(report, "release_comparison")
    expected_drop = better["metrics"]["test"]["recall"] - previous["metrics"]["test"]["recall"]
    assert result.status == "fail" and result.value == pytest.approx(expected_drop)
    assert "Recall dropped from" in result.message
    assert report.status == "fail"


def _bits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)


def _consistent_better_run(previous: dict, flips: int) -> dict:
    """The earlier run as if it had been right on ``flips`` more positive samples: its correctness bits and its
    count metrics (scikit-learn as the oracle) changed together, its stored scores left out (an older file)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

    better = copy.deepcopy(previous)
    outcomes, test = better["gate"]["test_outcomes"], better["metrics"]["test"]
    n = outcomes["n"]
    correct, positive = _bits(outcomes["correct"], n), _bits(outcomes["positive"], n)
    wrong_positives = np.flatnonzero(positive & ~correct)
    assert wrong_positives.size >= flips
    correct[wrong_positives[:flips]] = True
    y_true = positive.astype(int)
    y_pred = np.where(correct, y_true, 1 - y_true)
    outcomes["correct"] = base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")
    pos = test["classes"].index(test["positive_class"])
    names = [test["classes"][1 - pos], test["classes"][pos]]  # index 0 = negative, 1 = positive
    recalls = recall_score(y_true, y_pred, average=None)
    test.update(accuracy=accuracy_score(y_true, y_pred), recall=recall_score(y_true, y_pred),
                precision=precision_score(y_true, y_pred))
    matrix = confusion_matrix(y_true, y_pred).tolist()
    order = [0, 1] if pos == 1 else [1, 0]
    test["confusion_matrix"] = [[matrix[i][j] for j in order] for i in order]
    for k, name in enumerate(names):
        test["per_class"][name]["recall"] = float(recalls[k])
    del better["gate"]["test_scores"]
    return better


def test_a_drop_the_paired_test_calls_noise_only_warns(cancer_run, tmp_path: Path):
    """Same samples; the earlier run was right on two more positives, consistently recorded: too few to be a real difference."""
    path, previous = cancer_run
    better = _consistent_better_run(previous, 2)
    settings = ["checks.release_comparison.metrics=[recall]", "checks.release_comparison.max=0.005"]
    report, _ = execute(load_config(path, settings), compare_to=_write(tmp_path, better))
    result = check(report, "release_comparison")
    assert "records_disagreement" not in result.evidence
    assert result.status == "warn" and "likely noise" in result.message
    recall = next(r for r in result.evidence["metrics"] if r["metric"] == "recall")
    assert recall["drop"] > 0.005 and recall["p_value"] == 0.5 and "McNemar" in recall["test"]
    # page 1's cells: the drop past its max shows the p that calls it noise, and the requirement names it
    assert fmt.value_text(result) == f"{numbers.number_beside(recall['drop'], 0.005)}; p 0.500"
    assert fmt.threshold_text(result) == "≤ 0.005 (or p ≥ 0.05 for Recall)"


def test_a_recorded_metric_edited_away_from_its_records_is_judged_by_the_drop_alone(cancer_run, tmp_path: Path):
    """A recall 0.05 higher than the file's own correctness bits give: the paired test may not call it noise."""
    path, previous = cancer_run
    better = copy.deepcopy(previous)
    better["metrics"]["test"]["recall"] = min(1.0, previous["metrics"]["test"]["recall"] + 0.05)
    report, _ = execute(load_config(path), compare_to=_write(tmp_path, better))
    result = check(report, "release_comparison")
    assert result.status == "fail" and RECORDS_DISAGREE in result.message
    assert result.evidence["records_disagreement"].startswith(RECORDS_DISAGREE + ": recall is recorded as")
    recall = next(r for r in result.evidence["metrics"] if r["metric"] == "recall")
    assert recall["p_value"] is None and recall["significant"] and RECORDS_DISAGREE in recall["test"]


def test_every_headline_metric_is_compared_in_its_direction(cancer_run, tmp_path: Path):
    from reportgen import metric_registry

    path, previous = cancer_run
    report, _ = execute(load_config(path), compare_to=_write(tmp_path, previous))
    rows = check(report, "release_comparison").evidence["metrics"]
    assert [r["metric"] for r in rows] == list(metric_registry.headline("binary"))
    assert all(r["higher_is_better"] is metric_registry.metric(r["metric"]).higher_is_better for r in rows)


def test_another_task_fails_closed(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    other = {**copy.deepcopy(previous), "task": "multiclass"}
    other.pop("gate")
    report, _ = execute(load_config(path), compare_to=_write(tmp_path, other))
    result = check(report, "release_comparison")
    assert result.status == "fail" and result.severity == "error" and "multiclass task" in result.message
    assert report.status == "fail"


def test_other_test_data_fails_closed_unless_accepted(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    other = copy.deepcopy(previous)
    other["data"]["fingerprint"]["files"] = {"data": "0" * 64}
    previous_path = _write(tmp_path, other)
    report, _ = execute(load_config(path), compare_to=previous_path)
    result = check(report, "release_comparison")
    assert result.status == "fail" and "other test data" in result.message and "allow_different_data" in result.message
    accepted = load_config(path, ["checks.release_comparison.allow_different_data=true"])
    report, _ = execute(accepted, compare_to=previous_path)
    result = check(report, "release_comparison")
    assert result.status == "pass" and result.evidence["same_test_data"] is False
    assert result.evidence["paired_metrics"] == []  # no paired test on other data: the drop alone decides
    from reportgen.render import fmt
    assert fmt.threshold_text(result) == "≤ 0.02"
    overrides = report.gate["overrides"]
    assert {"check": "release_comparison", "setting": "allow_different_data", "default": False,
            "value": True, "effect": "relaxed"} in overrides


def test_a_folder_of_runs_compares_with_the_newest_passing_one(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    older = copy.deepcopy(previous)
    older["environment"]["created_at"] = "2020-01-01T00:00:00Z"
    failing_newer = copy.deepcopy(previous)
    failing_newer["environment"]["created_at"] = "2030-01-01T00:00:00Z"
    failing_newer["status"] = "fail"
    newest_passing = copy.deepcopy(previous)
    newest_passing["environment"]["created_at"] = "2029-01-01T00:00:00Z"
    for name, document in (("a", older), ("b", failing_newer), ("c", newest_passing)):
        _write(tmp_path / "runs" / name, document, "results.json")
    report, _ = execute(load_config(path), compare_to=tmp_path / "runs")
    assert check(report, "release_comparison").evidence["previous_source"] == "c/results.json"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no passing run"):
        execute(load_config(path), compare_to=tmp_path / "empty")


def test_a_folder_holding_two_jobs_compares_only_with_runs_of_this_job(cancer_run, tmp_path: Path):
    """A newer passing run of another job (another name, here another task too) is never the baseline."""
    path, previous = cancer_run
    runs = tmp_path / "runs"
    own = copy.deepcopy(previous)
    own["environment"]["created_at"] = "2020-01-01T00:00:00Z"
    _write(runs / "own", own, "results.json")
    other_job = copy.deepcopy(previous)
    other_job["name"], other_job["task"] = "auto-mpg", "regression"
    other_job["environment"]["created_at"] = "2099-01-01T00:00:00Z"
    _write(runs / "other", other_job, "results.json")
    report, _ = execute(load_config(path), compare_to=runs)
    result = check(report, "release_comparison")
    assert result.status == "pass"
    assert result.evidence["previous_source"] == "own/results.json"
    assert result.evidence["previous_name"] == previous["name"]
    (runs / "own" / "results.json").unlink()
    with pytest.raises(InputError, match=rf"no passing run of '{previous['name']}' .*\(1 run of other jobs ignored\)"):
        execute(load_config(path), compare_to=runs)


@pytest.mark.parametrize("b, c", [(0, 0), (3, 0), (10, 4), (40, 15), (200, 230)])
def test_exact_mcnemar_matches_scipys_binomial_test(b: int, c: int):
    from scipy.stats import binomtest

    from reportgen.checks.comparison_checks import mcnemar_exact

    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def credit_comparison(tmp_path_factory):
    """The balanced credit model compared with the naive release (both real sample runs)."""
    from conftest import SAMPLES

    naive, _ = execute(load_config(SAMPLES / "credit_default.yaml"))
    previous = _write(tmp_path_factory.mktemp("credit"), naive.document())
    report, _ = execute(load_config(SAMPLES / "credit_default_balanced.yaml"), compare_to=previous)
    return naive, report


def test_credit_balanced_model_fails_against_the_naive_release_on_precision(credit_comparison):
    """The real samples: the balanced model flags many more customers; its precision drop is no noise."""
    _, report = credit_comparison
    result = check(report, "release_comparison")
    assert result.status == "fail" and report.status == "fail"
    # the reason leads (the drop); the naive release's own failure (minority_recall) follows as a clause
    assert result.message.startswith("Precision dropped from"), result.message
    assert result.message.endswith("; the baseline also failed its own gate (minority_recall failed).")
    assert "failed its own gate" not in result.message.split(";")[0]
    assert result.evidence["previous_status"] == "fail" and result.evidence["previous_failing_checks"] == ["minority_recall"]
    precision = next(r for r in result.evidence["metrics"] if r["metric"] == "precision")
    assert precision["significant"] and precision["p_value"] is None  # McNemar tests accuracy, not precision
    assert result.evidence["previous_statuses"]["minority_recall"] == "fail"


def test_the_required_column_names_the_metrics_a_p_value_can_excuse(credit_comparison):
    """Precision and F1 have no paired test: the p-value condition names only the metrics that have one."""
    from reportgen.render import RENDERERS, RenderOptions
    from reportgen.render import fmt

    _, report = credit_comparison
    result = check(report, "release_comparison")
    assert result.evidence["paired_metrics"] == ["accuracy", "recall", "roc_auc", "pr_auc"]
    required = "≤ 0.02 (or p ≥ 0.05 for Accuracy, Recall, ROC AUC, PR AUC)"
    assert fmt.threshold_text(result) == required
    assert required in RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    older = copy.deepcopy(result.evidence)
    del older["paired_metrics"]  # a results.json of an earlier version reads as it did
    assert fmt.threshold_text(dataclasses.replace(result, evidence=older)) == "≤ 0.02 or p ≥ 0.05"


def test_page_one_and_summary_show_the_status_diff_and_tile_deltas_against_the_earlier_run(credit_comparison):
    import io

    from pypdf import PdfReader

    from reportgen.render import RENDERERS, RenderOptions

    naive, report = credit_comparison
    before = {c.id: c.status for c in naive.checks}
    now = {c.id: c.status for c in report.checks if c.id != "release_comparison"}
    bad = ("fail", "error")
    fixed = sorted(i for i, s in now.items() if s not in bad and before.get(i) in bad)
    assert "minority_recall" in fixed  # the balanced model meets the recall minimum the naive one missed
    pdf = RENDERERS["pdf"].render(report, RenderOptions())
    first = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    summary = RENDERERS["md"].render(report, RenderOptions()).decode("utf-8")
    for name in fixed:
        assert name in first and name.replace("_", "\\_") in summary
    assert "newly failing" in first and "still failing" in first and "fixed" in first
    # page 1 gives the comparison's reason before the baseline's own failure
    assert "Precision dropped from" in first
    if "baseline also failed" in first:
        assert first.index("Precision dropped from") < first.index("baseline also failed")
    assert "newly failing:" in summary and "still failing:" in summary
    old, new = naive.metrics["test"]["precision"], report.metrics["test"]["precision"]
    delta = f"{new - old:+.3f} vs previous".replace("-", "−")
    assert delta.replace(" ", "") in first.replace(" ", "") and f"({delta})" in summary


def test_a_bad_comparison_file_is_an_input_error(cancer_run, tmp_path: Path):
    path, _ = cancer_run
    (tmp_path / "x.json").write_text("{\"not\": \"results\"}", encoding="utf-8")
    with pytest.raises(InputError, match="x.json: not a reportgen results.json \\(no schema_version\\)"):
        execute(load_config(path), compare_to=tmp_path / "x.json")
    with pytest.raises(InputError, match="results file not found"):
        execute(load_config(path), compare_to=tmp_path / "absent.json")


# --- paired bootstrap of ROC AUC and PR AUC --------------------------------------------------------

@pytest.fixture(scope="module")
def cancer_scores():
    """Real scores of two models on the same breast cancer test rows, rounded to plant ties."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    strong = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train, y_train)
    weak = make_pipeline(StandardScaler(), LogisticRegression()).fit(x_train[:, [1, 8]], y_train)
    return (y_test == 1, np.round(strong.predict_proba(x_test)[:, 1], 2),
            np.round(weak.predict_proba(x_test[:, [1, 8]])[:, 1], 2))


def test_paired_bootstrap_replicates_equal_scikit_learn_on_the_same_rows(cancer_scores):
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    from reportgen.paired_bootstrap import bootstrap_indices, paired_bootstrap

    y, strong, weak = cancer_scores
    result = paired_bootstrap(y, strong, weak, replicates=60, seed=7)
    indices = np.concatenate(list(bootstrap_indices(y, 60, seed=7)))
    assert indices.shape == (60, y.size)
    for b in range(0, 60, 6):
        rows = indices[b]
        assert y[rows].sum() == y.sum()  # stratified: the class counts stay fixed
        assert result.roc_auc_before[b] == pytest.approx(roc_auc_score(y[rows], strong[rows]), abs=1e-12)
        assert result.roc_auc_now[b] == pytest.approx(roc_auc_score(y[rows], weak[rows]), abs=1e-12)
        assert result.pr_auc_before[b] == pytest.approx(average_precision_score(y[rows], strong[rows]), abs=1e-12)
        assert result.pr_auc_now[b] == pytest.approx(average_precision_score(y[rows], weak[rows]), abs=1e-12)
    again = paired_bootstrap(y, strong, weak, replicates=60, seed=7)
    assert np.array_equal(again.drop("pr_auc"), result.drop("pr_auc"))


def test_paired_bootstrap_finds_a_real_auc_drop_and_agrees_with_delong_in_direction(cancer_scores):
    from sklearn.metrics import roc_auc_score

    from reportgen.intervals import delong_auc_interval
    from reportgen.paired_bootstrap import paired_bootstrap

    y, strong, weak = cancer_scores
    result = paired_bootstrap(y, strong, weak, replicates=2000, seed=0)
    assert result.p_value("roc_auc") < 0.01 and result.p_value("pr_auc") < 0.01
    assert result.lower_bound("roc_auc", 0.05) > 0
    low_strong, _ = delong_auc_interval(y, strong)
    _, high_weak = delong_auc_interval(y, weak)
    assert low_strong > high_weak  # DeLong's intervals do not overlap: the same direction, the same verdict
    assert roc_auc_score(y, strong) - roc_auc_score(y, weak) == pytest.approx(
        float(result.drop("roc_auc").mean()), abs=0.02)
    same = paired_bootstrap(y, strong, strong, replicates=500, seed=0)
    assert same.p_value("roc_auc") == 1.0  # a model compared with itself never drops


def test_stored_rows_are_all_rows_up_to_the_cap_then_a_subset_fixed_by_the_labels_hash():
    import numpy as np

    from reportgen.paired_bootstrap import stored_rows

    assert np.array_equal(stored_rows(100, "ab" * 32, cap=100), np.arange(100))
    subset = stored_rows(1000, "ab" * 32, cap=100)
    assert subset.size == 100 and np.all(np.diff(subset) > 0) and subset[-1] < 1000
    assert np.array_equal(subset, stored_rows(1000, "ab" * 32, cap=100))
    assert not np.array_equal(subset, stored_rows(1000, "cd" * 32, cap=100))


def test_scores_are_stored_compactly_and_read_back_to_16_bits(cancer_run):
    import numpy as np

    from reportgen.gate import score_record, unpack_scores

    _, previous = cancer_run
    stored = previous["gate"]["test_scores"]
    assert stored["labels_sha256"] == previous["gate"]["test_outcomes"]["labels_sha256"]
    assert stored["rows"] == stored["n"] and len(stored["scores"]) <= 4 * (2 * stored["n"] + 2) // 3 + 4
    scores = np.random.default_rng(0).random(1000)
    record = score_record(np.arange(1000) % 2, scores, positive_index=1)
    assert np.max(np.abs(unpack_scores(record) - scores)) <= 0.5 / 65535 + 1e-12
    with pytest.raises(ValueError):
        unpack_scores({**record, "rows": 999})


def test_a_real_auc_drop_on_the_same_test_data_fails_by_the_paired_bootstrap(cancer_run, tmp_path: Path):
    """The earlier run is the trained MLP; this one is the same model trained one epoch at a tiny rate."""
    path, previous = cancer_run
    degraded = load_config(path, ["training.epochs=1", "training.lr=0.0003",
                                  "checks.release_comparison.metrics=[roc_auc,pr_auc]"])
    report, _ = execute(degraded, compare_to=_write(tmp_path, previous))
    result = check(report, "release_comparison")
    assert result.status == "fail" and report.status == "fail"
    for row in result.evidence["metrics"]:
        assert row["drop"] > 0.05 and row["significant"] and row["p_value"] < 0.01
        assert row["test"].startswith("paired stratified bootstrap") and row["drop_lower_bound"] > 0


def test_a_small_auc_difference_between_two_real_models_is_noise(cancer_run, tmp_path: Path):
    """A narrower hidden layer scores a few test rows differently: the AUC drop is above a tight max, but no real drop."""
    path, previous = cancer_run
    other = load_config(path, ["model.hidden=[8]", "checks.release_comparison.max=0.001",
                               "checks.release_comparison.metrics=[roc_auc,pr_auc]"])
    report, _ = execute(other, compare_to=_write(tmp_path, previous))
    result = check(report, "release_comparison")
    roc = next(r for r in result.evidence["metrics"] if r["metric"] == "roc_auc")
    assert 0.001 < roc["drop"] < 0.01
    assert result.status == "warn" and "likely noise" in result.message
    assert roc["p_value"] >= 0.05 and not roc["significant"] and roc["test"].startswith("paired stratified bootstrap")


def test_an_earlier_run_without_stored_scores_is_judged_by_the_drop_alone_and_says_so(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    older = copy.deepcopy(previous)
    del older["gate"]["test_scores"]  # a results.json of an earlier version
    degraded = load_config(path, ["training.epochs=1", "training.lr=0.0003",
                                  "checks.release_comparison.metrics=[roc_auc]"])
    report, _ = execute(degraded, compare_to=_write(tmp_path, older))
    row = check(report, "release_comparison").evidence["metrics"][0]
    assert row["p_value"] is None and row["significant"]
    assert row["test"] == "none (the earlier run stored no per-sample scores: drop only, as before)"


def test_a_multiclass_auc_drop_is_judged_by_the_drop_alone_and_says_why():
    """Scores are stored for binary tasks only: on wine, a recorded macro AUC 0.05 higher fails by its drop alone."""
    import dataclasses

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from check_helpers import context, predictions_from_probs, run, tabular_bundle, wine
    from reportgen.gate import correctness_record

    bundle, *_ = tabular_bundle(wine, "multiclass")
    weak = np.zeros(bundle.splits["train"].features.shape[1], dtype=np.float32)
    weak[0] = 1.0  # one feature (alcohol): a model with a macro AUC well below 1
    train = bundle.splits["train"]
    model = LogisticRegression(max_iter=500).fit(train.features * weak, train.labels)
    predictions = {name: predictions_from_probs(name, split.labels, model.predict_proba(split.features * weak))
                   for name, split in bundle.splits.items()}
    ctx = context(bundle, predictions)
    test = ctx.predictions["test"]
    auc = ctx.metrics["test"]["roc_auc"]
    assert auc < 0.9
    previous = {"name": "release", "task": "multiclass", "data": {"fingerprint": dict(bundle.fingerprint)},
                "metrics": {"test": {**ctx.metrics["test"], "roc_auc": auc + 0.05}},
                "gate": {"test_outcomes": correctness_record(test.y_true, test.y_pred, None)}, "checks": []}
    result = run("release_comparison", dataclasses.replace(ctx, previous=previous), {"metrics": ["roc_auc"]})
    row = result.evidence["metrics"][0]
    assert result.status == "fail" and row["drop"] == pytest.approx(0.05) and row["p_value"] is None
    assert row["test"] == "none (per-sample scores are stored for binary tasks only: drop only)"


def test_forged_per_sample_records_cannot_turn_a_real_drop_into_noise(cancer_run, tmp_path: Path):
    """The earlier file keeps its metrics but carries the degraded model's own records: the paired tests would see
    no difference at all (p = 1); the records disagree with the file's metrics, so the drop is judged alone."""
    path, previous = cancer_run
    degraded = load_config(path, ["training.epochs=1", "training.lr=0.0003"])
    honest, _ = execute(degraded, compare_to=_write(tmp_path, previous, "honest.json"))
    assert check(honest, "release_comparison").status == "fail"
    assert "records_disagreement" not in check(honest, "release_comparison").evidence
    forged = copy.deepcopy(previous)
    forged["gate"]["test_outcomes"]["correct"] = honest.gate["test_outcomes"]["correct"]
    forged["gate"]["test_scores"]["scores"] = honest.gate["test_scores"]["scores"]
    report, _ = execute(degraded, compare_to=_write(tmp_path, forged, "forged.json"))
    result = check(report, "release_comparison")
    assert result.status == "fail" and report.status == "fail" and RECORDS_DISAGREE in result.message
    assert all(row["p_value"] is None and RECORDS_DISAGREE in row["test"]
               for row in result.evidence["metrics"] if row["drop"] > 0.02)


def test_constant_stored_scores_are_refused_by_the_threshold_and_auc_checks(cancer_run, tmp_path: Path):
    path, previous = cancer_run
    degraded = load_config(path, ["training.epochs=1", "training.lr=0.0003",
                                  "checks.release_comparison.metrics=[roc_auc,pr_auc]"])
    forged = copy.deepcopy(previous)
    rows = forged["gate"]["test_scores"]["rows"]
    forged["gate"]["test_scores"]["scores"] = base64.b64encode(bytes(2 * rows)).decode("ascii")
    report, _ = execute(degraded, compare_to=_write(tmp_path, forged))
    result = check(report, "release_comparison")
    assert result.status == "fail" and "fall on the other side of the threshold" in result.evidence["records_disagreement"]
    del forged["gate"]["test_outcomes"]  # without correctness bits, the tie bound refuses the constant
    report, _ = execute(degraded, compare_to=_write(tmp_path, forged))
    result = check(report, "release_comparison")
    assert result.status == "fail" and "are tied" in result.evidence["records_disagreement"]


def test_a_folder_scan_skips_invalid_files_through_the_bounded_loader(cancer_run, tmp_path: Path):
    """A deeply nested file, an oversized one and a newer 'pass' file of another schema version are skipped and listed."""
    path, previous = cancer_run
    runs = tmp_path / "runs"
    _write(runs / "good", previous, "results.json")
    (runs / "deep").mkdir()
    (runs / "deep" / "results.json").write_text("[" * 200_000, encoding="utf-8")
    (runs / "huge").mkdir()
    with open(runs / "huge" / "results.json", "wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: refused by its size before any read
    newer = {**copy.deepcopy(previous), "schema_version": 2, "name": "newer"}
    newer["environment"]["created_at"] = "2099-01-01T00:00:00Z"
    _write(runs / "newer", newer, "results.json")
    report, _ = execute(load_config(path), compare_to=runs)
    result = check(report, "release_comparison")
    assert result.status == "pass" and result.evidence["previous_name"] == previous["name"]
    reasons = {Path(s["path"]).parent.name: s["reason"] for s in result.evidence["skipped_runs"]}
    assert reasons == {"deep": "nested more than 64 levels deep",
                       "huge": "larger than 64 MiB, the most a results.json may be",
                       "newer": "schema_version 2 is not 1, the one this reportgen reads"}
    (runs / "good" / "results.json").unlink()
    with pytest.raises(InputError, match=r"no passing run .*\(3 invalid results.json skipped, e\.g\. .*deep"):
        execute(load_config(path), compare_to=runs)


def test_a_compare_to_folder_holding_the_output_folder_never_compares_with_its_previous_report(cancer_run, tmp_path: Path):
    """--compare-to runs/ --out runs/new: the report being replaced in runs/new is not a candidate."""
    import io

    from reportgen.cli import main

    path, previous = cancer_run
    runs = tmp_path / "runs"
    _write(runs / "old", previous, "results.json")
    stale = copy.deepcopy(previous)
    stale["environment"]["created_at"] = "2099-01-01T00:00:00Z"
    _write(runs / "new", stale, "results.json")
    err = io.StringIO()
    code = main(["run", str(path), "--compare-to", str(runs), "--out", str(runs / "new"), "--quiet"],
                out=io.StringIO(), err=err)
    assert code == 0, err.getvalue()
    written = json.loads((runs / "new" / "results.json").read_text(encoding="utf-8"))
    result = next(c for c in written["checks"] if c["id"] == "release_comparison")
    assert result["evidence"]["previous_source"] == "old/results.json"
