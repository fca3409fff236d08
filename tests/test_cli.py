"""The fastdump command, through its real entry points."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fastdump.cli import main
from fastdump.formats import get_format

from .conftest import pydicom_file, regular_files
from .helpers import jsonl_lines, output_lines, output_records, run_cli


def test_console_script_dumps_an_archive(archive, tmp_path):
    result = run_cli("dump", archive, "-o", tmp_path / "o", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "dumped" in result.stderr and "errors.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    summary = orjson.loads((tmp_path / "o" / "summary.json").read_bytes())
    assert summary["files"] == len(regular_files(archive))


def test_python_m_fastdump_and_files_from_stdin(archive, tmp_path):
    listing = f"{archive / 'study' / 'series1' / 'IM0001'}\n{pydicom_file('MR_small.dcm')}\n"
    result = run_cli("dump", "--files-from", "-", "-o", tmp_path / "o", "--no-progress",
                     stdin=listing, module=True)
    assert result.returncode == 0, result.stderr
    assert len(jsonl_lines(tmp_path / "o" / "dump.jsonl")) == 2
    assert "file/s" not in result.stderr  # --no-progress: no bar


def test_files_from_stdin_keeps_names_that_are_not_utf8(tmp_path):
    # In a UTF-8 locale (en_US.UTF-8) Python's stdin decodes strictly: a Latin-1 name
    # in `find | fastdump dump --files-from -` ended the run with a traceback.
    raw = os.fsencode(tmp_path)
    name = os.path.join(raw, b"caf\xe9.dcm")
    shutil.copy(pydicom_file("CT_small.dcm"), name)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as such a locale does
    result = run_cli("dump", "--files-from", "-", "-o", tmp_path / "o", "--no-progress",
                     stdin=name + b"\r\n\n", text=False, env=env)
    assert result.returncode == 0, result.stderr.decode()
    (line,) = jsonl_lines(tmp_path / "o" / "dump.jsonl")
    assert base64.b64decode(orjson.loads(line)["path_base64"]) == name


def test_files_from_a_terminal_says_it_waits_for_paths(tmp_path):
    import pty
    import subprocess

    from .helpers import cli_command

    master, slave = pty.openpty()
    with subprocess.Popen(cli_command("dump", "--files-from", "-", "-o", tmp_path / "o",
                                      "--no-progress"),
                          stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        os.close(slave)
        os.write(master, os.fsencode(pydicom_file("CT_small.dcm")) + b"\n\x04")  # Ctrl-D
        err = proc.communicate(timeout=120)[1].decode()
    os.close(master)
    assert proc.returncode == 0, err
    assert "reading paths from standard input" in err and "Ctrl-D" in err
    assert len(jsonl_lines(tmp_path / "o" / "dump.jsonl")) == 1


def test_files_from_a_closed_stdin_is_a_usage_error(tmp_path):
    import subprocess

    from .helpers import cli_command

    result = subprocess.run(cli_command("dump", "--files-from", "-", "-o", tmp_path / "o"),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            preexec_fn=lambda: os.close(0), timeout=120)
    assert result.returncode == 2, result.stderr
    closed = "cannot read --files-from -: standard input is closed"
    assert result.stderr == f"fastdump: error: {closed}\n"
    assert not (tmp_path / "o").exists()


def wait_for(out, count: int, proc) -> None:
    import time

    deadline = time.monotonic() + 60
    while len(output_lines(out)) < count:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{len(output_lines(out))} of {count} files written"
        time.sleep(0.05)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_files_from_a_slow_pipe_are_written_while_it_stays_open(jobs, tmp_path):
    # `find` over a slow disk feeding --files-from -: the files it has named are read
    # and written while it looks for more. (A batch not yet full waited for more names,
    # and batches already read were not written, until more came or the pipe closed:
    # with workers not started yet, for good.)
    import subprocess

    from .helpers import cli_command

    sources = [p for p in sorted(regular_files(os.path.dirname(pydicom_file("CT_small.dcm"))))
               if p.endswith(".dcm") and os.path.getsize(p) < 200_000]
    files = [str(tmp_path / f"{i:03}.dcm") for i in range(200)]
    for i, name in enumerate(files):
        shutil.copy(sources[i % len(sources)], name)
    out = tmp_path / "o"
    with subprocess.Popen(cli_command("dump", "--files-from", "-", "-o", out, "--no-progress",
                                      "--jobs", jobs),
                          stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        for named in (100, len(files)):  # the pipe stays open after each
            proc.stdin.write(b"".join(os.fsencode(f) + b"\n" for f in files[named - 100:named]))
            proc.stdin.flush()
            wait_for(out, named, proc)
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert sorted(rec["path"] for rec in output_records(out)) == sorted(files)


@pytest.mark.parametrize("args, message", [
    (["dump", "/no/such/dir", "-o", "{tmp}/o"], "no such file or directory: /no/such/dir"),
    (["dump", "{ct}", "-o", "{ct}"], "is a file"),
    (["dump", "{ct}", "-o", "{tmp}/o", "--bulk-threshold", "-1"], "--bulk-threshold"),
    (["dump", "-o", "{tmp}/o"], "give at least one PATH"),
    (["dump", "{ct}", "-o", "{tmp}/o", "--files-from", "/no/list"], "cannot read --files-from"),
    (["dump", "{ct}", "-o", "{tmp}/o", "--resume", "--overwrite"], "exclude each other"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, ct=pydicom_file("CT_small.dcm")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("fastdump: error:")


def test_second_run_needs_resume_or_overwrite(tmp_path):
    ct = pydicom_file("CT_small.dcm")
    assert run_cli("dump", ct, "-o", tmp_path / "o").returncode == 0
    again = run_cli("dump", ct, "-o", tmp_path / "o")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli("dump", ct, "-o", tmp_path / "o", "--resume")
    assert resumed.returncode == 0 and "1 unchanged" in resumed.stderr
    assert run_cli("dump", ct, "-o", tmp_path / "o", "--overwrite").returncode == 0


def test_a_resume_with_other_read_options_is_refused_and_nothing_is_mixed(tmp_path, capsys):
    """Records of --tags, --bulk-threshold or --bulk-any-vr runs differ: OUTDIR keeps one kind."""
    files = [pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")]
    out = tmp_path / "o"
    assert main(["dump", files[0], "-o", str(out), "--tags", "PatientID,Modality",
                 "--no-progress"]) == 0
    before = (out / "dump.jsonl").read_bytes()
    capsys.readouterr()
    for other in ([], ["--tags", "PatientID"], ["--tags", "PatientID,Modality", "--bulk-any-vr"],
                  ["--tags", "PatientID,Modality", "--bulk-threshold", "0"]):
        assert main(["dump", *files, "-o", str(out), "--resume", "--no-progress", *other]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "was dumped with --tags 00080060,00100020 " in err, err
        assert (out / "dump.jsonl").read_bytes() == before
    # the same options, in another order, resume it; and the new file's record is a selection too
    assert main(["dump", *files, "-o", str(out), "--resume", "--no-progress",
                 "--tags", "(0008,0060),PatientID", "--bulk-threshold", "1024"]) == 0
    records = output_records(out)
    assert len(records) == 2 and all(set(r["dataset"]) <= {"00080060", "00100020"}
                                     for r in records)


def test_an_outdir_of_an_older_fastdump_resumes_with_any_options(tmp_path):
    ct = pydicom_file("CT_small.dcm")
    out = tmp_path / "o"
    assert main(["dump", ct, "-o", str(out), "--no-progress"]) == 0
    manifest = orjson.loads((out / "fastdump.json").read_bytes())
    assert manifest.pop("read") == {"tags": None, "bulk_threshold": 1024, "bulk_any_vr": False}
    # as fastdump wrote it before it kept the options
    (out / "fastdump.json").write_bytes(orjson.dumps(manifest))
    assert main(["dump", ct, "-o", str(out), "--no-progress", "--resume",
                 "--bulk-threshold", "0"]) == 0
    read = orjson.loads((out / "fastdump.json").read_bytes())["read"]
    assert read["bulk_threshold"] == 0  # from now on it is known


def test_help_explains_every_option():
    result = run_cli("dump", "--help")
    assert result.returncode == 0
    for option in ("--format", "--jobs", "--files-from", "--bulk-threshold", "--resume",
                   "--overwrite", "--no-progress", "--follow-symlinks", "--file-timeout"):
        assert option in result.stdout


def test_help_names_every_exit_code_the_readme_gives():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("Exit codes (see")[1].split("\n\n")[1]
    codes = {row.split("|")[1].strip() for row in table.splitlines()[2:]}
    assert {"0", "2", "71", "74"} <= codes  # the table as parsed: its rows' codes
    codes.discard("128 + N")
    codes |= {"130", "143", "129", "141"}  # the signals that row names
    help_text = " ".join(run_cli("dump", "--help").stdout.split())
    for code in codes:
        assert f" {code} " in help_text, code


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_skipped_entries_are_named_in_the_summary(tmp_path, fmt):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "ct.dcm").write_bytes(open(pydicom_file("CT_small.dcm"), "rb").read())
    (archive / "empty.dcm").touch()  # an error
    (archive / "link.dcm").symlink_to(archive / "ct.dcm")
    os.mkfifo(archive / "pipe.dcm")
    out = tmp_path / "o"
    result = run_cli("dump", archive, "-o", out, "--format", fmt, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "1 dumped, 1 errors, 2 skipped" in result.stderr
    files = get_format(fmt).files  # (Parquet's start with "_")
    # the lines name the files where they are
    assert f"see {out / files.errors} for the files that could not be read (1 NotDicomError)" \
        in result.stderr
    assert f"{out / files.summary} names the entries skipped" in result.stderr
    assert "folder markers (keys ending in /)" in result.stderr  # (S3: the only kind there)
    summary = orjson.loads((out / files.summary).read_bytes())
    assert (summary["files"], summary["ok"], summary["skipped"]) == (2, 1, 2)
    assert summary["skipped_examples"] == [
        {"path": str(archive / "link.dcm"), "reason": "symlink (use --follow-symlinks to follow)"},
        {"path": str(archive / "pipe.dcm"), "reason": "not a regular file"},
    ]
    assert len(jsonl_lines(out / files.errors)) == 1


def test_errors_on_standard_output_are_pointed_to_there(tmp_path):
    (tmp_path / "empty.dcm").touch()
    result = run_cli("dump", tmp_path / "empty.dcm", "-o", "-", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["error"].startswith("NotDicomError")
    assert 'lines with an "error" key on standard output' in result.stderr
    assert "errors.jsonl" not in result.stderr


def test_names_that_are_not_utf8_give_json_every_tool_reads(tmp_path):
    """Latin-1 names from an old export: the lines stay valid UTF-8 (DuckDB read none of
    dump.jsonl for one such name), the exact names stay in path_base64 for --resume."""
    import duckdb

    archive = tmp_path / "archive"
    archive.mkdir()
    raw = os.fsencode(archive)
    shutil.copy(pydicom_file("CT_small.dcm"), os.path.join(raw, b"caf\xe9.dcm"))
    with open(os.path.join(raw, b"not dicom \xe9.txt"), "wb") as fp:
        fp.write(b"plain text")
    os.mkfifo(os.path.join(raw, b"pipe\xff"))  # skipped: named in summary.json
    out = tmp_path / "o"
    result = run_cli("dump", archive, "-o", out, "--no-progress")
    assert result.returncode == 0, result.stderr  # it was a traceback writing summary.json
    assert "1 dumped, 1 errors, 1 skipped" in result.stderr
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["skipped_examples"][0]["path"] == str(archive / "pipe\\xff")
    for name, shown, exact in (("dump.jsonl", "caf\\xe9.dcm", b"caf\xe9.dcm"),
                               ("errors.jsonl", "not dicom \\xe9.txt", b"not dicom \xe9.txt")):
        ((path, path_base64),) = duckdb.sql(
            f"select path, path_base64 from read_json_auto('{out / name}')").fetchall()
        assert path == str(archive / shown)
        assert base64.b64decode(path_base64) == os.path.join(raw, exact)
    again = run_cli("dump", archive, "-o", out, "--resume", "--no-progress")
    assert again.returncode == 0 and "2 unchanged" in again.stderr, again.stderr
    os.remove(os.path.join(raw, b"caf\xe9.dcm"))
    again = run_cli("dump", archive, "-o", out, "--resume", "--no-progress")
    assert "1 unchanged, 1 gone" in again.stderr, again.stderr
    assert jsonl_lines(out / "dump.jsonl") == []


def test_a_dump_runs_numpys_blas_on_one_thread_in_its_own_process_too(tmp_path):
    # joblib imports numpy in the parent, and loky's resource tracker inherits its
    # environment: neither computes anything with it. A value the user set is kept.
    code = ("import os, sys; from fastdump.cli import main; "
            f"assert main(['dump', {pydicom_file('CT_small.dcm')!r}, '-o', sys.argv[1], "
            "'--no-progress']) == 0; import numpy; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for chosen, expected in [(None, "1 1"), ("2", "2")]:
        if chosen is not None:
            env["OPENBLAS_NUM_THREADS"] = chosen
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"o{chosen}")],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[:len(expected.split())] == expected.split()


@pytest.mark.parametrize("option, told", [
    (("--file-timeout", "nan"), "--file-timeout must be a number of seconds more than 0"),
    (("--file-timeout", "inf"), "--file-timeout must be a number of seconds more than 0"),
    (("--jobs", "100000"), "--jobs 100000 is more worker processes than this machine"),
])
def test_options_no_run_could_use_are_refused_before_anything_is_read(tmp_path, option, told):
    # (before: every file an error line with nan or inf, and exit 0; 100,000 workers
    # brought the kernel's out-of-memory killer on the machine)
    result = run_cli("dump", pydicom_file("CT_small.dcm"), "-o", tmp_path / "o", *option)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"fastdump: error: {told}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_the_closing_line_keeps_small_figures_readable():
    """Short runs and slow ones: not 'in 0.0 s' or '(0 files/s' (before, both rounded away)."""
    from fastdump.cli import _short

    assert [_short(x) for x in (0.046, 0.5, 0.0, 1.0, 12.345)] == ["0.046", "0.5", "0.0", "1.0",
                                                                  "12.3"]
    assert [_short(x, 0) for x in (0.5, 4093.3)] == ["0.5", "4093"]


def test_an_interrupted_run_to_standard_output_is_not_told_to_resume(capsys):
    """--resume needs an OUTDIR: with -o - it was refused after being suggested."""
    from fastdump.cli import _report
    from fastdump.types import Summary

    for out_dir, told in (("-", "--resume needs an OUTDIR"), ("out", "--resume to finish")):
        _report(Summary(out_dir=out_dir, format="jsonl", interrupted=True, signal="SIGTERM"))
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.startswith("fastdump: interrupted by SIGTERM; ") and told in last, last
