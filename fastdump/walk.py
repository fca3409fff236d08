"""Inputs -> a stream of files to dump.

The walk is a generator: dumping starts with the first directory listed. It
hands on a directory's files at a time (:func:`walk_chunks`; :func:`walk`
yields them one by one). When several inputs may reach one file twice (e.g.
overlapping PATHs), the paths already handed on are remembered on disk
(:class:`~fastdump.index.SeenPaths`), so that the file is dumped once and memory
stays flat however many files there are; a single input keeps no per-file state.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import InputNotFoundError, OptionError
from .index import SeenPaths
from .outdir import MANIFESTS, is_manifest
from .source import is_url
from .types import Entry, Found, Problem, Skipped

CHUNK = 1000  # most files in one chunk: a bigger directory is handed on in several


PathArg = str | bytes | os.PathLike


def path_args(paths: PathArg | Iterable[PathArg]) -> Iterator[str]:
    """The PATHs of a run as str: one path (a str, a Path) is one PATH.

    Iterated, a str would be its characters, and ``"/"`` among them the root.
    """
    if isinstance(paths, PathArg):
        paths = [paths]
    if not isinstance(paths, Iterable):
        raise OptionError(f"paths must be a path (str, bytes, Path) or a list of them, "
                          f"not {type(paths).__name__}")
    return (_one_path(p) for p in paths)


def _one_path(path: Any) -> str:
    if not isinstance(path, PathArg):
        raise OptionError(f"a path must be a str, bytes or Path, not {type(path).__name__}")
    if not os.fspath(path):
        raise OptionError("a path is empty: name a file or folder ('.' for this one)")
    return os.fsdecode(path)


@contextlib.contextmanager
def path_list(source: PathArg | Iterable[str] | None) -> Iterator[Iterable[str] | None]:
    """--files-from: lines as given (an open file, a list); a name is that file's
    lines, opened here and closed at the end; ``"-"`` is standard input."""
    if not isinstance(source, PathArg):
        if source is not None and not isinstance(source, Iterable):
            raise OptionError(f"files_from must be a list file's name (\"-\": standard "
                              f"input), an open file or a list of paths, not {source!r}")
        yield source
        return
    name = os.fsdecode(source)
    if name == "-":
        if sys.stdin is None:
            raise InputNotFoundError("cannot read --files-from -: standard input is closed")
        yield _stdin_lines()
        return
    try:
        fp = open(name, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputNotFoundError(f"cannot read --files-from {name}: {exc.strerror}") from None
    with fp:
        yield fp


def _stdin_lines() -> Iterator[str]:
    """Standard input's lines, any bytes a file name may hold kept as they are.

    sys.stdin decodes strictly in a UTF-8 locale: ``find | fastdump dump
    --files-from -`` would end in a traceback at the first Latin-1 name.
    """
    if sys.stdin.isatty():  # else the run would seem to hang, waiting for input
        print("fastdump: reading paths from standard input, one per line "
              "(end with Ctrl-D)", file=sys.stderr, flush=True)
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # replaced by a text stream (a test, an embedding program)
        yield from sys.stdin
        return
    for line in raw:
        yield os.fsdecode(line)


def read_path_list(lines: Iterable[str]) -> Iterator[str]:
    """Paths from a --files-from list: one per line, blank lines ignored."""
    for line in lines:
        path = line.rstrip("\r\n")
        if path.strip():
            yield path


class _Unseen(set):
    """The ``seen`` set of a walk that cannot meet a path twice: remembers nothing."""

    def add(self, path: str) -> None:
        pass

    def first_time(self, paths: list[str]) -> list[bool]:
        return [True] * len(paths)

    def close(self) -> None:
        pass


def walk(
    inputs: Iterable[str], *, follow_symlinks: bool = False, dedupe: bool = True
) -> Iterator[Found]:
    """Yield every regular file under ``inputs`` (files and directories), once each.

    Symlinks found inside directories are skipped unless ``follow_symlinks``;
    a symlink named directly in ``inputs`` is always followed, as ``find -H`` does.
    A directory holding a fastdump OUTDIR's manifest (``fastdump.json``), found
    below an input, is skipped whole: it is fastdump's output, maybe this run's.
    Directories are visited in sorted order, so two walks of the same tree agree.
    ``dedupe=False`` (one input: a tree never repeats a path) keeps no set of paths.
    """
    for chunk in walk_chunks(inputs, follow_symlinks=follow_symlinks, dedupe=dedupe):
        yield from chunk


def walk_chunks(
    inputs: Iterable[str], *, follow_symlinks: bool = False, dedupe: bool = True
) -> Iterator[list[Found]]:
    """:func:`walk`, a chunk at a time: a directory's files (at most :data:`CHUNK`), or one
    file named as an input. A chunk is handed on as soon as its directory is listed."""
    seen: SeenPaths | _Unseen = SeenPaths() if dedupe else _Unseen()
    try:
        for given in inputs:
            if is_url(given):  # s3://bucket/prefix/ and other fsspec URLs
                yield from _walk_url(given, seen)
                continue
            path = os.path.abspath(given)
            try:
                st = os.stat(path)
            except OSError as exc:
                if seen.first_time([path])[0]:  # (a list may name a missing file twice)
                    yield [Problem(path, _os_reason(exc, "cannot read"))]
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from _walk_dir(path, st, follow_symlinks, seen)
            elif seen.first_time([path])[0]:
                yield [_one_file(path, st)]
    finally:
        seen.close()


def _walk_url(url: str, seen: SeenPaths | _Unseen) -> Iterator[list[Found]]:
    from .remote import walk_url

    # walk_url's own check of its ``seen`` set is left a no-op: this walk's set is on disk.
    for found in walk_url(url, _Unseen()):
        if seen.first_time([found.path])[0]:
            yield [found]


def _one_file(path: str, st: os.stat_result) -> Found:
    if stat.S_ISREG(st.st_mode):
        return Entry(path, st.st_size, st.st_mtime)
    return Skipped(path, "not a regular file")


def _walk_dir(
    root: str,
    root_st: os.stat_result,
    follow_symlinks: bool,
    seen: SeenPaths | _Unseen,
) -> Iterator[list[Found]]:
    # An explicit stack instead of recursion: archives can nest deeper than
    # Python's recursion limit, and followed symlinks can form loops.
    stack = [(root, (root_st.st_dev, root_st.st_ino))]
    # Folders reached through a symlink (--follow-symlinks) are walked after every other
    # folder of this PATH: a folder a symlink also leads to keeps its own paths, and the
    # symlink is the one skipped as a second way to it.
    linked: deque[tuple[str, tuple[int, int]]] = deque()
    # Folders walked under this PATH only: the same folder given again under another
    # name (d and link-to-d) is walked again, as the same file named twice is read twice.
    visited_dirs: set[tuple[int, int]] = set()
    while stack or linked:
        directory, key = stack.pop() if stack else linked.popleft()
        if key in visited_dirs:
            yield [Skipped(directory, "a folder already walked under this PATH (a symlink "
                                      "loop, or a second symlink to it): not walked again")]
            continue
        visited_dirs.add(key)
        try:
            # Names only, looked at CHUNK at a time: a directory of a million files
            # holds ~90 bytes a file here, where os.DirEntry objects and the stat
            # results they keep held ~850.
            names = sorted(os.listdir(directory))
        except OSError as exc:
            yield [Problem(directory, _os_reason(exc, "cannot list directory"))]
            continue
        if directory != root and (mark := _fastdump_output(directory, names)):
            # This run's own OUTDIR inside a PATH, or an earlier run's: its files are
            # fastdump's output, not the archive's (and this run's grow as it goes).
            yield [Skipped(directory, f"fastdump's output (it holds {mark}): not walked")]
            continue
        subdirs: list[tuple[str, tuple[int, int], bool]] = []
        for start in range(0, len(names), CHUNK):
            chunk = _chunk(directory, names[start:start + CHUNK], follow_symlinks, seen,
                           subdirs)
            if chunk:
                yield chunk
        stack.extend((path, key) for path, key, via_link in reversed(subdirs) if not via_link)
        linked.extend((path, key) for path, key, via_link in subdirs if via_link)


def _chunk(directory: str, names: list[str], follow_symlinks: bool,
           seen: SeenPaths | _Unseen, subdirs: list[tuple[str, tuple[int, int], bool]]
           ) -> list[Found]:
    """What ``names`` in ``directory`` are: the files and problems to hand on (those met
    before left out); their subdirectories go to ``subdirs`` (with whether a symlink
    leads to them)."""
    listed: list[Found] = []
    once: list[int] = []  # which of listed are files met once at most (not problems)
    for name in names:
        found, subdir, counted = _classify(os.path.join(directory, name), follow_symlinks)
        if found is not None:
            if counted:
                once.append(len(listed))
            listed.append(found)
        if subdir is not None:
            subdirs.append(subdir)
    if once and not isinstance(seen, _Unseen):
        first = seen.first_time([listed[i].path for i in once])
        repeated = {i for i, new in zip(once, first, strict=True) if not new}
        listed = [f for i, f in enumerate(listed) if i not in repeated]
    return listed


def _fastdump_output(directory: str, names: list[str]) -> str | None:
    """The name of the fastdump manifest among a directory's entries, if one is there."""
    for name in MANIFESTS.intersection(names):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and is_manifest(path):
            return name
    return None


def _classify(
    path: str, follow_symlinks: bool
) -> tuple[Found | None, tuple[str, tuple[int, int], bool] | None, bool]:
    """What a directory entry is: a file (and whether it counts against ``seen``), or a
    subdirectory to walk (its device and inode, and whether it is a symlink)."""
    try:
        st = os.lstat(path)
        via_link = stat.S_ISLNK(st.st_mode)
        if via_link:
            if not follow_symlinks:
                return Skipped(path, "symlink (use --follow-symlinks to follow)"), None, False
            st = os.stat(path)
    except OSError as exc:
        return Problem(path, _os_reason(exc, "cannot stat")), None, False
    if stat.S_ISDIR(st.st_mode):
        return None, (path, (st.st_dev, st.st_ino), via_link), False
    if stat.S_ISREG(st.st_mode):
        return Entry(path, st.st_size, st.st_mtime), None, True
    return Skipped(path, "not a regular file"), None, True


def _os_reason(exc: OSError, what: str) -> str:
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError):  # as a file's line says it: whose rights count
        reason += f" (fastdump runs as user id {os.getuid()})"
    return f"{type(exc).__name__}: {what}: {reason}"
