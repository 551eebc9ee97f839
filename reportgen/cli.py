"""Command line: the only place that prints and chooses exit codes (0 pass, 1 gate failed, 2 bad input, 3 runtime error)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from reportgen import __version__
from reportgen.errors import InputError, ReportgenError, ResultsError

if TYPE_CHECKING:
    from reportgen.report import Report

EXIT_PASS = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME_ERROR = 3
EXIT_INTERRUPTED = 130
FORMATS = ("html", "pdf", "json", "junit", "md")


class ConsoleProgress:
    """Progress on stderr: one updating line on a terminal, plain log lines otherwise."""

    def __init__(self, stream: TextIO, interactive: bool) -> None:
        self.stream = stream
        self.interactive = interactive
        self.started = time.perf_counter()
        self._last_batch_update = 0.0
        self._open_line = False
        self._epoch_open = False

    def _line(self, text: str, transient: bool = False) -> None:
        stamp = f"[{time.perf_counter() - self.started:6.1f}s]"
        if self.interactive:
            self.stream.write(f"\r\033[K{stamp} {text}")
            if not transient:
                self.stream.write("\n")
            self._open_line = transient
        else:
            self.stream.write(f"reportgen {stamp} {text}\n")
        self.stream.flush()

    def stage(self, name: str) -> None:
        """Show a stage; on a terminal the last epoch's line stays visible above it."""
        if self.interactive and self._epoch_open:
            self.stream.write("\n")
            self._open_line = self._epoch_open = False
        self._line(name)

    def epoch(self, record: dict[str, float | None], total: int) -> None:
        """Show one epoch's losses."""
        parts = [f"epoch {int(record['epoch'] or 0)}/{total}"]
        for key in ("train_loss", "val_loss", "val_balanced_accuracy", "val_rmse"):
            value = record.get(key)
            if value is not None:
                parts.append(f"{key}={value:.4f}")
        self._line("  ".join(parts), transient=self.interactive)
        self._epoch_open = self.interactive

    def batches(self, split: str, done: int, total: int) -> None:
        """Show evaluation progress on a terminal, at most a few times a second."""
        if not self.interactive:
            return
        now = time.perf_counter()
        if done < total and now - self._last_batch_update < 0.2:
            return
        self._last_batch_update = now
        self._line(f"evaluating {split}: {done:,}/{total:,}", transient=True)


def _parse_formats(text: str | None) -> list[str] | None:
    """Parse --format html,pdf,...; unknown names are an input error."""
    if text is None:
        return None
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    for name in chosen:
        if name not in FORMATS:
            from reportgen.config import suggest

            raise InputError(f"--format: unknown format {name!r}{suggest(name, list(FORMATS))}; choose from {', '.join(FORMATS)}")
    if not chosen:
        raise InputError("--format: name at least one format")
    return chosen


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen run CONFIG."""
    from reportgen.config import load_config
    from reportgen.pipeline import run

    formats = _parse_formats(args.format)
    loaded = load_config(args.config, [*args.set, *(["gate.strict=true"] if args.strict else [])])
    progress = None if args.quiet else ConsoleProgress(err, interactive=err.isatty())
    outcome = run(
        loaded, out_dir=Path(args.out) if args.out else None, formats=formats, progress=progress,
        compare_to=Path(args.compare_to) if args.compare_to else None,
    )
    return _write_outcome(outcome.report, outcome.out_dir, outcome.written, out)


def _write_outcome(report: "Report", out_dir: Path, written: Sequence[Path], out: TextIO) -> int:
    """Print the verdict, the blocking checks and the files written; return the gate's exit code."""
    verdict = "PASS" if report.passed else "FAIL"
    out.write(f"{verdict}: {report.name}: {report.status_summary()}\n")
    for check in report.blocking_checks():
        out.write(f"  {check.status.upper()} {check.id}: {check.message}\n")
    training = report.training or {}
    if training.get("stopped_early"):
        best = training.get("best_epoch")
        val = next((row.get("val_loss") for row in training.get("history") or [] if row.get("epoch") == best), None)
        out.write(f"  early stopping: stopped after epoch {training.get('epochs_run')}; the weights of the best epoch {best}"
                  + (f" (validation loss {val:.4f})" if isinstance(val, (int, float)) else "") + " were restored and evaluated\n")
    from reportgen.gate import overrides_of

    overrides = overrides_of(report.gate)
    if overrides:
        strict = " (strict gate)" if (report.gate or {}).get("strict") else ""
        out.write(f"  gate overrides{strict}: {'; '.join(o.describe() for o in overrides)}\n")
    out.write(f"report: {out_dir}{'/' if not str(out_dir).endswith('/') else ''}"
              f" ({', '.join(p.name for p in written)})\n")
    return EXIT_PASS if report.passed else EXIT_GATE_FAILED


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen validate CONFIG: check the config, data and model without training."""
    from reportgen.config import load_config
    from reportgen.pipeline import prepare

    loaded = load_config(args.config, args.set)
    prepared = prepare(loaded)
    data, info = prepared.data, prepared.model_info
    sizes = ", ".join(f"{split.n:,} {name}" for name, split in data.splits.items())
    classes = f", {data.num_classes} classes" if data.num_classes else ""
    out.write(
        f"OK: {loaded.config.name}: {loaded.config.task}; {sizes} samples; input {list(data.input_shape)}{classes}; "
        f"model {info.class_name} with {info.parameters:,} parameters, {info.outputs} output{'' if info.outputs == 1 else 's'} ({info.output_kind})\n"
    )
    return EXIT_PASS


def _threshold_text(spec: object) -> str:
    """'≥ 0.5' / '≤ 0' / '-' for a check spec."""
    key = getattr(spec, "threshold_key", None)
    value = getattr(spec, "default_threshold", None)
    if key is None or value is None:
        return "-"
    return f"{key} {value:g}"


def _cmd_checks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen checks: list every check with its default threshold and severity."""
    from reportgen.checks import registry

    checks = registry.all()
    if args.json:
        rows = [
            {
                "id": c.spec.id, "title": c.spec.title, "family": c.spec.family, "detects": c.spec.detects,
                "severity": c.spec.default_severity, "threshold_key": c.spec.threshold_key,
                "default_threshold": c.spec.default_threshold, "higher_is_better": c.spec.higher_is_better,
                "tasks": sorted(c.spec.tasks), "needs_training": c.spec.needs_training,
                "params": {p.name: p.default for p in c.spec.params},
            }
            for c in checks
        ]
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_PASS
    width = max(len(c.spec.id) for c in checks)
    out.write(f"{'id':<{width}}  {'family':<11}  {'severity':<8}  {'threshold':<12}  detects\n")
    for c in checks:
        spec = c.spec
        out.write(f"{spec.id:<{width}}  {spec.family:<11}  {spec.default_severity:<8}  {_threshold_text(spec):<12}  {spec.detects}\n")
    out.write("\nOverride any of them in the YAML: checks: {<id>: {min|max: <value>, severity: error|warning|info, enabled: false}}\n")
    return EXIT_PASS


def _cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen render results.json: re-render the report files from a results.json."""
    from reportgen.output import check_out_dir, write_reports
    from reportgen.report import Report

    path = Path(args.results)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    try:
        report = Report.from_dict(document)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    formats = _parse_formats(args.format) or [f for f in FORMATS if f != "json"]
    check_out_dir(Path(args.out))
    if args.template_dir:
        from reportgen.render.html import check_templates

        check_templates(Path(args.template_dir))
    written = write_reports(report, Path(args.out), formats, template_dir=Path(args.template_dir) if args.template_dir else None)
    return _write_outcome(report, Path(args.out), written, out)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the reportgen command."""
    parser = argparse.ArgumentParser(
        prog="reportgen",
        description="Model diagnostics reports for PyTorch. Exit codes: 0 gate passed, 1 gate failed, 2 bad config or input, 3 runtime error.",
    )
    parser.add_argument("--version", action="version", version=f"reportgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="train or evaluate, run the checks, write the report")
    run.add_argument("config", help="the YAML config")
    run.add_argument("--out", help="output folder (default: reports/<name>)")
    run.add_argument("--format", help=f"comma-separated formats (default: the config's, all of {','.join(FORMATS)})")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value by dotted path, value parsed as YAML (repeatable)")
    run.add_argument("--compare-to", metavar="RESULTS_JSON",
                     help="an earlier run's results.json (e.g. the last release) for the release_comparison check")
    run.add_argument("--strict", action="store_true",
                     help="fail the gate (exit 1) when the config relaxes a default check (same as gate: {strict: true})")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run.set_defaults(handler=_cmd_run)

    validate = commands.add_parser("validate", help="check the config, data and model without training")
    validate.add_argument("config", help="the YAML config")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config value by dotted path, value parsed as YAML (repeatable)")
    validate.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    validate.set_defaults(handler=_cmd_validate)

    checks = commands.add_parser("checks", help="list every check, its default threshold and severity")
    checks.add_argument("--json", action="store_true", help="machine-readable list")
    checks.set_defaults(handler=_cmd_checks)

    render = commands.add_parser("render", help="re-render report files from a results.json",
                                 description="Re-render report files from a results.json (no data, model or "
                                             "torch needed). Exits 0 or 1 with the gate verdict recorded there.")
    render.add_argument("results", help="a results.json written by reportgen run")
    render.add_argument("--out", required=True, help="output folder")
    render.add_argument("--format", help=f"comma-separated formats (default: all but json, of {','.join(FORMATS)})")
    render.add_argument("--template-dir", help="a folder of templates overriding the built-in ones by name")
    render.set_defaults(handler=_cmd_render)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI and return its exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    # Before torch loads OpenMP: worker threads that sleep instead of spinning keep a busy or shared
    # CI runner from slowing small models down by an order of magnitude (bench/README.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help/--version
        return int(exc.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(out)
        return EXIT_BAD_INPUT
    try:
        return args.handler(args, out, err)
    except KeyboardInterrupt:
        err.write("\nreportgen: interrupted; no report was written\n")
        return EXIT_INTERRUPTED
    except ReportgenError as exc:
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"reportgen: error: {exc}\n")
        return exc.exit_code
    except Exception as exc:  # anything unexpected is a runtime error, reported in one line
        if args.debug:
            traceback.print_exc(file=err)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.write(f"reportgen: runtime error: {exc.__class__.__name__}: {first} (rerun with --debug for the traceback)\n")
        return EXIT_RUNTIME_ERROR
