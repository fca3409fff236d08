"""--format tags: one tag list per file, the input tree mirrored, nothing overwritten."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil

import pydicom

import fastdump
from fastdump.formats.tags import TagsLayout

from ..conftest import pydicom_file, regular_files
from ..helpers import read_jsonl, run_cli


def test_format_tags_mirrors_the_tree(archive, tmp_path):
    out = tmp_path / "o"
    summary = fastdump.dump([archive], out, format="tags", progress=False)
    one = out / "study" / "series1" / "IM0001_tags.txt"
    two = out / "study" / "series2" / "IM0001_tags.txt"
    assert one.exists() and two.exists()
    ct = out / "pydicom" / "CT_small_tags.txt"
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    assert ct.read_text() == "".join(expected_tag_read_jsonl(ds))
    index = read_jsonl(out / "index.jsonl")
    assert len(index) == summary.ok
    assert all((out / r["tags_file"]).exists() for r in index)
    listed = [r["path"] for r in index] + [r["path"] for r in read_jsonl(out / "errors.jsonl")]
    assert sorted(listed) == sorted(regular_files(archive))


def test_tags_lists_every_tag_of_iterall_with_nesting(tmp_path):
    # rtplan.dcm nests sequences three deep; every item of every sequence is listed.
    path = pydicom_file("rtplan.dcm")
    fastdump.dump([path], tmp_path / "o", format="tags", progress=False)
    listed = (tmp_path / "o" / "rtplan_tags.txt").read_text().splitlines()
    ds = pydicom.dcmread(path)
    assert [line.strip() for line in listed] == [str(e.tag).replace(", ", ",")
                                                 for e in ds.iterall()]
    assert any(line.startswith("    (") for line in listed)  # depth 2 is indented 4


def expected_tag_read_jsonl(ds: pydicom.Dataset, depth: int = 0):
    """What iterall() yields, written as the notebook meant: nested tags indented."""
    for elem in ds:
        yield "  " * depth + str(elem.tag).replace(", ", ",") + "\n"
        if elem.VR == "SQ":
            for item in elem.value:
                yield from expected_tag_read_jsonl(item, depth + 1)


def test_tags_layout_never_overwrites(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("X", "X.dcm", "Y.dcm"):
        (tmp_path / "a" / name).write_bytes(b"")
    layout = TagsLayout([str(tmp_path)])
    targets = {layout.relative_target(str(tmp_path / "a" / n)) for n in ("X", "X.dcm", "Y.dcm")}
    assert targets == {"a/X_tags.txt", "a/X.dcm_tags.txt", "a/Y_tags.txt"}


def test_names_too_long_for_a_tag_list_are_cut_with_a_hash_and_all_dumped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    # 251 and 250 bytes: names a filesystem takes, too long once "_tags.txt" is added
    names = ["a" * 250 + "1", "a" * 250 + "2", "é" * 125, "short.dcm"]
    for name in names:
        shutil.copy(pydicom_file("CT_small.dcm"), src / name)
    result = run_cli("dump", src, "-o", tmp_path / "o", "--format", "tags", "--no-progress")
    assert result.returncode == 0, result.stderr
    index = {json.loads(line)["path"]: json.loads(line)["tags_file"]
             for line in (tmp_path / "o" / "index.jsonl").read_text().splitlines()}
    assert set(index) == {str(src / n) for n in names}
    assert len(set(index.values())) == 4 and index[str(src / "short.dcm")] == "short_tags.txt"
    expected = (tmp_path / "o" / "short_tags.txt").read_bytes()
    for tags_file in index.values():
        assert len(os.fsencode(tags_file)) <= 255
        assert (tmp_path / "o" / tags_file).read_bytes() == expected
    cut = index[str(src / names[0])]
    assert cut.startswith("a" * 200) and re.fullmatch(r"a+~[0-9a-f]{16}_tags\.txt", cut)


def test_a_filesystem_with_shorter_names_gets_shorter_tag_lists(tmp_path):
    layout = TagsLayout([str(tmp_path)], name_max=143)  # eCryptfs
    target = layout.relative_target(str(tmp_path / ("é" * 100)))
    assert len(os.fsencode(target)) <= 143 and target.endswith("_tags.txt")
    # 143 - len("_tags.txt") - len("~") - 16 hex = 117 bytes: 58 whole characters of 2 bytes
    assert target.startswith("é" * 58 + "~")


def test_format_tags_from_the_command_line(tmp_path):
    result = run_cli("dump", pydicom_file("CT_small.dcm"), "-o", tmp_path / "o",
                     "--format", "tags")
    assert result.returncode == 0
    assert (tmp_path / "o" / "CT_small_tags.txt").read_text().startswith("(0008,0005)\n")


def test_tag_lists_of_names_that_are_not_utf8_are_found_again(tmp_path):
    """Their ledger lines show the names as valid UTF-8 and keep the exact ones, by which
    a resume removes the tag list of a file that is gone."""
    src = tmp_path / "src"
    src.mkdir()
    odd = os.path.join(os.fsencode(src), b"caf\xe9.dcm")
    shutil.copy(pydicom_file("CT_small.dcm"), odd)
    shutil.copy(pydicom_file("MR_small.dcm"), src / "plain.dcm")
    out = tmp_path / "o"
    fastdump.dump([src], out, format="tags", jobs=1, progress=False)
    lines = {line["path"]: line for line in read_jsonl(out / "index.jsonl")}  # orjson reads them
    line = lines[str(src / "caf\\xe9.dcm")]
    assert line["tags_file"] == "caf\\xe9_tags.txt"
    tags_file = out / os.fsdecode(base64.b64decode(line["tags_file_base64"]))
    assert os.fsencode(tags_file).endswith(b"/caf\xe9_tags.txt") and tags_file.exists()
    os.remove(odd)
    again = fastdump.dump([src], out, format="tags", jobs=1, progress=False, resume=True)
    assert (again.unchanged, again.gone) == (1, 1)
    assert not tags_file.exists() and (out / "plain_tags.txt").exists()
