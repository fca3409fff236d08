"""Batches -> worker processes -> outcomes, as they finish.

The loop keeps a bounded number of batches in flight (so the walk, not the
pool, holds the path list), yields each batch's outcomes as soon as it is
done, in whatever order, and survives workers that die: a batch lost with a
worker is retried file by file, in a pool of its own, so the file that kills
its worker is named in errors.jsonl and the rest are dumped.

Starting worker processes costs a few tenths of a second, more than many
small runs take in all: :class:`StartingPool` reads the first files in this
process, starts the workers only once the run has lasted :data:`START_AFTER`
seconds (:data:`REMOTE_START_AFTER` for objects in a store, whose workers cost
more to start and whose reading waits on the network rather than the CPU), and
hands them the batches as soon as they are up. A run whose walk has ended and
whose rest this process reads sooner than workers would (at most
:data:`SMALL_RUN` seconds of it) never starts them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from . import compat
from .errors import WorkersError
from .source import is_url
from .stopping import deferred, start_worker, stop_executor
from .types import Batch, BatchResult, Entry, Options, Outcome, Problem
from .worker import failed, process_batch, read_batch

if TYPE_CHECKING:
    from concurrent.futures import Future


class LocalPool:
    """joblib's loky process pool on this machine.

    A pool is anything with ``submit``, ``wait_any``, ``isolate`` and
    ``lost``, the exception types meaning "the worker holding this batch
    died": :func:`run_batches` needs nothing else, so other executors (a Dask cluster)
    plug in the same way.
    """

    def __init__(self, jobs: int) -> None:
        from joblib.externals.loky.process_executor import (
            BrokenProcessPool,
            ShutdownExecutorError,
        )

        self.jobs = jobs
        self.lost: tuple[type[BaseException], ...] = (BrokenProcessPool, ShutdownExecutorError)
        self._current: Any = None  # the executor of the last submit
        self._dead_seen: tuple[int, float] | None = None  # (executor's id, when) see _unstick

    def wait_any(self, futures: Iterable[Future], timeout: float | None = None) -> set[Future]:
        """The futures done, once one is (or none, past ``timeout``). Meanwhile, every
        :data:`WATCH_EVERY` seconds without one done, a pool a dead worker left stuck
        is broken (:meth:`_unstick`), so that its futures fail as lost."""
        futures = list(futures)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WATCH_EVERY if end is None else min(WATCH_EVERY, end - time.monotonic())
            done = _wait_any(futures, max(0.0, left))
            if done or (end is not None and time.monotonic() >= end):
                return done
            self._unstick()

    def _unstick(self) -> None:
        """Break the pool if a worker of it has been dead for :data:`STALL_GRACE` seconds
        and loky has not broken it.

        A worker killed while sending a result (``kill -9``, the OOM killer) leaves the
        rest of it unsent and the result pipe's lock taken: loky's thread then waits for
        the rest, and the other workers for the lock, for good (loky's own comments say
        so). Seen 3 times in ~70 workers killed during a run, which then stood still
        (before, for as long as --file-timeout's hours-long budget of a batch).
        """
        executor = compat.current_loky_executor()
        if executor is None or not compat.loky_worker_died_unnoticed(executor):
            self._dead_seen = None
            return
        now = time.monotonic()
        if self._dead_seen is None or self._dead_seen[0] != id(executor):
            self._dead_seen = (id(executor), now)  # loky may not have looked yet
        elif now - self._dead_seen[1] >= STALL_GRACE:
            self._dead_seen = None
            compat.break_loky_executor(executor)

    def kill(self) -> None:
        """Kill every worker; the next submit gets a fresh pool."""
        self._current = None
        stop_executor(_executor(self.jobs))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        # Deferred: a stop signal in the middle of loky's bookkeeping shows as a
        # traceback at shutdown; and the workers this starts must not die of a
        # group's signal.
        executor = self._current
        if executor is not None and compat.loky_executor_usable(executor):
            # The same pool as last time: asking loky and its resource trackers
            # again cost ~0.2 ms a batch, in the parent, which 2 cores cannot spare.
            try:
                with _starting_workers(), deferred():  # (loky restarts idle-ended ones here)
                    return executor.submit(fn, *args)
            except self.lost:
                pass  # a worker died since: a fresh pool
        with _starting_workers():
            _start_resource_trackers()
            with deferred():
                executor = self._current = _executor(self.jobs)  # fresh after a worker died
                return executor.submit(fn, *args)

    def isolate(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
                url: str | None = None) -> Any:
        """Run one call in a pool of one worker, so a crash or a hang is pinned on it.

        Raises ``TimeoutError`` (after killing the worker) when it hangs, counting
        from when the worker is up (for objects in a store, ``url``'s client
        loaded): a fresh worker's start is not the file's time. A crash is
        tried twice, so a pool still dying from an earlier crash is not blamed
        on this file.
        """
        from concurrent.futures import TimeoutError as FutureTimeout

        self._current = None  # loky resizes its one pool to a worker for this
        for attempt in (1, 2):
            with _starting_workers():
                _start_resource_trackers()
                with deferred():
                    executor = _executor(1)
                    ready = executor.submit(worker_ready, url)
                    future = executor.submit(fn, *args)  # run after it, by the one worker
            # Timed once the worker is up: past WORKER_START_TIMEOUT, from then on anyway
            self.wait_any([ready], WORKER_START_TIMEOUT)
            try:
                self.wait_any([future], timeout)
                return future.result(timeout=0)
            except FutureTimeout:
                stop_executor(executor)
                raise TimeoutError from None
            except self.lost:
                stop_executor(executor)
                if attempt == 2:
                    raise


class WalkSoFar(NamedTuple):
    """What the walk has found so far: what :class:`StartingPool` decides on."""

    files: int  # files to read, found so far (every one, once the walk has ended)
    ended: bool  # the walk has found every file
    held: bool  # the walk waits for room in its bounded queue: a long run


class StartingPool:
    """This process reads the batches until worker processes are up, then they do.

    The workers are started only when the run outlasts :data:`START_AFTER`
    seconds: a dump of one file or one folder never pays for them. Nor does a
    run whose walk has ended (it is given :data:`WALK_WAIT` seconds to) and
    whose files left (of ``found()``: what the walk has found so far) this
    process would read sooner than a pool of ``jobs`` workers, and in at most
    :data:`SMALL_RUN` seconds. While they start, batches are read here, in the
    main thread (per-file time limits still hold there; a crash in C code would
    end the run, which ``--resume`` then finishes: ``isolate`` then reads every
    batch in a worker); once every worker has answered, every batch goes to
    them, with their crash isolation.
    """

    def __init__(self, jobs: int, found: Callable[[], WalkSoFar] | None = None,
                 isolate: bool = False) -> None:
        self.jobs = jobs
        self._pool: LocalPool | None = None
        self._warming: list[Future] = []
        self._since: float | None = None  # when the first batch was handed out
        self._found = found
        self._isolate = isolate
        self._handed = 0  # files handed out, here or to the workers
        self._measured: tuple[float, int] | None = None  # (since, files): this process's pace
        self._doubted = False  # the last pace said: start workers

    @property
    def lost(self) -> tuple[type[BaseException], ...]:
        return self._pool.lost if self._pool is not None else ()

    def _workers_up(self, batch: Batch) -> bool:
        if self._pool is None:
            if START_AFTER is None or self._isolate:  # every batch in a worker, from the first
                self._pool = LocalPool(self.jobs)
                return True
            # Counted from the first batch, not from the start of the run: a slow start
            # (imports on a busy machine) is no sign of much work.
            now = time.monotonic()
            if self._since is None:
                self._since = now
            url = batch[0].path if batch and is_url(batch[0].path) else None
            if now - self._since < (REMOTE_START_AFTER if url else START_AFTER):
                return False
            if self._reads_sooner_here():
                return False
            self._pool = LocalPool(self.jobs)
            self._warming = [self._pool.submit(worker_ready, url) for _ in range(self.jobs)]
        return all(f.done() for f in self._warming)

    def _reads_sooner_here(self) -> bool:
        """Whether this process reads the files left sooner than workers would.

        Its pace is taken after its first batch, which pays for the imports.
        """
        walk = self._walk_settled()
        if walk is None or not (walk.ended or walk.held):
            return False  # the walk goes on: maybe a long run
        now = time.monotonic()  # after the wait for the walk, which is no reading
        if not walk.ended:
            return self._found_read_before_workers(walk, now)
        if self._measured is None:
            self._measured = (now, self._handed)
            return True  # one more batch here, to learn the pace
        since, files = self._measured
        if now <= since or self._handed <= files:
            return True
        seconds_left = (walk.files - self._handed) * (now - since) / (self._handed - files)
        # n workers starting in START_COST seconds finish sooner once seconds_left
        # exceeds START_COST * n / (n - 1); one worker, only by pipelining.
        worth = START_COST * self.jobs / (self.jobs - 1) if self.jobs > 1 else SMALL_RUN
        if seconds_left <= min(worth, SMALL_RUN):
            self._doubted = False
            return True
        # A pace taken on few files may be one slow file's (the first of a character
        # set imports its decoder): workers start once two paces in a row say so.
        self._doubted = not self._doubted
        return self._doubted

    def _found_read_before_workers(self, walk: WalkSoFar, now: float) -> bool:
        """A walk held by its full queue (a long run, or one just over the queue's
        size): whether this process reads every file found so far before workers
        started now would be up (:data:`START_COST`), so that starting them can wait.

        Its pace counts from the first batch, imports included: on the slow side.
        Only a fast pace (``--tags``) waits; it waits at most START_COST seconds.
        """
        if self._since is None or self._handed <= 0:
            return False
        elapsed = now - self._since
        left = (walk.files - self._handed) * elapsed / self._handed
        return elapsed + left <= START_COST

    def _walk_settled(self) -> WalkSoFar | None:
        """What the walk has found, once it has ended or filled its queue.

        Its thread shares the GIL with this one, whose first batch imports much:
        a small archive's walk may still be on then. Alone, it finds thousands of
        files in tens of milliseconds, so it is given up to :data:`WALK_WAIT`.
        """
        if self._found is None:
            return None
        deadline = time.monotonic() + WALK_WAIT
        while not ((walk := self._found()).ended or walk.held) \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        return walk

    def submit(self, fn: Callable[..., Any], batch: Batch, *args: Any) -> Future | _ReadHere:
        # Once the main thread has ended (dump() in a thread a script never joined), no
        # pool takes work: batches in flight still come back; the others are read here
        # (the run stopped on a RuntimeError before, its summary never written).
        try:
            if not compat.interpreter_exiting() and self._workers_up(batch):
                assert self._pool is not None
                self._handed += len(batch)
                return self._pool.submit(fn, batch, *args)
        except RuntimeError:
            if not compat.interpreter_exiting():
                raise
            # it ended as workers started: a pool half started would keep Python
            # waiting for its thread for good
            shutdown_local_pool()
        self._handed += len(batch)
        return _ReadHere(fn(batch, *args))  # the workers are not up (yet)

    def wait_any(self, futures: Iterable[Any], timeout: float | None = None) -> set[Any]:
        futures = list(futures)
        here = {f for f in futures if isinstance(f, _ReadHere)}
        if here or self._pool is None:
            return here or _wait_any(futures, timeout)
        return self._pool.wait_any(futures, timeout)

    def kill(self) -> None:
        if self._pool is not None:
            self._pool.kill()

    def isolate(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
                url: str | None = None) -> Any:
        if compat.interpreter_exiting():  # (see submit)
            return fn(*args)
        return (self._pool or LocalPool(self.jobs)).isolate(fn, *args, timeout=timeout, url=url)

    def __enter__(self) -> StartingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        # Workers still starting when the run ended did no work: stop them now rather
        # than let them finish starting for nothing.
        if self._pool is not None and not all(f.done() for f in self._warming):
            self._pool.kill()


class _ReadHere:
    """The outcome of a batch read in this process, handed on as a done future's.

    Not a concurrent.futures.Future: a run that never starts a worker (one file,
    one folder) then never imports concurrent.futures and logging (~10 ms).
    """

    __slots__ = ("_outcome",)

    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        return self._outcome


def _wait_any(futures: Iterable[Future], timeout: float | None) -> set[Future]:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
    return done


# Seconds a batch (or a file read alone) may outlive its files' time limits before its
# worker counts as hung: room for a busy machine (and for a batch, a worker's start)
HUNG_GRACE = 5.0
# Seconds a file read alone waits for its worker to be up before its own time counts
WORKER_START_TIMEOUT = 120.0
# Seconds between looks for a dead worker that left the pool stuck, while no batch ends;
# and how long one may be dead before the pool is broken (loky notices in milliseconds)
WATCH_EVERY = 1.0
STALL_GRACE = 2.0

# Seconds of a run after which worker processes are worth starting (None: from the
# start, and no batch is read in this process)
START_AFTER: float | None = 0.1
# The same for objects in a store: each worker then imports the store's client
# (s3fs, botocore: ~1 s of CPU), and one process already keeps --fetch-concurrency
# requests in flight. Measured on 300 objects 100 ms away: started after 0.1 s, the
# workers made the run 6.5 s instead of 4.5 s without them.
REMOTE_START_AFTER = 3.0
# A run this process finishes within SMALL_RUN seconds (once its walk has ended) is read
# here, without workers: a crash in C code would cost a rerun of at most that long, and
# a --resume after a run that did not end reads every batch in a worker.
SMALL_RUN = 3.0
# Seconds from starting workers to their first batch, on 2 busy cores (measured: 1-1.5 s)
START_COST = 1.0
# Seconds the start of workers waits for a walk to end or fill its queue (measured: it
# finds 5,000 files in 30-45 ms on a local disk)
WALK_WAIT = 0.2


def worker_ready(url: str | None) -> None:
    """The first task of a worker: it has started and imported what batches need
    (for objects in a store, its client too)."""
    if url is not None:
        from .remote import filesystem

        filesystem(url)


def shutdown_local_pool() -> None:
    """Stop this process's worker processes, if it started any (the run is over)."""
    if "joblib.externals.loky" not in sys.modules:
        return  # never imported: no worker was ever started
    executor = compat.current_loky_executor()
    if executor is not None:
        stop_executor(executor)


@contextlib.contextmanager
def _starting_workers() -> Iterator[None]:
    """Worker processes the system refuses (too many open files: ``ulimit -n``) are a
    :class:`WorkersError` of one line, not loky's traceback (an ``UnboundLocalError``
    over the ``OSError``, in joblib 1.6)."""
    try:
        yield
    except (OSError, UnboundLocalError) as exc:
        cause: BaseException | None = exc
        while cause is not None and not (isinstance(cause, OSError)
                                         and cause.errno in (errno.EMFILE, errno.ENFILE)):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        try:
            import resource

            limit = str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        except (ImportError, OSError, ValueError):  # (no such module on Windows)
            limit = "only a few files"
        raise WorkersError(
            f"worker processes could not start: {cause.strerror} (this process may open "
            f"{limit}: ulimit -n); raise the limit (ulimit -n 1024) and run again (with "
            "--resume, an OUTDIR's run goes on where it stopped)") from exc


def _start_resource_trackers() -> None:
    """Start multiprocessing's and loky's resource trackers, in a block of their own.

    Python's launcher of its tracker (3.11's at least) ends by *unblocking*
    SIGINT and SIGTERM in the thread that starts it: started in the middle of a
    submit, it would let the workers started after it begin with those signals
    open, and die of a Ctrl-C sent to the process group while they start. Each
    tracker has a block of its own for the same reason: loky's starts with all
    three blocked, not with SIGHUP alone.
    """
    from multiprocessing import resource_tracker as stdlib

    from joblib.externals.loky.backend import resource_tracker as loky

    with deferred(raise_pending=False):
        stdlib.ensure_running()
    with deferred(raise_pending=False):
        loky.ensure_running()


def _executor(workers: int) -> Any:
    from joblib.externals.loky import get_reusable_executor

    # the same arguments every time: other ones would make loky start a new pool.
    # Workers ignore the stop signals (the parent stops them) and die with the parent
    # (see fastdump.stopping.start_worker).
    return get_reusable_executor(max_workers=workers, timeout=60,
                                 initializer=start_worker, initargs=(os.getpid(),),
                                 env=blas_env())


# numpy's BLAS starts a thread per core as it loads, and joblib imports numpy where it
# is installed: in each worker, in loky's resource tracker, in the parent. On 2 cores a
# worker's start then took 0.37-0.40 s of CPU instead of 0.21-0.24 s, taken from the
# files being read; fastdump computes nothing with numpy. (OMP_NUM_THREADS is left
# alone: pyarrow's thread pool, the parent's Parquet writer, follows it.)
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "BLIS_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}


def blas_env() -> dict[str, str]:
    """:data:`BLAS_THREADS`, where the user has not set them: set in a worker before it
    imports anything, and in the command's own process."""
    return {var: os.environ.get(var, one) for var, one in BLAS_THREADS.items()}


def run_batches(
    pool: Any, batches: Iterable[Batch], opts: Options, in_flight: int
) -> Iterator[BatchResult]:
    """Yield the outcomes of every batch; a file is in exactly one outcome.

    A batch that outlives its deadline means a worker hung where the per-file
    alarm cannot reach (inside C code): the workers are killed, and the
    batches they held are retried file by file like those of a dead worker.
    """
    batches = iter(batches)
    pending: dict[Future, Batch] = {}
    deadlines: dict[Future, float] = {}
    lost: list[Batch] = []
    exhausted = False
    idle = False  # an empty batch: no file to come for now, so every batch out is written
    while True:
        while not exhausted and not idle and len(pending) < in_flight:
            batch = next(batches, None)
            if batch is None:
                exhausted = True
            elif not batch:
                idle = True
            else:
                future = pool.submit(read_batch, batch, opts, process_batch)
                pending[future] = batch
                deadlines[future] = time.monotonic() + _batch_budget(batch, opts, in_flight)
                if future.done():
                    # Read in this process while workers start: written before the
                    # next is read, so its time is the batch's own (what the next
                    # batch's size is learned from) and the workers, once up, get
                    # the next batch without waiting for several read here.
                    break
        if not pending:
            if exhausted:
                break
            idle = False  # all written: wait for the next files
            continue
        if opts.file_timeout and hasattr(pool, "kill"):  # a pool that can kill has a watchdog
            wait_for = max(0.0, min(deadlines[f] for f in pending) - time.monotonic())
            done = pool.wait_any(pending, timeout=wait_for)
            if not done:
                # Whatever the killed workers held may never be answered: retry it.
                pool.kill()
                lost.extend(pending.values())
                pending.clear()
                deadlines.clear()
        else:
            done = pool.wait_any(pending)
        for future in done:
            batch = pending.pop(future)
            del deadlines[future]
            try:
                yield future.result()
            except pool.lost:
                lost.append(batch)
        if lost:
            yield from _retry_lost(pool, lost, pending, opts)
            lost = []
            deadlines.clear()


def _retry_lost(
    pool: Any, lost: list[Batch], pending: dict[Future, Batch], opts: Options
) -> Iterator[BatchResult]:
    # A dead worker breaks the whole pool: every batch still in flight is lost too.
    for future, batch in list(pending.items()):
        try:
            yield future.result()
        except pool.lost:
            lost.append(batch)
        del pending[future]
    for batch in lost:
        yield [_one_alone(pool, entry, opts) for entry in batch]


def _batch_budget(batch: Batch, opts: Options, in_flight: int) -> float:
    """Seconds a batch may take, queueing included, before its worker counts as hung."""
    if not opts.file_timeout:
        return float("inf")
    # Generous on purpose: the per-file alarm handles slow files; this only
    # catches workers stuck where the alarm cannot interrupt them.
    return opts.file_timeout * (len(batch) + in_flight) * 2 + HUNG_GRACE


def _one_alone(pool: Any, entry: Entry | Problem, opts: Options) -> Outcome:
    timeout = opts.file_timeout * 2 + HUNG_GRACE if opts.file_timeout else None
    try:
        url = entry.path if is_url(entry.path) else None
        return pool.isolate(process_batch, [entry], opts, timeout=timeout, url=url)[0]
    except TimeoutError:
        return failed(entry, f"FileTimeout: the worker reading this file hung for more than "
                             f"{timeout:g} s and was killed")
    except pool.lost as exc:
        return failed(entry, f"WorkerDied: the worker reading this file died ({exc})")
