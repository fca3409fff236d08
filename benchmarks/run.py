"""fastdump against the alternatives, on generated archives of growing size.

    python benchmarks/run.py                # 1,000 / 10,000 / 100,000 files (the last tiny)
    python benchmarks/run.py --quick        # a few hundred files, about a minute
    python benchmarks/run.py --sizes 2000   # one archive of 2,000 files

For each size: generates the archive (benchmarks/generate.py, seeded; kept in
--workdir between runs), reads every file once to warm the page cache, then runs
every tool on the same files, one after the other. Appends one JSON line per
archive (rows + machine info) to benchmarks/results.jsonl, redraws
benchmarks/results.png and rewrites the "latest results" table in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import generate  # noqa: E402
import pydicom  # noqa: E402

import fastdump  # noqa: E402
from fastdump import bench  # noqa: E402
from fastdump.walk import Entry, walk  # noqa: E402

RESULTS = HERE / "results.jsonl"
PLOT = HERE / "results.png"
README = HERE / "README.md"
START, END = "<!-- latest-results:start -->", "<!-- latest-results:end -->"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = f"{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    machine = machine_info()
    records = []
    for files in args.sizes:
        tiny = args.tiny_pixels or files >= args.tiny_from
        root = ensure_archive(Path(args.workdir), files, tiny, args.seed)
        record = bench_archive(root, files, tiny, args)
        record.update(run_id=run_id, quick=args.quick, machine=machine,
                      command="python benchmarks/run.py " + " ".join(sys.argv[1:]))
        records.append(record)
        print(f"\n## {files:,} files{' (tiny pixels)' if tiny else ''}\n")
        print(bench.format_table(rows_of(record)), flush=True)
        if not args.no_save:
            with open(args.results, "ab") as fp:
                fp.write(orjson.dumps(record) + b"\n")
        if not args.keep:
            shutil.rmtree(root)
            marker(root).unlink(missing_ok=True)
    print("\n" + scaling_table(records))
    print("\n" + criteria(records, args.jobs))
    if not args.no_save:
        import plot  # matplotlib, only here

        plot.draw(load(args.results), PLOT)
        if not args.quick:  # a quick run is a smoke test, not the figures to show
            update_readme(records, args.jobs)
        print(f"\nappended to {args.results}; drew {PLOT}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000",
                   help="archive sizes in files, comma-separated (default 1000,10000,100000)")
    p.add_argument("--quick", action="store_true", help="one archive of 300 files")
    p.add_argument("--tiny-from", type=int, default=100_000, metavar="N",
                   help="archives of N files or more get tiny pixels (default 100000)")
    p.add_argument("--tiny-pixels", action="store_true", help="tiny pixels for every size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="workers of the parallel fastdump runs (default: all cores)")
    p.add_argument("--baseline-max", type=int, default=None, metavar="N",
                   help="run the slow single-process baselines (pydicom loops, dcmdump) on a "
                        "fixed sample of N files when the archive is larger (default: all files)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run each tool N times and keep the fastest (default 1)")
    p.add_argument("--workdir", default="/tmp/fastdump-bench",
                   help="where archives are generated (default /tmp/fastdump-bench)")
    p.add_argument("--keep", action="store_true", help="keep the generated archives")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--no-save", action="store_true",
                   help="print only: no results.jsonl line, plot or README update")
    args = p.parse_args(argv)
    args.sizes = [300] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",")]
    return args


# ---------------------------------------------------------------- archives


def marker(root: Path) -> Path:
    return root.with_name(root.name + ".json")


def ensure_archive(workdir: Path, files: int, tiny: bool, seed: int) -> Path:
    """The archive for (files, tiny, seed), generated unless a complete one is there."""
    root = workdir / f"archive-{files}{'-tiny' if tiny else ''}-seed{seed}"
    wanted = {"files": files, "tiny": tiny, "seed": seed}
    if marker(root).exists() and orjson.loads(marker(root).read_bytes()) == wanted:
        print(f"reusing {root}", file=sys.stderr)
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"generating {files:,} files into {root}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    generate.generate(root, files, seed=seed, tiny_pixels=tiny)
    print(f"generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    marker(root).write_bytes(orjson.dumps(wanted))
    return root


def bench_archive(root: Path, files: int, tiny: bool, args: argparse.Namespace) -> dict:
    entries = tuple(e for e in walk([str(root)]) if isinstance(e, Entry))
    target = bench.Target(entries, root=str(root))
    say(f"{len(entries):,} files, {target.bytes / 1e6:,.0f} MB: warming the page cache")
    bench.warm_page_cache(entries)
    baseline = target
    if args.baseline_max and len(entries) > args.baseline_max:
        step = len(entries) / args.baseline_max
        baseline = bench.Target(tuple(entries[int(i * step)] for i in range(args.baseline_max)))
    rows = []
    load_before = os.getloadavg()[0]  # other work on the machine skews every row
    work = Path(args.workdir) / "out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        for label, step_fn in steps(target, baseline, args.jobs):
            say(f"running {label}")
            row = best_of(step_fn, str(work), args.repeat)
            if baseline is not target and row.files == len(baseline.files):
                row.extra["sample_of"] = len(entries)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bench.add_ratios(rows)
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "archive": {"files": len(entries), "bytes": target.bytes, "tiny_pixels": tiny,
                    "seed": args.seed, "generated_files": files},
        "load_avg_1min": {"before": round(load_before, 2),
                          "after": round(os.getloadavg()[0], 2)},
        "rows": [r.to_dict() for r in rows],
    }


def best_of(step_fn, work: str, repeat: int) -> bench.Row:
    """The fastest of ``repeat`` runs (a shared machine only ever slows a run down)."""
    runs = [step_fn(work) for _ in range(repeat)]
    best = min(runs, key=lambda r: (bool(r.note), r.seconds))
    if repeat > 1:
        best.extra["all_seconds"] = [r.seconds for r in runs]
    return best


def steps(target: bench.Target, baseline: bench.Target, jobs: int):
    tags = bench.has_tags_option()
    yield bench.IO_FLOOR, lambda w: bench.run_loop("io", target, w, bench.IO_FLOOR)
    for j in sorted({1, jobs}):
        yield f"fastdump --jobs {j}", lambda w, j=j: bench.run_fastdump(target, w, j)
    for j in sorted({1, jobs}):
        label = f"fastdump --jobs {j} --tags ({len(bench.SIX_TAGS)} tags)"
        if tags:
            yield label, lambda w, j=j, label=label: bench.run_fastdump(
                target, w, j, tags=bench.SIX_TAGS, name=label)
        else:
            yield label, lambda w, label=label: bench.Row(
                label, len(target.files), target.bytes, 0.0,
                note="n/a: this fastdump has no --tags")
    yield bench.TOJSON, lambda w: bench.run_loop("tojson", baseline, w, bench.TOJSON)
    yield bench.NOTEBOOK, lambda w: bench.run_loop("notebook", baseline, w, bench.NOTEBOOK)
    for name, label, fn in (("dcmdump", bench.DCMDUMP, bench.run_dcmdump),
                            ("gdcmscanner", bench.GDCMSCANNER, bench.run_gdcmscanner)):
        exe = shutil.which(name)
        on = baseline if name == "dcmdump" else target
        if exe:
            yield label, lambda w, fn=fn, exe=exe, on=on: fn(on, w, exe)
        else:
            yield label, lambda w, label=label, on=on, name=name: bench.Row(
                label, len(on.files), on.bytes, 0.0, note=f"n/a: {name} not installed")


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- results


def machine_info() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "fastdump": fastdump.__version__,
        "git_commit": _git_commit(),
        "dcmtk": _first_line(["dcmdump", "--version"]),
        "gdcm": _first_line(["gdcmscanner", "--version"]),
    }


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                              capture_output=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               text=True, capture_output=True).stdout.strip()
    except OSError:
        return None
    return f"{head}{'+dirty' if dirty else ''}" if head else None


def _first_line(argv: list[str]) -> str | None:
    if not shutil.which(argv[0]):
        return None
    result = subprocess.run(argv, capture_output=True, text=True)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip("$ ") if lines else None


def rows_of(record: dict) -> list[bench.Row]:
    rows = []
    for d in record["rows"]:
        d = {k: v for k, v in d.items() if k not in ("files_per_s", "mb_per_s")}
        rows.append(bench.Row(**d))
    return rows


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def scaling_table(records: list[dict]) -> str:
    """fastdump's time and parent memory per archive size: linear time, flat memory."""
    lines = ["| archive | fastdump | seconds | µs/file | files/s | parent RSS MB | worker RSS MB "
             "| parent CPU s | workers CPU s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for rec in records:
        a = rec["archive"]
        for d in rec["rows"]:
            if d["tool"].startswith("fastdump") and d["seconds"] > 0 and not d["note"]:
                cpu = d["extra"]
                lines.append(
                    f"| {a['files']:,}{' tiny' if a['tiny_pixels'] else ''} "
                    f"| {d['tool'].removeprefix('fastdump ')} | {d['seconds']:.1f} "
                    f"| {d['seconds'] / a['files'] * 1e6:,.0f} | {d['files_per_s']:,.0f} "
                    f"| {d['parent_rss_mb']} | {d['worker_rss_mb']} "
                    f"| {cpu.get('parent_cpu_s', '')} | {cpu.get('worker_cpu_s', '')} |")
    return "\n".join(lines)


def criteria(records: list[dict], jobs: int) -> str:
    """Issue 3's "done when" figures, as measured by this run."""
    def fps(rec: dict, tool: str) -> float | None:
        for d in rec["rows"]:
            if d["tool"] == tool and d["seconds"] > 0 and not d["note"]:
                return d["files_per_s"]
        return None

    def rss(rec: dict) -> float | None:
        return next((d["parent_rss_mb"] for d in rec["rows"]
                     if d["tool"] == f"fastdump --jobs {jobs}" and not d["note"]), None)

    lines = []
    for rec in records:
        one, many = fps(rec, "fastdump --jobs 1"), fps(rec, f"fastdump --jobs {jobs}")
        tags = fps(rec, f"fastdump --jobs 1 --tags ({len(bench.SIX_TAGS)} tags)")
        checks = [("--jobs 1 / dcmdump", one, fps(rec, bench.DCMDUMP), 1.0),
                  ("--jobs 1 / to_json_dict loop", one, fps(rec, bench.TOJSON), 8.0),
                  ("--tags (6) / full dump, --jobs 1", tags, one, 5.0),
                  (f"--jobs {jobs} / --jobs 1", many, one, 1.5)]
        parts = [_check(name, a, b, goal) for name, a, b, goal in checks]
        a = rec["archive"]
        lines.append(f"- {a['files']:,} files{' (tiny)' if a['tiny_pixels'] else ''}: "
                     + "; ".join(parts))
    if len(records) > 1:
        small = min(records, key=lambda r: r["archive"]["files"])
        large = max(records, key=lambda r: r["archive"]["files"])
        lines.append("- peak parent RSS, " + _check(
            f"{large['archive']['files']:,} / {small['archive']['files']:,} files",
            rss(large), rss(small), 1.5, at_most=True))
    return "\n".join(lines)


def _check(name: str, a: float | None, b: float | None, goal: float, at_most: bool = False) -> str:
    if not a or not b:
        return f"{name}: n/a"
    ratio = a / b
    ok = ratio <= goal if at_most else ratio >= goal
    return f"{name} = {ratio:.2f} ({'≤' if at_most else '≥'} {goal:g}: {'yes' if ok else 'NO'})"


def update_readme(records: list[dict], jobs: int) -> None:
    """Rewrite the block between the markers of benchmarks/README.md with this run."""
    if not README.exists():
        return
    m = records[-1]["machine"]
    parts = [
        f"Run `{records[-1]['run_id']}`, {records[-1]['date'][:10]}: {m['cpu']}, {m['cores']} "
        f"cores, {m['ram_gib']} GiB, Python {m['python']}, pydicom {m['pydicom']}, "
        f"fastdump {m['fastdump']} ({m['git_commit']}).",
        f"Command: `{records[-1]['command']}`",
    ]
    for rec in records:
        a = rec["archive"]
        sample = {d["extra"].get("sample_of") for d in rec["rows"]} - {None}
        head = f"**{a['files']:,} files, {a['bytes'] / 1e6:,.0f} MB"
        head += " (tiny pixels)**" if a["tiny_pixels"] else "**"
        if sample:
            head += (f" — the single-process baselines ran on an evenly spaced sample of "
                     f"{min(d['files'] for d in rec['rows'])} of its files")
        parts += [head, bench.format_table(rows_of(rec), markdown=True)]
    parts += ["**Scaling** (time should grow linearly, parent memory stay flat):",
              scaling_table(records),
              "**Issue 3's targets**, as measured here:", criteria(records, jobs)]
    text = README.read_text()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        README.write_text(before + START + "\n" + "\n\n".join(parts) + "\n" + END + after)


if __name__ == "__main__":
    sys.exit(main())
