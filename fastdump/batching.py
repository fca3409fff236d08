"""Files -> batches, sized by the work they take.

Each batch costs a round trip to a worker (on a Dask cluster, a task: a few
milliseconds), and a file costs anything from ~60 µs (``--tags``) to seconds
(a giant header). So a batch holds about :data:`TARGET_SECONDS` of one worker's
time, learned from how fast the batches before it finished: hundreds of files
in a ``--tags`` run, a single file when each one takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from .types import Batch, Entry, Problem

TARGET_SECONDS = 0.05  # of one worker's time per batch
FIRST = 32  # files per batch before any batch has finished
MOST = 256  # bounds what a killed run redoes and how long a hung worker goes unnoticed
_SMOOTHING = 0.2  # weight of the latest batch in the running estimate


class BatchSizer:
    """How many files the next batch gets. ``fixed``: always that many."""

    def __init__(self, workers: int, fixed: int | None = None) -> None:
        self.workers = workers
        self.fixed = fixed
        self.per_file: float | None = None  # seconds of one worker's time per file
        self._last: float | None = None  # when the previous batch finished

    def size(self) -> int:
        if self.fixed:
            return self.fixed
        if self.per_file is None:
            return FIRST
        return max(1, min(MOST, round(TARGET_SECONDS / max(self.per_file, 1e-6))))

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


def batches(items: Iterator[Entry | Problem], sizer: BatchSizer) -> Iterator[Batch]:
    """Group ``items`` into batches of ``sizer.size()`` files, asked anew for each batch."""
    batch: Batch = []
    size = sizer.size()
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
            size = sizer.size()
    if batch:
        yield batch
