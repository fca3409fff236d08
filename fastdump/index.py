"""Paths on disk, for archives of 10^8 files: the resume's index of the ledger, the walk's memory.

A run cannot keep a Python dict or set of every path it meets: ~640 bytes a
file is 64 GB at 10^8 files. The two structures here are SQLite B-trees (the
standard library's :mod:`sqlite3`) keyed by a path's bytes, with a bounded page
cache (:data:`CACHE_KIB`), so the memory they take is the same for 10^3 files
and for 10^8. Paths are looked up a chunk at a time (one statement per few
hundred paths, not one per path), and as the walk is sorted and the ledger
roughly follows it, the pages a chunk needs are mostly those the chunk before
it used.

- :class:`LedgerIndex`: what a ledger (and its errors file) holds, path ->
  (size, mtime, which line wins), built at every ``--resume`` from the ledger
  itself, which stays the only source of truth. It lives in OUTDIR under a
  name starting with ``.`` (which Parquet readers skip), is deleted when the run
  ends, and a leftover from a killed run is deleted before the next one builds
  its own. It also notes which of its lines the walk found current, so that
  compaction can keep them in one pass over the files, in bounded memory.
- :class:`SeenPaths`: the set of paths the walk has handed on, when several
  inputs may reach one file twice. It is an SQLite temporary database: held in
  its page cache while small, beyond that in a file in the temporary directory
  (``SQLITE_TMPDIR`` or ``TMPDIR``) that is deleted as soon as it is created, so
  that not even a kill leaves it behind.

Near the bottom of the layers: it imports nothing of fastdump.
"""

from __future__ import annotations

import os
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

INDEX_FILE = ".fastdump-resume.sqlite"  # in OUTDIR, during a --resume
CACHE_KIB = 4 << 10  # SQLite page cache of each store, in KiB: all the memory it may take
LOOKUP = 512  # paths per lookup statement (SQLite before 3.32 allows 999 parameters)
ERRORS_FILE = 1 << 48  # where a line of the errors file is: ERRORS_FILE + its offset

Row = tuple[bytes, int | None, float | None, int]  # key, size, mtime, where its line starts


def key(path: str) -> bytes:
    """The bytes a path is stored under: its UTF-8, any surrogate (an undecodable name) kept."""
    return path.encode("utf-8", "surrogatepass")


def path_of(stored: bytes) -> str:
    return stored.decode("utf-8", "surrogatepass")


def connect(target: str) -> sqlite3.Connection:
    """A connection for one writer that needs no durability: whatever it holds can be rebuilt.

    sqlite3 is imported here: a run that neither resumes nor de-duplicates never loads it.
    """
    import sqlite3

    # One thread uses it at a time; the clean-up of an index dropped unclosed may run in another.
    db = sqlite3.connect(target, uri=True, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}",
                   "temp_store = FILE"):
        db.execute(f"PRAGMA {pragma}")
    return db


def _padded(keys: Sequence[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """``keys`` in chunks for ``IN (?, ...)``, each padded to a power of two (repeating its
    last key) so that a few prepared statements serve every chunk."""
    for start in range(0, len(keys), LOOKUP):
        chunk = list(keys[start:start + LOOKUP])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += [chunk[-1]] * (size - len(chunk))
        yield ",".join("?" * size), chunk


class LedgerIndex:
    """The ledger's lines by path, on disk: the basis of ``--resume`` (see the module's doc).

    A line's place is an integer: its byte offset in the ledger, plus
    :data:`ERRORS_FILE` for a line of the errors file. Each path keeps the stat
    of its last line and the place of its *winner*: the line a compaction keeps
    if the file is still there unchanged (of its lines with that stat, the last
    one of the ledger, else the first of the errors file).
    """

    def __init__(self, out_dir: Path) -> None:
        self.file = out_dir / INDEX_FILE
        self.file.unlink(missing_ok=True)  # left by a killed run: rebuilt from the ledger
        # nolock: only this process uses it, and file locks fail on some network filesystems
        self._db = connect(f"file:{self._uri(self.file)}?nolock=1")
        self._db.executescript("""
            CREATE TABLE line (path BLOB PRIMARY KEY, size INTEGER, mtime REAL,
                               place INTEGER) WITHOUT ROWID;
            CREATE TABLE repeat (path BLOB, size INTEGER, mtime REAL, place INTEGER,
                                 PRIMARY KEY (path, place)) WITHOUT ROWID;
            CREATE TABLE found (chunk BLOB);
            CREATE TABLE current (place INTEGER PRIMARY KEY, changed INTEGER);
            CREATE TABLE unreached (place INTEGER PRIMARY KEY);
            CREATE TABLE passed (path BLOB PRIMARY KEY) WITHOUT ROWID;
        """)
        self._db.execute("BEGIN")  # never committed: the file is deleted at the end
        # deleted at close(), or when the index is dropped or Python exits (a run that raised)
        self._remove = weakref.finalize(self, _remove, self._db, self.file)
        self.paths = 0  # distinct paths
        self.lines = 0

    @staticmethod
    def _uri(path: Path) -> str:
        from urllib.parse import quote

        return quote(os.fsencode(os.path.abspath(path)).decode("utf-8", "surrogateescape"),
                     safe="/", errors="surrogateescape")

    # -- building, from the ledger's lines in file order --------------------------

    def add(self, rows: list[Row]) -> int:
        """Index a run of lines, in file order; returns how many repeat a path already seen.

        A path's first line goes into ``line``; the lines of a path met again (rare: a
        kill, a changed file) are all kept aside in ``repeat`` until :meth:`built`.
        """
        added = self._db.executemany(
            "INSERT OR IGNORE INTO line VALUES (?, ?, ?, ?)", rows).rowcount
        if added < len(rows):
            db = self._db
            for row in rows:
                first = db.execute("SELECT place FROM line WHERE path = ?", row[:1]).fetchone()
                if first[0] != row[3]:
                    db.execute("INSERT OR IGNORE INTO repeat SELECT * FROM line WHERE path = ?",
                               row[:1])
                    db.execute("INSERT OR IGNORE INTO repeat VALUES (?, ?, ?, ?)", row)
        self.paths += added
        self.lines += len(rows)
        return len(rows) - added

    def built(self) -> None:
        """After the last :meth:`add`: each path met more than once gets the stat of its last
        line and, of the lines with that stat, the last of the ledger, else the first of the
        errors file, as its winner. One path's lines at a time are in memory."""
        db = self._db
        lines: list[tuple[int | None, float | None, int]] = []
        cursor = db.cursor()
        path = None
        for repeated, size, mtime, place in cursor.execute(
                "SELECT path, size, mtime, place FROM repeat ORDER BY path, place"):
            if repeated != path and lines:
                self._settle(path, lines)
                lines = []
            path = repeated
            lines.append((size, mtime, place))
        if lines:
            self._settle(path, lines)
        db.execute("DELETE FROM repeat")

    def _settle(self, path: bytes | None, lines: list[tuple[int | None, float | None, int]]):
        size, mtime, _ = lines[-1]
        same = [place for s, m, place in lines if (s, m) == (size, mtime)]
        in_ledger = [place for place in same if place < ERRORS_FILE]
        winner = in_ledger[-1] if in_ledger else same[0]
        self._db.execute("UPDATE line SET size = ?, mtime = ?, place = ? WHERE path = ?",
                         (size, mtime, winner, path))

    # -- during the run ----------------------------------------------------------

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, tuple[int | None, float | None, int]]:
        """key -> (size, mtime, place of its winner) for the keys the ledger holds."""
        found = {}
        for marks, chunk in _padded(keys):
            for path, size, mtime, place in self._db.execute(
                    f"SELECT path, size, mtime, place FROM line WHERE path IN ({marks})", chunk):
                found[path] = (size, mtime, place)
        return found

    def note(self, places: array) -> None:
        """Lines whose path the walk found: ``place * 2 + 1`` if the file changed since."""
        if places:
            self._db.execute("INSERT INTO found VALUES (?)", (places.tobytes(),))

    def passed(self, keys: Sequence[bytes]) -> None:
        """Paths the walk reached and skipped (now a FIFO, a folder, a symlink not
        followed): their lines are not kept as unreached."""
        self._db.executemany("INSERT OR IGNORE INTO passed VALUES (?)", ((k,) for k in keys))

    # -- compaction --------------------------------------------------------------

    def sort_found(self) -> None:
        """The places noted during the run, into a table sorted by place."""
        insert = "INSERT OR REPLACE INTO current VALUES (?, ?)"
        cursor = self._db.cursor()
        for (blob,) in cursor.execute("SELECT chunk FROM found"):
            places = array("q")
            places.frombytes(blob)
            self._db.executemany(insert, ((p >> 1, p & 1) for p in places))
        self._db.execute("DELETE FROM found")

    def keep_unreached(self, still_there: Callable[[str], bool]) -> tuple[int, int]:
        """Keep the lines of the files the walk did not reach that ``still_there`` finds
        (a resume given fewer PATHs than the run before): ``(records, error lines)`` kept.
        Call after :meth:`sort_found`. Streamed: a million such files take no more memory."""
        db, counts, places = self._db, [0, 0], []
        cursor = db.cursor()
        for path, place in cursor.execute(
                "SELECT line.path, line.place FROM line LEFT JOIN current "
                "ON current.place = line.place WHERE current.place IS NULL "
                "AND line.path NOT IN (SELECT path FROM passed)"):
            if still_there(path_of(path)):
                counts[place >= ERRORS_FILE] += 1
                places.append((place,))
                if len(places) >= 4096:  # (not into current, which the query reads)
                    db.executemany("INSERT INTO unreached VALUES (?)", places)
                    places = []
        db.executemany("INSERT INTO unreached VALUES (?)", places)
        db.execute("INSERT OR REPLACE INTO current SELECT place, 0 FROM unreached")
        db.execute("DELETE FROM unreached")
        return counts[0], counts[1]

    def kept(self, first: int, last: int) -> Iterator[int]:
        """The places in ``[first, last)`` of the lines to keep (their file is still there,
        unchanged), sorted."""
        cursor = self._db.cursor()
        yield from (place for (place,) in cursor.execute(
            "SELECT place FROM current WHERE place >= ? AND place < ? AND changed = 0 "
            "ORDER BY place", (first, last)))

    def still_there(self, keys: Sequence[bytes]) -> set[bytes]:
        """Of these keys (of lines dropped by a compaction), those the walk found (changed, or
        a duplicate line of an unchanged file) rather than gone."""
        there: set[bytes] = set()
        for marks, chunk in _padded(keys):
            there.update(path for (path,) in self._db.execute(
                f"SELECT line.path FROM line JOIN current ON current.place = line.place "
                f"WHERE line.path IN ({marks})", chunk))
        return there

    def items(self) -> Iterator[tuple[str, tuple[int | None, float | None]]]:
        """Every path and its latest stat, in key order (for tests and debugging)."""
        cursor = self._db.cursor()
        for path, size, mtime in cursor.execute("SELECT path, size, mtime FROM line"):
            yield path_of(path), (size, mtime)

    def close(self) -> None:
        """Close and delete the index (it is rebuilt at every resume). Idempotent."""
        self._remove()


def _remove(db: sqlite3.Connection, file: Path) -> None:
    try:
        db.close()
    finally:
        file.unlink(missing_ok=True)


class SeenPaths:
    """The paths the walk has handed on, on disk: de-duplication in flat memory."""

    def __init__(self) -> None:
        self._db = connect("")  # a private temporary database, deleted when closed
        self._db.execute("CREATE TABLE seen (path BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def first_time(self, paths: Sequence[str]) -> list[bool]:
        """For each path, whether it is met for the first time; all of them are remembered."""
        keys = [key(p) for p in paths]
        known: set[bytes] = set()  # of this chunk only
        for marks, chunk in _padded(keys):
            known.update(k for (k,) in self._db.execute(
                f"SELECT path FROM seen WHERE path IN ({marks})", chunk))
        first = []
        new = []
        for k in keys:
            if k in known:
                first.append(False)
            else:
                known.add(k)
                new.append((k,))
                first.append(True)
        if new:
            self._db.executemany("INSERT INTO seen VALUES (?)", new)
        return first

    def close(self) -> None:
        self._db.close()
