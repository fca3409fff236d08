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
(:func:`atomic_write`).
"""

from __future__ import annotations

import contextlib
import errno as errnos
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    """OUTDIR's ``fastdump.json`` (under either name), or None: not a fastdump output."""
    for files in (PLAIN, UNDERSCORED):
        path = out_dir / files.manifest
        if path.exists():
            return path
    return None


def is_manifest(path: str) -> bool:
    """Whether ``path`` is a ``fastdump.json`` that fastdump wrote (an OUTDIR's mark),
    not merely a file of that name."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(4096)
    except OSError:
        return False
    return head.startswith(b"{") and b'"fastdump_version"' in head


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
    where = ""
    if path:
        try:
            where = f" ({os.path.relpath(path, out_dir)})"
        except ValueError:  # another drive (Windows)
            where = f" ({path})"
    advice = _ADVICE.get(code, _OTHER) if code else _OTHER
    return OutputWriteError(f"cannot write to OUTDIR {out_dir}: {reason}{where}; {advice}",
                            out_dir=str(out_dir), errno=code,
                            path=None if path is None else os.fsdecode(path))


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


def atomic_write(target: Path, data: bytes, *, parents: bool = True) -> None:
    """Write ``data`` to ``target`` so that no reader ever sees half of it.

    ``parents=False`` for files directly in OUTDIR: a removed OUTDIR must be an
    error, not silently created again holding only that file. The temporary
    file is removed when the write fails (a full disk keeps no half copy).
    """
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    # Not named after the target: a target's name may be as long as a name can be.
    tmp = target.with_name(f".fastdump-{os.getpid()}-{next(_TEMPORARY)}.tmp")
    try:
        with open(tmp, "wb") as fp:
            fp.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
