"""--format tags --resume: the names of the earlier run count. A file never gets a tag list
another file has (before, an X that appeared beside an X.dcm dumped before, or a PATH
added on resume, wrote its tags over the other file's list, and index.jsonl named one
list twice); and what a kill left of a list being written is removed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import fastdump
from fastdump.formats.tags import serialize_tags

from ..conftest import pydicom_file
from ..helpers import read_jsonl, run_cli


def tags_of(name: str) -> bytes:
    """The tag list of one of pydicom's test files, as fastdump writes it."""
    return serialize_tags(fastdump.read_record(pydicom_file(name)))


def dump_tags(*paths, resume: bool = False, out: Path) -> None:
    result = run_cli("dump", *paths, "-o", out, "--format", "tags", "--no-progress",
                     *(["--resume"] if resume else []))
    assert result.returncode == 0, result.stderr


def lists_by_path(out: Path) -> dict[str, bytes]:
    """Each file's tag list, read through index.jsonl, which names each list once."""
    index = read_jsonl(out / "index.jsonl")
    names = [line["tags_file"] for line in index]
    assert len(names) == len(set(names)), f"one tag list for two files: {names}"
    listed = {os.path.join(folder, name)
              for folder, _, files in os.walk(out) for name in files
              if name.endswith("_tags.txt")}
    assert listed == {str(out / n) for n in names}, "a tag list no line names"
    return {line["path"]: (out / line["tags_file"]).read_bytes() for line in index}


def test_an_x_that_appears_beside_an_x_dcm_dumped_before_gets_a_list_of_its_own(tmp_path):
    col, out = tmp_path / "col", tmp_path / "t"
    col.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), col / "A.dcm")
    dump_tags(col, out=out)
    shutil.copy(pydicom_file("rtplan.dcm"), col / "A")
    dump_tags(col, out=out, resume=True)
    assert lists_by_path(out) == {str(col / "A.dcm"): tags_of("CT_small.dcm"),
                                  str(col / "A"): tags_of("rtplan.dcm")}
    tags_file = {line["path"]: line["tags_file"] for line in read_jsonl(out / "index.jsonl")}
    assert tags_file[str(col / "A.dcm")] == "A_tags.txt"  # kept, as the user saw it
    assert tags_file[str(col / "A")].startswith("A~")  # ~ and a hash of its path
    # a later resume finds every list where it is: nothing read, nothing moved
    index = (out / "index.jsonl").read_bytes()
    dump_tags(col, out=out, resume=True)
    assert (out / "index.jsonl").read_bytes() == index


def test_a_path_added_on_resume_does_not_take_a_list_of_the_first_run(tmp_path):
    col, out = tmp_path / "col", tmp_path / "t"
    (col / "a" / "x").mkdir(parents=True)
    shutil.copy(pydicom_file("CT_small.dcm"), col / "a" / "x" / "IM1")
    shutil.copy(pydicom_file("rtplan.dcm"), col / "IM1")
    dump_tags(col / "a" / "x", out=out)  # IM1_tags.txt, relative to col/a/x
    dump_tags(col / "a" / "x", col / "IM1", out=out, resume=True)  # IM1_tags.txt, to col
    assert lists_by_path(out) == {str(col / "a" / "x" / "IM1"): tags_of("CT_small.dcm"),
                                  str(col / "IM1"): tags_of("rtplan.dcm")}


def test_a_changed_file_keeps_its_list_and_a_new_error_removes_no_other_list(tmp_path):
    col, out = tmp_path / "col", tmp_path / "t"
    col.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), col / "A.dcm")
    shutil.copy(pydicom_file("CT_small.dcm"), col / "B.dcm")
    dump_tags(col, out=out)
    # A.dcm changes once an A stands beside it (the layout would now say A.dcm_tags.txt);
    # a new B beside B.dcm is not DICOM (before, its error removed B.dcm's list)
    shutil.copy(pydicom_file("MR_small.dcm"), col / "A.dcm")
    shutil.copy(pydicom_file("rtplan.dcm"), col / "A")
    (col / "B").write_bytes(b"not DICOM")
    summary = fastdump.dump([col], out, format="tags", resume=True, jobs=1, progress=False)
    assert (summary.new, summary.changed, summary.errors) == (2, 1, 1)
    assert lists_by_path(out) == {str(col / "A.dcm"): tags_of("MR_small.dcm"),
                                  str(col / "A"): tags_of("rtplan.dcm"),
                                  str(col / "B.dcm"): tags_of("CT_small.dcm")}
    assert (out / "A_tags.txt").read_bytes() == tags_of("MR_small.dcm")  # rewritten in place


def test_a_resume_removes_the_temporary_files_a_kill_left(tmp_path, monkeypatch):
    """Tag lists are written under a temporary name in OUTDIR itself (not in the mirrored
    folders), so that one a kill leaves is where a resume looks, and removes it."""
    col, out = tmp_path / "col", tmp_path / "t"
    (col / "study" / "series").mkdir(parents=True)
    shutil.copy(pydicom_file("CT_small.dcm"), col / "study" / "series" / "IM1")
    renamed: list[str] = []
    replace = os.replace

    def recording(src, dst):
        renamed.append(os.fspath(src))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    fastdump.dump([col], out, format="tags", jobs=1, progress=False)
    monkeypatch.undo()
    assert renamed and {os.path.dirname(p) for p in renamed} == {str(out)}
    # what kill -9 leaves: a temporary (empty, or whole) of a list being written
    left = [out / ".fastdump-4242-0.tmp", out / ".fastdump-4242-1.tmp"]
    left[0].write_bytes(b"")
    left[1].write_bytes(tags_of("CT_small.dcm"))
    mine = out / ".fastdump-notes.tmp"  # not a name fastdump gives: not touched
    mine.write_text("x")
    dump_tags(col, out=out, resume=True)
    assert not any(p.exists() for p in left) and mine.exists()
