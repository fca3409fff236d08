"""What many test files need, written once: reading JSON Lines, following a BulkDataURI,
running the command, counting what is read from files (and by which read path), a free
TCP port, and the sample tags.

A plain module (import what you use), not fixtures: each helper is an ordinary
function whose arguments say what it does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson

# The six columns of "ten columns of ten million files" (the README's --tags example).
SIX_TAGS = "PatientID,StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,Modality,InstanceNumber"

# What a JSON Lines run writes: its ledger, then the files it could not read.
JSONL_OUTPUTS = ("dump.jsonl", "errors.jsonl")


# --- JSON Lines ----------------------------------------------------------------


def jsonl_lines(path: str | os.PathLike, missing_ok: bool = False) -> list[bytes]:
    """The lines of a JSON Lines file, as bytes; a missing file has none if ``missing_ok``."""
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    return path.read_bytes().splitlines()


def parse_line(line: bytes | str) -> dict:
    """One JSON line, which must be valid JSON that every tool reads: orjson refuses
    NaN, Infinity, invalid UTF-8 and lone surrogate escapes (DuckDB refuses those too)."""
    return orjson.loads(line)


def read_jsonl(path: str | os.PathLike, missing_ok: bool = False) -> list[dict]:
    """Every line of a JSON Lines file, parsed (see :func:`parse_line`)."""
    return [parse_line(line) for line in jsonl_lines(path, missing_ok)]


def output_lines(out: str | os.PathLike, names: tuple[str, ...] = JSONL_OUTPUTS) -> list[bytes]:
    """Every line of an OUTDIR's ledger and errors file (those that exist), duplicates kept."""
    return [line for name in names for line in jsonl_lines(Path(out) / name, missing_ok=True)]


def output_records(out: str | os.PathLike, names: tuple[str, ...] = JSONL_OUTPUTS
                   ) -> list[dict]:
    """:func:`output_lines`, parsed: one record or error line per entry, duplicates kept."""
    return [parse_line(line) for line in output_lines(out, names)]


def records_by_path(out: str | os.PathLike, roots: Sequence[str]) -> dict[str, dict]:
    """Every record and error line of OUTDIR by path, once each, with each of ``roots`` cut
    to ROOT/ in paths and URIs and mtime dropped: the same files from two places compare
    equal."""
    found: dict[str, dict] = {}
    for rec in output_records(out):
        text = orjson.dumps(rec).decode()
        for root in roots:
            text = text.replace(root, "ROOT/")
        rec = orjson.loads(text)
        rec.pop("mtime")
        assert rec["path"] not in found, f"{rec['path']} accounted for twice"
        found[rec["path"]] = rec
    return found


def accounted(out: str | os.PathLike, names: tuple[str, ...] = JSONL_OUTPUTS) -> list[str]:
    """The path of every line of :func:`output_lines`, duplicates kept (so that they show)."""
    return [record["path"] for record in output_records(out, names)]


# --- records ---------------------------------------------------------------------


def bulk_bytes(uri: str) -> bytes:
    """The bytes a ``file://`` BulkDataURI (``?offset=...&length=...``) points at."""
    parts = urlparse(uri)
    query = parse_qs(parts.query)
    with open(unquote(parts.path), "rb") as fp:
        fp.seek(int(query["offset"][0]))
        return fp.read(int(query["length"][0]))


# --- the command -----------------------------------------------------------------


def fastdump_exe() -> str:
    """The ``fastdump`` console script of the environment running the tests."""
    beside = Path(sys.executable).with_name("fastdump")  # the venv's, not another on PATH
    found = str(beside) if beside.exists() else shutil.which("fastdump")
    assert found, "the fastdump console script is not installed (pip install -e .)"
    return found


def cli_command(*args: Any, module: bool = False) -> list[str]:
    """The fastdump command line: the console script, or ``python -m fastdump``."""
    head = [sys.executable, "-m", "fastdump"] if module else [fastdump_exe()]
    return [*head, *map(str, args)]


def run_cli(*args: Any, stdin: str | bytes | None = None, module: bool = False,
            text: bool = True, timeout: float = 300, **options: Any
            ) -> subprocess.CompletedProcess:
    """Run the fastdump command as a real subprocess, its output captured.

    ``options`` go to :func:`subprocess.run` (``env``, ``cwd``...). The return
    code is the caller's to check: usage errors are tested too.
    """
    return subprocess.run(cli_command(*args, module=module), input=stdin, capture_output=True,
                          text=text, timeout=timeout, **options)


# --- reads ---------------------------------------------------------------------

FAST, PYDICOM = "fast path", "pydicom path"


@dataclass
class Opened:
    """One file opened through ``fastdump.source.open_source``, and what was read from it."""

    path: str
    reader: str  # FAST, PYDICOM, or the module that opened it
    buffered: bool
    calls: int = 0
    bytes: int = 0


@dataclass
class Reads:
    """What :func:`count_reads` saw, one :class:`Opened` per open."""

    opened: list[Opened] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(o.calls for o in self.opened)

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.opened)

    @property
    def readers(self) -> list[str]:
        """Which read path opened each file, in order: [FAST] when the fast path read it alone."""
        return [o.reader for o in self.opened]

    def reset(self) -> None:
        self.opened.clear()


def count_reads(monkeypatch) -> Reads:
    """Count, per open, the read calls and bytes of every file fastdump reads, and which
    read path opened it.

    Both read paths open files through ``fastdump.source.open_source``; the
    real one still does the opening (whatever arguments it is given), so the
    fast path gets the unbuffered file it asks for. Which path opened a file is
    told by the call stack: a frame of :mod:`fastdump.fastread` is the fast path,
    one of :func:`fastdump.record.read_record_pydicom` the pydicom path. (Compiled,
    fastdump.fastread makes no Python frame: a file it opens is opened, as seen
    from Python, by the frame that called into the compiled fast path.)
    """
    import fastdump.source

    real = fastdump.source.open_source
    reads = Reads()

    def counting_open(path, *args, **kwargs):
        buffered = kwargs.get("buffered", args[1] if len(args) > 1 else True)
        opened = Opened(str(path), _reader(sys._getframe(1)), bool(buffered))
        reads.opened.append(opened)
        return _CountingFile(real(path, *args, **kwargs), opened)

    monkeypatch.setattr(fastdump.source, "open_source", counting_open)
    return reads


def _reader(frame) -> str:
    import fastdump.fastread

    first = frame.f_globals.get("__name__", "?")
    if fastdump.fastread.COMPILED and first != "fastdump.source":
        return FAST  # only the fast path opens files without a frame (the other: source.opened)
    while frame is not None:
        if frame.f_globals.get("__name__") == "fastdump.fastread":
            return FAST
        if frame.f_code.co_name == "read_record_pydicom":
            return PYDICOM
        frame = frame.f_back
    return first


class _CountingFile:
    """A file object that counts its reads into an :class:`Opened`."""

    def __init__(self, raw, opened: Opened) -> None:
        self._raw = raw
        self._opened = opened

    def _count(self, n: int) -> None:
        self._opened.calls += 1
        self._opened.bytes += n

    def read(self, *args):
        data = self._raw.read(*args)
        self._count(len(data))
        return data

    def read1(self, *args):
        data = self._raw.read1(*args)
        self._count(len(data))
        return data

    def readinto(self, buffer):
        n = self._raw.readinto(buffer)
        self._count(n or 0)
        return n

    def __getattr__(self, name: str):
        return getattr(self._raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._raw.close()


# --- network -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT at its default (KeyboardInterrupt) in this process while in here: a test run
    in the background (CI under nohup, a shell's `&`) starts with it ignored, and fastdump
    leaves an ignored signal alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
