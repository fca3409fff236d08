"""-o -: JSON Lines on standard output, through the real console script."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

import fastdump

from ..conftest import regular_files
from ..helpers import cli_command, output_lines, parse_line, run_cli


def test_records_and_errors_go_to_stdout(archive, tmp_path):
    result = run_cli("dump", archive, "-o", "-", "-j", "2", text=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [parse_line(line) for line in result.stdout.splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(regular_files(archive))
    errors = [r for r in lines if "error" in r]
    assert len(errors) >= 4 and all(set(r) >= {"path", "size", "mtime"} for r in errors)
    assert all("dataset" in r for r in lines if "error" not in r)
    # the same lines as dump.jsonl + errors.jsonl of a run into an OUTDIR
    out = tmp_path / "out"
    fastdump.dump([archive], out, jobs=2, progress=False)
    assert sorted(result.stdout.splitlines()) == sorted(output_lines(out))
    # the summary on stderr, nothing on disk
    assert b"dumped" in result.stderr and b"errors" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs an OUTDIR"),
    (["--format", "parquet"], "--format parquet writes files"),
    (["--format", "tags"], "--format tags writes files"),
])
def test_what_stdout_cannot_do_is_refused(archive, tmp_path, args, message):
    result = run_cli("dump", archive, "-o", "-", *args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and result.stdout == ""


def test_a_reader_that_goes_away_ends_the_run_quietly(archive, tmp_path):
    # fastdump ... -o - | head -3
    proc = subprocess.Popen(cli_command("dump", archive, archive, "-o", "-", "-j", "1",
                                        "--no-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert all(parse_line(line)["path"] for line in first)
    assert proc.returncode == 128 + signal.SIGPIPE
    assert b"Traceback" not in err and b"Error" not in err, err


def test_a_closed_standard_output_is_one_line_and_exit_74(archive, tmp_path):
    # fastdump dump ... -o - >&-: Python starts with sys.stdout None
    command = ["sh", "-c", 'exec "$@" >&-', "sh", *cli_command("dump", archive, "-o", "-")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 74, result.stderr
    assert result.stderr.strip().splitlines() == [
        "fastdump: error: cannot write to standard output: it is closed; open it (| jq, > FILE) "
        "or give an OUTDIR"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_standard_output_is_one_line_and_exit_74_without_resume_advice(archive,
                                                                               tmp_path):
    with open("/dev/full", "wb") as full:
        result = subprocess.run(cli_command("dump", archive, "-o", "-", "-j", "1"),
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                                cwd=tmp_path)
    assert result.returncode == 74, result.stderr
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("fastdump: error: cannot write to standard output: No space left")
    assert "--resume" not in first.replace("to be able to --resume", "")
    assert "Traceback" not in result.stderr and not rest, result.stderr


def test_library_writes_to_stdout(archive, capfdbinary):
    summary = fastdump.dump([archive / "study"], "-", jobs=1, progress=False)
    out = capfdbinary.readouterr().out
    assert summary.ok == 2 and summary.out_dir == "-"
    assert len(out.splitlines()) == 2
