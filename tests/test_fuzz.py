"""Seeded mutations of real files: no crash, no hang, every file once, every line JSON.

FASTDUMP_FUZZ_FILES sets the corpus size (default 5,000, as run in CI).
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys

from .conftest import PYDICOM_FILES, regular_files

FILES = int(os.environ.get("FASTDUMP_FUZZ_FILES", "5000"))
SEED = 5000


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three mutations of the kinds that break real files."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(data)) if data else 0
        if kind == 0:  # flipped bytes
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:  # truncated anywhere
            del data[pos:]
        elif kind == 2:  # a length field set to a hostile value
            if pos + 4 <= len(data):
                data[pos:pos + 4] = struct.pack("<I", rng.choice(
                    [0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, len(data) * 3, 0]))
        elif kind == 3:  # random bytes inserted
            data[pos:pos] = rng.randbytes(rng.randint(1, 64))
        elif kind == 4:  # a region duplicated (repeated elements, items)
            end = min(len(data), pos + rng.randint(8, 512))
            data[pos:pos] = data[pos:end]
        else:  # a VR replaced
            if pos + 2 <= len(data):
                data[pos:pos + 2] = rng.choice([b"SQ", b"UN", b"OB", b"DS", b"XX", b"\0\0"])
    return bytes(data)


def test_fuzzed_corpus_is_accounted_for(tmp_path):
    rng = random.Random(SEED)
    sources = [open(f, "rb").read()[:65536] for f in PYDICOM_FILES
               if os.path.getsize(f) > 256]
    root = tmp_path / "fuzz"
    for i in range(FILES):
        folder = root / f"{i // 500:02}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i:05}.dcm").write_bytes(mutate(rng.choice(sources), rng))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "fastdump", "dump", str(root), "-o", str(out), "--no-progress",
         "--file-timeout", "20"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    seen: list[str] = []
    for name in ("dump.jsonl", "errors.jsonl"):
        for line in (out / name).read_bytes().splitlines():
            record = json.loads(line)  # every line is whole, valid JSON
            assert ("dataset" in record) != ("error" in record)
            seen.append(record["path"])
    assert len(seen) == len(set(seen)) == FILES, "a file was lost or written twice"
    assert set(seen) == regular_files(root)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == summary["ok"] + summary["errors"] == FILES
    print(f"fuzz: {FILES} files, {summary['ok']} dumped, {summary['errors']} errors, "
          f"{summary['seconds']} s")
