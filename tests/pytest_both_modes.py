"""Run the whole suite twice, in the compiled mode and the pure-Python one
(``FASTDUMP_PURE=1``), the two at once. Arguments go to every pytest run.

At once, because much of the suite waits (on worker processes, a Dask cluster, a moto
server, a stalled pool's grace period) rather than computes: on a 2-core VM the two took
6 1/2 min together, then 1 1/2 min for the serial tests, where one mode after the other
they had taken 9 min 8 s and 10 min 11 s. The tests marked ``serial`` (signals sent while
a run is at a given point, the page cache) run one mode after the other, on a machine no
busier than usual. The compiled runs print as they go; each pure run's output follows.
The exit status is the first failure's.

    python tests/pytest_both_modes.py [PYTEST ARGS...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

NO_TESTS = 5  # pytest's exit status when the arguments select none (of this phase)


def main(args: list[str]) -> int:
    statuses = (both_modes([*args, "-m", "not serial"], at_once=True)
                + both_modes([*args, "-m", "serial"], at_once=False))
    failures = [status for status in statuses if status not in (0, NO_TESTS)]
    if failures:
        return failures[0]
    # arguments that select no test at all are an error, as for pytest itself
    return NO_TESTS if all(status == NO_TESTS for status in statuses) else 0


def both_modes(args: list[str], at_once: bool) -> list[int]:
    """The pytest exit statuses of the compiled run and the pure one."""
    pytest = [sys.executable, "-m", "pytest", *args]
    compiled_env = {k: v for k, v in os.environ.items() if k != "FASTDUMP_PURE"}
    pure_env = {**os.environ, "FASTDUMP_PURE": "1"}
    if not at_once:
        return [subprocess.call(pytest, env=compiled_env), pure_run(pytest, pure_env)]
    with tempfile.TemporaryFile() as pure_output:
        pure = subprocess.Popen(pytest, env=pure_env, stdout=pure_output,
                                stderr=subprocess.STDOUT)
        try:
            compiled = subprocess.call(pytest, env=compiled_env)
            pure.wait()
        finally:
            if pure.poll() is None:  # (Ctrl-C: the compiled run has ended already)
                pure.terminate()
                pure.wait()
        pure_output.seek(0)
        banner()
        sys.stdout.buffer.write(pure_output.read())
        sys.stdout.flush()
    return [compiled, pure.returncode]


def pure_run(pytest: list[str], env: dict[str, str]) -> int:
    banner()
    return subprocess.call(pytest, env=env)


def banner() -> None:
    print("\n===== the same tests, pure-Python hot path (FASTDUMP_PURE=1) =====", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
