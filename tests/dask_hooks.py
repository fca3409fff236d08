"""Test-only behaviour injected into Dask workers (never part of fastdump itself).

The worker processes import this module (the tests start them with the
repository on PYTHONPATH) when the scheduler hands them the plugin; the
scheduler also re-sends it to every worker a nanny restarts.
"""

from __future__ import annotations

import os
import time

from distributed import WorkerPlugin

# A file starting with these bytes makes the worker reading it exit at once,
# as a segfault in a decoder would.
POISON = b"FASTDUMP-TEST-POISON: kills the worker that reads it\n"
POISON_EXIT = 77
# A file starting with these bytes holds the thread reading it forever, in C code
# (a sleep), where nothing in the worker can interrupt it: a hung NFS read.
HANG = b"FASTDUMP-TEST-HANG: holds the worker thread forever\n"


class ReadHooks(WorkerPlugin):
    """Wrap fastdump.record.read_record in the worker: a delay per file (so a run
    lasts long enough to kill a worker in the middle), death on POISON files, and
    a hang on HANG files."""

    name = "fastdump-test-hooks"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def setup(self, worker) -> None:
        import fastdump.record as record

        original = getattr(record, "_test_original_read_record", record.read_record)
        record._test_original_read_record = original
        delay = self.delay

        def read_record(path, *args, **kwargs):
            with open(path, "rb") as fp:
                head = fp.read(max(len(POISON), len(HANG)))
            if head.startswith(POISON):
                os._exit(POISON_EXIT)
            if head.startswith(HANG):
                time.sleep(3600)
            time.sleep(delay)
            return original(path, *args, **kwargs)

        record.read_record = read_record

    def teardown(self, worker) -> None:
        import fastdump.record as record

        original = getattr(record, "_test_original_read_record", None)
        if original is not None:
            record.read_record = original
