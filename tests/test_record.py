"""record: the fast path cannot fail silently; every fallback is counted, with its reason."""

from __future__ import annotations

import os

import orjson
import pytest

import fastdump
from fastdump import record
from fastdump.types import ReadSettings

from .conftest import PYDICOM_FILES, pydicom_file, pydicom_path_file


def stat_args(path: str) -> tuple:
    st = os.stat(path)
    return path, st.st_size, st.st_mtime, ReadSettings()


def broken_converter(monkeypatch):
    # (the fast path's own functions cannot be patched where they are compiled: the
    # one record.py calls stands in for them)
    def boom(*args):
        raise TypeError("a bug in the fast path")

    monkeypatch.setattr(record, "fast_record", boom)


def test_strict_mode_raises_on_a_fast_path_bug(monkeypatch):
    assert os.environ["FASTDUMP_STRICT"] == "1"  # the whole suite runs strict
    broken_converter(monkeypatch)
    with pytest.raises(fastdump.FastPathError, match="TypeError: a bug in the fast path"):
        record.read_record(*stat_args(pydicom_file("CT_small.dcm")))


def test_without_strict_mode_a_bug_falls_back_and_is_counted(monkeypatch, tmp_path):
    path = pydicom_file("CT_small.dcm")
    expected = record.read_record_pydicom(*stat_args(path))
    broken_converter(monkeypatch)
    monkeypatch.setenv("FASTDUMP_STRICT", "0")
    got, reason = record.read_record(*stat_args(path))
    assert got == expected and reason == "fast path error: TypeError"


def test_unsupported_files_fall_back_with_their_reason(tmp_path):
    _, reason = record.read_record(*stat_args(pydicom_path_file(tmp_path)))
    assert reason == "value pydicom rejects"
    _, reason = record.read_record(*stat_args(pydicom_file("CT_small.dcm")))
    assert reason is None


def test_summary_counts_fallbacks_and_their_reasons(tmp_path):
    folder = os.path.dirname(pydicom_file("CT_small.dcm"))
    (tmp_path / "more").mkdir()
    left_to_pydicom = pydicom_path_file(tmp_path / "more")
    summary = fastdump.dump([folder, tmp_path / "more"], tmp_path / "out", jobs=2,
                            progress=False)
    expected: dict[str, int] = {}
    for path in [*PYDICOM_FILES, left_to_pydicom]:
        try:
            fast, reason = record.try_fast_record(*stat_args(path))
        except (fastdump.NotDicomError, fastdump.TruncatedError):
            continue  # the fast path says so itself: no fallback
        if fast is None:
            expected[reason] = expected.get(reason, 0) + 1
    on_disk = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    assert on_disk["fallback_reasons"] == summary.fallback_reasons == expected
    assert on_disk["fallbacks"] == sum(expected.values()) >= 1
    assert expected["value pydicom rejects"] >= 1  # left_to_pydicom
