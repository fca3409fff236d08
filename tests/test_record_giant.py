"""Valid but enormous headers: dumped whole, with worker memory bounded by the record."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import orjson
import pytest

import fastdump
from fastdump import record
from fastdump.types import ReadSettings

from .badfiles import ITEM, ITEM_END, SEQ_END, UNDEFINED, element, implicit_file, text_element
from .helpers import bulk_bytes, jsonl_lines, run_cli

FRAMES = 10_000
CONTOURS, POINTS = 400, 12_000  # 400 contours x 12,000 DS values: ~40 MB of contour data


def sequence(tag: int, items: list[bytes]) -> bytes:
    body = b"".join(element(ITEM, item, UNDEFINED) + element(ITEM_END, b"") for item in items)
    return element(tag, body, UNDEFINED) + element(SEQ_END, b"")


def multiframe() -> bytes:
    """An enhanced multi-frame header: a Per-frame Functional Groups Sequence of 10,000 items."""
    frames = []
    for i in range(FRAMES):
        position = text_element(0x00200032, f"0\\0\\{i}.5".encode())
        index = element(0x00209157, struct.pack("<LL", 1, i + 1))
        frames.append(sequence(0x00209111, [index]) + sequence(0x00209113, [position]))
    return implicit_file(text_element(0x00080016, b"1.2.840.10008.5.1.4.1.1.2.1")
                         + text_element(0x00280008, str(FRAMES).encode())
                         + sequence(0x52009230, frames))


def rtstruct() -> bytes:
    """An RT Structure Set whose contours hold ~40 MB of DS contour points."""
    points = b"\\".join([b"-123.456"] * POINTS)
    contours = [text_element(0x30060042, b"CLOSED_PLANAR")
                + text_element(0x30060046, str(POINTS // 3).encode())
                + text_element(0x30060050, points) for _ in range(CONTOURS)]
    roi = sequence(0x30060040, contours) + text_element(0x30060084, b"1")  # in tag order
    return implicit_file(text_element(0x00080016, b"1.2.840.10008.5.1.4.1.1.481.3")
                         + sequence(0x30060039, [roi]))


@pytest.fixture(scope="module")
def giants(tmp_path_factory):
    root = tmp_path_factory.mktemp("giant")
    (root / "multiframe.dcm").write_bytes(multiframe())
    (root / "rtstruct.dcm").write_bytes(rtstruct())
    return root


def peak_memory(path, **options) -> tuple[int, int]:
    """(worker memory growth in bytes while reading `path`, size of the record written)."""
    code = (
        "import json, resource, sys, orjson, fastdump\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"record = fastdump.read_record(sys.argv[1], **{options!r})\n"
        "size = len(orjson.dumps(record))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps([(peak - base) * 1024, size]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=300, check=True)
    grown, size = json.loads(result.stdout)
    return grown, size


def test_ten_thousand_frames_are_all_dumped(giants):
    dataset = fastdump.read_tags(giants / "multiframe.dcm")
    frames = dataset["52009230"]["Value"]
    assert len(frames) == FRAMES
    assert frames[-1]["00209113"]["Value"][0]["00200032"]["Value"] == [0, 0, FRAMES - 0.5]
    assert frames[-1]["00209111"]["Value"][0]["00209157"]["Value"] == [1, FRAMES]


def test_both_read_paths_give_the_same_giant_record(giants):
    path = str(giants / "multiframe.dcm")
    settings = ReadSettings()
    fast, fallback = record.try_fast_record(path, os.path.getsize(path), None, settings)
    assert fallback is None  # the giant is read by the fast path ...
    reference = record.read_record_pydicom(path, os.path.getsize(path), None, settings)
    assert orjson.dumps(fast) == orjson.dumps(reference)  # ... byte for byte as pydicom's


def test_contour_points_are_all_dumped(giants):
    dataset = fastdump.read_tags(giants / "rtstruct.dcm")
    contours = dataset["30060039"]["Value"][0]["30060040"]["Value"]
    assert len(contours) == CONTOURS
    assert contours[-1]["30060050"]["Value"] == [-123.456] * POINTS


@pytest.mark.parametrize("name", ["multiframe.dcm", "rtstruct.dcm"])
def test_worker_memory_is_a_small_multiple_of_the_record(giants, name):
    grown, size = peak_memory(giants / name)
    assert size > 1_000_000
    assert grown < 4 * size + 32_000_000, f"{grown / 1e6:.0f} MB for a {size / 1e6:.0f} MB record"


def test_bulk_any_vr_keeps_contour_points_out(giants):
    path = giants / "rtstruct.dcm"
    dataset = fastdump.read_tags(path, bulk_any_vr=True)
    contour = dataset["30060039"]["Value"][0]["30060040"]["Value"][0]
    data = bulk_bytes(contour["30060050"]["BulkDataURI"])
    assert data.rstrip(b" ").split(b"\\") == [b"-123.456"] * POINTS
    assert contour["30060046"] == {"vr": "IS", "Value": [POINTS // 3]}  # short values stay
    grown, size = peak_memory(path, bulk_any_vr=True)
    assert size < 200_000 and grown < 32_000_000  # the 40 MB of points were never read


def test_bulk_any_vr_from_the_command_line(giants, tmp_path):
    result = run_cli("dump", giants, "-o", tmp_path / "o", "--bulk-any-vr", "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = jsonl_lines(tmp_path / "o" / "dump.jsonl")
    assert len(lines) == 2 and sum(len(line) for line in lines) < 10_000_000
