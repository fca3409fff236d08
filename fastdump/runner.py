"""The whole job: inputs -> walk -> batches -> pool -> writers, with accounting.

Exactly once: every regular file the walk finds either is skipped because
OUTDIR already accounts for it unchanged (--resume), or goes into exactly one
batch, whose outcome writes exactly one line to the ledger or to errors.jsonl.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import pydicom
from tqdm import tqdm

from . import __version__, ledger, stopping
from .batching import BatchSizer, batches
from .errors import InputNotFoundError, OptionError, OutputDirError, OutputWriteError
from .outdir import writing
from .parquet import check_columns
from .pool import LocalPool, run
from .record import Options
from .selection import parse_tags
from .shard import Shard, check_resume, check_shard, in_shard, label
from .walk import Entry, Found, Problem, Skipped, read_path_list, walk
from .writers import MANIFEST_FILE, SUMMARY_FILE, WRITERS, TagsLayout, Writer, atomic_write

FORMATS = tuple(WRITERS)
_WALK_AHEAD = 20_000  # files the walk may find ahead of the workers


@dataclass
class Summary:
    """What a run did. Also written to OUTDIR/summary.json."""

    out_dir: str
    format: str
    files: int = 0  # regular files found by the walk
    ok: int = 0  # dumped this run
    errors: int = 0  # reported in errors.jsonl this run
    skipped: int = 0  # symlinks not followed, FIFOs, sockets...
    unchanged: int = 0  # already in OUTDIR with the same size and mtime (--resume)
    new: int = 0
    changed: int = 0
    gone: int = 0  # in OUTDIR from an earlier run, no longer in the archive
    bytes: int = 0  # size of the files read this run
    seconds: float = 0.0
    files_per_s: float = 0.0
    mb_per_s: float = 0.0
    jobs: int = 1
    interrupted: bool = False
    signal: str | None = None  # the signal that stopped the run ("SIGTERM"), if one did
    error: str | None = None  # why OUTDIR could not be written, if it could not
    shard: str | None = None  # "I/N" for a --shard run
    fastdump_version: str = __version__
    pydicom_version: str = pydicom.__version__
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def dump(
    paths: Iterable[str] = (),
    out_dir: str | os.PathLike = "fastdump-out",
    *,
    format: str = "jsonl",
    jobs: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    bulk_threshold: int = 1024,
    files_from: Iterable[str] | None = None,
    follow_symlinks: bool = False,
    file_timeout: float | None = 300.0,
    batch_size: int | None = None,
    scheduler: str | None = None,
    columns: Sequence[str] | str | None = None,
    shard: Shard | str | None = None,
    tags: str | Iterable[str | int] | None = None,
    bulk_any_vr: bool = False,
) -> Summary:
    """Dump every DICOM file under ``paths`` (and ``files_from``) into ``out_dir``.

    ``paths`` are files or directories (walked recursively); ``files_from`` is
    an iterable of lines, one path each (e.g. an open file). Bad files become
    lines of ``errors.jsonl``; they never stop the run. Raises
    :class:`~fastdump.errors.FastdumpError` subclasses for unusable requests.

    A path may be a URL (``s3://bucket/prefix/``, any fsspec protocol).
    ``scheduler`` runs the batches on a Dask cluster (``tcp://host:port``, or
    ``"local"`` for a LocalCluster of ``jobs`` processes) instead of local processes.
    ``batch_size``: files per batch; by default batches are sized by the work they
    take (see :mod:`fastdump.batching`).
    """
    paths = [os.fspath(p) for p in paths]
    jobs = _resolve_jobs(jobs)
    _check_options(format, bulk_threshold, batch_size, file_timeout)
    columns = check_columns(format, columns)
    shard = check_shard(shard)
    selected = parse_tags(tags)
    _check_inputs(paths, files_from)
    out = Path(out_dir)
    _prepare_out_dir(out, format, resume, overwrite)
    if resume:
        check_resume(out, shard)
    writer_cls = WRITERS[format]
    opts = Options(bulk_threshold=bulk_threshold, file_timeout=file_timeout, format=format,
                   columns=columns, tags=selected, bulk_any_vr=bulk_any_vr)
    with writing(out):
        opts = writer_cls.prepare(out, opts, resume)
    previous = ledger.load(out, writer_cls.ledger_name) if resume else ledger.Ledger()
    with writing(out):
        writer = writer_cls(out, TagsLayout(paths if files_from is None else []))
    summary = Summary(out_dir=str(out), format=format, jobs=jobs, shard=label(shard))
    job = _Job(summary, previous, writer, progress, resume, shard, scheduler,
               dedupe=len(paths) + (files_from is not None) > 1)
    # SIGTERM and SIGHUP stop the run as Ctrl-C does, and so does a full disk. Outside
    # the work itself, a stop signal is only noted: the rest is what a stop does anyway.
    with stopping.stop_signals(), stopping.deferred(raise_pending=False, children=False):
        try:
            with stopping.interruptible():
                job.run(_inputs(paths, files_from), follow_symlinks, opts, jobs, batch_size)
        except (KeyboardInterrupt, OutputWriteError) as exc:
            job.stopped(exc)
        finally:
            job.close()
        if resume and not summary.interrupted:
            job.settle(writer_cls.ledger_name)
        job.write_summary()
    if job.failure is not None:
        raise job.failure
    return summary


class _Job:
    """The state of one run: counters, progress bar, what the walk has seen."""

    def __init__(self, summary: Summary, previous: ledger.Ledger, writer: Writer, progress: bool,
                 resume: bool, shard: Shard | None, scheduler: str | None, dedupe: bool):
        self.summary = summary
        self.previous = previous
        self.writer = writer
        # --resume: every path found now, to tell changed and gone files (a fresh run
        # keeps no per-file state, so its memory stays flat however big the archive)
        self.current: dict[str, ledger.Stat] | None = {} if resume else None
        self.dedupe = dedupe  # several inputs may reach a file twice
        self.shard = shard  # --shard: files of other shards are not this run's
        self.scheduler = scheduler  # --scheduler: a Dask cluster instead of local processes
        self.bar = tqdm(total=0, unit="file", file=sys.stderr, disable=not progress,
                        dynamic_ncols=True, smoothing=0.05)
        self.started = time.perf_counter()
        self.failure: OutputWriteError | None = None  # OUTDIR could not be written

    def run(self, inputs: Iterator[str], follow: bool, opts: Options, jobs: int,
            batch_size: int | None):
        found = _walk_in_background(inputs, follow, self.dedupe)
        with _open_pool(self.scheduler, jobs) as pool:
            self.summary.jobs = pool.jobs  # on a cluster: its worker threads
            sizer = BatchSizer(pool.jobs, batch_size)
            work = batches(self._to_read(found), sizer)
            for outcomes in run(pool, work, opts, in_flight=2 * pool.jobs):
                self._write(outcomes)
                sizer.finished(len(outcomes))

    def _to_read(self, found: Iterator[Found]) -> Iterator[Entry | Problem]:
        """Count what the walk finds and pass on what must be read now."""
        s = self.summary
        for item in found:
            if not in_shard(item.path, self.shard):
                continue
            if isinstance(item, Skipped):
                s.skipped += 1
                continue
            s.files += 1
            stat = (item.size, item.mtime)
            if self.current is not None:
                self.current[item.path] = stat
            before = self.previous.done.get(item.path)
            if before is None:
                s.new += 1
            elif before == stat:
                s.unchanged += 1
                continue
            else:
                s.changed += 1
            self.bar.total += 1
            yield item

    def _write(self, outcomes) -> None:
        # A batch is written whole before a stop signal is acted on.
        with stopping.deferred(), writing(self.writer.out_dir):
            self._write_batch(outcomes)

    def _write_batch(self, outcomes) -> None:
        s = self.summary
        nbytes = 0
        for outcome in outcomes:
            if self.current is not None:  # the stat the worker read: the file may have changed
                self.current[outcome.path] = (outcome.size, outcome.mtime)
            if outcome.error_line is not None:
                self.writer.write_error(outcome.error_line)
                s.errors += 1
            else:
                self.writer.write(outcome.entry, outcome.payload)
                s.ok += 1
            nbytes += outcome.size or 0
        self.writer.flush()
        s.bytes += nbytes
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{s.bytes / 1e6 / elapsed:.1f} MB/s, {s.errors} errors",
                                 refresh=False)
        self.bar.update(len(outcomes))

    def stopped(self, exc: BaseException) -> None:
        """The run was stopped: by a signal (Ctrl-C, SIGTERM, SIGHUP), or by OUTDIR."""
        s = self.summary
        s.interrupted = True
        if isinstance(exc, OutputWriteError):
            self.failure = exc
            s.error = str(exc)
        elif s.signal is None:
            s.signal = stopping.signal_name(stopping.signal_number(exc))
        stopping.stop_local_workers()  # still reading batches nobody will write
        self._note_signal()

    def close(self) -> None:
        """Flush and close the writer (the lines read so far, whole); stop the clock."""
        try:
            with writing(self.writer.out_dir):
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
                with writing(self.writer.out_dir):
                    _write_summary(self.writer.out_dir, self.summary)
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

    def settle(self, ledger_name: str) -> None:
        """After a resume: drop records of changed and vanished files, and duplicates."""
        gone = set(self.previous.done) - set(self.current)
        self.summary.gone = len(gone)
        if gone or self.summary.changed or self.previous.duplicates:
            # Interruptible: every file is rewritten under a temporary name and
            # renamed, and the next --resume compacts again.
            try:
                with stopping.interruptible(), writing(self.writer.out_dir):
                    dropped = ledger.compact(self.writer.out_dir, ledger_name, self.current)
                    self.writer.forget(dropped, self.current)
            except (KeyboardInterrupt, OutputWriteError) as exc:
                self.stopped(exc)


def _inputs(paths: list[str], files_from: Iterable[str] | None) -> Iterator[str]:
    yield from paths
    if files_from is not None:
        yield from read_path_list(files_from)


def _walk_in_background(inputs: Iterator[str], follow: bool, dedupe: bool) -> Iterator[Found]:
    """Walk in a thread so the progress bar learns the total while files are read.

    The queue is bounded: a walk far ahead of the workers would otherwise hold
    the whole archive's paths in memory.
    """
    found: queue.Queue = queue.Queue(maxsize=_WALK_AHEAD)
    done = object()
    failure: list[BaseException] = []

    def producer() -> None:
        try:
            for item in walk(inputs, follow_symlinks=follow, dedupe=dedupe):
                found.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            failure.append(exc)
        finally:
            found.put(done)

    threading.Thread(target=producer, name="fastdump-walk", daemon=True).start()
    while (item := found.get()) is not done:
        yield item
    if failure:
        raise failure[0]


def _open_pool(scheduler: str | None, jobs: int) -> contextlib.AbstractContextManager:
    """Local worker processes, or the Dask cluster at ``scheduler`` ("local": a new one)."""
    if scheduler is None:
        return contextlib.nullcontext(LocalPool(jobs))
    from .dask_pool import DaskPool  # only --scheduler needs Dask

    return DaskPool(scheduler, jobs)


def _resolve_jobs(jobs: int | None) -> int:
    cores = os.cpu_count() or 1
    if jobs is None or jobs == 0:
        return cores
    if jobs < 0:  # joblib's convention: -1 = all cores, -2 = all but one
        return max(1, cores + 1 + jobs)
    return jobs


def _check_options(fmt: str, bulk_threshold: int, batch_size: int | None,
                   timeout: float | None):
    if fmt not in FORMATS:
        raise OptionError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if bulk_threshold < 0:
        raise OptionError(f"--bulk-threshold must be 0 or more bytes, not {bulk_threshold}")
    if batch_size is not None and batch_size < 1:
        raise OptionError(f"batch size must be at least 1, not {batch_size}")
    if timeout is not None and timeout <= 0:
        raise OptionError(f"--file-timeout must be more than 0 seconds, not {timeout}")


def _check_inputs(paths: list[str], files_from: Iterable[str] | None) -> None:
    if not paths and files_from is None:
        raise InputNotFoundError("nothing to dump: give at least one PATH or --files-from")
    for path in paths:
        if "://" in path:  # s3://bucket/prefix/ and other fsspec URLs
            from .remote import check_url

            check_url(path)
        elif not os.path.lexists(path):
            raise InputNotFoundError(f"no such file or directory: {path}")


def _prepare_out_dir(out: Path, fmt: str, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"OUTDIR {out} is a file, not a directory")
    manifest = out / MANIFEST_FILE
    if out.is_dir() and any(out.iterdir()):
        if not manifest.exists():
            raise OutputDirError(
                f"OUTDIR {out} is not empty and holds no fastdump output: choose an empty "
                "or new directory"
            )
        previous = orjson.loads(manifest.read_bytes())
        if resume and previous.get("format") != fmt:
            raise OutputDirError(
                f"OUTDIR {out} holds a --format {previous.get('format')} run; resume it with "
                f"that format, or use another OUTDIR"
            )
        if overwrite and not resume:
            with writing(out):
                shutil.rmtree(out)
        elif not resume:
            raise OutputDirError(
                f"OUTDIR {out} already holds a fastdump run: use --resume to finish or update "
                "it, or --overwrite to replace it"
            )
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(manifest, orjson.dumps({"format": fmt, "fastdump_version": __version__}))


def _write_summary(out: Path, summary: Summary) -> None:
    atomic_write(out / SUMMARY_FILE, orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2),
                 parents=False)
