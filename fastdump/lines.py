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
import os
import re
from collections.abc import Callable
from typing import Any

import orjson

from .types import Stat

# The fields whose exact value printable() keeps beside their shown one
EXACT = ("path", "tags_file")

_DECODER = json.JSONDecoder()
_STAT = re.compile(rb',"size":(null|\d+),"mtime":(null|-?[0-9.eE+-]+)')
_EXACT_PATH = re.compile(rb',"path_base64":"([A-Za-z0-9+/=]*)"')


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line, always valid UTF-8 (see :func:`printable`)."""
    return dumps_json(record, orjson.OPT_APPEND_NEWLINE, _json_default)


def dumps_json(obj: Any, option: int = 0, default: Callable[[Any], Any] | None = None) -> bytes:
    """``orjson.dumps``, for JSON that may name files whose names are not UTF-8."""
    try:
        return orjson.dumps(obj, default=default, option=option)
    except TypeError as exc:
        if not _beyond_orjson(exc):
            try:  # orjson refuses lone surrogates: a file name that is not UTF-8
                return orjson.dumps(printable(obj), default=default, option=option)
            except TypeError as again:
                if not _beyond_orjson(again):
                    raise
        return _dumps_stdlib(obj, option, default)


def _beyond_orjson(exc: TypeError) -> bool:
    """Whether orjson refused what JSON holds: nesting deeper than 255 levels (about 84
    nested sequences), an integer beyond 64 bits (an IS of 20 digits, as pydicom
    converts it)."""
    return any(refusal in str(exc) for refusal in ("Recursion limit",
                                                   "Integer exceeds 64-bit range"))


def _dumps_stdlib(obj: Any, option: int, default: Callable[[Any], Any] | None) -> bytes:
    """What orjson will not write (:func:`_beyond_orjson`) the standard library writes:
    the same JSON, but for how a few floats are spelt (1.5e-07 for 1.5e-7). Deeper than
    Python's recursion limit, it raises RecursionError."""
    text = json.dumps(printable(obj), ensure_ascii=False, separators=(",", ":"),
                      default=default, allow_nan=False)
    return text.encode() + (b"\n" if option & orjson.OPT_APPEND_NEWLINE else b"")


def printable(record: Any) -> Any:
    """``record`` with every string valid Unicode, for JSON every tool reads.

    A file name that is not UTF-8 reaches Python as a str holding lone
    surrogates; written as ``\\udcXX`` escapes, one such name made DuckDB
    refuse the whole dump.jsonl. Its bytes that are not UTF-8 show as ``\\xNN``
    instead (as in the Parquet ``path`` column), and the exact name of the fields
    that must be opened again (``path``, ``tags_file``) is kept beside them, as
    base64 of its bytes, in ``path_base64`` (right after ``mtime``, in the
    prefix :func:`parse_prefix` reads) and ``tags_file_base64``.
    """
    if isinstance(record, str):
        return shown(record)
    if isinstance(record, list | tuple):
        return [printable(v) for v in record]
    if not isinstance(record, dict):
        return record
    out: dict[Any, Any] = {}
    pending = None  # path_base64, until mtime is written
    for name, value in record.items():
        out[name] = printable(value)
        if name in EXACT and isinstance(value, str) and out[name] != value:
            encoded = base64.b64encode(_raw(value)).decode("ascii")
            if name == "path" and "mtime" in record:
                pending = encoded
            else:
                out[f"{name}_base64"] = encoded
        if name == "mtime" and pending is not None:
            out["path_base64"] = pending
    return out


def shown(text: str) -> str:
    """``text`` as valid Unicode: the bytes of surrogate escapes as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _raw(text).decode("utf-8", "backslashreplace")


def _raw(text: str) -> bytes:
    """The bytes of a name as the system gave them."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name holds
        return text.encode("utf-8", "surrogatepass")


def exact(entry: dict[str, Any], name: str) -> Any:
    """A field of a parsed line as it was before :func:`printable`: the name to open."""
    encoded = entry.get(f"{name}_base64")
    return entry[name] if encoded is None else os.fsdecode(base64.b64decode(encoded))


def error_kind(line: bytes) -> str:
    """The type of an errors.jsonl line's error (``NotDicomError``), its text up to ':'."""
    at = line.find(b',"error":"')
    if at < 0:
        return "unknown"
    at += len(b',"error":"')
    end = min((i for i in (line.find(b":", at), line.find(b'"', at)) if i >= 0),
              default=len(line))
    return line[at:end].decode("utf-8", "replace") or "unknown"


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
    tail = text[end:].encode("utf-8", "surrogateescape")
    match = _STAT.match(tail)
    if not isinstance(path, str) or match is None:
        return None
    size = None if match[1] == b"null" else int(match[1])
    mtime = None if match[2] == b"null" else float(match[2])
    exact_path = _EXACT_PATH.match(tail, match.end())
    if exact_path is not None:  # the name is not UTF-8: see printable()
        path = os.fsdecode(base64.b64decode(exact_path[1]))
    return path, (size, mtime)
