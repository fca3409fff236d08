"""The walk: every regular file once, symlinks and special files handled."""

from __future__ import annotations

import os

import pytest

from fastdump.walk import CHUNK, Entry, Problem, Skipped, read_path_list, walk, walk_chunks


def test_walk_is_sorted_recursive_and_stats(tmp_path):
    for rel in ("b/2", "a/1", "a/c/3", "0"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * len(rel))
    found = list(walk([str(tmp_path)]))
    assert [f.path for f in found] == [str(tmp_path / r) for r in ("0", "a/1", "a/c/3", "b/2")]
    assert all(isinstance(f, Entry) and f.size == len(os.path.relpath(f.path, tmp_path))
               for f in found)


def test_symlinks_skipped_unless_followed_and_loops_end(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    os.symlink(tmp_path / "d" / "f", tmp_path / "d" / "link")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    plain = list(walk([str(tmp_path)]))
    assert [type(f) for f in plain] == [Entry, Skipped, Skipped]  # f, link, loop
    followed = [f for f in walk([str(tmp_path)], follow_symlinks=True) if isinstance(f, Entry)]
    assert sorted(f.path for f in followed) == [str(tmp_path / "d" / "f"),
                                               str(tmp_path / "d" / "link")]


def test_a_folder_given_again_under_another_name_is_walked_under_each(tmp_path):
    """d and link-to-d both given: each file under both names, as for files named twice."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x")
    os.symlink(tmp_path / "d", tmp_path / "link-to-d")
    for order in (["d", "link-to-d"], ["link-to-d/", "d/"]):
        found = list(walk([str(tmp_path / p) for p in order]))
        assert [(type(f), os.path.relpath(f.path, tmp_path)) for f in found] == [
            (Entry, os.path.join(p.rstrip("/"), "a")) for p in order]
    # the same PATH twice, or a folder inside another PATH: each file once
    again = list(walk([str(tmp_path / "d"), str(tmp_path / "d"), str(tmp_path)]))
    assert [(type(f), os.path.relpath(f.path, tmp_path)) for f in again] == [
        (Entry, "d/a"), (Skipped, "link-to-d")]  # (a symlink found inside a PATH)


def test_a_folder_reached_again_inside_one_path_is_skipped_and_said(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x")
    os.symlink(tmp_path / "d", tmp_path / "alias")  # a second link to d, inside the PATH
    os.symlink(tmp_path, tmp_path / "d" / "up")  # a loop
    found = list(walk([str(tmp_path)], follow_symlinks=True))
    # the folder keeps its own paths: the symlinks are the second way to it (before,
    # alias/a was dumped, as alias sorts first, and d skipped as if it were the link)
    assert [(type(f), os.path.relpath(f.path, tmp_path)) for f in found] == [
        (Entry, "d/a"), (Skipped, "alias"), (Skipped, "d/up")]
    assert all("already walked under this PATH" in f.reason for f in found[1:])


def test_a_folder_a_symlink_leads_to_keeps_its_paths_wherever_the_link_is(tmp_path):
    for rel in ("a_links/to_real", "z_real/deeper/b"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "z_real" / "a").write_bytes(b"x")
    (tmp_path / "z_real" / "deeper" / "b").write_bytes(b"x")
    os.symlink("../z_real", tmp_path / "a_links" / "to_real")  # met before z_real
    os.symlink(tmp_path / "elsewhere", tmp_path / "a_links" / "outside")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c").write_bytes(b"x")
    found = [(type(f), os.path.relpath(f.path, tmp_path))
             for f in walk([str(tmp_path / "a_links"), str(tmp_path / "z_real")],
                           follow_symlinks=True)]
    # two PATHs: each walked under its own names, as before
    assert (Entry, "a_links/to_real/a") in found and (Entry, "z_real/a") in found
    found = [(type(f), os.path.relpath(f.path, tmp_path))
             for f in walk([str(tmp_path)], follow_symlinks=True)]
    assert found == [(Entry, "elsewhere/c"), (Entry, "z_real/a"), (Entry, "z_real/deeper/b"),
                     (Skipped, "a_links/outside"), (Skipped, "a_links/to_real")]


def test_fifo_is_skipped_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert [type(f) for f in walk([str(tmp_path)])] == [Skipped]


def test_missing_path_is_a_problem():
    assert isinstance(next(walk(["/no/such/file"])), Problem)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read every directory")
def test_unreadable_directory_is_a_problem(tmp_path):
    (tmp_path / "locked").mkdir(mode=0)
    try:
        assert isinstance(next(walk([str(tmp_path)])), Problem)
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_non_utf8_name_survives(tmp_path):
    name = os.fsdecode(b"caf\xe9.dcm")  # latin-1 bytes: not valid UTF-8
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.dcm"), "wb") as fp:
        fp.write(b"x")
    (entry,) = walk([str(tmp_path)])
    assert os.path.basename(entry.path) == name
    with open(entry.path, "rb") as fp:
        assert fp.read() == b"x"


def test_path_list_skips_blank_lines():
    assert list(read_path_list(["a\n", "\n", "  \n", "b c\r\n"])) == ["a", "b c"]


def test_a_fastdump_outdir_below_an_input_is_skipped_whole(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1").write_bytes(b"x")
    for name, manifest in (("out", "fastdump.json"), ("pq", "_fastdump.json")):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / manifest).write_bytes(
            b'{"format":"jsonl","fastdump_version":"0.2.0"}')
        (tmp_path / name / "dump.jsonl").write_bytes(b"{}\n")
        (tmp_path / name / "sub" / "2").write_bytes(b"x")
    # a file of that name that fastdump did not write marks nothing
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "fastdump.json").write_bytes(b'{"other": 1}')
    found = list(walk([str(tmp_path)]))
    assert [(type(f), os.path.relpath(f.path, tmp_path)) for f in found] == [
        (Entry, "a/1"), (Skipped, "out"), (Skipped, "pq"), (Entry, "z/fastdump.json")]
    assert found[1].reason == "fastdump's output (it holds fastdump.json): not walked"
    assert found[2].reason == "fastdump's output (it holds _fastdump.json): not walked"
    # named as an input, an OUTDIR is walked as asked
    assert [os.path.relpath(f.path, tmp_path) for f in walk([str(tmp_path / "out")])] == [
        "out/dump.jsonl", "out/fastdump.json", "out/sub/2"]


def test_a_big_directory_is_handed_on_a_chunk_at_a_time_in_order(tmp_path):
    (tmp_path / "flat").mkdir()
    for i in range(2 * CHUNK + 500):
        (tmp_path / "flat" / f"im{i:05}").write_bytes(b"")
    (tmp_path / "flat" / "im00700.d").mkdir()  # a subfolder among the files: walked after them
    (tmp_path / "flat" / "im00700.d" / "x").write_bytes(b"")
    chunks = list(walk_chunks([str(tmp_path)]))
    assert [len(c) for c in chunks] == [CHUNK - 1, CHUNK, 501, 1]  # 2,501 names, one a folder
    paths = [f.path for c in chunks for f in c]
    assert paths[:-1] == sorted(str(p) for p in (tmp_path / "flat").iterdir() if p.is_file())
    assert paths[-1] == str(tmp_path / "flat" / "im00700.d" / "x")
