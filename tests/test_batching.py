"""Batches sized by work: many quick files per batch, few slow ones, every file once."""

from __future__ import annotations

import pytest

import fastdump
from fastdump import batching
from fastdump.batching import FIRST, MOST, TARGET_SECONDS, BatchSizer, batches
from fastdump.walk import Entry

from .conftest import regular_files
from .helpers import jsonl_lines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(batching.time, "monotonic", clock)
    return clock


def finish(sizer: BatchSizer, clock: Clock, files: int, seconds_per_file: float) -> None:
    """A batch of ``files`` finishes, each file having taken one worker ``seconds_per_file``."""
    clock.now += files * seconds_per_file / sizer.workers
    sizer.finished(files)


def test_a_fixed_size_is_kept(clock):
    sizer = BatchSizer(2, fixed=5)
    finish(sizer, clock, 5, 1.0)
    finish(sizer, clock, 5, 1e-5)
    assert sizer.size() == 5


def test_quick_files_make_big_batches_and_slow_files_small_ones(clock):
    sizer = BatchSizer(2)
    assert sizer.size() == FIRST
    finish(sizer, clock, FIRST, 5.0)  # the first batch also waited for the workers: not measured
    assert sizer.size() == FIRST
    for _ in range(3):
        finish(sizer, clock, sizer.size(), 60e-6)  # --tags: ~60 µs a file
    assert sizer.size() == MOST
    for _ in range(40):
        finish(sizer, clock, sizer.size(), 0.02)  # 20 ms a file: ~5 per batch
    assert sizer.size() == pytest.approx(TARGET_SECONDS / 0.02, abs=1)
    for _ in range(20):
        finish(sizer, clock, sizer.size(), 3.0)  # giant headers: one at a time
    assert sizer.size() == 1


def test_batches_hold_every_file_once_at_the_size_asked(clock):
    sizer = BatchSizer(1)
    entries = [Entry(f"/a/{n}", n, 0.0) for n in range(5000)]
    sizes = []
    done = []
    for batch in batches(iter(entries), sizer):
        sizes.append(len(batch))
        done.extend(batch)
        finish(sizer, clock, len(batch), 1e-3 if len(done) < 2000 else 0.01)
    assert done == entries
    assert sizes[0] == FIRST
    assert max(sizes) == round(TARGET_SECONDS / 1e-3) and sizes[-2] == round(TARGET_SECONDS / 0.01)


def test_a_dump_sized_by_work_equals_one_file_per_batch(archive, tmp_path):
    by_work = fastdump.dump([archive], tmp_path / "a", jobs=2, progress=False)
    one_by_one = fastdump.dump([archive], tmp_path / "b", jobs=2, progress=False, batch_size=1)
    assert one_by_one.ok == by_work.ok and one_by_one.errors == by_work.errors
    assert by_work.ok + by_work.errors == len(regular_files(archive))

    def lines(out):
        return sorted(jsonl_lines(out / "dump.jsonl")), sorted(jsonl_lines(out / "errors.jsonl"))

    assert lines(tmp_path / "a") == lines(tmp_path / "b")
