"""benchmarks/results.png from benchmarks/results.jsonl: the latest record of each suite.

    python benchmarks/plot.py            # redraw without running anything

Bars and points are medians of the alternated runs; the whiskers span min–max.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402

PANELS = ("ct", "mix", "onefile", "scaling", "s3", "resume")


def draw(records: list[dict], out: Path) -> bool:
    """Draw one panel per suite found in ``records``; False when there is nothing to draw."""
    if not records:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_suite = {r["suite"]: r for r in records}
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    for ax, suite in zip(axes.flat, PANELS, strict=True):
        rec = by_suite.get(suite)
        if rec is None:
            ax.text(0.5, 0.5, f"{suite}: not run", ha="center", va="center")
            ax.set_axis_off()
            continue
        DRAW[suite](ax, rec)
        ax.set_title(report.SUITE_TITLES[suite], fontsize=9)
    m = records[-1]["machine"]
    fig.suptitle(f"{m.get('fastdump_version_output') or 'fastdump ' + m['fastdump']} "
                 f"({m['git_commit']}) — {m['cpu']}, {m['cores']} cores — "
                 f"{records[-1]['date'][:10]} — medians, whiskers min–max", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def _measured(rec: dict) -> list[dict]:
    return [c for c in rec["contenders"] if c["stats"]["seconds"]]


def _whiskers(stats: dict) -> list[float]:
    return [stats["median"] - stats["min"], stats["max"] - stats["median"]]


def _bars(ax, rec: dict, metric: str, label: str, log: bool = False,
          by_value: bool = True) -> None:
    """One horizontal bar per tool, fastdump's in orange (sorted, or in running order)."""
    rows = _measured(rec)[::-1]  # barh draws from the bottom up
    if by_value:
        rows = sorted(rows, key=lambda c: c["stats"][metric]["median"])
    names = [c["name"] for c in rows]
    medians = [c["stats"][metric]["median"] for c in rows]
    errors = list(zip(*(_whiskers(c["stats"][metric]) for c in rows), strict=True)) or None
    colors = ["tab:orange" if n.startswith("fastdump") else "tab:gray" for n in names]
    ax.barh(names, medians, xerr=errors, color=colors, capsize=3)
    if log:
        ax.set_xscale("log")
    for y, v in enumerate(medians):
        ax.text(v, y, f" {report.number(v, 's' if metric == 'seconds' else '')}",
                va="center", fontsize=7)
    ax.set_xlabel(label)
    ax.tick_params(axis="y", labelsize=7)


def _ct(ax, rec: dict) -> None:
    _bars(ax, rec, "files_per_s", "files/s (log scale)", log=True)


def _mix(ax, rec: dict) -> None:
    _bars(ax, rec, "files_per_s", "files/s", by_value=False)


def _onefile(ax, rec: dict) -> None:
    _bars(ax, rec, "seconds", "wall seconds for one file", by_value=False)
    ax.axvline(0.25, color="k", linestyle=":", linewidth=1, label="target ≤ 0.25 s")
    ax.legend(fontsize=7)


def _scaling(ax, rec: dict) -> None:
    # benchmarks/spin.py's runs count units of work, not files: they are in the tables
    files = [c for c in rec["contenders"] if c.get("group") != "this machine"]
    _bars(ax, {**rec, "contenders": files}, "files_per_s", "files/s", by_value=False)


def _s3(ax, rec: dict) -> None:
    for prefix, style, color in (("fastdump", "o-", "tab:orange"), ("boto3", "s--", "tab:gray")):
        rows = [c for c in _measured(rec) if c["name"].startswith(prefix)]
        if not rows:
            continue
        xs = [int(c["group"].split()[0]) for c in rows]
        medians = [c["stats"]["files_per_s"]["median"] for c in rows]
        errors = list(zip(*(_whiskers(c["stats"]["files_per_s"]) for c in rows), strict=True))
        ax.errorbar(xs, medians, yerr=errors, fmt=style, color=color, capsize=3,
                    label="fastdump" if prefix == "fastdump" else "64 threads, ranged GET")
    ax.set_xlabel("delay per request, ms")
    ax.set_ylabel("files/s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _resume(ax, rec: dict) -> None:
    rows = [c for c in _measured(rec) if c["stats"]["parent_rss_mb"]]
    if not rows:
        return
    xs = [c["files"] for c in rows]
    medians = [c["stats"]["parent_rss_mb"]["median"] for c in rows]
    errors = list(zip(*(_whiskers(c["stats"]["parent_rss_mb"]) for c in rows), strict=True))
    ax.errorbar(xs, medians, yerr=errors, fmt="o-", capsize=3, label="parent peak RSS")
    ax.plot(xs, [medians[0] + 20 * (x - xs[0]) / 2**20 for x in xs], "k:", linewidth=1,
            label="target: +20 B/file")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("files in the archive (log scale)")
    ax.set_ylabel("MB")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


DRAW = {"ct": _ct, "mix": _mix, "onefile": _onefile, "scaling": _scaling, "s3": _s3,
        "resume": _resume}


def main() -> int:
    records = report.latest(report.load(HERE / "results.jsonl"))
    if draw(records, HERE / "results.png"):
        print(f"drew {HERE / 'results.png'}")
    else:
        print("nothing to draw: no results of this harness in benchmarks/results.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
