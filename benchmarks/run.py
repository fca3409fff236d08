"""fastdump against the tools people use instead, timed as a user runs them.

    python benchmarks/run.py                        # every suite: the published run
    python benchmarks/run.py --suite ct,onefile     # some suites
    python benchmarks/run.py --quick                # tiny sizes, 2 runs: a smoke test
    python benchmarks/run.py --runs 9               # more runs per tool (default 5)
    python benchmarks/run.py --report-only          # redraw tables and plot from results.jsonl

Suites: ct, mix, onefile, scaling, s3, resume (see benchmarks/README.md). Each
suite's tools are run alternated (A B A B ...), every run a whole process
(start-up included) on a warm page cache; tables give medians and min–max.
Archives are built once into --workdir (default /tmp/fastdump-bench) and reused.

A run appends one line per suite to benchmarks/results.jsonl (every run of every
tool, the machine, tool versions, git commit and this command), then rewrites
the marked sections of README.md and benchmarks/README.md from the latest
record of each suite and redraws benchmarks/results.png. A --quick run writes
only into --workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shlex
import sys
import uuid
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import suites  # noqa: E402
from harness import machine_info, say  # noqa: E402

RESULTS = HERE / "results.jsonl"
PLOT = HERE / "results.png"
READMES = (HERE / "README.md", HERE.parent / "README.md")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        publish(args)
        return 0
    settings = suites.Settings(workdir=args.workdir, runs=args.runs, warmup=args.warmup,
                               sizes=_sizes(args),
                               seed=args.seed, log=say)
    run_id = f"{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    command = " ".join(["python", "benchmarks/run.py", *map(shlex.quote, args.argv)])
    machine = machine_info()
    args.workdir.mkdir(parents=True, exist_ok=True)
    records = []
    for name in args.suite:
        say(f"suite {name}")
        record = run_suite(name, settings, run_id=run_id, quick=args.quick, command=command,
                           machine=machine)
        records.append(record)
        print(f"\n## {report.SUITE_TITLES[name]}\n\n{report.suite_table(record)}\n", flush=True)
        if not args.no_save:
            with open(args.results, "ab") as fp:
                fp.write(orjson.dumps(record) + b"\n")
    print("\n## Targets\n\n" + report.targets_table(records) + "\n")
    if not args.no_save:
        publish(args)
    return 0


def run_suite(name: str, settings: suites.Settings, **about) -> dict:
    """One suite, with what results.jsonl keeps about the run around it."""
    load_before = os.getloadavg()[0]  # other work on a shared machine skews every row
    started = dt.datetime.now().astimezone()
    body = suites.SUITES[name](settings)
    return {"schema": report.SCHEMA, "run_id": about["run_id"], "suite": name,
            "quick": about["quick"], "date": started.isoformat(timespec="seconds"),
            "command": about["command"], "argv": [sys.executable, *sys.argv],
            "machine": about["machine"], "runs": settings.runs, "warmup": settings.warmup,
            "seed": settings.seed,
            "load_avg_1min": {"before": round(load_before, 2),
                              "after": round(os.getloadavg()[0], 2)},
            **body}


def publish(args: argparse.Namespace) -> None:
    """Tables into the READMEs (not for --quick) and the plot, from results.jsonl."""
    records = report.latest(report.load(args.results), quick=args.quick)
    if not records:  # never wipe the published figures with nothing
        say(f"no results of this harness in {args.results}: nothing to publish")
        return
    if not args.quick:
        for path, block in zip(READMES, (report.full_block(records),
                                         report.summary_block(records)), strict=True):
            if report.rewrite_marked(path, block):
                say(f"rewrote the results section of {path}")
    import plot

    out = args.workdir / "results-quick.png" if args.quick else PLOT
    try:
        if plot.draw(records, out):
            say(f"drew {out}")
    except ImportError as exc:  # matplotlib comes with the [bench] extra only
        say(f"no plot: {exc}")


def _sizes(args: argparse.Namespace) -> suites.Sizes:
    sizes = suites.QUICK if args.quick else suites.FULL
    if args.s3_objects is not None:
        sizes = dataclasses.replace(sizes, s3_objects=args.s3_objects)
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=",".join(suites.SUITES),
                   help=f"comma-separated suites (default: all: {','.join(suites.SUITES)})")
    p.add_argument("--quick", action="store_true",
                   help="tiny archives and 2 runs: a smoke test of a few minutes; results go "
                        "to WORKDIR/results-quick.jsonl, never into the READMEs")
    p.add_argument("--runs", type=int, default=None, metavar="N",
                   help="timed runs per tool (default 5; 2 with --quick)")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="untimed rounds before them (default 1; 0 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--s3-objects", type=int, default=None, metavar="N",
                   help="objects of the s3 suite (default 300): more shows how start-up "
                        "weighs against the per-object cost")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/fastdump-bench"),
                   help="archives and scratch output (default /tmp/fastdump-bench)")
    p.add_argument("--results", type=Path, default=None,
                   help="results file (default benchmarks/results.jsonl)")
    p.add_argument("--no-save", action="store_true",
                   help="print only: no results line, README rewrite or plot")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite the READMEs and the plot from the results file")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    args.suite = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(args.suite) - set(suites.SUITES))
    if unknown:
        p.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(suites.SUITES)}")
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be at least 1 and --warmup at least 0")
    if args.results is None:
        args.results = args.workdir / "results-quick.jsonl" if args.quick else RESULTS
    return args


if __name__ == "__main__":
    sys.exit(main())
