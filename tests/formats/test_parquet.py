"""--format parquet: DuckDB answers checked against pydicom, exactly once, resume after kills."""

from __future__ import annotations

import collections
import os
import shutil
import sys

import duckdb
import orjson
import pydicom
import pytest
from pydicom.datadict import dictionary_VM, dictionary_VR, tag_for_keyword
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, PersonName

import fastdump
from fastdump.cli import main
from fastdump.formats import parquet

from ..conftest import PYDICOM_FILES, pydicom_file, regular_files
from ..helpers import read_jsonl


def query(out, sql: str) -> list[dict]:
    """Run ``sql`` with ``{parts}`` standing for every part of OUTDIR; rows as dicts."""
    con = duckdb.connect()
    result = con.execute(sql.replace("{parts}", f"read_parquet('{out}/*.parquet')"))
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def read(path: str) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def expected(ds: pydicom.Dataset, keyword: str):
    """What a column should hold, from pydicom's own value of the element (the oracle)."""
    tag = tag_for_keyword(keyword)
    source = ds.file_meta if tag >> 16 == 2 else ds
    try:
        value = source[tag].value
    except Exception:  # noqa: BLE001 - absent, or a value pydicom cannot convert: null
        return None
    if value is None or value == "" or (isinstance(value, MultiValue) and not len(value)):
        return None
    values = list(value) if isinstance(value, MultiValue) else [value]
    vr = dictionary_VR(tag)
    try:
        if vr == "DA":
            values = [DA(v) if v else None for v in values]
            values = [None if v is None else __import__("datetime").date(v.year, v.month, v.day)
                      for v in values]
        elif vr in ("IS", "US", "SS", "UL", "SL", "US or SS"):
            values = [int(v) for v in values]
        elif vr in ("DS", "FL", "FD"):
            values = [float(v) for v in values]
        elif vr == "PN":
            values = [PersonName(v).alphabetic or None for v in values]
        else:
            values = [str(v) for v in values]
    except (TypeError, ValueError):
        return None
    if dictionary_VM(tag) != "1":
        return values
    if len(values) == 1:
        return values[0]
    return "\\".join(values) if all(isinstance(v, str) for v in values) else None


@pytest.fixture(scope="module")
def dumped(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("pq") / "out"
    summary = fastdump.dump([archive], out, format="parquet", jobs=2, progress=False)
    return archive, out, summary


def test_every_file_exactly_once(dumped):
    archive, out, summary = dumped
    rows = query(out, "select path from {parts}")
    errors = read_jsonl(out / "_errors.jsonl", missing_ok=True)
    paths = [r["path"] for r in rows] + [e["path"] for e in errors]
    assert len(paths) == len(set(paths))
    assert set(paths) == regular_files(archive)
    assert summary.ok == len(rows) and summary.errors == len(errors) > 0
    # The ledger lists exactly the rows, each in the part that holds it.
    listed = {(e["path"], e["part"]) for e in read_jsonl(out / "_index.jsonl")}
    held = {(r["path"], os.path.basename(r["filename"]))
            for r in query(out, "select path, filename from "
                                f"read_parquet('{out}/*.parquet', filename=true)")}
    assert listed == held
    assert not list(out.glob(".*.tmp"))


def test_instances_per_series_match_pydicom(dumped):
    _, out, _ = dumped
    sql = "select SeriesInstanceUID, count(*) as n from {parts} group by 1"
    answer = {r["SeriesInstanceUID"]: r["n"] for r in query(out, sql)}
    paths = [r["path"] for r in query(out, "select path from {parts}")]
    oracle = collections.Counter(expected(read(p), "SeriesInstanceUID") for p in paths)
    assert answer == dict(oracle)
    # the same CT_small copied into two folders: one series, at least three instances
    ct = expected(read(pydicom_file("CT_small.dcm")), "SeriesInstanceUID")
    assert answer[ct] >= 3


def test_typed_columns_match_pydicom_file_by_file(dumped):
    _, out, _ = dumped
    rows = query(out, "select * from {parts}")
    compared = collections.Counter()
    for row in rows:
        ds = read(row["path"])
        for keyword in parquet.DEFAULT_COLUMNS:
            assert row[keyword] == expected(ds, keyword), (row["path"], keyword)
            compared[keyword] += row[keyword] is not None
        assert orjson.loads(row["dataset"]) == fastdump.read_tags(row["path"])
    # the comparisons were not vacuous: most files have these values
    for keyword in ("SOPInstanceUID", "StudyDate", "Rows", "PixelSpacing", "PatientName",
                    "InstanceNumber", "TransferSyntaxUID", "ImageType", "SliceThickness"):
        assert compared[keyword] >= 10, keyword


def test_duckdb_sees_sql_types(dumped):
    _, out, _ = dumped
    types = query(out, "select typeof(StudyDate) d, typeof(Rows) r, typeof(SliceThickness) s, "
                       "typeof(PixelSpacing) p, typeof(ImageType) i, typeof(StudyTime) t "
                       "from {parts} where StudyDate is not null and PixelSpacing is not null "
                       "limit 1")
    assert types == [{"d": "DATE", "r": "BIGINT", "s": "DOUBLE", "p": "DOUBLE[]",
                      "i": "VARCHAR[]", "t": "VARCHAR"}]
    # date arithmetic works on them as dates
    ct = query(out, "select StudyDate + interval 1 day as next from {parts} where path like "
                    "'%CT_small.dcm' limit 1")
    assert str(ct[0]["next"])[:10] == "2004-01-20"


def test_nested_tag_from_the_dataset_column(dumped):
    _, out, _ = dumped
    # SourceImageSequence[0].ReferencedSOPClassUID, read with DuckDB's JSON functions
    rows = query(out, """select path, json_extract_string(dataset,
                           '$."00082112".Value[0]."00081150".Value[0]') as cls from {parts}""")
    found = 0
    for row in rows:
        ds = read(row["path"])
        items = ds.get("SourceImageSequence") or []
        want = items[0].get("ReferencedSOPClassUID") if len(items) else None
        assert row["cls"] == want, row["path"]
        found += want is not None
    assert found >= 5


def test_columns_option(tmp_path):
    files = [pydicom_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    out = tmp_path / "out"
    fastdump.dump(files, out, format="parquet", jobs=1, progress=False,
                  columns="PatientName, StudyDate,ImageType,PatientName")
    desc = query(out, "describe select * from {parts}")
    assert [d["column_name"] for d in desc] == [
        "path", "size", "mtime", "PatientName", "StudyDate", "ImageType",
        "meta", "dataset", "warnings"]
    rows = query(out, "select * from {parts}")
    assert {r["path"] for r in rows} == set(files)
    for row in rows:
        ds = read(row["path"])
        assert row["ImageType"] == expected(ds, "ImageType")
        assert row["PatientName"] == expected(ds, "PatientName")
    # a resume keeps the columns of the first run, and refuses other ones
    fastdump.dump(files, out, format="parquet", jobs=1, progress=False, resume=True)
    with pytest.raises(fastdump.OutputDirError, match="--columns PatientName,StudyDate"):
        fastdump.dump(files, out, format="parquet", jobs=1, progress=False, resume=True,
                      columns=["Rows"])


@pytest.mark.parametrize("columns, message", [
    ("PatientName,NoSuchKeyword", "'NoSuchKeyword' is not a DICOM keyword"),
    ("PatientNam", r"'PatientNam' is not a DICOM keyword \(did you mean PatientName"),
    ("studydate", r"did you mean StudyDate\?"),
    ("OverlayRows", r"'OverlayRows' names a repeating group's elements \(60xx0010\)"),
    ("ReferencedImageSequence", "sequence or binary"),
    (",", "at least one"),
])
def test_bad_columns_are_refused(tmp_path, columns, message):
    with pytest.raises(fastdump.OptionError, match=message):
        fastdump.dump([pydicom_file("CT_small.dcm")], tmp_path / "o", format="parquet",
                      columns=columns, progress=False)
    assert not (tmp_path / "o").exists()


def test_columns_need_parquet_and_cli_says_so(tmp_path, capsys):
    code = main(["dump", pydicom_file("CT_small.dcm"), "-o", str(tmp_path / "o"),
                 "--columns", "Rows", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fastdump: error: --columns applies to --format parquet only"]


def test_missing_pyarrow_is_an_option_error(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "pyarrow" or name.startswith("pyarrow."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(fastdump.OptionError, match=r'pip install "pyarrow>=14" \(fastdump'):
        fastdump.dump([pydicom_file("CT_small.dcm")], tmp_path / "o", format="parquet",
                      progress=False)
    assert not (tmp_path / "o").exists()


def test_invalid_values_become_null_and_the_record_is_kept(tmp_path):
    src = pydicom_file("CT_small.dcm")
    data = bytearray(open(src, "rb").read())
    ds = pydicom.dcmread(src)
    for keyword, bad in (("InstanceNumber", b"1A"), ("StudyDate", b"2004XX19")):
        elem = ds.get_item(tag_for_keyword(keyword), keep_deferred=True)  # raw: offsets
        assert elem.length == len(bad)
        data[elem.value_tell:elem.value_tell + len(bad)] = bad
    bad_file = tmp_path / "bad.dcm"
    bad_file.write_bytes(bytes(data))
    out = tmp_path / "out"
    summary = fastdump.dump([bad_file], out, format="parquet", jobs=1, progress=False)
    assert summary.ok == 1
    [row] = query(out, "select * from {parts}")
    assert row["InstanceNumber"] is None and row["StudyDate"] is None
    assert row["Rows"] == 128 and row["PatientName"] == "CompressedSamples^CT1"
    assert "00200013" in row["warnings"]  # the IS that could not be converted
    assert orjson.loads(row["dataset"])["00080020"]["Value"] == ["2004XX19"]  # kept as read


# --- resume ------------------------------------------------------------------


@pytest.fixture
def small_archive(tmp_path):
    """40 of pydicom's files, and a non-DICOM one, in a fresh folder."""
    root = tmp_path / "archive"
    root.mkdir()
    dicom = [f for f in PYDICOM_FILES if f.endswith(".dcm")][:40]
    for i, f in enumerate(dicom):
        shutil.copy(f, root / f"{i:02d}_{os.path.basename(f)}")
    (root / "notes.txt").write_text("not dicom\n")
    return root


def everything(out) -> dict[str, dict]:
    rows = query(out, "select * from {parts}")
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a file has two rows"
    return by_path


def check_accounting(out, archive) -> dict[str, dict]:
    rows = everything(out)
    errors = [e["path"] for e in read_jsonl(out / "_errors.jsonl", missing_ok=True)]
    assert len(errors) == len(set(errors)) and not set(errors) & set(rows)
    assert set(rows) | set(errors) == regular_files(archive)
    assert sorted(e["path"] for e in read_jsonl(out / "_index.jsonl")) == sorted(rows)
    assert not list(out.glob(".*"))
    return rows


def dump_in_small_parts(archive, out, monkeypatch) -> dict[str, dict]:
    """A parquet run of many small parts (8 rows each); its checked rows."""
    monkeypatch.setattr(parquet, "PART_ROWS", 8)
    fastdump.dump([archive], out, format="parquet", jobs=2, progress=False, batch_size=4)
    return check_accounting(out, archive)


def test_resume_after_a_kill(small_archive, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = dump_in_small_parts(small_archive, out, monkeypatch)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) >= 4
    index = read_jsonl(out / "_index.jsonl")
    # What a kill at different moments leaves behind:
    parts[0].unlink()  # a part lost (disk trouble, a hand)
    parts[1].write_bytes(parts[1].read_bytes()[:300])  # a part cut short
    (out / ".part-00099.parquet.tmp").write_bytes(b"PAR1 half a part")  # never closed
    # the last part closed, but only some of its ledger lines written, the last one half
    last = [e for e in index if e["part"] == parts[-1].name]
    keep = [e for e in index if e["part"] != parts[-1].name] + last[:2]
    lines = b"".join(orjson.dumps(e) + b"\n" for e in keep)
    (out / "_index.jsonl").write_bytes(lines + orjson.dumps(last[2])[:25])
    lost = {e["path"] for e in index if e["part"] in (parts[0].name, parts[1].name)}
    lost |= {e["path"] for e in last[2:]}

    errors = len(read_jsonl(out / "_errors.jsonl"))  # notes.txt, MR_truncated.dcm
    summary = fastdump.dump([small_archive], out, format="parquet", jobs=2, progress=False,
                            resume=True)
    assert summary.new == len(lost) == summary.ok and summary.errors == 0
    assert errors >= 1 and summary.unchanged == len(before) + errors - len(lost)
    after = check_accounting(out, small_archive)
    assert after == before  # the same rows, every column, each once


def test_resume_after_the_archive_changed(small_archive, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = dump_in_small_parts(small_archive, out, monkeypatch)
    names = sorted(before)
    gone, changed = names[3], names[12]
    os.remove(gone)
    shutil.copy(pydicom_file("MR_small.dcm"), changed)
    os.utime(changed, (1e9, 1e9))
    new = small_archive / "zz_new.dcm"
    shutil.copy(pydicom_file("rtplan.dcm"), new)

    summary = fastdump.dump([small_archive], out, format="parquet", jobs=2, progress=False,
                            resume=True)
    assert (summary.new, summary.changed, summary.gone) == (1, 1, 1)
    after = check_accounting(out, small_archive)
    assert gone not in after
    assert after[changed]["mtime"] == 1e9
    assert after[changed]["SOPInstanceUID"] == expected(read(changed), "SOPInstanceUID")
    assert after[changed]["SOPInstanceUID"] != before[changed]["SOPInstanceUID"]
    assert after[str(new)]["SOPInstanceUID"] == expected(read(str(new)), "SOPInstanceUID")
    untouched = set(before) - {gone, changed}
    assert {p: after[p] for p in untouched} == {p: before[p] for p in untouched}


def test_rows_are_written_in_row_groups_as_they_arrive(small_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 5)
    out = tmp_path / "out"
    fastdump.dump([small_archive], out, format="parquet", jobs=2, progress=False, batch_size=4)
    import pyarrow.parquet as pq

    [part] = out.glob("part-*.parquet")
    meta = pq.read_metadata(part)
    errors = read_jsonl(out / "_errors.jsonl")  # notes.txt, MR_truncated.dcm
    assert meta.num_row_groups >= 7 and meta.num_rows == 41 - len(errors) >= 38
    check_accounting(out, small_archive)


def test_file_names_that_are_not_utf8(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "PART_ROWS", 1)
    root = tmp_path / "archive"
    root.mkdir()
    odd = os.path.join(str(root), os.fsdecode(b"caf\xe9.dcm"))
    shutil.copy(pydicom_file("CT_small.dcm"), odd)
    shutil.copy(pydicom_file("MR_small.dcm"), root / "plain.dcm")
    out = tmp_path / "out"
    fastdump.dump([root], out, format="parquet", jobs=1, progress=False, batch_size=1)
    paths = {r["path"] for r in query(out, "select path from {parts}")}
    assert paths == {str(root / "caf\\xe9.dcm"), str(root / "plain.dcm")}
    # the ledger keeps the exact name: a resume finds it unchanged, and drops it once changed
    again = fastdump.dump([root], out, format="parquet", jobs=1, progress=False, resume=True)
    assert (again.unchanged, again.ok) == (2, 0)
    shutil.copy(pydicom_file("rtplan.dcm"), odd)
    os.utime(odd, (1e9, 1e9))
    again = fastdump.dump([root], out, format="parquet", jobs=1, progress=False, resume=True)
    assert (again.changed, again.ok) == (1, 1)
    rows = query(out, "select path, mtime from {parts} where path like '%caf%'")
    assert [r["mtime"] for r in rows] == [1e9]


def test_the_output_is_one_dataset_for_pandas_pyarrow_and_duckdb(dumped):
    import pandas
    import pyarrow.dataset
    import pyarrow.parquet

    archive, out, summary = dumped
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(("_", "."))) == [
        "part-00000.parquet"]
    frame = pandas.read_parquet(out)
    assert len(frame) == summary.ok
    assert len(pyarrow.parquet.read_table(out)) == summary.ok
    assert pyarrow.dataset.dataset(out).count_rows() == summary.ok
    assert query(out, "select count(*) as n from {parts}") == [{"n": summary.ok}]
    assert set(frame["path"]) == set(query_paths(out))


def query_paths(out) -> list[str]:
    return [row["path"] for row in query(out, "select path from {parts}")]


def test_a_resume_renames_the_side_files_of_an_older_layout(tmp_path):
    out = tmp_path / "out"
    files = [pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")]
    fastdump.dump(files[:1], out, format="parquet", jobs=1, progress=False)
    for name in ("errors.jsonl", "summary.json", "fastdump.json", "index.jsonl", "parquet.json"):
        os.replace(out / f"_{name}", out / name)  # as fastdump 0.1 wrote them
    again = fastdump.dump(files, out, format="parquet", jobs=1, progress=False, resume=True)
    assert (again.unchanged, again.ok) == (1, 1)
    assert sorted(p.name for p in out.iterdir()) == [
        "_errors.jsonl", "_fastdump.json", "_index.jsonl", "_parquet.json", "_summary.json",
        "part-00000.parquet", "part-00001.parquet"]


def test_a_run_that_made_no_row_still_leaves_the_columns(tmp_path):
    # (before: no part at all; pandas read no columns, and DuckDB found no file)
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("not DICOM")
    out = tmp_path / "out"
    summary = fastdump.dump([src], out, format="parquet", progress=False)
    assert (summary.ok, summary.errors) == (0, 1)
    ((count,),) = duckdb.sql(f"select count(*) from '{out}/*.parquet'").fetchall()
    assert count == 0
    names = [row[0] for row in duckdb.sql(f"describe select * from '{out}/*.parquet'").fetchall()]
    assert names[:3] == ["path", "size", "mtime"] and "PatientName" in names
    shutil.copy(pydicom_file("CT_small.dcm"), src / "ct.dcm")  # and a resume adds its row
    again = fastdump.dump([src], out, format="parquet", resume=True, progress=False)
    assert (again.new, again.unchanged) == (1, 1)
    ((rows,),) = duckdb.sql(f"select count(*) from '{out}/*.parquet'").fetchall()
    assert rows == 1
    merged = fastdump.merge([out], tmp_path / "merged")
    assert merged.ok == 1
