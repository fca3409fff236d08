"""The output formats, by name: the one place that lists them.

Each format is one class in one module of this package (see
:mod:`fastdump.formats.base` for what a format does); a new format is a new
module plus a line here. Modules are imported when first asked for, so a
worker of a JSON Lines run never imports pyarrow.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Format

# --format NAME -> "module:class"
_REGISTRY = {
    "jsonl": "jsonl:JsonlFormat",
    "tags": "tags:TagsFormat",
    "parquet": "parquet:ParquetFormat",
}
# -o - : the sink that writes to standard output instead of an OUTDIR
_STDOUT = "stdout:StdoutFormat"
STDOUT = "-"

FORMATS = tuple(_REGISTRY)


@cache
def _load(spec: str) -> Format:
    module, cls = spec.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


def get_format(name: str) -> Format:
    """The format called ``name``; :class:`~fastdump.errors.OptionError` if there is none."""
    if name not in _REGISTRY:
        from ..errors import OptionError

        raise OptionError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return _load(_REGISTRY[name])


def for_output(name: str, out: str | os.PathLike) -> Format:
    """The format that writes ``--format name`` to ``out`` (``-``: standard output)."""
    fmt = get_format(name)
    if os.fspath(out) != STDOUT:
        return fmt
    from .stdout import StdoutFormat

    StdoutFormat.accept(fmt)
    return _load(_STDOUT)
