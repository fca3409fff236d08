"""The Python API: iter_records gives what dump writes, errors described the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

import fastdump
from fastdump.lines import dumps_line

from .conftest import pydicom_file, regular_files
from .helpers import accounted, output_lines


@pytest.mark.parametrize("kwargs", [{}, {"tags": "PatientID,Modality,ReferencedImageSequence"},
                                    {"bulk_any_vr": True, "bulk_threshold": 64}])
def test_iter_records_equals_a_dump(archive, tmp_path, kwargs):
    fastdump.dump([archive], tmp_path / "out", jobs=2, progress=False, **kwargs)
    expected = output_lines(tmp_path / "out")
    assert len(expected) == len(regular_files(archive))  # the comparison is of every file
    got = [dumps_line(r).rstrip(b"\n") for r in fastdump.iter_records([archive], **kwargs)]
    assert sorted(got) == sorted(expected)


def test_iter_records_of_one_path(archive):
    study = archive / "study"
    expected = [r["path"] for r in fastdump.iter_records([study])]
    assert len(expected) == len(regular_files(study))
    for one in (study, str(study)):  # not its characters: "/" is the root
        assert [r["path"] for r in fastdump.iter_records(one)] == expected


def test_iter_records_describes_a_truncated_file_as_errors_jsonl_does():
    (record,) = fastdump.iter_records([pydicom_file("rtplan_truncated.dcm")])
    assert record["error"].startswith("TruncatedError: the file is truncated")
    assert "partial" in record and "dataset" in record["partial"]
    assert "{" not in record["error"]  # the reason, not the partial dataset's repr
    with pytest.raises(fastdump.TruncatedError) as caught:
        fastdump.read_record(pydicom_file("rtplan_truncated.dcm"))
    assert caught.value.reason == record["error"].removeprefix("TruncatedError: ")
    assert caught.value.partial == record["partial"]
    assert str(caught.value) == caught.value.reason


def test_iter_records_of_a_missing_path_is_an_error_record(tmp_path):
    (record,) = fastdump.iter_records([tmp_path / "nope.dcm"])
    assert record["error"].startswith("FileNotFoundError")


def test_read_tags_with_a_selection():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom's warnings stay inside fastdump
        dataset = fastdump.read_tags(pydicom_file("CT_small.dcm"), tags="PatientID,Modality")
    assert set(dataset) == {"00100020", "00080060"}
    assert json.loads(json.dumps(dataset)) == dataset


def test_read_record_takes_a_path_as_str_bytes_or_pathlike(tmp_path):
    import os
    import shutil

    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.dcm")  # a name that is not UTF-8
    shutil.copy(pydicom_file("CT_small.dcm"), name)
    by_str = fastdump.read_record(os.fsdecode(name))
    assert fastdump.read_record(name) == by_str  # bytes: a TypeError before
    assert fastdump.read_record(tmp_path / os.fsdecode(b"caf\xe9.dcm")) == by_str
    assert by_str["dataset"]["00100020"]["Value"] == ["1CT1"]


def test_read_record_of_a_folder_or_a_fifo_is_an_oserror_at_once(tmp_path):
    import os
    import threading

    with pytest.raises(IsADirectoryError, match="iter_records"):
        fastdump.read_record(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    raised: list[BaseException] = []

    def read() -> None:
        try:
            fastdump.read_record(tmp_path / "fifo")
        except OSError as exc:
            raised.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "read_record waited on the FIFO for a writer"
    assert "not a regular file" in str(raised[0])


CT = "CT_small.dcm"


@pytest.mark.parametrize("call, told", [
    (lambda p, o: fastdump.dump([p], o, jobs="2"), "jobs must be a whole number"),
    (lambda p, o: fastdump.dump([p], o, jobs=1.5), "jobs must be a whole number"),
    (lambda p, o: fastdump.dump([p], o, shard=("1", "3")), "shard must be two whole numbers"),
    (lambda p, o: fastdump.dump("", o), "a path is empty"),
    (lambda p, o: fastdump.dump([p], o, bulk_threshold="10"), "--bulk-threshold must be 0 or"),
    (lambda p, o: fastdump.read_tags(p, bulk_threshold="10"), "--bulk-threshold must be 0 or"),
    (lambda p, o: fastdump.read_tags(p, bulk_threshold=None), "--bulk-threshold must be 0 or"),
    (lambda p, o: fastdump.read_tags(p, bulk_threshold=-1), "--bulk-threshold must be 0 or"),
    (lambda p, o: fastdump.read_tags(p, tags=1.5), "tags must be a string"),
    (lambda p, o: fastdump.read_tags(p, tags=[None]), "is neither a keyword nor a tag"),
    (lambda p, o: fastdump.read_tags(""), "a path is empty"),
    (lambda p, o: fastdump.read_tags(None), "a path must be a str, bytes or Path"),
    (lambda p, o: list(fastdump.iter_records(None)), "paths must be a path"),
    # (these too were TypeErrors or ValueErrors from deep inside; batch_size=2.5 was taken)
    (lambda p, o: fastdump.dump([p], o, file_timeout="5"), "--file-timeout must be a number"),
    (lambda p, o: fastdump.dump([p], o, batch_size="10"), "batch size must be a whole number"),
    (lambda p, o: fastdump.dump([p], o, batch_size=2.5), "batch size must be a whole number"),
    (lambda p, o: fastdump.dump([p], o, fetch_concurrency=None), "--fetch-concurrency must"),
    (lambda p, o: fastdump.dump([p], o, shard=(1,)), "shard must be two whole numbers"),
    (lambda p, o: fastdump.dump([p], o, shard=5), "shard must be two whole numbers"),
    (lambda p, o: fastdump.dump([p], o, scheduler=5), "scheduler must be a Dask scheduler"),
    (lambda p, o: fastdump.dump([], o, files_from=5), "files_from must be a list file"),
    (lambda p, o: fastdump.dump([p], None), "out_dir must be a folder's path"),
    # one tag as written, not split at its comma (before: "unknown DICOM keyword '(zzzz'")
    (lambda p, o: fastdump.read_tags(p, tags="(zzzz,0010)"), r"'\(zzzz,0010\)'"),
])
def test_arguments_of_the_wrong_kind_are_an_option_error_saying_which(tmp_path, call, told):
    # (before: a TypeError from deep inside, a false "I must be between 1 and N", the
    # current folder read for "", or jobs=1.5 and bulk_threshold=-1 taken)
    with pytest.raises(fastdump.OptionError, match=told):
        call(pydicom_file(CT), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_one_tag_as_an_int_and_one_output_to_merge_as_a_str(tmp_path):
    assert list(fastdump.read_tags(pydicom_file(CT), tags=0x00100020)) == ["00100020"]
    fastdump.dump([pydicom_file(CT)], tmp_path / "a", progress=False)
    merged = fastdump.merge(str(tmp_path / "a"), tmp_path / "m")  # (before: its characters)
    assert merged.ok == 1


# Workers from the first batch (fastdump.pool.START_AFTER = None, as a test_pool test sets
# it): enough files for batches in flight when the main thread ends. (15,000 files, enough
# for workers by default, took CI 50 s a mode.)
FILES_FOR_WORKERS = 3_000


@pytest.mark.parametrize("main_ends", ["at_once", "with_workers_up"])
def test_a_dump_in_a_thread_the_script_never_joins_ends_whole(tmp_path, main_ends):
    """Python waits for such a thread, but refuses new pool work once the main thread has
    ended: the dump stopped with a RuntimeError after a few batches, and no summary, or
    waited for good on a pool half started."""
    root = tmp_path / "in"
    source = tmp_path / CT  # (a copy: an inode takes 65,000 links at most)
    source.write_bytes(open(pydicom_file(CT), "rb").read())
    for i in range(FILES_FOR_WORKERS):
        (root / f"{i // 100:03}").mkdir(parents=True, exist_ok=True)
        os.link(source, root / f"{i // 100:03}" / f"{i}.dcm")
    out = tmp_path / "o"
    lines = str(out / "dump.jsonl")
    script = (
        "import os, threading, time, fastdump, fastdump.pool\n"
        "fastdump.pool.START_AFTER = None\n"
        f"threading.Thread(target=fastdump.dump, args=([{str(root)!r}], {str(out)!r}),\n"
        "                 kwargs=dict(jobs=2, progress=False)).start()\n")
    if main_ends == "with_workers_up":
        script += (f"while not (os.path.exists({lines!r}) and os.path.getsize({lines!r})):\n"
                   "    time.sleep(0.01)\n"
                   "time.sleep(0.2)  # workers starting or up, batches in flight\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["ok"], summary["interrupted"]) == (FILES_FOR_WORKERS, False)
    assert sorted(accounted(out)) == sorted(regular_files(root))
