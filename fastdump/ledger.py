"""What an output directory already holds: the basis of --resume.

Every line fastdump writes to a ledger (``dump.jsonl``/``index.jsonl``) or to
``errors.jsonl`` starts with ``{"path":...,"size":...,"mtime":...`` (see
:mod:`fastdump.lines`). Reading just that prefix tells which files a killed or
earlier run already accounted for, without parsing the records behind it.

:func:`load` reads the files a block at a time (a record is never copied whole)
into a :class:`~fastdump.index.LedgerIndex` on disk, so a resume over 10^8 files
holds no more in memory than one over 10^3; :func:`compact` rewrites them in one
streamed pass, keeping the lines the index says are current.
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from stat import S_ISDIR
from typing import BinaryIO

from .index import ERRORS_FILE, LedgerIndex, Row, key
from .lines import parse_prefix
from .source import is_url
from .types import Entry, Problem, Stat

BLOCK = 1 << 20  # bytes read at a time
HEAD = 8192  # of a line, the most read to find its path, size and mtime (as parse_prefix)
ROWS = 4096  # lines indexed per statement
FORGET = 256  # dropped lines looked up at once, to tell a changed file from one gone
_PATH = b'{"path":"'
_STAT = re.compile(rb',"size":(null|\d+),"mtime":(null|-?[0-9.eE+-]+)')
# a ledger line whose path has no escapes: its UTF-8 bytes are its key
_LINE = re.compile(rb'\{"path":"([^"\\]*)"' + _STAT.pattern)

Forget = Callable[[bytes, bool], None]  # a dropped ledger line, and whether its file is gone


class Ledger:
    """Files accounted for in an output directory, indexed on disk: path -> (size, mtime).

    ``ends``: the sizes of the ledger and the errors file when they were read;
    what a run appends after them is its own.
    """

    def __init__(self, index: LedgerIndex, files: tuple[Path, Path], ends: tuple[int, int],
                 repaired: int, duplicates: int) -> None:
        self.index = index
        self.files = files
        self.ends = ends
        self.repaired = repaired  # half-written lines cut off by a kill
        self.duplicates = duplicates  # lines for a path seen before (compaction removes them)
        self.unchanged_errors = 0  # files found unchanged whose kept line is an error line
        self.unreached_errors = 0  # files kept by keep_unreached() whose line is an error line

    @property
    def paths(self) -> int:
        """How many different files the ledger and the errors file account for."""
        return self.index.paths

    def check(self, found: Sequence[Entry | Problem]) -> list[Stat | None]:
        """The stat each of these files has in the ledger (None: it has none), in order.

        Also notes that they were found, and whether they changed, for :func:`compact`.
        """
        keys = [key(item.path) for item in found]
        known = self.index.lookup(keys)
        before: list[Stat | None] = []
        places = array("q")
        for item, k in zip(found, keys, strict=True):
            row = known.get(k)
            if row is None:
                before.append(None)
                continue
            stat = (row[0], row[1])
            before.append(stat)
            changed = stat != (item.size, item.mtime)
            places.append(row[2] * 2 + changed)
            self.unchanged_errors += not changed and row[2] >= ERRORS_FILE
        self.index.note(places)
        return before

    def passed(self, paths: Sequence[str]) -> None:
        """Note paths the walk reached but skipped (no longer a regular file): their
        lines go as gone, not kept by :meth:`keep_unreached`."""
        self.index.passed([key(path) for path in paths])

    def keep_unreached(self) -> int:
        """After the walk: keep the lines of the files it did not reach that are still
        there, as they are (a resume given fewer PATHs, or a shorter --files-from list,
        than the run before: those files are not gone). Returns how many files."""
        self.index.sort_found()
        records, self.unreached_errors = self.index.keep_unreached(_still_there)
        return records + self.unreached_errors

    def items(self) -> Iterator[tuple[str, Stat]]:
        """Every path and its latest stat (for tests and debugging)."""
        return self.index.items()

    def close(self) -> None:
        """Delete the index: it is rebuilt at every resume. Idempotent."""
        self.index.close()


def _still_there(path: str) -> bool:
    """Whether a file not reached by the walk is still there. An object in a store is
    not asked (a request each): one the listing did not give is gone, as before."""
    if is_url(path):
        return False
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # cannot tell (a folder it may not search): keep its line, not lose it
    return not S_ISDIR(st.st_mode)  # a folder now: no file's line (and walked, if reached)


def load(out_dir: Path, ledger_name: str, errors_name: str) -> Ledger:
    """Read (and repair) the ledger and error files of a previous run into an index."""
    index = LedgerIndex(out_dir)
    files = (out_dir / ledger_name, out_dir / errors_name)
    ends = [0, 0]
    repaired = duplicates = 0
    try:
        for file_no, path in enumerate(files):
            if not path.exists():
                continue
            repaired += repair_tail(path)
            with open(path, "rb") as fp:
                for rows, end in _rows(fp, ERRORS_FILE if file_no else 0):
                    duplicates += index.add(rows)
                    ends[file_no] = end
        index.built()
    except BaseException:
        index.close()
        raise
    return Ledger(index, files, (ends[0], ends[1]), repaired, duplicates)


def _rows(fp: BinaryIO, place: int) -> Iterator[tuple[list[Row], int]]:
    """The index rows of the ledger lines of ``fp`` (the first at ``place``), a block at a
    time, and where the lines read so far end. The inner loop of a resume's start: a
    line costs a ``find`` of its newline and one regular expression."""
    match = _LINE.match
    rows: list[Row] = []
    append = rows.append
    end = 0
    for buf, at, last, base, end in _blocks(fp):
        find = buf.find
        while at < last:
            nl = find(b"\n", at)
            m = match(buf, at, nl)
            if m is not None:
                size, mtime = m[2], m[3]
                try:
                    append((m[1], None if size == b"null" else int(size),
                            None if mtime == b"null" else float(mtime), place + base + at))
                except ValueError:
                    pass
            else:  # a path with escapes, or not a ledger line
                parsed = _parse(buf, at, min(nl + 1, at + HEAD))
                if parsed is not None:
                    append((*parsed, place + base + at))
            at = nl + 1
        if len(rows) >= ROWS:
            yield rows, end
            rows = []
            append = rows.append
    yield rows, end


def _blocks(fp: BinaryIO) -> Iterator[tuple[bytes, int, int, int, int]]:
    """``fp`` as ``(buf, at, last, base, after)``: ``buf[at:last]`` are whole lines (each
    with its newline), ``buf[0]`` is at file offset ``base``, and the last of them ends
    at ``after``. A line cut by the end of a block comes alone, as its first
    :data:`HEAD` bytes and a newline."""
    pos = 0  # file offset of the next block
    head: bytes | None = None  # the first bytes of a line begun in an earlier block
    head_at = 0
    while block := fp.read(BLOCK):
        base, pos = pos, pos + len(block)
        at = 0
        if head is not None:
            nl = block.find(b"\n")
            room = HEAD - len(head)
            if nl < 0:
                if room > 0:
                    head += block[:room]
                continue
            if room > 0:
                head += block[:min(nl, room)]
            yield head + b"\n", 0, len(head) + 1, head_at, base + nl + 1
            head, at = None, nl + 1
        last = block.rfind(b"\n") + 1
        if last > at:
            yield block, at, last, base, base + last
            at = last
        if at < len(block):
            head, head_at = block[at:at + HEAD], base + at


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


def lines(fp: BinaryIO, end: int | None = None) -> Iterator[tuple[bytes, int, int, int, int]]:
    """Every whole line of ``fp`` (up to byte ``end``), read a block at a time.

    Yields ``(buf, at, stop, start, after)``: ``buf[at:stop]`` holds the line's
    first bytes (all of it, or its first :data:`HEAD`), and the line is bytes
    ``start`` to ``after`` of the file. A last line without its newline is not whole
    and is left out.
    """
    pos = 0  # file offset of the next block
    carry: bytes | None = None  # the first bytes of a line begun in an earlier block
    carry_start = 0
    while True:
        want = BLOCK if end is None else min(BLOCK, end - pos)
        buf = fp.read(want) if want > 0 else b""
        if not buf:
            return
        base, pos = pos, pos + len(buf)
        at = 0
        if carry is not None:
            nl = buf.find(b"\n")
            room = HEAD - len(carry)
            if nl < 0:
                carry += buf[:room] if room > 0 else b""
                continue
            head = carry + buf[:min(nl + 1, room)] if room > 0 else carry
            yield head, 0, len(head), carry_start, base + nl + 1
            carry, at = None, nl + 1
        find = buf.find
        while (nl := find(b"\n", at)) >= 0:
            yield buf, at, min(nl + 1, at + HEAD), base + at, base + nl + 1
            at = nl + 1
        if at < len(buf):
            carry, carry_start = buf[at:at + HEAD], base + at


def _parse(buf: bytes, at: int, stop: int) -> tuple[bytes, int | None, float | None] | None:
    """The key (:func:`fastdump.index.key`), size and mtime of the ledger line at ``buf[at:]``.

    A path without escapes is taken as it stands (its UTF-8 is its key); any other
    goes through :func:`fastdump.lines.parse_prefix`.
    """
    if not buf.startswith(_PATH, at, stop):
        return None
    quote = buf.find(b'"', at + 9, stop)
    if quote < 0 or buf.find(b"\\", at + 9, quote) >= 0:
        parsed = parse_prefix(buf[at:stop])
        if parsed is None:
            return None
        path, (size, mtime) = parsed
        return key(path), size, mtime
    match = _STAT.match(buf, quote + 1, stop)
    if match is None:
        return None
    try:
        size = None if match[1] == b"null" else int(match[1])
        mtime = None if match[2] == b"null" else float(match[2])
    except ValueError:
        return None
    return buf[at + 9:quote], size, mtime


def compact(out_dir: Path, ledger_name: str, errors_name: str, ledger: Ledger,
            forget: Forget | None = None) -> None:
    """Keep one line per file that exists now, with its current size and mtime.

    Lines of changed files (old stat), of files gone from the archive and
    duplicates are dropped; the lines this run wrote are all kept. Each file is
    rewritten whole and renamed into place, so a kill during compaction leaves
    the old, still valid, file. ``forget`` is called with each line dropped from
    the ledger (the tags format deletes the tag file of a file that is gone).
    Memory stays flat: the files are streamed, the lines to keep come sorted
    from the index.
    """
    ledger.index.sort_found()
    for file_no, path in enumerate((out_dir / ledger_name, out_dir / errors_name)):
        if not path.exists():
            continue
        base = ERRORS_FILE if file_no else 0
        kept = (place - base for place in ledger.index.kept(base, base + ERRORS_FILE))
        _rewrite(path, ledger.ends[file_no], kept, ledger, forget if file_no == 0 else None)


def _rewrite(path: Path, end: int, kept: Iterator[int], ledger: Ledger,
             forget: Forget | None) -> None:
    """``path`` without the lines before ``end`` that ``kept`` (sorted offsets) does not name."""
    tmp = path.with_name(f".{path.name}.compact")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        fd = src.fileno()
        copy_from = 0  # start of the kept lines not copied yet
        dropped: list[tuple[int, int]] = []  # lines to pass to ``forget``
        wanted = next(kept, None)
        for _buf, _at, _stop, start, after in lines(src, end):
            while wanted is not None and wanted < start:
                wanted = next(kept, None)
            if wanted == start:
                continue
            _copy(fd, out, copy_from, start)
            copy_from = after
            if forget is not None:
                dropped.append((start, after))
                if len(dropped) >= FORGET:
                    _forget(fd, dropped, ledger, forget)
                    dropped = []
        _copy(fd, out, copy_from, os.fstat(fd).st_size)  # and what this run wrote
        if dropped and forget is not None:
            _forget(fd, dropped, ledger, forget)
    os.replace(tmp, path)


def _copy(fd: int, out: BinaryIO, start: int, stop: int) -> None:
    while start < stop:
        data = os.pread(fd, min(BLOCK * 4, stop - start), start)
        if not data:
            return
        out.write(data)
        start += len(data)


def _forget(fd: int, spans: list[tuple[int, int]], ledger: Ledger, forget: Forget) -> None:
    """``forget`` each of these dropped lines, saying whether its file is gone: looked up
    together, from their first bytes; each line is read whole only when it is passed on."""
    keys = []
    for start, after in spans:
        head = os.pread(fd, min(after - start, HEAD), start)
        parsed = _parse(head, 0, len(head))
        keys.append(parsed[0] if parsed else b"")
    there = ledger.index.still_there([k for k in keys if k])
    for (start, after), k in zip(spans, keys, strict=True):
        forget(os.pread(fd, after - start, start), k not in there)
