"""The ``fastdump`` command: argument parsing only; the work is in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import FastdumpError
from .runner import FORMATS, Summary, dump

DUMP_HELP = """\
Dump the header of every DICOM file under PATH... into OUTDIR.

Writes OUTDIR/dump.jsonl (one DICOM JSON record per file), OUTDIR/errors.jsonl
(one line per file that could not be read, with the reason) and
OUTDIR/summary.json. Every regular file found is in exactly one of the two.
A bad file never stops the run; the exit code is 0 when the run finished.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastdump",
        description="Pull the tags out of a whole DICOM archive, fast.",
    )
    parser.add_argument("--version", action="version", version=f"fastdump {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_dump(sub)
    return parser


def _add_dump(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dump", help="dump every file's tags", description=DUMP_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="DICOM files and/or directories (walked recursively)")
    p.add_argument("-o", "--out", required=True, metavar="OUTDIR",
                   help="output directory (created if missing; must be empty or a fastdump "
                        "output used with --resume/--overwrite)")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl: DICOM JSON records in dump.jsonl (default); tags: one "
                        "<name>_tags.txt per file listing its tags, input tree mirrored")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="worker processes (default: all cores; -1 all, -2 all but one)")
    p.add_argument("--files-from", metavar="FILE",
                   help="read paths to dump from FILE, one per line ('-' for stdin)")
    p.add_argument("--bulk-threshold", type=int, default=1024, metavar="BYTES",
                   help="binary values whose base64 form is longer than this are not read "
                        "but written as a BulkDataURI (file, offset, length); default 1024")
    p.add_argument("--resume", action="store_true",
                   help="finish or update an earlier run into OUTDIR: only new or changed "
                        "files are read; records of changed or deleted files are replaced")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier fastdump run in OUTDIR")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="follow symlinks found inside directories (skipped by default)")
    p.add_argument("--file-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="give up on a file after this long and report it (default 300)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=_run_dump)


def _run_dump(args: argparse.Namespace) -> int:
    files_from = None
    if args.files_from == "-":
        files_from = sys.stdin
    elif args.files_from:
        try:
            files_from = open(args.files_from, encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            raise FastdumpError(
                f"cannot read --files-from {args.files_from}: {exc.strerror}"
            ) from None
    summary = dump(
        args.paths, args.out, format=args.format, jobs=args.jobs, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress,
        bulk_threshold=args.bulk_threshold, files_from=files_from,
        follow_symlinks=args.follow_symlinks, file_timeout=args.file_timeout,
    )
    _report(summary)
    return 130 if summary.interrupted else 0


def _report(s: Summary) -> None:
    resumed = f", {s.unchanged} unchanged, {s.gone} gone" if (s.unchanged or s.gone) else ""
    print(
        f"fastdump: {s.ok} dumped, {s.errors} errors, {s.skipped} skipped{resumed} "
        f"in {s.seconds:.1f} s ({s.files_per_s:.0f} files/s, {s.mb_per_s:.1f} MB/s) -> {s.out_dir}",
        file=sys.stderr,
    )
    if s.errors:
        print(f"fastdump: see {s.out_dir}/errors.jsonl for the files that could not be read",
              file=sys.stderr)
    if s.interrupted:
        print("fastdump: interrupted; run the same command with --resume to finish",
              file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except FastdumpError as exc:
        print(f"fastdump: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
