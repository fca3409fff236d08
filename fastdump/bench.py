"""How fast is fastdump on *your* archive? ``fastdump bench PATH [--sample N]``.

Takes a deterministic sample of the archive's files, warms the page cache with
them (so every tool sees the same warm files and the figures measure the
tools, not the disks), then runs each tool on the sample, each in its own
process tree, ``runs`` times, the tools alternated (A B C, A B C, ...: a
machine that slows down for a while slows every tool, not one), and reports
each tool's median time with its range, files/s, MB/s, peak RSS of the parent
process and of its workers, and ratios of the medians against a plain
``dcmread`` + ``to_json_dict`` loop and against DCMTK's ``dcmdump``.

The same machinery drives ``benchmarks/run.py`` (generated archives, more tools).
Nothing is written outside a temporary directory, which is removed at the end.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from .errors import InputNotFoundError, OptionError
from .runner import resolve_jobs
from .types import Entry
from .walk import walk

IO_FLOOR = "I/O floor (open + read 64 KB)"
TOJSON = "dcmread + to_json_dict loop"
NOTEBOOK = "notebook loop (dcmread + ds.dir())"
DCMDUMP = "dcmdump +sb 7fe0,0010"
GDCMSCANNER = "gdcmscanner, 6 tags"
DCMDUMP_FILES_PER_CALL = 500
SIX_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality",
            "InstanceNumber")
SAMPLE_INTERVAL = 0.02  # seconds between two memory samples


@dataclass
class Row:
    """One tool's measurement on one set of files."""

    tool: str
    files: int
    bytes: int
    seconds: float
    errors: int | None = None
    parent_rss_mb: float | None = None
    worker_rss_mb: float | None = None
    note: str = ""
    x_tojson: float | None = None  # files/s relative to the to_json_dict loop
    x_dcmdump: float | None = None  # files/s relative to dcmdump
    extra: dict = field(default_factory=dict)
    runs: int = 1  # seconds is the median of this many runs
    seconds_min: float | None = None
    seconds_max: float | None = None

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def files_per_s_range(self) -> tuple[float, float] | None:
        """(slowest, fastest) files/s over the runs, when there were several."""
        if self.runs < 2 or not self.seconds_min or not self.seconds_max:
            return None
        return self.files / self.seconds_max, self.files / self.seconds_min

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files_per_s"] = round(self.files_per_s, 1)
        d["mb_per_s"] = round(self.mb_per_s, 2)
        return d


@dataclass(frozen=True)
class Target:
    """What the tools run on: the files (with sizes), and optionally the directory holding
    exactly them (fastdump and gdcmscanner then walk it, as a user would)."""

    files: tuple[Entry, ...]
    root: str | None = None

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.files)


# ---------------------------------------------------------------- the sample


def sample_files(paths: Iterable[str], n: int) -> list[Entry]:
    """``n`` files spread over the archive, the same ones every time for the same archive.

    Each file is ranked by a hash of its path, so the sample is not the first
    folder but a cross-section; memory stays O(n) however large the archive.
    """
    if n < 1:
        raise OptionError(f"--sample must be at least 1 file, not {n}")
    for path in paths:
        if not os.path.lexists(path):
            raise InputNotFoundError(f"no such file or directory: {path}")
    ranked = ((_rank(e.path), e) for e in walk(paths) if isinstance(e, Entry))
    chosen = [e for _, e in heapq.nsmallest(n, ranked, key=lambda pair: pair[0])]
    if not chosen:
        raise InputNotFoundError(f"no files to benchmark under {', '.join(paths)}")
    return sorted(chosen, key=lambda e: e.path)


def _rank(path: str) -> bytes:
    return hashlib.blake2b(os.fsencode(path), digest_size=8).digest()


def warm_page_cache(files: Iterable[Entry]) -> None:
    """Read every file once, so each tool after this reads from memory."""
    for entry in files:
        try:
            with open(entry.path, "rb", buffering=0) as fp:
                while fp.read(1 << 20):
                    pass
        except OSError:
            pass  # the tools will report the file


# ---------------------------------------------------------------- measuring


class _PeakSampler(threading.Thread):
    """Polls the peak RSS (VmHWM where Linux has it) of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.parent = 0
        self.workers = 0
        self.cpu: dict[int, float] = {}  # pid -> user + system seconds, last seen
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_INTERVAL)

    def sample(self) -> None:
        ps = self._psutil
        try:
            self.parent = max(self.parent, _peak_rss(self.root))
            self.cpu[self.root.pid] = _cpu_seconds(self.root)
            for child in self.root.children(recursive=True):
                self.workers = max(self.workers, _peak_rss(child))
                self.cpu[child.pid] = _cpu_seconds(child)
        except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
            pass

    def still_running(self) -> int:
        """Children seen during the run that outlived the process that started them."""
        ps = self._psutil
        alive = 0
        for pid in self.cpu:
            if pid == self.root.pid:
                continue
            try:
                alive += ps.Process(pid).status() != ps.STATUS_ZOMBIE
            except ps.NoSuchProcess:
                pass
        return alive

    @property
    def worker_cpu(self) -> float:
        return sum(t for pid, t in self.cpu.items() if pid != self.root.pid)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _cpu_seconds(proc: Any) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _peak_rss(proc: Any) -> int:
    """Highest RSS the process reached so far (bytes): VmHWM, else the current RSS."""
    try:
        with open(f"/proc/{proc.pid}/status", "rb") as fp:
            for line in fp:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return proc.memory_info().rss


@dataclass
class Measured:
    seconds: float
    parent_rss: int | None  # bytes, max over the commands' top processes
    worker_rss: int | None  # bytes, max over their descendants
    returncodes: list[int]
    stdout: bytes
    stderr: bytes
    parent_cpu: float | None = None  # CPU seconds (user + system), sampled
    worker_cpu: float | None = None
    lingering: int = 0  # child processes still running after their parent exited


def measure(commands: Sequence[Sequence[str]], stdout_path: str | None = None) -> Measured:
    """Run ``commands`` one after the other; wall time and peak memory of the whole.

    stdout goes to ``stdout_path`` (appended) when given, otherwise it is kept.
    Output goes through files, not pipes, and the clock stops when each command's
    own process exits: a child it leaves behind holding the pipes open would
    otherwise be timed too (such children are counted in ``lingering``).
    """
    try:
        import psutil  # noqa: F401 - only to know whether memory can be sampled
        sampling = True
    except ImportError:
        sampling = False
    parent = workers = lingering = 0
    parent_cpu = worker_cpu = 0.0
    codes: list[int] = []
    seconds = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sink = open(stdout_path, "ab") if stdout_path else out
        try:
            for argv in commands:
                started = time.perf_counter()
                proc = subprocess.Popen(argv, stdout=sink, stderr=err)
                sampler = _PeakSampler(proc.pid) if sampling else None
                if sampler:
                    sampler.start()
                codes.append(proc.wait())
                seconds += time.perf_counter() - started
                if sampler:
                    sampler.stop()
                    parent, workers = max(parent, sampler.parent), max(workers, sampler.workers)
                    parent_cpu += sampler.cpu.get(proc.pid, 0.0)
                    worker_cpu += sampler.worker_cpu
                    lingering += sampler.still_running()
        finally:
            if sink is not out:
                sink.close()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return Measured(seconds, parent if sampling else None,
                    (workers or None) if sampling else None, codes, stdout, stderr,
                    round(parent_cpu, 2) if sampling else None,
                    round(worker_cpu, 2) if sampling else None, lingering)


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


# ---------------------------------------------------------------- the tools


def has_tags_option() -> bool:
    """Whether this fastdump's ``dump`` has ``--tags`` (selective tags)."""
    result = subprocess.run([sys.executable, "-m", "fastdump", "dump", "--help"],
                            capture_output=True, text=True)
    return "--tags" in result.stdout


def run_fastdump(target: Target, work: str, jobs: int, tags: Sequence[str] | None = None,
                 name: str | None = None) -> Row:
    """``fastdump dump`` on the target: on its directory if it has one, else on the list."""
    out = tempfile.mkdtemp(prefix="fastdump-", dir=work)
    argv = [sys.executable, "-m", "fastdump", "dump", "-o", out, "--jobs", str(jobs),
            "--no-progress"]
    if target.root:
        argv.insert(4, target.root)
    else:
        argv += ["--files-from", _list_file(target, work)]
    if tags:
        argv += ["--tags", ",".join(tags)]
    m = measure([argv])
    label = name or f"fastdump --jobs {jobs}" + (f" --tags ({len(tags)} tags)" if tags else "")
    row = _row(label, target, m)
    try:
        with open(os.path.join(out, "summary.json"), "rb") as fp:
            summary = orjson.loads(fp.read())
        row.errors = summary.get("errors")
        row.extra["summary_seconds"] = summary.get("seconds")
        row.extra["fallbacks"] = summary.get("fallbacks")
        row.extra["fallback_reasons"] = summary.get("fallback_reasons")
    except (OSError, orjson.JSONDecodeError):
        row.note = _failure(m)
    shutil.rmtree(out, ignore_errors=True)
    return row


def run_loop(kind: str, target: Target, work: str, label: str) -> Row:
    """A pure-pydicom baseline loop, in a process of its own (see :func:`_loop_main`)."""
    out = tempfile.mkdtemp(prefix=f"{kind}-", dir=work)
    argv = [sys.executable, "-m", "fastdump.bench", kind, _list_file(target, work), out]
    m = measure([argv])
    row = _row(label, target, m)
    try:
        report = orjson.loads(m.stdout.splitlines()[-1])
        row.errors = report["errors"]
        # Timed inside the loop: the interpreter's start and imports are not
        # counted, which only flatters the baselines.
        row.extra["wall_seconds"] = row.seconds
        row.seconds = round(report["seconds"], 6)
    except (IndexError, KeyError, orjson.JSONDecodeError):
        row.note = _failure(m)
    shutil.rmtree(out, ignore_errors=True)
    return row


def run_dcmdump(target: Target, work: str, exe: str) -> Row:
    """``dcmdump +sb 7fe0,0010`` (everything before Pixel Data), 500 files per call."""
    paths = [e.path for e in target.files]
    calls = [[exe, "+sb", "7fe0,0010", *paths[i:i + DCMDUMP_FILES_PER_CALL]]
             for i in range(0, len(paths), DCMDUMP_FILES_PER_CALL)]
    out = os.path.join(work, "dcmdump.txt")
    m = measure(calls, stdout_path=out)
    row = _row(DCMDUMP, target, m)
    # dcmdump exits 1 when any file of a call is bad, and says "E: ..." once for each
    # file it cannot read: those are its errors, as fastdump's are; only a crash fails the row.
    row.errors = sum(1 for line in m.stderr.splitlines() if line.startswith(b"E: "))
    if all(code >= 0 for code in m.returncodes):
        row.note = ""
    os.unlink(out)
    return row


def run_gdcmscanner(target: Target, work: str, exe: str) -> Row:
    """``gdcmscanner -r -p`` for the six tags, on the target's directory."""
    if not target.root:
        return Row(GDCMSCANNER, len(target.files), target.bytes, 0.0, note="n/a: needs a directory")
    argv = [exe, "-r", "-p", "-d", target.root]
    for keyword in SIX_TAGS:
        argv += ["-t", _gdcm_tag(keyword)]
    out = os.path.join(work, "gdcmscanner.txt")
    m = measure([argv], stdout_path=out)
    row = _row(GDCMSCANNER, target, m)
    if any(m.returncodes):
        row.note = _failure(m)
    os.unlink(out)
    return row


def _gdcm_tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise OptionError(f"unknown DICOM keyword {keyword!r}")
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def _row(label: str, target: Target, m: Measured) -> Row:
    row = Row(label, len(target.files), target.bytes, round(m.seconds, 4),
              parent_rss_mb=_mb(m.parent_rss), worker_rss_mb=_mb(m.worker_rss))
    if m.parent_cpu is not None:
        # where the time goes: a busy parent limits what more workers can add
        row.extra.update(parent_cpu_s=m.parent_cpu, worker_cpu_s=m.worker_cpu)
    if m.lingering:
        row.extra["lingering_children"] = m.lingering
    if any(m.returncodes):
        row.note = _failure(m)
    return row


def _failure(m: Measured) -> str:
    last = (m.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
    return f"exit {max(m.returncodes, key=abs)}: {last[:120]}"


def _list_file(target: Target, work: str) -> str:
    """The target's paths, one a line, in a file named after them (targets may differ)."""
    digest = hashlib.blake2b(digest_size=8)
    for entry in target.files:
        digest.update(os.fsencode(entry.path) + b"\n")
    path = os.path.join(work, f"files-{digest.hexdigest()}.txt")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as fp:
            fp.writelines(f"{e.path}\n" for e in target.files)
    return path


# ---------------------------------------------------------------- the table


def add_ratios(rows: list[Row]) -> list[Row]:
    """Fill ``x_tojson`` and ``x_dcmdump`` (files/s ratios) where both sides were measured."""
    base = {r.tool: r.files_per_s for r in rows if r.seconds > 0 and not r.note}
    for row in rows:
        if row.seconds > 0 and not row.note:
            if base.get(TOJSON):
                row.x_tojson = round(row.files_per_s / base[TOJSON], 2)
            if base.get(DCMDUMP):
                row.x_dcmdump = round(row.files_per_s / base[DCMDUMP], 2)
    return rows


COLUMNS = ("tool", "files", "seconds", "files/s", "files/s min–max", "MB/s", "parent RSS MB",
           "worker RSS MB", "errors", "x to_json_dict", "x dcmdump")


def fallback_note(rows: Sequence[Row]) -> str | None:
    """How many files fastdump left to the pydicom path, and why (from its summary.json)."""
    for row in rows:
        reasons = row.extra.get("fallback_reasons")
        if row.extra.get("fallbacks") is not None and reasons is not None:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
            return (f"{row.tool}: {row.extra['fallbacks']} of {row.files} files read through "
                    f"the pydicom path instead of the fast path" + (f" ({why})" if why else ""))
    return None


def workers_note(rows: Sequence[Row]) -> str | None:
    """Say so when a fastdump row on several workers started none (its sample was small).

    Only where memory was sampled (psutil): a row with a parent RSS but no
    worker RSS saw no child process in any of its runs.
    """
    for row in rows:
        parallel = row.tool.startswith("fastdump --jobs ") and row.tool != "fastdump --jobs 1"
        if parallel and not row.note and row.parent_rss_mb is not None \
                and row.worker_rss_mb is None:
            return (f"{row.tool}: started no worker: fastdump read the sample in its own process, "
                    f"as it does any run it finishes sooner than workers would (up to ~3 s); "
                    f"a larger --sample times its workers")
    return None


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """The rows as an aligned text table (or a Markdown table)."""
    cells = [COLUMNS] + [_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|")
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join(_line(line, widths) for line in cells)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
    parts = [cells[0].ljust(widths[0]), *rest]
    return "  ".join(parts).rstrip()


def _cells(r: Row) -> tuple[str, ...]:
    if r.note and (r.note.startswith("n/a") or r.seconds <= 0):
        return (f"{r.tool} [{r.note}]", str(r.files), "n/a") + ("",) * (len(COLUMNS) - 3)

    def num(x: float | None, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)
    tool = r.tool + (f" [{r.note}]" if r.note else "")
    workers = "-" if r.worker_rss_mb is None else f"{r.worker_rss_mb:.0f}"  # no child processes
    spread = r.files_per_s_range
    return (tool, str(r.files), f"{r.seconds:.2f}", f"{r.files_per_s:,.0f}",
            "" if spread is None else f"{spread[0]:,.0f}–{spread[1]:,.0f}", f"{r.mb_per_s:,.1f}",
            num(r.parent_rss_mb, ".0f"), workers,
            "" if r.errors is None else str(r.errors),
            num(r.x_tojson, ".2f"), num(r.x_dcmdump, ".2f"))


# ---------------------------------------------------------------- fastdump bench


def run_bench(
    paths: Sequence[str | os.PathLike],
    *,
    sample: int = 2000,
    jobs: int | None = None,
    dcmdump: bool = True,
    runs: int = 5,
    log: Callable[[str], None] | None = None,
) -> list[Row]:
    """Benchmark fastdump against a pydicom loop (and dcmdump) on a sample of ``paths``.

    Returns one :class:`Row` per tool, ratios filled in: its median over
    ``runs`` runs, the tools alternated. ``jobs`` is the worker count of the
    parallel run (default: all cores; -1 all, -2 all but one, as for
    ``dump``). Temporary output is removed before returning, whatever happens.
    """
    say = log or (lambda _msg: None)
    jobs = resolve_jobs(jobs)
    if runs < 1:
        raise OptionError(f"--runs must be at least 1, not {runs}")
    files = sample_files([os.fspath(p) for p in paths], sample)
    target = Target(tuple(files))
    say(f"sample: {len(files)} files, {target.bytes / 1e6:.1f} MB; warming the page cache")
    warm_page_cache(files)
    steps: list[tuple[str, Callable[[str], Row]]] = [
        (IO_FLOOR, lambda w: run_loop("io", target, w, IO_FLOOR)),
        ("fastdump --jobs 1", lambda w: run_fastdump(target, w, 1)),
        (f"fastdump --jobs {jobs}", lambda w: run_fastdump(target, w, jobs)),
        (TOJSON, lambda w: run_loop("tojson", target, w, TOJSON)),
    ]
    if jobs == 1:  # (the same run twice, before)
        del steps[2]
    exe = shutil.which("dcmdump") if dcmdump else None
    if exe:
        steps.append((DCMDUMP, lambda w: run_dcmdump(target, w, exe)))
    rounds: list[list[Row]] = []
    work = tempfile.mkdtemp(prefix="fastdump-bench-")
    try:
        for n in range(1, runs + 1):
            rounds.append([])
            for label, step in steps:
                say(f"run {n} of {runs}: {label}")
                rounds[-1].append(step(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return add_ratios([combine_runs(list(same)) for same in zip(*rounds, strict=True)])


def combine_runs(rows: list[Row]) -> Row:
    """One tool's runs as one row: the median time and its range, the peak memory.

    A tool that failed in any run is shown failed, with its first failure: a
    median of the runs that worked would hide it.
    """
    failed = [r for r in rows if r.note or r.seconds <= 0]
    if failed:
        row = failed[0]
        if len(rows) > 1 and not row.note.startswith("n/a"):
            row.note = f"failed in {len(failed)} of {len(rows)} runs: {row.note}"
        return row
    times = [r.seconds for r in rows]
    last = rows[-1]
    return Row(last.tool, last.files, last.bytes, statistics.median(times),
               errors=last.errors,
               parent_rss_mb=_peak(r.parent_rss_mb for r in rows),
               worker_rss_mb=_peak(r.worker_rss_mb for r in rows),
               extra=last.extra, runs=len(rows), seconds_min=min(times), seconds_max=max(times))


def _peak(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


# ---------------------------------------------------------------- the baseline loops


def _loop_main(argv: Sequence[str]) -> int:
    """``python -m fastdump.bench KIND LIST OUT``: one baseline loop over the files in LIST.

    Prints ``{"files": n, "errors": e, "seconds": s}`` as its last line, ``s``
    being the time spent in the loop itself.
    """
    import warnings

    kind, list_path, out = argv
    with open(list_path, encoding="utf-8", errors="surrogateescape") as fp:
        paths = [line.rstrip("\n") for line in fp if line.strip()]
    loop = {"io": _io_loop, "tojson": _tojson_loop, "notebook": _notebook_loop}[kind]
    if kind != "io":
        import pydicom  # noqa: F401 - imported before the clock starts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        errors = loop(paths, out)
        seconds = time.perf_counter() - started
    print(orjson.dumps({"files": len(paths), "errors": errors, "seconds": seconds}).decode())
    return 0


def _io_loop(paths: list[str], out: str) -> int:
    """The I/O floor: open each file and read its first 64 KB."""
    errors = 0
    for path in paths:
        try:
            with open(path, "rb") as fp:
                fp.read(65536)
        except OSError:
            errors += 1
    return errors


def _tojson_loop(paths: list[str], out: str) -> int:
    """What one writes without fastdump: dcmread, to_json_dict, orjson, one line per file."""
    import pydicom

    errors = 0
    with open(os.path.join(out, "dump.jsonl"), "wb") as sink:
        for path in paths:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                sink.write(orjson.dumps({"path": path, "dataset": ds.to_json_dict()}) + b"\n")
            except Exception:  # noqa: BLE001 - a bad file is counted, as fastdump does
                errors += 1
    return errors


def _notebook_loop(paths: list[str], out: str) -> int:
    """The seed notebook's loop, verbatim in spirit: full dcmread, ds.dir(), one file per input."""
    import re

    import pydicom

    errors = 0
    for i, path in enumerate(paths):
        try:
            ds = pydicom.dcmread(path)
            with open(os.path.join(out, f"{i}_tags.txt"), "w") as f:
                for key in ds.dir():
                    value = getattr(ds, key, "")
                    if type(value) is pydicom.sequence.Sequence:
                        s = str(value[0]) if len(value) else ""
                        print(re.findall(r"\(.*?\)", s), file=f)
                    else:
                        print(ds.data_element(key).tag, file=f)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - the notebook would stop; we count and go on
            errors += 1
    return errors


if __name__ == "__main__":
    sys.exit(_loop_main(sys.argv[1:]))
