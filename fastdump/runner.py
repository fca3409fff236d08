"""The whole job: inputs -> walk -> batches -> pool -> writers, with accounting.

Exactly once: every regular file the walk finds either is skipped because
OUTDIR already accounts for it unchanged (--resume), or goes into exactly one
batch, whose outcome writes exactly one line to the ledger or to errors.jsonl.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import compat, hotpath, ledger, stopping
from .batching import BatchSizer, batches
from .errors import InputNotFoundError, OptionError, OutputWriteError
from .formats import FORMATS, STDOUT, for_output
from .formats.base import Format, Writer
from .formats.stdout import StdoutClosed
from .lines import error_kind
from .outdir import holding, writing
from .pool import StartingPool, WalkSoFar, run_batches
from .selection import parse_tags
from .shard import Shard, check_resume, check_shard, in_shard, label
from .source import is_url
from .types import (
    FETCH_CONCURRENCY,
    SKIPPED_EXAMPLES,
    BatchResult,
    Entry,
    Found,
    Lines,
    Options,
    Outcome,
    Problem,
    ReadSettings,
    Skipped,
    Summary,
)
from .walk import PathArg, path_args, path_list, read_path_list, walk_chunks

_WALK_AHEAD = 5_000  # files the walk may find ahead of the workers: seconds of work
WALK_IDLE = 0.2  # seconds without a file found after which the files gathered go on
BAR_DELAY = 0.5  # seconds before the progress bar shows
LOG_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal

__all__ = ["FORMATS", "Summary", "dump"]


def dump(
    paths: PathArg | Iterable[PathArg] = (),
    out_dir: str | os.PathLike = "fastdump-out",
    *,
    format: str = "jsonl",
    jobs: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    bulk_threshold: int = 1024,
    files_from: PathArg | Iterable[str] | None = None,
    follow_symlinks: bool = False,
    file_timeout: float | None = 300.0,
    batch_size: int | None = None,
    scheduler: str | None = None,
    columns: Sequence[str] | str | None = None,
    shard: Shard | str | None = None,
    tags: str | Iterable[str | int] | None = None,
    bulk_any_vr: bool = False,
    fetch_concurrency: int = FETCH_CONCURRENCY,
) -> Summary:
    """Dump every DICOM file under ``paths`` (and ``files_from``) into ``out_dir``.

    ``paths`` are files or directories (walked recursively): one path, or several;
    ``files_from`` is a list of paths, one per line: a file's name (``"-"``:
    standard input), or its lines (an open file, a list). Bad files become
    lines of ``errors.jsonl``; they never stop the run. Raises
    :class:`~fastdump.errors.FastdumpError` subclasses for unusable requests.

    ``out_dir="-"`` writes the records (and error lines) to standard output as
    JSON Lines instead; nothing is written to disk, and ``resume`` is refused.
    A path may be a URL (``s3://bucket/prefix/``, any fsspec protocol).
    ``scheduler`` runs the batches on a Dask cluster (``tcp://host:port``, or
    ``"local"`` for a LocalCluster of ``jobs`` processes) instead of local processes.
    ``batch_size``: files per batch; by default batches are sized by the work they
    take (see :mod:`fastdump.batching`). ``fetch_concurrency``: for URLs, the header
    requests each worker keeps in flight (see :class:`fastdump.remote.Heads`).
    """
    inputs = list(path_args(paths))
    jobs = resolve_jobs(jobs)
    if resume and overwrite:  # (before, --resume won, silently)
        raise OptionError("--resume and --overwrite exclude each other: --resume adds to "
                          "the run in OUTDIR, --overwrite replaces it")
    _check_options(batch_size, file_timeout, fetch_concurrency)  # (the threshold: ReadSettings)
    _check_destinations(out_dir, scheduler)
    fmt = for_output(format, out_dir)
    read = ReadSettings(bulk_threshold=bulk_threshold, tags=parse_tags(tags),
                        bulk_any_vr=bulk_any_vr)
    opts = fmt.check_options(Options(read=read, file_timeout=file_timeout, format=format,
                                     columns=_columns(columns),
                                     fetch_concurrency=fetch_concurrency))
    shard = check_shard(shard)
    _check_inputs(inputs, files_from)
    if scheduler is not None:
        from .dask_pool import check_scheduler  # only --scheduler needs Dask

        check_scheduler(scheduler)
    out = Path(out_dir)
    to_stdout = os.fspath(out_dir) == STDOUT
    # Held from before OUTDIR is looked at to the end: a second run into it (the same
    # command started twice, a --resume while the first still runs) is refused.
    with holding(None if to_stdout else out) as hold, \
            path_list(files_from) as files_from:
        fmt.claim(out, resume, overwrite, opts.read)
        hold.again()  # OUTDIR made now, or emptied by --overwrite
        if resume:
            check_resume(out, fmt.read_summary(out), shard)
        with writing(out):
            opts = fmt.prepare(out, opts, resume)
        # --resume: what OUTDIR holds, indexed on disk (a file in OUTDIR, deleted at the end)
        previous = fmt.load_ledger(out) if resume else None
        with writing(out):
            writer = fmt.open_writer(out, inputs if files_from is None else [])
        summary = Summary(out_dir=str(out), format=format, jobs=jobs, shard=label(shard))
        # several inputs, or a list (which may name a file twice), may reach a file twice
        job = _Job(summary, fmt, previous, writer, progress, shard, scheduler,
                   dedupe=len(inputs) > 1 or files_from is not None)
        # SIGTERM and SIGHUP stop the run as Ctrl-C does, and so does a full disk. Outside
        # the work itself, a stop signal is only noted: the rest is what a stop does anyway.
        with stopping.stop_signals(resumable=not to_stdout), \
                stopping.deferred(raise_pending=False, children=False):
            try:
                with stopping.interruptible():
                    job.process(_inputs(inputs, files_from), follow_symlinks, opts, jobs,
                                batch_size)
            except (KeyboardInterrupt, OutputWriteError, StdoutClosed) as exc:
                job.stopped(exc)
            finally:
                job.close()
            if previous is not None:
                with contextlib.closing(previous):
                    if not summary.interrupted:
                        job.settle()
            if not summary.interrupted:
                kept_errors = (previous.unchanged_errors + previous.unreached_errors
                               if previous is not None else 0)
                summary.out_dir_records = (summary.ok + summary.unchanged + summary.not_reached
                                           - kept_errors)
                summary.out_dir_errors = summary.errors + kept_errors
            summary.pydicom_version = compat.pydicom_version()
            summary.hot_path = hotpath.hot_path()
            job.write_summary()
        if job.failure is not None:
            raise job.failure
    return summary


class _Job:
    """The state of one run: counters, progress bar, what the walk has seen."""

    def __init__(self, summary: Summary, fmt: Format, previous: ledger.Ledger | None,
                 writer: Writer, progress: bool, shard: Shard | None, scheduler: str | None,
                 dedupe: bool):
        self.summary = summary
        self.fmt = fmt
        self.out = Path(summary.out_dir)
        self.previous = previous
        self.writer = writer
        self.dedupe = dedupe  # several inputs may reach a file twice
        self.shard = shard  # --shard: files of other shards are not this run's
        self.scheduler = scheduler  # --scheduler: a Dask cluster instead of local processes
        self.bar = _progress_bar(progress)
        self.started = time.perf_counter()
        self.failure: OutputWriteError | None = None  # OUTDIR could not be written

    def process(self, inputs: Iterator[str], follow: bool, opts: Options, jobs: int,
                batch_size: int | None) -> None:
        found = _Walk(inputs, follow, self.dedupe)

        def to_read() -> WalkSoFar:
            ended = found.ended  # before the count: once ended, the count is whole
            queued = found.queued()
            return WalkSoFar(self.bar.total + queued, ended, queued >= _WALK_AHEAD)

        # A resumed run may follow one that a file crashed: every batch in a worker.
        with contextlib.closing(found), \
                _open_pool(self.scheduler, jobs, to_read, isolate=self.previous is not None) \
                as pool:
            self.summary.jobs = pool.jobs  # on a cluster: its worker threads
            sizer = BatchSizer(pool.jobs, batch_size, opts.fetch_concurrency)
            work = batches(self._to_read(found), sizer)
            for result in run_batches(pool, work, opts, in_flight=2 * pool.jobs):
                sizer.finished(self._write(result))

    def _to_read(self, found: Iterable[list[Found] | None]) -> Iterator[Entry | Problem | None]:
        """Count what the walk finds and pass on what must be read now.

        The walk hands on a directory's files at a time; with --resume, each such
        chunk is looked up in the ledger's index at once.
        """
        s = self.summary
        previous = self.previous
        for chunk in found:
            if chunk is None:  # the walk has found nothing for a while
                yield None
                continue
            files: list[Entry | Problem] = []
            passed: list[str] = []
            for item in chunk:
                if not in_shard(item.path, self.shard):
                    continue
                if isinstance(item, Skipped):
                    s.skipped += 1
                    if len(s.skipped_examples) < SKIPPED_EXAMPLES:
                        s.skipped_examples.append({"path": item.path, "reason": item.reason})
                    passed.append(item.path)
                    continue
                files.append(item)
            if previous is not None and passed:  # a file then, maybe: its line goes
                previous.passed(passed)
            s.files += len(files)
            if previous is None:  # a fresh run: every file is new
                s.new += len(files)
                self.bar.total += len(files)
                yield from files
                continue
            for item, before in zip(files, previous.check(files), strict=True):
                if before is None:
                    s.new += 1
                elif before == (item.size, item.mtime):
                    s.unchanged += 1
                    continue
                else:
                    s.changed += 1
                self.bar.total += 1
                yield item

    def _write(self, result: BatchResult) -> int:
        """Write a batch's outcomes; how many files it held."""
        # A batch is written whole before a stop signal is acted on.
        with stopping.deferred(), writing(self.out):
            if isinstance(result, Lines):
                files = self._write_lines(result)
            else:
                files = self._write_outcomes(result)
            self.writer.flush()
        s = self.summary
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{s.bytes / 1e6 / elapsed:.1f} MB/s, {s.errors} errors",
                                 refresh=False)
        self.bar.update(files)
        return files

    def _write_outcomes(self, outcomes: list[Outcome]) -> int:
        s = self.summary
        for outcome in outcomes:
            if outcome.error_line is not None:
                self.writer.write_error(outcome.error_line)
                s.count_error(error_kind(outcome.error_line))
            else:
                self.writer.write(outcome)
                s.ok += 1
            if outcome.fallback is not None:
                self._fell_back(outcome.fallback)
            s.bytes += outcome.size or 0
        return len(outcomes)

    def _write_lines(self, lines: Lines) -> int:
        s = self.summary
        self.writer.write_lines(lines.records)
        for line in lines.errors:
            self.writer.write_error(line)
            s.count_error(error_kind(line))
        for reason in lines.fallbacks:
            self._fell_back(reason)
        s.ok += lines.dumped
        s.bytes += lines.nbytes
        return lines.dumped + len(lines.errors)

    def _fell_back(self, reason: str) -> None:
        s = self.summary
        s.fallbacks += 1
        s.fallback_reasons[reason] = s.fallback_reasons.get(reason, 0) + 1

    def stopped(self, exc: BaseException) -> None:
        """The run was stopped: by a signal (Ctrl-C, SIGTERM, SIGHUP), by OUTDIR, or by
        the reader of standard output going away (``-o -``: as SIGPIPE would)."""
        s = self.summary
        s.interrupted = True
        if isinstance(exc, OutputWriteError):
            self.failure = exc
            s.error = str(exc)
        elif isinstance(exc, StdoutClosed):
            s.signal = "SIGPIPE"
        elif s.signal is None:
            s.signal = stopping.signal_name(stopping.signal_number(exc))
        from .pool import shutdown_local_pool

        shutdown_local_pool()  # still reading batches nobody will write
        self._note_signal()

    def close(self) -> None:
        """Flush and close the writer (the lines read so far, whole); stop the clock."""
        try:
            with writing(self.out):
                self.writer.close()
        except OutputWriteError as exc:
            if self.failure is None:
                self.stopped(exc)
        finally:
            self.finish()
            self._note_signal()

    def write_summary(self) -> None:
        """summary.json; after a write error, only if the disk lets us."""
        for _ in range(2):  # again if a signal came while it was written
            signal_before = self.summary.signal
            try:
                with writing(self.out):
                    self.fmt.write_summary(self.out, self.summary)
            except OutputWriteError:
                if self.failure is None:
                    raise
            self._note_signal()
            if self.summary.signal == signal_before:
                return

    def _note_signal(self) -> None:
        """A stop signal held back meanwhile marks the run as stopped by it."""
        signum = stopping.take_pending()
        if signum is not None:
            self.summary.interrupted = True
            self.summary.signal = self.summary.signal or stopping.signal_name(signum)

    def finish(self) -> None:
        s = self.summary
        self.bar.close()
        s.seconds = round(time.perf_counter() - self.started, 3)
        done = s.ok + s.errors
        s.files_per_s = round(done / s.seconds, 1) if s.seconds else 0.0
        s.mb_per_s = round(s.bytes / 1e6 / s.seconds, 2) if s.seconds else 0.0

    def settle(self) -> None:
        """After a resume: drop records of changed and vanished files, and duplicates."""
        previous = self.previous
        assert previous is not None  # kept by every resumed run
        s = self.summary
        # The walk meets each file once (what two inputs both reach is de-duplicated):
        # the ledger's other files are gone, but those still there, which it did not reach.
        unreached = previous.paths - s.unchanged - s.changed
        s.not_reached = previous.keep_unreached() if unreached else 0
        s.gone = unreached - s.not_reached
        if s.gone or s.changed or previous.duplicates:
            # Interruptible: every file is rewritten under a temporary name and
            # renamed, and the next --resume compacts again.
            try:
                with stopping.interruptible(), writing(self.out):
                    self.fmt.compact(self.out, previous, self.writer.forget)
            except (KeyboardInterrupt, OutputWriteError) as exc:
                self.stopped(exc)


def _progress_bar(progress: bool) -> Any:
    """The progress bar on stderr; a line now and then where no bar can show; or nothing."""
    if not progress:
        return _NoBar()
    return _DelayedBar() if _shows_a_bar(sys.stderr) else _ProgressLines()


def _shows_a_bar(stream: Any) -> bool:
    """A terminal, or a notebook (whose output area draws tqdm's ``\\r`` updates)."""
    if "ipykernel" in type(stream).__module__:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class _DelayedBar:
    """tqdm's bar, shown once the run has lasted ``BAR_DELAY`` seconds (tqdm's ``delay``).

    A run done sooner, such as a look at one file, shows only the closing line and
    never imports tqdm: its import (~40 ms) is a sixth of such a run.
    """

    def __init__(self) -> None:
        self.total = 0
        self._since = time.perf_counter()
        self._done = 0
        self._postfix = ""
        self._bar: Any = None

    def update(self, n: int) -> None:
        if self._bar is None:
            self._done += n
            if time.perf_counter() - self._since >= BAR_DELAY:
                self._open()
            return
        self._bar.total = self.total
        self._bar.update(n)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=refresh)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _open(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, unit="file", file=sys.stderr, dynamic_ncols=True,
                         smoothing=0.05)
        # its elapsed time and rate count the whole run (on tqdm's own clock)
        self._bar.start_t -= time.perf_counter() - self._since
        self._bar.set_postfix_str(self._postfix, refresh=False)
        self._bar.update(self._done)


class _ProgressLines:
    """Progress for a log file (a batch job's stderr): one plain line every :data:`LOG_EVERY`
    seconds. tqdm there would append up to ten ``\\r``-joined updates a second, one
    "line" of megabytes over a long run."""

    def __init__(self) -> None:
        self.total = 0
        self._since = self._last = time.perf_counter()
        self._done = 0
        self._postfix = ""

    def update(self, n: int) -> None:
        self._done += n
        now = time.perf_counter()
        if now - self._last >= LOG_EVERY:
            self._last = now
            print(self._line(now - self._since), file=sys.stderr, flush=True)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self._postfix = text

    def close(self) -> None:
        pass  # the closing line follows

    def _line(self, elapsed: float) -> str:
        share = f" ({100 * self._done / self.total:.0f}%)" if self.total else ""
        minutes, seconds = divmod(int(elapsed), 60)
        parts = [f"fastdump: {self._done:,}/{self.total:,} files{share} in "
                 f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}",
                 f"{self._done / elapsed:.1f} files/s", self._postfix]
        return ", ".join(part for part in parts if part)


class _NoBar:
    total = 0

    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _inputs(paths: list[str], files_from: Iterable[str] | None) -> Iterator[str]:
    yield from paths
    if files_from is not None:
        yield from read_path_list(files_from)


class _Walk:
    """The walk, in a thread, so the progress bar learns the total while files are read.

    The queue is bounded: a walk far ahead of the workers would otherwise hold
    the whole archive's paths in memory. It passes chunks (a directory's files),
    not single files: a queue's locks cost more than what a resume does per file.
    """

    def __init__(self, inputs: Iterator[str], follow: bool, dedupe: bool) -> None:
        self._found = _ChunkQueue(maxsize=_WALK_AHEAD)
        self._failure: list[BaseException] = []
        self.ended = False  # the walk has found every file (they may still be queued)
        self._closed = threading.Event()  # the run is over: no one takes what is found
        threading.Thread(target=self._produce, args=(inputs, follow, dedupe),
                         name="fastdump-walk", daemon=True).start()

    def _produce(self, inputs: Iterator[str], follow: bool, dedupe: bool) -> None:
        try:
            for chunk in walk_chunks(inputs, follow_symlinks=follow, dedupe=dedupe):
                if not self._put(chunk):
                    break  # (the walk's generator is closed: its index on disk too)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._failure.append(exc)
        finally:
            self._put(_WALK_ENDED)
            self.ended = True

    def _put(self, item: Any) -> bool:
        """Queue ``item`` once there is room; False if the run ended first (stopped, or
        failed), which would leave this thread waiting on a full queue for good."""
        while not self._closed.is_set():
            try:
                self._found.put(item, timeout=_WALK_POLL)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """The run is over: the walk stops at its next chunk."""
        self._closed.set()

    def queued(self) -> int:
        """Files found and not yet taken (one more for the end's marker)."""
        return self._found.qsize()

    def __iter__(self) -> Iterator[list[Found] | None]:
        """The chunks found; None once the walk has found nothing for WALK_IDLE seconds,
        before waiting on (a slow ``find`` feeding ``--files-from -``: what is found
        meanwhile is read and written, not held back for more)."""
        while True:
            try:
                chunk = self._found.get(timeout=WALK_IDLE)
            except queue.Empty:
                yield None
                chunk = self._found.get()
            if chunk is _WALK_ENDED:
                break
            yield chunk
        if self._failure:
            raise self._failure[0]


_WALK_ENDED = object()
_WALK_POLL = 0.2  # seconds between looks, while the queue is full, for the run's end


class _ChunkQueue(queue.Queue):
    """A queue of chunks of files, bounded by the files it holds (``maxsize``)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.files = 0

    def _qsize(self) -> int:
        return self.files

    def _put(self, chunk: Any) -> None:
        super()._put(chunk)
        self.files += _weight(chunk)

    def _get(self) -> Any:
        chunk = super()._get()
        self.files -= _weight(chunk)
        return chunk


def _weight(chunk: Any) -> int:
    """What a chunk counts for: its files; anything else (the end marker) is one, so that
    the queue is never empty while it holds something."""
    return max(1, len(chunk)) if isinstance(chunk, list) else 1


def _open_pool(scheduler: str | None, jobs: int, found: Callable[[], WalkSoFar],
               isolate: bool) -> contextlib.AbstractContextManager:
    """Local worker processes, or the Dask cluster at ``scheduler`` ("local": a new one)."""
    if scheduler is None:
        return StartingPool(jobs, found, isolate)
    from .dask_pool import DaskPool  # only --scheduler needs Dask

    return DaskPool(scheduler, jobs)


def resolve_jobs(jobs: int | None) -> int:
    """``--jobs``: None or 0 all cores; -1 all, -2 all but one (joblib's convention)."""
    cores = os.cpu_count() or 1
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool)):
        raise OptionError(f"jobs must be a whole number of worker processes, not {jobs!r}")
    if jobs is None or jobs == 0:
        return cores
    if jobs < 0:
        return max(1, cores + 1 + jobs)
    most = max(cores, _physical_memory() // WORKER_MEMORY)
    if jobs > most:
        raise OptionError(f"--jobs {jobs} is more worker processes than this machine's memory "
                          f"holds (each takes up to ~{WORKER_MEMORY >> 20} MB): at most {most} "
                          f"here (the default: one a core, {cores})")
    return jobs


# Memory a worker process may take: Python, pydicom, joblib and numpy, and its batch
# (~60 MB measured on CT files), with room for big headers.
WORKER_MEMORY = 128 << 20


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform: do not refuse
        return 1 << 62


def _check_options(batch_size: int | None, timeout: float | None, fetch_concurrency: int
                   ) -> None:
    if batch_size is not None and not (_whole(batch_size) and batch_size >= 1):
        raise OptionError(f"batch size must be a whole number, at least 1, not {batch_size!r}")
    if timeout is not None and not (isinstance(timeout, numbers.Real) and not
                                    isinstance(timeout, bool) and 0 < timeout < math.inf):
        raise OptionError(f"--file-timeout must be a number of seconds more than 0 "
                          f"(a large one, 86400, for a day), not {timeout!r}")  # (nan too)
    if not (_whole(fetch_concurrency) and fetch_concurrency >= 1):
        raise OptionError("--fetch-concurrency must be a whole number, at least 1, not "
                          f"{fetch_concurrency!r}")


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_destinations(out_dir: object, scheduler: object) -> None:
    """Arguments of the wrong kind, said as such (they were a TypeError from deep inside)."""
    if not isinstance(out_dir, str | os.PathLike):
        raise OptionError(f"out_dir must be a folder's path (str or Path), or \"-\" for "
                          f"standard output, not {out_dir!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise OptionError(f"scheduler must be a Dask scheduler's address "
                          f"(\"tcp://host:8786\") or \"local\", not {scheduler!r}")


def _columns(columns: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if columns is None:
        return None
    return tuple(columns.split(",") if isinstance(columns, str) else columns)


def _check_inputs(paths: list[str], files_from: PathArg | Iterable[str] | None) -> None:
    if not paths and files_from is None:
        raise InputNotFoundError("nothing to dump: give at least one PATH or --files-from")
    for path in paths:
        if is_url(path):  # s3://bucket/prefix/ and other fsspec URLs
            from .remote import check_url

            check_url(path)
        elif not os.path.lexists(path):
            raise InputNotFoundError(f"no such file or directory: {path}")
