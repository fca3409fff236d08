"""The benchmark suites: what runs against what, on which archive, and the targets.

Each suite builds (or reuses) its archives, warms the page cache, runs its
contenders alternated (:func:`harness.run_alternating`) and returns a record:
every run of every contender, their statistics, and the checks of issues 10
and 11. ``SUITES`` maps the names ``--suite`` takes to them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import archives
import checks
import orjson
from harness import (
    Contender,
    Measured,
    contender_record,
    environ,
    exit_status,
    fastdump_command,
    files_under,
    measure,
    run_alternating,
    source_digest,
    warm_page_cache,
    write_list,
)

HERE = Path(__file__).resolve().parent
SIX_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "Modality",
            "InstanceNumber")
DCMDUMP_FILES_PER_CALL = 500  # as `xargs -n 500 dcmdump` would
PARALLEL_JOBS = 2


@dataclass(frozen=True)
class Sizes:
    """How big each suite's archives are: the published run's, or --quick's."""

    ct: int = 5_000
    mix: int = 3_000
    scaling: tuple[int, ...] = (10_000, 100_000)
    s3_objects: int = 300
    s3_delays_ms: tuple[int, ...] = (0, 30, 100)
    resume: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    # the parent's memory, --jobs 2: 100 times more files, so that 20 bytes per file
    # (20 MB) stands out of the few MB one command's peak varies by from run to run
    memory: tuple[int, int] = (10_000, 1_000_000)
    # benchmarks/spin.py's work, in one process and in PARALLEL_JOBS: about as long as
    # fastdump --jobs 1 on the smaller scaling archive (~2-3 s of one core)
    spin_units: int = 400


FULL = Sizes()
QUICK = Sizes(ct=200, mix=300, scaling=(300, 1_500), s3_objects=30,
              resume=(300, 1_000, 3_000), memory=(300, 3_000), spin_units=20)


@dataclass
class Settings:
    workdir: Path
    runs: int
    warmup: int
    sizes: Sizes
    seed: int
    log: Callable[[str], None]

    @property
    def scratch(self) -> Path:
        return self.workdir / "scratch"


# ---------------------------------------------------------------- contenders


def fastdump_dump(name: str, target: str, files: int, *extra: str, group: str = "",
                  nbytes: int = 0, judge_resume: bool = False,
                  out: Path | None = None) -> Contender:
    """``fastdump dump TARGET -o OUT EXTRA...``: OUT is new for every run unless given."""
    fd = fastdump_command()

    def commands(scratch: Path) -> list[list[str]]:
        return [[*fd, "dump", target, "-o", str(out or scratch / "out"), *extra]]

    def judge(scratch: Path, m: Measured) -> tuple[int | None, str]:
        return _judge_summary(out or scratch / "out", m, files, judge_resume)

    shown = " ".join(["fastdump dump", "ARCHIVE", "-o OUT", *extra])
    return Contender(name, shown, commands, files, nbytes, judge, group=group)


def spin(processes: int, units: int) -> Contender:
    """benchmarks/spin.py: ``units`` of pure-Python work in ``processes`` processes at once."""
    argv = [sys.executable, str(HERE / "spin.py"), str(units), str(processes)]
    plural = "es" if processes > 1 else ""
    return Contender(f"pure Python, {processes} process{plural} ({units} units of work)",
                     f"python benchmarks/spin.py {units} {processes}", lambda scratch: [argv],
                     units, group="this machine")


def _judge_summary(out: Path, m: Measured, files: int, resume: bool) -> tuple[int | None, str]:
    """fastdump did its job: exit 0, and its summary accounts for every file."""
    failed = exit_status(m)
    try:
        summary = orjson.loads((out / "summary.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None, failed or "no summary.json"
    if summary.get("files") != files:
        failed = failed or f"saw {summary.get('files')} files, not {files}"
    if resume and summary.get("unchanged") != files:
        failed = failed or f"{summary.get('unchanged')} unchanged, not {files}: files were read"
    return summary.get("errors"), failed


def dcmdump(name: str, paths: list[str], *options: str, group: str = "",
            nbytes: int = 0) -> Contender:
    """DCMTK's ``dcmdump OPTIONS FILE...``, ``DCMDUMP_FILES_PER_CALL`` files per process."""
    exe = shutil.which("dcmdump") or "dcmdump"
    calls = [[exe, *options, *paths[i:i + DCMDUMP_FILES_PER_CALL]]
             for i in range(0, len(paths), DCMDUMP_FILES_PER_CALL)]

    def judge(scratch: Path, m: Measured) -> tuple[int | None, str]:
        # dcmdump exits 1 when a file of the call is bad and says "E: ..." for it: those are
        # its errors, as fastdump's are; only a crash (a signal) fails the run.
        errors = sum(1 for line in m.stderr.splitlines() if line.startswith(b"E: "))
        crashed = [c for c in m.returncodes if c < 0]
        return errors, f"killed by signal {-crashed[0]}" if crashed else ""

    shown = " ".join(["dcmdump", *options, "FILE..." if len(paths) > 1 else "ONEFILE"])
    return Contender(name, shown, lambda _s: calls, len(paths), nbytes, judge,
                     stdout_to_file=True, group=group)


def gdcmscanner(name: str, root: str, files: int, group: str = "",
                nbytes: int = 0) -> Contender:
    """GDCM's ``gdcmscanner -r -p -d ARCHIVE -t TAG...`` for the six tags."""
    from pydicom.datadict import tag_for_keyword

    exe = shutil.which("gdcmscanner") or "gdcmscanner"
    argv = [exe, "-r", "-p", "-d", root]
    for keyword in SIX_TAGS:  # the same tags as fastdump's --tags, as gggg,eeee
        tag = tag_for_keyword(keyword)
        argv += ["-t", f"{tag >> 16:04x},{tag & 0xFFFF:04x}"]
    shown = "gdcmscanner -r -p -d ARCHIVE -t TAG (x 6)"
    return Contender(name, shown, lambda _s: [argv], files, nbytes, None,
                     stdout_to_file=True, group=group)


def loop(name: str, kind: str, list_path: Path, files: int, group: str = "",
         nbytes: int = 0) -> Contender:
    """One of benchmarks/loops.py's loops, as a script of its own."""
    script = str(HERE / "loops.py")

    def judge(scratch: Path, m: Measured) -> tuple[int | None, str]:
        try:
            report = orjson.loads(m.stdout.splitlines()[-1])
        except (IndexError, orjson.JSONDecodeError):
            return None, exit_status(m) or "no report"
        return report["errors"], exit_status(m)

    return Contender(name, f"python benchmarks/loops.py {kind} LIST OUT",
                     lambda s: [[sys.executable, script, kind, str(list_path), str(s)]],
                     files, nbytes, judge, group=group)


# ---------------------------------------------------------------- suites


def ct_suite(s: Settings) -> dict:
    """(a) the CT archive: full dump against dcmdump, 6 tags against gdcmscanner, the loops."""
    root = archives.generated(s.workdir, s.sizes.ct, s.seed, tiny=False, log=s.log)
    paths = files_under(root)
    nbytes = sum(os.path.getsize(p) for p in paths)
    listing = write_list(paths, s.workdir / f"list-{root.name}.txt")
    n = len(paths)
    tags = ("--tags", ",".join(SIX_TAGS))
    fd1 = fastdump_dump("fastdump --jobs 1", str(root), n, "--jobs", "1", nbytes=nbytes)
    fd_tags = fastdump_dump("fastdump --jobs 1 --tags (6 tags)", str(root), n, "--jobs", "1",
                            *tags, nbytes=nbytes)
    fd_tags.shown = "fastdump dump ARCHIVE -o OUT --jobs 1 --tags SIX_TAGS"
    fd_all = fastdump_dump(f"fastdump (all {os.cpu_count()} cores)", str(root), n, nbytes=nbytes)
    dd = dcmdump("dcmdump +sb 7fe0,0010", paths, "+sb", "7fe0,0010", nbytes=nbytes)
    gs = gdcmscanner("gdcmscanner, 6 tags", str(root), n, nbytes=nbytes)
    contenders = [fd1, dd, fd_tags, gs, fd_all,
                  loop("dcmread + to_json_dict loop", "tojson", listing, n, nbytes=nbytes),
                  loop("notebook loop (dcmread + ds.dir())", "notebook", listing, n,
                       nbytes=nbytes),
                  loop("I/O floor (open + read 64 KB)", "io", listing, n, nbytes=nbytes)]
    contenders = [c for c in contenders if _tool_present(c)]
    warm_page_cache(paths)
    _run(s, contenders)
    result = []
    if dd in contenders:
        result.append(checks.ratio(f"CT archive, {n:,} files: full dump, --jobs 1 vs dcmdump",
                                   fd1, dd, 2.0))
    if gs in contenders:
        result.append(checks.ratio(f"CT archive, {n:,} files: 6 tags, --jobs 1 --tags vs "
                                   "gdcmscanner", fd_tags, gs, 1.0))
    return _record("ct", {"ct": _archive_info(root, n, nbytes)}, contenders, result)


def mix_suite(s: Settings) -> dict:
    """(b) many small files of every kind: pydicom's test files, replicated."""
    root = archives.mix(s.workdir, s.sizes.mix, s.log)
    paths = files_under(root)
    nbytes = sum(os.path.getsize(p) for p in paths)
    n = len(paths)
    fd1 = fastdump_dump("fastdump --jobs 1", str(root), n, "--jobs", "1", nbytes=nbytes)
    dd = dcmdump("dcmdump +sb 7fe0,0010", paths, "+sb", "7fe0,0010", nbytes=nbytes)
    contenders = [c for c in (fd1, dd) if _tool_present(c)]
    warm_page_cache(paths)
    _run(s, contenders)
    result = []
    if dd in contenders:
        result.append(checks.ratio(f"small-files mix, {n:,} files: --jobs 1 vs dcmdump",
                                   fd1, dd, 1.0))
    return _record("mix", {"mix": _archive_info(root, n, nbytes)}, contenders, result)


def onefile_suite(s: Settings) -> dict:
    """(c) one file, as someone looking at one header runs it: start-up is the whole cost."""
    root = archives.generated(s.workdir, s.sizes.ct, s.seed, tiny=False, log=s.log)
    one = archives.ct_images(root, 1)[0]
    size = os.path.getsize(one)
    fd = fastdump_dump("fastdump dump ONEFILE -o OUT", one, 1, nbytes=size)
    fd.shown = "fastdump dump ONEFILE -o OUT"
    dd = dcmdump("dcmdump ONEFILE", [one], nbytes=size)
    contenders = [c for c in (fd, dd) if _tool_present(c)]
    warm_page_cache([one])
    _run(s, contenders)
    peer = dd if dd in contenders else None
    result = [checks.ceiling("one CT file: wall time of fastdump dump ONEFILE -o OUT "
                             "vs dcmdump ONEFILE", fd, peer, 0.25)]
    return _record("onefile", {"onefile": {"path": one, "bytes": size}}, contenders, result)


def scaling_suite(s: Settings) -> dict:
    """(d) --jobs 2 against --jobs 1 (tiny pixels), and the parent's memory against archive
    size (10^4 to 10^6 files of hard links, --jobs 2)."""
    roots = [archives.generated(s.workdir, n, s.seed, tiny=True, log=s.log)
             for n in s.sizes.scaling]
    contenders, infos, by_size = [], {}, []
    for root in roots:
        paths = files_under(root)
        n, nbytes = len(paths), sum(os.path.getsize(p) for p in paths)
        group = f"{n:,} files (tiny pixels)"
        pair = [fastdump_dump(f"fastdump --jobs {j}, {n:,} files", str(root), n, "--jobs",
                              str(j), group=group, nbytes=nbytes) for j in (1, PARALLEL_JOBS)]
        contenders += pair
        by_size.append((n, pair))
        infos[root.name] = _archive_info(root, n, nbytes)
        warm_page_cache(paths)
    memory = []
    for n in s.sizes.memory:
        root = archives.links(s.workdir, n, s.log)
        memory.append(fastdump_dump(f"fastdump --jobs {PARALLEL_JOBS}, {n:,} links", str(root),
                                    n, "--jobs", str(PARALLEL_JOBS), group=f"{n:,} links"))
        infos[root.name] = _links_info(root, n)
    machine = [spin(j, s.sizes.spin_units) for j in (1, PARALLEL_JOBS)]
    _run(s, contenders + machine + memory)
    result = [checks.ratio(f"{n:,} files (tiny pixels): --jobs {PARALLEL_JOBS} vs --jobs 1",
                           many, one, 1.7) for n, (one, many) in by_size]
    result.append(checks.machine(
        f"this machine: the same pure-Python work in {PARALLEL_JOBS} processes vs 1 "
        f"(the most --jobs {PARALLEL_JOBS} vs --jobs 1 can reach here)", machine[1], machine[0]))
    small, large = memory[0], memory[-1]
    result.append(checks.growth(
        f"parent peak RSS, --jobs {PARALLEL_JOBS}, {small.files:,} → {large.files:,} files "
        "(hard links): flat", small, large, 20.0))
    return _record("scaling", infos, contenders + machine + memory, result)


def resume_suite(s: Settings) -> dict:
    """Issue 11: --resume over an unchanged archive, 10^4 to 10^6 files of hard links."""
    contenders, infos, first = [], {}, {}
    for n in s.sizes.resume:
        root = archives.links(s.workdir, n, s.log)
        out, first[str(n)] = _first_dump(s, root, n)
        infos[root.name] = _links_info(root, n)
        contenders.append(fastdump_dump(f"fastdump --resume, {n:,} files", str(root), n,
                                        "--resume", group=f"{n:,}", out=out,
                                        judge_resume=True))
        contenders[-1].shown = "fastdump dump ARCHIVE -o OUT --resume"
    _run(s, contenders)
    small, large = contenders[0], contenders[-1]
    result = [checks.growth(f"--resume, unchanged archive: parent peak RSS, {small.files:,} → "
                            f"{large.files:,} files", small, large, 20.0)]
    record = _record("resume", infos, contenders, result)
    record["first_dumps"] = first
    return record


def _links_info(root: Path, files: int) -> dict:
    return {"path": str(root), "files": files, "sources": list(archives.LINK_SOURCES)}


def _first_dump(s: Settings, root: Path, files: int) -> tuple[Path, dict]:
    """The run that --resume then finds complete; redone whenever fastdump's code changed."""
    out = s.workdir / "resume" / f"out-{root.name}"
    measured: dict = {"cached": True}

    def build(dest: Path) -> None:
        m = measure([[*fastdump_command(), "dump", str(root), "-o", str(dest), "--no-progress"]])
        if any(m.returncodes):
            raise SystemExit(f"first dump of {root} failed: {exit_status(m)}")
        measured.update(cached=False, seconds=round(m.seconds, 2),
                        parent_rss_mb=round((m.parent_rss or 0) / 2**20, 1))

    spec = {"archive": orjson.loads(archives.marker(root).read_bytes()),
            "fastdump_source": source_digest()}
    archives.cached(out, spec, build, s.log)
    return out, measured


def s3_suite(s: Settings) -> dict:
    """Issue 11: an S3 archive behind a latency, fastdump against 64 threads of ranged GETs."""
    import s3suite

    root = archives.generated(s.workdir, s.sizes.ct, s.seed, tiny=False, log=s.log)
    objects = archives.ct_images(root, s.sizes.s3_objects)
    with s3suite.Server(s.workdir, root, objects, s.log) as server:
        contenders = []
        for delay in s.sizes.s3_delays_ms:
            env = server.client_env(delay)
            group = f"{delay} ms"
            fd = fastdump_dump(f"fastdump, {delay} ms", server.url, len(objects), group=group,
                               nbytes=server.nbytes)
            fd.shown = "fastdump dump s3://bucket/prefix/ -o OUT"
            base = s3suite.baseline(f"boto3 64 threads, {delay} ms", server.url, len(objects),
                                    group, server.nbytes)
            for c in (fd, base):
                c.env = env
            contenders += [fd, base]
        with environ(**s3suite.CREDENTIALS):
            _run(s, contenders)
    pairs = list(zip(contenders[::2], contenders[1::2], strict=True))
    result = []
    for delay, (fd, base) in zip(s.sizes.s3_delays_ms, pairs, strict=True):
        what = f"S3, {len(objects)} CT objects, {delay} ms per request: fastdump vs baseline"
        result.append(checks.ratio(what, fd, base, 0.7) if delay == max(s.sizes.s3_delays_ms)
                      else checks.info(what, fd, base))
    info = {"s3": {"objects": len(objects), "bytes": server.nbytes,
                   "delays_ms": list(s.sizes.s3_delays_ms)}}
    return _record("s3", info, contenders, result)


SUITES: dict[str, Callable[[Settings], dict]] = {
    "ct": ct_suite,
    "mix": mix_suite,
    "onefile": onefile_suite,
    "scaling": scaling_suite,
    "s3": s3_suite,
    "resume": resume_suite,
}


# ---------------------------------------------------------------- helpers


def _tool_present(c: Contender) -> bool:
    """Peers missing from PATH are left out (and say so), rather than failing the suite."""
    for name in ("dcmdump", "gdcmscanner"):
        if c.name.startswith(name) and not shutil.which(name):
            print(f"{name} not on PATH: its rows are left out", file=sys.stderr)
            return False
    return True


def _run(s: Settings, contenders: list[Contender]) -> None:
    s.log(f"{len(contenders)} contenders, {s.warmup} warm-up round(s), {s.runs} timed, "
          "alternated")
    run_alternating(contenders, s.runs, s.warmup, s.scratch, s.log)
    shutil.rmtree(s.scratch, ignore_errors=True)


def _archive_info(root: Path, files: int, nbytes: int) -> dict:
    return {"path": str(root), "files": files, "bytes": nbytes}


def _record(suite: str, archive_info: dict, contenders: list[Contender],
            result: list[dict]) -> dict:
    return {"suite": suite, "archives": archive_info,
            "contenders": [contender_record(c) for c in contenders], "checks": result}
