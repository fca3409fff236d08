"""``fastdump merge``: the outputs of N runs (e.g. the N ``--shard`` runs) -> one output.

The merged directory is what one run over all the files would have written:
the same ledger, errors.jsonl, tag files or Parquet parts, a fastdump.json and
a summary.json, so it can itself be resumed. A file in two inputs is refused,
naming it: the inputs overlap (two runs of the same shard, or the same PATH
dumped twice), and picking one record silently could keep the stale one.
The merge is built in a hidden directory next to OUT and renamed into place,
so OUT never holds half a merge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from . import ledger
from ._version import __version__
from .errors import InputNotFoundError, MergeError, OutputDirError
from .formats import get_format
from .formats.base import Format
from .lines import error_kind, parse_prefix
from .outdir import atomic_write, find_manifest, holding
from .shard import check_shard
from .types import SKIPPED_EXAMPLES, Summary, read_options_text
from .walk import PathArg, path_args

SCRATCH_MARK = ".fastdump-merge"


def merge(inputs: PathArg | Sequence[PathArg], out_dir: str | os.PathLike) -> Summary:
    """Join the fastdump outputs ``inputs`` (all of one format) into the new ``out_dir``.

    Raises :class:`~fastdump.errors.MergeError` when they cannot be joined (mixed
    formats, a path in two of them, an unfinished run) and leaves nothing behind.
    """
    started = time.perf_counter()
    sources = [Path(p) for p in path_args(inputs)]  # (one path is one input)
    if not sources:
        raise MergeError("nothing to merge: give the output directories to join")
    with contextlib.ExitStack() as held:
        # no run may write an input while it is read (nor start to); each held once
        for src in dict.fromkeys(src.resolve() for src in sources):
            held.enter_context(holding(src))
        return _merge(sources, Path(out_dir), started)


def _merge(sources: list[Path], out: Path, started: float) -> Summary:
    fmt, read = _one_kind(sources)
    summaries = [_finished_summary(src, fmt) for src in sources]
    tmp = _scratch_dir(out, sources)
    summary = Summary(out_dir=str(out), format=fmt.name)
    try:
        _copy_all(fmt, sources, tmp, summary)
        _record(summary, sources, summaries, started)
        manifest = {"format": fmt.name, "fastdump_version": __version__, "merged": True} | (
            {"read": read} if read else {})
        atomic_write(tmp / fmt.files.manifest, orjson.dumps(manifest))
        fmt.write_summary(tmp, summary)
        (tmp / SCRATCH_MARK).unlink()
        if out.exists():
            out.rmdir()  # checked empty by _scratch_dir
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _copy_all(fmt: Format, sources: list[Path], tmp: Path, summary: Summary) -> None:
    """Every input's error lines and records into ``tmp``; no path may come twice."""
    merger = fmt.merger(tmp)
    seen: dict[str, Path] = {}  # path -> the input that holds it
    with open(tmp / fmt.files.errors, "wb") as errors, open(tmp / fmt.ledger_name, "wb") as out:
        for src in sources:
            for line in _lines(src / fmt.files.errors, src, seen, summary):
                errors.write(line)
                summary.count_error(error_kind(line))
            merger.start(src)
            for line in _lines(src / fmt.ledger_name, src, seen, summary):
                merger.copy(src, line, out)
                summary.ok += 1
            merger.end(src)
    merger.finish()
    summary.files = summary.ok + summary.errors
    summary.out_dir_records, summary.out_dir_errors = summary.ok, summary.errors


def _lines(path: Path, src: Path, seen: dict[str, Path], summary: Summary) -> Iterator[bytes]:
    if not path.exists():
        return
    for line in ledger.iter_lines(path):
        parsed = parse_prefix(line)
        if parsed is None or not line.endswith(b"\n"):
            raise MergeError(f"{path} holds a line that is not a whole fastdump record: "
                             "finish that run with fastdump dump ... --resume first")
        path_seen, (size, _) = parsed
        if path_seen in seen:
            raise MergeError(
                f"{path_seen} is in both {seen[path_seen]} and {src}: the outputs "
                "overlap (same --shard twice, or the same files dumped twice); merge "
                "outputs of disjoint runs only"
            )
        seen[path_seen] = src
        summary.bytes += size or 0
        yield line


def _finished_summary(src: Path, fmt: Format) -> dict[str, Any]:
    summary = fmt.read_summary(src)
    if summary is None or not fmt.finished(src):
        raise MergeError(f"{src} holds an unfinished run: finish it first with the same "
                         "fastdump dump command and --resume")
    return summary


def _one_kind(sources: list[Path]) -> tuple[Format, dict[str, Any] | None]:
    """The inputs' format and read settings (None: written before they were kept)."""
    manifests = {}
    for src in sources:
        if not src.is_dir():
            raise InputNotFoundError(f"no such output directory: {src}")
        manifest = find_manifest(src)
        if manifest is None:
            raise MergeError(f"{src} holds no fastdump output (no fastdump.json)")
        manifests[src] = orjson.loads(manifest.read_bytes())
    formats = {src: m.get("format") for src, m in manifests.items()}
    if len(set(formats.values())) > 1:
        listed = ", ".join(f"{src} ({fmt})" for src, fmt in formats.items())
        raise MergeError(f"cannot merge outputs of different formats: {listed}")
    reads = {src: m["read"] for src, m in manifests.items() if "read" in m}
    if len({orjson.dumps(r) for r in reads.values()}) > 1:
        listed = ", ".join(f"{src} ({read_options_text(r)})" for src, r in reads.items())
        raise MergeError(f"cannot merge outputs dumped with different options, their records "
                         f"would not match: {listed}")
    return get_format(next(iter(formats.values()))), next(iter(reads.values()), None)


def _scratch_dir(out: Path, sources: list[Path]) -> Path:
    """The hidden directory next to OUT where the merge is built."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputDirError(f"OUT {out} exists and is not an empty directory: choose a new one")
    for src in sources:
        if out.resolve().is_relative_to(src.resolve()):  # (an input's next run would hold it)
            where = "is" if out.resolve() == src.resolve() else "lies inside"
            raise OutputDirError(f"OUT {out} {where} the input {src}: choose a new directory "
                                 "outside the inputs")
    tmp = out.parent / f".{out.name}.merging"
    if (tmp / SCRATCH_MARK).exists():  # left by a killed merge
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except FileExistsError:
        raise OutputDirError(f"{tmp} is in the way of the merge: move it away") from None
    (tmp / SCRATCH_MARK).touch()
    return tmp


def _all_of(summaries: list[dict], name: str) -> str:
    return ", ".join(sorted({value for s in summaries if (value := s.get(name))}))


def _record(summary: Summary, sources: list[Path], summaries: list[dict], started: float):
    """What went into the merge: each input and its shard; shards missing from a set."""
    summary.skipped = sum(s.get("skipped", 0) for s in summaries)
    summary.fallbacks = sum(s.get("fallbacks", 0) for s in summaries)
    for s in summaries:
        for reason, count in s.get("fallback_reasons", {}).items():
            summary.fallback_reasons[reason] = summary.fallback_reasons.get(reason, 0) + count
    # the inputs' own: "3.0.2", or "3.0.1, 3.0.2" when runs differ ("" before, always)
    summary.pydicom_version = _all_of(summaries, "pydicom_version")
    summary.hot_path = _all_of(summaries, "hot_path")
    examples = [e for s in summaries for e in s.get("skipped_examples", [])]
    summary.skipped_examples = examples[:SKIPPED_EXAMPLES]
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.extra["merged_from"] = [
        {"out_dir": str(src), "shard": s.get("shard"), "files": s.get("files")}
        for src, s in zip(sources, summaries, strict=True)
    ]
    shards = [shard for s in summaries if (shard := check_shard(s.get("shard")))]
    counts = {n for _, n in shards}
    if len(counts) == 1:
        n = counts.pop()
        missing = sorted(set(range(1, n + 1)) - {i for i, _ in shards})
        summary.extra["missing_shards"] = [f"{i}/{n}" for i in missing]
