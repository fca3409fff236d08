"""The output formats by name: the one place that lists them.

Each format is one class in one module of this package (see
:mod:`fastdump.formats.base`); a new format is a new module plus a line here.
Modules are imported when first asked for, so a worker of a JSON Lines run
never imports pyarrow. A leaf: it imports nothing of fastdump, so that the
formats themselves may look up another one (``--overwrite`` of an OUTDIR that
holds a run of another format asks that format which files are its own).
"""

from __future__ import annotations

import importlib
from functools import cache

# --format NAME -> "module:class"
REGISTRY = {
    "jsonl": "jsonl:JsonlFormat",
    "tags": "tags:TagsFormat",
    "parquet": "parquet:ParquetFormat",
}
# -o - : the sink that writes to standard output instead of an OUTDIR
STDOUT_SPEC = "stdout:StdoutFormat"


@cache
def load(spec: str) -> object:
    """The (one) instance of the class ``spec`` names, as ``"module:class"``."""
    module, cls = spec.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
