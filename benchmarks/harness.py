"""Timing machinery shared by the suites: alternated whole-process runs and their statistics.

Every measurement is one command (or a few, one after the other) started as a
user starts it, timed by wall clock from ``Popen`` to exit: interpreter start,
imports and worker start-up included. Peak memory is sampled with psutil
(``VmHWM`` of the process started, and the largest among its descendants) by
:func:`fastdump.bench.measure`.

Tools are alternated, A B C A B C ..., so that a slow minute on a shared
machine hits every tool alike, and each is repeated; tables give the median
and the min–max of the repeats, never the fastest run alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastdump.bench import Measured, measure

HERE = Path(__file__).resolve().parent


@dataclass
class Sample:
    """One timed run of one contender."""

    seconds: float
    parent_rss_mb: float | None = None
    worker_rss_mb: float | None = None
    parent_cpu_s: float | None = None
    worker_cpu_s: float | None = None
    errors: int | None = None  # files the tool reported it could not read
    failed: str = ""  # why this run does not count ("" when it does)


# judge(scratch dir, measurement) -> (errors, failure reason or "")
Judge = Callable[[Path, Measured], tuple[int | None, str]]


@dataclass(eq=False)  # two contenders are the same only if they are one object
class Contender:
    """A tool as run in one suite: how to start it and how to tell that it did its job."""

    name: str  # row label, e.g. "fastdump --jobs 1"
    shown: str  # the command as a user types it, e.g. "fastdump dump ARCHIVE -o OUT --jobs 1"
    commands: Callable[[Path], list[list[str]]]  # scratch dir -> argv of each process to run
    files: int  # files (or objects) it handles: files/s is files / seconds
    nbytes: int = 0
    judge: Judge | None = None
    stdout_to_file: bool = False  # dump tools print their output: into a file, as a user would
    group: str = ""  # which archive or setting it belongs to, for tables
    env: dict[str, str | None] | None = None  # environment changes (None unsets)
    samples: list[Sample] = field(default_factory=list)


def schedule(contenders: int, runs: int, warmup: int = 0) -> list[tuple[int, int, bool]]:
    """(round, contender index, timed) in running order: A B C A B C ...

    ``warmup`` untimed rounds come first (the tools' own files, caches and
    .pyc files get warm, as they are for a user's second run).
    """
    return [(r, i, r >= warmup) for r in range(warmup + runs) for i in range(contenders)]


def run_alternating(contenders: Sequence[Contender], runs: int, warmup: int, work: Path,
                    log: Callable[[str], None]) -> None:
    """Run every contender ``runs`` times, alternating; samples go to ``contender.samples``."""
    work.mkdir(parents=True, exist_ok=True)
    for rnd, index, timed in schedule(len(contenders), runs, warmup):
        c = contenders[index]
        sample = run_once(c, work)
        state = sample.failed or f"{c.files / max(sample.seconds, 1e-9):,.0f} files/s"
        log(f"  {'round ' + str(rnd - warmup + 1) if timed else 'warm-up'}: {c.name}: "
            f"{sample.seconds:.3f} s, {state}")
        if timed:
            c.samples.append(sample)


# As in a user's shell: Python caches compiled modules (a sandbox or CI may turn that off
# with PYTHONDONTWRITEBYTECODE, and every start of a Python tool would then compile its
# sources again: ~0.1 s per fastdump process). The warm-up round writes the caches.
USER_ENV: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": None}


def run_once(c: Contender, work: Path) -> Sample:
    """One run of ``c`` in a fresh scratch directory, removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        sink = str(scratch / "stdout.txt") if c.stdout_to_file else None
        with environ(**USER_ENV, **(c.env or {})):
            m = measure(c.commands(scratch), stdout_path=sink)
        errors, failed = c.judge(scratch, m) if c.judge else (None, exit_status(m))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Sample(round(m.seconds, 4), _mb(m.parent_rss), _mb(m.worker_rss), m.parent_cpu,
                  m.worker_cpu, errors, failed)


def exit_status(m: Measured) -> str:
    """Why a run whose commands must all exit 0 failed ("" if they did)."""
    if not any(m.returncodes):
        return ""
    last = (m.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
    return f"exit {max(m.returncodes, key=abs)}: {last[:160]}"


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


# ---------------------------------------------------------------- statistics


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """Median, min and max of the repeats (None when nothing was measured)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def contender_stats(c: Contender) -> dict:
    """The statistics of a contender's successful runs, per metric."""
    ok = [s for s in c.samples if not s.failed]
    per_metric = {
        "files_per_s": [c.files / s.seconds for s in ok if s.seconds > 0],
        "seconds": [s.seconds for s in ok],
        "parent_rss_mb": [s.parent_rss_mb for s in ok if s.parent_rss_mb is not None],
        "worker_rss_mb": [s.worker_rss_mb for s in ok if s.worker_rss_mb is not None],
        "parent_cpu_s": [s.parent_cpu_s for s in ok if s.parent_cpu_s is not None],
        "worker_cpu_s": [s.worker_cpu_s for s in ok if s.worker_cpu_s is not None],
    }
    return {k: summarize(v) for k, v in per_metric.items()}


def contender_record(c: Contender) -> dict:
    """What results.jsonl keeps of a contender: every run, and the statistics."""
    failures = sorted({s.failed for s in c.samples if s.failed})
    errors = [s.errors for s in c.samples if s.errors is not None]
    return {"name": c.name, "shown": c.shown, "group": c.group, "files": c.files,
            "bytes": c.nbytes, "samples": [asdict(s) for s in c.samples],
            "stats": contender_stats(c), "errors": max(errors) if errors else None,
            "failures": failures}


# ---------------------------------------------------------------- the machine


def fastdump_command() -> list[str]:
    """``fastdump`` as installed next to this Python (the console script a user runs)."""
    script = Path(sys.executable).with_name("fastdump")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fastdump"]


def machine_info() -> dict:
    """Where and with what the figures were taken."""
    import pydicom

    import fastdump

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "fastdump": fastdump.__version__,
        # verbatim: a build may say there which hot path (compiled or pure Python) it uses
        "fastdump_version_output": _output([*fastdump_command(), "--version"]),
        "fastdump_source": source_digest(),
        "git_commit": git_commit(),
        "dcmtk": _first_line(["dcmdump", "--version"]),
        "gdcm": _first_line(["gdcmscanner", "--version"]),
        "boto3": _module_version("boto3"),
        "moto": _module_version("moto"),
        "s3fs": _module_version("s3fs"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def git_commit() -> str | None:
    """HEAD of the repository the benchmarks live in, ``+dirty`` with uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                              capture_output=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=HERE, text=True, capture_output=True).stdout.strip()
    except OSError:
        return None
    return f"{head}{'+dirty' if dirty else ''}" if head else None


def source_digest() -> str:
    """A hash of the fastdump package that runs (its .py and compiled files).

    Cached outputs made by fastdump itself (the resume suite's first dumps) are
    reused only by the same code.
    """
    import fastdump

    root = Path(fastdump.__file__).resolve().parent
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".so", ".pyd") and path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _output(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (result.stdout or result.stderr).strip() or None


def _first_line(argv: list[str]) -> str | None:
    if not shutil.which(argv[0]):
        return None
    text = _output(argv)
    return text.splitlines()[0].strip("$ ") if text else None


def _module_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- small helpers


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def warm_page_cache(paths: Sequence[str]) -> None:
    """Read every file once, so that every tool after this reads from memory."""
    for path in paths:
        with contextlib.suppress(OSError), open(path, "rb", buffering=0) as fp:
            while fp.read(1 << 20):
                pass


def files_under(root: str | os.PathLike) -> list[str]:
    """Every regular file under ``root``, sorted as a walk would list them."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found.extend(os.path.join(folder, n) for n in sorted(names))
    return found


def write_list(paths: Sequence[str], dest: Path) -> Path:
    """``paths`` one a line in ``dest`` (for the loops that take a list of files)."""
    dest.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8",
                    errors="surrogateescape")
    return dest


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the commands started inside."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
