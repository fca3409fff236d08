"""The benchmark archive generator and ``fastdump bench`` (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
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
    combine_runs,
    format_table,
    resolve_jobs,
    sample_files,
    workers_note,
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


def test_runs_become_their_median_with_its_range_and_the_peak_memory():
    runs = [Row("fastdump --jobs 1", 100, 10**6, t, errors=2, parent_rss_mb=m, worker_rss_mb=w)
            for t, m, w in ((0.5, 60.0, None), (0.2, 64.0, 30.0), (0.4, 61.0, 35.0))]
    row = combine_runs(runs)
    assert (row.seconds, row.seconds_min, row.seconds_max, row.runs) == (0.4, 0.2, 0.5, 3)
    assert (row.parent_rss_mb, row.worker_rss_mb, row.errors) == (64.0, 35.0, 2)
    assert row.files_per_s == 250 and row.files_per_s_range == (200, 500)
    cells = format_table([row]).splitlines()[1].split()
    assert cells[3:7] == ["100", "0.40", "250", "200–500"]
    # a failure in any run shows, not the median of the others
    broken = Row("fastdump --jobs 1", 100, 10**6, 0.3, note="exit 1: boom")
    failed = combine_runs([runs[0], broken, runs[2]])
    assert failed.note == "failed in 1 of 3 runs: exit 1: boom"
    assert "[failed in 1 of 3 runs: exit 1: boom]" in format_table([failed])
    one = combine_runs([runs[0]])
    assert one.files_per_s_range is None  # one run: no range, the MB/s follow files/s
    assert format_table([one]).splitlines()[1].split()[3:7] == ["100", "0.50", "200", "2.0"]


def test_fastdump_bench_command_prints_the_table(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # -j -1 (all cores) is accepted, as by fastdump dump (issue 9)
    result = run_cli("bench", TESTDATA_DIR, "--sample", "12", "--jobs", "-1", "--runs", "2",
                     env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["tool", "files", "seconds", "files/s", "files/s", "min–max", "MB/s",
                                "parent", "RSS", "MB", "worker", "RSS", "MB", "errors", "x",
                                "to_json_dict", "x", "dcmdump"]
    # the tools alternated, each run twice
    said = [line.split(": ", 2)[1] for line in result.stderr.splitlines() if ": run " in line]
    assert said[:2] == ["run 1 of 2", "run 1 of 2"] and said.count("run 2 of 2") == len(said) // 2
    expected = [IO_FLOOR, "fastdump --jobs 1", f"fastdump --jobs {os.cpu_count()}", TOJSON]
    if shutil.which("dcmdump"):
        expected.append(DCMDUMP)
    table, note = lines[:len(expected) + 1], lines[len(expected) + 1:]
    assert [line[:len(name)] for line, name in zip(table[1:], expected, strict=True)] == expected
    # the files the fast path left to pydicom, and why, from fastdump's summary.json; and, as
    # fastdump reads 12 files in its own process, that its run on all cores started no worker
    assert "read through the pydicom path" in note[0], note
    told = (os.cpu_count() or 1) > 1 and importlib.util.find_spec("psutil") is not None
    assert len(note) == 1 + told, note
    if told:
        assert note[1].startswith(f"fastdump --jobs {os.cpu_count()}: started no worker")
    for line in table[1:]:
        cells = line.split()
        assert "12" in cells and "[" not in line  # every tool ran on the 12 files, none failed
        slowest, fastest = (float(x.replace(",", "")) for x in
                            next(c for c in cells if "–" in c).split("–"))
        assert slowest <= float(cells[cells.index("12") + 2].replace(",", "")) <= fastest
    tojson_line = next(line for line in lines if line.startswith(TOJSON))
    assert "1.00" in tojson_line.split()
    assert list(scratch.iterdir()) == []  # temporary output removed


def test_a_parallel_run_without_workers_is_pointed_out():
    def row(tool, workers_mb, parent_mb=50.0):
        return Row(tool, 100, 10**6, 0.5, parent_rss_mb=parent_mb, worker_rss_mb=workers_mb)

    alone = [row("fastdump --jobs 1", None), row("fastdump --jobs 2", None)]
    assert workers_note(alone).startswith("fastdump --jobs 2: started no worker: ")
    assert workers_note([row("fastdump --jobs 1", None), row("fastdump --jobs 2", 40.0)]) is None
    assert workers_note([row("fastdump --jobs 2", None, parent_mb=None)]) is None  # no psutil
    assert workers_note([row(DCMDUMP, None)]) is None


def test_bench_on_one_core_times_fastdump_once(tmp_path, monkeypatch):
    # (before: "fastdump --jobs 1" twice, the same run under two rows)
    from fastdump.bench import run_bench

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    rows = run_bench([TESTDATA_DIR], sample=4, jobs=1, runs=1, dcmdump=False)
    tools = [row.tool for row in rows]
    assert tools == [IO_FLOOR, "fastdump --jobs 1", TOJSON]


def test_bench_jobs_read_as_dump_reads_them():
    cores = os.cpu_count() or 1
    assert resolve_jobs(None) == resolve_jobs(0) == resolve_jobs(-1) == cores
    assert resolve_jobs(-2) == max(1, cores - 1) and resolve_jobs(3) == 3
    assert resolve_jobs(-cores - 5) == 1


def test_fastdump_bench_usage_error(capsys):
    from fastdump.cli import main

    assert main(["bench", "/no/such/archive"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastdump: error: no such file") and err.count("\n") == 1
    assert main(["bench", str(TESTDATA_DIR), "--runs", "0"]) == 2
    assert capsys.readouterr().err == "fastdump: error: --runs must be at least 1, not 0\n"


# ---------------------------------------------------------------- benchmarks/run.py's harness

import checks  # noqa: E402
import harness  # noqa: E402
import report  # noqa: E402
import run as bench_run  # noqa: E402
import spin  # noqa: E402
import suites  # noqa: E402


def test_tools_alternate_after_the_warmup_rounds():
    order = harness.schedule(3, runs=2, warmup=1)
    assert [i for _, i, _ in order] == [0, 1, 2] * 3  # A B C A B C A B C
    assert [timed for _, _, timed in order] == [False] * 3 + [True] * 6
    assert [r for r, _, _ in order] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert harness.schedule(2, runs=1) == [(0, 0, True), (0, 1, True)]


def test_median_min_max():
    assert harness.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert harness.summarize([4.0, 1.0, 2.0, 10.0])["median"] == 3.0
    assert harness.summarize([]) is None


def fake_contender(name: str, files: int, seconds: list[float], rss: list[float] | None = None,
                   failed: int = 0, group: str = "") -> harness.Contender:
    c = harness.Contender(name, f"{name} ARCHIVE", lambda _s: [], files, group=group)
    rss = rss or [50.0] * len(seconds)
    c.samples = [harness.Sample(s, parent_rss_mb=m) for s, m in zip(seconds, rss, strict=True)]
    c.samples += [harness.Sample(0.01, failed="exit 1: boom")] * failed
    return c


def test_statistics_leave_failed_runs_out():
    c = fake_contender("fastdump --jobs 1", 1000, [2.0, 1.0, 4.0], failed=2)
    stats = harness.contender_stats(c)
    assert stats["seconds"] == {"median": 2.0, "min": 1.0, "max": 4.0, "n": 3}
    assert stats["files_per_s"] == {"median": 500.0, "min": 250.0, "max": 1000.0, "n": 3}
    assert harness.contender_record(c)["failures"] == ["exit 1: boom"]


def test_checks_compare_medians_with_the_target():
    fast = fake_contender("fastdump --jobs 1", 1000, [0.5, 0.4, 0.6])  # 2,000 files/s
    peer = fake_contender("dcmdump", 1000, [1.0, 0.9, 1.2])  # 1,000 files/s
    check = checks.ratio("CT", fast, peer, 2.0)
    assert check["value"] == pytest.approx(2.0) and check["met"] is True
    assert checks.ratio("CT", fast, peer, 2.5)["met"] is False
    one = checks.ceiling("one file", fast, peer, 0.25)
    assert one["met"] is False and one["value"] == pytest.approx(0.5)
    small = fake_contender("resume 10^4", 10_000, [1.0], rss=[60.0])
    large = fake_contender("resume 10^6", 1_000_000, [9.0], rss=[61.0])
    grown = checks.growth("resume", small, large, 20.0)
    assert grown["value"] == pytest.approx(2**20 / 990_000) and grown["met"] is True
    broken = fake_contender("fastdump", 10, [], failed=1)
    assert checks.ratio("x", broken, peer, 1.0)["met"] is None


def fake_record(suite: str, contenders: list[harness.Contender], found: list[dict]) -> dict:
    return {"schema": report.SCHEMA, "run_id": "20260101T000000-abcdef", "suite": suite,
            "quick": False, "date": "2026-01-01T00:00:00+00:00", "runs": 3, "warmup": 1,
            "command": "python benchmarks/run.py",
            "machine": {"cpu": "Test CPU", "cores": 2, "ram_gib": 8.0, "python": "3.11.7",
                        "pydicom": "3.0.2", "fastdump": "0.1.0",
                        "fastdump_version_output": "fastdump 0.1.0 (compiled hot path)",
                        "git_commit": "abc1234", "dcmtk": "$dcmtk: dcmdump v3.6.7 $",
                        "gdcm": "gdcmscanner: gdcm 3.0.21 $Date$"},
            "archives": {}, "contenders": [harness.contender_record(c) for c in contenders],
            "checks": found}


def test_tables_come_from_the_records():
    fast = fake_contender("fastdump --jobs 1", 1000, [0.5, 0.4, 0.6])
    peer = fake_contender("dcmdump +sb 7fe0,0010", 1000, [1.0, 0.9, 1.2])
    ct = fake_record("ct", [fast, peer], [checks.ratio("CT, 1,000 files", fast, peer, 2.0)])
    fds = [fake_contender(f"fastdump, {d} ms", 300, [s], group=f"{d} ms")
           for d, s in ((0, 3.0), (100, 25.0))]
    bases = [fake_contender(f"boto3 64 threads, {d} ms", 300, [1.4], group=f"{d} ms")
             for d in (0, 100)]
    s3 = fake_record("s3", [fds[0], bases[0], fds[1], bases[1]],
                     [checks.info("S3, 0 ms", fds[0], bases[0]),
                      checks.ratio("S3, 100 ms", fds[1], bases[1], 0.7)])
    table = report.targets_table([ct, s3]).splitlines()
    assert table[0].startswith("| check | fastdump | median (min–max) | peer |")
    assert table[2] == ("| CT, 1,000 files | fastdump --jobs 1 | 2,000 files/s (1,667–2,500) "
                        "| dcmdump +sb 7fe0,0010 | 1,000 files/s (833–1,111) | 2.00× | ≥ 2× "
                        "| **yes** |")
    assert table[3].startswith("| S3, 100 ms | fastdump, 100 ms | 12.0 files/s |")
    assert table[3].endswith("| 0.06× | ≥ 0.7× | **no** |") and len(table) == 4  # no info row
    latency = report.s3_table(s3).splitlines()
    assert latency[2] == "| 0 ms | 100 | 214 | 0.47× | — | — |"
    block = report.full_block([ct, s3])
    assert "`fastdump 0.1.0 (compiled hot path)`" in block and "DCMTK 3.6.7" in block
    assert "| fastdump --jobs 1 | `fastdump --jobs 1 ARCHIVE` | 1,000 |" in block


def test_the_machines_ceiling_shows_beside_the_targets():
    one = fake_contender("pure Python, 1 process", 400, [2.0, 2.2, 1.9], group="this machine")
    two = fake_contender("pure Python, 2 processes", 400, [1.25, 1.3, 1.2], group="this machine")
    check = checks.machine("this machine: 2 processes vs 1", two, one)
    assert check["value"] == pytest.approx(2.0 / 1.25) and check["met"] is None
    scaling = fake_record("scaling", [one, two], [check])
    row = report.targets_table([scaling]).splitlines()[2]
    assert row.startswith("| this machine: 2 processes vs 1 | pure Python, 2 processes | 1.25 s")
    assert row.endswith("| 1.60× (time over time) | — (the ceiling of the rows above) | — |")


def test_spin_splits_the_same_work_and_runs_it_in_fresh_processes():
    assert spin.shares(400, 1) == [400] and spin.shares(400, 2) == [200, 200]
    assert spin.shares(5, 2) == [3, 2] and sum(spin.shares(401, 3)) == 401
    assert spin.spin(1) == sum(i * i % 7 for i in range(spin.ITERATIONS_PER_UNIT))
    script = Path(spin.__file__)
    done = subprocess.run([sys.executable, str(script), "2", "2"], capture_output=True)
    assert done.returncode == 0 and not done.stderr


def test_resume_table_gives_growth_per_file():
    sizes = [fake_contender(f"fastdump --resume, {n:,} files", n, [t], rss=[m])
             for n, t, m in ((10_000, 0.6, 60.0), (1_000_000, 20.6, 80.0))]
    rows = report.resume_table(fake_record("resume", sizes, [])).splitlines()
    assert rows[2].startswith("| 10,000 | 0.600 s | 60.0 | — | 60.0 MB | — |")
    assert rows[3].startswith("| 1,000,000 | 20.6 s | 20.6 | 20.2 | 80.0 MB | +21 |")


def test_readme_sections_are_rewritten_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{report.START}\nold table\n{report.END}\nafter\n")
    assert report.rewrite_marked(readme, "new table")
    assert readme.read_text() == (f"# title\n\nbefore\n{report.START}\nnew table\n"
                                  f"{report.END}\nafter\n")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not report.rewrite_marked(plain, "x") and plain.read_text() == "no markers\n"
    for path in (Path(bench_run.HERE) / "README.md", Path(bench_run.HERE).parent / "README.md"):
        text = path.read_text()
        assert text.count(report.START) == text.count(report.END) == 1, path


def test_only_records_of_this_harness_and_latest_per_suite(tmp_path):
    results = tmp_path / "results.jsonl"
    old = {"run_id": "old", "archive": {}, "rows": []}  # the previous harness's lines
    records = [old, {"schema": report.SCHEMA, "suite": "ct", "run_id": "a", "quick": False},
               {"schema": report.SCHEMA, "suite": "mix", "run_id": "b", "quick": True},
               {"schema": report.SCHEMA, "suite": "ct", "run_id": "c", "quick": False}]
    results.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    loaded = report.load(results)
    assert [r["run_id"] for r in loaded] == ["a", "b", "c"]
    assert [r["run_id"] for r in report.latest(loaded)] == ["c"]
    assert [r["run_id"] for r in report.latest(loaded, quick=True)] == ["b"]


def test_suite_smoke_on_pydicom_test_files(tmp_path):
    """The mix suite end to end, one run per tool: every tool ran and the record is complete."""
    settings = suites.Settings(workdir=tmp_path, runs=1, warmup=0, sizes=suites.Sizes(mix=1),
                               seed=0, log=lambda _msg: None)
    machine = harness.machine_info()
    record = bench_run.run_suite("mix", settings, run_id="test", quick=True, command="test",
                                 machine=machine)
    version = subprocess.run([*harness.fastdump_command(), "--version"], capture_output=True,
                             text=True).stdout.strip()
    assert record["machine"]["fastdump_version_output"] == version
    names = [c["name"] for c in record["contenders"]]
    expected = ["fastdump --jobs 1"] + (["dcmdump +sb 7fe0,0010"] if shutil.which("dcmdump")
                                        else [])
    assert names == expected
    files = len(generate.real_test_files())
    for c in record["contenders"]:
        assert len(c["samples"]) == 1 and not c["failures"], c
        assert c["files"] >= files and c["stats"]["seconds"]["n"] == 1
        assert c["errors"] > 0  # pydicom ships deliberately broken files
    assert len(record["checks"]) == len(expected) - 1
    assert orjson.loads(orjson.dumps(record)) == record  # what results.jsonl gets
    assert "fastdump --jobs 1" in report.suite_table(record)
    assert not (tmp_path / "scratch").exists()  # every run's output removed
