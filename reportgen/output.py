"""Write the rendered reports atomically: all formats render in memory, then land together.

Either every requested file is replaced, or (on any exception) the output folder is left as it
was: no partial report, no temporary files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from reportgen.errors import InputError, ReportgenError, RunError
from reportgen.render import RENDERERS, RenderOptions

if TYPE_CHECKING:
    from reportgen.report import Report

STAGING_PREFIX = ".reportgen-staging-"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:299] + "…"


def render_all(report: "Report", formats: Sequence[str], options: RenderOptions) -> list[tuple[str, bytes]]:
    """Render every format in memory; return (filename, content) pairs in the order asked."""
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise RunError(f"unknown report format {unknown[0]!r}; choose from {', '.join(RENDERERS)}")
    rendered = []
    for fmt in dict.fromkeys(formats):
        renderer = RENDERERS[fmt]
        try:
            content = renderer.render(report, options)
        except InputError as exc:  # a user template the sandbox refused: bad input, exit 2
            raise type(exc)(f"could not render {renderer.filename}: {_one_line(exc)}") from exc
        except ReportgenError as exc:
            raise RunError(f"could not render {renderer.filename}: {_one_line(exc)}") from exc
        except Exception as exc:
            raise RunError(f"could not render {renderer.filename}: {exc.__class__.__name__}: {_one_line(exc)}") from exc
        rendered.append((renderer.filename, content))
    return rendered


def check_out_dir(out_dir: Path) -> None:
    """Raise InputError when ``out_dir`` cannot be a report folder: it, or a parent, is a file."""
    for folder in (Path(out_dir), *Path(out_dir).parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"output folder {out_dir}: {folder} is a file, not a folder")
            return


def write_reports(
    report: "Report",
    out_dir: Path,
    formats: list[str],
    template_dir: Path | str | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> list[Path]:
    """Render ``formats`` and write them, with ``extra_files`` (e.g. model.pt), into ``out_dir`` atomically.

    Returns the written paths.

    Raises RunError (one-line message) when a renderer fails or the files cannot be written;
    in both cases ``out_dir`` holds exactly what it held before.
    """
    out_dir = Path(out_dir)
    options = RenderOptions(template_dir=Path(template_dir) if template_dir is not None else None)
    rendered = render_all(report, formats, options) + list((extra_files or {}).items())

    for filename, _ in rendered:
        target = out_dir / filename
        if target.exists() and not target.is_file():
            raise RunError(f"could not write the reports: {target} exists and is not a file")

    created_dir = not out_dir.exists()
    staging: Path | None = None
    moved: list[tuple[Path, Path | None]] = []  # (target, backup of what it replaced)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        staged = []
        for filename, content in rendered:
            path = staging / filename
            with open(path, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            staged.append(path)
        backups = staging / "previous"
        backups.mkdir()
        for path in staged:
            target = out_dir / path.name
            backup = None
            if target.exists():
                backup = backups / path.name
                os.replace(target, backup)
            moved.append((target, backup))
            os.replace(path, target)
    except BaseException as exc:
        for target, backup in reversed(moved):  # undo: put back what was there before
            try:
                if backup is not None and backup.exists():
                    os.replace(backup, target)
                elif backup is None and target.exists():
                    target.unlink()
            except OSError:
                pass
        _cleanup(staging, out_dir if created_dir else None)
        if isinstance(exc, OSError):
            raise RunError(f"could not write the reports to {out_dir}: {_one_line(exc)}") from exc
        raise
    _cleanup(staging, None)
    return [out_dir / filename for filename, _ in rendered]


def _cleanup(staging: Path | None, created_dir: Path | None) -> None:
    """Remove the staging folder, and ``created_dir`` too when it ended up empty."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    if created_dir is not None:
        try:
            created_dir.rmdir()
        except OSError:
            pass
