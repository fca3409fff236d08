"""``--format jsonl`` (the default): one DICOM JSON record per line of ``dump.jsonl``.

The record line is its own ledger line: it starts with path, size and mtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..lines import dumps_line
from ..types import Options, Outcome
from .base import Format, Serializer, Writer


class JsonlFormat(Format):
    name = "jsonl"
    ledger_name = "dump.jsonl"
    records_are_lines = True

    def serializer(self, opts: Options) -> Serializer:
        return dumps_line

    def open_writer(self, out: Path, roots: Sequence[str]) -> Writer:
        return JsonlWriter(out, self)


class JsonlWriter(Writer):
    def write(self, outcome: Outcome) -> None:
        self.ledger.write(outcome.payload)

    def write_lines(self, records: bytes) -> None:
        self.ledger.write(records)
