"""Reading back what a run wrote: the basis of --resume."""

from __future__ import annotations

import json

from fastdump.ledger import compact, load, repair_tail
from fastdump.lines import dumps_line
from fastdump.record import error_record
from fastdump.types import Entry


def test_repair_tail_cuts_a_half_line(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert repair_tail(path) == 1
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert repair_tail(path) == 0
    path.write_bytes(b'{"no newline at all')
    assert repair_tail(path) == 1 and path.read_bytes() == b""


def test_load_and_compact(tmp_path):
    def rec(path, size):
        return dumps_line({"path": path, "size": size, "mtime": 1.0, "dataset": {}})

    (tmp_path / "dump.jsonl").write_bytes(rec("/a", 1) + rec("/b", 1) + rec("/a", 2))
    (tmp_path / "errors.jsonl").write_bytes(dumps_line(error_record("/c", "E: x", 3, 1.0)))
    ledger = load(tmp_path, "dump.jsonl", "errors.jsonl")
    assert dict(ledger.items()) == {"/a": (2, 1.0), "/b": (1, 1.0), "/c": (3, 1.0)}
    assert ledger.duplicates == 1 and ledger.paths == 3
    # the walk finds /a and /c as the ledger last saw them; /b is gone
    assert ledger.check([Entry("/a", 2, 1.0), Entry("/c", 3, 1.0)]) == [(2, 1.0), (3, 1.0)]
    dropped = []
    compact(tmp_path, "dump.jsonl", "errors.jsonl", ledger,
            lambda line, gone: dropped.append((json.loads(line)["path"], gone)))
    ledger.close()
    assert dropped == [("/a", False), ("/b", True)]
    assert (tmp_path / "dump.jsonl").read_bytes() == rec("/a", 2)
    again = load(tmp_path, "dump.jsonl", "errors.jsonl")
    assert dict(again.items()) == {"/a": (2, 1.0), "/c": (3, 1.0)}
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.jsonl", "errors.jsonl"]
