"""Run the whole suite twice at once: with the compiled hot path, and with the pure-Python
one (``FASTDUMP_PURE=1``). Arguments go to both pytest runs.

At once, because much of the suite waits (on worker processes, a Dask cluster, a moto
server, a stalled pool's grace period) rather than computes: on a 2-core VM the two took
about 9 1/2 min together, where one after the other they had taken 9 min 8 s and 10 min
11 s. The compiled run prints as it goes; the pure run's output follows it. The exit
status is the first non-zero one of the two.

    python tests/pytest_both_modes.py [PYTEST ARGS...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def main(args: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", *args]
    with tempfile.TemporaryFile() as pure_output:
        pure = subprocess.Popen(pytest, env={**os.environ, "FASTDUMP_PURE": "1"},
                                stdout=pure_output, stderr=subprocess.STDOUT)
        try:
            compiled = subprocess.call(pytest, env={
                k: v for k, v in os.environ.items() if k != "FASTDUMP_PURE"})
            pure.wait()
        finally:
            if pure.poll() is None:  # (Ctrl-C: the compiled run has ended already)
                pure.terminate()
                pure.wait()
        pure_output.seek(0)
        print("\n===== the same tests, pure-Python hot path (FASTDUMP_PURE=1) =====",
              flush=True)
        sys.stdout.buffer.write(pure_output.read())
        sys.stdout.flush()
    return compiled or pure.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
