"""The benchmark archive generator and ``fastdump bench`` (no timing is asserted)."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest

import fastdump
from fastdump.bench import (
    COLUMNS,
    DCMDUMP,
    IO_FLOOR,
    TOJSON,
    Row,
    add_ratios,
    format_table,
    sample_files,
)
from fastdump.errors import InputNotFoundError, OptionError

from .conftest import TESTDATA_DIR
from .helpers import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import generate  # noqa: E402


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "a"
    generate.generate(root, 16, seed=7, tiny_pixels=True, multiframe=1, real=3, jobs=1)
    return root


def test_generator_is_deterministic(small_archive, tmp_path):
    again = tmp_path / "again"
    generate.main([str(again), "--files", "16", "--seed", "7", "--tiny-pixels",
                   "--multiframe", "1", "--real", "3", "--jobs", "2"])
    assert files_under(again) == files_under(small_archive)
    other = tmp_path / "other"
    generate.generate(other, 16, seed=8, tiny_pixels=True, multiframe=1, real=3, jobs=1)
    generated = {p for p in files_under(other) if not p.startswith("mixed")}
    assert generated and not generated & set(files_under(small_archive))  # other UIDs, other paths


def test_generated_files_are_valid_unique_and_laid_out_by_uid(small_archive):
    paths = sorted(p for p in small_archive.rglob("*") if p.is_file())
    assert len(paths) == 16
    sops, kinds = set(), Counter()
    for path in paths:
        ds = pydicom.dcmread(path)
        sops.add(ds.SOPInstanceUID)
        if path.parts[-2] == "mixed":
            kinds["real"] += 1
            continue
        patient, study, series = path.relative_to(small_archive).parts[:3]
        assert (patient, study, series) == (ds.PatientID, ds.StudyInstanceUID,
                                            ds.SeriesInstanceUID)
        frames = int(ds.get("NumberOfFrames", 1))
        assert len(ds.PixelData) == ds.Rows * ds.Columns * 2 * frames
        kinds["multiframe" if frames > 1 else "image"] += 1
        if frames == 1:
            elements = list(ds.iterall())
            private = sum(1 for e in elements if e.tag.is_private)
            assert 240 <= len(elements) <= 280 and 170 <= private <= 190
    assert len(sops) == 16  # every SOP Instance UID differs
    assert kinds == {"image": 12, "multiframe": 1, "real": 3}


def test_generated_archive_dumps_without_errors(small_archive, tmp_path):
    summary = fastdump.dump([small_archive], tmp_path / "out", jobs=1, progress=False)
    assert (summary.files, summary.ok, summary.errors) == (16, 16, 0)


def test_plan_mixes_modalities_transfer_syntaxes_and_folders():
    tasks = generate.plan(2000, seed=0, multiframe=4, real=40)
    assert len(tasks) == 2000
    assert Counter(t.kind for t in tasks) == {"image": 1956, "multiframe": 4, "real": 40}
    series = {t.series for t in tasks if t.series}
    assert {s.modality for s in series} == {"CT", "MR"}
    assert {s.implicit for s in series} == {True, False}
    assert len({s.patient for s in series}) > 3 and len({t.source for t in tasks}) == 41
    assert generate.plan(2000, seed=0, multiframe=4, real=40) == tasks


def test_sample_is_deterministic_and_bounded():
    first = sample_files([str(TESTDATA_DIR)], 10)
    assert len(first) == 10 and first == sample_files([str(TESTDATA_DIR)], 10)
    assert len({os.path.dirname(e.path) for e in sample_files([str(TESTDATA_DIR)], 40)}) > 1
    with pytest.raises(OptionError):
        sample_files([str(TESTDATA_DIR)], 0)
    with pytest.raises(InputNotFoundError):
        sample_files(["/no/such/archive"], 5)


def test_ratios_and_table():
    rows = add_ratios([Row(TOJSON, 100, 10**6, 2.0), Row("fastdump --jobs 1", 100, 10**6, 0.5),
                       Row(DCMDUMP, 100, 10**6, 1.0), Row("x --tags", 100, 0, 0.0, note="n/a: no")])
    assert [r.x_tojson for r in rows] == [1.0, 4.0, 2.0, None]
    assert [r.x_dcmdump for r in rows] == [0.5, 2.0, 1.0, None]
    table = format_table(rows, markdown=True).splitlines()
    assert table[0] == "| " + " | ".join(COLUMNS) + " |" and len(table) == 6
    assert table[-1].startswith("| x --tags [n/a: no] | 100 | n/a |")


def test_fastdump_bench_command_prints_the_table(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_cli("bench", TESTDATA_DIR, "--sample", "12", "--jobs", "2",
                     env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["tool", "files", "seconds", "files/s", "MB/s", "parent", "RSS",
                                "MB", "worker", "RSS", "MB", "errors", "x", "to_json_dict", "x",
                                "dcmdump"]
    expected = [IO_FLOOR, "fastdump --jobs 1", "fastdump --jobs 2", TOJSON]
    if shutil.which("dcmdump"):
        expected.append(DCMDUMP)
    assert [line[:len(name)] for line, name in zip(lines[1:], expected, strict=True)] == expected
    for line in lines[1:]:
        cells = line.split()
        assert "12" in cells and "[" not in line  # every tool ran on the 12 files, none failed
    tojson_line = next(line for line in lines if line.startswith(TOJSON))
    assert "1.00" in tojson_line.split()
    assert list(scratch.iterdir()) == []  # temporary output removed


def test_fastdump_bench_usage_error(capsys):
    from fastdump.cli import main

    assert main(["bench", "/no/such/archive"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastdump: error: no such file") and err.count("\n") == 1
