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

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from . import ledger
from .errors import InputNotFoundError, MergeError, OutputDirError
from .parquet import PART_GLOB, SETTINGS_FILE, _pyarrow
from .record import dumps_line
from .runner import Summary
from .shard import check_shard
from .writers import ERRORS_FILE, MANIFEST_FILE, SUMMARY_FILE, WRITERS, atomic_write

SCRATCH_MARK = ".fastdump-merge"


def merge(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> Summary:
    """Join the fastdump outputs ``inputs`` (all of one format) into the new ``out_dir``.

    Raises :class:`~fastdump.errors.MergeError` when they cannot be joined (mixed
    formats, a path in two of them, an unfinished run) and leaves nothing behind.
    """
    started = time.perf_counter()
    sources = [Path(p) for p in inputs]
    if not sources:
        raise MergeError("nothing to merge: give the output directories to join")
    summaries = [_finished_summary(src) for src in sources]
    fmt = _one_format(sources)
    out = Path(out_dir)
    tmp = _scratch_dir(out, sources)
    summary = Summary(out_dir=str(out), format=fmt)
    try:
        _Merge(fmt, tmp, summary).run(sources)
        _record(summary, sources, summaries, started)
        atomic_write(tmp / MANIFEST_FILE, orjson.dumps({"format": fmt, "merged": True}))
        atomic_write(tmp / SUMMARY_FILE, orjson.dumps(summary.to_dict(),
                                                      option=orjson.OPT_INDENT_2))
        (tmp / SCRATCH_MARK).unlink()
        if out.exists():
            out.rmdir()  # checked empty by _scratch_dir
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


class _Merge:
    """Copies records, checking that no path comes twice; one method per format."""

    def __init__(self, fmt: str, tmp: Path, summary: Summary) -> None:
        self.fmt = fmt
        self.tmp = tmp
        self.summary = summary
        self.seen: dict[str, Path] = {}  # path -> the input that holds it
        self.ledger_name = WRITERS[fmt].ledger_name
        self.parts = 0
        self.columns: list[str] | None = None

    def run(self, sources: list[Path]) -> None:
        copy_record = getattr(self, f"_{self.fmt}")
        with open(self.tmp / ERRORS_FILE, "wb") as errors, \
                open(self.tmp / self.ledger_name, "wb") as out:
            for src in sources:
                for line in self._lines(src, ERRORS_FILE):
                    errors.write(line)
                    self.summary.errors += 1
                renamed: dict[str, str] = {}
                if self.fmt == "parquet":
                    self._check_columns(src)
                for line in self._lines(src, self.ledger_name):
                    copy_record(src, line, out, renamed)
                    self.summary.ok += 1
                if self.fmt == "parquet":
                    self._check_parts(src, renamed)
        self.summary.files = self.summary.ok + self.summary.errors
        if self.columns is not None:
            atomic_write(self.tmp / SETTINGS_FILE, orjson.dumps({"columns": self.columns}))

    def _lines(self, src: Path, name: str):
        path = src / name
        if not path.exists():
            return
        for line in ledger.iter_lines(path):
            parsed = ledger.parse_prefix(line)
            if parsed is None or not line.endswith(b"\n"):
                raise MergeError(f"{path} holds a line that is not a whole fastdump record: "
                                 "finish that run with fastdump dump ... --resume first")
            path_seen, (size, _) = parsed
            if path_seen in self.seen:
                raise MergeError(
                    f"{path_seen} is in both {self.seen[path_seen]} and {src}: the outputs "
                    "overlap (same --shard twice, or the same files dumped twice); merge "
                    "outputs of disjoint runs only"
                )
            self.seen[path_seen] = src
            self.summary.bytes += size or 0
            yield line

    def _jsonl(self, src: Path, line: bytes, out: BinaryIO, renamed: dict) -> None:
        out.write(line)

    def _tags(self, src: Path, line: bytes, out: BinaryIO, renamed: dict) -> None:
        tags_file = json.loads(line)["tags_file"]
        target = self.tmp / tags_file
        if target.exists():
            raise MergeError(f"two inputs write the tag list {tags_file} (the second is {src}): "
                             "were they dumped from different PATHs?")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / tags_file, target)
        out.write(line)

    def _check_columns(self, src: Path) -> None:
        columns = json.loads((src / SETTINGS_FILE).read_bytes())["columns"]
        if self.columns is None:
            self.columns = columns
        elif columns != self.columns:
            raise MergeError(f"{src} has other Parquet columns than the inputs before it: "
                             "dump every shard with the same --columns")

    def _parquet(self, src: Path, line: bytes, out: BinaryIO, renamed: dict) -> None:
        entry = json.loads(line)
        part = entry["part"]
        if part not in renamed:
            renamed[part] = f"part-{self.parts:05d}.parquet"
            self.parts += 1
            shutil.copyfile(src / part, self.tmp / renamed[part])
        entry["part"] = renamed[part]
        out.write(dumps_line(entry))

    def _check_parts(self, src: Path, renamed: dict[str, str]) -> None:
        """Every row of every part has its ledger line: else the run was cut short."""
        listed = dict.fromkeys(renamed, 0)
        if (src / self.ledger_name).exists():
            for line in ledger.iter_lines(src / self.ledger_name):
                listed[json.loads(line)["part"]] += 1
        rows = {p.name: _num_rows(p) for p in src.glob(PART_GLOB)}
        cut_short = any(rows.get(part) != count for part, count in listed.items())
        if cut_short or set(rows) - set(listed):
            raise MergeError(f"{src} holds Parquet rows its index.jsonl does not list "
                             "(a run cut short): finish it with fastdump dump ... --resume")


def _num_rows(part: Path) -> int:
    return _pyarrow().parquet.read_metadata(str(part)).num_rows


def _finished_summary(src: Path) -> dict[str, Any]:
    if not src.is_dir():
        raise InputNotFoundError(f"no such output directory: {src}")
    if not (src / MANIFEST_FILE).exists():
        raise MergeError(f"{src} holds no fastdump output (no {MANIFEST_FILE})")
    summary_file = src / SUMMARY_FILE
    summary = orjson.loads(summary_file.read_bytes()) if summary_file.exists() else None
    leftovers = list(src.glob(".part-*.parquet.tmp"))
    if summary is None or summary.get("interrupted") or leftovers:
        raise MergeError(f"{src} holds an unfinished run: finish it first with the same "
                         "fastdump dump command and --resume")
    return summary


def _one_format(sources: list[Path]) -> str:
    formats = {src: orjson.loads((src / MANIFEST_FILE).read_bytes()).get("format")
               for src in sources}
    if len(set(formats.values())) > 1:
        listed = ", ".join(f"{src} ({fmt})" for src, fmt in formats.items())
        raise MergeError(f"cannot merge outputs of different formats: {listed}")
    return next(iter(formats.values()))


def _scratch_dir(out: Path, sources: list[Path]) -> Path:
    """The hidden directory next to OUT where the merge is built."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputDirError(f"OUT {out} exists and is not an empty directory: choose a new one")
    if any(out.resolve() == src.resolve() for src in sources):
        raise OutputDirError(f"OUT {out} is one of the inputs: choose a new directory")
    tmp = out.parent / f".{out.name}.merging"
    if (tmp / SCRATCH_MARK).exists():  # left by a killed merge
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except FileExistsError:
        raise OutputDirError(f"{tmp} is in the way of the merge: move it away") from None
    (tmp / SCRATCH_MARK).touch()
    return tmp


def _record(summary: Summary, sources: list[Path], summaries: list[dict], started: float):
    """What went into the merge: each input and its shard; shards missing from a set."""
    summary.skipped = sum(s.get("skipped", 0) for s in summaries)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.extra["merged_from"] = [
        {"out_dir": str(src), "shard": s.get("shard"), "files": s.get("files")}
        for src, s in zip(sources, summaries, strict=True)
    ]
    shards = [check_shard(s["shard"]) for s in summaries if s.get("shard")]
    counts = {n for _, n in shards}
    if len(counts) == 1:
        n = counts.pop()
        missing = sorted(set(range(1, n + 1)) - {i for i, _ in shards})
        summary.extra["missing_shards"] = [f"{i}/{n}" for i in missing]
