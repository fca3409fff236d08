"""OUTDIR's shared files and how they are written, whatever the format.

Beside a format's own output, every OUTDIR holds ``errors.jsonl`` (one line per
file that could not be read), ``summary.json`` and ``fastdump.json`` (which
format the directory holds). A format whose readers take every file of the
directory as data (Parquet) names them with a leading ``_``, which those readers
skip. Writes are crash-safe: lines are appended whole, other files are written
to a temporary name and renamed.

A leaf module: it imports nothing of fastdump.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


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


def find_manifest(out_dir: Path) -> Path | None:
    """OUTDIR's ``fastdump.json`` (under either name), or None: not a fastdump output."""
    for files in (PLAIN, UNDERSCORED):
        path = out_dir / files.manifest
        if path.exists():
            return path
    return None


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that no reader ever sees half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fp:
        fp.write(data)
    os.replace(tmp, target)


class AppendFile:
    """A file opened for appending whole lines; flushed after every batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fp: BinaryIO = open(path, "ab")

    def write(self, data: bytes) -> None:
        self._fp.write(data)

    def flush(self) -> None:
        self._fp.flush()

    def close(self) -> None:
        self._fp.close()
