"""dump(): every file of an archive accounted for exactly once, in every mode."""

from __future__ import annotations

import os
import shutil

import orjson
import pydicom
import pytest

import fastdump
import fastdump.pool
from fastdump import hotpath
from fastdump.formats.jsonl import JsonlFormat

from .conftest import NOT_DICOM, pydicom_file, pydicom_path_file, regular_files
from .helpers import accounted, read_jsonl, sigint_as_in_a_terminal


@pytest.fixture(scope="module")
def dumped(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "dump"
    summary = fastdump.dump([archive], out, jobs=2, progress=False)
    return archive, out, summary


def test_every_file_exactly_once(dumped):
    archive, out, summary = dumped
    paths = accounted(out)
    assert len(paths) == len(set(paths))
    assert set(paths) == regular_files(archive)
    assert summary.files == summary.ok + summary.errors == len(paths)


def test_non_dicom_files_are_error_records(dumped):
    archive, out, _ = dumped
    errors = {r["path"]: r for r in read_jsonl(out / "errors.jsonl")}
    for name in NOT_DICOM:
        record = errors[str(archive / "junk" / name)]
        assert record["error"].startswith("NotDicomError: not a DICOM file")
        assert record["size"] == len(NOT_DICOM[name])


def test_records_carry_stat_and_dataset(dumped):
    archive, out, _ = dumped
    records = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    path = str(archive / "study" / "series1" / "IM0001")
    record = records[path]
    st = os.stat(path)
    assert (record["size"], record["mtime"]) == (st.st_size, st.st_mtime)
    assert record["dataset"] == fastdump.read_tags(path)
    assert list(record)[:5] == ["path", "size", "mtime", "meta", "dataset"]


def test_summary_json(dumped):
    _, out, summary = dumped
    written = orjson.loads((out / "summary.json").read_bytes())
    assert written["files"] == summary.files
    assert written["ok"] == summary.ok and written["errors"] == summary.errors
    assert written["pydicom_version"] == pydicom.__version__
    assert written["fastdump_version"] == fastdump.__version__
    assert written["hot_path"] == hotpath.hot_path() and written["hot_path"] in ("compiled", "pure")
    assert written["files_per_s"] > 0 and written["jobs"] == 2


def test_jobs_1_gives_the_same_records(dumped, tmp_path):
    archive, out, _ = dumped
    fastdump.dump([archive], tmp_path / "one", jobs=1, progress=False)
    by_path = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    again = {r["path"]: r for r in read_jsonl(tmp_path / "one" / "dump.jsonl")}
    assert by_path == again


def test_overlapping_inputs_are_dumped_once(archive, tmp_path):
    study = archive / "study"
    summary = fastdump.dump([study, study / "series1", study / "series1" / "IM0001"],
                            tmp_path / "o", progress=False)
    assert sorted(accounted(tmp_path / "o")) == sorted(regular_files(study))
    assert summary.files == 2


def test_files_from(archive, tmp_path):
    listing = [str(archive / "study" / "series1" / "IM0001"), "", str(archive / "missing.dcm")]
    summary = fastdump.dump([], tmp_path / "o", files_from=listing, progress=False)
    assert (summary.ok, summary.errors) == (1, 1)
    error = read_jsonl(tmp_path / "o" / "errors.jsonl")[0]
    assert error["path"].endswith("missing.dcm") and "FileNotFoundError" in error["error"]


def test_one_path_is_one_path_and_a_list_may_be_named(archive, tmp_path):
    """``dump("/data/archive", ...)`` iterated the string: "/" (the root), "d", ...;
    ``files_from="list.txt"`` made a path of each character of the name."""
    study = archive / "study"
    for one in (str(study), study, os.fsencode(study)):
        out = tmp_path / f"o-{type(one).__name__}"
        summary = fastdump.dump(one, out, progress=False, jobs=1)
        assert sorted(accounted(out)) == sorted(regular_files(study))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{study / 'series1' / 'IM0001'}\r\n")  # made on Windows
    for name in (str(listing), listing):
        summary = fastdump.dump([], tmp_path / f"l-{type(name).__name__}", files_from=name,
                                progress=False, jobs=1)
        assert (summary.files, summary.ok) == (1, 1)
    with pytest.raises(fastdump.InputNotFoundError, match="cannot read --files-from"):
        fastdump.dump([], tmp_path / "never", files_from=tmp_path / "missing.txt")
    assert not (tmp_path / "never").exists()


def test_refuses_a_non_empty_out_dir_without_resume(archive, tmp_path):
    study = archive / "study"
    fastdump.dump([study], tmp_path / "o", progress=False)
    with pytest.raises(fastdump.OutputDirError, match="--resume"):
        fastdump.dump([study], tmp_path / "o", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(fastdump.OutputDirError, match="holds no fastdump output"):
        fastdump.dump([study], tmp_path / "mine", overwrite=True, progress=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_overwrite_replaces_the_previous_run(archive, tmp_path):
    fastdump.dump([archive / "study"], tmp_path / "o", progress=False)
    fastdump.dump([archive / "junk"], tmp_path / "o", overwrite=True, progress=False)
    assert set(accounted(tmp_path / "o")) == regular_files(archive / "junk")


def test_unusable_requests_raise_typed_errors(archive, tmp_path):
    with pytest.raises(fastdump.InputNotFoundError, match="no such file"):
        fastdump.dump([tmp_path / "nope"], tmp_path / "o")
    (tmp_path / "file").write_text("x")
    with pytest.raises(fastdump.OutputDirError, match="is a file"):
        fastdump.dump([archive / "study"], tmp_path / "file")
    with pytest.raises(fastdump.OptionError, match="unknown format"):
        fastdump.dump([archive / "study"], tmp_path / "o", format="xml")


def test_resume_reads_only_what_is_missing(archive, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(archive / "pydicom", src)
    out = tmp_path / "o"
    first = fastdump.dump([src], out, progress=False)
    # Simulate a run killed part-way: keep half of the records, and half a line.
    records = (out / "dump.jsonl").read_bytes().splitlines(keepends=True)
    kept = len(records) // 2
    (out / "dump.jsonl").write_bytes(b"".join(records[:kept]) + records[kept][:50])
    second = fastdump.dump([src], out, resume=True, progress=False)
    assert second.unchanged == kept + first.errors
    assert second.ok == first.ok - kept and second.errors == 0
    paths = accounted(out)
    assert len(paths) == len(set(paths)) and set(paths) == regular_files(src)


@pytest.mark.parametrize("format", ["jsonl", "parquet"])
def test_an_outdir_inside_the_archive_is_not_dumped(archive, tmp_path, format):
    src = tmp_path / "src"
    shutil.copytree(archive / "study", src)
    out = src / "out"  # fastdump dump . -o out
    first = fastdump.dump([src], out, format=format, progress=False)
    assert (first.ok, first.errors, first.skipped) == (2, 0, 1)
    assert first.skipped_examples == [{"path": str(out), "reason": first.skipped_examples[0]
                                       ["reason"]}]
    assert "fastdump's output" in first.skipped_examples[0]["reason"]
    again = fastdump.dump([src], out, format=format, resume=True, progress=False)
    assert (again.unchanged, again.new, again.gone, again.skipped) == (2, 0, 0, 1)


def test_resume_follows_a_growing_archive(archive, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(archive / "study", src)
    shutil.copy(pydicom_file("MR_small.dcm"), src / "series1" / "IM0002")
    out = tmp_path / "o"
    fastdump.dump([src], out, progress=False)
    os.remove(src / "series2" / "IM0001")  # gone
    shutil.copy(pydicom_file("rtplan.dcm"), src / "series1" / "IM0002")  # changed
    os.utime(src / "series1" / "IM0002", (1, 1))
    shutil.copy(pydicom_file("CT_small.dcm"), src / "series1" / "IM0003")  # new
    summary = fastdump.dump([src], out, resume=True, progress=False)
    assert (summary.new, summary.changed, summary.unchanged, summary.gone) == (1, 1, 1, 1)
    records = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    assert set(records) == regular_files(src)
    changed = records[str(src / "series1" / "IM0002")]
    assert changed["dataset"]["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.481.5"]


@pytest.mark.parametrize("format", ["jsonl", "tags"])
def test_a_resume_given_part_of_the_archive_keeps_the_rest(archive, tmp_path, format):
    # (the records of files it does not reach were dropped as gone before)
    src = tmp_path / "src"
    shutil.copytree(archive / "study", src)
    for series in ("series1", "series2"):
        shutil.copy(pydicom_file("MR_small.dcm"), src / series / "IM0002")
        (src / series / "notes.txt").write_text("not DICOM")  # an error line
    out = tmp_path / "o"
    ledger = "index.jsonl" if format == "tags" else "dump.jsonl"
    first = fastdump.dump([src], out, format=format, progress=False)
    os.remove(src / "series2" / "IM0001")  # gone, though this run does not reach it
    os.utime(src / "series1" / "IM0002", (1, 1))  # changed
    again = fastdump.dump([src / "series1"], out, format=format, resume=True, progress=False)
    assert (again.changed, again.unchanged, again.gone, again.not_reached) == (1, 2, 1, 2)
    assert (again.out_dir_records, again.out_dir_errors) == (first.ok - 1, first.errors)
    assert sorted(accounted(out, (ledger, "errors.jsonl"))) == sorted(regular_files(src))
    if format == "tags":  # the tag lists of the files kept are kept too
        assert len(list(out.rglob("*_tags.txt"))) == first.ok - 1
    # a list of the changed files alone, as `find -newer` gives it, keeps the rest too
    os.utime(src / "series2" / "IM0002", (2, 2))
    listed = tmp_path / "changed.txt"
    listed.write_text(f"{src / 'series2' / 'IM0002'}\n")
    third = fastdump.dump([], out, format=format, files_from=str(listed), resume=True,
                          progress=False)
    assert (third.changed, third.gone, third.not_reached) == (1, 0, first.files - 2)
    assert sorted(accounted(out, (ledger, "errors.jsonl"))) == sorted(regular_files(src))


@pytest.mark.parametrize("format", ["jsonl", "tags"])
def test_a_resume_drops_the_lines_of_files_that_are_no_longer_files(tmp_path, format):
    """Now a FIFO, a folder, a symlink not followed: the walk skips them, and their
    lines go as gone, as in a fresh dump (before, kept as "not under this run's PATHs")."""
    src, out = tmp_path / "src", tmp_path / "o"
    src.mkdir()
    for name in ("a.dcm", "b.dcm", "c.dcm", "d.dcm"):
        shutil.copy(pydicom_file("MR_small.dcm"), src / name)
    first = fastdump.dump([src], out, format=format, progress=False)
    assert first.ok == 4
    os.remove(src / "a.dcm")
    os.mkfifo(src / "a.dcm")
    os.remove(src / "b.dcm")
    os.symlink(src / "c.dcm", src / "b.dcm")
    os.remove(src / "d.dcm")
    (src / "d.dcm").mkdir()
    again = fastdump.dump([src], out, format=format, resume=True, progress=False)
    assert (again.unchanged, again.gone, again.not_reached, again.skipped) == (1, 3, 0, 2)
    ledger = "index.jsonl" if format == "tags" else "dump.jsonl"
    assert accounted(out, (ledger, "errors.jsonl")) == [str(src / "c.dcm")]
    if format == "tags":
        assert len(list(out.rglob("*_tags.txt"))) == 1


def test_the_progress_bar_shows_once_the_run_lasts(archive, tmp_path, monkeypatch, capsys):
    import fastdump.runner

    monkeypatch.setattr(fastdump.runner, "BAR_DELAY", 0.0)
    monkeypatch.setattr(fastdump.runner, "_shows_a_bar", lambda stream: True)  # a terminal
    summary = fastdump.dump([archive], tmp_path / "out", jobs=1)
    bar = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert f"{summary.files}/{summary.files}" in bar and "file/s" in bar, bar


def test_where_no_bar_can_show_progress_is_plain_lines(archive, tmp_path, monkeypatch, capsys):
    # stderr here is not a terminal, as in a batch job's log file: no tqdm, no \r
    import fastdump.runner

    monkeypatch.setattr(fastdump.runner, "LOG_EVERY", 0.0)  # a line at every batch
    summary = fastdump.dump([archive], tmp_path / "out", jobs=1, batch_size=20)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) >= 2, err
    assert all(line.startswith("fastdump: ") for line in lines), err
    n = summary.files
    assert f"{n:,}/{n:,} files (100%)" in lines[-1] and "files/s" in lines[-1], lines[-1]
    assert f"{summary.errors} errors" in lines[-1], lines[-1]


def test_a_bar_shows_on_a_terminal_or_in_a_notebook_only(tmp_path):
    import pty

    from fastdump.runner import _shows_a_bar

    master, slave = pty.openpty()
    with open(slave, "w") as terminal, open(tmp_path / "log", "w") as log:
        assert _shows_a_bar(terminal)
        assert not _shows_a_bar(log)
    os.close(master)
    assert not _shows_a_bar(log)  # closed: isatty raises ValueError
    notebook = type("OutStream", (), {"__module__": "ipykernel.iostream"})()
    assert _shows_a_bar(notebook)



def test_batches_packed_as_lines_write_what_outcomes_one_by_one_write(archive, tmp_path,
                                                                      monkeypatch):
    # jsonl batches come back from the workers as Lines (one buffer of records); the
    # formats whose records are not lines write outcome by outcome. Same files, same bytes.
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 3600)  # in this process
    (tmp_path / "more").mkdir()
    pydicom_path_file(tmp_path / "more")  # a fallback
    paths = [archive, tmp_path / "more"]
    packed = fastdump.dump(paths, tmp_path / "packed", batch_size=7, progress=False)
    monkeypatch.setattr(JsonlFormat, "records_are_lines", False)
    one_by_one = fastdump.dump(paths, tmp_path / "outcomes", batch_size=7, progress=False)
    for name in ("dump.jsonl", "errors.jsonl"):  # batches in flight finish in any order
        packed_lines = (tmp_path / "packed" / name).read_bytes().splitlines(keepends=True)
        lines = (tmp_path / "outcomes" / name).read_bytes().splitlines(keepends=True)
        assert sorted(packed_lines) == sorted(lines), name
    counts = ("files", "ok", "errors", "bytes", "fallbacks", "fallback_reasons")
    assert ({k: getattr(packed, k) for k in counts}
            == {k: getattr(one_by_one, k) for k in counts})
    assert packed.errors and packed.fallbacks and packed.ok  # every kind of outcome was met


def test_a_stopped_run_leaves_no_walk_thread_behind(tmp_path, monkeypatch):
    """The walk waited for good on its full queue once a stopped run took no more from
    it: one thread (and its memory) left per interrupted dump() in a notebook."""
    import signal
    import threading

    from fastdump import runner

    monkeypatch.setattr(runner, "_WALK_AHEAD", 2)  # full after two folders of one file
    root = tmp_path / "in"
    source = tmp_path / "ct.dcm"  # (a copy: an inode takes 65,000 links at most)
    shutil.copy(pydicom_file("CT_small.dcm"), source)
    for i in range(300):
        (root / f"{i:03}").mkdir(parents=True)
        os.link(source, root / f"{i:03}" / "ct.dcm")
    out = tmp_path / "o"
    timer = threading.Thread(target=_interrupt_once_written, args=(out / "dump.jsonl",))
    timer.start()
    with sigint_as_in_a_terminal():
        summary = fastdump.dump([root], out, jobs=1, progress=False)
        timer.join()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert summary.interrupted and summary.ok < 300
    walks = [t for t in threading.enumerate() if t.name == "fastdump-walk"]
    for walk in walks:
        walk.join(timeout=5)
    assert not any(walk.is_alive() for walk in walks)


def _interrupt_once_written(lines) -> None:
    import signal
    import time

    deadline = time.monotonic() + 60
    while not (lines.exists() and lines.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(os.getpid(), signal.SIGINT)
