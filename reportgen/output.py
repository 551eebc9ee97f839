"""The output folder holds one report: the complete previous one or the complete new one, never a mix.

A run claims its output folder before it loads anything (:class:`OutputFolder`): every problem that
can be found without the report is found then (a file or a dangling symbolic link in the way, a
read-only or full file system, a name too long, files reportgen did not write, an input of the run
inside the folder, another reportgen writing there), and an ``fcntl`` lock next to the folder keeps a
second writer out until the run ends. When the report is rendered (in memory), it is written into a
fresh sibling folder, flushed to disk, and swapped in as a whole:

- no previous folder: one ``rename`` of the staging folder to the output folder (atomic);
- a previous folder: Linux ``renameat2(RENAME_EXCHANGE)`` exchanges the two folders (atomic), then the
  old one (now under the staging name) is removed; where the file system cannot exchange, the old
  folder is renamed aside to ``.NAME.reportgen-previous-*``, the new one renamed in, and the next run
  puts the aside folder back if it finds the output folder missing (a crash between the two renames).

SIGINT, SIGTERM and SIGHUP are held during the swap and its clean-up (``interrupts.deferred_signals``),
so only SIGKILL or a power loss can stop it half-way; what those can leave is listed in the README's
"The output folder" section, and the next run for the same folder removes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from reportgen.errors import InputError, ReportgenError, RunError
from reportgen.interrupts import Interrupted, deferred_signals, pause_for_tests
from reportgen.render import RENDERERS, Renderer, RenderOptions

if TYPE_CHECKING:
    from reportgen.report import Report

CHECKPOINT_FILE = "model.pt"
"""The trained model's state_dict, written next to the report after training."""
REPORT_FILES: frozenset[str] = frozenset({*(r.filename for r in RENDERERS.values()), CHECKPOINT_FILE})
"""Every file name reportgen writes into an output folder; anything else there is not reportgen's."""
LEGACY_STAGING_PREFIX = ".reportgen-staging-"
"""Staging folders reportgen 0.1 left inside the output folder when killed; removed with the old report."""
LOCK_TAG = ".reportgen-lock"
STAGING_TAG = ".reportgen-staging-"
PREVIOUS_TAG = ".reportgen-previous-"
_STEM_MAX_BYTES = 100  # sibling names stay well under NAME_MAX (255) whatever the folder's name


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:299] + "…"


def render_all(report: "Report", formats: Sequence[str], options: RenderOptions) -> list[tuple[str, bytes]]:
    """Render every format in memory; return (filename, content) pairs in the order asked."""
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise RunError(f"unknown report format {unknown[0]!r}; choose from {', '.join(RENDERERS)}")
    rendered = []
    with contextlib.ExitStack() as prepared:
        wanted = [RENDERERS[fmt] for fmt in dict.fromkeys(formats)]
        # formats with a `prepare` (the PDF) start their report-independent work before any format renders
        render = {r.format: prepared.enter_context(r.prepare()) if r.prepare else r.render for r in wanted}
        for renderer in wanted:
            rendered.append((renderer.filename, _render_one(renderer, render[renderer.format], report, options)))
    return rendered


def _render_one(renderer: Renderer, render: Callable[["Report", RenderOptions], bytes], report: "Report",
                options: RenderOptions) -> bytes:
    """``render(report, options)``; an error becomes "could not render <file>: ..." (a RunError, or an InputError)."""
    try:
        return render(report, options)
    except InputError as exc:  # a user template the sandbox refused: bad input, exit 2
        raise type(exc)(f"could not render {renderer.filename}: {_one_line(exc)}") from exc
    except ReportgenError as exc:
        raise RunError(f"could not render {renderer.filename}: {_one_line(exc)}") from exc
    except Exception as exc:
        raise RunError(f"could not render {renderer.filename}: {exc.__class__.__name__}: {_one_line(exc)}") from exc


def _sibling_stem(name: str) -> str:
    """The output folder's name as used in its siblings' names (lock, staging): shortened when long."""
    raw = os.fsencode(name)
    if len(raw) <= _STEM_MAX_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return os.fsdecode(raw[:60]).rstrip("\udcff") + "~" + digest


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _path_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_PATH_MAX"))
    except (OSError, ValueError):
        return 4096


def _free_space_problem(folder: Path) -> str | None:
    """Why nothing at all can be written on ``folder``'s file system, or None."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only file system"
    blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserved blocks
    if blocks * stats.f_frsize == 0:
        return f"no space left on the file system of {folder}"
    inodes = stats.f_ffree if os.geteuid() == 0 else stats.f_favail
    if stats.f_files > 0 and inodes == 0:
        return f"no free inodes left on the file system of {folder}"
    return None


def _inspect_path(requested: Path) -> tuple[Path, Path]:
    """Check the output path itself; return (its real path, its nearest existing ancestor's real path).

    Raises InputError when a component is a file or a dangling symbolic link, the path is the root,
    a mount point, the current folder or one of its ancestors, or a name or the whole path is too long.
    """
    for candidate in (requested, *requested.parents):
        if os.path.lexists(candidate):
            if not os.path.exists(candidate):
                target = os.readlink(candidate) if os.path.islink(candidate) else "?"
                raise InputError(f"output folder {requested}: {candidate} is a symbolic link to {target}, which does not exist")
            if not os.path.isdir(candidate):
                raise InputError(f"output folder {requested}: {candidate} is a file, not a folder")
            break
    resolved = Path(os.path.realpath(requested))
    if resolved.parent == resolved:
        raise InputError(f"output folder {requested} is the root of the file system; name a folder for the report")
    cwd = Path(os.getcwd())
    if resolved == cwd or resolved in cwd.parents:
        raise InputError(f"output folder {requested} is the current folder or holds it; name a folder for the report, e.g. {requested / 'report'}")
    if os.path.exists(resolved) and os.path.ismount(resolved):
        raise InputError(f"output folder {requested} is a mount point; reportgen replaces the report folder as a whole, "
                         f"so name a folder inside it, e.g. {requested / 'report'}")
    existing = resolved
    while not os.path.exists(existing):
        existing = existing.parent
    name_max = _name_max(existing)
    for part in resolved.relative_to(existing).parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise InputError(f"output folder {requested}: the name {part[:40]!r}... is {size} bytes, "
                             f"longer than the {name_max} its file system allows")
    longest = len(os.fsencode(str(resolved.parent))) + len(os.fsencode(_sibling_stem(resolved.name))) + 40
    longest = max(longest, len(os.fsencode(str(resolved))) + 1 + max(len(n) for n in REPORT_FILES))
    if longest >= _path_max(existing):
        raise InputError(f"output folder {requested}: the path is too long for its file system ({_path_max(existing)} bytes at most)")
    return resolved, existing


def _writable_problem(folder: Path) -> str | None:
    """Why files cannot be created in (or removed from) ``folder``, or None."""
    problem = _free_space_problem(folder)
    if problem:
        return problem
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def _foreign_entries(folder: Path, allowed: frozenset[str] = REPORT_FILES) -> list[str]:
    """Names in ``folder`` that are not among the ``allowed`` file names (folders end with '/')."""
    foreign = []
    with os.scandir(folder) as entries:
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir and entry.name.startswith(LEGACY_STAGING_PREFIX):
                continue
            if entry.name in allowed and not is_dir:
                continue
            foreign.append(entry.name + ("/" if is_dir else ""))
    return sorted(foreign)


def check_out_dir(
    out_dir: Path, inputs: Mapping[str, Path] | None = None, allowed: frozenset[str] = REPORT_FILES
) -> None:
    """Raise InputError when ``out_dir`` cannot receive a report; writes nothing.

    The checks of :meth:`OutputFolder.claim` that need no lock: the path (files, dangling links,
    names too long), the file system (read-only, no space), the folder's content (only reportgen's
    files) and ``inputs`` (label -> path; none may lie inside the folder).
    """
    requested = Path(out_dir)
    resolved, existing = _inspect_path(requested)
    _check_target(requested, resolved, existing, inputs or {}, allowed)


def _check_target(
    requested: Path, resolved: Path, existing: Path, inputs: Mapping[str, Path], allowed: frozenset[str] = REPORT_FILES
) -> None:
    """The checks of the file system, the folder's content and the inputs (see :func:`check_out_dir`)."""
    writable_in = resolved.parent if os.path.exists(resolved.parent) else existing
    problem = _writable_problem(writable_in)
    if problem:
        raise InputError(f"output folder {requested}: {problem}")
    for label, path in inputs.items():
        real = Path(os.path.realpath(path))
        if real == resolved or resolved in real.parents:
            raise InputError(f"output folder {requested} holds {label} {path}, an input of this run; writing the report "
                             f"there would replace it: choose another output folder")
    if os.path.isdir(resolved):
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise InputError(f"output folder {requested}: {resolved} is not writable")
        foreign = _foreign_entries(resolved, allowed)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise InputError(f"output folder {requested} holds files reportgen did not write ({shown}); a run replaces "
                             f"the whole folder, so choose a new or empty folder or one holding only an earlier report")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the files themselves are synced
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():  # type: ignore[no-untyped-def]
    """glibc's renameat2, or None where the C library has none (non-Linux, old glibc)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(first: Path, second: Path) -> bool:
    """Atomically exchange two existing paths; False where the system or file system cannot.

    Raises OSError for any other failure.
    """
    function = _renameat2()
    if function is None:
        return False
    import ctypes

    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


class OutputFolder:
    """One run's claim on its output folder, from before loading until the report is in place.

    Use as a context manager around the run and call :meth:`publish` once with the rendered files::

        with OutputFolder(out_dir, inputs={"model.checkpoint": path}) as folder:
            ...                        # load, train, evaluate, render
            folder.publish(files)      # [(name, bytes)]: the folder now holds exactly these files

    Entering raises InputError (before anything is written) for every problem :func:`check_out_dir`
    finds, and when another reportgen holds the folder's lock. Leaving without a successful publish
    removes what the claim created (staging folder, lock file, parent folders it made); the folder
    then holds what it held before.
    """

    use_exchange = True
    """Swap with renameat2(RENAME_EXCHANGE) where it works; False forces the two-rename fallback."""

    def __init__(
        self, out_dir: Path | str, inputs: Mapping[str, Path] | None = None, allowed: frozenset[str] = REPORT_FILES
    ) -> None:
        self.requested = Path(out_dir)
        self.allowed = allowed
        """The file names this folder may hold (a run report's, or a history report's)."""
        self.inputs = dict(inputs or {})
        self.path = self.requested
        self.had_previous = False
        self.written = False
        self._claimed = False
        self._created: list[Path] = []
        self._lock_fd: int | None = None
        self._lock_path: Path | None = None
        self._staging: Path | None = None

    # -- names next to the folder -------------------------------------------------------------
    def _sibling(self, tag: str, token: str = "") -> Path:
        return self.path.parent / f".{_sibling_stem(self.path.name)}{tag}{token}"

    # -- claim ----------------------------------------------------------------------------------
    def __enter__(self) -> "OutputFolder":
        self.claim()
        return self

    def claim(self) -> None:
        """Check the folder, create missing parents, take the lock, clean what killed runs left.

        Raises InputError (nothing left behind) when the folder cannot receive a report.
        """
        try:
            with deferred_signals():
                self._claim()
        except BaseException:
            with deferred_signals():
                self._close()
            raise
        self._claimed = True

    def _claim(self) -> None:
        self.path, existing = _inspect_path(self.requested)
        if existing == self.path:
            existing = self.path.parent
        problem = _writable_problem(existing)
        if problem:
            raise InputError(f"output folder {self.requested}: {problem}")
        for attempt in range(3):  # a parent made here may vanish if a failing run removes it at once
            self._make_parents()
            try:
                self._lock()
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            self._recover()
        except OSError as exc:
            raise InputError(f"output folder {self.requested}: cannot tidy up after an earlier run that was killed: "
                             f"{_one_line(exc)}") from None
        self._check_target_now()
        self.had_previous = holds_previous_report(self.path)

    def _check_target_now(self) -> None:
        existing = self.path
        while not os.path.exists(existing):
            existing = existing.parent
        _check_target(self.requested, self.path, existing, self.inputs, self.allowed)

    def _make_parents(self) -> None:
        missing = []
        folder = self.path.parent
        while not os.path.exists(folder):
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue
            except OSError as exc:
                raise InputError(f"output folder {self.requested}: cannot create {folder}: {_one_line(exc)}") from None
            self._created.append(folder)

    def _lock(self) -> None:
        path = self._sibling(LOCK_TAG)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise InputError(f"output folder {self.requested}: cannot create the lock file {path}: {_one_line(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(f"another reportgen is writing to {self.requested}; wait for it to end or choose another output folder") from None
            except OSError as exc:
                os.close(fd)
                raise InputError(f"output folder {self.requested}: cannot lock {path}: {_one_line(exc)}") from None
            # The run that held the lock removes the file before releasing it: lock the file on disk.
            try:
                on_disk = os.stat(path)
                mine = os.fstat(fd)
                same = (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd, self._lock_path = fd, path
                return
            os.close(fd)

    def _recover(self) -> None:
        """Put back a previous report a killed run left aside; remove killed runs' staging folders."""
        stem = _sibling_stem(self.path.name)
        previous_prefix, staging_prefix = f".{stem}{PREVIOUS_TAG}", f".{stem}{STAGING_TAG}"
        names = sorted(os.listdir(self.path.parent))
        for name in names:
            if name.startswith(previous_prefix):
                aside = self.path.parent / name
                if not os.path.lexists(self.path):
                    os.rename(aside, self.path)
                else:
                    shutil.rmtree(aside, ignore_errors=True)
        for name in names:
            if name.startswith(staging_prefix):
                shutil.rmtree(self.path.parent / name, ignore_errors=True)

    # -- publish --------------------------------------------------------------------------------
    def _unchanged(self) -> str:
        return f"{self.requested} still holds the previous report" if self.had_previous else "no report was written"

    def publish(self, files: Sequence[tuple[str, bytes]]) -> list[Path]:
        """Make the folder hold exactly ``files`` ((name, content) pairs; names from REPORT_FILES).

        Returns the written paths (as the folder was named). Raises RunError when the files cannot be
        written or swapped in; the folder then holds what it held before.
        """
        if not self._claimed or self.written:
            raise RuntimeError("publish() needs a claimed folder and runs once")
        for name, _ in files:
            if name not in self.allowed:
                raise ValueError(f"{name!r} is not a report file name")
        try:
            self._staging = self._make_staging()
            for name, content in files:
                fd = os.open(self._staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
            _fsync_dir(self._staging)
        except OSError as exc:
            raise RunError(f"could not write the report to {self.requested}: {_one_line(exc)}; {self._unchanged()}") from exc
        pause_for_tests("stage")
        with deferred_signals():
            pause_for_tests("swap")
            try:
                old = self._swap(self._staging)
            except OSError as exc:
                raise RunError(f"could not move the report into {self.requested}: {_one_line(exc)}; {self._unchanged()}") from exc
            self.written = True
            self._staging = old
            _fsync_dir(self.path.parent)
            pause_for_tests("cleanup")
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
                self._staging = None
        return [self.requested / name for name, _ in files]

    def _make_staging(self) -> Path:
        while True:
            staging = self._sibling(STAGING_TAG, secrets.token_hex(4))
            try:
                os.mkdir(staging, 0o777)  # the umask applies, as for any new folder
                break
            except FileExistsError:
                continue
        if os.path.isdir(self.path):  # the new folder keeps the old one's permissions (and owner, where allowed)
            current = os.stat(self.path)
            os.chmod(staging, current.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(staging, current.st_uid, current.st_gid)
        return staging

    def _swap(self, staging: Path) -> Path | None:
        """Put ``staging`` in place of the folder; return where the old folder now is (None: there was none)."""
        if not os.path.lexists(self.path):
            os.rename(staging, self.path)
            return None
        if self.use_exchange and exchange(staging, self.path):
            return staging  # the old report now sits under the staging name
        aside = self._sibling(PREVIOUS_TAG, secrets.token_hex(4))
        os.rename(self.path, aside)
        try:
            os.rename(staging, self.path)
        except OSError:
            os.rename(aside, self.path)
            raise
        os.rename(aside, staging)  # from here on a crash leaves only a staging folder, which is junk
        return staging

    # -- release --------------------------------------------------------------------------------
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with deferred_signals():
            self._close()

    def _close(self) -> None:
        """Remove the staging folder, the lock file, and (unless the report was written) the parents made."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        if self._lock_fd is not None:
            try:
                if self._lock_path is not None:
                    os.unlink(self._lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None
        if not self.written:
            for folder in reversed(self._created):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
            self._created = []

    def interrupted(self, exc: BaseException) -> Interrupted:
        """An :class:`Interrupted` for ``exc`` that says what the folder holds now."""
        signum = getattr(exc, "signum", signal.SIGINT)
        if self.written:
            return Interrupted(signum, outcome="written", folder=self.requested)
        if self.had_previous:
            return Interrupted(signum, outcome="previous_kept", folder=self.requested)
        return Interrupted(signum, outcome="nothing", folder=self.requested)


def holds_previous_report(path: Path | str) -> bool:
    """True when ``path`` is a folder with something in it: what a run keeps when it writes no new report."""
    try:
        return os.path.isdir(path) and bool(os.listdir(path))
    except OSError:
        return False


def interrupted_before_claim(signum: int, out_dir: Path | str | None) -> Interrupted:
    """An :class:`Interrupted` for a run stopped before it claimed its output folder ``out_dir`` (None when
    not known yet): the folder holds what it held, so the outcome is ``previous_kept`` when it holds anything
    (:func:`holds_previous_report`), else ``nothing``."""
    kept = out_dir is not None and holds_previous_report(out_dir)
    return Interrupted(signum, outcome="previous_kept" if kept else "nothing",
                       folder=Path(out_dir) if out_dir is not None else None)


def write_reports(
    report: "Report",
    out_dir: Path,
    formats: list[str],
    template_dir: Path | str | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    *,
    folder: OutputFolder | None = None,
    inputs: Mapping[str, Path] | None = None,
    allowed: frozenset[str] = REPORT_FILES,
) -> list[Path]:
    """Render ``formats`` in memory and make ``out_dir`` hold exactly them and ``extra_files`` (e.g. model.pt).

    ``folder`` is the run's claimed :class:`OutputFolder` (its ``out_dir`` wins); without it the folder is
    claimed here, with ``inputs`` (label -> path) that must not lie inside it. Returns the written paths.

    Raises InputError when the folder cannot receive a report (nothing written), RunError when a
    renderer fails or the files cannot be written; in both cases the folder holds what it held before.
    An interrupt (SIGINT, SIGTERM, SIGHUP) becomes :class:`Interrupted` saying what the folder holds.
    """
    options = RenderOptions(template_dir=Path(template_dir) if template_dir is not None else None)
    if folder is not None:
        pause_for_tests("render")
        rendered = render_all(report, formats, options) + list((extra_files or {}).items())
        return folder.publish(rendered)
    own = OutputFolder(out_dir, inputs, allowed)
    try:
        with own:
            return write_reports(report, out_dir, formats, template_dir, extra_files, folder=own, allowed=allowed)
    except KeyboardInterrupt as exc:
        raise own.interrupted(exc) from exc
