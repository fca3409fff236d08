"""benchmarks/results.png from benchmarks/results.jsonl (the latest full run).

    python benchmarks/plot.py            # redraw without running anything
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent


def latest_run(records: list[dict]) -> list[dict]:
    """The records of the most recent run that was not --quick (else the most recent)."""
    full = [r for r in records if not r.get("quick")] or records
    if not full:
        return []
    run_id = full[-1]["run_id"]
    return [r for r in full if r["run_id"] == run_id]


def measured(record: dict) -> list[dict]:
    return [d for d in record["rows"] if d["seconds"] > 0 and not d["note"]]


def draw(records: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = latest_run(records)
    if not run:
        return
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    _per_tool(axes[0][0], run)
    _jobs(axes[0][1], run)
    _time_vs_size(axes[1][0], run)
    _memory_vs_size(axes[1][1], run)
    m = run[-1]["machine"]
    fig.suptitle(f"fastdump {m['fastdump']} ({m['git_commit']}) — {m['cpu']}, {m['cores']} cores, "
                 f"Python {m['python']}, pydicom {m['pydicom']} — {run[-1]['date'][:10]}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _label(record: dict) -> str:
    a = record["archive"]
    return f"{a['files']:,} files" + (" (tiny pixels)" if a["tiny_pixels"] else "")


def _per_tool(ax, run: list[dict]) -> None:
    """files/s of every tool on the largest archive with real pixel payloads."""
    normal = [r for r in run if not r["archive"]["tiny_pixels"]] or run
    record = max(normal, key=lambda r: r["archive"]["files"])
    rows = sorted(measured(record), key=lambda d: d["files_per_s"])
    names = [d["tool"] for d in rows]
    speeds = [d["files_per_s"] for d in rows]
    colors = ["tab:orange" if n.startswith("fastdump") else "tab:gray" for n in names]
    ax.barh(names, speeds, color=colors)
    ax.set_xscale("log")
    for y, v in enumerate(speeds):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    ax.set_xlabel("files/s (log scale)")
    ax.set_title(f"Throughput per tool — {_label(record)}, warm cache", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)


def _jobs(ax, run: list[dict]) -> None:
    """fastdump files/s against worker count, per archive and mode."""
    for record in run:
        for tags in (False, True):
            points = sorted(
                (_jobs_of(d["tool"]), d["files_per_s"]) for d in measured(record)
                if d["tool"].startswith("fastdump") and ("--tags" in d["tool"]) == tags
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", linestyle="--" if tags else "-",
                        label=f"{'--tags 6' if tags else 'full dump'}, {_label(record)}")
    ax.set_xlabel("--jobs")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("files/s")
    ax.set_title("fastdump scaling with worker processes", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _jobs_of(tool: str) -> int:
    return int(tool.split("--jobs ")[1].split()[0])


def _by_tool(run: list[dict], key: str) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for record in run:
        for d in measured(record):
            if d["tool"].startswith("fastdump") and d.get(key) is not None:
                series.setdefault(d["tool"], []).append((record["archive"]["files"], d[key]))
    return series


def _time_vs_size(ax, run: list[dict]) -> None:
    for tool, points in _by_tool(run, "seconds").items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("archive size (files; the largest has tiny pixels)")
    ax.set_ylabel("seconds (log)")
    lo, hi = ax.get_xlim()
    first = min((min(p) for p in _by_tool(run, "seconds").values()), default=None)
    if first:  # where a linear time would be, from the smallest archive's slowest row
        xs = [first[0], hi]
        ax.plot(xs, [first[1] * x / first[0] for x in xs], color="k", linestyle=":",
                linewidth=0.8, label="linear (slope 1)")
    ax.set_title("Time against archive size", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _memory_vs_size(ax, run: list[dict]) -> None:
    for tool, points in _by_tool(run, "parent_rss_mb").items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=f"{tool}: parent")
    for tool, points in _by_tool(run, "worker_rss_mb").items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="x", linestyle=":", label=f"{tool}: worker")
    ax.set_xscale("log")
    ax.set_ylim(0, max(ax.get_ylim()[1] * 1.25, 1))
    ax.set_xlabel("archive size (files)")
    ax.set_ylabel("peak RSS, MB")
    ax.set_title("Peak memory against archive size", fontsize=10)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)


def main() -> int:
    path = HERE / "results.jsonl"
    records = [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    draw(records, HERE / "results.png")
    print(f"drew {HERE / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
