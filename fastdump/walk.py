"""Inputs -> a stream of files to dump.

The walk is a generator: dumping starts with the first file found, and the
only thing kept in memory is the set of paths already yielded (so a file that
is reachable twice, e.g. through overlapping PATHs, is dumped once).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from .source import is_url
from .types import Entry, Found, Problem, Skipped


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


def walk(
    inputs: Iterable[str], *, follow_symlinks: bool = False, dedupe: bool = True
) -> Iterator[Found]:
    """Yield every regular file under ``inputs`` (files and directories), once each.

    Symlinks found inside directories are skipped unless ``follow_symlinks``;
    a symlink named directly in ``inputs`` is always followed, as ``find -H`` does.
    Directories are visited in sorted order, so two walks of the same tree agree.
    ``dedupe=False`` (one input: a tree never repeats a path) keeps memory flat.
    """
    seen: set[str] = set() if dedupe else _Unseen()
    visited_dirs: set[tuple[int, int]] = set()
    for given in inputs:
        if is_url(given):  # s3://bucket/prefix/ and other fsspec URLs
            from .remote import walk_url

            yield from walk_url(given, seen)
            continue
        path = os.path.abspath(given)
        try:
            st = os.stat(path)
        except OSError as exc:
            yield Problem(path, _os_reason(exc, "cannot read"))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(path, st, follow_symlinks, seen, visited_dirs)
        else:
            yield from _one_file(path, st, seen)


def _one_file(path: str, st: os.stat_result, seen: set[str]) -> Iterator[Found]:
    if path in seen:
        return
    seen.add(path)
    if stat.S_ISREG(st.st_mode):
        yield Entry(path, st.st_size, st.st_mtime)
    else:
        yield Skipped(path, "not a regular file")


def _walk_dir(
    root: str,
    root_st: os.stat_result,
    follow_symlinks: bool,
    seen: set[str],
    visited_dirs: set[tuple[int, int]],
) -> Iterator[Found]:
    # An explicit stack instead of recursion: archives can nest deeper than
    # Python's recursion limit, and followed symlinks can form loops.
    stack = [(root, root_st)]
    while stack:
        directory, dir_st = stack.pop()
        key = (dir_st.st_dev, dir_st.st_ino)
        if key in visited_dirs:
            continue  # a symlink loop, or a directory reached twice
        visited_dirs.add(key)
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Problem(directory, _os_reason(exc, "cannot list directory"))
            continue
        subdirs = []
        for child in children:
            found, subdir = _classify(child, follow_symlinks, seen)
            if found is not None:
                yield found
            if subdir is not None:
                subdirs.append(subdir)
        stack.extend(reversed(subdirs))


def _classify(
    child: os.DirEntry, follow_symlinks: bool, seen: set[str]
) -> tuple[Found | None, tuple[str, os.stat_result] | None]:
    path = child.path
    try:
        is_link = child.is_symlink()
        if is_link and not follow_symlinks:
            return Skipped(path, "symlink (use --follow-symlinks to follow)"), None
        st = child.stat(follow_symlinks=True)
    except OSError as exc:
        return Problem(path, _os_reason(exc, "cannot stat")), None
    if stat.S_ISDIR(st.st_mode):
        return None, (path, st)
    if path in seen:
        return None, None
    seen.add(path)
    if stat.S_ISREG(st.st_mode):
        return Entry(path, st.st_size, st.st_mtime), None
    return Skipped(path, "not a regular file"), None


def _os_reason(exc: OSError, what: str) -> str:
    reason = exc.strerror or str(exc)
    return f"{type(exc).__name__}: {what}: {reason}"
