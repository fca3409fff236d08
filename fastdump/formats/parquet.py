"""``--format parquet``: one typed row per file, in part files that a kill cannot corrupt.

Rows go into ``OUTDIR/part-NNNNN.parquet``. A part is written under a hidden
temporary name, one row group at a time as batches finish, and renamed into
place when it is closed (every :data:`PART_ROWS` rows and at the end of the
run). Only then are its files appended to the ledger ``_index.jsonl``
(``{"path","size","mtime","part"}``), so a resume never trusts rows of a part
that was not closed: its files are simply read again.

Every other file of OUTDIR starts with ``_`` (``_errors.jsonl``,
``_summary.json``, ...) or ``.``: the directory readers of pandas, pyarrow,
Spark and DuckDB skip those, so ``pandas.read_parquet(OUTDIR)`` reads the parts
as one dataset.

:func:`reconcile` makes parts and ledger agree again after a kill or a
compaction (leftover temporary parts deleted, rows without a ledger line
dropped, ledger lines of lost parts dropped). pyarrow is imported only when a
Parquet file is actually written or read; the worker side
(:func:`serialize_parquet`) needs only the standard library and pydicom's
dictionary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property, partial
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .. import dictionary, ledger
from ..compat import import_optional
from ..errors import MergeError, OptionError, OutputDirError
from ..lines import dumps_line, shown
from ..outdir import PLAIN, UNDERSCORED, atomic_write
from ..types import Options, Outcome, ReadSettings
from .base import Format, Merger, Serializer, Writer, ledger_line

INDEX_FILE = "_index.jsonl"  # the ledger
SETTINGS_FILE = "_parquet.json"  # the columns, kept for resume and merge
PART_GLOB = "part-*.parquet"
_PART = re.compile(r"\.?part-\d+\.parquet(\.tmp)?")  # a part, or one being written
PART_ROWS = 100_000  # rows per part: what a kill can cost, at most, on resume
ROW_GROUP_ROWS = 4096
ROW_GROUP_BYTES = 32 << 20  # of JSON text held before a row group is written

DEFAULT_COLUMNS = (
    "SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "PatientAge",
    "AccessionNumber", "Modality", "StudyDate", "StudyTime", "SeriesDate", "ContentDate",
    "StudyDescription", "SeriesDescription", "SeriesNumber", "InstanceNumber",
    "BodyPartExamined", "ImageType", "TransferSyntaxUID", "Manufacturer",
    "ManufacturerModelName", "InstitutionName", "StationName", "Rows", "Columns",
    "NumberOfFrames", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation",
    "SliceThickness", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
)
FIXED_BEFORE = ("path", "size", "mtime")
FIXED_AFTER = ("meta", "dataset", "warnings")

_INT_VRS = {"IS", "US", "SS", "UL", "SL", "UV", "SV"}
_FLOAT_VRS = {"DS", "FL", "FD"}
_TEXT_VRS = {"AE", "AS", "AT", "CS", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
             "UR", "UT"}


# --- columns: which tags, typed how (both sides) -----------------------------


@dataclass(frozen=True)
class Column:
    """One tag column: where its value is in a record and which Arrow type it gets."""

    keyword: str
    key: str  # the DICOM JSON key, e.g. "00280030"
    kind: str  # "int", "float", "date" or "text"
    multi: bool  # a list column (the tag's VM allows more than one value)
    in_meta: bool  # group 0002: read from the record's "meta"


@cache
def column(keyword: str) -> Column:
    """The column for a DICOM keyword; OptionError for one that is unknown or not a scalar."""
    tag = dictionary.tag_for_keyword(keyword)
    if tag is None and dictionary.repeating_mask(keyword):
        raise OptionError(f"--columns: {keyword!r} names a repeating group's elements "
                          f"({dictionary.repeating_mask(keyword)}), one for each group, which "
                          "no one column holds; --tags takes them as 8 hex digits")
    if tag is None:
        raise OptionError(f"--columns: {keyword!r} is not a DICOM keyword"
                          f"{dictionary.did_you_mean(keyword)}; give keywords as pydicom "
                          "spells them (PatientName, SeriesInstanceUID)")
    vr = dictionary.dictionary_vr(tag) or "UN"
    vrs = set(vr.split(" or "))
    if vrs <= _INT_VRS:
        kind = "int"
    elif vrs <= _FLOAT_VRS:
        kind = "float"
    elif vrs == {"DA"}:
        kind = "date"
    elif vrs <= _TEXT_VRS:
        kind = "text"
    else:
        raise OptionError(f"--columns: {keyword} is {vr} (a sequence or binary "
                          "value), which has no column; read it from the dataset column")
    return Column(keyword, f"{tag:08X}", kind, dictionary.dictionary_vm(tag) != "1",
                  tag >> 16 == 2)


def check_columns(columns: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Validate ``--columns`` before anything is written; None means "not chosen"."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = columns.split(",")
    chosen = tuple(dict.fromkeys(c.strip() for c in columns if c.strip()))
    if not chosen:
        raise OptionError("--columns: give at least one DICOM keyword")
    for keyword in chosen:
        column(keyword)
    return chosen


# --- worker side -------------------------------------------------------------


def serialize_parquet(record: dict[str, Any], opts: Options) -> tuple:
    """A record -> one row: path, size, mtime, the tag columns, meta, dataset, warnings."""
    row: list[Any] = [shown(record["path"]), record["size"], record["mtime"]]
    for keyword in opts.columns or DEFAULT_COLUMNS:
        col = column(keyword)
        element = record["meta" if col.in_meta else "dataset"].get(col.key)
        row.append(_cell(element, col))
    warnings = record.get("warnings")
    row += [_json(record["meta"]), _json(record["dataset"]),
            _json(warnings) if warnings else None]
    return tuple(row)


def _cell(element: dict[str, Any] | None, col: Column) -> Any:
    # "UN" here means fastdump kept raw bytes pydicom could not convert: no valid value.
    if not element or element.get("vr") == "UN" or not element.get("Value"):
        return None
    values = [_scalar(v, col.kind) for v in element["Value"]]
    if col.multi:
        return values
    if len(values) == 1:
        return values[0]
    # A tag defined single-valued but holding several: text keeps them in DICOM's
    # own notation; a number or date has no sensible single value.
    if col.kind == "text" and None not in values:
        return "\\".join(values)
    return None


def _scalar(value: Any, kind: str) -> Any:
    try:
        if kind == "text":
            if isinstance(value, dict):  # PN: {"Alphabetic": ..., "Ideographic": ...}
                value = value.get("Alphabetic")
            return None if value is None else shown(str(value))
        if value is None or isinstance(value, bool):
            return None
        if kind == "int":
            number = int(value) if isinstance(value, str) else value
            if number != int(number) or not -(2**63) <= number < 2**63:
                return None
            return int(number)
        if kind == "float":
            return float(value)
        return _date(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _date(value: Any) -> datetime.date | None:
    """A DA value: YYYYMMDD, or the old ACR-NEMA YYYY.MM.DD that pydicom accepts too."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) == 10 and text[4] == text[7] == ".":
        text = text[:4] + text[5:7] + text[8:]
    if len(text) != 8 or not text.isdigit():
        return None
    return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _json(value: Any) -> str:
    return dumps_line(value)[:-1].decode("utf-8")


# --- parent side -------------------------------------------------------------


def _pyarrow() -> Any:
    pa = import_optional("pyarrow", "parquet", "--format parquet")
    import_optional("pyarrow.parquet", "parquet", "--format parquet")
    return pa


def arrow_schema(columns: Sequence[str]) -> Any:
    pa = _pyarrow()
    kinds = {"int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
             "text": pa.string()}
    fields = [pa.field("path", pa.string(), nullable=False), pa.field("size", pa.int64()),
              pa.field("mtime", pa.float64())]
    for keyword in columns:
        col = column(keyword)
        kind = kinds[col.kind]
        fields.append(pa.field(keyword, pa.list_(kind) if col.multi else kind))
    fields += [pa.field(name, pa.string()) for name in FIXED_AFTER]
    return pa.schema(fields)


class ParquetFormat(Format):
    name = "parquet"
    ledger_name = INDEX_FILE
    files = UNDERSCORED

    def check_options(self, opts: Options) -> Options:
        _pyarrow()  # before anything is written: say which pip install is missing
        return dataclasses.replace(opts, columns=check_columns(opts.columns))

    def claim(self, out: Path, resume: bool, overwrite: bool, read: ReadSettings) -> None:
        if resume and out.is_dir():
            _rename_side_files(out)
        super().claim(out, resume, overwrite, read)

    def prepare(self, out: Path, opts: Options, resume: bool) -> Options:
        """Settle the columns of OUTDIR (a resume keeps those of the first run) and recover it."""
        settings = out / SETTINGS_FILE
        columns = opts.columns
        if resume and settings.exists():
            before = tuple(json.loads(settings.read_bytes())["columns"])
            if columns is not None and columns != before:
                raise OutputDirError(
                    f"OUTDIR {out} holds Parquet with --columns {','.join(before)}; resume "
                    "without --columns (or with the same ones), or use another OUTDIR"
                )
            columns = before
        columns = columns or DEFAULT_COLUMNS
        atomic_write(settings, orjson.dumps({"columns": list(columns)}))
        if resume:
            reconcile(out)
        return dataclasses.replace(opts, columns=columns)

    def compact(self, out: Path, previous: ledger.Ledger,
                forget: ledger.Forget | None = None) -> None:
        super().compact(out, previous, forget)
        reconcile(out)  # the compacted ledger no longer lists rows of changed and vanished files

    def finished(self, out: Path) -> bool:
        return super().finished(out) and not any(out.glob(".part-*.parquet.tmp"))

    def owns(self, folder: str, entry: os.DirEntry) -> bool:
        return super().owns(folder, entry) or (
            not folder and entry.is_file(follow_symlinks=False)
            and _PART.fullmatch(entry.name) is not None)

    @cached_property
    def own_names(self) -> frozenset[str]:
        # and the names of before the side files took a leading "_" (see _rename_side_files)
        return super().own_names | set(_OLD_NAMES) | {SETTINGS_FILE, f".{INDEX_FILE}.reconcile"}

    def serializer(self, opts: Options) -> Serializer:
        return partial(serialize_parquet, opts=opts)

    def open_writer(self, out: Path, roots: Sequence[str]) -> Writer:
        return ParquetWriter(out, self)

    def merger(self, tmp: Path) -> Merger:
        return ParquetMerger(self, tmp)


_OLD_NAMES = {PLAIN.errors: UNDERSCORED.errors, PLAIN.summary: UNDERSCORED.summary,
              PLAIN.manifest: UNDERSCORED.manifest, "index.jsonl": INDEX_FILE,
              "parquet.json": SETTINGS_FILE}


def _rename_side_files(out: Path) -> None:
    """An OUTDIR written before the side files took a leading ``_``: give them it."""
    for before, after in _OLD_NAMES.items():
        if (out / before).exists() and not (out / after).exists():
            os.replace(out / before, out / after)


class ParquetWriter(Writer):
    """Rows -> row groups of the open part; a part's ledger lines only once it is closed."""

    def __init__(self, out_dir: Path, fmt: Format) -> None:
        super().__init__(out_dir, fmt)
        self._pq = _pyarrow().parquet
        columns = json.loads((out_dir / SETTINGS_FILE).read_bytes())["columns"]
        self.schema = arrow_schema(columns)
        self._rows: list[tuple] = []  # not yet in a row group
        self._row_bytes = 0
        self._part: Any = None  # the open pq.ParquetWriter
        self._part_lines: list[bytes] = []  # ledger lines of the open part
        self._part_no = _next_part_no(out_dir)

    def write(self, outcome: Outcome) -> None:
        row = outcome.payload
        self._rows.append(row)
        self._row_bytes += len(row[-2])
        self._part_lines.append(ledger_line(outcome, part=self._part_name))
        if len(self._rows) >= ROW_GROUP_ROWS or self._row_bytes >= ROW_GROUP_BYTES:
            self._write_row_group()

    def flush(self) -> None:
        if len(self._part_lines) >= PART_ROWS:
            self._close_part()
        super().flush()

    def close(self) -> None:
        try:
            self._close_part()
            if not any(self.out_dir.glob(PART_GLOB)):
                # No file made a row (none found, or all bad): a part of no rows, so that
                # read_parquet('out') and 'out/*.parquet' still find the columns.
                self._open_part()
                self._close_part()
        finally:
            super().close()

    def _open_part(self) -> None:
        try:
            self._part = self._pq.ParquetWriter(str(_temp(self.out_dir / self._part_name)),
                                                self.schema, compression="zstd")
        except OSError as exc:
            exc.filename = exc.filename or str(_temp(self.out_dir / self._part_name))
            raise

    @property
    def _part_name(self) -> str:
        return f"part-{self._part_no:05d}.parquet"

    def _write_row_group(self) -> None:
        if not self._rows:
            return
        try:
            if self._part is None:
                self._open_part()
            self._part.write_table(_table(self.schema, self._rows),
                                   row_group_size=len(self._rows))
        except OSError as exc:
            exc.filename = exc.filename or str(_temp(self.out_dir / self._part_name))
            self._abort_part()
            raise
        self._rows, self._row_bytes = [], 0

    def _close_part(self) -> None:
        self._write_row_group()
        if self._part is None:
            return
        final = self.out_dir / self._part_name
        try:
            self._part.close()
            os.replace(_temp(final), final)
        except OSError as exc:
            exc.filename = exc.filename or str(_temp(final))
            self._abort_part()
            raise
        for line in self._part_lines:
            self.ledger.write(line)
        self.ledger.flush()
        self._part, self._part_lines = None, []
        self._part_no += 1


    def _abort_part(self) -> None:
        """Writing the open part failed (disk full, read-only): give it up.

        Its rows were never in the ledger, so --resume reads their files again;
        deleting the temporary part gives its space back for summary.json.
        """
        part, self._part = self._part, None
        if part is not None:
            with contextlib.suppress(Exception):  # it may fail again: the file goes anyway
                part.close()
        with contextlib.suppress(OSError):
            _temp(self.out_dir / self._part_name).unlink()
        self._rows, self._row_bytes, self._part_lines = [], 0, []


def _table(schema: Any, rows: list[tuple]) -> Any:
    pa = _pyarrow()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _temp(part: Path) -> Path:
    return part.with_name(f".{part.name}.tmp")


def _next_part_no(out_dir: Path) -> int:
    numbers = [int(p.name[5:-8]) for p in out_dir.glob(PART_GLOB) if p.name[5:-8].isdigit()]
    return max(numbers, default=-1) + 1


# --- recovery: parts and ledger agree again -----------------------------------

Key = tuple[str, int | None, float | None]  # a row: path, size, mtime
PartKey = tuple[str, str, int | None, float | None]  # a ledger line: part, path, size, mtime


def reconcile(out_dir: Path) -> None:
    """Make the parts hold exactly the rows the ledger lists, and the ledger only rows that exist.

    Safe to run at any time and to interrupt: every file is rewritten under a
    temporary name and renamed, parts first, so a second run finishes the job.
    """
    for leftover in out_dir.glob(".part-*.parquet.tmp"):
        leftover.unlink()
    index = out_dir / INDEX_FILE
    listed = _listed(index)
    lost: set[PartKey] = set()  # ledger lines whose row is not there
    for part in sorted(set(listed) | {p.name for p in out_dir.glob(PART_GLOB)}):
        keys = listed.get(part, set())
        if _num_rows(out_dir / part) == len(keys) > 0:
            continue  # lines are only ever dropped, so equal counts mean equal sets
        rows = _part_keys(out_dir / part)
        if rows is None:  # missing or unreadable: its files must be read again
            lost |= {(part, *k) for k in keys}
            (out_dir / part).unlink(missing_ok=True)
            continue
        if set(rows) != keys:
            _filter_part(out_dir / part, keep=[k in keys for k in rows])
            lost |= {(part, *k) for k in keys - set(rows)}
    if lost:
        _drop_lines(index, lost)


def _listed(index: Path) -> dict[str, set[Key]]:
    """Ledger lines by part: part -> {(path text, size, mtime)}."""
    listed: dict[str, set[Key]] = {}
    if not index.exists():
        return listed
    ledger.repair_tail(index)
    for line in ledger.iter_lines(index):
        entry = json.loads(line)
        listed.setdefault(entry["part"], set()).add(_key(entry))
    return listed


def _key(entry: dict[str, Any]) -> Key:
    return (shown(entry["path"]), entry["size"], entry["mtime"])


def _num_rows(part: Path) -> int | None:
    pa = _pyarrow()
    try:
        return pa.parquet.read_metadata(str(part)).num_rows
    except (OSError, ValueError, pa.ArrowException):
        return None


def _part_keys(part: Path) -> list[Key] | None:
    """The (path, size, mtime) of every row of a part, in order; None if it cannot be read."""
    pa = _pyarrow()
    try:
        table = pa.parquet.read_table(str(part), columns=list(FIXED_BEFORE))
    except (OSError, ValueError, pa.ArrowException):
        return None
    return list(zip(*(table.column(n).to_pylist() for n in FIXED_BEFORE), strict=True))


def _filter_part(part: Path, keep: list[bool]) -> None:
    """Rewrite a part without the rows not kept, one row group at a time."""
    pa = _pyarrow()
    if not any(keep):
        part.unlink()
        return
    source = pa.parquet.ParquetFile(str(part))
    tmp = _temp(part)
    start = 0
    with pa.parquet.ParquetWriter(str(tmp), source.schema_arrow, compression="zstd") as out:
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            mask = pa.array(keep[start:start + table.num_rows])
            start += table.num_rows
            out.write_table(table.filter(mask))
    os.replace(tmp, part)


def _drop_lines(index: Path, lost: set[PartKey]) -> None:
    tmp = index.with_name(f".{index.name}.reconcile")
    with open(tmp, "wb") as out:
        for line in ledger.iter_lines(index):
            entry = json.loads(line)
            if (entry["part"], *_key(entry)) not in lost:
                out.write(line)
    os.replace(tmp, index)


# --- merge --------------------------------------------------------------------------


class ParquetMerger(Merger):
    """Copies whole parts (renumbered) and their ledger lines; inputs must share columns."""

    def __init__(self, fmt: Format, tmp: Path) -> None:
        super().__init__(fmt, tmp)
        self.columns: list[str] | None = None
        self.parts = 0
        self.renamed: dict[str, str] = {}  # the current input's part -> its name in OUT

    def start(self, src: Path) -> None:
        columns = json.loads((src / SETTINGS_FILE).read_bytes())["columns"]
        if self.columns is None:
            self.columns = columns
        elif columns != self.columns:
            raise MergeError(f"{src} has other Parquet columns than the inputs before it: "
                             "dump every shard with the same --columns")
        self.renamed = {}

    def copy(self, src: Path, line: bytes, out: BinaryIO) -> None:
        entry = json.loads(line)
        part = entry["part"]
        if part not in self.renamed:
            self.renamed[part] = f"part-{self.parts:05d}.parquet"
            self.parts += 1
            shutil.copyfile(src / part, self.tmp / self.renamed[part])
        entry["part"] = self.renamed[part]
        out.write(dumps_line(entry))

    def end(self, src: Path) -> None:
        """Every row of every part has its ledger line: else the run was cut short."""
        listed = dict.fromkeys(self.renamed, 0)
        if (src / INDEX_FILE).exists():
            for line in ledger.iter_lines(src / INDEX_FILE):
                listed[json.loads(line)["part"]] += 1
        rows = {p.name: _num_rows(p) for p in src.glob(PART_GLOB)}
        rows = {name: n for name, n in rows.items() if n != 0}  # (a run that made no row)
        cut_short = any(rows.get(part) != count for part, count in listed.items())
        if cut_short or set(rows) - set(listed):
            raise MergeError(f"{src} holds Parquet rows its {INDEX_FILE} does not list "
                             "(a run cut short): finish it with fastdump dump ... --resume")

    def finish(self) -> None:
        if self.columns is not None:
            atomic_write(self.tmp / SETTINGS_FILE, orjson.dumps({"columns": self.columns}))
