"""Killed runs: SIGKILL at random moments, then --resume, loses and duplicates nothing.

FASTDUMP_KILL_ROUNDS sets how many kills are tried (CI: 3; the closing note's
figures come from 20).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from .conftest import PYDICOM_FILES, regular_files
from .helpers import cli_command, output_records

ROUNDS = int(os.environ.get("FASTDUMP_KILL_ROUNDS", "3"))

pytestmark = pytest.mark.serial  # signals sent while the run is at a given point


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    """~2,000 real files: pydicom's test files copied into many series folders."""
    root = tmp_path_factory.mktemp("big")
    small = [f for f in PYDICOM_FILES if os.path.getsize(f) < 200_000]
    for i in range(2000):
        series = root / f"series{i // 100:02}"
        series.mkdir(exist_ok=True)
        shutil.copy(small[i % len(small)], series / f"im{i:05}")
    return root


def dump_cmd(root, out, *extra):
    return cli_command("dump", root, "-o", out, "--no-progress", "--jobs", "2", *extra)


def records(out) -> dict[str, list[dict]]:
    """path -> every line about it, from both files (so duplicates show)."""
    found: dict[str, list[dict]] = {}
    for rec in output_records(out):  # every line must be whole, valid JSON
        found.setdefault(rec["path"], []).append(rec)
    return found


@pytest.fixture(scope="module")
def reference(big_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    subprocess.run(dump_cmd(big_archive, out), check=True, timeout=600)
    return {path: recs[0] for path, recs in records(out).items()}


def kill_when(cmd, out, fraction: float, total: int) -> bool:
    """Run cmd in its own process group; SIGKILL the whole group once dump.jsonl holds
    `fraction` of `total` bytes (0: as soon as it starts). True if it was killed."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = out / "dump.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if fraction == 0 or (target.exists() and target.stat().st_size >= fraction * total):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    assert proc.poll() is not None, "a dump hung"
    return False


def test_kill_then_resume_loses_and_duplicates_nothing(big_archive, reference, tmp_path):
    rng = random.Random(20261125)
    total = sum(len(json.dumps(r)) for r in reference.values() if "dataset" in r)
    killed = 0
    for round_no in range(ROUNDS):
        out = tmp_path / f"out{round_no}"
        # Kill the first run at a random point of its work, sometimes the resume too.
        killed += kill_when(dump_cmd(big_archive, out), out, rng.choice([0, rng.random()]), total)
        if rng.random() < 0.5 and out.exists():
            kill_when(dump_cmd(big_archive, out, "--resume"), out, rng.uniform(0.5, 1), total)
        cmd = dump_cmd(big_archive, out, "--resume") if out.exists() else dump_cmd(big_archive, out)
        subprocess.run(cmd, check=True, timeout=300, capture_output=True)
        found = records(out)
        assert set(found) == regular_files(big_archive) == set(reference)
        assert all(len(lines) == 1 for lines in found.values()), "a file appears twice"
        assert {p: lines[0] for p, lines in found.items()} == reference
        summary = json.loads((out / "summary.json").read_bytes())  # OUTDIR's, not the run's
        assert (summary["out_dir_records"], summary["out_dir_errors"]) == (
            sum("dataset" in r for r in reference.values()),
            sum("dataset" not in r for r in reference.values())), summary
    assert killed == ROUNDS
    print(f"kill -9 and resume: {ROUNDS} rounds, {killed} killed, 0 lost, 0 duplicated")


def default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_resume_finishes(big_archive, reference, tmp_path):
    out = tmp_path / "out"
    # The paths come from a pipe that stays open until after Ctrl-C: however fast
    # the machine, the run cannot have finished when the signal arrives.
    cmd = dump_cmd(big_archive, out, "--jobs", "1", "--files-from", "-")
    cmd.remove(str(big_archive))
    # Ctrl-C as in a terminal, even when these tests run in the background, where
    # the shell makes everything started ignore SIGINT (CI may do that too).
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    paths = sorted(regular_files(big_archive))
    proc.stdin.write("".join(f"{p}\n" for p in paths[:len(paths) // 2]))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not (out / "dump.jsonl").exists() or not (out / "dump.jsonl").stat().st_size:
        assert time.monotonic() < deadline and proc.poll() is None, "the dump never started"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends, once work is under way
    proc.wait(timeout=30)  # (the pipe is still open: only the signal can end the run)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    subprocess.run(dump_cmd(big_archive, out, "--resume"), check=True, timeout=600)
    assert {p: lines[0] for p, lines in records(out).items()} == reference
