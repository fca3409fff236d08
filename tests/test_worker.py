"""The worker: a batch of files -> one outcome per file, whatever happens to the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

from fastdump import worker
from fastdump.source import LocalReadAhead
from fastdump.types import Entry, Lines, Options
from fastdump.worker import process_batch

from .conftest import pydicom_file, pydicom_path_file


def test_file_deleted_or_changed_after_the_walk(tmp_path):
    gone, changed = tmp_path / "gone.dcm", tmp_path / "changed.dcm"
    shutil.copy(pydicom_file("CT_small.dcm"), gone)
    shutil.copy(pydicom_file("CT_small.dcm"), changed)
    entries = [Entry(str(p), p.stat().st_size, p.stat().st_mtime) for p in (gone, changed)]
    gone.unlink()
    shutil.copy(pydicom_file("MR_small.dcm"), changed)
    lost, updated = process_batch(entries, Options())
    assert "deleted or moved after the walk" in orjson.loads(lost.error_line)["error"]
    record = orjson.loads(updated.payload)
    assert (record["size"], record["mtime"]) == (changed.stat().st_size, changed.stat().st_mtime)
    assert record["dataset"]["00080060"]["Value"] == ["MR"]


def test_a_file_replaced_by_a_fifo_after_the_walk_is_an_error_not_a_wait(tmp_path):
    # Opening a FIFO for reading blocks until a writer comes: neither the read nor the
    # read-ahead hint of the file before it may open it.
    first, swapped = tmp_path / "first.dcm", tmp_path / "swapped.dcm"
    for path in (first, swapped):
        shutil.copy(pydicom_file("CT_small.dcm"), path)
    entries = [Entry(str(p), p.stat().st_size, p.stat().st_mtime) for p in (first, swapped)]
    swapped.unlink()
    os.mkfifo(swapped)
    started = time.monotonic()
    read, fifo = process_batch(entries, Options(file_timeout=20))
    assert time.monotonic() - started < 10
    assert orjson.loads(read.payload)["dataset"]["00080060"]["Value"] == ["CT"]
    assert orjson.loads(fifo.error_line)["error"] == (
        "OSError: not a regular file any more: it was replaced after the walk found it")


def test_read_ahead_hints_do_not_open_a_fifo_blocking(tmp_path):
    first, fifo = tmp_path / "first.dcm", tmp_path / "fifo.dcm"
    shutil.copy(pydicom_file("CT_small.dcm"), first)
    os.mkfifo(fifo)
    ahead = LocalReadAhead([str(first), str(fifo)])
    outcome = subprocess.run(  # in a child: a blocking open would hang this test's process
        [sys.executable, "-c", "import sys; from fastdump.source import LocalReadAhead; "
         "LocalReadAhead(sys.argv[1:]).open(sys.argv[1])", str(first), str(fifo)],
        capture_output=True, text=True, timeout=60)
    assert outcome.returncode == 0, outcome.stderr
    assert ahead.open(str(first)) is None  # and in this process, as the worker calls it


def test_per_file_timeout_becomes_an_error_record(tmp_path):
    shutil.copy(pydicom_file("rtplan.dcm"), tmp_path / "slow.dcm")
    (outcome,) = process_batch([Entry(str(tmp_path / "slow.dcm"), 1, 1.0)],
                               Options(file_timeout=1e-6))
    assert orjson.loads(outcome.error_line)["error"].startswith("FileTimeout: reading took longer")


# Run in a fresh interpreter, where pydicom is not imported yet: the import of one of
# its modules is slowed down, so that the file's alarm goes off in the middle of the
# first `import pydicom`, which a worker makes while reading its first file that needs
# the pydicom path (conftest.pydicom_path_file).
FIRST_IMPORT_INTERRUPTED = """
import importlib.abc, json, os, sys, time
from fastdump.types import Entry, Options
from fastdump.worker import process_batch

class SlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "pydicom.dataset":
            sys.meta_path.remove(self)
            time.sleep(10)
        return None

assert "pydicom" not in sys.modules
sys.meta_path.insert(0, SlowImport())
st = os.stat(sys.argv[1])
entry = Entry(sys.argv[1], st.st_size, st.st_mtime)
outcomes = [process_batch([entry], Options(file_timeout=t))[0] for t in (0.5, 300)]
print(json.dumps([json.loads(o.error_line)["error"] if o.error_line else "ok"
                  for o in outcomes]))
"""


def test_a_timeout_during_the_first_import_of_pydicom_costs_only_that_file(tmp_path):
    # (a timeout in the middle of an import used to leave pydicom half imported, and
    # every later file of that worker failed with "partially initialized module")
    result = subprocess.run([sys.executable, "-c", FIRST_IMPORT_INTERRUPTED,
                             pydicom_path_file(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = json.loads(result.stdout)
    assert first.startswith("FileTimeout: reading took longer than 0.5 s")
    assert second == "ok", second  # the same file, in the same worker, without a timeout


def test_a_file_past_its_limit_fails_even_when_the_alarm_was_held_off(tmp_path, monkeypatch):
    # An alarm in an import only re-arms itself; the file's rest can end before the
    # next tick, and must fail all the same (seen on a fast machine: "ok").
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "a.dcm")
    entry = Entry(str(tmp_path / "a.dcm"), (tmp_path / "a.dcm").stat().st_size, 1.0)
    read = worker.try_fast_record

    def slow_read(*args):
        time.sleep(0.05)
        return read(*args)

    monkeypatch.setattr(worker.compat, "in_import", lambda frame: True)  # every tick held off
    monkeypatch.setattr(worker, "try_fast_record", slow_read)
    (outcome,) = process_batch([entry], Options(file_timeout=0.01))
    assert orjson.loads(outcome.error_line)["error"].startswith(
        "FileTimeout: reading took longer than 0.01 s")


def test_a_batch_of_lines_is_its_outcomes_packed(archive, tmp_path):
    files = [archive / "pydicom" / name for name in ("CT_small.dcm", "badVR.dcm",
                                                     "rtplan_truncated.dcm")]
    files.append(Path(pydicom_path_file(tmp_path)))
    files += [archive / "junk" / name for name in sorted(os.listdir(archive / "junk"))]
    entries = [Entry(str(p), p.stat().st_size, p.stat().st_mtime) for p in files]
    outcomes = process_batch(entries, Options())
    lines = worker.read_batch(entries, Options())
    assert isinstance(lines, Lines)
    assert lines.records == b"".join(o.payload for o in outcomes if o.error_line is None)
    assert lines.dumped == sum(o.error_line is None for o in outcomes) >= 2
    assert lines.errors == [o.error_line for o in outcomes if o.error_line is not None]
    assert lines.errors and lines.fallbacks  # junk fails; pydicom_path_file leaves the fast path
    assert lines.fallbacks == [o.fallback for o in outcomes if o.fallback is not None]
    assert lines.nbytes == sum(p.stat().st_size for p in files)
    # a format whose records are not lines gets the outcomes themselves
    tags = Options(format="tags")
    assert worker.read_batch(entries, tags) == process_batch(entries, tags)
