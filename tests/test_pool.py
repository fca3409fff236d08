"""Workers that die or hang cost a retry, never a file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastdump
import fastdump.pool
import fastdump.runner
from fastdump.pool import WalkSoFar
from fastdump.types import Entry, Options

from . import poison
from .conftest import pydicom_file
from .helpers import read_jsonl


@pytest.fixture
def archive_with_poison(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    for i in range(40):
        shutil.copy(pydicom_file("CT_small.dcm"), root / f"im{i:03}.dcm")
    bad = root / "im020-poison.dcm"
    bad.write_bytes(poison.poisoned(Path(pydicom_file("MR_small.dcm")).read_bytes()))
    # a valid DICOM file, that fastdump itself dumps: only the stand-ins make it poison
    assert poison.is_poison(str(bad)) and fastdump.read_tags(bad)["00080060"]["Value"] == ["MR"]
    return root


def outcome_lines(out):
    return read_jsonl(out / "dump.jsonl"), read_jsonl(out / "errors.jsonl")


def test_a_worker_killed_by_a_file_costs_only_that_file(archive_with_poison, tmp_path,
                                                        monkeypatch):
    monkeypatch.setattr(fastdump.pool, "START_AFTER", None)  # every batch in a worker
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.dies_on_poison)
    summary = fastdump.dump([archive_with_poison], tmp_path / "out", jobs=2, batch_size=8,
                            progress=False)
    ok, bad = outcome_lines(tmp_path / "out")
    assert [r["path"] for r in bad] == [str(archive_with_poison / "im020-poison.dcm")]
    assert bad[0]["error"].startswith("WorkerDied: the worker reading this file died")
    assert len(ok) == 40 and len({r["path"] for r in ok}) == 40
    assert (summary.ok, summary.errors) == (40, 1)


@pytest.mark.parametrize("file_timeout", [None, 300])
def test_a_worker_killed_while_sending_its_result_does_not_stop_the_run(
        archive_with_poison, tmp_path, monkeypatch, file_timeout):
    """Its half-sent result and the pipe's lock it held left loky waiting for good (before:
    for the batch's budget, hours at the default --file-timeout; forever without one)."""
    monkeypatch.setattr(fastdump.pool, "START_AFTER", None)  # every batch in a worker
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.dies_sending_its_result_on_poison)
    started = time.monotonic()
    summary = fastdump.dump([archive_with_poison], tmp_path / "out", jobs=2, batch_size=4,
                            file_timeout=file_timeout, progress=False)
    assert time.monotonic() - started < 120  # (a bound on a hang, not a timing)
    ok, bad = outcome_lines(tmp_path / "out")
    assert [r["path"] for r in bad] == [str(archive_with_poison / "im020-poison.dcm")]
    assert bad[0]["error"].startswith("WorkerDied: the worker reading this file died")
    assert len(ok) == 40 and len({r["path"] for r in ok}) == 40
    assert (summary.ok, summary.errors) == (40, 1)


def test_workers_the_system_refuses_are_one_line_and_a_resume_finishes(archive_with_poison,
                                                                       tmp_path):
    """ulimit -n 16: before, loky's traceback (an UnboundLocalError over EMFILE), exit 1."""
    import resource

    out = tmp_path / "out"
    code = ("import sys, fastdump.pool, fastdump.cli as c; fastdump.pool.START_AFTER = None; "
            "sys.exit(c.main(sys.argv[1:]))")

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))

    proc = subprocess.run([sys.executable, "-c", code, "dump", str(archive_with_poison), "-o",
                           str(out), "--jobs", "2", "--no-progress"], capture_output=True,
                          text=True, timeout=120, preexec_fn=few_files)
    assert proc.returncode == 71, proc.stderr
    assert proc.stderr == ("fastdump: error: worker processes could not start: Too many open "
                           "files (this process may open 16: ulimit -n); raise the limit "
                           "(ulimit -n 1024) and run again (with --resume, an OUTDIR's run "
                           "goes on where it stopped)\n")
    summary = fastdump.dump([archive_with_poison], out, resume=True, progress=False)
    ok, bad = outcome_lines(out)
    assert (len(ok), bad, summary.ok + summary.unchanged) == (41, [], 41)


def test_a_hung_worker_is_killed_and_its_file_reported(archive_with_poison, tmp_path,
                                                       monkeypatch):
    monkeypatch.setattr(fastdump.pool, "START_AFTER", None)  # every batch in a worker
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.hangs_on_poison)
    monkeypatch.setattr(fastdump.pool, "HUNG_GRACE", 2.0)  # the default 5 s: a slower test
    summary = fastdump.dump([archive_with_poison], tmp_path / "out", jobs=1, batch_size=4,
                            file_timeout=0.5, progress=False)
    ok, bad = outcome_lines(tmp_path / "out")
    assert [r["path"] for r in bad] == [str(archive_with_poison / "im020-poison.dcm")]
    assert bad[0]["error"].startswith("FileTimeout: the worker reading this file hung")
    assert (summary.ok, summary.errors) == (40, 1)


def test_a_short_run_starts_no_worker_process_and_shows_no_bar(tmp_path):
    """Nor imports what it does not use: the pool's modules, or tqdm (the bar would show
    only after fastdump.runner.BAR_DELAY)."""
    code = (f"import sys, fastdump; s = fastdump.dump([{pydicom_file('CT_small.dcm')!r}], "
            f"{str(tmp_path / 'out')!r}); assert s.ok == 1; "
            "unused = {'joblib.externals.loky', 'concurrent.futures', 'tqdm'}; "
            "assert not unused & set(sys.modules), unused & set(sys.modules); print('no pool')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert (result.stdout.strip(), result.stderr) == ("no pool", ""), result.stderr


def test_a_longer_run_hands_its_batches_to_worker_processes(archive, tmp_path, monkeypatch):
    fastdump.pool.shutdown_local_pool()
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    monkeypatch.setenv("FASTDUMP_TEST_SLOW_PID", str(os.getpid()))
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0)  # workers started at once
    summary = fastdump.dump([archive, archive / "pydicom"], tmp_path / "out", jobs=2,
                            batch_size=2, progress=False)
    assert summary.ok + summary.errors == summary.files > 100
    pids = {int(reason.split()[1]) for reason in summary.fallback_reasons}
    # the first batches were read here while the workers started, the others by them
    assert os.getpid() in pids and pids - {os.getpid()}, pids


def test_a_run_shorter_than_the_start_of_workers_reads_everything_here(archive, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 3600)
    summary = fastdump.dump([archive], tmp_path / "out", jobs=2, progress=False)
    assert summary.ok + summary.errors == summary.files > 100
    assert set(summary.fallback_reasons) == {f"pid {os.getpid()}"}


def test_a_run_this_process_finishes_sooner_starts_no_worker(archive, tmp_path, monkeypatch):
    # Past START_AFTER, but the walk has ended (the pool waits WALK_WAIT for it) and the
    # files left take this process well under SMALL_RUN seconds: workers would only add
    # their start.
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0)
    # "small": seconds of this process's reading, however slow a busy CI machine makes it
    monkeypatch.setattr(fastdump.pool, "START_COST", 30.0)
    monkeypatch.setattr(fastdump.pool, "SMALL_RUN", 60.0)
    monkeypatch.setattr(fastdump.pool, "WALK_WAIT", 60.0)
    monkeypatch.setattr(fastdump.pool, "LocalPool", None)  # any attempt to start one fails
    summary = fastdump.dump([archive], tmp_path / "out", jobs=2, batch_size=2,
                            progress=False)
    assert summary.ok + summary.errors == summary.files > 100
    assert set(summary.fallback_reasons) == {f"pid {os.getpid()}"}


def batch_pid(batch, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    return os.getpid()


def first_pid_not_here(pool) -> int:
    """Submit batches until one is read by another process; its pid."""
    batch = [Entry("/nowhere/a.dcm", 1, 0.0)] * 2
    deadline = time.monotonic() + 60
    while (pid := pool.submit(batch_pid, batch).result(timeout=60)) == os.getpid():
        assert time.monotonic() < deadline, "no worker took a batch"
        time.sleep(0.02)
    return pid


@pytest.mark.parametrize("walk", [
    WalkSoFar(10, ended=False, held=False),
    WalkSoFar(5_000, ended=False, held=True),
    WalkSoFar(10**6, ended=True, held=False),
], ids=["walk goes on", "walk held by its queue", "much left"])
def test_workers_start_for_a_walk_not_ended_or_much_left(walk, monkeypatch):
    # However fast this process reads: a walk that goes on (past WALK_WAIT) may be a
    # long run, and a million files are more than SMALL_RUN seconds of anyone's reading.
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0)
    with fastdump.pool.StartingPool(2, found=lambda: walk) as pool:
        assert first_pid_not_here(pool) != os.getpid()


def test_a_walk_held_by_its_queue_waits_for_workers_only_while_reading_is_fast(monkeypatch):
    # A walk held by its full queue has found 5,000 files and may find many more. Read
    # as fast as --tags reads (a real archive of 7,040 files: 0.4 s here, 0.8 s when it
    # started a worker), those would be read before workers started now were up: this
    # process reads on, and decides again at the next batch. (Read slowly, the same walk
    # starts workers at once: test_workers_start_for_a_walk_not_ended_or_much_left.)
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0.001)
    monkeypatch.setattr(fastdump.pool, "START_COST", 300.0)  # a busy machine: 0.1 s a batch
    monkeypatch.setattr(fastdump.pool, "LocalPool", None)  # any attempt to start one fails
    held = WalkSoFar(5_000, ended=False, held=True)
    files = [Entry("/nowhere/a.dcm", 1, 0.0)] * 2
    with fastdump.pool.StartingPool(2, found=lambda: held) as pool:
        pids = [pool.submit(batch_pid, files, 0.002).result() for _ in range(20)]
    assert set(pids) == {os.getpid()}


def test_a_small_run_starts_no_worker_while_its_walk_ends(monkeypatch):
    # The walk's thread, slowed by the first batch's imports, ends 0.05 s after the
    # first decision; and one batch is slow (a first file of a character set imports
    # its decoder): neither makes 1,000 quickly read files worth workers.
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0)
    monkeypatch.setattr(fastdump.pool, "LocalPool", None)  # any attempt to start one fails
    ends_at: list[float] = []  # set at the first decision

    def found() -> WalkSoFar:
        if not ends_at:
            ends_at.append(time.monotonic() + 0.05)
        return WalkSoFar(1_000, ended=time.monotonic() > ends_at[0], held=False)

    files = [Entry("/nowhere/a.dcm", 1, 0.0)] * 2
    with fastdump.pool.StartingPool(2, found=found) as pool:
        pids = [pool.submit(batch_pid, files, 0.0).result(),
                pool.submit(batch_pid, files, 0.0).result(),
                pool.submit(batch_pid, files, 0.3).result()]
        pids += [pool.submit(batch_pid, files * 250, 0.0).result() for _ in range(2)]
    assert set(pids) == {os.getpid()}


def test_a_resumed_run_reads_every_batch_in_a_worker(archive, tmp_path, monkeypatch):
    # The run before may have ended in a crash of this process, on a file it read:
    # read here again, that file would end every resume the same way.
    out = tmp_path / "out"
    fastdump.dump([archive / "study"], out, jobs=1, progress=False)
    fastdump.pool.shutdown_local_pool()
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    summary = fastdump.dump([archive], out, jobs=1, resume=True, batch_size=8,
                            progress=False)
    assert summary.new > 100 and summary.unchanged == 2
    pids = {int(reason.split()[1]) for reason in summary.fallback_reasons}
    assert pids and os.getpid() not in pids, pids


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_file_read_alone_is_timed_from_when_its_worker_is_up(tmp_path, monkeypatch):
    # A worker process that takes 2 s to start (its interpreter's sitecustomize sleeps,
    # as imports on a busy machine can), and a call of 0.1 s given 1 s: the worker's
    # start is not the call's time.
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(2.0)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    fastdump.pool.shutdown_local_pool()  # the next worker starts in that environment
    pool = fastdump.pool.LocalPool(2)
    try:
        assert pool.isolate(pid_after, 0.1, timeout=1.0) != os.getpid()
    finally:
        fastdump.pool.shutdown_local_pool()


def test_the_pool_keeps_its_workers_after_a_file_read_alone_and_after_a_dead_worker():
    # LocalPool reuses its executor from submit to submit: it must notice when loky
    # shrank it to one worker (a file read alone) or a worker's death broke it.
    fastdump.pool.shutdown_local_pool()
    pool = fastdump.pool.LocalPool(2)

    def workers_used() -> int:
        return len({f.result() for f in [pool.submit(pid_after, 0.3) for _ in range(4)]})

    assert workers_used() == 2
    assert pool.isolate(pid_after, 0) != os.getpid()
    assert workers_used() == 2
    with pytest.raises(pool.lost):
        pool.submit(poison.die_like_a_segfault).result(timeout=60)
    assert workers_used() == 2
    pool.kill()
    assert workers_used() == 2


def test_a_batch_read_here_is_written_before_the_next_is_read(tmp_path, monkeypatch):
    # Its time is then its own, what the next batch's size is learned from (four read
    # at once looked like four in no time: batches of 256 were read here while the
    # workers, up, waited), and workers once up are handed the very next batch.
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 3600)  # every batch read here
    events = []

    def batches():
        for i in range(5):
            events.append(f"handed {i}")
            yield [Entry(str(tmp_path / f"{i}.dcm"), 1, 0.0)]

    with fastdump.pool.StartingPool(2) as pool:
        for result in fastdump.pool.run_batches(pool, batches(), Options(), in_flight=4):
            events.append(f"written {len(result.errors)}")
    assert events == [e for i in range(5) for e in (f"handed {i}", "written 1")]


def blas_in_worker() -> tuple[dict[str, str | None], bool, int]:
    return ({var: os.environ.get(var) for var in fastdump.pool.BLAS_THREADS},
            "numpy" in sys.modules, len(os.listdir("/proc/self/task")))


def test_workers_run_numpys_blas_on_one_thread_unless_the_user_chose(monkeypatch):
    # joblib imports numpy in every worker; its BLAS would start a thread per core.
    for var in fastdump.pool.BLAS_THREADS:
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    fastdump.pool.shutdown_local_pool()
    try:
        env, numpy_loaded, threads = fastdump.pool.LocalPool(2).submit(
            blas_in_worker).result(timeout=120)
        assert env == fastdump.pool.BLAS_THREADS
        assert numpy_loaded and threads == 1  # numpy is among the test extras
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        env, _, _ = fastdump.pool.LocalPool(2).submit(blas_in_worker).result(timeout=120)
        assert env == {**fastdump.pool.BLAS_THREADS, "OPENBLAS_NUM_THREADS": "2"}
    finally:
        fastdump.pool.shutdown_local_pool()
