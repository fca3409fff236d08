"""Quick throughput check of the fast value path, in one process, on warm files.

    .venv/bin/python benchmarks/quick_fastpath.py [--files 2000] [--dir /tmp/fastdump-quick]

Generates (once) N synthetic CT files like a GE scanner writes them: 512x512
16-bit pixels (~0.5 MB), ~256 elements of which ~179 are private, explicit VR
little endian; then reports files/s, one after the other on the same files,
for: a pydicom dcmread + to_json_dict + orjson loop, fastdump's pydicom path,
the fast path, the fast path with --tags (6 tags), ``fastdump dump --jobs 1``
(pool included) for both, and ``dcmdump +sb 7fe0,0010`` (500 files per call).
Not a test: timings depend on the machine. The full benchmark suite is
``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import orjson
import pydicom
from pydicom._private_dict import private_dictionaries
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

import fastdump
from fastdump import record
from fastdump.selection import parse_tags
from fastdump.types import ReadSettings

SIX_TAGS = "PatientID,StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,Modality,InstanceNumber"
PRIVATE = [("GEMS_IDEN_01", 0x0009), ("GEMS_ACQU_01", 0x0019), ("GEMS_RELA_01", 0x0021),
           ("GEMS_STDY_01", 0x0023), ("GEMS_SERS_01", 0x0025), ("GEMS_IMAG_01", 0x0027),
           ("GEMS_PARM_01", 0x0043)]
SAMPLE = {"CS": "ABC", "SH": "SHORT", "LO": "a long string", "ST": "some text", "LT": "text",
          "DS": "1.5", "IS": "42", "US": 7, "SS": -7, "UL": 70000, "SL": -70000, "FL": 0.25,
          "FD": 0.125, "DA": "20240101", "TM": "120000", "UI": "1.2.3.4", "PN": "DOE^JOHN",
          "AE": "AET", "AS": "042Y", "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02",
          "AT": 0x00100010, "UT": "unlimited text", "SQ": None}


def template() -> Dataset:
    ds = Dataset()
    public = [e for e in _public_ct() if e[0] < 0x7FE00000]
    for tag, vr, value in public:
        ds.add_new(tag, vr, value)
    private = 0
    for creator, group in PRIVATE:
        ds.add_new(group << 16 | 0x0010, "LO", creator)
        private += 1
        for key, entry in sorted(private_dictionaries[creator].items()):
            vr = entry[0]
            if private >= 179 or vr not in SAMPLE or vr == "SQ" or "x" not in key[4:6]:
                continue
            tag = group << 16 | 0x1000 | int(key[6:8], 16)
            if tag not in ds:
                ds.add_new(tag, vr, SAMPLE[vr])
                private += 1
    ds.add_new(0x7FE00010, "OW", bytes(512 * 512 * 2))
    return ds


def _public_ct():
    from pydicom.datadict import DicomDictionary

    chosen = []
    for tag, entry in sorted(DicomDictionary.items()):
        vr, _, _, retired, keyword = entry
        if retired or vr not in SAMPLE or vr == "SQ" or tag >> 16 not in (8, 0x10, 0x18, 0x20,
                                                                          0x28):
            continue
        chosen.append((tag, vr, SAMPLE[vr]))
    fixed = {0x00080016: "1.2.840.10008.5.1.4.1.1.2", 0x00080060: "CT", 0x00280002: 1,
             0x00280004: "MONOCHROME2", 0x00280010: 512, 0x00280011: 512, 0x00280100: 16,
             0x00280101: 16, 0x00280102: 15, 0x00280103: 0, 0x00080005: "ISO_IR 100"}
    chosen = [(t, vr, fixed.get(t, v)) for t, vr, v in chosen][:74]
    for tag, value in fixed.items():
        if tag not in {t for t, _, _ in chosen}:
            chosen.append((tag, pydicom.datadict.dictionary_VR(tag), value))
    return sorted(chosen)


def generate(out: str, count: int) -> list[str]:
    paths = [os.path.join(out, f"IM{n:06d}.dcm") for n in range(count)]
    if all(os.path.exists(p) for p in paths):
        return paths
    os.makedirs(out, exist_ok=True)
    ds = template()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    for n, path in enumerate(paths):
        uid = f"2.25.{1000 + n}"
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = uid
        ds.StudyInstanceUID = f"2.25.9{n // 500}"
        ds.SeriesInstanceUID = f"2.25.8{n // 100}"
        ds.PatientID = f"P{n // 500:04d}"
        ds.InstanceNumber = n
        ds.save_as(path, enforce_file_format=True)
    return paths


def rate(name: str, paths: list[str], fn: Callable[[str], object]) -> tuple[str, float]:
    start = time.perf_counter()
    for path in paths:
        fn(path)
    return name, len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dir", default="/tmp/fastdump-quick")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    paths = generate(args.dir, args.files)
    stats = {p: os.stat(p) for p in paths}
    for p in paths:  # warm the page cache
        with open(p, "rb") as fp:
            fp.read(1 << 16)
    full = ReadSettings()
    first = record.read_record(paths[0], 0, 0.0, full)[0]["dataset"]
    private = sum(1 for k in first if int(k[:4], 16) & 1)
    print(f"{len(paths)} files, {os.path.getsize(paths[0]) / 1e6:.2f} MB, {len(first)} "
          f"elements ({private} private)", file=sys.stderr)
    selected = ReadSettings(tags=parse_tags(SIX_TAGS))

    def pydicom_loop(p):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        return orjson.dumps(ds.to_json_dict(1024, lambda e: "bulk"))

    def fastdump_pydicom(p):
        st = stats[p]
        return orjson.dumps(record.read_record_pydicom(p, st.st_size, st.st_mtime, full))

    def fast(p):
        st = stats[p]
        return orjson.dumps(record.read_record(p, st.st_size, st.st_mtime, full)[0])

    def fast_tags(p):
        st = stats[p]
        return orjson.dumps(record.read_record(p, st.st_size, st.st_mtime, selected)[0])

    rows = [
        rate("dcmread + to_json_dict + orjson loop", paths, pydicom_loop),
        rate("fastdump pydicom path (in process)", paths, fastdump_pydicom),
        rate("fastdump fast path (in process)", paths, fast),
        rate("fastdump fast path --tags 6 (in process)", paths, fast_tags),
        dump_rate("fastdump dump --jobs 1", args.dir, None),
        dump_rate("fastdump dump --jobs 1 --tags 6", args.dir, SIX_TAGS),
    ]
    if shutil.which("dcmdump"):
        rows.append(dcmdump_rate(paths))
    base = rows[0][1]
    print("| what | files/s | vs dcmread+to_json_dict |\n|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value / base:.1f}x |")


def dump_rate(name: str, folder: str, tags: str | None) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as out:
        summary = fastdump.dump([folder], os.path.join(out, "o"), jobs=1, progress=False,
                                tags=tags)
    return name, summary.files_per_s


def dcmdump_rate(paths: list[str]) -> tuple[str, float]:
    start = time.perf_counter()
    for i in range(0, len(paths), 500):
        subprocess.run(["dcmdump", "+sb", "7fe0,0010", *paths[i:i + 500]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return "dcmdump +sb 7fe0,0010 (500 files per call)", len(paths) / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
