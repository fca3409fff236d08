"""``--format tags``: the seed notebook's output done right for a whole archive.

One ``<name>_tags.txt`` per file, listing its tags ``(gggg,eeee)`` in the order
of pydicom's ``Dataset.iterall()``, nested ones indented; the input tree is
mirrored under OUTDIR, so two ``IM0001`` in different folders never collide.
``index.jsonl`` is the ledger: which file went where.

A resume keeps the names the earlier run gave (:class:`TagLists`): a file read
again rewrites its own list, and a new file never takes a name another file's
list has (an ``X`` that appeared beside an ``X.dcm`` dumped before, a PATH added
that moves the common folder): it gets a name of its own with ``~`` and a hash.
A tag list is written under a temporary name in OUTDIR itself and renamed into
place, so that what a kill leaves is there for the next resume to remove.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .. import ledger
from ..errors import MergeError
from ..index import connect, path_of
from ..index import key as stored
from ..lines import exact, parse_prefix
from ..outdir import TEMPORARY, atomic_write, first_foreign
from ..types import Options, Outcome
from .base import Format, Merger, Serializer, Writer, ledger_line


class TagsFormat(Format):
    name = "tags"
    ledger_name = "index.jsonl"

    def serializer(self, opts: Options) -> Serializer:
        return serialize_tags

    def open_writer(self, out: Path, roots: Sequence[str]) -> Writer:
        return TagsWriter(out, self, TagsLayout(roots, name_max(out)))

    def merger(self, tmp: Path) -> Merger:
        return TagsMerger(self, tmp)

    def foreign_file(self, out: Path) -> str | None:
        lists = TagLists(out / self.ledger_name)
        try:
            return first_foreign(out, lambda folder, entry: self._owns(lists, folder, entry))
        finally:
            lists.close()

    def _owns(self, lists: TagLists, folder: str, entry: os.DirEntry) -> bool:
        """The mirrored tree: its folders, and in them tag lists (those ``index.jsonl`` names,
        and unlisted ones that hold a tag list: written just before a kill)."""
        if entry.is_dir(follow_symlinks=False):
            return True
        if not entry.is_file(follow_symlinks=False):
            return False
        if self.owns(folder, entry) or TEMPORARY.fullmatch(entry.name):
            return True  # (in a subfolder: left by versions that wrote them beside the list)
        return entry.name.endswith(_SUFFIX) and (
            lists.holds(os.path.join(folder, entry.name)) or _is_tag_list(entry.path))


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


_TAG_LINE = re.compile(rb"(?:  )*\([0-9A-F]{4},[0-9A-F]{4}\)\n")
_LINE_MAX = 1024  # bytes: a tag nested 500 deep


def _is_tag_list(path: str) -> bool:
    """Whether the file holds what :func:`serialize_tags` writes (read a line at a time:
    a big file that is something else costs a line)."""
    try:
        with open(path, "rb") as fp:
            lines = iter(lambda: fp.readline(_LINE_MAX), b"")
            return all(_TAG_LINE.fullmatch(line) for line in lines)
    except OSError:
        return False


class TagsWriter(Writer):
    """Each tag list written whole (atomically), then its ledger line."""

    def __init__(self, out_dir: Path, fmt: Format, layout: TagsLayout) -> None:
        index = out_dir / fmt.ledger_name
        # a resume (the ledger holds lines): the names of the earlier run count
        earlier = index.exists() and index.stat().st_size > 0
        super().__init__(out_dir, fmt)
        self.layout = layout
        self._index = index if earlier else None
        # read when first needed: a resume over an unchanged archive writes nothing
        self._lists: TagLists | None = None

    def write(self, outcome: Outcome) -> None:
        tags_file = self._target(outcome.path)
        target = self.out_dir / tags_file
        atomic_write(target, outcome.payload, scratch=self.out_dir)
        self.ledger.write(ledger_line(outcome, tags_file=tags_file))

    def write_error(self, line: bytes) -> None:
        # A file read again by --resume that is now an error: the tag list of its earlier
        # record would stay beside its errors.jsonl line, as if it were still valid.
        parsed = parse_prefix(line)
        lists = self._earlier()
        earlier = None if parsed is None or lists is None else lists.name_of(parsed[0])
        if earlier is not None:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                (self.out_dir / earlier).unlink()
        super().write_error(line)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lists is not None:
                self._lists.close()

    def _target(self, path: str) -> str:
        """Where ``path``'s tag list goes, relative to OUTDIR: in a resumed run, where the
        earlier run put it, or a name no other file's list has."""
        lists = self._earlier()
        if lists is None:
            return self.layout.relative_target(path)
        name = lists.name_of(path)
        if name is None:  # the layout's name, or the first alternative no other file has
            names = (self.layout.relative_target(path, n) for n in itertools.count())
            name = next(n for n in names if lists.owner(n) in (None, path))
            lists.take(name, path)
        return name

    def _earlier(self) -> TagLists | None:
        if self._lists is None and self._index is not None:
            self._lists = TagLists(self._index)
        return self._lists

    def forget(self, line: bytes, gone: bool) -> None:
        # A vanished file's tag list goes too; a changed file's was rewritten in place,
        # or removed if it is now an error (write_error).
        if gone:
            old = _parsed(line)
            if old.get("tags_file"):
                (self.out_dir / exact(old, "tags_file")).unlink(missing_ok=True)


_SUFFIX = "_tags.txt"
NAME_MAX = 255  # bytes in a file name, on most filesystems


class TagsLayout:
    """Where a file's tag list goes: its path relative to the inputs, mirrored under OUTDIR.

    Paths are taken relative to the common folder of the inputs (the current
    directory for lists of files), so the same name in two folders never
    collides; a path outside it is mirrored whole.
    """

    def __init__(self, roots: Sequence[str], name_max: int = NAME_MAX) -> None:
        self.name_max = name_max  # bytes in a name, where the lists are written
        absolute = [os.path.abspath(r) for r in roots]
        if not absolute:
            self.base = os.getcwd()
        else:
            base = os.path.commonpath(absolute)
            self.base = base if os.path.isdir(base) else os.path.dirname(base)

    def relative_target(self, path: str, attempt: int = 0) -> str:
        """``attempt`` > 0: another name, ``<stem>~<hash>``, for a file whose own is taken."""
        rel = os.path.relpath(path, self.base)
        if rel.startswith(os.pardir):
            rel = path.lstrip(os.sep)
        folder, name = os.path.split(rel)
        stem = name[:-4] if name.endswith(".dcm") else name
        # "X.dcm" and "X" side by side would both become X_tags.txt: keep the
        # extension of the .dcm one so that neither overwrites the other.
        if stem != name and os.path.lexists(os.path.join(os.path.dirname(path), stem)):
            stem = name
        unique = os.fsencode(name)
        if attempt:
            unique = os.fsencode(f"{attempt}:{path}")
            stem = f"{stem}~{_digest(unique)}"
        return os.path.join(folder, _fitting(stem, unique, self.name_max) + _SUFFIX)


def name_max(out: Path) -> int:
    """The longest name, in bytes, OUTDIR's filesystem takes (eCryptfs: 143)."""
    try:
        return os.pathconf(out, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def _digest(unique: bytes) -> str:
    return hashlib.sha256(unique).hexdigest()[:16]


def _fitting(stem: str, unique: bytes, name_max: int) -> str:
    """``stem``, or when it is too long for a name once ``_tags.txt`` is added, as many of
    its first characters as fit, ``~`` and a hash of ``unique`` (the whole name: so that two
    long names that start alike stay apart)."""
    if len(os.fsencode(stem)) + len(_SUFFIX) <= name_max:
        return stem
    digest = _digest(unique)
    room = name_max - len(_SUFFIX) - len(digest) - 1
    kept, size = [], 0
    for char in stem:  # whole characters: a name's UTF-8 is never cut in two
        size += len(os.fsencode(char))
        if size > room:
            break
        kept.append(char)
    return f"{''.join(kept)}~{digest}"


class TagLists:
    """Which file each tag list of a resumed OUTDIR belongs to: ``index.jsonl``'s
    ``tags_file`` and ``path``, then the lists this run writes. On disk, as the resume's
    index (an SQLite temporary database, see :mod:`fastdump.index`): a resume keeps
    nothing per file in memory."""

    def __init__(self, index: Path) -> None:
        self._db = connect("")  # private and temporary: deleted when closed
        self._db.executescript("""
            CREATE TABLE list (name BLOB PRIMARY KEY, path BLOB) WITHOUT ROWID;
            CREATE INDEX by_path ON list (path);
        """)
        self._db.execute("BEGIN")
        if index.exists():
            lines = _named_lists(index)
            while rows := list(itertools.islice(lines, 4096)):
                self._db.executemany("INSERT OR REPLACE INTO list VALUES (?, ?)", rows)

    def name_of(self, path: str) -> str | None:
        """The tag list ``path`` has, if any."""
        row = self._db.execute("SELECT name FROM list WHERE path = ?", (stored(path),)).fetchone()
        return None if row is None else path_of(row[0])

    def owner(self, name: str) -> str | None:
        """The file whose tag list ``name`` is, if any."""
        row = self._db.execute("SELECT path FROM list WHERE name = ?", (stored(name),)).fetchone()
        return None if row is None else path_of(row[0])

    def holds(self, name: str) -> bool:
        return self.owner(name) is not None

    def take(self, name: str, path: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO list VALUES (?, ?)", (stored(name), stored(path)))

    def close(self) -> None:
        self._db.close()


def _parsed(line: bytes) -> dict[str, Any]:
    """A ledger line, older ones too (they wrote names that are not UTF-8 as \\udcXX)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line.decode("utf-8", "surrogateescape"))


def _named_lists(index: Path) -> Iterator[tuple[bytes, bytes]]:
    """``(tags_file, path)`` of each ledger line that has a tag list, as index keys."""
    for line in ledger.iter_lines(index):
        if not line.endswith(b"\n"):
            continue  # cut by a kill (the ledger's own reader drops it too)
        entry = _parsed(line)
        if entry.get("tags_file"):
            yield stored(exact(entry, "tags_file")), stored(exact(entry, "path"))


class TagsMerger(Merger):
    """Copies each tag list beside its ledger line; two inputs writing one list are refused."""

    def copy(self, src: Path, line: bytes, out: BinaryIO) -> None:
        tags_file = exact(_parsed(line), "tags_file")
        target = self.tmp / tags_file
        if target.exists():
            raise MergeError(f"two inputs write the tag list {tags_file} (the second is {src}): "
                             "were they dumped from different PATHs?")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / tags_file, target)
        out.write(line)
