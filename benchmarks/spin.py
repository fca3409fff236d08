"""This machine's own ceiling for ``--jobs 2`` against ``--jobs 1``.

    python benchmarks/spin.py UNITS PROCESSES

Starts PROCESSES fresh Python processes at once and waits for them; between them
they run UNITS units of a pure-Python loop (no I/O, nothing passed or shared). The
same work, run with PROCESSES=1 and then 2, alternated with fastdump's runs: the
ratio of the two times is the most any two processes could gain over one on this
machine in those minutes. On a 2-core VM it is below 2: the cores the host gives
may be busy with other guests, or be two threads of one physical core.
"""

from __future__ import annotations

import subprocess
import sys

ITERATIONS_PER_UNIT = 100_000  # ~9 ms of CPU per unit on the benchmark's machine


def spin(units: int) -> int:
    """``units`` units of interpreter work: what fastdump's hot loop also spends."""
    x = 0
    for i in range(units * ITERATIONS_PER_UNIT):
        x += i * i % 7
    return x


def shares(units: int, processes: int) -> list[int]:
    """``units`` split as evenly as whole units allow."""
    return [units // processes + (1 if k < units % processes else 0) for k in range(processes)]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        spin(int(argv[1]))
        return 0
    units, processes = int(argv[0]), int(argv[1])
    children = [subprocess.Popen([sys.executable, __file__, "--child", str(n)])
                for n in shares(units, processes)]
    return max(child.wait() for child in children)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
