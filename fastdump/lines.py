"""The JSON lines fastdump writes, and the prefix every ledger line starts with.

Every line of a ledger (``dump.jsonl``, ``index.jsonl``) and of
``errors.jsonl`` starts with ``{"path":...,"size":...,"mtime":...``. Reading
just that prefix tells which files a run accounted for, without parsing the
(possibly huge) record behind it: that is what resume and merge rely on.

Near the bottom of the layers: it imports only :mod:`fastdump.types`.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson

from .types import Stat

_DECODER = json.JSONDecoder()
_STAT = re.compile(rb',"size":(null|\d+),"mtime":(null|-?[0-9.eE+-]+)')


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line. Paths that are not valid UTF-8 keep their surrogate escapes."""
    try:
        return orjson.dumps(record, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # orjson refuses lone surrogates (undecodable file names); the standard
        # library writes them as \\udcXX escapes, which read back to the same str.
        text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=_json_default)
        return text.encode() + b"\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    return str(obj)


def parse_prefix(line: bytes) -> tuple[str, Stat] | None:
    """``(path, (size, mtime))`` of a ledger line, or None if it is not one."""
    if not line.startswith(b'{"path":'):
        return None
    try:
        text = line[:8192].decode("utf-8", "surrogateescape")
        path, end = _DECODER.raw_decode(text, 8)
    except ValueError:
        return None
    match = _STAT.match(text[end:].encode("utf-8", "surrogateescape"))
    if not isinstance(path, str) or match is None:
        return None
    size = None if match[1] == b"null" else int(match[1])
    mtime = None if match[2] == b"null" else float(match[2])
    return path, (size, mtime)
