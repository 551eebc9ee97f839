"""Run history: many results.json files of one scheduled job turned into one trend report.

``collect`` reads and validates results.json files (given, or found recursively in folders), groups the
runs by ``name`` and orders them by ``environment.created_at``; ``render`` turns one ``History`` into
history.html, history.pdf, history.md and history.json (the public contract, see ``History.to_dict``).
Nothing here imports torch or pandas: it runs wherever the results.json files are.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from reportgen import metric_registry
from reportgen.errors import InputError, ResultsError
from reportgen.metrics import wilson_interval
from reportgen.vocabulary import Status, Verdict

HISTORY_SCHEMA_VERSION = 1
FILENAMES = {"html": "history.html", "pdf": "history.pdf", "md": "history.md", "json": "history.json"}
FORMATS = tuple(FILENAMES)
RESULTS_NAME = "results.json"
DRIFT_CHECKS = ("feature_drift", "prediction_drift")
"""Checks whose values are drawn over time (share of drifted features; score KS D)."""
DRIFT_LABELS = {"feature_drift": "share of features drifted", "prediction_drift": "score shift (KS D)"}
DEFAULT_DRIFT_REFERENCE = "train"
"""What a drift check's statistic was measured against when its evidence does not say (every version so far
compared test with train unless data.reference or compare_to was given, and those are always recorded)."""
REFERENCE_LABELS = {"train": "test vs train", "data.reference": "test vs data.reference",
                    "previous run (test)": "test vs previous run"}
"""Legend text per reference, as drift_checks.py records it in the evidence (``reference``)."""
MAX_GRID_RUNS = 40
"""Runs (the newest) shown in the check-status grid and used to call a check flaky; history.json has all."""
MAX_CHART_RUNS = 400
"""Runs drawn per chart line (evenly thinned beyond this, first and last kept)."""
MAX_GRID_CHECKS = 60
"""Check rows of the status grid (problem checks first)."""
FLAKY_FLIPS = 2
"""A check whose status changed at least this many times within the grid's runs is called flaky."""
MAX_MARKDOWN_RUNS = 20


# --------------------------------------------------------------------------------------- reading


def find_results(paths: Sequence[str | Path]) -> list[Path]:
    """Files named by ``paths``, plus every results.json found recursively under the folders; sorted, unique.

    Raises InputError for a path that does not exist, or when nothing is found.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for hit in sorted(path.rglob(RESULTS_NAME)):
                if hit.is_file():
                    found[hit] = None
        elif path.is_file():
            found[path] = None
        else:
            raise InputError(f"history: no such file or folder: {path}")
    if not found:
        raise InputError(f"history: no {RESULTS_NAME} found under {', '.join(str(p) for p in paths)}")
    return sorted(found)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _proportion_interval(key: str, test: Mapping[str, Any], positive_class: Any) -> list[float] | None:
    """95% Wilson interval of a proportion metric, when its denominator follows from the confusion matrix."""
    spec = metric_registry.metric(key)
    matrix, classes = test.get("confusion_matrix"), test.get("classes")
    if spec is None or not spec.proportion or not isinstance(matrix, list) or not isinstance(classes, list):
        return None
    try:
        cm = [[int(v) for v in row] for row in matrix]
    except (TypeError, ValueError):
        return None
    if key == "accuracy":
        successes, n = sum(cm[i][i] for i in range(len(cm))), sum(map(sum, cm))
    elif positive_class in classes and len(classes) == 2:
        p = classes.index(positive_class)
        successes = cm[p][p]
        n = sum(cm[p]) if key == "recall" else sum(row[p] for row in cm)
    else:
        return None
    interval = wilson_interval(successes, n) if 0 <= successes <= n else None
    return [interval[0], interval[1]] if interval else None


def _canonical_sha256(value: Any) -> str | None:
    if not value:
        return None
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _data_fingerprint(fingerprint: Any) -> str | None:
    """sha256 naming the data: of the source files' sha256s when recorded, else of the whole fingerprint.

    The files alone, not the preprocessing fitted on train: a new seed splits the same data differently.
    """
    if isinstance(fingerprint, Mapping) and fingerprint.get("files"):
        return _canonical_sha256(fingerprint["files"])
    return _canonical_sha256(fingerprint)


def drift_measures(check: Mapping[str, Any]) -> dict[str, float]:
    """A drift check's statistic per reference it was measured against: ``{reference: value}``.

    prediction_drift: the KS D of each entry of ``evidence.comparisons`` (``train``, and ``previous run (test)``
    when the run was made with compare_to). feature_drift: its value (share of features drifted) under
    ``evidence.reference`` (``train`` or ``data.reference``). Evidence without a reference (older or foreign
    results.json) counts as DEFAULT_DRIFT_REFERENCE. Empty when the check measured nothing (skipped, crashed).
    """
    evidence = check.get("evidence")
    evidence = evidence if isinstance(evidence, Mapping) else {}
    if check.get("id") == "prediction_drift" and isinstance(evidence.get("comparisons"), list):
        measured: dict[str, float] = {}
        for row in evidence["comparisons"]:
            if isinstance(row, Mapping) and _number(row.get("statistic")) is not None:
                measured[str(row.get("reference") or DEFAULT_DRIFT_REFERENCE)] = float(row["statistic"])
        if measured:
            return measured
    value = _number(check.get("value"))
    if value is None or check.get("status") in (Status.SKIP.value, Status.ERROR.value):
        return {}
    return {str(evidence.get("reference") or DEFAULT_DRIFT_REFERENCE): value}


def gate_overrides(config_checks: Any) -> dict[str, dict[str, Any]]:
    """The check settings of a run's config that differ from the check's defaults, by check id.

    Unknown check ids (plug-ins not installed here) are reported with every setting they give.
    """
    from reportgen.checks.base import registry

    if not isinstance(config_checks, Mapping):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for check_id, settings in config_checks.items():
        if not isinstance(settings, Mapping):
            continue
        check = registry.get(str(check_id))
        if check is None:
            changed = dict(settings)
        else:
            spec = check.spec
            defaults: dict[str, Any] = {"enabled": True, "severity": spec.default_severity}
            if spec.threshold_key:
                defaults[spec.threshold_key] = spec.default_threshold
                if spec.threshold_alias:
                    defaults[spec.threshold_alias] = spec.default_threshold
            defaults.update({p.name: p.default for p in spec.params})
            changed = {k: v for k, v in settings.items() if k not in defaults or defaults[k] != v}
        if changed:
            out[str(check_id)] = changed
    return out


@dataclass(frozen=True)
class RunEntry:
    """One run as the history sees it (everything JSON-safe)."""

    source: str
    name: str
    task: str
    created_at: str
    status: str
    seed: Any
    config_sha256: str | None
    data_fingerprint: str | None
    """sha256 of the canonical JSON of the data's source-file hashes (see ``_data_fingerprint``)."""
    metrics: Mapping[str, float | None]
    intervals: Mapping[str, list[float] | None]
    checks: Mapping[str, str]
    drift: Mapping[str, float | None]
    overrides: Mapping[str, Mapping[str, Any]]
    drift_by_reference: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per drift check, its statistic per reference it was measured against (see ``drift_measures``)."""

    def reference(self, check_id: str) -> str | None:
        """What ``check_id``'s status was decided against (``train``, ``train + previous run (test)``, ...);
        None for a check that is no drift check or measured nothing: its statuses are always comparable."""
        measured = self.drift_by_reference.get(check_id)
        return " + ".join(measured) if measured else None

    @property
    def sort_key(self) -> tuple[float, str, str]:
        from reportgen.timestamps import parse_created_at

        try:  # the instant, whatever the offset; a time without one (local to an unknown zone) sorts last
            moment = parse_created_at(self.created_at).timestamp()
        except ValueError:
            moment = math.inf
        return (moment, self.created_at, self.source)

    def disabled(self) -> set[str]:
        """Check ids this run's config switched off."""
        return {k for k, v in self.overrides.items() if v.get("enabled") is False}

    def to_dict(self) -> dict[str, Any]:
        """This run's entry in history.json."""
        return {
            "created_at": self.created_at, "status": self.status, "seed": self.seed,
            "config_sha256": self.config_sha256, "data_fingerprint": self.data_fingerprint,
            "metrics": dict(self.metrics), "checks": dict(self.checks),
            "intervals": dict(self.intervals), "drift": dict(self.drift),
            "overrides": {k: dict(v) for k, v in self.overrides.items()}, "source": self.source,
            "drift_by_reference": {k: dict(v) for k, v in self.drift_by_reference.items()},
        }


def read_run(path: Path) -> RunEntry:
    """Read and validate one results.json with the one bounded loader; raise ResultsError naming the file."""
    from reportgen.report import load_results

    document = load_results(path).document()
    environment = document.get("environment") or {}
    task = str(document.get("task"))
    test = (document.get("metrics") or {}).get("test") or {}
    positive = (document.get("data") or {}).get("positive_class")
    headline = metric_registry.headline(task)
    checks = [c for c in document.get("checks") or [] if isinstance(c, Mapping)]
    by_id = {str(c.get("id")): c for c in checks}
    return RunEntry(
        source=str(path),
        name=str(document.get("name")),
        task=task,
        created_at=str(environment.get("created_at") or ""),
        status=str(document.get("status")),
        seed=environment.get("seed"),
        config_sha256=environment.get("config_sha256"),
        data_fingerprint=_data_fingerprint((document.get("data") or {}).get("fingerprint")),
        metrics={k: _number(test.get(k)) for k in headline},
        intervals={k: _proportion_interval(k, test, positive) for k in headline},
        checks={cid: str(c.get("status")) for cid, c in by_id.items()},
        drift={cid: _number(by_id[cid].get("value")) for cid in DRIFT_CHECKS if cid in by_id},
        overrides=gate_overrides((document.get("config") or {}).get("checks")),
        drift_by_reference={cid: measured for cid in DRIFT_CHECKS if cid in by_id
                            for measured in [drift_measures(by_id[cid])] if measured},
    )


# --------------------------------------------------------------------------------------- the history


@dataclass(frozen=True)
class CheckTrend:
    """One check across the runs: newest status, status flips, flakiness, last pass."""

    id: str
    newest: str | None
    flips: int
    flaky: bool
    newly_failing: bool
    last_pass: str | None
    """created_at of the newest run where it passed."""
    flips_not_counted: int = 0
    """Status changes between runs whose drift was measured against different references (not counted as flips)."""


@dataclass(frozen=True)
class DriftSeries:
    """One line of the drift chart: one check's statistic measured against one reference, per run."""

    check: str
    reference: str
    points: tuple[tuple[int, float], ...]
    """(run index, oldest = 0; value), only runs measured against this reference."""

    @property
    def label(self) -> str:
        return f"{DRIFT_LABELS.get(self.check, self.check)}, {REFERENCE_LABELS.get(self.reference, 'test vs ' + self.reference)}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "reference": self.reference, "label": self.label,
                "points": [[i, v] for i, v in self.points]}


@dataclass(frozen=True)
class History:
    """The runs of one job (one ``name``), oldest first."""

    name: str
    task: str
    runs: tuple[RunEntry, ...]

    @property
    def newest(self) -> RunEntry:
        return self.runs[-1]

    @property
    def verdict(self) -> str:
        """The newest run's gate verdict: this history's exit code."""
        return self.newest.status

    def last_pass(self) -> RunEntry | None:
        """The newest run whose gate passed."""
        return next((r for r in reversed(self.runs) if r.status == Verdict.PASS), None)

    def check_ids(self) -> list[str]:
        """Every check id seen, in the order first seen (newest run's order first)."""
        ids: dict[str, None] = {}
        for run in (self.newest, *reversed(self.runs)):
            ids.update(dict.fromkeys(run.checks))
        return list(ids)

    def drift_series(self) -> list[DriftSeries]:
        """The drift chart's lines: one per (drift check, reference), so that statistics measured against
        different references (test vs train, test vs the previous run) are never joined on one line."""
        points: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for index, run in enumerate(self.runs):
            for cid in DRIFT_CHECKS:
                for reference, value in (run.drift_by_reference.get(cid) or {}).items():
                    points.setdefault((cid, reference), []).append((index, value))
        order = {cid: i for i, cid in enumerate(DRIFT_CHECKS)}
        return [DriftSeries(cid, reference, tuple(found))
                for (cid, reference), found in sorted(points.items(), key=lambda kv: (order[kv[0][0]], kv[1][0][0]))]

    def check_trends(self) -> list[CheckTrend]:
        """Per check: flips within the newest MAX_GRID_RUNS runs; newly failing when it failed now, not before.

        A status change between two runs (consecutive among those where the check passed, warned, failed or
        crashed) counts as a flip unless both measured, against different references (``RunEntry.reference``):
        a drift check compared with the previous run in one run and with train alone in the next measured two
        different things. Such changes are counted in ``flips_not_counted``.
        """
        window = self.runs[-MAX_GRID_RUNS:]
        problems = (Status.FAIL.value, Status.ERROR.value)
        trends = []
        for cid in self.check_ids():
            seen = [(r.checks[cid], r.reference(cid)) for r in window if r.checks.get(cid) not in (None, Status.SKIP.value)]
            changes = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if a[0] != b[0]]
            flips = sum(1 for a, b in changes if a[1] == b[1] or None in (a[1], b[1]))  # None: measured nothing (crashed)
            history = [r.checks[cid] for r in self.runs if cid in r.checks and r.checks[cid] != Status.SKIP.value]
            newest = self.newest.checks.get(cid)
            newly = newest in problems and len(history) >= 2 and history[-2] not in problems
            last_pass = next((r.created_at for r in reversed(self.runs) if r.checks.get(cid) == Status.PASS.value), None)
            trends.append(CheckTrend(cid, newest, flips, flips >= FLAKY_FLIPS, newly, last_pass, len(changes) - flips))
        return trends

    def to_dict(self) -> dict[str, Any]:
        """history.json: ``{"schema_version": 1, "name", "runs": [...] oldest first, ...}`` (a public contract)."""
        last = self.last_pass()
        return {
            "schema_version": HISTORY_SCHEMA_VERSION,
            "name": self.name,
            "task": self.task,
            "verdict": self.verdict,
            "last_pass": None if last is None else {"created_at": last.created_at, "source": last.source},
            "headline_metrics": list(metric_registry.headline(self.task)),
            "checks": {t.id: {"newest": t.newest, "flips": t.flips, "flaky": t.flaky, "newly_failing": t.newly_failing,
                              "last_pass": t.last_pass, "flips_not_counted": t.flips_not_counted}
                       for t in self.check_trends()},
            "runs": [r.to_dict() for r in self.runs],
            "drift_series": [s.to_dict() for s in self.drift_series()],
        }


@dataclass(frozen=True)
class Collected:
    """Histories by name (sorted by name) and the files skipped as invalid (path and reason)."""

    histories: tuple[History, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        """fail when the newest run of any history failed its gate."""
        return Verdict.FAIL.value if any(h.verdict != Verdict.PASS for h in self.histories) else Verdict.PASS.value


def collect(paths: Sequence[str | Path], *, skip_invalid: bool = False) -> Collected:
    """Read every results.json under ``paths`` into histories grouped by name, runs ordered by created_at.

    An invalid file raises ResultsError (exit 2) naming it, unless ``skip_invalid``: then it is left out
    and listed in ``Collected.skipped``. Raises InputError when no valid run remains.
    """
    runs: list[RunEntry] = []
    skipped: list[tuple[str, str]] = []
    for path in find_results(paths):
        try:
            runs.append(read_run(path))
        except ResultsError as exc:
            if not skip_invalid:
                raise
            skipped.append((str(path), str(exc)))
    if not runs:
        raise InputError("history: no valid results.json among the files given")
    groups: dict[str, list[RunEntry]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    histories = tuple(
        History(name, sorted(group, key=lambda r: r.sort_key)[-1].task, tuple(sorted(group, key=lambda r: r.sort_key)))
        for name, group in sorted(groups.items())
    )
    return Collected(histories, tuple(skipped))


# --------------------------------------------------------------------------------------- rendering


def _fmt(value: Any) -> str:
    from reportgen.render import fmt

    return fmt.num(value)


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count:,} runs"


def _short_time(created_at: str) -> str:
    return created_at.replace("T", " ")[:16] if created_at else "—"


def _metric_chart(history: History) -> str | None:
    """Headline test metrics per run, one panel per metric, 95% Wilson band where computable."""
    import numpy as np

    from reportgen.render import plots

    keys = [k for k in metric_registry.headline(history.task)
            if any(r.metrics.get(k) is not None for r in history.runs)]
    if not keys:
        return None
    index = np.arange(len(history.runs), dtype=float)
    ncols = 1 if len(keys) == 1 else 2 if len(keys) <= 4 else 3
    nrows = math.ceil(len(keys) / ncols)
    with plots.figure(7.0, 1.6 * nrows + 0.35, ncols=ncols, nrows=nrows) as (fig, axes):
        flat = list(np.atleast_1d(axes).flat)
        for i, key in enumerate(keys):
            ax = flat[i]
            values = np.array([np.nan if r.metrics.get(key) is None else r.metrics[key] for r in history.runs])
            bounds = [r.intervals.get(key) or [np.nan, np.nan] for r in history.runs]
            lows, highs = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
            x, v, lo, hi = plots.thin(index, values, lows, highs, limit=MAX_CHART_RUNS)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=plots.OKABE_ITO[0], alpha=0.18, linewidth=0, label="95% interval")
            ax.plot(x, v, markevery=max(1, len(x) // 12), **plots.style(0))
            failed = np.array([r.status != Verdict.PASS for r in history.runs])
            (failed_x,) = plots.thin(failed, limit=MAX_CHART_RUNS)
            ax.plot(x[failed_x], v[failed_x], linestyle="none", marker="x", color=plots.OKABE_ITO[1],
                    label="gate failed")
            ax.set_title(plots.text(metric_registry.label(key)))
            _run_axis(ax, len(history.runs), 5)
        for ax in flat[len(keys):]:
            ax.set_visible(False)
        handles, labels = flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7.5)
        return plots.to_svg(fig, "history-metrics")


def _run_axis(ax: Any, runs: int, ticks: int) -> None:
    """An x axis of run numbers #1..#N: whole runs only, and one tick (not five '#1') for a single run."""
    import matplotlib.ticker

    ax.set_xlim(-0.5, max(runs - 1, 0) + 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=min(ticks, max(runs, 1))))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _pos: f"#{int(round(v)) + 1}" if abs(v - round(v)) < 1e-9 and 0 <= round(v) < runs else ""))


def _drift_chart(history: History) -> str | None:
    """The drift checks' statistics per run, one line per check and reference (``History.drift_series``)."""
    import numpy as np

    from reportgen.render import plots

    series = history.drift_series()
    if not series:
        return None
    with plots.figure(7.0, 2.1) as (fig, ax):
        for i, line in enumerate(series):
            x, v = plots.thin(np.array([p[0] for p in line.points], dtype=float),
                              np.array([p[1] for p in line.points], dtype=float), limit=MAX_CHART_RUNS)
            ax.plot(x, v, label=line.label, markevery=max(1, len(x) // 12), **plots.style(i))
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("Drift over time")
        _run_axis(ax, len(history.runs), 8)
        return plots.to_svg(fig, "history-drift")


def _interval_text(bounds: Sequence[float] | None) -> str:
    return f"[{_fmt(bounds[0])}, {_fmt(bounds[1])}]" if bounds else ""


def _override_text(overrides: Mapping[str, Mapping[str, Any]]) -> str:
    if not overrides:
        return "defaults"
    return "; ".join(f"{cid}: " + ", ".join(f"{k} {v}" for k, v in settings.items()) for cid, settings in overrides.items())


def _not_counted_text(trends: Sequence[CheckTrend]) -> str:
    """Which checks changed status only across a change of drift reference (not counted toward flakiness)."""
    return ", ".join(f"{t.id} ({t.flips_not_counted})" for t in trends if t.flips_not_counted)


def view(history: History) -> dict[str, Any]:
    """Everything the history template prints, as plain rows and labels."""
    from markupsafe import Markup

    keys = list(metric_registry.headline(history.task))
    trends = history.check_trends()
    rank = {s.value: s.review_rank for s in Status}
    ordered = sorted(trends, key=lambda t: (not t.newly_failing, not t.flaky, rank.get(t.newest or "skip", 9)))
    window = history.runs[-MAX_GRID_RUNS:]
    grid_rows = []
    for trend in ordered[:MAX_GRID_CHECKS]:
        cells = []
        for run in window:
            status = run.checks.get(trend.id)
            if status is None:
                status = "off" if trend.id in run.disabled() else "none"
            cells.append(status)
        grid_rows.append({"id": trend.id, "cells": cells, "flaky": trend.flaky, "newly_failing": trend.newly_failing,
                          "last_pass": _short_time(trend.last_pass) if trend.last_pass else "never"})
    runs_newest_first = list(reversed(history.runs))
    last = history.last_pass()
    metric_chart, drift_chart = _metric_chart(history), _drift_chart(history)
    return {
        "name": history.name,
        "task": history.task,
        "verdict": history.verdict,
        "n_runs": len(history.runs),
        "runs_text": _runs(len(history.runs)),
        "first": _short_time(history.runs[0].created_at),
        "newest": _short_time(history.newest.created_at),
        "last_pass": None if last is None else {"when": _short_time(last.created_at), "source": last.source},
        "newly_failing": [t.id for t in trends if t.newly_failing],
        "flaky": [t.id for t in trends if t.flaky],
        "not_counted": _not_counted_text(trends),
        "metric_labels": [metric_registry.label(k) for k in keys],
        "metric_chart": Markup(metric_chart) if metric_chart else None,
        "drift_chart": Markup(drift_chart) if drift_chart else None,
        "grid_runs": [{"number": len(history.runs) - len(window) + i + 1, "when": _short_time(r.created_at),
                       "status": r.status} for i, r in enumerate(window)],
        "grid_rows": grid_rows,
        "grid_cut": len(history.runs) - len(window),
        "checks_cut": max(0, len(trends) - MAX_GRID_CHECKS),
        "runs": [
            {"number": len(history.runs) - i, "created_at": _short_time(r.created_at), "status": r.status, "seed": r.seed,
             "config": (r.config_sha256 or "—")[:8], "data": (r.data_fingerprint or "—")[:8],
             "metrics": [{"value": _fmt(r.metrics.get(k)), "ci": _interval_text(r.intervals.get(k))} for k in keys],
             "overrides": _override_text(r.overrides)}
            for i, r in enumerate(runs_newest_first[:MAX_GRID_RUNS])
        ],
        "runs_cut": max(0, len(history.runs) - MAX_GRID_RUNS),
    }


def render_html(history: History) -> bytes:
    """history.html: one self-contained page (inline CSS and SVG, nothing fetched)."""
    from reportgen.render.html import environment
    from reportgen.render.sandbox import TEMPLATE_TIME_BUDGET_S

    env = environment()
    env.time_budget_s = TEMPLATE_TIME_BUDGET_S  # the page holds every run's names and messages: bounded like a custom template
    return env.render(env.get_template("history.html.j2"), h=view(history)).encode("utf-8")


def render_pdf(history: History) -> bytes:
    """history.pdf: the HTML laid out by WeasyPrint (A4), the trend on page 1, no external resource."""
    from reportgen.render.pdf import html_to_pdf

    return html_to_pdf(render_html(history))


def render_markdown(history: History) -> bytes:
    """history.md: verdict, newly failing and flaky checks, and the newest runs' headline metrics."""
    keys = list(metric_registry.headline(history.task))
    last = history.last_pass()
    trends = history.check_trends()
    lines = [f"# {history.name}: run history", "",
             f"**Newest run: {history.verdict.upper()}** ({_short_time(history.newest.created_at)}); "
             f"{_runs(len(history.runs))} since {_short_time(history.runs[0].created_at)}; last passing run: "
             f"{_short_time(last.created_at) if last else 'none'}.", ""]
    newly = [t.id for t in trends if t.newly_failing]
    flaky = [t.id for t in trends if t.flaky]
    if newly:
        lines.append("Newly failing checks: " + ", ".join(f"`{c}`" for c in newly) + ".")
    if flaky:
        lines.append(f"Flaky checks (status changed at least {FLAKY_FLIPS} times in the last {MAX_GRID_RUNS} runs): "
                     + ", ".join(f"`{c}`" for c in flaky) + ".")
    not_counted = _not_counted_text(trends)
    if not_counted:
        lines.append(f"Status changes not counted toward flakiness, because the drift was measured against a different "
                     f"reference (e.g. test vs the previous run instead of test vs train): {not_counted}.")
    if newly or flaky or not_counted:
        lines.append("")
    header = ["run", "gate"] + [metric_registry.label(k) for k in keys] + ["problems", "overrides"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in list(reversed(history.runs))[:MAX_MARKDOWN_RUNS]:
        problems = [cid for cid, s in run.checks.items() if s in (Status.FAIL.value, Status.ERROR.value)]
        cells = [_short_time(run.created_at), run.status.upper()] + [_fmt(run.metrics.get(k)) for k in keys]
        cells += [", ".join(problems) or "—", _override_text(run.overrides)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if len(history.runs) > MAX_MARKDOWN_RUNS:
        lines += ["", f"{len(history.runs) - MAX_MARKDOWN_RUNS} older runs in history.json."]
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_json(history: History) -> bytes:
    """history.json (see History.to_dict)."""
    return (json.dumps(history.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


RENDER = {"html": render_html, "pdf": render_pdf, "md": render_markdown, "json": render_json}


def render(history: History, formats: Iterable[str]) -> dict[str, bytes]:
    """Render ``formats`` of one history in memory: {filename: content}."""
    unknown = [f for f in formats if f not in RENDER]
    if unknown:
        raise InputError(f"history: unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return {FILENAMES[f]: RENDER[f](history) for f in dict.fromkeys(formats)}


def _folder_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip(".-") or "history"


def write(collected: Collected, out_dir: Path, formats: Sequence[str]) -> list[Path]:
    """Write every history atomically: into ``out_dir`` for one job, into ``out_dir/<name>/`` for several."""
    from reportgen.output import check_out_dir, write_reports

    allowed = frozenset(FILENAMES.values())
    single = len(collected.histories) == 1
    targets = {h.name: out_dir if single else out_dir / _folder_name(h.name) for h in collected.histories}
    for target in targets.values():  # every folder checked before anything is rendered or written
        check_out_dir(target, allowed=allowed)
    rendered = {h.name: render(h, formats) for h in collected.histories}  # all in memory before anything lands
    written: list[Path] = []
    for history in collected.histories:
        written += write_reports(None, targets[history.name], [], extra_files=rendered[history.name],  # type: ignore[arg-type]
                                 allowed=allowed)
    return written
