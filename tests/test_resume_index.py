"""--resume and de-duplication on disk: the ledger's index and the walk's set of paths.

Whatever happens to the index (a kill while it is built, a ledger of duplicates,
changed and vanished files, paths that need escapes), a resume leaves every file
in exactly one line, with the records a clean run writes, and its memory does not
grow with the number of files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import orjson
import pytest

import fastdump
from fastdump import index as index_module
from fastdump import ledger
from fastdump.index import INDEX_FILE, LedgerIndex, SeenPaths
from fastdump.lines import dumps_line
from fastdump.types import Entry
from fastdump.walk import walk

from .conftest import PYDICOM_FILES, pydicom_file, regular_files


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def records(out, ledger_name="dump.jsonl", errors_name="errors.jsonl") -> dict[str, dict]:
    """path -> its one line (from the ledger or errors.jsonl); fails if a path has two."""
    found: dict[str, dict] = {}
    for name in (ledger_name, errors_name):
        for rec in lines(out / name):
            assert rec["path"] not in found, f"{rec['path']} is in two lines"
            found[rec["path"]] = rec
    return found


def clean_run(src, tmp_path, **options) -> dict[str, dict]:
    out = tmp_path / "clean"
    shutil.rmtree(out, ignore_errors=True)
    fastdump.dump([src], out, progress=False, jobs=1, **options)
    return records(out)


@pytest.fixture
def src(tmp_path):
    """30 small real files in three folders, and a file that is not DICOM."""
    root = tmp_path / "src"
    small = [f for f in PYDICOM_FILES if f.endswith(".dcm") and os.path.getsize(f) < 100_000]
    for i in range(30):
        folder = root / f"s{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(small[i % len(small)], folder / f"im{i:03d}")
    (root / "s0" / "notes.txt").write_text("not dicom\n")
    return root


def change_archive(src) -> None:
    """One file gone, one changed, one new."""
    os.remove(src / "s1" / "im004")
    shutil.copy(pydicom_file("rtplan.dcm"), src / "s2" / "im005")
    os.utime(src / "s2" / "im005", (1e9, 1e9))
    shutil.copy(pydicom_file("CT_small.dcm"), src / "s0" / "new")


def test_a_kill_while_the_index_is_built_costs_nothing(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, progress=False, jobs=1)
    # A resume killed (SIGKILL) after the second chunk of lines went into the index.
    script = textwrap.dedent(f"""
        import os, signal
        import fastdump, fastdump.ledger, fastdump.index
        fastdump.ledger.ROWS = 4
        add, calls = fastdump.index.LedgerIndex.add, []
        def add_then_die(self, rows):
            calls.append(add(self, rows))
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return calls[-1]
        fastdump.index.LedgerIndex.add = add_then_die
        fastdump.dump([{str(src)!r}], {str(out)!r}, resume=True, progress=False, jobs=1)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert (out / INDEX_FILE).exists()  # half built
    change_archive(src)
    summary = fastdump.dump([src], out, resume=True, progress=False, jobs=1)
    assert (summary.new, summary.changed, summary.gone) == (1, 1, 1)
    assert summary.unchanged == len(regular_files(src)) - 2
    assert records(out) == clean_run(src, tmp_path)
    assert not (out / INDEX_FILE).exists()


def test_an_index_left_by_a_kill_is_rebuilt_not_trusted(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, progress=False, jobs=1)
    (out / INDEX_FILE).write_bytes(b"SQLite format 3\x00 and then garbage" * 100)
    summary = fastdump.dump([src], out, resume=True, progress=False, jobs=1)
    assert summary.unchanged == summary.files == len(regular_files(src))
    assert not (out / INDEX_FILE).exists()


def test_an_error_while_the_index_is_built_leaves_nothing(src, tmp_path, monkeypatch):
    out = tmp_path / "out"
    fastdump.dump([src], out, progress=False, jobs=1)
    before = sorted(p.name for p in out.iterdir())

    def broken(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LedgerIndex, "add", broken)
    with pytest.raises(OSError, match="No space"):
        fastdump.dump([src], out, resume=True, progress=False, jobs=1)
    assert sorted(p.name for p in out.iterdir()) == before


def test_changed_gone_and_duplicate_lines(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, progress=False, jobs=2, batch_size=4)
    # Duplicates: the same lines twice (a run killed between writing them and
    # compacting), and an old errors.jsonl line for a file the ledger also has.
    ledger_lines = (out / "dump.jsonl").read_bytes().splitlines(keepends=True)
    with open(out / "dump.jsonl", "ab") as fp:
        fp.writelines(ledger_lines[3:6])
    stale = next(r for r in map(json.loads, ledger_lines[6:])
                 if not r["path"].endswith(("im004", "im005")))
    with open(out / "errors.jsonl", "ab") as fp:  # the ledger's last word on it: read again
        fp.write(dumps_line({"path": stale["path"], "size": 1, "mtime": 1.0, "error": "E: old"}))
    change_archive(src)
    summary = fastdump.dump([src], out, resume=True, progress=False, jobs=2)
    files = len(regular_files(src))
    assert (summary.new, summary.changed, summary.gone) == (1, 2, 1)
    assert summary.unchanged == files - 3 and summary.files == files
    assert records(out) == clean_run(src, tmp_path)
    assert not (out / INDEX_FILE).exists()
    # and a resume now finds everything as it is
    again = fastdump.dump([src], out, resume=True, progress=False, jobs=1)
    assert (again.unchanged, again.new, again.changed, again.gone) == (files, 0, 0, 0)


def test_tags_format_forgets_the_tag_lists_of_gone_files_only(src, tmp_path):
    out = tmp_path / "out"
    fastdump.dump([src], out, format="tags", progress=False, jobs=1)
    index_lines = (out / "index.jsonl").read_bytes().splitlines(keepends=True)
    with open(out / "index.jsonl", "ab") as fp:  # a duplicate line: its tag list is kept
        fp.write(index_lines[0])
    change_archive(src)
    summary = fastdump.dump([src], out, format="tags", resume=True, progress=False, jobs=1)
    assert (summary.new, summary.changed, summary.gone) == (1, 1, 1)
    listed = {r["path"]: r["tags_file"] for r in lines(out / "index.jsonl")}
    assert len(listed) == len(lines(out / "index.jsonl"))
    assert not (out / "s1" / "im004_tags.txt").exists()  # gone
    tag_files = {str(p.relative_to(out)) for p in out.rglob("*_tags.txt")}
    assert tag_files == set(listed.values())
    assert set(listed) | {r["path"] for r in lines(out / "errors.jsonl")} == regular_files(src)


def test_tags_format_drops_the_tag_list_of_a_file_that_is_now_an_error(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name in ("a.dcm", "b.dcm"):
        shutil.copy(pydicom_file("CT_small.dcm"), src / name)
    fastdump.dump([src], out, format="tags", progress=False, jobs=1)
    assert (out / "b_tags.txt").exists()
    (src / "b.dcm").write_bytes(b"no longer DICOM")
    summary = fastdump.dump([src], out, format="tags", resume=True, progress=False, jobs=1)
    assert (summary.changed, summary.errors) == (1, 1)
    assert [r["path"] for r in lines(out / "errors.jsonl")] == [str(src / "b.dcm")]
    assert [r["tags_file"] for r in lines(out / "index.jsonl")] == ["a_tags.txt"]
    assert sorted(p.name for p in out.rglob("*_tags.txt")) == ["a_tags.txt"]


def test_paths_that_need_escapes(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    names = ['quo"te.dcm', "back\\slash.dcm", "caf\u00e9.dcm", "tab\there.dcm",
             os.fsdecode(b"latin\xe9.dcm")]
    for name in names:
        with open(os.path.join(os.fsencode(root), os.fsencode(name)), "wb") as fp:
            fp.write(open(pydicom_file("CT_small.dcm"), "rb").read())
    out = tmp_path / "out"
    fastdump.dump([root], out, progress=False, jobs=1)
    again = fastdump.dump([root], out, resume=True, progress=False, jobs=1)
    assert (again.unchanged, again.ok) == (len(names), 0)
    changed = os.path.join(str(root), names[0])
    os.utime(changed, (1e9, 1e9))
    os.remove(os.path.join(os.fsencode(root), os.fsencode(names[-1])))
    again = fastdump.dump([root], out, resume=True, progress=False, jobs=1)
    assert (again.changed, again.gone, again.unchanged) == (1, 1, len(names) - 2)
    assert set(records(out)) == {os.path.join(str(root), n) for n in names[:-1]}


def test_overlapping_inputs_and_files_from_are_dumped_once_and_resumed(src, tmp_path):
    out = tmp_path / "out"
    s0 = src / "s0"
    listing = [f"{s0 / 'im000'}\n", f"{src / 's1' / 'im001'}\n", f"{s0 / 'im000'}\n"]
    inputs = [src, s0, s0 / "im003"]
    first = fastdump.dump(inputs, out, files_from=listing, progress=False, jobs=1)
    files = len(regular_files(src))
    assert first.files == files and len(records(out)) == files
    again = fastdump.dump(inputs, out, files_from=listing, resume=True, progress=False, jobs=1)
    assert (again.files, again.unchanged, again.ok) == (files, files, 0)
    change_archive(src)
    again = fastdump.dump(inputs, out, files_from=listing, resume=True, progress=False, jobs=1)
    assert (again.new, again.changed, again.gone) == (1, 1, 1)
    assert records(out) == clean_run(src, tmp_path)


def test_a_list_that_names_a_file_twice(src, tmp_path):
    out = tmp_path / "out"
    names = sorted(regular_files(src))
    listing = [f"{p}\n" for p in names + names[:5]]  # a list with five paths twice
    first = fastdump.dump([], out, files_from=listing, progress=False, jobs=1)
    assert first.files == len(names) and len(records(out)) == len(names)
    os.remove(names[0])
    again = fastdump.dump([], out, files_from=listing, resume=True, progress=False, jobs=1)
    # the listed file that is gone now is an error line (cannot read), not a gone one
    assert (again.files, again.unchanged, again.changed, again.gone) == (
        len(names), len(names) - 1, 1, 0)
    assert set(records(out)) == set(names)
    listing = [f"{p}\n" for p in names[1:] + names[1:6]]
    again = fastdump.dump([], out, files_from=listing, resume=True, progress=False, jobs=1)
    assert (again.files, again.unchanged, again.gone) == (len(names) - 1, len(names) - 1, 1)
    assert set(records(out)) == set(names[1:])


def test_walk_remembers_paths_on_disk_beyond_its_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "CACHE_KIB", 64)  # so that the set spills to disk
    seen = SeenPaths()
    try:
        paths = [f"/archive/d{i // 500:03d}/{'x' * 40}{i:06d}" for i in range(20_000)]
        assert seen.first_time(paths[:12_000]) == [True] * 12_000
        odd = os.fsdecode(b"/archive/caf\xe9")
        assert seen.first_time([*paths[11_000:20_000], odd, odd]) == (
            [False] * 1_000 + [True] * 8_000 + [True, False])
        assert seen.first_time(paths[::997]) == [False] * len(paths[::997])
    finally:
        seen.close()
    # the walk with several inputs: each file once
    for i in range(3):
        (tmp_path / "t" / f"d{i}").mkdir(parents=True)
        (tmp_path / "t" / f"d{i}" / "f").write_bytes(b"x")
    found = [f.path for f in walk([str(tmp_path / "t"), str(tmp_path / "t" / "d1"),
                                   str(tmp_path / "t" / "d1" / "f")])]
    assert sorted(found) == sorted(regular_files(tmp_path / "t"))


def test_index_lookups_and_compaction_beyond_its_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "CACHE_KIB", 64)
    monkeypatch.setattr(ledger, "BLOCK", 4096)
    n = 20_000

    def rec(i, size):
        return dumps_line({"path": f"/a/{i:06d}", "size": size, "mtime": 1.0, "dataset": "x" * 50})

    (tmp_path / "dump.jsonl").write_bytes(b"".join(rec(i, 1) for i in range(n)))
    loaded = ledger.load(tmp_path, "dump.jsonl", "errors.jsonl")
    try:
        assert loaded.paths == n and loaded.duplicates == 0
        # every third file gone, every fifth changed
        found = [Entry(f"/a/{i:06d}", 2 if i % 5 == 0 else 1, 1.0) for i in range(n) if i % 3]
        for start in range(0, len(found), 1000):
            assert loaded.check(found[start:start + 1000]) == [(1, 1.0)] * len(
                found[start:start + 1000])
        dropped: list[tuple[str, bool]] = []
        ledger.compact(tmp_path, "dump.jsonl", "errors.jsonl", loaded,
                       lambda line, gone: dropped.append((json.loads(line)["path"], gone)))
    finally:
        loaded.close()
    kept = [json.loads(x)["path"] for x in (tmp_path / "dump.jsonl").read_bytes().splitlines()]
    assert kept == [f"/a/{i:06d}" for i in range(n) if i % 3 and i % 5]
    assert dropped == [(f"/a/{i:06d}", i % 3 == 0) for i in range(n) if i % 3 == 0 or i % 5 == 0]
    assert not (tmp_path / INDEX_FILE).exists()


def old_compact(files: list[bytes], current: dict) -> list[bytes]:
    """What compaction did before the index (a dict of winners), for comparison."""
    winners: dict[str, tuple[int, int]] = {}
    for file_no, data in enumerate(files):
        for line_no, line in enumerate(data.splitlines(keepends=True)):
            path, stat = ledger.parse_prefix(line)
            if current.get(path) == stat and (file_no == 0 or path not in winners):
                winners[path] = (file_no, line_no)
    keep = set(winners.values())
    return [b"".join(line for n, line in enumerate(data.splitlines(keepends=True))
                     if (file_no, n) in keep) for file_no, data in enumerate(files)]


@pytest.mark.parametrize("seed", range(40))
def test_compaction_keeps_what_the_dict_of_winners_kept(tmp_path, seed):
    import random

    rng = random.Random(seed)
    paths = [f"/a/{i}" for i in range(rng.randint(1, 30))]
    stats = [(rng.choice([None, 1, 2]), rng.choice([None, 1.0, 2.5])) for _ in range(3)]

    def line(path, stat, error=False):
        rec = {"path": path, "size": stat[0], "mtime": stat[1]}
        return dumps_line({**rec, "error": "E: x"} if error else {**rec, "dataset": {}})

    old = [[], []]  # lines of the ledger and of errors.jsonl, as earlier runs left them
    for _ in range(rng.randint(1, 60)):
        file_no = rng.random() < 0.3
        old[file_no].append(line(rng.choice(paths), rng.choice(stats), error=file_no))
    done: dict[str, tuple] = {}  # what the old load made of them: the last line's stat
    for file_no in (0, 1):
        for text in old[file_no]:
            path, stat = ledger.parse_prefix(text)
            done[path] = stat
    (tmp_path / "dump.jsonl").write_bytes(b"".join(old[0]))
    (tmp_path / "errors.jsonl").write_bytes(b"".join(old[1]))
    loaded = ledger.load(tmp_path, "dump.jsonl", "errors.jsonl")
    # this run: each file gone, unchanged or changed (read again: a new line), and new ones
    current, walked, appended = {}, [], [[], []]
    for n, path in enumerate([*done, "/new/1", "/new/2"]):
        fate = rng.choice(["gone", "same", "changed"]) if path in done else "new"
        if fate == "gone":
            continue
        stat = done[path] if fate == "same" else (1000 + n, 7.0)
        walked.append(Entry(path, *stat))
        current[path] = stat
        if fate != "same":
            file_no = rng.random() < 0.3
            appended[file_no].append(line(path, stat, error=file_no))
    assert loaded.check(walked) == [done.get(e.path) for e in walked]
    for name, lines_ in zip(("dump.jsonl", "errors.jsonl"), appended, strict=True):
        with open(tmp_path / name, "ab") as fp:
            fp.writelines(lines_)
    expected = old_compact([b"".join(old[0] + appended[0]), b"".join(old[1] + appended[1])],
                           current)
    try:
        ledger.compact(tmp_path, "dump.jsonl", "errors.jsonl", loaded)
    finally:
        loaded.close()
    assert [(tmp_path / n).read_bytes() for n in ("dump.jsonl", "errors.jsonl")] == expected
    assert len(set(done) - set(current)) == loaded.paths - sum(e.path in done for e in walked)


# --- memory ----------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent("""
    import json, os, sys, tracemalloc
    import fastdump, fastdump.runner
    fastdump.runner._WALK_AHEAD = 2_000  # the walk's lead, bounded anyway: full at both sizes
    root, out, mode = sys.argv[1:4]
    inputs = [root] if mode != "overlap" else [root, os.path.join(root, "d00000")]
    tracemalloc.start()
    summary = fastdump.dump(inputs, out, resume=True, progress=False, jobs=1)
    print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "files": summary.files,
                      "unchanged": summary.unchanged, "gone": summary.gone}))
""")


def links_archive(root, n: int):
    """``n`` hard links to one small file, 1,000 per folder, and a ledger that accounts for
    each of them as it is (what a finished run writes, with shorter records)."""
    source = root.with_name(root.name + "-source")
    shutil.copy(pydicom_file("CT_small.dcm"), source)
    st = os.stat(source)
    padding = {"00100010": {"vr": "PN", "Value": ["x" * 1000]}}  # ledgers of MBs, as real ones
    with open(root.with_name(root.name + "-ledger"), "wb") as ledger_file:
        for i in range(n):
            folder = root / f"d{i // 1000:05d}"
            if i % 1000 == 0:
                folder.mkdir(parents=True)
            path = folder / f"f{i:07d}.dcm"
            os.link(source, path)
            ledger_file.write(dumps_line({"path": str(path), "size": st.st_size,
                                          "mtime": st.st_mtime, "meta": {}, "dataset": padding}))


def probe(root, out, mode="plain") -> dict:
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(root), str(out), mode],
                          capture_output=True, timeout=600, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def new_out(root, tmp_path, name) -> object:
    out = tmp_path / name
    out.mkdir()
    (out / "fastdump.json").write_bytes(b'{"format": "jsonl"}')
    shutil.copy(root.with_name(root.name + "-ledger"), out / "dump.jsonl")
    return out


def test_resume_memory_does_not_grow_with_the_archive(tmp_path):
    """Python's peak allocations (tracemalloc) of a resume over 10,000 and 35,000 unchanged
    files, alone and with overlapping inputs, and of one that drops a third of them.
    Before the index, each file held ~640 bytes: 16 MB more for the larger archive."""
    peaks = {}
    for n in (10_000, 35_000):
        root = tmp_path / f"links{n}"
        links_archive(root, n)
        unchanged = probe(root, new_out(root, tmp_path, f"out{n}"))
        assert (unchanged["files"], unchanged["unchanged"]) == (n, n)
        overlap = probe(root, new_out(root, tmp_path, f"overlap{n}"), "overlap")
        assert (overlap["files"], overlap["unchanged"]) == (n, n)
        out = new_out(root, tmp_path, f"gone{n}")
        for folder in sorted(root.iterdir())[::3]:
            shutil.rmtree(folder)
        gone = probe(root, out)
        assert gone["gone"] == n - gone["files"] > 0
        assert len((out / "dump.jsonl").read_bytes().splitlines()) == gone["files"]
        peaks[n] = (unchanged["peak"], overlap["peak"], gone["peak"])
    growth = [(large - small) / 25_000 for small, large in zip(peaks[10_000], peaks[35_000],
                                                                strict=True)]
    assert max(growth) < 10, f"bytes per file: {growth} (peaks {peaks})"
