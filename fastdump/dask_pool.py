"""Batches on a Dask cluster: the pool interface of :mod:`fastdump.pool` over ``distributed``.

Each batch is one task (``client.submit``, ``pure=False`` so that two equal
batches are never merged into one result); results come back as tasks finish.
A worker lost mid-run costs its tasks a rerun elsewhere, which Dask does on its
own. A task whose workers keep dying (a file that crashes the reader every
time) ends in ``KilledWorker`` for that task only, and :func:`fastdump.pool.run_batches`
retries its files one by one, so the file to blame becomes an error record.

(joblib's Dask backend is not used: it hangs for minutes, "rescheduling", when
a file kills its worker every time.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from . import stopping
from ._version import __version__
from .compat import import_optional
from .errors import SchedulerError
from .pool import WORKER_START_TIMEOUT

# A task is given up (KilledWorker) after its worker died this many times + 1.
# For a cluster started here; an existing cluster keeps its scheduler's setting
# (distributed.scheduler.allowed-failures, default 3).
LOCAL_ALLOWED_FAILURES = 1
CONNECT_TIMEOUT = 30.0  # seconds to reach the scheduler
NO_WORKER_TIMEOUT = 600.0  # seconds without any worker before the run gives up
RESTART_TIMEOUT = 120.0  # seconds for a nanny to restart a worker stuck on a file
_POLL = 5.0
STARTED_TOPIC = "fastdump-file-started"  # events: a file read alone starts on a worker


def check_scheduler(scheduler: str) -> None:
    """Before OUTDIR is touched: ``distributed`` is installed, and a Dask scheduler answers
    at ``scheduler``. Found only once the run had made OUTDIR, a mistyped address
    left it holding an empty run (which the next attempt had to --resume or
    --overwrite), or, with --overwrite, the earlier run already deleted; a server that
    is not a scheduler made the client hang, or fail with a traceback."""
    import_optional("distributed", "dask", "--scheduler")
    if scheduler == "local":
        return
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(scheduler)
        get_backend(scheme)  # a known scheme (tpc:// is not)
        if scheme == "tcp":  # refused at once, where distributed retries until its timeout
            socket.create_connection(parse_host_port(location), timeout=CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    answer = _identity(scheduler)
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise SchedulerError(f"{scheduler} answers, but is not a Dask scheduler "
                             f"(it says it is {_what(answer)}): give the scheduler's address")


def _identity(scheduler: str) -> Any:
    """What the server at ``scheduler`` says it is (distributed's ``identity`` call),
    asked in a thread of its own (a caller may be running an event loop)."""
    from distributed.comm import connect

    async def ask() -> Any:
        comm = await connect(scheduler, timeout=CONNECT_TIMEOUT)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    answer: list[Any] = []

    def run() -> None:
        try:
            answer.append(asyncio.run(asyncio.wait_for(ask(), CONNECT_TIMEOUT)))
        except BaseException as exc:  # noqa: BLE001 - garbage makes anything fail
            answer.append(exc)

    thread = threading.Thread(target=run, name="fastdump-scheduler-check", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 5)
    if not answer or isinstance(answer[0], BaseException):
        why = _why(answer[0]) if answer else "no answer"
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {why}")
    return answer[0]


def _why(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"no answer in {CONNECT_TIMEOUT:g} s (is it a Dask scheduler's address?)"
    if isinstance(exc, OSError):
        return str(exc)
    return f"its answer is not Dask's ({type(exc).__name__})"


def _what(answer: Any) -> str:
    kind = answer.get("type") if isinstance(answer, dict) else None
    return f"a {kind}" if kind else "something else"


class DaskPool:
    """Run batches on the Dask cluster at ``scheduler`` (``tcp://host:port``), or on
    a LocalCluster of ``jobs`` worker processes started here when it is ``"local"``.

    Use as a context manager: leaving it closes the client (and the local cluster).
    """

    def __init__(self, scheduler: str, jobs: int = 1) -> None:
        distributed = import_optional("distributed", "dask", "--scheduler")
        self.lost: tuple[type[BaseException], ...] = (distributed.KilledWorker,)
        self._changed = threading.Condition()
        self._no_worker_since: float | None = None
        self._submitted: weakref.WeakSet = weakref.WeakSet()  # this run's tasks (kill)
        self._started: dict[str, threading.Event] = {}  # files read alone, by token
        self._cluster = _local_cluster(jobs) if scheduler == "local" else None
        self._scheduler = scheduler
        address = self._cluster if self._cluster is not None else scheduler
        try:
            stopping.raise_pending()
            self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                             set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise SchedulerError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}"
            ) from None
        except BaseException:
            self._close_cluster()
            raise
        try:
            self.jobs = self._wait_for_workers()
            _check_versions(self.client)
            self.client.subscribe_topic(STARTED_TOPIC, self._on_started)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # Held back: a stop signal in the middle would leave the cluster's processes
        # running; the run's teardown takes it up.
        with stopping.deferred(raise_pending=False, children=False):
            self.client.close()
            self._close_cluster()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = self.client.submit(fn, *args, pure=False)
        future.add_done_callback(self._wake)
        self._submitted.add(future)
        return future

    def kill(self) -> None:
        """A batch outlived its deadline: a file holds a worker thread where nothing
        can interrupt it. Cancel this run's unfinished tasks and restart the workers
        running them through their nannies (:func:`fastdump.pool.run` then reads
        their files one task each, and the one that hangs is reported)."""
        self._restart_workers_running([f for f in self._submitted if not f.done()])

    def _wake(self, future: Any) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_any(self, futures: Iterable[Any], timeout: float | None = None) -> set[Any]:
        """Block until at least one future is done (finished, failed or cancelled)."""
        futures = list(futures)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                done = {f for f in futures if f.done()}
                if any(f.status == "cancelled" for f in done):
                    # by the client, as it lost the scheduler (this run cancels none it
                    # still waits for): a traceback of CancelledError before, exit 1
                    raise self._lost_scheduler()
                if done or not futures:
                    return done
                left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                if left <= 0:
                    return set()
                # Woken by any task finishing; the timeout also covers a result
                # lost with its worker and recomputed (no second callback then).
                if not self._changed.wait(timeout=left):
                    self._check_alive()

    def isolate(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
                url: str | None = None) -> Any:
        """Run one call as a task of its own, so a crash is pinned on it.

        Raises ``TimeoutError`` when it outlives ``timeout``, counted from when
        the task starts on a worker that has imported the reader (and ``url``'s
        client): files are read alone just after workers died or were restarted,
        and a worker that has just joined may take seconds more to run a task,
        which are not the file's. The task is then cancelled and its worker
        restarted, as a thread stuck on a worker can neither be interrupted nor
        be left holding it.
        """
        token = uuid.uuid4().hex
        started = self._started[token] = threading.Event()
        try:
            future = self.client.submit(_announced, token, url, fn, *args, pure=False,
                                        retries=0)
            try:
                _until_started(future, started)
                return future.result(timeout=timeout)
            except TimeoutError:
                self._restart_workers_running([future])
                raise
        finally:
            del self._started[token]

    def _on_started(self, event: tuple[float, str]) -> None:
        started = self._started.get(event[1])  # other runs on the cluster announce theirs too
        if started is not None:
            started.set()

    def _restart_workers_running(self, futures: list[Any]) -> None:
        keys = {f.key for f in futures}
        workers = [w for w, running in self.client.processing().items() if keys & set(running)]
        # Cancelled first, so the scheduler does not hand them to another worker.
        self.client.cancel(futures)
        if not workers:
            return
        try:
            self.client.restart_workers(workers, timeout=RESTART_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means the same to the user
            raise SchedulerError(
                f"Dask workers {', '.join(workers)} hang on a file and could not be restarted "
                f"({type(exc).__name__}: {exc}): run them with a nanny (the default of "
                "dask worker), then run the same command with --resume"
            ) from None

    def _wait_for_workers(self) -> int:
        try:
            self.client.wait_for_workers(1, timeout=NO_WORKER_TIMEOUT)
        except TimeoutError:
            raise SchedulerError(
                f"the Dask cluster at {self.client.scheduler.address} has no workers: "
                "start some (dask worker SCHEDULER_ADDRESS)"
            ) from None
        return max(1, sum(self.client.nthreads().values()))

    def _lost_scheduler(self) -> SchedulerError:
        return SchedulerError(
            f"lost the Dask scheduler at {self._scheduler}: start it and its workers again, "
            "then run the same command with --resume to finish")

    def _check_alive(self) -> None:
        """Give up (resumably) when the cluster has had no worker for a long time."""
        try:
            workers = self.client.scheduler_info(n_workers=1).get("workers")
        except (OSError, TimeoutError) as exc:  # (CommClosedError is an OSError)
            raise self._lost_scheduler() from exc
        if workers:
            self._no_worker_since = None
            return
        since = self._no_worker_since = self._no_worker_since or time.monotonic()
        if time.monotonic() - since > NO_WORKER_TIMEOUT:
            raise SchedulerError(
                f"the Dask cluster has had no worker for {NO_WORKER_TIMEOUT:g} s; start "
                "workers and run the same command with --resume to finish"
            )

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _until_started(future: Any, started: threading.Event) -> None:
    """Wait until the task announced its start, or ended, or WORKER_START_TIMEOUT passed
    (a worker that slow to come up: the file's time then counts anyway), as the local
    pool waits for its one worker."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not started.wait(0.05):
        if future.done() or time.monotonic() > deadline:
            return


def _announced(token: str, url: str | None, fn: Callable[..., Any], *args: Any) -> Any:
    """A task that tells the client (under ``token``) when its worker is ready to read
    files, then runs ``fn(*args)``."""
    from distributed import get_worker

    from .pool import worker_ready

    worker_ready(url)
    get_worker().log_event(STARTED_TOPIC, token)
    return fn(*args)


def _local_cluster(jobs: int) -> Any:
    """A LocalCluster of ``jobs`` single-threaded worker processes (with nannies,
    which restart a worker that dies)."""
    from multiprocessing import resource_tracker

    import dask
    from distributed import LocalCluster

    # Held back: a stop signal must not lose the cluster half-started; and its
    # processes start with the stop signals blocked (fastdump.stopping), stopped by
    # us, not by a signal to the process group. multiprocessing's resource tracker
    # is started first, on its own: Python's launcher (3.11's at least) ends by
    # *unblocking* SIGINT and SIGTERM in the thread that starts it, which would be
    # a Dask thread that then starts the workers.
    with stopping.deferred(raise_pending=False):
        resource_tracker.ensure_running()
    # One thread per process: reading is pure Python holding the GIL, so more
    # threads per worker would not read faster.
    with stopping.deferred(raise_pending=False), dask.config.set(
            {"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}):
        # Logs up to CRITICAL silenced: a stop races the cluster's own teardown, whose
        # workers then log a heartbeat to the closed scheduler as an ERROR with a
        # traceback. A task that fails reaches the run through its future, not the log.
        return LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                            dashboard_address=None, silence_logs=logging.CRITICAL)


def _check_versions(client: Any) -> None:
    """Every worker and the scheduler must import this fastdump: tasks name its functions."""

    def probe() -> str | None:
        # A nested function is sent by value: a module-level one would be sent
        # by name, and fail to load exactly where fastdump is missing. The
        # worker module is what tasks run: importing it proves they can.
        try:
            import fastdump._version
            import fastdump.worker  # noqa: F401
        except ImportError:
            return None
        return fastdump._version.__version__

    found = dict(client.run(probe))
    found["scheduler"] = client.run_on_scheduler(probe)
    wrong = {where: v for where, v in found.items() if v != __version__}
    if wrong:
        where, version = sorted(wrong.items())[0]
        have = "not installed" if version is None else f"version {version}"
        raise SchedulerError(
            f"fastdump is {have} on {where} of the Dask cluster (this is {__version__}): "
            f"install fastdump=={__version__} on the scheduler and every worker"
        )

