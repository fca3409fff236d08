"""Poison files, and stand-ins for fastdump.worker.process_batch that misbehave on them.

One marker for every test: a file whose first bytes are :data:`POISON` is
poison. The marker fits in the 128-byte preamble of a DICOM file, so
:func:`poisoned` keeps a real file valid: read by fastdump itself it dumps
fine, and only the test hooks make it kill or hang its worker.

The stand-ins live in an importable module so that worker processes can
unpickle them: tests put them in place with monkeypatch
(fastdump.pool.process_batch), and tests/dask_hooks.py uses the same check in
Dask workers.
"""

from __future__ import annotations

import os
import signal
import time

from fastdump.worker import process_batch

POISON = b"FASTDUMP-TEST-POISON: kills the worker that reads it\n"


def poisoned(data: bytes) -> bytes:
    """``data`` with the marker over its first bytes (a DICOM file's preamble stays valid)."""
    return POISON + data[len(POISON):]


def is_poison(path: str) -> bool:
    try:
        with open(path, "rb") as fp:
            return fp.read(len(POISON)) == POISON
    except OSError:
        return False  # gone or unreadable: fastdump reports it as usual


def die_like_a_segfault() -> None:
    os._exit(139)


# A file starting with these bytes holds the thread reading it (tests/dask_hooks.py)
# forever, in C code (a sleep), where nothing in the worker can interrupt it: a hung
# NFS read.
HANG = b"FASTDUMP-TEST-HANG: holds the worker thread forever\n"


def is_hang(path: str) -> bool:
    try:
        with open(path, "rb") as fp:
            return fp.read(len(HANG)) == HANG
    except OSError:
        return False


def hang_in_c_code() -> None:
    time.sleep(3600)


def dies_on_poison(entries, opts):
    """Kill the worker process, like a segfault would, when the batch holds a poison file."""
    if any(is_poison(entry.path) for entry in entries):
        die_like_a_segfault()
    return process_batch(entries, opts)


def hangs_on_poison(entries, opts):
    """Hang where no per-file alarm can interrupt (SIGALRM blocked), on a poison file."""
    if any(is_poison(entry.path) for entry in entries):
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


def dies_sending_its_result_on_poison(entries, opts):
    """Die as a worker killed while sending its result would (kill -9, the OOM killer):
    the result pipe's lock taken, the start of a result written, the rest never."""
    if any(is_poison(entry.path) for entry in entries):
        import struct
        import sys

        frame = sys._getframe()
        while frame is not None and "result_queue" not in frame.f_locals:
            frame = frame.f_back  # up to loky's worker loop, which holds the queue
        assert frame is not None, "not in a loky worker"
        queue = frame.f_locals["result_queue"]
        queue._wlock.acquire()
        os.write(queue._writer.fileno(), struct.pack("!i", 1 << 20) + b"half a result")
        os._exit(137)
    return process_batch(entries, opts)
