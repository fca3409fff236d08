"""Stopped the way servers stop programs: SIGTERM, SIGHUP, a second signal.

Each run is the real command in a session of its own; the signal comes once it
is writing, and the run cannot finish meanwhile (its paths come from a pipe
kept open). Afterwards no process of the session may be left (workers, loky's
resource tracker, a LocalCluster's processes), stderr holds no traceback, and
``--resume`` leaves every file in exactly one line, equal to a clean run's.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fastdump import stopping

from . import test_runner_kill
from .conftest import pydicom_file, regular_files
from .helpers import sigint_as_in_a_terminal
from .process_tree import session, wait_all_gone
from .test_runner_kill import dump_cmd, records

# the ~2,000-file archive of the kill -9 tests, and its records from a clean run
big_archive, reference = test_runner_kill.big_archive, test_runner_kill.reference

EXIT_ROUNDS = int(os.environ.get("FASTDUMP_EXIT_ROUNDS", "20"))

# One mode at a time in tests/pytest_both_modes.py: signals sent while a run is at a given
# point, which a busy machine shifts. (A SIGTERM once left a run going to its end, exit 0:
# an int() failing on a value had set its ValueError in place of the Stopped its handler
# raised; see test_a_stop_some_c_code_dropped_is_acted_on_at_the_next_write.)
pytestmark = pytest.mark.serial


def default_signals(ignore: tuple[int, ...] = ()) -> None:
    """In the child: the stop signals at their defaults, as in a terminal or under
    systemd, even when the tests run in the background or under nohup."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN if signum in ignore else signal.SIG_DFL)


def start_run(archive, out, *extra, ignore: tuple[int, ...] = ()) -> tuple[subprocess.Popen,
                                                                           list[str]]:
    """The dump of half the archive's files, read from a pipe left open, once it writes.

    Returns the process and the paths not given yet.
    """
    cmd = dump_cmd(archive, out, "--files-from", "-", *extra)
    cmd.remove(str(archive))
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: default_signals(ignore))
    paths = sorted(regular_files(archive))
    half = len(paths) // 2
    proc.stdin.write("".join(f"{p}\n" for p in paths[:half]))
    proc.stdin.flush()
    wait_for_lines(proc, out / "dump.jsonl")
    return proc, paths[half:]


def wait_for_lines(proc: subprocess.Popen, path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.stat().st_size:
        if proc.poll() is not None:
            raise AssertionError(f"the dump ended before writing: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the dump never started writing"
        time.sleep(0.01)


def finish(proc: subprocess.Popen) -> tuple[str, float]:
    """stderr of the stopped run, and seconds from its exit until none of its processes is left."""
    _, stderr = proc.communicate(timeout=120)
    return stderr, wait_all_gone(proc.pid)


def check_clean_stop(proc, stderr, out, signum) -> None:
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr
    assert f"interrupted by {name}; run the same command with --resume to finish" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == name
    assert summary["ok"] > 0  # it was stopped mid-run, with work done
    records(out)  # every line whole: each parses as JSON


def check_resume(archive, out, reference, *extra) -> None:
    subprocess.run(dump_cmd(archive, out, "--resume", *extra), check=True, timeout=600,
                   capture_output=True)
    found = records(out)
    assert all(len(lines) == 1 for lines in found.values()), "a file appears twice"
    assert {p: lines[0] for p, lines in found.items()} == reference


@pytest.mark.parametrize("signum, to_group", [
    (signal.SIGTERM, False),  # kill PID, timeout(1)
    (signal.SIGTERM, True),  # systemd stopping a service: the whole cgroup
    (signal.SIGHUP, True),  # the terminal hung up: the foreground process group
], ids=["SIGTERM", "SIGTERM-group", "SIGHUP-group"])
def test_signal_stops_cleanly_leaves_no_process_and_resume_finishes(
        big_archive, reference, tmp_path, signum, to_group):
    out = tmp_path / "out"
    proc, _ = start_run(big_archive, out)
    (os.killpg if to_group else os.kill)(proc.pid, signum)
    stderr, gone_after = finish(proc)
    check_clean_stop(proc, stderr, out, signum)
    print(f"{signal.Signals(signum).name}: every process gone {gone_after:.2f} s after exit")
    check_resume(big_archive, out, reference)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_workers_of_a_parent_killed_alone_die_with_it(big_archive, reference, tmp_path):
    out = tmp_path / "out"
    proc, _ = start_run(big_archive, out)
    deadline = time.monotonic() + 60
    while sum("popen_loky_posix" in p for p in session(proc.pid)) < 2:  # its workers are up
        assert time.monotonic() < deadline, session(proc.pid)
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone (kill -9 PID, the OOM killer)
    proc.communicate(timeout=60)
    # loky's idle workers would end after their 60 s timeout; one blocked sending a
    # result, never
    print(f"every process gone {wait_all_gone(proc.pid, timeout=10):.2f} s after the kill")
    check_resume(big_archive, out, reference)


@pytest.mark.parametrize("first, second", [(signal.SIGINT, signal.SIGTERM),
                                           (signal.SIGHUP, signal.SIGTERM)],
                         ids=["SIGINT-then-SIGTERM", "SIGHUP-then-SIGTERM"])
def test_second_signal_ends_it_at_once_leaving_no_process(
        big_archive, reference, tmp_path, first, second):
    out = tmp_path / "out"
    proc, _ = start_run(big_archive, out)
    # Back to back, so that the second finds the run stopping. Which of the two is
    # acted on second is not fixed: the kernel may hand them to different threads,
    # or hold one while that thread blocks it and the other goes through.
    os.kill(proc.pid, first)
    os.kill(proc.pid, second)
    stderr, _ = finish(proc)
    ended_by = {128 + signum: signal.Signals(signum).name for signum in (first, second)}
    assert proc.returncode in ended_by, stderr
    assert f"{ended_by[proc.returncode]} again: stopped at once" in stderr
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr
    check_resume(big_archive, out, reference)


def test_second_signal_with_records_on_standard_output_is_not_told_to_resume(big_archive):
    """--resume needs an OUTDIR: with -o - the second signal's line named it all the same."""
    cmd = dump_cmd(big_archive, "-", "--files-from", "-")
    cmd.remove(str(big_archive))
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_signals)
    paths = sorted(regular_files(big_archive))
    proc.stdin.write(b"".join(f"{p}\n".encode() for p in paths[:len(paths) // 2]))
    proc.stdin.flush()
    assert proc.stdout.readline().startswith(b"{")  # it writes its records
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    stderr = stderr.decode()
    wait_all_gone(proc.pid)
    ended_by = {128 + signum: signal.Signals(signum).name
                for signum in (signal.SIGINT, signal.SIGTERM)}
    assert proc.returncode in ended_by, stderr
    assert (f"{ended_by[proc.returncode]} again: stopped at once; the last record on "
            "standard output may be cut short") in stderr, stderr
    assert "--resume" not in stderr and "Traceback" not in stderr, stderr


def test_sigterm_stops_a_local_dask_cluster_too(big_archive, reference, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    proc, _ = start_run(big_archive, out, "--scheduler", "local")
    os.killpg(proc.pid, signal.SIGTERM)
    stderr, gone_after = finish(proc)
    check_clean_stop(proc, stderr, out, signal.SIGTERM)
    print(f"--scheduler local: every process gone {gone_after:.2f} s after exit")
    check_resume(big_archive, out, reference)


def test_sighup_ignored_under_nohup_changes_nothing(big_archive, reference, tmp_path):
    out = tmp_path / "out"
    proc, rest = start_run(big_archive, out, ignore=(signal.SIGHUP,))
    os.killpg(proc.pid, signal.SIGHUP)
    _, stderr = proc.communicate("".join(f"{p}\n" for p in rest), timeout=600)
    assert proc.returncode == 0, stderr
    assert {p: lines[0] for p, lines in records(out).items()} == reference
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False


def test_no_leaked_semaphore_warning_at_exit(tmp_path):
    """loky's resource tracker warned of "leaked semlock objects" after about one
    run in six on a busy machine (the pool's feeder thread still ending at exit)."""
    files = [pydicom_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    exe = os.path.join(os.path.dirname(sys.executable), "fastdump")
    for round_no in range(EXIT_ROUNDS):
        out = tmp_path / f"out{round_no}"
        done = subprocess.run([exe, "dump", *files, "-o", str(out), "--no-progress", "--jobs", "2"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        # nothing but fastdump's own report
        noise = [line for line in done.stderr.splitlines() if not line.startswith("fastdump: ")]
        assert not noise, f"run {round_no + 1}: {done.stderr}"


# In-process: a stop signal acted on at the worst moment. Python runs a signal's
# handler right after whatever call was under way when it came; these make the
# handler run right after one given call, as that would.

def run_handler_after(monkeypatch, name, when, signum=signal.SIGTERM):
    """Make ``signal.name(...)`` run the installed handler of ``signum`` right after
    its first call for which ``when(*args)`` holds."""
    real = getattr(signal, name)
    fired = []

    def call_then_handle(*args):
        result = real(*args)
        if not fired and when(*args):
            fired.append(True)
            handler = signal.getsignal(signum)
            assert callable(handler), "no handler of fastdump's to run"
            handler(signum, None)
        return result

    monkeypatch.setattr(signal, name, call_then_handle)


def blocked_now() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))


def default_handler(signum: int):
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


@pytest.fixture
def main_thread_state():
    """The stop signals at their defaults, as in a terminal (tests run in the
    background ignore SIGINT); after the test, the handlers and mask of the main
    thread must be as they were."""
    outside = {s: signal.signal(s, default_handler(s)) for s in stopping.STOP_SIGNALS}
    mask = blocked_now()
    try:
        yield
        assert {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS} == {
            s: default_handler(s) for s in stopping.STOP_SIGNALS}
        assert blocked_now() == mask
        assert stopping._controller.deferring == 0 and stopping._controller.depth == 0
    finally:
        for signum, handler in outside.items():
            signal.signal(signum, handler)


def test_a_signal_right_after_deferred_blocks_them_leaves_none_blocked(
        monkeypatch, main_thread_state):
    with pytest.raises(stopping.Stopped) as stopped, stopping.stop_signals():
        run_handler_after(monkeypatch, "pthread_sigmask",
                          lambda how, sigs: how == signal.SIG_BLOCK and set(sigs))
        ran = False
        with stopping.deferred():
            ran = True  # the block itself runs; the signal acts after it
    monkeypatch.undo()
    assert ran and stopped.value.signum == signal.SIGTERM


def test_a_signal_right_after_interruptible_opens_restores_the_deferred_block(
        monkeypatch, main_thread_state):
    with stopping.stop_signals(), stopping.deferred(raise_pending=False):
        run_handler_after(monkeypatch, "pthread_sigmask",
                          lambda how, sigs: how == signal.SIG_UNBLOCK)
        with pytest.raises(stopping.Stopped), stopping.interruptible():
            pytest.fail("the signal acts as interruptible() opens")
        monkeypatch.undo()
        # back in the deferred block: deferring, and the signals blocked again
        assert stopping._controller.deferring == 1
        assert set(stopping.STOP_SIGNALS) <= blocked_now()
        # raised, and noted until the code that caught it takes it
        assert stopping.take_pending() == signal.SIGTERM
    assert stopping.take_pending() is None


@pytest.mark.parametrize("moment", ["installing", "restoring"])
def test_a_signal_while_handlers_are_swapped_leaves_the_previous_ones(
        monkeypatch, main_thread_state, moment):
    first = stopping.STOP_SIGNALS[0]  # installed first, put back first
    # installing: the first one's handler runs as soon as it is installed;
    # restoring: SIGTERM's (still installed) runs once the first one's is put back
    signum = first if moment == "installing" else signal.SIGTERM

    def when(sig, handler):
        ours = getattr(handler, "__self__", None) is stopping._controller
        return sig == first and ours == (moment == "installing")

    run_handler_after(monkeypatch, "signal", when, signum)
    with pytest.raises(stopping.Stopped) as stopped, stopping.stop_signals():
        assert moment == "restoring", "the signal acts before the block runs"
    monkeypatch.undo()
    assert stopped.value.signum == signum


def test_a_stop_signal_left_blocked_reaches_the_handler_at_the_end(main_thread_state):
    """Whatever left a stop signal blocked in the run's thread, it is delivered when
    the run ends, to fastdump's handler: not lost, nor the default action later."""
    with pytest.raises(stopping.Stopped) as stopped, stopping.stop_signals():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # as a bug might
        signal.pthread_kill(threading.get_ident(), signal.SIGHUP)  # to this thread only
        assert signal.SIGHUP in signal.sigpending()
    assert stopped.value.signum == signal.SIGHUP


class _StoppedWhileFinalized(io.RawIOBase):
    """An io object whose ``close()`` gets a SIGTERM. Dropped unclosed, CPython's io
    finalizer calls that ``close()`` and drops whatever it raises: what the handler
    raised is lost, as it was (about one SIGTERM in 2,000) where a converter's ``int()``
    failed on a value and set its ValueError in place of the Stopped."""

    def close(self) -> None:
        signal.raise_signal(signal.SIGTERM)  # the handler runs here, in close()
        super().close()


def test_a_stop_some_c_code_dropped_is_acted_on_at_the_next_write(main_thread_state):
    went_on = False
    with pytest.raises(stopping.Stopped) as stopped, stopping.stop_signals():
        _StoppedWhileFinalized()  # made and dropped: its finalizer drops the Stopped
        went_on = True
        with stopping.deferred():  # as a batch's write: where it is acted on
            pass
        pytest.fail("the stop was lost")
    assert went_on and stopped.value.signum == signal.SIGTERM


def test_a_stop_signal_in_an_import_waits_for_it_to_end(tmp_path, monkeypatch):
    """Raised inside pydicom's first import, it left the module half done for the rest of
    the process: every later dump() of a notebook failed on 'partially initialized module'."""
    (tmp_path / "imported_while_stopping.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
        "for _ in range(10000):\n    pass\nWHOLE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with sigint_as_in_a_terminal(), pytest.raises(stopping.Stopped), stopping.stop_signals():
        import imported_while_stopping  # noqa: F401 - the signal comes while it runs

        with stopping.deferred():  # as a batch's write: where it is acted on
            pass
        pytest.fail("the stop was not acted on")
    assert sys.modules["imported_while_stopping"].WHOLE
    del sys.modules["imported_while_stopping"]
