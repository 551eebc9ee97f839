"""Checks that compare this run with an earlier one (e.g. the last release's results.json).

The comparison fails closed: an earlier run of another task, or one scored on other test data,
fails the check (unless the config accepts different data explicitly), because a gate that
silently skips its comparison is a gate that passes anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reportgen import metric_registry
from reportgen.numbers import number, p_clause, setting
from reportgen.checks.base import (NOT_APPLICABLE, PAIRED_METRICS_KEY, SIGNIFICANCE_LEVEL_KEY, VALUE_P_KEY, Check, CheckSettings,
                                   CheckSpec, Finding, Param, meets_threshold, register)
from reportgen.checks.context import CheckContext
from reportgen.errors import InputError
from reportgen.paired_bootstrap import (
    DEFAULT_REPLICATES, SCORE_LEVELS, PairedBootstrap, paired_bootstrap, quantise_scores, stored_rows,
)
from reportgen.record_consistency import records_disagreement

SKIPPED_RUNS_KEY = "compare_to_skipped"
"""Key under which reportgen.pipeline.load_previous_results lists the invalid results.json files a compare_to folder
held ([{path, reason}]); not part of results.json, shown in this check's evidence."""
RECORDS_DISAGREE = "stored per-sample records disagree with the recorded metrics"
"""Why no paired test is used when the earlier run's records fail reportgen.record_consistency."""
RANKING_METRICS = frozenset({"roc_auc", "pr_auc"})
"""Metrics of the scores' ranking: paired by a bootstrap of the same rows (binary), not by McNemar."""


def has_paired_test(metric: str, binary: bool) -> bool:
    """Whether a drop of ``metric`` can be judged by a paired test: McNemar for accuracy and (binary) recall,
    the paired bootstrap for binary ROC AUC and PR AUC (``_paired_p_value``, ``_ranking_bootstrap``)."""
    return metric == "accuracy" or (binary and (metric == "recall" or metric in RANKING_METRICS))



def metric_drop(previous: float, current: float, higher_is_better: bool) -> float:
    """How much worse ``current`` is than ``previous``: absolute for scores, relative for errors."""
    if higher_is_better:
        return previous - current
    return (current - previous) / previous if previous > 0 else current - previous


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under H0 (both models equally often right) the discordant pairs split Binomial(b + c, 1/2);
    p = min(1, 2 P[X <= min(b, c)]) (McNemar 1947; the exact form as in statsmodels'
    ``mcnemar(exact=True)``). Summed in log space: linear in b + c, safe for millions of rows.
    """
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top + math.log(sum(math.exp(t - top) for t in log_terms)))
    return min(1.0, 2.0 * tail)


def newest_passing_run(folder: Path, exclude: Path | None = None, *, name: str | None = None) -> Path:
    """The results.json of the newest passing run of job ``name`` in ``folder`` (see ``scan_runs``); raises InputError when there is none."""
    return scan_runs(folder, exclude, name=name).chosen


@dataclass(frozen=True)
class RunScan:
    """What ``scan_runs`` found in a compare_to folder: the chosen results.json and the files it skipped, with why."""

    chosen: Path
    skipped: tuple[tuple[str, str], ...]
    """(path, reason) of each candidate that is not a valid results.json (reportgen.report.load_results), in path order."""


def scan_runs(folder: Path, exclude: Path | None = None, *, name: str | None = None) -> RunScan:
    """The newest passing run of job ``name`` in ``folder``: its own results.json or one in a direct subfolder.

    Only runs whose results.json ``name`` equals ``name`` (the config's ``name:``) are candidates, so a folder
    holding several jobs' runs (as ``reportgen history`` reads it) gives this job's own baseline; ``None``
    accepts a run of any name.

    Every candidate goes through the one bounded loader (reportgen.report.load_results: size, depth,
    schema and status checked); an invalid one is skipped and listed, so one damaged or forged file
    can neither crash the run nor be chosen. Newest by the instant of ``environment.created_at``
    (reportgen.timestamps.parse_created_at: offsets and formats compare by time, not text); a passing run
    whose created_at does not parse, or has no UTC offset, is skipped and listed too. Equal instants: the
    last path wins.
    ``exclude`` (the run's own output folder) is not scanned, so a run never compares with the report
    it is about to replace. Raises InputError when no valid passing run remains, naming how many were skipped.
    """
    from reportgen.errors import ResultsError
    from reportgen.report import load_results
    from reportgen.timestamps import parse_created_at

    skip_folder = exclude.resolve() if exclude is not None else None
    candidates = [folder / "results.json", *sorted(folder.glob("*/results.json"))]
    passing: list[tuple[datetime, str, Path]] = []
    skipped: list[tuple[str, str]] = []
    other_jobs = 0
    for path in candidates:
        if skip_folder is not None and path.parent.resolve() == skip_folder:
            continue
        if not path.exists() and not path.is_symlink():
            continue
        try:
            report = load_results(path)
        except ResultsError as exc:
            skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        if name is not None and report.name != name:
            other_jobs += 1
            continue
        if report.status == "pass":
            try:
                created = parse_created_at(report.environment.get("created_at"))
            except ValueError as exc:
                skipped.append((str(path), f"{exc}: it cannot be ordered by time"))
                continue
            passing.append((created, str(path), path))
    if not passing:
        notes = [f"{len(skipped)} invalid results.json skipped, e.g. {skipped[0][0]}: {skipped[0][1]}"] if skipped else []
        if other_jobs:
            notes.append(f"{other_jobs} {'run' if other_jobs == 1 else 'runs'} of other jobs ignored")
        job = f" of {name!r}" if name is not None else ""
        note = f" ({'; '.join(notes)})" if notes else ""
        raise InputError(f"compare_to: no passing run{job} (results.json with status pass) in {folder}{note}")
    return RunScan(max(passing)[2], tuple(skipped))


MAX_FAILING_NAMED = 3
"""Failing checks of a baseline named in the message; the evidence lists up to MAX_FAILING_LISTED."""
MAX_FAILING_LISTED = 50


def failed_checks(previous: Mapping[str, Any] | None) -> list[str]:
    """Ids of the earlier run's checks that blocked its gate (status fail or error), in its order, at most MAX_FAILING_LISTED."""
    found = [str(c.get("id")) for c in (previous or {}).get("checks") or []
             if isinstance(c, Mapping) and c.get("status") in ("fail", "error")]
    return found[:MAX_FAILING_LISTED]


def baseline_failure(previous: Mapping[str, Any] | None) -> str | None:
    """'minority_recall failed', when the earlier run's own gate failed (results.json ``status`` 'fail'), else None."""
    if previous is None or previous.get("status") != "fail":
        return None
    failing = failed_checks(previous)
    if not failing:
        return "status fail"
    named = ", ".join(failing[:MAX_FAILING_NAMED]) + (f" and {len(failing) - MAX_FAILING_NAMED} more" if len(failing) > MAX_FAILING_NAMED else "")
    return f"{named} failed"


def _paired_p_value(metric: str, outcomes: Mapping[str, Any], ctx: CheckContext) -> tuple[float | None, str]:
    """(p-value, test name) of exact McNemar between the earlier run's and this run's per-sample correctness.

    Only for the metrics that test judges: accuracy (all rows) and, for binary tasks, recall (the positive rows).
    Any other metric gets (None, why): no paired test, so the drop alone decides (fails closed).
    """
    from reportgen.gate import unpack_bits

    pred = ctx.predictions["test"]
    positive_recall = metric == "recall" and ctx.positive_index is not None
    if metric != "accuracy" and not positive_recall:
        # McNemar on correctness tests accuracy (on the positive rows: the positive class's recall). Precision, F1,
        # balanced accuracy and macro averages can drop while accuracy holds, so its p-value says nothing of them.
        return None, f"none (McNemar on per-sample correctness tests accuracy, not {metric}: drop only)"
    n = int(outcomes.get("n", -1))
    if n != pred.n or not isinstance(outcomes.get("correct"), str):
        return None, "none (no per-sample outcomes of the earlier run: drop only)"
    before = unpack_bits(outcomes["correct"], n)
    now = np.asarray(pred.y_true) == np.asarray(pred.y_pred)
    rows = np.ones(n, dtype=bool)
    name = "exact McNemar on per-sample correctness"
    if positive_recall:
        rows = np.asarray(pred.y_true) == ctx.positive_index
        name = "exact McNemar on the positive samples (recall)"
    b = int(np.sum(before[rows] & ~now[rows]))
    c = int(np.sum(~before[rows] & now[rows]))
    return mcnemar_exact(b, c), name


def _ranking_bootstrap(scores: Any, ctx: CheckContext, replicates: int) -> PairedBootstrap | str:
    """The paired bootstrap of the earlier run's stored scores and this run's on the same rows, or why there is none.

    Both runs' scores are quantised alike (16 bits) and resampled on the stored rows
    (reportgen.paired_bootstrap.stored_rows), with a generator seeded by the run's seed (the same run gives the same p-value).
    """
    from reportgen.gate import labels_sha256, unpack_scores

    pred = ctx.predictions["test"]
    positive = ctx.positive_index
    if positive is None or pred.probs is None:
        return "none (per-sample scores are stored for binary tasks only: drop only)"
    if not isinstance(scores, Mapping):
        return "none (the earlier run stored no per-sample scores: drop only, as before)"
    truth = np.asarray(pred.y_true, dtype=np.int64)
    try:
        before = unpack_scores(scores)
        same_rows = (int(scores["n"]) == truth.size and int(scores["positive_index"]) == positive
                     and scores.get("labels_sha256") == labels_sha256(truth))
    except (KeyError, TypeError, ValueError) as exc:
        return f"none (the earlier run's stored scores cannot be read: {exc}; drop only)"
    rows = stored_rows(truth.size, str(scores["labels_sha256"]))
    if not same_rows or rows.size != before.size:
        return "none (the earlier run's stored scores are for other rows: drop only)"
    now = quantise_scores(np.asarray(pred.probs)[rows, positive]) / SCORE_LEVELS
    result = paired_bootstrap(truth[rows] == positive, before, now, replicates=replicates, seed=ctx.seed)
    return result if result is not None else "none (fewer than two samples of a class: drop only)"


def _same_test_data(previous: Mapping[str, Any], ctx: CheckContext) -> tuple[bool, str]:
    """Whether the earlier run scored the same test samples, and if not, why not."""
    from reportgen.gate import correctness_record

    before = (previous.get("data") or {}).get("fingerprint")
    if before != dict(ctx.data.fingerprint):
        return False, "its data fingerprint (files, target, preprocessing) differs from this run's"
    outcomes = (previous.get("gate") or {}).get("test_outcomes")
    if isinstance(outcomes, Mapping) and "labels_sha256" in outcomes:
        pred = ctx.predictions["test"]
        now = correctness_record(pred.y_true, pred.y_pred, ctx.positive_index)
        if outcomes["labels_sha256"] != now["labels_sha256"]:
            return False, "its test labels, in row order, differ from this run's (another split or order)"
    return True, ""


@register
class ReleaseComparison(Check):
    """Compare the test metrics with an earlier run's results.json."""

    spec = CheckSpec(
        id="release_comparison",
        measures="largest headline-metric drop against --compare-to",
        title="Comparison with the previous release",
        family="performance",
        detects="A model that scores worse on test than the run it is compared with (e.g. the last release), "
        "and a comparison that cannot be trusted: another task, or other test data.",
        how_to_read="Each headline test metric is compared with the earlier run given by --compare-to, in its own "
        "direction. The value is the largest drop: in points for scores such as precision (0.02 = two points), "
        "relative for errors such as RMSE (0.02 = 2% larger). On the same test data a drop only fails when a paired "
        "test on the same samples says it is not noise (p below alpha): exact McNemar on per-sample correctness, and "
        "for ROC AUC and PR AUC a paired bootstrap that resamples the same rows for both runs. Comparing with another task, or with a run on other test data, fails unless "
        "allow_different_data is set.",
        default_severity="error",
        threshold_key="max",
        default_threshold=0.02,
        params=(
            Param("metrics", None, "test metrics to compare (default: the task's headline metrics)", kind=list, nullable=True,
                  choices=tuple(m.key for m in metric_registry.METRICS if m.higher_is_better is not None)),
            Param("allow_different_data", False, "accept an earlier run on other test data (compare the numbers anyway)",
                  stricter="less"),
            Param("alpha", 0.05, "significance level of the paired test", minimum=1e-6, maximum=0.5, stricter="more"),
            Param("bootstrap_replicates", DEFAULT_REPLICATES, "replicates of the paired bootstrap for ROC AUC and PR AUC",
                  kind=int, minimum=200, maximum=20000),
        ),
    )

    def run(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        """Find the largest drop of a headline metric against the previous run; flag a baseline that failed its gate.

        Not being worse than a run that failed its own gate proves little, so a comparison that
        would pass becomes a warning (concern) whose message leads with the baseline's failure;
        a failing comparison stays a failure whose message leads with the drop and ends with the
        baseline's failure as a secondary clause (docs/gate.md).
        """
        finding = self._compare(ctx, settings)
        failed = baseline_failure(ctx.previous)
        if finding.outcome == "skip" or failed is None:
            return finding
        evidence = {**finding.evidence, "previous_failing_checks": failed_checks(ctx.previous)}
        if finding.outcome == "ok":  # the baseline's failure is the reason for the warning: it leads
            return Finding("concern", finding.value, f"The baseline failed its own gate ({failed}): {finding.message}", evidence)
        # A failing comparison fails on its own drop: that reason leads, the baseline's failure follows.
        reason = finding.message.rstrip().rstrip(".")
        return Finding(finding.outcome, finding.value,
                       f"{reason}; the baseline also failed its own gate ({failed}).", evidence)

    def _compare(self, ctx: CheckContext, settings: CheckSettings) -> Finding:
        previous = ctx.previous
        if previous is None:
            return Finding.skip("no earlier results given: name an earlier results.json or a folder of runs with "
                                "--compare-to", NOT_APPLICABLE)
        previous_env = previous.get("environment") or {}
        evidence: dict[str, Any] = {
            "previous_name": previous.get("name"),
            "previous_created_at": previous_env.get("created_at"),
            "previous_version": previous_env.get("reportgen_version"),
            "previous_status": previous.get("status"),
            **({"previous_source": ctx.previous_source} if ctx.previous_source else {}),
            "previous_statuses": {str(c.get("id")): c.get("status") for c in previous.get("checks") or []
                                  if isinstance(c, Mapping)},
        }
        if previous.get(SKIPPED_RUNS_KEY):
            evidence["skipped_runs"] = list(previous[SKIPPED_RUNS_KEY])
        if previous.get("task") != ctx.task:
            return Finding("violation", None, f"The earlier run is a {previous.get('task')} task and this one is "
                           f"{ctx.task}: the comparison cannot judge this model. Compare with a run of the same task.",
                           evidence)
        positive_before = ((previous.get("metrics") or {}).get("test") or {}).get("positive_class")
        positive_now = ctx.classes[ctx.positive_index] if ctx.positive_index is not None else None
        if positive_before is not None and positive_now is not None and positive_before != positive_now:
            return Finding("violation", None, f"The earlier run's positive class is {positive_before!r} and this run's is "
                           f"{positive_now!r}: its precision, recall, F1 and PR AUC are of another class, so the comparison "
                           "cannot judge this model. Compare with a run with the same positive class.", evidence)
        same, why = _same_test_data(previous, ctx)
        evidence["same_test_data"] = same
        allow = bool(settings.params.get("allow_different_data"))
        if not same and not allow:
            return Finding("violation", None, f"The earlier run was scored on other test data: {why}. Its metrics "
                           "cannot be compared with these; compare with a run on the same data, or set "
                           "checks.release_comparison.allow_different_data: true to accept the comparison.", evidence)
        before = (previous.get("metrics") or {}).get("test") or {}
        now = ctx.metrics["test"]
        names = settings.params.get("metrics") or list(metric_registry.headline(ctx.task))
        outcomes = (previous.get("gate") or {}).get("test_outcomes") if same else None
        scores = (previous.get("gate") or {}).get("test_scores") if same else None
        bootstrap: PairedBootstrap | str | None = None  # computed once, for the first ranking metric that needs it
        replicates = int(settings.params.get("bootstrap_replicates", DEFAULT_REPLICATES))
        alpha = float(settings.params.get("alpha", 0.05))
        limit = settings.threshold if settings.threshold is not None else float(self.spec.default_threshold or 0.0)
        records_problem = records_disagreement(previous, ctx.predictions["test"].y_true, ctx.positive_index) if same else None
        if records_problem:
            evidence["records_disagreement"] = f"{RECORDS_DISAGREE}: {records_problem}"
        rows: list[dict[str, Any]] = []
        past_limit: list[dict[str, Any]] = []  # the rows whose drop is past max
        not_compared: list[str] = []  # metrics one of the runs leaves undefined or does not record
        for name in names:
            spec = metric_registry.metric(name)
            if spec is None or spec.higher_is_better is None:
                continue
            old, new = before.get(name), now.get(name)
            if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
                not_compared.append(name)
                continue
            drop = metric_drop(float(old), float(new), spec.higher_is_better)
            past = not meets_threshold(drop, limit, higher_is_better=False)  # a drop of exactly max is within it
            row: dict[str, Any] = {"metric": name, "previous": old, "current": new,
                                   "higher_is_better": spec.higher_is_better, "drop": drop, "p_value": None,
                                   "test": "none (other test data)" if not same else "none (not needed)"}
            if past and records_problem:
                row["test"] = f"none ({RECORDS_DISAGREE}: drop only)"
            elif past and same and name in RANKING_METRICS and 1.0 / (replicates + 1) >= alpha:
                # The bootstrap's smallest p-value is 1 / (replicates + 1): at or above alpha it calls every drop noise.
                row["test"] = (f"none (a paired bootstrap of {replicates} replicates cannot give p below alpha "
                               f"{setting(alpha)}: drop only)")
            elif past and same and name in RANKING_METRICS:
                if bootstrap is None:
                    bootstrap = _ranking_bootstrap(scores, ctx, replicates)
                if isinstance(bootstrap, PairedBootstrap):
                    row["p_value"] = bootstrap.p_value(name)
                    row["drop_lower_bound"] = bootstrap.lower_bound(name, alpha)
                    row["test"] = f"paired stratified bootstrap of the same test rows ({replicates} replicates)"
                else:
                    row["test"] = bootstrap
            elif past and isinstance(outcomes, Mapping):
                row["p_value"], row["test"] = _paired_p_value(name, outcomes, ctx)
            if past:
                past_limit.append(row)
            row["significant"] = past and (row["p_value"] is None or row["p_value"] < alpha)
            rows.append(row)
        evidence["metrics"] = rows
        if not_compared:
            evidence["not_compared"] = not_compared
        evidence[SIGNIFICANCE_LEVEL_KEY] = alpha  # a drop past the limit fails only when significant (or untestable)
        binary = ctx.positive_index is not None
        evidence[PAIRED_METRICS_KEY] = [r["metric"] for r in rows if same and not records_problem and has_paired_test(r["metric"], binary)]
        if not rows:
            return Finding("violation", None, "The earlier results share no headline test metric with this run, so "
                           "nothing could be compared.", evidence)
        worst = max(rows, key=lambda row: row["drop"])
        summary = ", ".join(f"{metric_registry.label(r['metric'])} {number(r['previous'])} → {number(r['current'])}" for r in rows)
        caveat = "" if same else " (on other test data, accepted by allow_different_data)"
        caveat += f" ({RECORDS_DISAGREE}, so no paired test: judged by the drop alone)" if records_problem else ""
        if not_compared:
            caveat += (f" (not compared: {', '.join(metric_registry.label(m) for m in not_compared)}, undefined or not "
                       "recorded in one of the runs)")
        failing = [r for r in rows if r["significant"]]
        if failing:
            worst = max(failing, key=lambda row: row["drop"])
        if worst["p_value"] is not None:  # the paired test of the drop the value shows
            evidence[VALUE_P_KEY] = {"label": "p", "p_value": worst["p_value"]}
        if failing:
            return Finding(
                "violation", worst["drop"],
                f"{metric_registry.label(worst['metric'])} dropped from {number(worst['previous'])} to {number(worst['current'])} "
                f"against the earlier run (limit {setting(limit)}"
                + (f", paired test {p_clause(worst['p_value'])}" if worst["p_value"] is not None else "")
                + f"){caveat}; {summary}.", evidence)
        noisy = past_limit
        if noisy:
            return Finding(
                "concern", worst["drop"],
                f"{', '.join(metric_registry.label(r['metric']) for r in noisy)} dropped by more than "
                f"{setting(limit)}, but the paired test on the same samples finds no significant difference "
                f"(p ≥ {setting(alpha)}): likely noise{caveat}; {summary}.", evidence)
        return Finding("ok", worst["drop"], f"No headline test metric dropped by more than {setting(limit)} "
                       f"against the earlier run{caveat} ({summary}).", evidence)
