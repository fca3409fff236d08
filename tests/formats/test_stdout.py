"""-o -: JSON Lines on standard output, through the real console script."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

import fastdump

from ..conftest import regular_files


def fastdump_exe() -> str:
    return shutil.which("fastdump") or os.path.join(os.path.dirname(sys.executable), "fastdump")


def test_records_and_errors_go_to_stdout(archive, tmp_path):
    result = subprocess.run([fastdump_exe(), "dump", str(archive), "-o", "-", "-j", "2"],
                            capture_output=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(regular_files(archive))
    errors = [r for r in lines if "error" in r]
    assert len(errors) >= 4 and all(set(r) >= {"path", "size", "mtime"} for r in errors)
    assert all("dataset" in r for r in lines if "error" not in r)
    # the same lines as dump.jsonl + errors.jsonl of a run into an OUTDIR
    out = tmp_path / "out"
    fastdump.dump([archive], out, jobs=2, progress=False)
    on_disk = (out / "dump.jsonl").read_bytes() + (out / "errors.jsonl").read_bytes()
    assert sorted(result.stdout.splitlines()) == sorted(on_disk.splitlines())
    # the summary on stderr, nothing on disk
    assert b"dumped" in result.stderr and b"errors" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs an OUTDIR"),
    (["--format", "parquet"], "--format parquet writes files"),
    (["--format", "tags"], "--format tags writes files"),
])
def test_what_stdout_cannot_do_is_refused(archive, tmp_path, args, message):
    result = subprocess.run([fastdump_exe(), "dump", str(archive), "-o", "-", *args],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and result.stdout == ""


def test_a_reader_that_goes_away_ends_the_run_quietly(archive, tmp_path):
    # fastdump ... -o - | head -3
    proc = subprocess.Popen([fastdump_exe(), "dump", str(archive), str(archive), "-o", "-",
                             "-j", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert all(json.loads(line)["path"] for line in first)
    assert proc.returncode == 128 + signal.SIGPIPE
    assert b"Traceback" not in err and b"Error" not in err, err


def test_library_writes_to_stdout(archive, capfdbinary):
    summary = fastdump.dump([archive / "study"], "-", jobs=1, progress=False)
    out = capfdbinary.readouterr().out
    assert summary.ok == 2 and summary.out_dir == "-"
    assert len(out.splitlines()) == 2
