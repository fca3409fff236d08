"""OUTDIR cannot be written: a full disk, a filesystem gone read-only, OUTDIR removed.

Real filesystems that really fill up or turn read-only: a small tmpfs, and an
ext4 image on a loop device whose errors=remount-ro is triggered mid-run
(both need root: skipped otherwise). The run must end with one line naming
OUTDIR, the reason and the way on, exit code 74, no traceback, whole lines only,
no process left behind; and once the cause is gone, --resume must finish it
with every file exactly once, equal to a clean run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import fastdump
from fastdump.errors import FastdumpError, OutputDirError, OutputWriteError
from fastdump.outdir import LineFile

from . import test_runner_kill
from .conftest import pydicom_file
from .formats import test_parquet_kill
from .formats.test_parquet_kill import DEFAULT, parquet_cmd, rows_and_errors
from .helpers import jsonl_lines, parse_line
from .process_tree import wait_all_gone
from .test_runner_kill import dump_cmd, records
from .test_stopping import check_resume, start_run

big_archive, reference = test_runner_kill.big_archive, test_runner_kill.reference
clean_parquet = test_parquet_kill.clean

EXIT_OUTDIR = 74
FULL = "No space left on device"
WAY_ON = "free space, then run the same command with --resume"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


class Tmpfs:
    """A tmpfs of ``size`` at ``path``, which can be grown (space freed) later."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir()
        mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))

    def grow(self, size: str = "256m") -> None:
        mount("-o", f"remount,size={size}", str(self.path))


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted: list[Tmpfs] = []

    def make(size: str) -> Tmpfs:
        try:
            fs = Tmpfs(tmp_path / f"fs{len(mounted)}", size)
        except (subprocess.CalledProcessError, OSError) as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        mounted.append(fs)
        return fs

    yield make
    for fs in mounted:
        subprocess.run(["umount", "-l", str(fs.path)], capture_output=True, timeout=60)


def run_cmd(cmd) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command in a session of its own; its result, and when its processes were gone."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=600)
    gone = wait_all_gone(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, None, stderr), gone


def check_one_line(stderr: str, out: Path, reason: str, way_on: str) -> None:
    assert stderr.count("\n") == 1, stderr  # one line, no traceback, no report
    assert stderr.startswith(f"fastdump: error: cannot write to OUTDIR {out}: {reason}"), stderr
    assert stderr.rstrip("\n").endswith(way_on), stderr


def check_no_half_files(out: Path, cut_tail_ok: bool = False) -> None:
    """Every line of dump.jsonl and errors.jsonl parses: whole lines only. ``cut_tail_ok``:
    a filesystem that turned read-only in the middle of a write refuses to cut the half
    line back too; it may then end the file (only there), and --resume repairs it."""
    if cut_tail_ok:
        for name in ("dump.jsonl", "errors.jsonl"):
            for line in jsonl_lines(out / name, missing_ok=True)[:-1]:
                parse_line(line)
    else:
        records(out)
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"


def test_disk_full_is_one_line_exit_74_and_resume_finishes(big_archive, reference,
                                                           small_fs):
    fs = small_fs("1m")  # the archive's dump.jsonl is several MB
    out = fs.path / "out"
    done, gone_after = run_cmd(dump_cmd(big_archive, out))
    assert done.returncode == EXIT_OUTDIR, done.stderr
    check_one_line(done.stderr, out, FULL, WAY_ON)
    check_no_half_files(out)
    assert 0 < len(records(out)) < len(reference)  # it did stop mid-run
    if (out / "summary.json").exists():  # written if the space freed by the cut allowed it
        summary = json.loads((out / "summary.json").read_text())
        assert summary["interrupted"] is True and FULL in summary["error"]
    print(f"disk full: every process gone {gone_after:.2f} s after exit")
    fs.grow()
    check_resume(big_archive, out, reference)


def test_disk_full_parquet(big_archive, clean_parquet, small_fs):
    (ref_rows, ref_errors), _ = clean_parquet
    fs = small_fs("100k")
    out = fs.path / "out"
    done, _ = run_cmd(parquet_cmd(big_archive, out, DEFAULT))
    assert done.returncode == EXIT_OUTDIR, done.stderr
    check_one_line(done.stderr, out, FULL, WAY_ON)
    assert not list(out.glob(".*.tmp")), "the temporary part was left filling the disk"
    fs.grow()
    resumed = subprocess.run(parquet_cmd(big_archive, out, DEFAULT, "--resume"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert rows_and_errors(out) == (ref_rows, ref_errors)  # each file once, rows as a clean run


@pytest.fixture
def ext4_image(tmp_path):
    """An ext4 filesystem on a loop device, mounted errors=remount-ro; its sysfs trigger."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("an ext4 loop device needs root and mkfs.ext4")
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as fp:
        fp.truncate(64 << 20)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True,
                       timeout=120)
        mount("-o", "loop,errors=remount-ro", str(image), str(mnt))
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot mount an ext4 loop device here: {exc}")
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mnt)], capture_output=True,
                            text=True, check=True).stdout.strip()
    trigger = Path("/sys/fs/ext4") / os.path.basename(device) / "trigger_fs_error"
    try:
        if not trigger.exists():
            pytest.skip("this kernel has no ext4 trigger_fs_error")
        yield mnt, trigger
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


def stop_mid_run(archive, out: Path, act, reason: str, way_on: str) -> None:
    """Start a run, ``act`` on its OUTDIR mid-run, then check it ended with exit 74, one
    line naming ``reason`` and ``way_on``, and no process left."""
    proc, rest = start_run(archive, out)
    act()
    _, stderr = proc.communicate("".join(f"{p}\n" for p in rest), timeout=600)
    wait_all_gone(proc.pid)
    assert proc.returncode == EXIT_OUTDIR, stderr
    check_one_line(stderr, out, reason, way_on)


def test_filesystem_turning_read_only_mid_run(big_archive, reference, ext4_image, tmp_path):
    mnt, trigger = ext4_image
    out = mnt / "out"
    # an ext4 error: the kernel remounts it read-only, as on bad disks
    stop_mid_run(big_archive, out, lambda: trigger.write_text("1"), "Read-only file system",
                 "make its filesystem writable again (or copy OUTDIR to one that is), then "
                 "run the same command with --resume on it")
    check_no_half_files(out, cut_tail_ok=True)
    moved = tmp_path / "moved"  # the way on: OUTDIR copied to a writable disk
    shutil.copytree(out, moved)
    check_resume(big_archive, moved, reference)


def test_outdir_removed_mid_run(big_archive, reference, tmp_path):
    out = tmp_path / "out"
    # a cleanup job, a user in the wrong directory
    stop_mid_run(big_archive, out, lambda: shutil.rmtree(out), "No such file or directory",
                 "OUTDIR or a file in it was removed during the run; run the same command "
                 "with --resume to finish what is left")
    assert not out.exists()  # not made again, holding only a summary
    check_resume(big_archive, out, reference)


def test_library_raises_typed_error(small_fs):
    fs = small_fs("64k")
    files = [pydicom_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")] * 10
    copies = fs.path.parent / "copies"
    copies.mkdir()
    for i, f in enumerate(files):  # 30 different paths, ~1 MB of records
        shutil.copy(f, copies / f"{i:02}_{os.path.basename(f)}")
    with pytest.raises(OutputWriteError) as caught:
        fastdump.dump([copies], fs.path / "out", jobs=1, progress=False)
    exc = caught.value
    assert isinstance(exc, OutputDirError) and isinstance(exc, FastdumpError)
    assert exc.errno == errno.ENOSPC and exc.out_dir == str(fs.path / "out")
    assert exc.exit_code == EXIT_OUTDIR and WAY_ON in str(exc)
    check_no_half_files(fs.path / "out")


def test_line_file_keeps_only_whole_lines_when_the_disk_fills(small_fs):
    fs = small_fs("64k")
    path = fs.path / "lines.jsonl"
    line = b'{"path":"' + b"x" * 990 + b'"}\n'  # 1,003 bytes: never a multiple of a page
    lines = LineFile(path)
    with pytest.raises(OSError) as caught:
        for _ in range(1000):
            lines.write(line)
            lines.flush()
    assert caught.value.errno == errno.ENOSPC
    data = path.read_bytes()
    assert data and len(data) % len(line) == 0 and data == line * (len(data) // len(line))
    lines.close()


READ_ONLY = "Read-only file system"


def named_file(stderr: str) -> str:
    """The file a one-line OUTDIR error names, in parentheses after the reason."""
    return stderr[stderr.index("(") + 1:stderr.index(")")]


def test_overwrite_on_a_read_only_filesystem_names_the_file_it_could_not_delete(small_fs):
    # (before: "(../../_summary.json)", shutil.rmtree's name of it taken relative to
    # the current directory, not to OUTDIR)
    fs = small_fs("4m")
    out = fs.path / "out"
    src = pydicom_file("CT_small.dcm")
    fastdump.dump([src], out, format="parquet", jobs=1, progress=False)
    mount("-o", "remount,ro", str(fs.path))
    result = subprocess.run(dump_cmd(src, out, "--overwrite", "--format", "parquet"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_OUTDIR
    check_one_line(result.stderr, out, READ_ONLY, "then run the same command with --resume on it")
    assert (out / named_file(result.stderr)).is_file()


def test_an_outdir_that_cannot_be_made_names_the_folder_that_could_not(small_fs):
    # (before: "(..)", the parent's path taken relative to OUTDIR)
    fs = small_fs("1m")
    mount("-o", "remount,ro", str(fs.path))
    out = fs.path / "new" / "out"
    result = subprocess.run(dump_cmd(pydicom_file("CT_small.dcm"), out), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == EXIT_OUTDIR
    check_one_line(result.stderr, out, READ_ONLY, "then run the same command with --resume on it")
    assert named_file(result.stderr) == str(fs.path / "new")


def test_an_outdir_below_a_file_is_refused_as_a_request(tmp_path):
    # (before: exit 74, "Not a directory (.); fix the disk, then run the same command with
    # --resume", as if the disk had failed)
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    result = subprocess.run(dump_cmd(pydicom_file("CT_small.dcm"), out), capture_output=True,
                            text=True, timeout=300)
    assert (result.returncode, result.stderr) == (
        2, f"fastdump: error: OUTDIR {out} cannot be made: {tmp_path / 'afile'} is a file, "
           "not a directory\n")
    assert (tmp_path / "afile").read_text() == "x"


def test_a_write_that_fails_names_its_file_not_the_temporary(tmp_path):
    from fastdump.outdir import atomic_write, output_error

    target = tmp_path / "gone" / "summary.json"  # its folder is not there
    with pytest.raises(FileNotFoundError) as caught:
        atomic_write(target, b"{}", parents=False)
    assert caught.value.filename == str(target)
    message = str(output_error(tmp_path, caught.value))
    assert "(gone/summary.json)" in message
    assert "(.)" not in str(output_error(tmp_path, OSError(errno.EROFS, "ro", str(tmp_path))))
