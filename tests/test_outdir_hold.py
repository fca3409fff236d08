"""One run at a time in an OUTDIR: a second one (the same command started twice, a
--resume while the first still runs) would write every file twice."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

import fastdump
from fastdump.errors import OutputDirError
from fastdump.outdir import holding

from .conftest import pydicom_file
from .helpers import run_cli

BUSY = "is in use by another fastdump run: wait for it to end (or stop it), then run this " \
       "command again"

# What a run does with OUTDIR, in a process of its own that then waits to be killed
HOLDER = """
import sys, time
from pathlib import Path
from fastdump.outdir import holding
with holding(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def dumped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        shutil.copy(pydicom_file(name), src / name)
    out = tmp_path / "out"
    fastdump.dump([src], out, progress=False)
    return src, out


def test_a_held_outdir_is_refused_untouched_and_free_once_its_run_is_killed(dumped):
    src, out = dumped
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for how in ("--resume", "--overwrite"):
            result = run_cli("dump", src, "-o", out, "--no-progress", how)
            assert (result.returncode, result.stdout) == (2, "")
            assert result.stderr == f"fastdump: error: OUTDIR {out} {BUSY}\n"
            assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the system dropped the lock with its process: nothing to clean up before --resume
    summary = fastdump.dump([src], out, resume=True, progress=False)
    assert (summary.unchanged, summary.new) == (3, 0)


def test_the_library_raises_a_typed_error_and_a_run_ends_holding_nothing(dumped):
    src, out = dumped
    with holding(out):
        with pytest.raises(OutputDirError, match="in use by another fastdump run"):
            fastdump.dump([src], out, resume=True, progress=False)
    summary = fastdump.dump([src], out, overwrite=True, progress=False)
    assert summary.ok == 3
    with holding(out):  # the run above let go of its OUTDIR (emptied by --overwrite)
        pass
