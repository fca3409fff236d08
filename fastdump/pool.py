"""Batches -> worker processes -> outcomes, as they finish.

The loop keeps a bounded number of batches in flight (so the walk, not the
pool, holds the path list), yields each batch's outcomes as soon as it is
done, in whatever order, and survives workers that die: a batch lost with a
worker is retried file by file, in a pool of its own, so the file that kills
its worker is named in errors.jsonl and the rest are dumped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import BrokenProcessPool

from .record import Options, Outcome, failed, process_batch
from .walk import Entry, Problem

Batch = list[Entry | Problem]


class LocalPool:
    """joblib's loky process pool on this machine.

    A pool is anything with ``submit``, ``wait_any``, ``isolate`` and
    ``lost``, the exception types meaning "the worker holding this batch
    died": :func:`run` needs nothing else, so other executors (a Dask cluster)
    plug in the same way.
    """

    lost: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def wait_any(self, futures: Iterable[Future]) -> set[Future]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return done

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        # get_reusable_executor hands back a fresh pool after a worker died.
        return get_reusable_executor(max_workers=self.jobs, timeout=60).submit(fn, *args)

    def isolate(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one call in a pool of one worker, so a crash is pinned on it."""
        return get_reusable_executor(max_workers=1, timeout=60).submit(fn, *args).result()


def run(
    pool: Any, batches: Iterable[Batch], opts: Options, in_flight: int
) -> Iterator[list[Outcome]]:
    """Yield the outcomes of every batch; a file is in exactly one outcome."""
    batches = iter(batches)
    pending: dict[Future, Batch] = {}
    lost: list[Batch] = []
    exhausted = False
    while True:
        while not exhausted and len(pending) < in_flight:
            batch = next(batches, None)
            if batch is None:
                exhausted = True
            else:
                pending[pool.submit(process_batch, batch, opts)] = batch
        if not pending:
            break
        for future in pool.wait_any(pending):
            batch = pending.pop(future)
            try:
                yield future.result()
            except pool.lost:
                lost.append(batch)
        if lost:
            yield from _retry_lost(pool, lost, pending, opts)
            lost = []


def _retry_lost(
    pool: Any, lost: list[Batch], pending: dict[Future, Batch], opts: Options
) -> Iterator[list[Outcome]]:
    # A dead worker breaks the whole pool: every batch still in flight is lost too.
    for future, batch in list(pending.items()):
        try:
            yield future.result()
        except pool.lost:
            lost.append(batch)
        del pending[future]
    for batch in lost:
        yield [_one_alone(pool, entry, opts) for entry in batch]


def _one_alone(pool: Any, entry: Entry | Problem, opts: Options) -> Outcome:
    try:
        return pool.isolate(process_batch, [entry], opts)[0]
    except pool.lost as exc:
        return failed(entry, f"WorkerDied: the worker reading this file died ({exc})")
