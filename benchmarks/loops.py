"""The loops people write instead of fastdump, as the scripts they would run.

    python benchmarks/loops.py tojson LIST OUTDIR     # dcmread + to_json_dict + orjson
    python benchmarks/loops.py notebook LIST OUTDIR   # the seed notebook's loop
    python benchmarks/loops.py io LIST OUTDIR         # open + read 64 KB: the I/O floor

LIST holds one path a line. The suites time the whole process, start-up and
imports included, as they time fastdump. This script imports only what such a
script would (pydicom, orjson), not fastdump. Prints
``{"files": n, "errors": e}`` on its last line.
"""

from __future__ import annotations

import os
import re
import sys
import warnings

import orjson


def io_loop(paths: list[str], out: str) -> int:
    """The I/O floor: open each file and read its first 64 KB."""
    errors = 0
    for path in paths:
        try:
            with open(path, "rb") as fp:
                fp.read(65536)
        except OSError:
            errors += 1
    return errors


def tojson_loop(paths: list[str], out: str) -> int:
    """dcmread (no pixels), to_json_dict, orjson: one JSON line per file."""
    import pydicom

    errors = 0
    with open(os.path.join(out, "dump.jsonl"), "wb") as sink:
        for path in paths:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                sink.write(orjson.dumps({"path": path, "dataset": ds.to_json_dict()}) + b"\n")
            except Exception:  # noqa: BLE001 - a bad file is counted, as fastdump does
                errors += 1
    return errors


def notebook_loop(paths: list[str], out: str) -> int:
    """The seed notebook's loop: full dcmread, ds.dir(), one ``_tags.txt`` per input."""
    import pydicom

    errors = 0
    for i, path in enumerate(paths):
        try:
            ds = pydicom.dcmread(path)
            with open(os.path.join(out, f"{i}_tags.txt"), "w") as f:
                for key in ds.dir():
                    value = getattr(ds, key, "")
                    if type(value) is pydicom.sequence.Sequence:
                        s = str(value[0]) if len(value) else ""
                        print(re.findall(r"\(.*?\)", s), file=f)
                    else:
                        print(ds.data_element(key).tag, file=f)
        except Exception:  # noqa: BLE001 - the notebook would stop; we count and go on
            errors += 1
    return errors


LOOPS = {"io": io_loop, "tojson": tojson_loop, "notebook": notebook_loop}


def main(argv: list[str]) -> int:
    kind, list_path, out = argv
    with open(list_path, encoding="utf-8", errors="surrogateescape") as fp:
        paths = [line.rstrip("\n") for line in fp if line.strip()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = LOOPS[kind](paths, out)
    print(orjson.dumps({"files": len(paths), "errors": errors}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
