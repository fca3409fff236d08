"""--shard I/N and fastdump merge: N shards, merged, are one run; overlaps are refused."""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

import fastdump
from fastdump.cli import main
from fastdump.errors import OutputDirError
from fastdump.formats import get_format
from fastdump.outdir import holding

from . import helpers
from .conftest import pydicom_file, pydicom_path_file, regular_files
from .helpers import read_jsonl


def by_path(records: list[dict]) -> dict[str, dict]:
    out = {r["path"]: r for r in records}
    assert len(out) == len(records), "a path twice"
    return out


def records(out, fmt: str) -> dict[str, dict]:
    """What an output holds, per file, in a form that does not depend on part names."""
    files = get_format(fmt).files
    errors = by_path(read_jsonl(out / files.errors, missing_ok=True))
    if fmt == "jsonl":
        ok = by_path(read_jsonl(out / "dump.jsonl"))
    elif fmt == "tags":
        ok = {p: {**e, "tags": (out / e["tags_file"]).read_text()}
              for p, e in by_path(read_jsonl(out / "index.jsonl")).items()}
    else:
        import duckdb

        result = duckdb.sql(f"select * from read_parquet('{out}/*.parquet')")
        names = result.columns
        ok = by_path([dict(zip(names, row, strict=True)) for row in result.fetchall()])
        assert set(ok) == {e["path"] for e in read_jsonl(out / "_index.jsonl")}
    assert not set(ok) & set(errors)
    return {**ok, **{p: {"error": e} for p, e in errors.items()}}


def accounted(out, fmt: str) -> set[str]:
    f = get_format(fmt)
    paths = helpers.accounted(out, (f.ledger_name, f.files.errors))
    assert len(paths) == len(set(paths))
    return set(paths)


@pytest.mark.parametrize("fmt", ["jsonl", "tags", "parquet"])
def test_three_shards_merged_are_one_run(archive, tmp_path, fmt, capsys):
    archive = shutil.copytree(archive, tmp_path / "archive")
    pydicom_path_file(archive)  # a fallback, for the summaries to count
    single = tmp_path / "single"
    whole = fastdump.dump([archive], single, format=fmt, jobs=2, progress=False)
    shards = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard{i}"
        assert main(["dump", str(archive), "-o", str(out), "--format", fmt, "--shard",
                     f"{i}/3", "-j", "2", "--no-progress"]) == 0
        assert f"(shard {i}/3)" in capsys.readouterr().err
        summary_file = out / get_format(fmt).files.summary
        assert orjson.loads(summary_file.read_bytes())["shard"] == f"{i}/3"
        shards.append(out)

    # the shards are disjoint, none is empty, and together they are every file
    found = [accounted(out, fmt) for out in shards]
    assert all(found)
    assert sum(len(f) for f in found) == len(set().union(*found))
    assert set().union(*found) == regular_files(archive)

    merged = tmp_path / "merged"
    assert main(["merge", *map(str, shards), "-o", str(merged)]) == 0
    assert records(merged, fmt) == records(single, fmt)
    summary = orjson.loads((merged / get_format(fmt).files.summary).read_bytes())
    assert (summary["files"], summary["ok"], summary["errors"]) == (
        whole.files, whole.ok, whole.errors)
    assert summary["error_kinds"] == whole.error_kinds and len(whole.error_kinds) >= 2
    # (before, a merge counted no fallback and named no pydicom version nor hot path)
    assert (summary["fallbacks"], summary["fallback_reasons"]) == (
        whole.fallbacks, whole.fallback_reasons) and whole.fallbacks
    assert (summary["pydicom_version"], summary["hot_path"]) == (
        whole.pydicom_version, whole.hot_path) and whole.hot_path
    assert (summary["out_dir_records"], summary["out_dir_errors"]) == (whole.ok, whole.errors)
    assert summary["extra"]["missing_shards"] == []
    assert not list(tmp_path.glob(".*merging"))

    # the merged directory is a fastdump output like any other: a resume finds it complete
    again = fastdump.dump([archive], merged, format=fmt, jobs=1, progress=False, resume=True)
    assert (again.ok, again.errors, again.unchanged) == (0, 0, whole.files)
    # what OUTDIR holds, not what the resume read: its unchanged error lines included
    assert (again.out_dir_records, again.out_dir_errors) == (whole.ok, whole.errors)


def small_dump(tmp_path, name: str, files: list[str], fmt: str = "jsonl", **kw):
    out = tmp_path / name
    fastdump.dump([pydicom_file(f) for f in files], out, format=fmt, jobs=1, progress=False,
                  **kw)
    return out


def test_a_file_in_two_inputs_is_refused(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm", "MR_small.dcm"])
    b = small_dump(tmp_path, "b", ["MR_small.dcm", "rtplan.dcm"])
    with pytest.raises(fastdump.MergeError, match=f"{pydicom_file('MR_small.dcm')} is in both"):
        fastdump.merge([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".*merging"))


def test_mixed_formats_are_refused(tmp_path, capsys):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"])
    b = small_dump(tmp_path, "b", ["MR_small.dcm"], fmt="tags")
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot merge outputs of different formats" in err[0]
    assert not (tmp_path / "m").exists()


def test_unfinished_runs_are_refused(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"])
    b = small_dump(tmp_path, "b", ["MR_small.dcm"])
    (b / "summary.json").unlink()  # killed before the end
    with pytest.raises(fastdump.MergeError, match="unfinished run"):
        fastdump.merge([a, b], tmp_path / "m")


def test_an_input_a_run_is_writing_is_refused_and_an_input_named_twice_too(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"])
    b = small_dump(tmp_path, "b", ["MR_small.dcm"])
    with holding(b):  # as a run into b does (a --resume of it)
        with pytest.raises(OutputDirError, match=f"OUTDIR {b.resolve()} is in use by another"):
            fastdump.merge([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".*merging"))
    with pytest.raises(fastdump.MergeError, match="is in both"):
        fastdump.merge([a, a], tmp_path / "m")
    assert fastdump.merge([a, b], tmp_path / "m").ok == 2


def test_parquet_rows_without_ledger_lines_are_refused(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"], fmt="parquet")
    b = small_dump(tmp_path, "b", ["MR_small.dcm", "rtplan.dcm"], fmt="parquet")
    index = b / "_index.jsonl"
    index.write_bytes(index.read_bytes().splitlines(keepends=True)[0])  # a kill mid-append
    with pytest.raises(fastdump.MergeError, match="does not list"):
        fastdump.merge([a, b], tmp_path / "m")


def test_different_parquet_columns_are_refused(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"], fmt="parquet", columns="Rows")
    b = small_dump(tmp_path, "b", ["MR_small.dcm"], fmt="parquet")
    with pytest.raises(fastdump.MergeError, match="same --columns"):
        fastdump.merge([a, b], tmp_path / "m")


def test_outputs_of_different_read_options_are_refused(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"], tags="PatientID")
    b = small_dump(tmp_path, "b", ["MR_small.dcm"])
    with pytest.raises(fastdump.MergeError, match="dumped with different options.*--tags 00100020"):
        fastdump.merge([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    c = small_dump(tmp_path, "c", ["MR_small.dcm"], tags="PatientID")
    assert fastdump.merge([a, c], tmp_path / "m").ok == 2
    read = orjson.loads((tmp_path / "m" / "fastdump.json").read_bytes())["read"]
    assert read == {"tags": ["00100020"], "bulk_threshold": 1024, "bulk_any_vr": False}


def test_out_must_be_new(tmp_path):
    a = small_dump(tmp_path, "a", ["CT_small.dcm"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(fastdump.OutputDirError, match="not an empty directory"):
        fastdump.merge([a], tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "mine"


def test_missing_shards_are_reported(archive, tmp_path, capsys):
    outs = []
    for i in (1, 3):
        outs.append(tmp_path / f"s{i}")
        fastdump.dump([archive / "study"], outs[-1], shard=f"{i}/3", jobs=1, progress=False)
    assert main(["merge", *map(str, outs), "-o", str(tmp_path / "m")]) == 0
    assert "shards 2/3 are not in this merge" in capsys.readouterr().err
    summary = orjson.loads((tmp_path / "m" / "summary.json").read_bytes())
    assert summary["extra"]["missing_shards"] == ["2/3"]


def test_skipped_entries_are_summed_and_named(tmp_path):
    outs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ct.dcm").write_bytes(open(pydicom_file("CT_small.dcm"), "rb").read())
        os.mkfifo(folder / "pipe")
        outs.append(tmp_path / f"out-{name}")
        fastdump.dump([folder], outs[-1], jobs=1, progress=False)
    assert main(["merge", *map(str, outs), "-o", str(tmp_path / "m")]) == 0
    summary = orjson.loads((tmp_path / "m" / "summary.json").read_bytes())
    assert summary["skipped"] == 2
    assert [e["path"] for e in summary["skipped_examples"]] == [
        str(tmp_path / "a" / "pipe"), str(tmp_path / "b" / "pipe")]


def test_out_inside_an_input_is_refused(tmp_path):
    # (before: accepted, the merge written inside one of its own inputs)
    a = small_dump(tmp_path, "a", ["CT_small.dcm"])
    b = small_dump(tmp_path, "b", ["MR_small.dcm"])
    for out, where in ((a / "inner", "lies inside"), (b / "x" / "y", "lies inside")):
        with pytest.raises(OutputDirError, match=f"OUT {out} {where} the input"):
            fastdump.merge([a, b], out)
    assert not (a / "inner").exists() and not list(a.glob(".*merging"))
