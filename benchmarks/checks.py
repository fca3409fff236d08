"""The issues' targets, evaluated on the medians of alternated runs.

A check compares a fastdump row with its peer (another tool, or fastdump on a
smaller archive) and says whether the target is met. Each check is a plain
dict, stored as such in results.jsonl, from which the tables are drawn.
"""

from __future__ import annotations

from harness import Contender, contender_stats

MIB = 2**20


def _side(c: Contender, metric: str) -> dict:
    return {"name": c.name, "shown": c.shown, "group": c.group, "files": c.files,
            "metric": metric, "stats": contender_stats(c)[metric]}


def _median(side: dict) -> float | None:
    return side["stats"]["median"] if side["stats"] else None


def ratio(what: str, fast: Contender, peer: Contender, at_least: float,
          metric: str = "files_per_s") -> dict:
    """fastdump's median over the peer's median must be at least ``at_least``."""
    a, b = _side(fast, metric), _side(peer, metric)
    value = _median(a) / _median(b) if _median(a) and _median(b) else None
    return {"what": what, "kind": "ratio", "fastdump": a, "peer": b, "value": value,
            "shown_value": "n/a" if value is None else f"{value:.2f}×",
            "target": f"≥ {at_least:g}×", "met": None if value is None else value >= at_least}


def ceiling(what: str, fast: Contender, peer: Contender | None, at_most: float,
            metric: str = "seconds", unit: str = "s") -> dict:
    """fastdump's median must be at most ``at_most``; the peer is shown for scale."""
    a = _side(fast, metric)
    b = _side(peer, metric) if peer else None
    value = _median(a) / _median(b) if b and _median(a) and _median(b) else None
    met = None if _median(a) is None else _median(a) <= at_most
    return {"what": what, "kind": "ceiling", "fastdump": a, "peer": b, "value": value,
            # a ratio of times, not of speeds: lower is better here
            "shown_value": "n/a" if value is None else f"{value:.2f}× the time",
            "target": f"fastdump ≤ {at_most:g} {unit}", "met": met}


def growth(what: str, small: Contender, large: Contender, at_most_bytes: float,
           metric: str = "parent_rss_mb") -> dict:
    """Peak memory added per file from the small archive to the large one (bytes/file)."""
    a, b = _side(large, metric), _side(small, metric)
    files = large.files - small.files
    value = None
    if _median(a) is not None and _median(b) is not None and files > 0:
        value = (_median(a) - _median(b)) * MIB / files
    return {"what": what, "kind": "growth", "fastdump": a, "peer": b, "value": value,
            "shown_value": "n/a" if value is None else f"{value:+,.0f} B/file",
            "target": f"≤ {at_most_bytes:g} B/file",
            "met": None if value is None else value <= at_most_bytes}


def info(what: str, fast: Contender, peer: Contender, metric: str = "files_per_s") -> dict:
    """A comparison shown without a target (the other rows of a latency sweep)."""
    check = ratio(what, fast, peer, 0.0, metric)
    check.update(kind="info", target="—", met=None)
    return check


def machine(what: str, many: Contender, one: Contender) -> dict:
    """The machine's own ceiling for a --jobs ratio (one process's time over many's),
    shown beside the targets, with none of its own."""
    a, b = _side(many, "seconds"), _side(one, "seconds")
    value = _median(b) / _median(a) if _median(a) and _median(b) else None
    return {"what": what, "kind": "machine", "fastdump": a, "peer": b, "value": value,
            "shown_value": "n/a" if value is None else f"{value:.2f}× (time over time)",
            "target": "— (the ceiling of the rows above)", "met": None}
