"""The ``fastdump`` command: argument parsing only; the work is in the library."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import hotpath, stopping
from ._version import __version__
from .errors import FastdumpError, OutputWriteError
from .formats import FORMATS, get_format
from .types import FETCH_CONCURRENCY, SKIPPED_EXAMPLES

if TYPE_CHECKING:
    from .types import Summary

DUMP_HELP = """\
Dump the header of every DICOM file under PATH... into OUTDIR.

Writes OUTDIR/dump.jsonl (one DICOM JSON record per file), OUTDIR/errors.jsonl
(one line per file that could not be read, with the reason) and
OUTDIR/summary.json. Every regular file found is in exactly one of the two.
With -o - the records and error lines go to standard output instead (for
| jq or | duckdb) and the summary to standard error.
A bad file never stops the run. Exit codes: 0 the run finished (even with bad
files), 2 a request that cannot be carried out, 71 worker processes could not
start (too many open files: ulimit -n), 74 OUTDIR could not be written (disk
full, read-only, removed; with -o -, standard output closed or full), 130
interrupted (Ctrl-C), 143 and 129 stopped by SIGTERM and SIGHUP, 141 the reader
of -o - went away (| head). After 71, 74, 130, 143, 129 or a kill, the same
command with --resume finishes the run: --resume needs the first run's --tags,
--bulk-threshold and --bulk-any-vr, so that OUTDIR holds one kind of record.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastdump",
        description="Pull the tags out of a whole DICOM archive, fast.",
    )
    parser.add_argument("--version", action="version",
                        version=f"fastdump {__version__} ({hotpath.describe()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_dump(sub)
    _add_bench(sub)
    _add_merge(sub)
    return parser


def _add_dump(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dump", help="dump every file's tags", description=DUMP_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="DICOM files and/or directories (walked recursively)")
    p.add_argument("-o", "--out", required=True, metavar="OUTDIR",
                   help="output directory (created if missing; must be empty or a fastdump "
                        "output used with --resume/--overwrite; inside a PATH, it is not "
                        "walked); '-' writes JSON Lines to standard output")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl: DICOM JSON records in dump.jsonl (default); tags: one "
                        "<name>_tags.txt per file listing its tags, input tree mirrored; "
                        "parquet: part-*.parquet, one typed row per file (pyarrow)")
    p.add_argument("--columns", metavar="KEYWORD,...",
                   help="--format parquet: the tag columns, as DICOM keywords (default: "
                        "UIDs, patient, study, series and image basics)")
    p.add_argument("--shard", metavar="I/N",
                   help="dump only the I-th of N deterministic slices of the files (1-based); "
                        "join the N outputs with fastdump merge")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="worker processes (default, or 0: all cores; -1 all, -2 all but one); "
                        "a run that fastdump's own process finishes sooner, within 3 s, "
                        "starts none")
    p.add_argument("--files-from", metavar="FILE",
                   help="read paths to dump from FILE, one per line ('-' for stdin)")
    p.add_argument("--bulk-any-vr", action="store_true",
                   help="also keep long values of the other VRs PS3.18 allows as bulk data "
                        "(DS, FL, FD, IS, UT, LT, US, UL...; e.g. RT contour points) out of the "
                        "output: written as BulkDataURI, never read")
    p.add_argument("--tags", metavar="TAG,...",
                   help="dump only these top-level elements (keywords, 8-hex-digit tags or "
                        "(gggg,eeee), e.g. PatientID,StudyInstanceUID,00080060,'(0008,0020)'); "
                        "each file is read only up to the last of them")
    p.add_argument("--bulk-threshold", type=int, default=1024, metavar="BYTES",
                   help="binary values whose base64 form is longer than this are not read "
                        "but written as a BulkDataURI (file, offset, length); default 1024")
    p.add_argument("--resume", action="store_true",
                   help="finish or update an earlier run into OUTDIR: only new or changed "
                        "files are read; records of changed or deleted files are replaced "
                        "(give the first run's --tags, --bulk-threshold, --bulk-any-vr)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier fastdump run in OUTDIR")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="follow symlinks found inside directories (skipped by default)")
    p.add_argument("--file-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="give up on a file after this long and report it (default 300)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (a bar on a terminal; a line every 30 s in a log)")
    p.add_argument("--fetch-concurrency", type=int, default=FETCH_CONCURRENCY, metavar="N",
                   help="for s3:// and other URLs: header requests each worker keeps in "
                        f"flight (default {FETCH_CONCURRENCY})")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster at ADDRESS (tcp://HOST:PORT), or 'local' for "
                        "a LocalCluster of --jobs processes; needs distributed, the [dask] extra")
    p.set_defaults(run=_run_dump)


def _quiet_distributed() -> None:
    """distributed's client logs its reconnection attempts and reschedulings, tracebacks
    included; what they mean to the run (a scheduler lost, a worker that died) the
    command says in its own one line. (Its levels are set as it is imported.)"""
    import logging

    try:
        import distributed  # noqa: F401
    except ImportError:
        return  # dump() says which extra to install
    for name in ("distributed", "distributed.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _run_dump(args: argparse.Namespace) -> int:
    from .pool import blas_env
    from .runner import dump  # the heavy imports, only for this command

    os.environ.update(blas_env())  # this process's numpy and loky's tracker's too
    if args.scheduler:
        _quiet_distributed()

    summary = dump(
        args.paths, args.out, format=args.format, jobs=args.jobs, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress,
        bulk_threshold=args.bulk_threshold, files_from=args.files_from,
        follow_symlinks=args.follow_symlinks, file_timeout=args.file_timeout,
        scheduler=args.scheduler, columns=args.columns, shard=args.shard,
        tags=args.tags, bulk_any_vr=args.bulk_any_vr,
        fetch_concurrency=args.fetch_concurrency,
    )
    if summary.signal == "SIGPIPE":  # -o -: the reader went away; as cat would, quietly
        _silence_stdout()
        return stopping.exit_code(signal.SIGPIPE)
    _report(summary)
    if summary.interrupted:  # stopped by a signal: 128 + its number, as a shell reports it
        return stopping.exit_code(getattr(signal, summary.signal or "SIGINT"))
    return 0


def _silence_stdout() -> None:
    """Standard output's reader is gone: later flushes must not fail at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _kinds(s: Summary, most: int = 4) -> str:
    """' (1106 NotDicomError, 3 TruncatedError)': an archive's noise apart from its damage."""
    kinds = sorted(s.error_kinds.items(), key=lambda kind: (-kind[1], kind[0]))
    shown = [f"{count} {kind}" for kind, count in kinds[:most]]
    if len(kinds) > most:
        shown.append(f"{sum(count for _, count in kinds[most:])} other")
    return f" ({', '.join(shown)})" if shown else ""


def _short(x: float, digits: int = 1) -> str:
    """``x`` with ``digits`` decimals, and more below 1 (0.046 s, 0.5 files/s, not 0.0)."""
    return f"{x:.{digits}f}" if x >= 1 or x == 0 else f"{x:.2g}"


def _report(s: Summary) -> None:
    resumed = f", {s.unchanged} unchanged, {s.gone} gone" if (s.unchanged or s.gone) else ""
    if s.not_reached:
        resumed += f", {s.not_reached} kept (not under this run's PATHs)"
    if s.shard:
        resumed += f" (shard {s.shard})"
    print(
        f"fastdump: {s.ok} dumped, {s.errors} errors, {s.skipped} skipped{resumed} "
        f"in {_short(s.seconds)} s ({_short(s.files_per_s, 0)} files/s, {s.mb_per_s:.1f} MB/s)"
        f" -> {s.out_dir}",
        file=sys.stderr,
    )
    files = get_format(s.format).files  # (Parquet's start with "_")
    if s.errors and s.out_dir == "-":
        print('fastdump: the files that could not be read are the lines with an "error" key '
              f"on standard output{_kinds(s)}", file=sys.stderr)
    elif s.errors:
        print(f"fastdump: see {s.out_dir}/{files.errors} for the files that could not be "
              f"read{_kinds(s)}", file=sys.stderr)
    earlier = s.unchanged or s.gone or s.not_reached  # (not a fresh --shard run's label)
    if earlier and s.out_dir_records is not None:  # this run's counts are not OUTDIR's
        print(f"fastdump: {s.out_dir} holds {s.out_dir_records} records and "
              f"{s.out_dir_errors} error lines, the unchanged{' and kept' if s.not_reached else ''}"
              " files' included", file=sys.stderr)
    if s.skipped and s.out_dir != "-":
        print(f"fastdump: {s.out_dir}/{files.summary} names the entries skipped (the first "
              f"{SKIPPED_EXAMPLES}): symlinks not followed, FIFOs, sockets, devices, "
              "fastdump output folders, folders reached again through a symlink, a store's "
              "folder markers (keys ending in /)",
              file=sys.stderr)
    if s.interrupted:
        by = f" by {s.signal}" if s.signal else ""
        finish = ("the records written so far are whole (--resume needs an OUTDIR: "
                  "-o OUTDIR, to finish a run later)" if s.out_dir == "-"
                  else "run the same command with --resume to finish")
        print(f"fastdump: interrupted{by}; {finish}", file=sys.stderr)


BENCH_HELP = """\
Measure fastdump on a sample of your own archive.

Takes N files spread over PATH... (the same ones each time), reads them once to
warm the page cache, then runs on them, one after the other: the I/O floor
(open + read 64 KB), fastdump --jobs 1, fastdump on all cores, a plain pydicom
dcmread + to_json_dict loop, and DCMTK's dcmdump if it is on PATH; all that
--runs times (A B C, A B C, ...). Prints each tool's median time, its files/s
with the range over the runs, MB/s, peak RSS of the parent and of its workers,
and the ratios of the medians.
Nothing is kept: the output of every tool goes to a temporary directory.
"""


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark fastdump on a sample of your archive",
                       description=BENCH_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files and/or directories")
    p.add_argument("--sample", type=int, default=2000, metavar="N",
                   help="number of files to measure on (default 2000; fastdump's start-up, "
                        "~0.1 s, weighs on fewer)")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="workers of the parallel run (default: all cores; -1 all, -2 all but "
                        "one)")
    p.add_argument("--runs", type=int, default=5, metavar="N",
                   help="runs of each tool, alternated; the table shows the median and the "
                        "range (default 5)")
    p.add_argument("--no-dcmdump", action="store_true", help="do not run dcmdump")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import fallback_note, format_table, run_bench, workers_note  # only bench needs it

    rows = run_bench(args.paths, sample=args.sample, jobs=args.jobs,
                     dcmdump=not args.no_dcmdump, runs=args.runs,
                     log=lambda msg: print(f"fastdump bench: {msg}", file=sys.stderr))
    print(format_table(rows))
    for note in (fallback_note(rows), workers_note(rows)):
        if note:
            print(note)
    return 0


MERGE_HELP = """\
Join the output directories of several runs (e.g. the N --shard runs) into OUT.

All must hold the same --format. A file found in two of them is refused, naming
it; so is a run that did not finish (finish it with --resume first). OUT is
what one run over all the files would have written, and can itself be resumed.
"""


def _add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join the outputs of several runs (shards)",
                       description=MERGE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="OUTDIR", help="fastdump output directories")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="the merged output directory (new, or empty)")
    p.set_defaults(run=_run_merge)


def _run_merge(args: argparse.Namespace) -> int:
    from .merge import merge

    s = merge(args.inputs, args.out)
    print(f"fastdump: merged {len(args.inputs)} outputs: {s.ok} records, {s.errors} errors "
          f"-> {s.out_dir}", file=sys.stderr)
    if s.extra.get("missing_shards"):
        print(f"fastdump: warning: shards {', '.join(s.extra['missing_shards'])} are not "
              "in this merge", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except FastdumpError as exc:  # one line; OUTDIR write errors have their own exit code
        print(f"fastdump: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # stopped outside a dump's own handling (merge, bench)
        stopping.take_pending()  # acted on here: not raised again as the command ends
        print("fastdump: interrupted", file=sys.stderr)
        return stopping.exit_code(stopping.signal_number(exc))


def _flush_stdout(code: int) -> int:
    """Flush standard output (closed at start: None); a failure not yet reported is exit 74."""
    if sys.stdout is None:
        return code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as exc:
        if code == 0:
            print(f"fastdump: error: cannot write to standard output: {exc.strerror or exc}",
                  file=sys.stderr)
            return OutputWriteError.exit_code
    return code


def run() -> None:
    """The console script: :func:`main`, then stop the workers and exit.

    Workers left idle would hold the caller's pipes open for a minute. And
    should joining the pool's threads ever hang (a worker that died in the
    middle of an answer), a timer ends the process: a CLI that is done exits.
    SIGTERM and SIGHUP stop it as Ctrl-C does, until the workers are stopped.
    """
    code = 0
    try:
        with stopping.stop_signals():
            code = main()
            code = _flush_stdout(code)
            sys.stderr.flush()
            timer = threading.Timer(_EXIT_GRACE, os._exit, args=(code,))
            timer.daemon = True
            timer.start()
            if "fastdump.pool" in sys.modules:  # workers were started only if the pool was
                from .pool import shutdown_local_pool

                with stopping.deferred():
                    shutdown_local_pool()
    except KeyboardInterrupt as exc:  # came while the workers were stopped, or as it ended
        code = stopping.exit_code(stopping.signal_number(exc))
    _exit(code)


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown: freeing every module's objects one by
    one (pydicom's dictionaries, numpy's...) took 0.13-0.2 s, a tenth of a small run.
    Everything fastdump wrote is closed by now; the exit handlers still run."""
    atexit._run_exitfuncs()
    code = _flush_stdout(code)
    sys.stderr.flush()
    os._exit(code)


_EXIT_GRACE = 30.0  # seconds


if __name__ == "__main__":  # pragma: no cover
    run()
