"""Killed Parquet runs: SIGKILL of a real ``--format parquet`` run at random moments,
sometimes of its resume too, then ``--resume``: every file once, every row equal
to a clean run's.

Rounds either keep the default part size (one part, closed at the end: a kill
loses the open part) or close a part every 150 rows in row groups of 50, where
the kill comes at a random time, while a part is being written, or between a
part's rename into place and its ledger lines (the rename is followed by a
pause there, standing in for a slow disk, so that this narrow moment is hit).
FASTDUMP_KILL_ROUNDS sets the rounds (CI: 3; use at least 10 for a real check).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("duckdb")

from .. import test_runner_kill  # noqa: E402
from ..helpers import read_jsonl as jsonl  # noqa: E402
from .test_parquet import check_accounting, everything  # noqa: E402

ROUNDS = int(os.environ.get("FASTDUMP_KILL_ROUNDS", "3"))
big_archive = test_runner_kill.big_archive  # ~2,000 of pydicom's files, in 20 folders

# The command, with the part and row-group sizes of the round, and optionally a
# pause after each part's rename (only in this child process).
_RUN = """
import os, sys, time
import fastdump.formats.parquet as p
p.PART_ROWS, p.ROW_GROUP_ROWS = {sizes}
if {pause}:
    rename = os.replace
    def replace(src, dst):
        rename(src, dst)
        if str(dst).endswith(".parquet"):
            time.sleep({pause})
    os.replace = replace
from fastdump.cli import run
sys.argv[0] = "fastdump"
run()
"""
DEFAULT = (100_000, 4096)
SMALL = (150, 50)


def parquet_cmd(root, out, sizes, *extra, pause: float = 0.0):
    return [sys.executable, "-c", _RUN.format(sizes=sizes, pause=pause), "dump", str(root),
            "-o", str(out), "--format", "parquet", "--no-progress", "--jobs", "2", *extra]


def part_not_listed(out) -> bool:
    """A part renamed into place whose ledger lines are not (all) written yet."""
    index = out / "_index.jsonl"
    listed = {e["part"] for e in jsonl(index)} if index.exists() else set()
    return any(part.name not in listed for part in out.glob("part-*.parquet"))


def part_being_written(out) -> bool:
    return any(tmp.stat().st_size for tmp in out.glob(".part-*.parquet.tmp"))


def rows_and_errors(out) -> tuple[dict, dict]:
    return everything(out), {e["path"]: e for e in jsonl(out / "_errors.jsonl")}


@pytest.fixture(scope="module")
def clean(big_archive, tmp_path_factory):
    """A clean run's rows and errors, and how long it took."""
    out = tmp_path_factory.mktemp("pq-ref") / "out"
    started = time.monotonic()
    subprocess.run(parquet_cmd(big_archive, out, DEFAULT), check=True, timeout=600,
                   capture_output=True)
    seconds = time.monotonic() - started
    return rows_and_errors(check_and_return(out, big_archive)), seconds


def check_and_return(out, archive):
    check_accounting(out, archive)
    return out


def kill_when(cmd, out, condition) -> bool:
    """Run cmd in its own process group; SIGKILL the group once ``condition(out)``
    holds. True if it was killed (it had not finished)."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while proc.poll() is None:
        assert time.monotonic() < deadline, "a dump hung"
        try:
            hit = condition(out)
        except (OSError, ValueError):  # a file read while it is renamed or written
            hit = False
        if hit:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            forget_semaphores(proc.pid)
            return True
        time.sleep(0.002)
    return False


def forget_semaphores(pid: int) -> None:
    """The kill took loky's resource tracker too: unlink the named semaphores it
    would have (a power cut clears them; a test machine keeps them until reboot)."""
    for sem in Path("/dev/shm").glob(f"sem.loky-{pid}-*"):
        sem.unlink(missing_ok=True)


def after(seconds: float):
    started = time.monotonic()
    return lambda out: time.monotonic() - started >= seconds


def test_kill_parquet_runs_then_resume(big_archive, clean, tmp_path):
    (ref_rows, ref_errors), seconds = clean
    rng = random.Random(20261130)
    killed = 0
    # the narrowest moments first, so that CI's 3 rounds cover them
    modes = ["after-rename", "in-part", "time-default", "start", "time-small"]
    for round_no in range(ROUNDS):
        out = tmp_path / f"out{round_no}"
        mode = modes[round_no % len(modes)] if round_no < len(modes) else rng.choice(modes)
        sizes = DEFAULT if mode in ("start", "time-default") else SMALL
        pause = 0.2 if mode == "after-rename" else 0.0
        condition = {"start": lambda out: True,
                     "in-part": part_being_written,
                     "after-rename": part_not_listed}.get(mode)
        if condition is None:
            condition = after(rng.uniform(0.2, 1.0) * seconds)
        killed += kill_when(parquet_cmd(big_archive, out, sizes, pause=pause), out, condition)
        if out.exists() and rng.random() < 0.5:  # kill the resume too, during its repair or later
            kill_when(parquet_cmd(big_archive, out, sizes, "--resume", pause=pause), out,
                      after(rng.uniform(0.0, 0.5) * seconds))
        cmd = parquet_cmd(big_archive, out, sizes, *(["--resume"] if out.exists() else []))
        done = subprocess.run(cmd, timeout=600, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        rows, errors = rows_and_errors(check_and_return(out, big_archive))  # each file once
        assert rows == ref_rows, f"round {round_no} ({mode}): rows differ from a clean run's"
        assert errors == ref_errors
    assert killed >= max(1, ROUNDS // 2), "the runs finished before they could be killed"
    print(f"parquet kill -9 and resume: {ROUNDS} rounds, {killed} killed mid-run, "
          "0 lost, 0 duplicated")
