"""Test-only behaviour injected into Dask workers (never part of fastdump itself).

The worker processes import this module (the tests start them with the
repository on PYTHONPATH) when the scheduler hands them the plugin; the
scheduler also re-sends it to every worker a nanny restarts.
"""

from __future__ import annotations

import time

from distributed import WorkerPlugin

from .poison import die_like_a_segfault, hang_in_c_code, is_hang, is_poison


class ReadHooks(WorkerPlugin):
    """Wrap fastdump.worker.process_batch in the worker: a delay per file (so a run
    lasts long enough to kill a worker in the middle), death on poison files
    (tests/poison.py), as a segfault in a decoder would, and a hang on HANG files.

    ``start_delay``: a worker process started after the hooks were made (restarted
    by its nanny) runs no task for that many seconds after joining the cluster, as
    one importing on a busy machine would (setup holds the worker's event loop).
    """

    name = "fastdump-test-hooks"

    def __init__(self, delay: float = 0.0, start_delay: float = 0.0) -> None:
        self.delay = delay
        self.start_delay = start_delay
        self.made = time.time()

    def setup(self, worker) -> None:
        import psutil

        import fastdump.worker as worker

        if self.start_delay and psutil.Process().create_time() > self.made:
            time.sleep(self.start_delay)
        original = getattr(worker, "_test_original_process_batch", worker.process_batch)
        worker._test_original_process_batch = original
        delay = self.delay

        def process_batch(entries, opts):
            for entry in entries:
                if is_poison(entry.path):
                    die_like_a_segfault()
                if is_hang(entry.path):
                    hang_in_c_code()
                time.sleep(delay)
            return original(entries, opts)

        worker.process_batch = process_batch

    def teardown(self, worker) -> None:
        import fastdump.worker as worker

        original = getattr(worker, "_test_original_process_batch", None)
        if original is not None:
            worker.process_batch = original
