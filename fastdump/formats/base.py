"""What an output format is: one object that knows its whole life cycle.

A format says how a record becomes bytes in a worker (:meth:`Format.serializer`),
how the parent writes those bytes into OUTDIR (:meth:`Format.open_writer`), what
its ledger is (the file whose lines say which files are done: the basis of
``--resume``), how OUTDIR is claimed, repaired after a kill and reconciled
after a resume (:meth:`Format.claim`, :meth:`Format.prepare`), and how the
outputs of several runs are joined (:meth:`Format.merger`). The runner, the
workers and ``fastdump merge`` only ever ask the format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import orjson

from .. import ledger
from .._version import __version__
from ..errors import OptionError, OutputDirError
from ..index import INDEX_FILE
from ..lines import dumps_json, dumps_line, shown
from ..outdir import (
    PLAIN,
    TEMPORARY,
    LineFile,
    SideFiles,
    atomic_write,
    empty,
    find_manifest,
    first_foreign,
    in_the_way,
    remove_temporaries,
    writing,
)
from ..types import Options, Outcome, ReadSettings, Summary, read_options_text
from . import registry

Serializer = Callable[[dict[str, Any]], Any]


class Writer:
    """Parent side of a format: errors go to errors.jsonl; ``write`` is the format's own."""

    def __init__(self, out_dir: Path, fmt: Format) -> None:
        self.out_dir = out_dir
        # whole lines only, even when the disk fills up (see outdir.LineFile)
        self.errors = LineFile(out_dir / fmt.files.errors)
        self.ledger = LineFile(out_dir / fmt.ledger_name)

    def write(self, outcome: Outcome) -> None:
        """One dumped file: ``outcome.payload`` is what the serializer made of its record."""
        raise NotImplementedError

    def write_lines(self, records: bytes) -> None:
        """The lines of a batch's dumped files, joined (formats whose records are lines)."""
        raise NotImplementedError

    def write_error(self, line: bytes) -> None:
        self.errors.write(line)

    def forget(self, line: bytes, gone: bool) -> None:
        """Called after a resume with each ledger line dropped as stale; ``gone``: its file is
        no longer in the archive (else it changed, or the line was a duplicate)."""

    def flush(self) -> None:
        self.ledger.flush()
        self.errors.flush()

    def close(self) -> None:
        try:
            self.ledger.close()
        finally:
            self.errors.close()


class Merger:
    """``fastdump merge`` for one format: copies each input's ledger lines (and what
    they point at) into the merged directory ``tmp``. The base copies lines as they are."""

    def __init__(self, fmt: Format, tmp: Path) -> None:
        self.fmt = fmt
        self.tmp = tmp

    def start(self, src: Path) -> None:
        """Before the lines of input ``src``: check it can join the others."""

    def copy(self, src: Path, line: bytes, out: BinaryIO) -> None:
        out.write(line)

    def end(self, src: Path) -> None:
        """After the lines of input ``src``."""

    def finish(self) -> None:
        """After every input: write what the merged directory needs beside its ledger."""


class Format:
    """An output format. Subclasses set ``name`` and ``ledger_name`` and implement
    :meth:`serializer` and :meth:`open_writer`; the rest has working defaults."""

    name: ClassVar[str]
    ledger_name: ClassVar[str] = "dump.jsonl"
    files: ClassVar[SideFiles] = PLAIN  # errors.jsonl, summary.json, fastdump.json
    # Each record is one line, written as it is (Writer.write_lines takes a batch's)
    records_are_lines: ClassVar[bool] = False

    # -- options (parent, before anything is written) -------------------------------

    def check_options(self, opts: Options) -> Options:
        """Refuse options this format cannot use; return them settled."""
        if opts.columns is not None:
            raise OptionError("--columns applies to --format parquet only")
        return opts

    # -- OUTDIR ------------------------------------------------------------------

    def claim(self, out: Path, resume: bool, overwrite: bool, read: ReadSettings) -> None:
        """Make OUTDIR this run's: new or empty, or an earlier run of this format that
        is resumed (or overwritten). Writes ``fastdump.json``, with the read settings: a
        resume with other ones is refused, as its records would not match the others."""
        blocker = in_the_way(out)
        if blocker == out:
            raise OutputDirError(f"OUTDIR {out} is a file, not a directory")
        if blocker is not None:
            raise OutputDirError(f"OUTDIR {out} cannot be made: {blocker} is a file, "
                                 "not a directory")
        if out.is_dir() and any(out.iterdir()):
            self._check_earlier_run(out, resume, overwrite, read)
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
            if resume:
                remove_temporaries(out)
            atomic_write(out / self.files.manifest,
                         orjson.dumps({"format": self.name, "fastdump_version": __version__,
                                       "read": read.recorded()}))

    def _check_earlier_run(self, out: Path, resume: bool, overwrite: bool,
                           read: ReadSettings) -> None:
        manifest = find_manifest(out)
        earlier = {} if manifest is None else orjson.loads(manifest.read_bytes())
        before = earlier.get("format")
        if before not in registry.REGISTRY:
            raise OutputDirError(f"OUTDIR {out} is not empty and holds no fastdump output: "
                                 "choose an empty or new directory")
        if resume and before != self.name:
            raise OutputDirError(f"OUTDIR {out} holds a --format {before} run; resume it with "
                                 "that format, or use another OUTDIR")
        wanted = read.recorded()
        # (an OUTDIR written before the read settings were kept has none: nothing to compare)
        if resume and earlier.get("read", wanted) != wanted:
            raise OutputDirError(
                f"OUTDIR {out} was dumped with {read_options_text(earlier['read'])}, this run "
                f"asks for {read_options_text(wanted)}: their records would not "
                "match; resume with the first run's options, or use another OUTDIR")
        if overwrite and not resume:
            earlier_format = registry.load(registry.REGISTRY[before])
            assert isinstance(earlier_format, Format)
            earlier_format.overwrite(out)
        elif not resume:
            raise OutputDirError(f"OUTDIR {out} already holds a fastdump run: use --resume to "
                                 "finish or update it, or --overwrite to replace it")

    def overwrite(self, out: Path) -> None:
        """``--overwrite`` of OUTDIR holding a run of this format: empty it, if all it holds
        is that run's (else OutputDirError naming the first other file, nothing deleted)."""
        foreign = self.foreign_file(out)
        if foreign is not None:
            raise OutputDirError(
                f"OUTDIR {out} holds {shown(foreign)}, which fastdump did not write (--overwrite "
                "would delete it): move it out of OUTDIR, or choose another OUTDIR")
        with writing(out):
            empty(out)

    def foreign_file(self, out: Path) -> str | None:
        """The first file or folder in OUTDIR (relative to it) that no run of this format
        writes; None if there is none."""
        return first_foreign(out, self.owns)

    def owns(self, folder: str, entry: os.DirEntry) -> bool:
        """Whether ``entry``, in OUTDIR's subfolder ``folder`` ("": OUTDIR itself), is a
        file a run of this format writes (a folder it owns is looked into)."""
        return (not folder and entry.is_file(follow_symlinks=False)
                and (entry.name in self.own_names or TEMPORARY.fullmatch(entry.name)
                     is not None))

    @cached_property
    def own_names(self) -> frozenset[str]:
        """The files a run of this format writes directly in OUTDIR."""
        files = self.files
        names = {self.ledger_name, files.errors, files.summary, files.manifest, INDEX_FILE}
        # a compaction's temporaries (see ledger.compact)
        return frozenset(names | {f".{n}.compact" for n in (self.ledger_name, files.errors)})

    def prepare(self, out: Path, opts: Options, resume: bool) -> Options:
        """Before the ledger is read: settle the format's options, repair what a kill left."""
        return opts

    def load_ledger(self, out: Path) -> ledger.Ledger:
        """What an earlier run in OUTDIR accounted for (repairing a line cut by a kill)."""
        return ledger.load(out, self.ledger_name, self.files.errors)

    def compact(self, out: Path, previous: ledger.Ledger,
                forget: ledger.Forget | None = None) -> None:
        """After a resume: one line per file that exists now; ``forget`` is called with each
        ledger line dropped (see :func:`fastdump.ledger.compact`)."""
        ledger.compact(out, self.ledger_name, self.files.errors, previous, forget)

    def write_summary(self, out: Path, summary: Summary) -> None:
        # parents=False: a removed OUTDIR is an error, not made again holding only this
        atomic_write(out / self.files.summary,
                     dumps_json(summary.to_dict(), option=orjson.OPT_INDENT_2), parents=False)

    def read_summary(self, out: Path) -> dict[str, Any] | None:
        path = out / self.files.summary
        return orjson.loads(path.read_bytes()) if path.exists() else None

    def finished(self, out: Path) -> bool:
        """Whether OUTDIR holds a run that ended, not one interrupted or killed."""
        summary = self.read_summary(out)
        return summary is not None and not summary.get("interrupted")

    # -- the two halves ----------------------------------------------------------------

    def serializer(self, opts: Options) -> Serializer:
        """Worker side: a record -> what the writer writes (bytes, or a row)."""
        raise NotImplementedError

    def open_writer(self, out: Path, roots: Sequence[str]) -> Writer:
        """Parent side. ``roots``: the PATHs of the run (where the walk started)."""
        raise NotImplementedError

    # -- merge -------------------------------------------------------------------------

    def merger(self, tmp: Path) -> Merger:
        return Merger(self, tmp)


def ledger_line(outcome: Outcome, **extra: Any) -> bytes:
    """A ledger line for a file whose record lives elsewhere (tag list, Parquet row)."""
    return dumps_line({"path": outcome.path, "size": outcome.size, "mtime": outcome.mtime,
                       **extra})
