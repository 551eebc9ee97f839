"""Command line: the only place that prints and chooses exit codes (0 pass, 1 gate failed, 2 bad input, 3 runtime error)."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import sysconfig
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, Sequence, TextIO, cast

from reportgen import __version__, metric_registry
from reportgen.errors import InputError, PeerFailed, ReportgenError
from reportgen.numbers import number
from reportgen.render import FORMATS
from reportgen.render.fmt import console_line
from reportgen.vocabulary import TASKS, ExitCode, Verdict

if TYPE_CHECKING:
    from reportgen.report import Report


_EPOCH_KEYS = ("train_loss", "val_loss") + tuple(f"val_{key}" for key in dict.fromkeys(
    key for task in TASKS for key in metric_registry.per_epoch(task)))
"""The values of a history record that the progress line shows."""


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
        for key in _EPOCH_KEYS:
            value = record.get(key)
            if value is not None:
                parts.append(f"{key}={number(value)}")
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


def _flags(args: argparse.Namespace) -> dict[str, object]:
    """Command-line flags as config keys; they override the YAML and --set (docs/configuration.md)."""
    compare_to = getattr(args, "compare_to", None)
    return {
        "report.formats": _parse_formats(getattr(args, "format", None)),
        "compare_to": str(Path(compare_to).resolve()) if compare_to else None,
        "gate.strict": True if getattr(args, "strict", False) else None,
    }


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen run CONFIG."""
    import contextlib

    from reportgen.config import load_config
    from reportgen.interrupts import pause_for_tests
    from reportgen.output import OutputFolder

    if args.exit_code_file:
        from reportgen.launch import clear_exit_code

        clear_exit_code(Path(args.exit_code_file))
    folder: OutputFolder | None = None
    out_dir: Path | None = Path(args.out) if args.out else None  # known before the config is, when given
    try:
        with contextlib.ExitStack() as pdf_worker:
            loaded = load_config(args.config, args.set, _flags(args))
            # not in a worker of rank > 0 (RANK, as torchrun and --nproc-per-node set it): only rank 0 renders
            if ("pdf" in loaded.config.report.formats and args.nproc_per_node in (None, 1)
                    and os.environ.get("RANK", "0") == "0"):
                from reportgen.render.pdf_engine import started_early

                # WeasyPrint's and matplotlib's start-up run in the worker beside torch's import and the training;
                # the worker is killed when this block exits, however it exits
                pdf_worker.enter_context(started_early())
            from reportgen.distributed import environment_world_size, join_world  # these import torch
            from reportgen.pipeline import default_out_dir, input_paths, run

            out_dir = out_dir or default_out_dir(loaded.config.name)
            if args.nproc_per_node is not None and environment_world_size() == 1:
                from reportgen.launch import check_launchable, launch_local

                check_launchable(loaded, args.nproc_per_node, out_dir)
                if args.nproc_per_node > 1:
                    return launch_local(args.worker_argv, args.nproc_per_node, err, out_dir=out_dir)
            with join_world(loaded.config.device) as world:
                progress = None if args.quiet or not world.is_main else ConsoleProgress(err, interactive=err.isatty())
                if not world.is_main:  # rank 0 claims the folder, prints the verdict and writes the report
                    pdf_worker.close()
                    run(loaded, progress=progress, world=world)
                    return ExitCode.PASSED
                pause_for_tests("claim")  # the output folder is not claimed yet: a signal here leaves it as it was
                folder = OutputFolder(out_dir, inputs=input_paths(loaded))
                with folder:  # claimed before loading: an unusable output folder is exit 2 before any training
                    outcome = run(loaded, folder=folder, progress=progress, world=world)
        assert outcome is not None
        return _write_outcome(outcome.report, outcome.out_dir, outcome.written, out)
    except KeyboardInterrupt as exc:  # say what the output folder holds now
        if folder is None:  # stopped before the folder was claimed: it holds what it held
            from reportgen.output import interrupted_before_claim

            raise interrupted_before_claim(getattr(exc, "signum", signal.SIGINT), out_dir) from exc
        raise folder.interrupted(exc) from exc


def _write_outcome(report: "Report", out_dir: Path, written: Sequence[Path], out: TextIO) -> int:
    """Print the verdict, the blocking checks and the files written; return the gate's exit code."""
    verdict = Verdict(report.status).value.upper()
    out.write(console_line(f"{verdict}: {report.name}: {report.status_summary()}") + "\n")
    for check in report.blocking_checks():
        out.write(console_line(f"  {check.status.upper()} {check.id}: {check.message}") + "\n")
    training = report.training or {}
    if training.get("stopped_early"):
        best = training.get("best_epoch")
        val = next((row.get("val_loss") for row in training.get("history") or [] if row.get("epoch") == best), None)
        out.write(f"  early stopping: stopped after epoch {training.get('epochs_run')}; the weights of the best epoch {best}"
                  + (f" (validation loss {number(val)})" if isinstance(val, (int, float)) else "") + " were restored and evaluated\n")
    from reportgen.gate import not_measured_blocking, overrides_of

    overrides = overrides_of(report.gate)
    if overrides:
        strict = " (strict gate)" if (report.gate or {}).get("strict") else ""
        out.write(console_line(f"  gate overrides{strict}: {'; '.join(o.describe() for o in overrides)}") + "\n")
    for check in not_measured_blocking(report.checks):
        out.write(console_line(f"  NOT MEASURED {check.id} (blocking; the verdict does not cover it): {check.message}") + "\n")
    out.write(console_line(f"report: {out_dir}{'/' if not str(out_dir).endswith('/') else ''}"
                           f" ({', '.join(p.name for p in written)})") + "\n")
    return ExitCode.PASSED if report.passed else ExitCode.GATE_FAILED


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen validate CONFIG: check the config, data and model without training."""
    from reportgen.config import load_config
    from reportgen.pipeline import prepare

    from reportgen.pipeline import check_before_run

    loaded = load_config(args.config, args.set, _flags(args))
    check_before_run(loaded, Path(args.out) if args.out else None)
    prepared = prepare(loaded)
    data, info = prepared.data, prepared.model_info
    sizes = ", ".join(f"{split.n:,} {name}" for name, split in data.splits.items())
    classes = f", {data.num_classes} classes" if data.num_classes else ""
    out.write(
        f"OK: {loaded.config.name}: {loaded.config.task}; {sizes} samples; input {list(data.input_shape)}{classes}; "
        f"model {info.class_name} with {info.parameters:,} parameters, {info.outputs} output{'' if info.outputs == 1 else 's'} ({info.output_kind})\n"
    )
    return ExitCode.PASSED


def _cmd_checks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen checks: list every check (built-in and installed plug-ins) with its threshold and severity."""
    from reportgen.checks import catalog, registry

    checks = registry.all()
    chosen = "json" if args.json else (args.format or "text")
    if chosen == "json":
        rows = [catalog.as_record(c, registry.origin(c.spec.id)) for c in checks]
        out.write(json.dumps(rows, indent=2) + "\n")
        return ExitCode.PASSED
    if chosen == "md":
        out.write(catalog.markdown_table(checks))
        return ExitCode.PASSED
    width = max(len(c.spec.id) for c in checks)
    out.write(f"{'id':<{width}}  {'family':<11}  {'severity':<8}  {'threshold':<12}  detects\n")
    for c in checks:
        spec = c.spec
        threshold = catalog.threshold_text(spec).replace("none", "-")
        origin = registry.origin(spec.id)
        source = "" if origin == "built-in" else f" [{origin}]"
        out.write(f"{spec.id:<{width}}  {spec.family:<11}  {spec.default_severity:<8}  {threshold:<12}  {spec.detects}{source}\n")
    out.write("\nOverride any of them in the YAML: checks: {<id>: {min|max: <value>, severity: error|warning|info, enabled: false}}\n")
    return ExitCode.PASSED


def _cmd_render(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen render results.json: re-render the report files from a results.json."""
    from reportgen.output import check_out_dir, write_reports
    from reportgen.report import load_results

    path = Path(args.results)
    report = load_results(path)
    formats = _parse_formats(args.format) or _recorded_formats(report.config)
    check_out_dir(Path(args.out), inputs={"results": path})
    if args.template_dir:
        from reportgen.render.html import check_templates

        check_templates(Path(args.template_dir))
    inputs = {"results": path, **({"--template-dir": Path(args.template_dir)} if args.template_dir else {})}
    written = write_reports(report, Path(args.out), formats, template_dir=Path(args.template_dir) if args.template_dir else None,
                            inputs=inputs)
    return _write_outcome(report, Path(args.out), written, out)


def _recorded_formats(config: Mapping[str, Any]) -> list[str]:
    """``render``'s formats without ``--format``: the ones the run wrote (its config's ``report.formats``; all
    of them when it names none) and always results.json (the same document, byte for byte), so that the
    folder is a whole report that ``reportgen history`` and ``--compare-to`` read."""
    section = config.get("report") if isinstance(config, Mapping) else None
    recorded = section.get("formats") if isinstance(section, Mapping) else None
    if isinstance(recorded, list) and recorded and all(f in FORMATS for f in recorded):
        return [f for f in FORMATS if f in recorded or f == "json"]
    return list(FORMATS)


def _cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen schema: print the JSON Schema of results.json."""
    from reportgen.results_schema import json_schema_text

    out.write(json_schema_text())
    return ExitCode.PASSED


def _cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """reportgen history PATH...: a trend report over many runs; exit 1 when any job's newest run failed its gate."""
    from reportgen import history

    formats = [part.strip() for part in (args.format or ",".join(history.FORMATS)).split(",") if part.strip()]
    unknown = [f for f in formats if f not in history.FORMATS]
    if unknown or not formats:
        raise InputError(f"--format: choose from {', '.join(history.FORMATS)}" + (f", not {unknown[0]!r}" if unknown else ""))
    collected = history.collect(args.paths, skip_invalid=args.skip_invalid)
    for path, reason in collected.skipped:  # the reason names the file already ("PATH: is empty")
        err.write(f"reportgen: skipped {reason if reason.startswith(path) else f'{path}: {reason}'}\n")
    written = history.write(collected, Path(args.out), formats)
    for h in collected.histories:
        last = h.last_pass()
        out.write(f"{h.verdict.upper()}: {h.name}: newest of {len(h.runs):,} run{'s' if len(h.runs) != 1 else ''} ({h.newest.created_at}); "
                  f"last passing run: {last.created_at if last else 'none'}\n")
    folders: dict[Path, list[str]] = {}  # one job writes into --out, several into --out/<name>/
    for written_path in written:
        folders.setdefault(written_path.parent, []).append(written_path.name)
    for folder, names in folders.items():
        out.write(f"history: {folder} ({', '.join(sorted(names))})\n")
    return ExitCode.PASSED if collected.verdict == "pass" else ExitCode.GATE_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the reportgen command."""
    parser = OneLineParser(
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
                     help="an earlier run's results.json (e.g. the last release), or a folder of runs (its newest passing "
                          "run of this config's name), for the release_comparison check")
    run.add_argument("--strict", action="store_true",
                     help="fail the gate (exit 1) when the config relaxes a default check (same as gate: {strict: true})")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--nproc-per-node", type=int, metavar="N",
                     help="evaluate with N local worker processes (torch.distributed; README: Scale-out)")
    run.add_argument("--exit-code-file", metavar="PATH",
                     help="write the exit code to PATH (rank 0 only; for torchrun, which turns 2 and 3 into 1)")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run.set_defaults(handler=_cmd_run)

    validate = commands.add_parser("validate", help="check the config, data and model without training")
    validate.add_argument("config", help="the YAML config")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config value by dotted path, value parsed as YAML (repeatable)")
    validate.add_argument("--out", help="also check that this output folder can be written")
    validate.add_argument("--format", help="comma-separated formats, checked as run would")
    validate.add_argument("--compare-to", metavar="RESULTS_JSON", help="also check this earlier results.json")
    validate.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    validate.set_defaults(handler=_cmd_validate)

    checks = commands.add_parser("checks", help="list every check, its default threshold and severity")
    checks.add_argument("--json", action="store_true", help="machine-readable list (same as --format json)")
    checks.add_argument("--format", choices=("text", "json", "md"), help="text (default), json, or md (the docs/checks.md table)")
    checks.set_defaults(handler=_cmd_checks)

    render = commands.add_parser("render", help="re-render report files from a results.json",
                                 description="Re-render report files from a results.json (no data, model or "
                                             "torch needed). Exits 0 or 1 with the gate verdict recorded there.")
    render.add_argument("results", help="a results.json written by reportgen run")
    render.add_argument("--out", required=True, help="output folder")
    render.add_argument("--format", help=f"comma-separated formats of {','.join(FORMATS)} (default: those the run wrote, "
                        "and results.json)")
    render.add_argument("--template-dir", help="a folder of templates overriding the built-in ones by name")
    render.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    render.set_defaults(handler=_cmd_render)

    schema = commands.add_parser("schema", help="print the JSON Schema of results.json",
                                 description="Print the JSON Schema (draft 2020-12) of results.json, for "
                                             "validating a report without Python (docs/results.schema.json).")
    schema.set_defaults(handler=_cmd_schema)
    hist = commands.add_parser("history", help="a trend report over many runs' results.json files",
                               description="Trend report over results.json files (given, or found recursively in "
                                           "folders), grouped by name and ordered by created_at. Exits 0 or 1 with "
                                           "the newest run's verdict, 2 for bad input.")
    hist.add_argument("paths", nargs="+", metavar="PATH", help="results.json files or folders searched recursively")
    hist.add_argument("--out", required=True, help="output folder (one subfolder per name when several)")
    hist.add_argument("--format", help="comma-separated formats (default: all of html,pdf,md,json)")
    hist.add_argument("--skip-invalid", action="store_true",
                      help="skip (and name on stderr) invalid results.json files instead of exiting 2")
    hist.set_defaults(handler=_cmd_history)
    return parser


class ReaderTolerantOutput(io.TextIOBase):
    """stdout for the commands: when its reader has gone (``reportgen run ... | head -1``), the rest of the
    output goes nowhere and the command still ends with its own exit code (the report is written by then).

    The recipe of the Python documentation ("Note on SIGPIPE", signal module): Python ignores SIGPIPE, so a
    write to a pipe whose reader closed raises BrokenPipeError; the stream's descriptor is then pointed at
    os.devnull, so that neither later writes nor the interpreter's final flush fail or print a traceback.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        """Write to the stream; a closed reader swallows the text."""
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        """Flush the stream; a closed reader is not an error."""
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def _reader_gone(self) -> None:
        try:
            descriptor = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: nothing to redirect
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, descriptor)
        finally:
            os.close(devnull)


def _usable_stream(stream: TextIO | None, descriptor: int) -> TextIO:
    """``stream``, or os.devnull in its place when it is missing or closed.

    A command started with stdout or stderr closed (``reportgen run ... >&-``) gets ``sys.stdout`` or
    ``sys.stderr`` None from Python; the run must still write its report and end with its own exit
    code. The closed descriptor is first pointed at os.devnull, so that no file the run opens later
    takes descriptor 1 or 2 (where native libraries would write their messages into it).
    """
    try:
        os.fstat(descriptor)
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        if devnull != descriptor:
            os.dup2(devnull, descriptor)
            os.close(devnull)
    if stream is None or getattr(stream, "closed", False):
        return open(os.devnull, "w", encoding="utf-8")
    return stream


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit 2 (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.BAD_INPUT, console_line(f"{self.prog}: error: {' '.join(message.split())}") + "\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI and return its exit code."""
    out = cast(TextIO, ReaderTolerantOutput(out or _usable_stream(sys.stdout, 1)))
    err = err or _usable_stream(sys.stderr, 2)
    if err is not sys.stderr and sys.stderr is None:
        sys.stderr = err  # argparse, warnings and the interpreter's own messages write there
    # Before torch loads OpenMP: worker threads that sleep instead of spinning keep a busy or shared
    # CI runner from slowing small models down by an order of magnitude (bench/README.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    whole_process = argv is None  # the command line of this process, not a caller's list (see _handle)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help/--version
        return int(exc.code or 0)
    args.worker_argv = argv  # what a launched worker runs, less --nproc-per-node (reportgen/launch.py)
    if not getattr(args, "handler", None):
        parser.print_help(out)
        return ExitCode.BAD_INPUT
    code = _handle(args, out, err, whole_process=whole_process)
    out.flush()  # inside main, not at interpreter exit: a pipe's buffered lines meet a gone reader here
    if getattr(args, "exit_code_file", None):
        from reportgen.launch import record_exit_code

        record_exit_code(Path(args.exit_code_file), code)
    return code


def entry() -> NoReturn:
    """The ``reportgen`` command and ``python -m reportgen``: :func:`main`, then exit without tearing down.

    When ``main`` returns, the report is written and closed and the verdict printed; what the interpreter
    would still do at exit is free every module and object of torch, pandas and matplotlib one by one
    (0.4 s or more of a 6 s run on an idle 2-core machine, 3-4 s when it is busy: bench/README.md). So the
    functions registered with ``atexit`` run (logging, ``weakref.finalize``), the standard streams are
    flushed, and the process ends with ``os._exit``. A thread still running (none of reportgen's) is not
    waited for. Where ``atexit`` cannot run its functions on demand, or a profiler or tracer is active
    (``python -m cProfile -m reportgen ...`` writes its statistics after this returns), the exit is the ordinary one.
    """
    import atexit

    code = main()
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # not CPython, or a profiler or tracer (cProfile, a debugger) that reports after main returns
    run_exit_functions()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that went away: nothing left to tell it
            pass
    os._exit(code)


def _handle(args: argparse.Namespace, out: TextIO, err: TextIO, whole_process: bool = False) -> int:
    """Run the chosen command; map every error to its exit code and one line on stderr.

    ``whole_process``: this is the ``reportgen`` process itself (not a caller of ``main``), so after an
    interrupt further signals are ignored until it exits.
    """
    from reportgen.interrupts import interrupt_handlers

    try:
        with interrupt_handlers(until_exit=whole_process):  # SIGTERM and SIGHUP stop a run as Ctrl-C does
            return args.handler(args, out, err)
    except KeyboardInterrupt as exc:
        if getattr(exc, "outcome", None) == "unknown" and args.handler in (_cmd_run, _cmd_render) and args.out:
            # stopped before the command started (during the imports): its output folder holds what it held
            from reportgen.output import interrupted_before_claim

            exc = interrupted_before_claim(exc.signum, args.out)  # type: ignore[attr-defined]
        describe = getattr(exc, "describe", None)
        return _say(err, ExitCode.INTERRUPTED, describe() if describe else "interrupted", exc)
    except SystemExit as exc:  # user code (a factory, a model, a library it calls) must not choose the exit code
        if args.debug:
            traceback.print_exc(file=err)
        return _say(err, ExitCode.RUNTIME_ERROR,
                    f"runtime error: {_describe_user_exit(exc)} (rerun with --debug for the traceback)", exc)
    except ReportgenError as exc:
        if args.debug:
            traceback.print_exc(file=err)
        return _say(err, exc.exit_code, f"error: {exc}", exc)
    except Exception as exc:  # anything unexpected is a runtime error, reported in one line
        if args.debug:
            traceback.print_exc(file=err)
        from reportgen.launch import lost_peer, plain_collective_error

        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        if lost_peer(exc):  # another worker failed (or hung): gloo's and NCCL's messages say little more
            first = plain_collective_error(first)
        return _say(err, ExitCode.RUNTIME_ERROR,
                    f"runtime error: {exc.__class__.__name__}: {first} (rerun with --debug for the traceback)", exc)


def _say(err: TextIO, code: int, line: str, exc: BaseException) -> int:
    """Print ``reportgen: line`` for a run that ended with ``exc``, once per run; return ``code``.

    A worker of ``reportgen run --nproc-per-node`` leaves the line to its launcher, which prints one line
    for all (reportgen/launch.py). A worker of another launcher (torchrun) names itself, and only rank 0
    speaks of an interrupt (it knows what the output folder holds).
    """
    from reportgen.launch import tell_launcher

    if tell_launcher(code, line, exc):
        return code
    if isinstance(exc, PeerFailed):  # the worker that failed first says the cause (torchrun: each worker speaks)
        return code
    rank, world_size = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    interrupted = isinstance(exc, KeyboardInterrupt)
    if world_size not in ("", "1") and rank != "0":
        if interrupted:
            return code
        line = f"worker {rank} of {world_size}: {line}"
    err.write(("\n" if interrupted and err.isatty() else "") + console_line(f"reportgen: {line}") + "\n")
    return code


def _describe_user_exit(exc: SystemExit) -> str:
    """'sys.exit(0) called in make_splits (data.py:7)': where a SystemExit from user code was raised.

    Names the innermost frame outside reportgen (where it was raised) and, when that is in the
    standard library or an installed package, also the innermost frame of the user's own files.
    """
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    library = tuple(
        os.path.abspath(p) + os.sep
        for p in {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    )
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    outside = [(code, line) for code, line in frames if not os.path.abspath(code.co_filename).startswith(package)]

    def where(code: Any, line: int) -> str:
        return f"{getattr(code, 'co_qualname', code.co_name)} ({code.co_filename}:{line})"

    text = f"user code called sys.exit({exc.code!r})"
    if not outside:
        return f"SystemExit({exc.code!r}) raised inside reportgen"
    text += f" in {where(*outside[-1])}"
    own = [(c, n) for c, n in outside if not c.co_filename.startswith("<") and not os.path.abspath(c.co_filename).startswith(library)]
    if own and own[-1] != outside[-1]:
        text += f", reached from {where(*own[-1])}"
    return text
