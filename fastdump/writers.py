"""Records -> files in OUTDIR, one writer per format.

Each format has two halves: a *serializer*, run in the worker, that turns a
record into bytes, and a *writer*, run in the parent, that only writes them.
Every writer appends complete lines to a *ledger* (``dump.jsonl`` for jsonl,
``index.jsonl`` for tags) whose lines start with ``{"path":..,"size":..,"mtime":..``:
that is what :mod:`fastdump.ledger` reads to resume a run.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .outdir import LineFile, atomic_write
from .record import dumps_line
from .walk import Entry

ERRORS_FILE = "errors.jsonl"
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "fastdump.json"


# --- serializers (worker side) ---------------------------------------------


def serialize_jsonl(record: dict[str, Any]) -> bytes:
    return dumps_line(record)


def serialize_tags(record: dict[str, Any]) -> bytes:
    """The record's tags, one ``(gggg,eeee)`` per line, sequence items indented."""
    lines: list[str] = []
    _tag_lines(record["dataset"], 0, lines)
    return "".join(lines).encode("ascii")


def _tag_lines(dataset: dict[str, Any], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    # Dataset.iterall() yields tags in sorted order at every level.
    for key in sorted(dataset, key=lambda k: int(k, 16)):
        lines.append(f"{indent}({key[:4]},{key[4:]})\n")
        element = dataset[key]
        if element.get("vr") == "SQ":
            for item in element.get("Value", []):
                _tag_lines(item, depth + 1, lines)


_SERIALIZERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "jsonl": serialize_jsonl,
    "tags": serialize_tags,
}


_WITH_OPTIONS = {"parquet"}  # serializers that need settings of the run (parquet: columns)


def serializer_for(fmt: str, opts: Any = None) -> Callable[[dict[str, Any]], Any]:
    serialize = _SERIALIZERS[fmt]
    return functools.partial(serialize, opts=opts) if fmt in _WITH_OPTIONS else serialize


# --- writers (parent side) --------------------------------------------------


class Writer:
    """Base: errors go to errors.jsonl; ``write`` is the format's own."""

    ledger_name = "dump.jsonl"

    def __init__(self, out_dir: Path, layout: TagsLayout | None = None) -> None:
        self.out_dir = out_dir
        # whole lines only, even when the disk fills up (see outdir.LineFile)
        self.errors = LineFile(out_dir / ERRORS_FILE)
        self.ledger = LineFile(out_dir / self.ledger_name)

    def write(self, entry: Entry, payload: Any) -> None:
        raise NotImplementedError

    def write_error(self, line: bytes) -> None:
        self.errors.write(line)

    def forget(self, dropped: list[str], current: dict[str, Any]) -> None:
        """Called after a resume with the ledger lines dropped as stale."""

    @classmethod
    def prepare(cls, out_dir: Path, opts: Any, resume: bool) -> Any:
        """Before the ledger is read: settle the format's Options, repair what a kill left."""
        return opts

    def flush(self) -> None:
        self.ledger.flush()
        self.errors.flush()

    def close(self) -> None:
        try:
            self.ledger.close()
        finally:
            self.errors.close()


class JsonlWriter(Writer):
    """``dump.jsonl``: the record itself is the ledger line."""

    def write(self, entry: Entry, payload: bytes) -> None:
        self.ledger.write(payload)


class TagsWriter(Writer):
    """One ``<name>_tags.txt`` per file, mirroring the input tree; ``index.jsonl`` is the ledger."""

    ledger_name = "index.jsonl"

    def __init__(self, out_dir: Path, layout: TagsLayout | None = None) -> None:
        super().__init__(out_dir)
        self.layout = layout or TagsLayout([])

    def write(self, entry: Entry, payload: bytes) -> None:
        target = self.out_dir / self.layout.relative_target(entry.path)
        atomic_write(target, payload)
        line = {"path": entry.path, "size": entry.size, "mtime": entry.mtime,
                "tags_file": str(target.relative_to(self.out_dir))}
        self.ledger.write(dumps_line(line))


    def forget(self, dropped: list[str], current: dict[str, Any]) -> None:
        # A vanished file's tag list goes too; a changed file's was rewritten in place.
        for line in dropped:
            old = json.loads(line)
            if old.get("path") not in current and old.get("tags_file"):
                (self.out_dir / old["tags_file"]).unlink(missing_ok=True)


class TagsLayout:
    """Where a file's tag list goes: its path relative to the inputs, mirrored under OUTDIR.

    Paths are taken relative to the common folder of the inputs (the current
    directory for lists of files), so the same name in two folders never
    collides; a path outside it is mirrored whole.
    """

    def __init__(self, roots: list[str]) -> None:
        absolute = [os.path.abspath(r) for r in roots]
        if not absolute:
            self.base = os.getcwd()
        else:
            base = os.path.commonpath(absolute)
            self.base = base if os.path.isdir(base) else os.path.dirname(base)

    def relative_target(self, path: str) -> str:
        rel = os.path.relpath(path, self.base)
        if rel.startswith(os.pardir):
            rel = path.lstrip(os.sep)
        folder, name = os.path.split(rel)
        stem = name[:-4] if name.endswith(".dcm") else name
        # "X.dcm" and "X" side by side would both become X_tags.txt: keep the
        # extension of the .dcm one so that neither overwrites the other.
        if stem != name and os.path.lexists(os.path.join(os.path.dirname(path), stem)):
            stem = name
        return os.path.join(folder, f"{stem}_tags.txt")


# parquet.py builds on Writer, so it comes after it; it imports pyarrow only when used.
from .parquet import ParquetWriter, serialize_parquet  # noqa: E402

_SERIALIZERS["parquet"] = serialize_parquet
WRITERS: dict[str, type[Writer]] = {"jsonl": JsonlWriter, "tags": TagsWriter,
                                    "parquet": ParquetWriter}
