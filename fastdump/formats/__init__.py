"""The output formats, by name (listed in :mod:`fastdump.formats.registry`).

Each format is one class in one module of this package (see
:mod:`fastdump.formats.base` for what a format does); a new format is a new
module plus a line in the registry. Modules are imported when first asked for,
so a worker of a JSON Lines run never imports pyarrow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from .registry import REGISTRY, STDOUT_SPEC, load

if TYPE_CHECKING:
    from .base import Format

STDOUT = "-"

FORMATS = tuple(REGISTRY)


def get_format(name: str) -> Format:
    """The format called ``name``; :class:`~fastdump.errors.OptionError` if there is none."""
    if name not in REGISTRY:
        from ..errors import OptionError

        raise OptionError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return cast("Format", load(REGISTRY[name]))


def for_output(name: str, out: str | os.PathLike) -> Format:
    """The format that writes ``--format name`` to ``out`` (``-``: standard output)."""
    fmt = get_format(name)
    if os.fspath(out) != STDOUT:
        return fmt
    from .stdout import StdoutFormat

    StdoutFormat.accept(fmt)
    return cast("Format", load(STDOUT_SPEC))
