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
import warnings

import pytest
from pydicom.filereader import _read_file_meta_info, data_element_generator, read_preamble
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from fastdump.selection import parse_tags, select

from .conftest import PYDICOM_FILES, regular_files

FILES = int(os.environ.get("FASTDUMP_FUZZ_FILES", "5000"))
SEED = 5000
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
SIX_TAGS = "PatientID,StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,Modality,InstanceNumber"


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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(SEED)
    sources = [open(f, "rb").read()[:65536] for f in PYDICOM_FILES
               if os.path.getsize(f) > 256]
    root = tmp_path_factory.mktemp("fuzz") / "corpus"
    for i in range(FILES):
        folder = root / f"{i // 500:02}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{i:05}.dcm").write_bytes(mutate(rng.choice(sources), rng))
    return root


def dump_checked(root, out, *options: str) -> dict[str, dict]:
    """Dump ``root``; check that every file is in exactly one whole JSON line; path -> line."""
    result = subprocess.run(
        [sys.executable, "-m", "fastdump", "dump", str(root), "-o", str(out), "--no-progress",
         "--file-timeout", "20", *options], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    seen: dict[str, dict] = {}
    for name in ("dump.jsonl", "errors.jsonl"):
        for line in (out / name).read_bytes().splitlines():
            record = json.loads(line)  # every line is whole, valid JSON
            assert ("dataset" in record) != ("error" in record)
            assert record["path"] not in seen, "a file was written twice"
            seen[record["path"]] = record
    assert len(seen) == FILES and set(seen) == regular_files(root), "a file was lost"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == summary["ok"] + summary["errors"] == FILES
    print(f"fuzz {' '.join(options) or 'full dump'}: {FILES} files, {summary['ok']} dumped, "
          f"{summary['errors']} errors, {summary['seconds']} s")
    return seen


@pytest.fixture(scope="module")
def full(corpus, tmp_path_factory) -> dict[str, dict]:
    return dump_checked(corpus, tmp_path_factory.mktemp("fuzz") / "full")


def test_fuzzed_corpus_is_accounted_for(full):
    assert sum("dataset" in r for r in full.values()) > FILES // 5


def test_fuzzed_corpus_with_tags(corpus, full, tmp_path):
    spec = SIX_TAGS + ",ReferencedImageSequence,00091001,00431028"
    tags = parse_tags(spec)
    selected = dump_checked(corpus, tmp_path / "tags", "--tags", spec)
    compared = disordered = 0
    for path, record in selected.items():
        # damage past the last selected tag is not looked at with --tags, so only
        # files both runs dumped are compared
        if "dataset" not in record or "dataset" not in full[path]:
            continue
        expected = select(full[path], tags)["dataset"]
        if in_order(path):
            assert record["dataset"] == expected, path
            compared += 1
        else:
            # reading stops at the first element past the selection: a selected
            # element that comes after it, out of order, is not found
            assert expected.items() >= record["dataset"].items(), path
            disordered += 1
    assert compared > FILES // 5
    print(f"--tags equal to the full dump on {compared} files; {disordered} out of order")


def in_order(path: str) -> bool:
    """Whether the top-level elements of ``path`` come in ascending tag order (pydicom's
    reader as the judge; a file it cannot walk counts as out of order)."""
    try:
        with warnings.catch_warnings(), open(path, "rb") as fp:
            warnings.simplefilter("ignore")
            read_preamble(fp, True)
            syntax = _read_file_meta_info(fp).get("TransferSyntaxUID")
            previous = -1
            for element in data_element_generator(
                    fp, syntax == ImplicitVRLittleEndian, syntax != ExplicitVRBigEndian,
                    stop_when=lambda tag, vr, length: tag in PIXEL_TAGS, defer_size=64):
                if element.tag <= previous:
                    return False
                previous = element.tag
    except Exception:  # noqa: BLE001 - unreadable: not an ordered file
        return False
    return True
