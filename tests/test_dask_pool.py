"""--scheduler: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1.

The records of a cluster run must equal those of a local run, also when a
worker is SIGKILLed mid-run, and a file that kills every worker reading it must
end as an error record while the rest are dumped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import fastdump  # noqa: E402

from .conftest import pydicom_file, regular_files  # noqa: E402
from .dask_hooks import ReadHooks  # noqa: E402
from .helpers import free_port, jsonl_lines, output_lines, parse_line, run_cli  # noqa: E402
from .poison import POISON, is_poison  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
WORKERS = 2
STARTUP_TIMEOUT = 60.0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def running_cluster(logs: Path, workers: int):
    """(address, client) of a scheduler and ``workers`` single-threaded workers with nannies."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ)
    # Workers import tests.dask_hooks (the test-only plugin) from the repository.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # As the README recommends: a task is given up after its worker died twice.
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "1"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "wb"),
        ))
        for i in range(workers):
            procs.append(subprocess.Popen(
                [DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--nworkers", "1", "--name", f"w{i}", "--no-dashboard",
                 "--death-timeout", "60", "--memory-limit", "2GiB"],
                env=env, stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{i}.log", "wb"),
            ))
        client = distributed.Client(address, timeout=STARTUP_TIMEOUT)
        client.wait_for_workers(workers, timeout=STARTUP_TIMEOUT)
        yield address, client
        client.close()
    finally:
        for proc in reversed(procs):
            stop(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, client) of a scheduler and two single-threaded workers with nannies."""
    with running_cluster(tmp_path_factory.mktemp("dask-logs"), WORKERS) as running:
        yield running


@pytest.fixture
def hooks(cluster):
    """Install the test-only read hooks on every worker, for one test."""
    _, client = cluster
    workers = len(client.scheduler_info(n_workers=-1)["workers"])
    installed = []

    def install(delay: float = 0.0, start_delay: float = 0.0) -> None:
        client.register_plugin(ReadHooks(delay, start_delay), name=ReadHooks.name)
        installed.append(True)

    yield install
    if installed:
        client.unregister_worker_plugin(ReadHooks.name)
    # A test that killed workers leaves the cluster whole for the next one.
    client.wait_for_workers(workers, timeout=STARTUP_TIMEOUT)


@pytest.fixture(scope="module")
def local_run(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    fastdump.dump([archive], out, jobs=2, progress=False)
    return output_lines(out)


def test_cluster_run_equals_local_run(cluster, archive, local_run, tmp_path):
    address, _ = cluster
    summary = fastdump.dump([archive], tmp_path / "out", scheduler=address, progress=False)
    got = output_lines(tmp_path / "out")
    assert len(got) == len(set(got)) == len(regular_files(archive))
    assert set(got) == set(local_run)
    assert summary.jobs == WORKERS  # one thread per worker
    assert summary.ok + summary.errors == summary.files


def test_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster, hooks, archive, local_run, tmp_path
):
    address, client = cluster
    hooks(delay=0.04)  # ~200 files on 2 workers: a few seconds, time to kill one
    out = tmp_path / "out"
    result: dict = {}

    def run() -> None:
        try:
            result["summary"] = fastdump.dump([archive], out, scheduler=address,
                                              progress=False, batch_size=8)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: len(jsonl_lines(out / "dump.jsonl", missing_ok=True)) >= 8, 60,
               "the first batch")
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    written_at_kill = len(output_lines(out))
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not finish after a worker was killed"
    assert "error" not in result, result.get("error")

    assert written_at_kill < len(local_run)  # the kill really was mid-run
    assert victim not in client.run(os.getpid).values()  # that process is gone
    got = output_lines(out)
    assert len(got) == len(set(got))  # nothing dumped twice
    assert set(got) == set(local_run)  # nothing lost or altered


def test_a_file_a_worker_does_not_see_says_so(cluster):
    """A worker without the archive mounted called its share deleted since the walk."""
    from fastdump.record import describe_failure

    _, client = cluster
    reason, _ = client.submit(describe_failure, FileNotFoundError(2, "gone"), pure=False).result()
    assert reason.startswith("FileNotFoundError: the file was deleted or moved after the walk "
                             "found it, or Dask worker w"), reason
    assert reason.endswith("does not see it (every worker must mount the archive at the same "
                           "path)"), reason
    assert describe_failure(FileNotFoundError(2, "gone"))[0].endswith("after the walk found it")


def test_file_that_kills_its_worker_is_an_error_record(cluster, hooks, tmp_path):
    address, client = cluster
    hooks()
    folder = tmp_path / "archive"
    folder.mkdir()
    names = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm"]
    for name in names:
        shutil.copy(pydicom_file(name), folder / name)
    (folder / "poison.dcm").write_bytes(POISON + b"\0" * 300)
    assert is_poison(str(folder / "poison.dcm"))
    local = tmp_path / "local"
    fastdump.dump([folder], local, jobs=1, progress=False)  # no hook here: a plain bad file
    out = tmp_path / "out"

    summary = fastdump.dump([folder], out, scheduler=address, progress=False, batch_size=3)

    dumped = {parse_line(line)["path"]: line for line in jsonl_lines(out / "dump.jsonl")}
    errors = {r["path"]: r for r in map(parse_line, jsonl_lines(out / "errors.jsonl"))}
    poison = str(folder / "poison.dcm")
    assert set(errors) == {poison}
    assert errors[poison]["error"].startswith("WorkerDied: ")
    assert errors[poison]["size"] == len(POISON) + 300
    assert set(dumped) == {str(folder / name) for name in names}
    assert set(dumped.values()) == set(jsonl_lines(local / "dump.jsonl"))
    assert (summary.ok, summary.errors) == (len(names), 1)


def test_a_scheduler_lost_mid_run_is_one_line_and_resume_finishes(archive, local_run, tmp_path):
    """Tracebacks (CommClosedError, FutureCancelledError), exit 1 and no word of --resume
    before."""
    out = tmp_path / "out"
    with running_cluster(tmp_path, 1) as (address, client):
        client.register_plugin(ReadHooks(0.05, 0.0), name=ReadHooks.name)  # a long run
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastdump", "dump", str(archive), "-o", str(out),
             "--scheduler", address, "--no-progress"],
            stderr=subprocess.PIPE, text=True)
        wait_until(lambda: proc.poll() is not None
                   or len(jsonl_lines(out / "dump.jsonl", missing_ok=True)) >= 4, 60,
                   "the first batch")
        assert proc.poll() is None, proc.communicate()[1]
        os.kill(client.run_on_scheduler(os.getpid), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr  # (a SchedulerError, as for no worker left)
    assert stderr == (f"fastdump: error: lost the Dask scheduler at {address}: start it and "
                      "its workers again, then run the same command with --resume to finish\n")
    with running_cluster(tmp_path, 1) as (address, _):
        result = run_cli("dump", archive, "-o", out, "--scheduler", address, "--resume",
                         "--no-progress")
    assert result.returncode == 0, result.stderr
    got = output_lines(out)
    assert len(got) == len(set(got)) and set(got) == set(local_run)


def test_local_cluster_from_the_command_line(archive, local_run, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("dump", archive, "-o", out, "--scheduler", "local", "--jobs", "2",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    got = output_lines(out)
    assert len(got) == len(set(got))
    assert set(got) == set(local_run)


@pytest.mark.parametrize("earlier_run", [False, True])
def test_unreachable_scheduler_is_one_line_exit_2_and_outdir_untouched(tmp_path, earlier_run):
    out = tmp_path / "out"
    if earlier_run:  # and --overwrite: not deleted for a run that cannot start
        assert run_cli("dump", pydicom_file("MR_small.dcm"), "-o", out).returncode == 0
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir()) if earlier_run else None
    port = free_port()  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, fastdump.dask_pool as d, fastdump.cli as c; d.CONNECT_TIMEOUT = 2; "
         "sys.exit(c.main(sys.argv[1:]))",
         "dump", pydicom_file("CT_small.dcm"), "-o", str(out), "--overwrite",
         "--scheduler", f"tcp://127.0.0.1:{port}", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"fastdump: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert proc.stderr.count("\n") == 1
    if earlier_run:
        assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    else:  # the next run needs no --resume or --overwrite
        assert not out.exists()


@contextlib.contextmanager
def not_a_scheduler(answer: bytes | None):
    """A TCP server on 127.0.0.1 that is no Dask scheduler: it answers ``answer`` to
    whatever it is sent (an HTTP server's 400), or nothing at all (None)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)
                conn.recv(1024)
                if answer is not None:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize("kind", ["mistyped scheme", "HTTP server", "silent server"])
def test_an_address_that_is_no_scheduler_is_one_line_and_the_earlier_run_stays(tmp_path, kind):
    # (before: --overwrite had emptied OUTDIR, then a traceback, or a hang for good)
    out = tmp_path / "out"
    assert run_cli("dump", pydicom_file("MR_small.dcm"), "-o", out).returncode == 0
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    answer = None if kind == "silent server" else b"HTTP/1.1 400 Bad Request\r\n\r\n" * 8
    with not_a_scheduler(answer) as address:
        if kind == "mistyped scheme":
            address = address.replace("tcp://", "tpc://")
        proc = subprocess.run(
            [sys.executable, "-c",
             "import sys, fastdump.dask_pool as d, fastdump.cli as c; d.CONNECT_TIMEOUT = 2; "
             "sys.exit(c.main(sys.argv[1:]))",
             "dump", pydicom_file("CT_small.dcm"), "-o", str(out), "--overwrite",
             "--scheduler", address, "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("fastdump: error: ") and proc.stderr.count("\n") == 1
    assert address in proc.stderr
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before


def test_scheduler_without_distributed_says_which_install_before_outdir(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.modules['distributed'] = None; import fastdump.cli as c; "
         "sys.exit(c.main(sys.argv[1:]))",  # as where fastdump[dask] is not installed
         "dump", pydicom_file("CT_small.dcm"), "-o", str(out), "--scheduler", "local"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    needs = '--scheduler needs distributed: pip install "distributed>=2024.1" (fastdump\'s ' \
        '[dask] extra)'
    assert proc.stderr == f"fastdump: error: {needs}\n"
    assert not out.exists()

