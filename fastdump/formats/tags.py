"""``--format tags``: the seed notebook's output done right for a whole archive.

One ``<name>_tags.txt`` per file, listing its tags ``(gggg,eeee)`` in the order
of pydicom's ``Dataset.iterall()``, nested ones indented; the input tree is
mirrored under OUTDIR, so two ``IM0001`` in different folders never collide.
``index.jsonl`` is the ledger: which file went where.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import MergeError
from ..lines import exact, parse_prefix
from ..outdir import atomic_write
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


class TagsWriter(Writer):
    """Each tag list written whole (atomically), then its ledger line."""

    def __init__(self, out_dir: Path, fmt: Format, layout: TagsLayout) -> None:
        super().__init__(out_dir, fmt)
        self.layout = layout

    def write(self, outcome: Outcome) -> None:
        target = self.out_dir / self.layout.relative_target(outcome.path)
        atomic_write(target, outcome.payload)
        self.ledger.write(ledger_line(outcome, tags_file=str(target.relative_to(self.out_dir))))

    def write_error(self, line: bytes) -> None:
        # A file read again by --resume that is now an error: the tag list of its earlier
        # record would stay beside its errors.jsonl line, as if it were still valid.
        parsed = parse_prefix(line)
        if parsed is not None:
            target = self.out_dir / self.layout.relative_target(parsed[0])
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                target.unlink()
        super().write_error(line)

    def forget(self, line: bytes, gone: bool) -> None:
        # A vanished file's tag list goes too; a changed file's was rewritten in place,
        # or removed if it is now an error (write_error).
        if gone:
            old = json.loads(line.decode("utf-8", "surrogateescape"))  # older \udcXX lines too
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
        return os.path.join(folder, _fitting(stem, name, self.name_max) + _SUFFIX)


def name_max(out: Path) -> int:
    """The longest name, in bytes, OUTDIR's filesystem takes (eCryptfs: 143)."""
    try:
        return os.pathconf(out, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def _fitting(stem: str, name: str, name_max: int) -> str:
    """``stem``, or when it is too long for a name once ``_tags.txt`` is added, as many of
    its first characters as fit, ``~`` and a hash of the whole ``name`` (so that two long
    names that start alike stay apart)."""
    if len(os.fsencode(stem)) + len(_SUFFIX) <= name_max:
        return stem
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    room = name_max - len(_SUFFIX) - len(digest) - 1
    kept, size = [], 0
    for char in stem:  # whole characters: a name's UTF-8 is never cut in two
        size += len(os.fsencode(char))
        if size > room:
            break
        kept.append(char)
    return f"{''.join(kept)}~{digest}"


class TagsMerger(Merger):
    """Copies each tag list beside its ledger line; two inputs writing one list are refused."""

    def copy(self, src: Path, line: bytes, out: BinaryIO) -> None:
        tags_file = exact(json.loads(line), "tags_file")
        target = self.tmp / tags_file
        if target.exists():
            raise MergeError(f"two inputs write the tag list {tags_file} (the second is {src}): "
                             "were they dumped from different PATHs?")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / tags_file, target)
        out.write(line)
