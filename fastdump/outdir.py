"""OUTDIR's shared files, its lock (one run at a time), and writing them: whole lines
or nothing, and one typed error when the disk says no.

Beside a format's own output, every OUTDIR holds ``errors.jsonl`` (one line per
file that could not be read), ``summary.json`` and ``fastdump.json`` (which
format the directory holds). A format whose readers take every file of the
directory as data (Parquet) names them with a leading ``_``, which those readers
skip (:class:`SideFiles`).

A full disk, a quota, a filesystem gone read-only, OUTDIR removed under the
run or an I/O error all surface as an ``OSError`` somewhere in a writer.
:func:`writing` turns it into :class:`~fastdump.errors.OutputWriteError`, whose
message names OUTDIR, the system's reason and the way on; the command prints it
as one line and exits with its own code.

:class:`LineFile` is the append-only file every ledger and ``errors.jsonl`` is
written through: a write that fails half-way is cut back to the last whole
line, so a reader (and ``--resume``) never sees half a line, even on a full disk.
Other files are written whole under a temporary name and renamed
(:func:`atomic_write`); a resume removes what a kill left of those
(:func:`remove_temporaries`).

``--overwrite`` empties OUTDIR only when everything in it is the earlier run's
(:func:`first_foreign`, then :func:`empty`): fastdump never deletes a file it
did not write.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import OutputDirError, OutputWriteError

try:
    import fcntl
except ImportError:  # not a POSIX system: OUTDIR is used without a lock
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class SideFiles:
    """The names of the shared files of one format's OUTDIR."""

    prefix: str = ""

    @property
    def errors(self) -> str:
        return f"{self.prefix}errors.jsonl"

    @property
    def summary(self) -> str:
        return f"{self.prefix}summary.json"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}fastdump.json"


PLAIN = SideFiles()
UNDERSCORED = SideFiles("_")


MANIFESTS = frozenset((PLAIN.manifest, UNDERSCORED.manifest))


def find_manifest(out_dir: Path) -> Path | None:
    """OUTDIR's ``fastdump.json`` (under either name), or None: not a fastdump output.
    A file of that name that fastdump did not write (a project's settings) does not count."""
    for files in (PLAIN, UNDERSCORED):
        path = out_dir / files.manifest
        if path.is_file() and is_manifest(path):
            return path
    return None


def is_manifest(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``fastdump.json`` that fastdump wrote (an OUTDIR's mark),
    not merely a file of that name: a JSON object naming a format, and the version that
    wrote it or nothing but what fastdump writes (``fastdump merge`` writes no version)."""
    try:
        with open(path, "rb") as fp:
            manifest = orjson.loads(fp.read(_MANIFEST_MAX))
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("format"), str) and (
        "fastdump_version" in manifest or manifest.keys() <= _MANIFEST_KEYS)


_MANIFEST_MAX = 1 << 20  # bytes: one holds the format and the options, a few KB at most
_MANIFEST_KEYS = {"format", "read", "merged"}


_SPACE = "free space, then run the same command with --resume"
_ADVICE = {
    errnos.ENOSPC: _SPACE,
    errnos.EDQUOT: _SPACE,
    errnos.EFBIG: _SPACE,
    errnos.EROFS: "make its filesystem writable again (or copy OUTDIR to one that is), then "
                  "run the same command with --resume on it",
    errnos.EACCES: "give this user write permission on OUTDIR, then run the same command "
                   "with --resume",
    errnos.EPERM: "give this user write permission on OUTDIR, then run the same command "
                  "with --resume",
    errnos.ENOENT: "OUTDIR or a file in it was removed during the run; run the same command "
                   "with --resume to finish what is left",
}
_OTHER = "fix the disk, then run the same command with --resume"
_ARROW_ERRNO = re.compile(r"errno[ =:]*(\d+)", re.IGNORECASE)  # pyarrow puts it in the text


@contextlib.contextmanager
def writing(out_dir: str | os.PathLike) -> Iterator[None]:
    """Any OSError in the block is a failure to write OUTDIR: raise OutputWriteError."""
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as exc:
        raise output_error(out_dir, exc) from exc


def output_error(out_dir: str | os.PathLike, exc: OSError) -> OutputWriteError:
    code = exc.errno
    if code is None:  # pyarrow's ArrowIOError: the errno is only in the message
        match = _ARROW_ERRNO.search(str(exc))
        code = int(match[1]) if match else None
    reason = os.strerror(code) if code else (exc.strerror or str(exc))
    path = exc.filename
    advice = _ADVICE.get(code, _OTHER) if code else _OTHER
    return OutputWriteError(
        f"cannot write to OUTDIR {out_dir}: {reason}{_where(path, out_dir)}; {advice}",
        out_dir=str(out_dir), errno=code, path=None if path is None else os.fsdecode(path))


def _where(path: str | bytes | None, out_dir: str | os.PathLike) -> str:
    """The file an error is about, for its message: relative to OUTDIR when it is inside
    it, as it is when outside (a parent that could not be made), nothing for OUTDIR itself
    (the message names it already)."""
    if not path:
        return ""
    shown = os.fsdecode(path)
    try:
        rel = os.path.relpath(shown, out_dir)
    except ValueError:  # another drive (Windows)
        return f" ({shown})"
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return f" ({shown})"
    return f" ({rel})"


class LineFile:
    """A file to which whole lines are appended, and which only ever holds whole lines.

    Lines are gathered and written with ``os.write`` when 64 KiB are pending and
    at every :meth:`flush`. A write that fails part-way (ENOSPC after some bytes)
    is undone by truncating the file back to its last whole line, and what was
    pending is dropped: those files are simply not accounted for, and ``--resume``
    reads them again. (Python's buffered files cannot undo a partial write, and
    would retry the rest of the line later, after the cut.)
    """

    PENDING_MAX = 1 << 16

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._size = os.fstat(self._fd).st_size  # whole lines: a resume repaired the tail first
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, line: bytes) -> None:
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self.PENDING_MAX:
            self._write_pending()

    def flush(self) -> None:
        self._write_pending()
        # Writes to a file removed under us (rm -r OUTDIR) succeed and vanish:
        # stop the run instead of dumping the archive into the void.
        if os.fstat(self._fd).st_nlink == 0:
            raise FileNotFoundError(errnos.ENOENT, "removed during the run", str(self.path))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self._fd)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            if written:  # half a line may be in the file: cut back to the last whole one
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            if exc.filename is None:
                exc.filename = str(self.path)
            raise
        self._size += len(data)


class Hold:
    """A run's exclusive lock on OUTDIR (``flock`` on the directory itself).

    The system drops it when the process ends, however it ends: a run killed
    with ``kill -9`` leaves nothing to clean up before ``--resume``. A filesystem
    that has no locks (some network ones) is used without. ``out=None`` (``-o -``):
    there is no OUTDIR, nothing is held.
    """

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self._fd: int | None = None

    def again(self) -> None:
        """Hold OUTDIR as it is now: made since the last call, or removed and made anew."""
        if self.out is None or fcntl is None:
            return
        try:
            fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing to hold yet; claiming OUTDIR says what is wrong with it
        if self._fd is not None and _same_file(fd, self._fd):
            os.close(fd)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputDirError(
                f"OUTDIR {self.out} is in use by another fastdump run: wait for it to end "
                "(or stop it), then run this command again") from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_LOCKS:
                raise output_error(self.out, exc) from exc
            return
        self.release()
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_NO_LOCKS = {errnos.ENOLCK, errnos.EOPNOTSUPP, errnos.ENOSYS, errnos.EINVAL}


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@contextlib.contextmanager
def holding(out: Path | None) -> Iterator[Hold]:
    """:class:`Hold` OUTDIR (if it exists yet) for the block."""
    hold = Hold(out)
    try:
        hold.again()
        yield hold
    finally:
        hold.release()


_TEMPORARY = itertools.count()
TEMPORARY = re.compile(r"\.fastdump-\d+-\d+\.tmp")  # the name of atomic_write's temporary


def atomic_write(target: Path, data: bytes, *, parents: bool = True,
                 scratch: Path | None = None) -> None:
    """Write ``data`` to ``target`` so that no reader ever sees half of it.

    ``parents=False`` for files directly in OUTDIR: a removed OUTDIR must be an
    error, not silently created again holding only that file. The temporary
    file is removed when the write fails (a full disk keeps no half copy); one a
    kill leaves is in ``scratch`` (OUTDIR: see :func:`remove_temporaries`), or
    beside ``target``. An error names ``target``, not the temporary.
    """
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    # Not named after the target: a target's name may be as long as a name can be.
    tmp = (scratch or target.parent) / f".fastdump-{os.getpid()}-{next(_TEMPORARY)}.tmp"
    try:
        with open(tmp, "wb") as fp:
            fp.write(data)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno == errnos.EXDEV and scratch is not None:
            # target's folder is on another filesystem (a symlink a user made): write beside it
            return atomic_write(target, data, parents=False)
        if isinstance(exc, OSError) and exc.filename == str(tmp):
            exc.filename = str(target)
        raise


def remove_temporaries(out: Path) -> None:
    """Remove the temporary files a killed run left in OUTDIR (only one run holds it)."""
    with os.scandir(out) as entries:
        stale = [e.path for e in entries if TEMPORARY.fullmatch(e.name)]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# Whether a run wrote an entry found in OUTDIR's folder ("": OUTDIR itself)
Owns = Callable[[str, os.DirEntry], bool]


def first_foreign(out: Path, owns: Owns) -> str | None:
    """The first entry under ``out`` that ``owns`` does not accept, as a path relative to
    ``out`` (a folder's ends with ``/``), or None: all is a run's own. Folders it accepts
    are looked into; one pass, one folder open at a time (a tags OUTDIR may hold millions
    of files)."""
    folders = [""]
    while folders:
        folder = folders.pop()
        with os.scandir(os.path.join(out, folder)) as entries:
            for entry in entries:
                rel = os.path.join(folder, entry.name)
                is_dir = entry.is_dir(follow_symlinks=False)
                if not owns(folder, entry):
                    return os.path.join(rel, "") if is_dir else rel
                if is_dir:
                    folders.append(rel)
    return None


def empty(out: Path) -> None:
    """Delete everything in ``out``, deepest first, but not ``out`` itself (which the user
    may have made, and which the run holds). An error names the file it is about (that of
    ``shutil.rmtree`` names it relative to a folder it does not say)."""

    def stop(exc: OSError) -> None:
        raise exc

    for folder, dirs, files in os.walk(out, topdown=False, onerror=stop):
        for name in files:
            os.unlink(os.path.join(folder, name))
        for name in dirs:
            os.rmdir(os.path.join(folder, name))


def in_the_way(out: Path) -> Path | None:
    """What is not a directory where OUTDIR or one of its parents should be, if anything."""
    for place in (out, *out.parents):
        if place.is_dir():
            return None
        if place.exists():
            return place
    return None
