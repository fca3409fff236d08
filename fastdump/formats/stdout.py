"""``-o -``: JSON Lines records on standard output, for pipes (``| jq``, ``| duckdb``).

Each dumped file is its dump.jsonl record, each file that could not be read
its errors.jsonl line (with ``"error"``), in the order batches finish (a
batch's records, then its error lines). Nothing is written to disk; the
summary goes to standard error. Without an OUTDIR there is nothing to resume.
A reader that goes away (``| head``) ends the run quietly: :class:`StdoutClosed`.
"""

from __future__ import annotations

import errno as errnos
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import OptionError, OutputWriteError
from ..lines import dumps_line
from ..types import Options, Outcome, ReadSettings, Summary
from .base import Format, Serializer, Writer


class StdoutClosed(Exception):
    """Standard output was closed by its reader: the run stops, as ``cat`` would."""


class StdoutFormat(Format):
    name = "jsonl"  # what it writes, as far as options and summaries go
    ledger_name = ""

    @staticmethod
    def accept(fmt: Format) -> None:
        """Refuse a --format that is not JSON Lines."""
        if fmt.name != "jsonl":
            raise OptionError(f"--format {fmt.name} writes files: give an OUTDIR "
                              "(-o - writes JSON Lines records to standard output)")

    def claim(self, out: Path, resume: bool, overwrite: bool, read: ReadSettings) -> None:
        if resume:
            raise OptionError("--resume needs an OUTDIR: with -o - the records go to standard "
                              "output, where there is nothing to resume from")
        if sys.stdout is None:  # started with standard output closed (>&-)
            raise OutputWriteError("cannot write to standard output: it is closed; open it "
                                   "(| jq, > FILE) or give an OUTDIR", out_dir="-",
                                   errno=errnos.EBADF)

    def prepare(self, out: Path, opts: Options, resume: bool) -> Options:
        return opts

    def write_summary(self, out: Path, summary: Summary) -> None:
        """The summary goes to standard error (the CLI prints it); nothing on disk."""

    def serializer(self, opts: Options) -> Serializer:
        return dumps_line

    def open_writer(self, out: Path, roots: Sequence[str]) -> Writer:
        return StdoutWriter(sys.stdout.buffer)


class StdoutWriter(Writer):
    """Records and error lines, interleaved, flushed after every batch."""

    def __init__(self, stream: BinaryIO) -> None:  # no OUTDIR: the base's files are not opened
        self.stream = stream

    def write(self, outcome: Outcome) -> None:
        self._put(outcome.payload)

    def write_lines(self, records: bytes) -> None:
        # the workers pack batches by --format: "jsonl" (JsonlFormat.records_are_lines)
        self._put(records)

    def write_error(self, line: bytes) -> None:
        self._put(line)

    def forget(self, line: bytes, gone: bool) -> None:
        raise AssertionError("a run to standard output is never resumed")

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise StdoutClosed() from None
        except OSError as exc:
            raise _write_error(exc) from exc

    def close(self) -> None:
        try:
            self.flush()
        except StdoutClosed:
            pass

    def _put(self, line: bytes) -> None:
        try:
            self.stream.write(line)
        except BrokenPipeError:
            raise StdoutClosed() from None
        except OSError as exc:
            raise _write_error(exc) from exc


def _write_error(exc: OSError) -> OutputWriteError:
    # Not OUTDIR's advice (--resume): with -o - there is nothing to resume from.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return OutputWriteError(f"cannot write to standard output: {reason}; what was written "
                            "before is whole lines: run the command again, or with an OUTDIR "
                            "to be able to --resume", out_dir="-", errno=exc.errno)

