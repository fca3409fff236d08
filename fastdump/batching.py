"""Files -> batches, sized by the work they take.

Each batch costs a round trip to a worker (on a Dask cluster, a task: a few
milliseconds), and a file costs anything from ~60 µs (``--tags``) to seconds
(a giant header). So a batch holds about :data:`TARGET_SECONDS` of one worker's
time, learned from how fast the batches before it finished: hundreds of files
in a ``--tags`` run, a single file when each one takes seconds.

A batch of URLs (objects in a store, whose headers a worker fetches many at a
time, see :class:`fastdump.remote.Heads`) holds at least :data:`REMOTE_ROUNDS`
times the requests a worker keeps in flight, so that the first round trip of
a batch, which nothing overlaps, is paid once per several: up to
:data:`REMOTE_SECONDS` of work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from .source import is_url
from .types import Batch, Entry, Problem

TARGET_SECONDS = 0.05  # of one worker's time per batch
FIRST = 32  # files per batch before any batch has finished
MOST = 256  # bounds what a killed run redoes and how long a hung worker goes unnoticed
_SMOOTHING = 0.2  # weight of the latest batch in the running estimate
REMOTE_ROUNDS = 4  # a batch of URLs: at least this many times the fetches in flight...
REMOTE_SECONDS = 1.0  # ... unless that is more than this much of one worker's time


class BatchSizer:
    """How many files the next batch gets. ``fixed``: always that many.

    ``fetch_concurrency``: the header requests a worker keeps in flight for URLs.
    """

    def __init__(self, workers: int, fixed: int | None = None,
                 fetch_concurrency: int = 1) -> None:
        self.workers = workers
        self.fixed = fixed
        self.remote_least = min(MOST, REMOTE_ROUNDS * max(1, fetch_concurrency))
        self.per_file: float | None = None  # seconds of one worker's time per file
        self._last: float | None = None  # when the previous batch finished

    def size(self, remote: bool = False) -> int:
        """Files for the next batch; ``remote``: a batch of URLs."""
        if self.fixed:
            return self.fixed
        if self.per_file is None:
            return max(FIRST, self.remote_least) if remote else FIRST
        per_file = max(self.per_file, 1e-6)
        size = max(1, min(MOST, round(TARGET_SECONDS / per_file)))
        if remote:
            size = max(size, min(self.remote_least, round(REMOTE_SECONDS / per_file)))
        return size

    def finished(self, files: int) -> None:
        """A batch of ``files`` files has been written."""
        now = time.monotonic()
        # The time between two finished batches, times the workers that share it,
        # is one worker's time for the latest batch. The first one is not
        # measured: it also waited for the workers to start.
        if self._last is not None and files:
            seconds = (now - self._last) * self.workers / files
            if self.per_file is None:
                self.per_file = seconds
            else:
                self.per_file += _SMOOTHING * (seconds - self.per_file)
        self._last = now


def batches(items: Iterator[Entry | Problem | None], sizer: BatchSizer) -> Iterator[Batch]:
    """Group ``items`` into batches of ``sizer.size()`` files, asked anew for each batch
    (by its first file: URLs make larger batches).

    A None among the items (the walk has found nothing for a while: a slow ``find``
    feeding ``--files-from -``) hands on the files gathered so far as a batch, then an
    empty batch: what is read is written meanwhile (see :func:`fastdump.pool.run_batches`).
    """
    batch: Batch = []
    size = 0
    for item in items:
        if item is None:
            if batch:
                yield batch
                batch = []
            yield []
            continue
        if not batch:
            size = sizer.size(is_url(item.path))
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
