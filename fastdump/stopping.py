"""Stopping a run the way servers stop programs: Ctrl-C, SIGTERM, SIGHUP.

While :func:`stop_signals` is active (the command, and :func:`fastdump.dump`
in the main thread), the first SIGINT, SIGTERM or SIGHUP raises
:class:`Stopped` (a ``KeyboardInterrupt``, so it unwinds the run like Ctrl-C
always did): no more batches are handed out, the workers are stopped, the lines
already read are written whole and ``summary.json`` says the run was
interrupted, and by which signal; the command exits 128 + the signal's number.
A second signal ends the process at once (:func:`_hard_stop`), after killing
every process the run started. Signals the caller set to be ignored (``nohup``,
SIGINT in background jobs) or handles itself are left alone.

Three more things keep a stop clean:

- A stop is noted as well as raised, until the code that catches the
  :class:`Stopped` takes it (:func:`take_pending`): some C code in which Python
  runs a handler drops what the handler raised, and the run would go on as if
  no signal had come. The next deferred block's end raises it again.

- :func:`deferred`: a signal arriving while loky hands out a batch, or while a
  batch is written, is acted on when that is done, so no pool bookkeeping and
  no line is left half-done. It also blocks the stop signals in the thread
  that starts worker processes, so workers (and loky's resource tracker, and a
  LocalCluster's processes) start with them blocked: a signal sent to the whole
  process group (Ctrl-C in a terminal, systemd's SIGTERM to the cgroup, a
  hang-up) reaches only the parent, which stops them itself (loky's workers with
  SIGKILL, a LocalCluster by closing it). Without that, workers dying of the
  signal would make their batches look like crashes.
- :func:`stop_executor`: loky's pool shut down *and* its queue's feeder thread
  joined. That thread drops the pool's last semaphores when it ends; if it ends
  while the interpreter is exiting, their "unregister" never reaches loky's
  resource tracker, which then warns about "leaked semlock objects".

Python runs a handler right after whichever call was under way when the signal
came, so each of these blocks changes its state in an order that a handler
running between any two steps cannot leave half-done; and :func:`stop_signals`
ends by putting the thread's signal mask back as it found it, so a stop signal
left blocked by anything in the run still reaches the handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from . import compat

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_SIGHUP = getattr(signal, "SIGHUP", None)
_FEEDER_JOIN = 10.0  # seconds: a feeder thread with nothing left to send ends at once


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal (SIGINT, SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_number(exc: BaseException) -> int:
    """The signal behind a Stopped; a plain KeyboardInterrupt is a Ctrl-C."""
    return getattr(exc, "signum", signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    """What a shell reports for a program ended by this signal: 128 + its number."""
    return 128 + signum


class _Controller:
    """The handler of the stop signals, and what it has seen (one per process)."""

    def __init__(self) -> None:
        self.depth = 0  # nested stop_signals() blocks (the command, then dump())
        self.previous: dict[int, Any] = {}
        self.received: int | None = None  # the first stop signal
        self.pending = False  # received, and not yet taken by the code that acts on it
        self.deferring = 0
        self.mask: set[int] | None = None  # the main thread's blocked signals at the start
        self.resumable = True  # the run writes an OUTDIR, which --resume can finish

    def handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            # A terminal hang-up reaches a foreground job twice (from the kernel and
            # from the shell): only another kind of signal means "stop at once".
            if signum == self.received == _SIGHUP:
                return
            _hard_stop(signum)
        self.received = signum
        # Noted even when raised, until the code that catches the Stopped takes it
        # (take_pending): Python runs a handler inside whatever C code is under way,
        # and some C code drops what the handler raised: CPython's io finalizer; int()
        # failing on a string, which sets its ValueError in its place (the converters
        # try int() on IS and DS values: about one SIGTERM in 2,000 sent while this
        # process read files itself was lost there, the run going on to its end).
        # The next deferred block's end raises it again.
        self.pending = True
        if self.deferring or not self.depth or compat.in_import(frame):
            # held back; or in the last moments of stop_signals(), while the previous
            # handlers are put back: it raises once they all are; or in an import,
            # which it would leave half done for the rest of the process (pydicom:
            # "partially initialized module", in every later dump() of a notebook):
            # it raises at the next deferred block's end, a batch's write
            return
        raise Stopped(signum)


_controller = _Controller()


@contextlib.contextmanager
def stop_signals(resumable: bool | None = None) -> Iterator[None]:
    """While active, SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread.

    Only signals left at their default action are taken over (the default
    KeyboardInterrupt for SIGINT); the previous handlers come back at the end.
    Elsewhere than in the main thread this does nothing: Python runs signal
    handlers only there. ``resumable``: whether --resume can finish the run
    (False: its records go to standard output), for what a second signal says.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    c = _controller
    if resumable is not None:
        outer, c.resumable = c.resumable, resumable
    # Counted first, and the handlers installed inside the try: a signal arriving
    # between two installs (Python runs a handler after any call) still finds every
    # handler put back on the way out.
    c.depth += 1
    try:
        if c.depth == 1:
            c.received, c.pending = None, False
            c.mask = signal.pthread_sigmask(signal.SIG_BLOCK, ()) if _HAVE_MASK else None
            for signum in STOP_SIGNALS:
                default = (signal.default_int_handler if signum == signal.SIGINT
                           else signal.SIG_DFL)
                current = signal.getsignal(signum)
                if current is default:
                    c.previous[signum] = current
                    signal.signal(signum, c.handle)
        yield
    finally:
        c.depth -= 1
        if c.depth == 0:
            if c.mask is not None:
                # As it was at the start: a stop signal some code left blocked reaches
                # the handler now (held back, or a second one: at once), not the
                # default action once the handlers are put back.
                signal.pthread_sigmask(signal.SIG_SETMASK, c.mask)
            for signum, handler in c.previous.items():
                signal.signal(signum, handler)
            c.previous.clear()
        if resumable is not None:
            c.resumable = outer
    # One that came at the very end of a deferred block: the caller still hears of it.
    if c.depth == 0 and c.pending:
        c.pending = False
        raise Stopped(c.received or signal.SIGINT)


def take_pending() -> int | None:
    """The stop signal received and not acted on yet, if any: held back in a deferred
    block, or raised as :class:`Stopped` that no one has taken yet.

    The caller acts on it (marks the summary) instead of having it raised later;
    code that catches a Stopped calls this to say it did.
    """
    c = _controller
    if not c.pending:
        return None
    c.pending = False
    return c.received


@contextlib.contextmanager
def deferred(*, raise_pending: bool = True, children: bool = True) -> Iterator[None]:
    """A stop signal arriving in here is acted on when the block is done
    (``raise_pending=False``: left for :func:`take_pending`). A second one still
    ends the process at once.

    ``children``: also block the stop signals in this thread while in here, so
    that processes started in the block (loky's workers and resource tracker, a
    LocalCluster's processes, and threads that will start more) start with them
    blocked: they are stopped by the parent, never by a signal sent to the whole
    process group. Only for short blocks: while it blocks them, this thread
    cannot be woken by a second signal.
    """
    main = threading.current_thread() is threading.main_thread()
    c = _controller
    mask = None
    # Deferring from before the signals are blocked until after they are unblocked:
    # a handler running right after either call (as Python runs them) only notes
    # the signal, so no exit from here can leave them blocked in this thread.
    if main:
        c.deferring += 1
    try:
        if children and _HAVE_MASK:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if main:
            c.deferring -= 1
    if raise_pending and main and not c.deferring and c.pending:
        c.pending = False
        raise Stopped(c.received or signal.SIGINT)


_HAVE_MASK = hasattr(signal, "pthread_sigmask")


def raise_pending() -> None:
    """Act now on a stop signal a ``deferred(raise_pending=False)`` block held back."""
    c = _controller
    if (c.pending and not c.deferring
            and threading.current_thread() is threading.main_thread()):
        c.pending = False
        raise Stopped(c.received or signal.SIGINT)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Inside a deferred block: here a stop signal acts at once (one held back, now).

    For the long parts of a run (the work itself, a resume's compaction) inside
    a teardown that must not be cut short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    c = _controller
    saved = c.deferring
    # The mask as it is, to put back: a signal acted on right after they are
    # unblocked raises before that call's result could be kept.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ()) if _HAVE_MASK else None
    try:
        c.deferring = 0
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        raise_pending()
        yield
    finally:
        c.deferring = saved  # first: from here on a signal is only noted
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def start_worker(parent: int) -> None:
    """Worker initializer: the parent stops its workers; a stop signal sent to the
    whole process group must not kill them first (their batches would look lost to
    a crash). Covers workers started where :func:`deferred` did not block them.

    And a worker dies with ``parent``, its parent process: killed alone (``kill -9``,
    the kernel's OOM killer), the parent could stop nothing, and its workers lived
    on for good, one blocked sending a result no one would read, the others on
    the queue it held. On Linux only (``PR_SET_PDEATHSIG``).
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if sys.platform.startswith("linux") and _die_with_parent() and os.getppid() != parent:
        os._exit(1)  # the parent was gone before the signal was asked for


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> bool:
    """Ask the kernel for SIGKILL when this process's parent ends; whether it agreed."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_executor(executor: Any) -> None:
    """Kill a loky executor's workers, and wait until its threads are done with it.

    ``shutdown`` joins loky's manager thread, but not the thread feeding the
    call queue (loky skips that join in the process that made the queue). That
    thread, ending, drops the pool's last semaphores, which unlink themselves and
    tell loky's resource tracker; should it end while the interpreter exits,
    the message is lost and the tracker warns of "leaked semlock objects".
    """
    if compat.loky_worker_died_unnoticed(executor):
        # maybe stuck on a result its dead worker never finished sending, where
        # shutdown would wait for good (see fastdump.pool.LocalPool._unstick)
        compat.break_loky_executor(executor)
    feeder = compat.loky_feeder_thread(executor)
    # Work not yet handed to a worker: loky's kill_workers shutdown forgets these
    # work items but not their ids still queued, on which its manager thread then
    # dies of a KeyError (a traceback, and queues never closed). Their futures
    # fail with ShutdownExecutorError as the others do.
    compat.drop_loky_queued_work(executor)
    executor.shutdown(wait=True, kill_workers=True)
    if feeder is not None and feeder is not threading.current_thread():
        feeder.join(timeout=_FEEDER_JOIN)


def _hard_stop(signum: int) -> None:
    """The second signal: kill every process of the run and exit now, as kill -9 would.

    Lines are appended whole at the end of each batch, and --resume drops a
    line cut by this exit, so nothing is lost. The resource trackers are spared:
    once this process and the workers are gone they remove the semaphores left
    behind and exit on their own.
    """
    # A record being written to standard output when the process ends is cut short:
    # nothing there drops it, as --resume does in an OUTDIR.
    advice = ("run the same command with --resume to finish" if _controller.resumable
              else "the last record on standard output may be cut short")
    with contextlib.suppress(OSError):
        os.write(2, f"\nfastdump: {signal_name(signum)} again: stopped at once; "
                    f"{advice}\n".encode())
    spared = compat.resource_tracker_pids()
    for pid in _descendants(os.getpid()):
        if pid not in spared:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):  # best effort: the tracker would do it too
        # as a normal exit would (os._exit skips that); else loky's resource tracker
        # unlinks them once we are gone, as cleanly, but warning of "leaked semlock"
        compat.release_semaphores()
    os._exit(exit_code(signum))


def _descendants(root: int) -> list[int]:
    """Every process below ``root``: from /proc, else psutil, else loky's own list."""
    if os.path.isdir("/proc/self"):
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fp:
                    stat = fp.read()
            except OSError:
                continue  # gone meanwhile
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(name))
        found, todo = [], [root]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found
    try:
        import psutil
    except ImportError:
        return compat.loky_worker_pids()
    return [p.pid for p in psutil.Process(root).children(recursive=True)]
