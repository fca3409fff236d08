"""What an output directory already holds: the basis of --resume.

Every line fastdump writes to a ledger (``dump.jsonl``/``index.jsonl``) or to
``errors.jsonl`` starts with ``{"path":...,"size":...,"mtime":...`` (see
:mod:`fastdump.lines`). Reading just that prefix tells which files a killed or
earlier run already accounted for, without parsing the records behind it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .lines import parse_prefix
from .types import Stat


@dataclass
class Ledger:
    """Files accounted for in an output directory: path -> (size, mtime)."""

    done: dict[str, Stat] = field(default_factory=dict)
    repaired: int = 0  # half-written lines cut off by a kill
    duplicates: int = 0  # lines for a path seen before (compaction removes them)


def load(out_dir: Path, ledger_name: str, errors_name: str) -> Ledger:
    """Read (and repair) the ledger and error files of a previous run."""
    ledger = Ledger()
    for name in (ledger_name, errors_name):
        path = out_dir / name
        if not path.exists():
            continue
        ledger.repaired += repair_tail(path)
        for line in iter_lines(path):
            parsed = parse_prefix(line)
            if parsed is None:
                continue
            if parsed[0] in ledger.done:
                ledger.duplicates += 1
            ledger.done[parsed[0]] = parsed[1]
    return ledger


def repair_tail(path: Path) -> int:
    """Cut a last line left half-written by a kill; return how many lines were cut (0/1)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fp:
        fp.seek(-1, os.SEEK_END)
        if fp.read(1) == b"\n":
            return 0
        # Walk back to the last complete line.
        pos = size
        while pos > 0:
            step = min(65536, pos)
            fp.seek(pos - step)
            chunk = fp.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                fp.truncate(pos - step + nl + 1)
                return 1
            pos -= step
        fp.truncate(0)
        return 1


def iter_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fp:
        yield from fp


def compact(out_dir: Path, ledger_name: str, errors_name: str,
            current: dict[str, Stat]) -> list[bytes]:
    """Keep one line per file that exists now, with its current size and mtime.

    Lines of changed files (old stat), of files gone from the archive and
    duplicates are dropped. Each file is rewritten whole and renamed into
    place, so a kill during compaction leaves the old, still valid, file.
    Returns the lines dropped from the ledger (the tags format deletes their
    tag files).
    """
    files = [out_dir / ledger_name, out_dir / errors_name]
    winners: dict[str, tuple[int, int]] = {}
    for file_no, path in enumerate(files):
        if not path.exists():
            continue
        for line_no, line in enumerate(iter_lines(path)):
            parsed = parse_prefix(line)
            if parsed and current.get(parsed[0]) == parsed[1]:
                if file_no == 0 or parsed[0] not in winners:
                    winners[parsed[0]] = (file_no, line_no)
    keep = set(winners.values())
    dropped: list[bytes] = []
    for file_no, path in enumerate(files):
        if not path.exists():
            continue
        tmp = path.with_name(f".{path.name}.compact")
        with open(tmp, "wb") as out:  # streamed: a dump.jsonl can be many GB
            for line_no, line in enumerate(iter_lines(path)):
                if (file_no, line_no) in keep:
                    out.write(line)
                elif file_no == 0:
                    dropped.append(line)
        os.replace(tmp, path)
    return dropped
