"""--overwrite deletes only what fastdump wrote: an OUTDIR that holds anything else (a
project whose settings file happens to be called fastdump.json, a notebook or a results
folder added to a real OUTDIR) is refused, with one line naming that file, and left as
it was. Before, any file named fastdump.json made a directory fastdump's, and the whole
tree went."""

from __future__ import annotations

import os
import shutil

import pytest

import fastdump

from .conftest import pydicom_file
from .helpers import run_cli

THREE = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")
FOREIGN = "which fastdump did not write (--overwrite would delete it): move it out of " \
          "OUTDIR, or choose another OUTDIR\n"


@pytest.fixture
def src(tmp_path):
    src = tmp_path / "src" / "study"
    src.mkdir(parents=True)
    for name in THREE:
        shutil.copy(pydicom_file(name), src / name)
    return src


def tree(root) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under root."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        found.update({os.path.join(rel, d): None for d in dirs})
        found.update({os.path.join(rel, f): open(os.path.join(folder, f), "rb").read()
                      for f in files})
    return found


def overwrite(src, out, *options):
    return run_cli("dump", src, "-o", out, "--overwrite", "--no-progress", *options)


def test_a_fastdump_json_fastdump_did_not_write_does_not_make_a_directory_its(src, tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "fastdump.json").write_text('{"name": "my settings"}')
    (proj / "src" / "main.py").write_text("code")
    (proj / "thesis.tex").write_text("thesis")
    before = tree(proj)
    result = overwrite(src, proj)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"fastdump: error: OUTDIR {proj} is not empty and holds no "
                             "fastdump output: choose an empty or new directory\n")
    assert tree(proj) == before


@pytest.mark.parametrize("fmt", ["jsonl", "tags", "parquet"])
@pytest.mark.parametrize("added", ["notes.ipynb", "results/table.csv"])
def test_a_file_added_to_an_outdir_is_never_deleted(src, tmp_path, fmt, added):
    out = tmp_path / "out"
    fastdump.dump([src], out, format=fmt, jobs=1, progress=False)
    (out / added).parent.mkdir(exist_ok=True)
    (out / added).write_text("mine")
    before = tree(out)
    result = overwrite(src, out, "--format", fmt)
    assert (result.returncode, result.stdout) == (2, "")
    # a folder fastdump never makes is named as a whole; in a tags OUTDIR, folders are its
    named = "results/" if added.startswith("results") and fmt != "tags" else added
    assert result.stderr == f"fastdump: error: OUTDIR {out} holds {named}, {FOREIGN}"
    assert tree(out) == before
    # once it is moved out, --overwrite replaces the run, in the same directory
    os.remove(out / added)
    if fmt != "tags" and added.startswith("results"):
        os.rmdir(out / "results")  # (an empty folder fastdump did not make is not its)
    inode = out.stat().st_ino
    assert overwrite(src, out, "--format", fmt).returncode == 0
    assert out.stat().st_ino == inode and not (out / added).exists()


def test_a_tags_outdir_is_replaced_with_what_a_kill_left_in_it(src, tmp_path):
    """A tag list whose index line a kill lost, and temporaries in the mirrored folders
    (written there by earlier versions), are fastdump's; a look-alike is not."""
    out = tmp_path / "out"
    fastdump.dump([src.parent], out, format="tags", jobs=1, progress=False)
    index = out / "index.jsonl"
    index.write_bytes(b"".join(index.read_bytes().splitlines(keepends=True)[:-1]))
    (out / "study" / ".fastdump-4242-7.tmp").write_bytes(b"")
    (out / ".fastdump-4242-8.tmp").write_bytes(b"(0008,0005)\n")
    (out / "study" / "mine_tags.txt").write_text("PatientID, StudyDate\n")
    result = overwrite(src.parent, out, "--format", "tags")
    assert result.returncode == 2
    assert result.stderr == f"fastdump: error: OUTDIR {out} holds study/mine_tags.txt, {FOREIGN}"
    os.remove(out / "study" / "mine_tags.txt")
    assert overwrite(src.parent, out, "--format", "jsonl").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["dump.jsonl", "errors.jsonl",
                                                     "fastdump.json", "summary.json"]


def test_a_run_of_another_format_is_judged_by_its_own_files(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, format="parquet", jobs=1, progress=False)
    (out / "dump.jsonl").write_text("not from this run")  # a jsonl run's name, not parquet's
    result = overwrite(src, out, "--format", "jsonl")
    assert result.returncode == 2 and f"holds dump.jsonl, {FOREIGN}" in result.stderr
    os.remove(out / "dump.jsonl")
    assert overwrite(src, out, "--format", "jsonl").returncode == 0


def test_the_library_raises_the_typed_error(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, jobs=1, progress=False)
    (out / "keep.txt").write_text("mine")
    with pytest.raises(fastdump.OutputDirError, match="holds keep.txt, which fastdump did not"):
        fastdump.dump([src], out, overwrite=True, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
