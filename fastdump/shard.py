"""``--shard I/N``: the I-th of N deterministic slices of the input.

A file belongs to shard ``crc32(path bytes) % N + 1``. The hash is of the
path as the walk spells it (absolute, symlinks in it kept), so every machine
must name the archive the same way for the N shards to cover it exactly once.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from .errors import OptionError

Shard = tuple[int, int]


def check_shard(shard: Shard | str | None) -> Shard | None:
    """``(i, n)`` from ``(i, n)`` or ``"i/n"``; OptionError unless 1 <= i <= n."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i, n = (int(part) for part in shard.split("/"))
        except ValueError:
            raise OptionError(
                f"--shard must be I/N, e.g. 2/3 for the second of three slices, not {shard!r}"
            ) from None
    else:
        i, n = _pair(shard)
    if not 1 <= i <= n:
        raise OptionError(f"--shard {i}/{n}: I must be between 1 and N (shards count from 1)")
    return i, n


def _pair(shard: object) -> Shard:
    """``shard`` as two whole numbers; OptionError for anything else (not two things, or
    not numbers)."""
    try:
        i, n = shard  # type: ignore[misc]
    except (TypeError, ValueError):  # not two things
        i = n = None
    if (isinstance(i, int) and isinstance(n, int)
            and not isinstance(i, bool) and not isinstance(n, bool)):
        return i, n
    raise OptionError(f"shard must be two whole numbers, (2, 3), or \"2/3\", not {shard!r}")


def in_shard(path: str, shard: Shard | None) -> bool:
    """Whether ``path`` is in ``shard`` (every path is, without one)."""
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(os.fsencode(path)) % n == i - 1


def label(shard: Shard | None) -> str | None:
    return None if shard is None else f"{shard[0]}/{shard[1]}"


def check_resume(out_dir: Path, summary: dict[str, Any] | None, shard: Shard | None) -> None:
    """Refuse to resume a run with another --shard: the other files would count as gone.

    ``summary``: the summary.json of the run in OUTDIR, if it wrote one.
    """
    if summary is None:
        return
    before = summary.get("shard")
    if before != label(shard):
        raise OptionError(
            f"OUTDIR {out_dir} holds a run of {f'--shard {before}' if before else 'all files'}: "
            f"resume it with {f'--shard {before}' if before else 'no --shard'}"
        )
