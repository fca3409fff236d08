"""Stand-ins for fastdump.worker.process_batch that misbehave on chosen files.

They live in an importable module so that worker processes can unpickle them;
tests put them in place with monkeypatch (fastdump.pool.process_batch).
"""

from __future__ import annotations

import os
import signal
import time

from fastdump.worker import process_batch


def dies_on_poison(entries, opts):
    """Kill the worker process, like a segfault would, when the batch holds a POISON file."""
    if any("POISON" in entry.path for entry in entries):
        os._exit(139)
    return process_batch(entries, opts)


def hangs_on_poison(entries, opts):
    """Hang where no per-file alarm can interrupt (SIGALRM blocked), on a POISON file."""
    if any("POISON" in entry.path for entry in entries):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
    return process_batch(entries, opts)


def names_its_process(entries, opts):
    """Read the batch, and say in each outcome which process read it (as its "fallback").

    In the process named by FASTDUMP_TEST_SLOW_PID, each batch also takes 0.1 s
    more, so that worker processes have time to start while it reads.
    """
    if os.environ.get("FASTDUMP_TEST_SLOW_PID") == str(os.getpid()):
        time.sleep(0.1)
    return [outcome._replace(fallback=f"pid {os.getpid()}")
            for outcome in process_batch(entries, opts)]
