"""Tables from results.jsonl records, and the README sections they fill.

Every figure in a table is the median of the timed runs with, in brackets,
their min–max; ratios are ratios of medians. Nothing here runs a benchmark:
tables can be redrawn from results.jsonl at any time (``python
benchmarks/run.py --report-only``).
"""

from __future__ import annotations

from pathlib import Path

import orjson

SCHEMA = 2  # records of the alternated-median harness; older lines are another format
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SUITE_ORDER = ("ct", "mix", "onefile", "scaling", "s3", "resume")
SUITE_TITLES = {
    "ct": "CT archive (issue 10 a)",
    "mix": "Small-files mix: pydicom's test files (issue 10 b)",
    "onefile": "One file (issue 10 c)",
    "scaling": "--jobs 2 against --jobs 1, and memory against archive size (issue 10 d)",
    "s3": "S3 behind a latency (issue 11)",
    "resume": "--resume over an unchanged archive (issue 11)",
}


# ---------------------------------------------------------------- records


def load(path: Path) -> list[dict]:
    """Every record of results.jsonl written by this harness (older formats skipped)."""
    if not path.exists():
        return []
    records = (orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return [r for r in records if r.get("schema") == SCHEMA]


def latest(records: list[dict], quick: bool = False) -> list[dict]:
    """The most recent record of each suite (only --quick ones, or none of them), in order."""
    found: dict[str, dict] = {}
    for rec in records:
        if bool(rec.get("quick")) == quick:
            found[rec["suite"]] = rec
    return [found[s] for s in SUITE_ORDER if s in found]


# ---------------------------------------------------------------- cells


def number(x: float | None, unit: str = "") -> str:
    """A figure at a precision its noise deserves."""
    if x is None:
        return "n/a"
    if unit == "s":
        text = f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:,.1f}"
    elif unit == "MB":
        text = f"{x:,.1f}"
    else:
        text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"
    return text


def stat_cell(stats: dict | None, unit: str = "") -> str:
    """``median (min–max) unit`` of a metric's runs."""
    if not stats:
        return "n/a"
    suffix = f" {unit}" if unit else ""
    if stats["min"] == stats["max"]:
        return f"{number(stats['median'], unit)}{suffix}"
    return (f"{number(stats['median'], unit)}{suffix} "
            f"({number(stats['min'], unit)}–{number(stats['max'], unit)})")


UNITS = {"files_per_s": "files/s", "seconds": "s", "parent_rss_mb": "MB"}


def _met(check: dict) -> str:
    return {True: "**yes**", False: "**no**", None: "—"}[check["met"]]


def _side_cell(side: dict | None) -> str:
    if side is None:
        return "—"
    cell = stat_cell(side["stats"], UNITS.get(side["metric"], ""))
    if side["metric"] == "parent_rss_mb":  # compared across archive sizes: say which
        cell += f" at {side['files']:,} files"
    return cell


def _md(header: list[str], rows: list[list[str]], right_from: int = 1) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < right_from else "---:" for i in range(len(header)))
             + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- tables


def targets_table(records: list[dict]) -> str:
    """One row per target of issues 10 and 11: fastdump, its peer, ratio, target, met?"""
    rows = []
    for rec in records:
        for c in rec["checks"]:
            if c["kind"] == "info":  # a sweep's other rows: in the suite's own table
                continue
            peer = c["peer"]["name"] if c["peer"] else "—"
            rows.append([c["what"], c["fastdump"]["name"], _side_cell(c["fastdump"]), peer,
                         _side_cell(c["peer"]), c["shown_value"], c["target"], _met(c)])
    header = ["check", "fastdump", "median (min–max)", "peer", "median (min–max)",
              "fastdump / peer", "target", "met?"]
    return _md(header, rows, right_from=5)


def contenders_table(record: dict) -> str:
    """Every tool of a suite: the command, files/s and seconds, memory, CPU, errors."""
    rows = []
    for c in record["contenders"]:
        st = c["stats"]
        if not st["seconds"]:
            rows.append([c["name"], f"`{c['shown']}`", f"{c['files']:,}",
                         "failed: " + "; ".join(c["failures"])[:120]] + [""] * 5)
            continue
        cpu = "n/a"
        if st["parent_cpu_s"]:
            workers = (number(st["worker_cpu_s"]["median"], "s") if st["worker_rss_mb"]
                       else "-")  # a tool without child processes
            cpu = f"{number(st['parent_cpu_s']['median'], 's')} / {workers}"
        rows.append([c["name"], f"`{c['shown']}`", f"{c['files']:,}",
                     stat_cell(st["files_per_s"]), stat_cell(st["seconds"], "s"),
                     stat_cell(st["parent_rss_mb"], "MB"),
                     stat_cell(st["worker_rss_mb"], "MB") if st["worker_rss_mb"] else "-",
                     cpu, "" if c["errors"] is None else str(c["errors"])])
    header = ["tool", "command", "files", "files/s", "seconds", "parent peak RSS",
              "worker peak RSS", "CPU s parent / workers", "errors"]
    return _md(header, rows, right_from=2)


def s3_table(record: dict) -> str:
    """files/s per latency: fastdump, the 64-thread baseline, their ratio."""
    rows = []
    for c in record["checks"]:
        delay = c["fastdump"]["group"]
        rows.append([delay, stat_cell(c["fastdump"]["stats"]), stat_cell(c["peer"]["stats"]),
                     c["shown_value"], c["target"], _met(c)])
    header = ["delay per request", "fastdump files/s", "baseline files/s",
              "fastdump / baseline", "target", "met?"]
    return _md(header, rows)


def resume_table(record: dict) -> str:
    """Per archive size: resume time, time per unchanged file, parent peak, growth per file.

    Time and memory per file are given two ways: the whole run over its files
    (start-up included), and what the files added since the previous size cost.
    """
    rows, previous = [], None
    first = record.get("first_dumps", {})
    for c in record["contenders"]:
        st = c["stats"]
        seconds, rss = st["seconds"], st["parent_rss_mb"]
        per_file = f"{seconds['median'] / c['files'] * 1e6:,.1f}" if seconds else "n/a"
        marginal = grow = "—"
        if previous and seconds and previous[1]:
            added = c["files"] - previous[0]
            marginal = f"{(seconds['median'] - previous[1]['median']) / added * 1e6:,.1f}"
        if previous and rss and previous[2]:
            added_bytes = (rss["median"] - previous[2]["median"]) * 2**20
            grow = f"{added_bytes / (c['files'] - previous[0]):+,.0f}"
        f = first.get(str(c["files"]), {})
        dumped = (f"{number(f.get('seconds'), 's')} s, {number(f.get('parent_rss_mb'), 'MB')} MB"
                  if not f.get("cached", True) else "(cached)")
        rows.append([f"{c['files']:,}", stat_cell(seconds, "s"), per_file, marginal,
                     stat_cell(rss, "MB"), grow, dumped])
        previous = (c["files"], seconds, rss)
    header = ["files", "--resume wall time", "µs per unchanged file (whole run)",
              "µs per file added since the previous size", "parent peak RSS",
              "B/file added since the previous size", "first dump (wall, parent RSS)"]
    return _md(header, rows)


# ---------------------------------------------------------------- the README blocks


def header(records: list[dict]) -> str:
    """Where, with what and how the figures were taken (one line per distinct run)."""
    lines = []
    runs: dict[str, list[str]] = {}
    for rec in records:
        runs.setdefault(rec["run_id"], []).append(rec["suite"])
    for run_id, suites in runs.items():
        rec = next(r for r in records if r["run_id"] == run_id)
        m = rec["machine"]
        version = (m.get("fastdump_version_output") or f"fastdump {m['fastdump']}")
        version = version.replace("\n", "; ")
        lines.append(
            f"Run `{run_id}` ({', '.join(suites)}), {rec['date'][:10]}: {m['cpu']}, "
            f"{m['cores']} cores, {m['ram_gib']} GiB; Python {m['python']}, pydicom "
            f"{m['pydicom']}, `{version}`, commit {m['git_commit']}; DCMTK "
            f"{_short(m.get('dcmtk'))}, GDCM {_short(m.get('gdcm'))}. "
            f"{rec['runs']} timed runs per tool, alternated, after {rec['warmup']} warm-up "
            f"round(s); median (min–max). Command: `{rec['command']}`")
    return "\n\n".join(lines)


def _short(version: str | None) -> str:
    if not version:
        return "n/a"
    for word in version.replace("$", " ").split():
        if word[:1] in "v0123456789" and any(ch.isdigit() for ch in word):
            return word.lstrip("v")
    return version


def summary_block(records: list[dict]) -> str:
    """The root README's block: the targets, each next to its peer."""
    if not records:
        return "No results yet: run `python benchmarks/run.py`."
    return "\n\n".join([header(records), targets_table(records),
                        "Every suite, every tool and how they are run: "
                        "[benchmarks/README.md](benchmarks/README.md)."])


def full_block(records: list[dict]) -> str:
    """benchmarks/README.md's block: the targets, then each suite's own table."""
    if not records:
        return "No results yet: run `python benchmarks/run.py`."
    parts = [header(records), "**Targets**", targets_table(records)]
    for rec in records:
        parts.append(f"**{SUITE_TITLES.get(rec['suite'], rec['suite'])}**")
        parts.append(suite_table(rec))
    return "\n\n".join(parts)


def suite_table(record: dict) -> str:
    if record["suite"] == "s3":
        return s3_table(record) + "\n\n" + contenders_table(record)
    if record["suite"] == "resume":
        return resume_table(record)
    return contenders_table(record)


def rewrite_marked(path: Path, block: str, start: str = START, end: str = END) -> bool:
    """Replace what lies between the markers in ``path`` with ``block``; False if no markers."""
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text.split(start, 1)[1]:
        return False
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n{block}\n{end}{after}", encoding="utf-8")
    return True
