"""A file that hangs a Dask worker thread becomes an error record, and the run goes on.

On a Dask worker a task runs in a thread, where no per-file alarm reaches: the
client's watchdog notices the batch outliving its deadline, restarts the
worker through its nanny, and reads the batch's files one task each, so the
file that hangs is named in errors.jsonl (FileTimeout) and the rest are dumped.
A real scheduler and one worker with a nanny, so every file read alone goes to
a worker restarted a moment before.
"""

from __future__ import annotations

import shutil

import orjson
import pytest

pytest.importorskip("distributed")

import fastdump  # noqa: E402
import fastdump.pool  # noqa: E402

from . import test_dask_pool  # noqa: E402
from .conftest import pydicom_file  # noqa: E402
from .helpers import jsonl_lines as lines  # noqa: E402
from .poison import HANG  # noqa: E402

NAMES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm"]
# Seconds a restarted worker takes to run its first task: longer than a file read
# alone may take here (file_timeout 0.5 s: 0.5 * 2 + HUNG_GRACE = 3 s)
SLOW_START = 4.0

hooks = test_dask_pool.hooks


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with test_dask_pool.running_cluster(tmp_path_factory.mktemp("dask-logs"), 1) as running:
        yield running


def test_file_that_hangs_its_worker_is_an_error_record(cluster, hooks, tmp_path, monkeypatch):
    address, client = cluster
    hooks(start_delay=SLOW_START)
    monkeypatch.setattr(fastdump.pool, "HUNG_GRACE", 2.0)  # the default 5 s: a slower test
    folder = tmp_path / "archive"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(pydicom_file(name), folder / name)
    # Walked last, so the batch the watchdog gives up is [rtplan.dcm, zz-hangs.dcm]: a good
    # file read alone first, by the worker the watchdog has just restarted.
    hung = folder / "zz-hangs.dcm"
    hung.write_bytes(HANG + b"\0" * 300)
    local = tmp_path / "local"
    fastdump.dump([folder], local, jobs=1, progress=False)  # no hook here: a plain bad file
    pids_before = set(client.run(lambda: __import__("os").getpid()).values())
    out = tmp_path / "out"

    summary = fastdump.dump([folder], out, scheduler=address, progress=False, batch_size=2,
                            file_timeout=0.5)

    dumped = {orjson.loads(line)["path"]: line for line in lines(out / "dump.jsonl")}
    errors = {r["path"]: r for r in map(orjson.loads, lines(out / "errors.jsonl"))}
    # rtplan.dcm, read alone, waits for its restarted worker's slow start: that is not
    # its time, and it is dumped.
    assert set(errors) == {str(hung)}, errors
    assert errors[str(hung)]["error"].startswith("FileTimeout: the worker reading this file hung")
    assert set(dumped) == {str(folder / name) for name in NAMES}
    assert set(dumped.values()) == set(lines(local / "dump.jsonl"))
    assert (summary.ok, summary.errors) == (len(NAMES), 1)
    # the stuck thread's worker was restarted: a new process
    client.wait_for_workers(1, timeout=60)
    assert set(client.run(lambda: __import__("os").getpid()).values()).isdisjoint(pids_before)
