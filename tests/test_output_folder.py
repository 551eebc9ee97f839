"""The output folder holds one report: checked before the run, locked, swapped in whole, cleaned after crashes.

Everything here runs on the real file system; the tmpfs cases mount a small tmpfs (root only) and are
skipped where mounting is not permitted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import report_fixtures as F
from conftest import cancer_config, write_config
from reportgen.cli import main
from reportgen.errors import InputError, RunError
from reportgen.output import OutputFolder, check_out_dir, write_reports

TEXT = ["json", "junit", "md"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("reportgen: error: "), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes); hidden ones included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def previous_report(out: Path) -> dict[str, bytes]:
    """Write a complete passing report (html, json, junit, md, and a model.pt) into ``out``; return its files."""
    write_reports(F.cached("passing_binary"), out, ["html", *TEXT], extra_files={"model.pt": b"weights of the previous run"})
    return snapshot(out)


def write_results_outside(tmp_path: Path, name: str = "failing_binary") -> Path:
    """A results.json (from a fixture report) kept outside any output folder, for `reportgen render`."""
    folder = tmp_path / f"source-{name}"
    write_reports(F.cached(name), folder, ["json"])
    return folder / "results.json"


# -- one report, never a mix ------------------------------------------------------------------------

def test_reusing_a_folder_replaces_the_whole_previous_report(tmp_path: Path):
    """A FAIL run writing only results.json must not leave the PASS run's html/md/junit/model.pt beside it."""
    out = tmp_path / "out"
    before = previous_report(out)
    assert set(before) == {"report.html", "results.json", "junit.xml", "summary.md", "model.pt"}
    paths = write_reports(F.cached("failing_binary"), out, ["json"])
    assert [p.name for p in paths] == ["results.json"]
    assert sorted(os.listdir(out)) == ["results.json"]
    assert json.loads((out / "results.json").read_text())["status"] == "fail"
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging folder, no lock file


def test_the_cli_run_leaves_only_its_own_files(tmp_path: Path, cancer_csv: Path):
    out = tmp_path / "reports" / "cancer"
    previous_report(out)
    document = cancer_config(cancer_csv, training={"epochs": 2, "lr": 0.01, "save_checkpoint": False})
    code, stdout, err = run_cli("run", str(write_config(tmp_path, document)), "--out", str(out), "--quiet")
    assert code in (0, 1), err
    assert sorted(os.listdir(out)) == ["results.json"] and "(results.json)" in stdout
    assert sorted(os.listdir(out.parent)) == ["cancer"]


def test_folder_mode_survives_the_swap(tmp_path: Path):
    out = tmp_path / "out"
    previous_report(out)
    out.chmod(0o750)
    write_reports(F.cached("multiclass"), out, ["md"])
    assert (out.stat().st_mode & 0o777) == 0o750


def test_new_folder_gets_the_usual_mode(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        write_reports(F.cached("multiclass"), tmp_path / "out", ["md"])
    finally:
        os.umask(umask)
    assert ((tmp_path / "out").stat().st_mode & 0o777) == 0o755


def test_a_symlinked_output_folder_stays_a_link_to_the_new_report(tmp_path: Path):
    real = tmp_path / "v1"
    previous_report(real)
    link = tmp_path / "latest"
    link.symlink_to(real, target_is_directory=True)
    write_reports(F.cached("failing_binary"), link, ["md"])
    assert link.is_symlink() and link.resolve() == real
    assert sorted(os.listdir(real)) == ["summary.md"]
    assert sorted(os.listdir(tmp_path)) == ["latest", "v1"]


def test_the_two_rename_swap_gives_the_same_result(tmp_path: Path):
    """Where the file system cannot exchange two folders, the fallback leaves the same state."""

    class RenamingFolder(OutputFolder):
        use_exchange = False

    out = tmp_path / "out"
    previous_report(out)
    with RenamingFolder(out) as folder:
        folder.publish([("summary.md", b"new")])
    assert snapshot(out) == {"summary.md": b"new"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_an_empty_existing_folder_is_used(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    write_reports(F.cached("multiclass"), out, ["json"])
    assert sorted(os.listdir(out)) == ["results.json"]


def test_a_failed_render_keeps_the_previous_report_and_leaves_nothing(tmp_path: Path):
    out = tmp_path / "out"
    before = previous_report(out)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.html.j2").write_text("{{ r.no_such_field.deeper }}", encoding="utf-8")
    with pytest.raises(InputError):  # a custom template's mistake is bad input (exit 2)
        write_reports(F.cached("failing_binary"), out, ["json", "html"], template_dir=templates)
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out", "templates"]


def test_a_failed_write_removes_the_parent_folders_it_created(tmp_path: Path):
    with pytest.raises(RunError, match="unknown report format"):
        write_reports(F.cached("multiclass"), tmp_path / "a" / "b" / "out", ["docx"])
    assert os.listdir(tmp_path) == []


# -- found before the run ---------------------------------------------------------------------------

def test_files_reportgen_did_not_write_are_refused(tmp_path: Path):
    out = tmp_path / "out"
    before = previous_report(out)
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "plots").mkdir()
    with pytest.raises(InputError, match=r"holds files reportgen did not write \(notes.txt, plots/\)"):
        write_reports(F.cached("failing_binary"), out, ["json"])
    assert snapshot(out) == {**before, "notes.txt": b"mine"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_dangling_symlink_is_refused(tmp_path: Path):
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(InputError, match="is a symbolic link to .*gone, which does not exist"):
        check_out_dir(link)
    with pytest.raises(InputError, match="which does not exist"):
        write_reports(F.cached("multiclass"), link / "nested", ["md"])
    assert sorted(os.listdir(tmp_path)) == ["latest"]


def test_names_too_long_are_refused(tmp_path: Path):
    with pytest.raises(InputError, match="is 300 bytes, longer than the 255"):
        check_out_dir(tmp_path / ("x" * 300))
    with pytest.raises(InputError, match="is 256 bytes"):
        check_out_dir(tmp_path / ("y" * 256) / "out")
    deep = tmp_path.joinpath(*(["d" * 200] * 21))
    with pytest.raises(InputError, match="the path is too long"):
        check_out_dir(deep)
    # A long name that fits is fine: the hidden siblings use a shortened name.
    out = tmp_path / ("z" * 250)
    write_reports(F.cached("multiclass"), out, ["md"])
    assert sorted(os.listdir(tmp_path)) == [out.name]


def test_the_current_folder_and_the_root_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="is the current folder or holds it"):
        check_out_dir(Path("."))
    with pytest.raises(InputError, match="is the current folder or holds it"):
        check_out_dir(tmp_path.parent)
    with pytest.raises(InputError, match="root of the file system"):
        check_out_dir(Path("/"))


def test_an_unwritable_folder_is_refused_before_the_run(tmp_path: Path, cancer_csv: Path):
    config = write_config(tmp_path, cancer_config(cancer_csv))
    if os.geteuid() == 0:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        with mounted_tmpfs(read_only, "ro,size=64k"):
            code, out, err = run_cli("run", str(config), "--out", str(read_only / "reports" / "x"), "--quiet")
            assert os.listdir(read_only) == []
        line = one_error_line(err)
        assert "read-only file system" in line
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code, out, err = run_cli("run", str(config), "--out", str(locked / "x"), "--quiet")
        assert "is not writable" in one_error_line(err)
    assert code == 2 and out == ""


def test_inputs_inside_the_output_folder_are_refused(tmp_path: Path, cancer_csv: Path):
    """The checkpoint being fine-tuned, the baseline, the config, the data and the templates are never replaced."""
    out = tmp_path / "out"
    before = previous_report(out)
    cases = {
        "model.checkpoint": ({"model": {"kind": "mlp", "hidden": [8], "checkpoint": "out/model.pt"}}, []),
        "compare_to": ({"compare_to": "out/results.json"}, []),
        "report.template_dir": ({"report": {"formats": ["json"], "template_dir": "out"}}, []),
    }
    for label, (overrides, extra) in cases.items():
        config = write_config(tmp_path, cancer_config(cancer_csv, **overrides))
        code, stdout, err = run_cli("run", str(config), "--out", str(out), "--quiet", *extra)
        assert code == 2 and stdout == "", (label, err)
        assert f"holds {label} " in one_error_line(err) and "an input of this run" in err
        assert snapshot(out) == before
    # --compare-to is written into the config as run (flags come last), so it is refused under that key too
    config = write_config(tmp_path, cancer_config(cancer_csv))
    code, stdout, err = run_cli("run", str(config), "--out", str(out), "--quiet", "--compare-to", str(out / "results.json"))
    assert code == 2 and stdout == "" and "holds compare_to " in one_error_line(err)
    assert snapshot(out) == before
    data_out = tmp_path / "data-out"
    data_out.mkdir()
    (data_out / "results.json").write_bytes(cancer_csv.read_bytes())  # a data file under a report file's name
    config = write_config(tmp_path, cancer_config(data_out / "results.json", data={
        **cancer_config(cancer_csv)["data"], "path": "data-out/results.json"}))
    code, _, err = run_cli("run", str(config), "--out", str(data_out), "--quiet")
    assert code == 2 and "holds data.path " in one_error_line(err)
    code, _, err = run_cli("run", str(config), "--out", str(tmp_path), "--quiet")
    assert code == 2 and "holds the config " in one_error_line(err)


def test_render_refuses_to_replace_the_results_it_reads(tmp_path: Path):
    out = tmp_path / "out"
    before = previous_report(out)
    code, _, err = run_cli("render", str(out / "results.json"), "--out", str(out))
    assert code == 2 and "holds results " in one_error_line(err)
    assert snapshot(out) == before


# -- locking and what killed runs leave ----------------------------------------------------------------

def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path: Path):
    out = tmp_path / "out"
    before = previous_report(out)
    results = write_results_outside(tmp_path)
    with OutputFolder(out) as first:
        code, stdout, err = run_cli("render", str(results), "--out", str(out), "--format", "md")
        assert code == 2 and stdout == ""
        assert one_error_line(err) == f"reportgen: error: another reportgen is writing to {out}; wait for it to end or choose another output folder"
        # Another process sees the same lock (the lock is the file system's, not this process's).
        probe = subprocess.run(
            [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
             "except BlockingIOError:\n    print('held')", str(tmp_path / ".out.reportgen-lock")],
            capture_output=True, text=True, check=True,
        )
        assert probe.stdout.strip() == "held"
        first.publish([("summary.md", b"first")])
    assert snapshot(out) == {"summary.md": b"first"} and before != snapshot(out)
    assert sorted(os.listdir(tmp_path)) == ["out", results.parent.name]


def test_a_stale_lock_file_does_not_block(tmp_path: Path):
    """SIGKILL leaves the lock file, but the operating system released its lock."""
    out = tmp_path / "out"
    (tmp_path / ".out.reportgen-lock").write_bytes(b"")
    write_reports(F.cached("multiclass"), out, ["md"])
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_staging_folders_of_killed_runs_are_removed(tmp_path: Path):
    out = tmp_path / "out"
    before = previous_report(out)
    stale = tmp_path / ".out.reportgen-staging-0badf00d"
    stale.mkdir()
    (stale / "results.json").write_text("half", encoding="utf-8")
    legacy = out / ".reportgen-staging-abc123"  # reportgen 0.1 staged inside the folder
    legacy.mkdir()
    (legacy / "report.html").write_text("half", encoding="utf-8")
    other = tmp_path / ".other.reportgen-staging-12345678"  # another folder's: not ours to remove
    other.mkdir()
    with OutputFolder(out):
        pass  # claiming cleans; leaving without publishing changes nothing else
    assert not stale.exists() and other.exists()
    assert snapshot(out) == {**before, ".reportgen-staging-abc123/report.html": b"half"}
    write_reports(F.cached("failing_binary"), out, ["md"])
    assert sorted(os.listdir(out)) == ["summary.md"]


def test_a_previous_report_left_aside_is_put_back(tmp_path: Path):
    """A crash between the fallback's two renames leaves the folder missing; the next run restores it."""
    out = tmp_path / "out"
    before = previous_report(out)
    aside = tmp_path / ".out.reportgen-previous-1234abcd"
    out.rename(aside)
    staged = tmp_path / ".out.reportgen-staging-5678abcd"
    staged.mkdir()
    (staged / "summary.md").write_text("new, never swapped in", encoding="utf-8")
    with OutputFolder(out) as folder:
        assert folder.had_previous
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]
    # With the folder present, an aside copy is the leftover of a finished swap: removed.
    aside.mkdir()
    (aside / "summary.md").write_text("older", encoding="utf-8")
    with OutputFolder(out):
        pass
    assert snapshot(out) == before and sorted(os.listdir(tmp_path)) == ["out"]


# -- disk space (a small tmpfs; root only) -------------------------------------------------------------

@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs on ``folder`` for the block, or skip the test where that is not permitted."""
    completed = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if completed.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {completed.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill ``folder``'s file system until at most ``leave`` bytes are free."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                stats = os.statvfs(folder)
                if stats.f_bavail * stats.f_frsize <= leave:
                    break
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_file_system_is_refused_before_the_run(tmp_path: Path, cancer_csv: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    config = write_config(tmp_path, cancer_config(cancer_csv))
    with mounted_tmpfs(disk, "size=64k"):
        fill(disk)
        code, out, err = run_cli("run", str(config), "--out", str(disk / "reports" / "x"))
        assert code == 2 and out == ""
        assert "no space left on the file system of" in one_error_line(err)  # refused before loading anything
        assert sorted(os.listdir(disk)) == ["filler"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_disk_that_fills_during_the_write_keeps_the_previous_report(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    results = write_results_outside(tmp_path, "failing_binary")
    with mounted_tmpfs(disk, "size=256k"):
        out = disk / "out"
        write_reports(F.cached("multiclass"), out, ["md"])
        before = snapshot(out)
        fill(disk, leave=8192)
        code, stdout, err = run_cli("render", str(results), "--out", str(out), "--format", "html,md,junit")
        assert code == 3 and stdout == ""
        line = one_error_line(err)
        assert "could not write the report to" in line and "No space left on device" in line
        assert line.endswith(f"{out} still holds the previous report")
        assert snapshot(out) == before
        assert sorted(os.listdir(disk)) == ["filler", "out"]  # the staging folder is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_mount_point_is_refused(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted_tmpfs(disk, "size=64k"):
        with pytest.raises(InputError, match="is a mount point"):
            check_out_dir(disk)


def test_the_lock_is_a_real_flock(tmp_path: Path):
    """The lock file next to the folder is locked with flock for as long as the folder is claimed."""
    out = tmp_path / "out"
    with OutputFolder(out):
        fd = os.open(tmp_path / ".out.reportgen-lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert os.listdir(tmp_path) == []
