"""A deterministic synthetic DICOM archive, for benchmarks.

    python benchmarks/generate.py OUT --files N [--tiny-pixels] [--seed S]

Writes N files under OUT, laid out as archives are: ``PatientID/StudyInstanceUID/
SeriesInstanceUID/IM000001.dcm``. Most are single-frame CT and MR images like a
scanner writes them: 512x512 16-bit pixels (~0.5 MB), ~260 elements of which
~180 are private (GE, Siemens and Philips private creators with the VRs their
private dictionaries give, plus a private sequence), explicit or implicit VR
little endian per series. A few are large enhanced multi-frame images (tens of
MB, one functional-group item per frame), and a few are copies of pydicom's
own real test files (``mixed/``).

Everything follows from the seed: the same seed and N give the same bytes, and
every UID is derived from (seed, role, index), so UIDs are unique within an
archive and across seeds. ``--tiny-pixels`` writes 16x16 images instead: the
cost of dumping follows the number of elements, not the bytes, so a 100,000-file
archive fits on a small disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from multiprocessing import get_context

import numpy as np
import pydicom
from pydicom._private_dict import private_dictionaries
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
FULL, TINY = 512, 16  # image side in pixels
MULTIFRAME_FRAMES = 64  # 64 x 512 x 512 x 2 bytes = 32 MiB

# (private creator, group, how many of its dictionary's elements) per modality.
PRIVATE_BLOCKS = {
    "CT": [
        ("GEMS_IDEN_01", 0x0009, 12),
        ("GEMS_ACQU_01", 0x0019, 59),
        ("GEMS_RELA_01", 0x0021, 25),
        ("GEMS_STDY_01", 0x0023, 6),
        ("GEMS_SERS_01", 0x0025, 8),
        ("GEMS_IMAG_01", 0x0027, 20),
        ("GEMS_PARM_01", 0x0043, 38),
    ],
    "MR": [
        ("SIEMENS MR HEADER", 0x0019, 20),
        ("SIEMENS CSA HEADER", 0x0029, 4),
        ("SIEMENS MEDCOM HEADER", 0x0029, 16),
        ("Philips Imaging DD 001", 0x2001, 60),
        ("Philips MR Imaging DD 001", 0x2005, 63),
    ],
}
BENCH_CREATOR = "FASTDUMP BENCH 01"  # our own block: a private sequence of private items
WORDS = ("HEAD", "CHEST", "ABDOMEN", "PELVIS", "SPINE", "KNEE", "AXIAL", "HELICAL", "SCOUT",
         "STANDARD", "BONE", "LUNG", "SOFT", "ROUTINE", "CONTRAST", "PLAIN", "RECON", "FAST")
FIRST = ("ANNA", "BEN", "CARLA", "DAVID", "EMMA", "FRANK", "GRETA", "HUGO", "IRIS", "JONAS")
LAST = ("MUELLER", "SMITH", "ROSSI", "DUBOIS", "NOVAK", "SILVA", "KOWALSKI", "JANSEN")


@dataclass(frozen=True)
class Series:
    """One series of the plan: where it goes and what it holds."""

    index: int
    patient: int
    study: int
    modality: str
    implicit: bool
    first: int  # index of its first file in the archive
    count: int


@dataclass(frozen=True)
class Task:
    """One file to write: ``kind`` is 'image', 'multiframe' or 'real'."""

    kind: str
    index: int
    series: Series | None = None
    instance: int = 0
    source: str = ""


# ---------------------------------------------------------------- determinism


def uid(seed: int, *parts: object) -> str:
    """A UID that depends only on the seed and ``parts``: 2.25 and a 128-bit hash, like a UUID."""
    key = "/".join(["fastdump-bench", str(seed), *map(str, parts)]).encode()
    return f"2.25.{int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), 'big')}"


def rng_for(seed: int, *parts: object) -> random.Random:
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def patient_id(seed: int, patient: int) -> str:
    return f"FD{seed % 1000:03d}{patient:07d}"


# ---------------------------------------------------------------- the plan


def plan(files: int, seed: int, multiframe: int, real: int) -> list[Task]:
    """Every file of the archive, in order. Depends only on its arguments."""
    candidates = real_test_files()
    real = min(real, len(candidates))
    # spread over pydicom's folders rather than the first few alphabetically
    real_sources = [candidates[i * len(candidates) // real] for i in range(real)]
    images = files - multiframe - len(real_sources)
    if images < 0:
        raise SystemExit(f"--files {files} is fewer than --multiframe + --real")
    rng = rng_for(seed, "plan")
    tasks: list[Task] = []
    series_list: list[Series] = []
    patient = study = 0
    studies_left = rng.randint(1, 3)
    series_left = rng.randint(1, 4)
    while len(tasks) < images:
        modality = "CT" if rng.random() < 0.6 else "MR"
        size = rng.randint(80, 300) if modality == "CT" else rng.randint(20, 80)
        size = min(size, images - len(tasks))
        s = Series(len(series_list), patient, study, modality, implicit=rng.random() < 0.3,
                   first=len(tasks), count=size)
        series_list.append(s)
        tasks.extend(Task("image", len(tasks), s, i + 1) for i in range(size))
        series_left -= 1
        if series_left == 0:
            series_left = rng.randint(1, 4)
            study += 1
            studies_left -= 1
            if studies_left == 0:
                studies_left = rng.randint(1, 3)
                patient += 1
    for i in range(multiframe):
        s = Series(len(series_list), patient + 1 + i, 0, "CT", implicit=False,
                   first=len(tasks), count=1)
        series_list.append(s)
        tasks.append(Task("multiframe", len(tasks), s, 1))
    tasks.extend(Task("real", len(tasks), source=src) for src in real_sources)
    return tasks


@lru_cache(maxsize=1)
def real_test_files() -> list[str]:
    """pydicom's real test files worth mixing in: readable, one of each SOP Instance UID."""
    from pydicom.data import get_testdata_files

    chosen, seen = [], set()
    for path in sorted(f for f in get_testdata_files() if os.path.isfile(f)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            sop = str(ds.SOPInstanceUID)
            ts = ds.file_meta.TransferSyntaxUID
        except Exception:  # noqa: BLE001 - deliberately broken test files are left out
            continue
        if sop not in seen and "deflate" not in os.path.basename(path).lower() and ts:
            seen.add(sop)
            chosen.append(path)
    return chosen


def default_multiframe(files: int) -> int:
    return 0 if files < 100 else min(5, max(1, files // 500))


def default_real(files: int) -> int:
    return min(len(real_test_files()), files // 50)


# ---------------------------------------------------------------- one file


def write_task(task: Task, out: str, seed: int, tiny: bool) -> tuple[str, int]:
    """Write one file; return its path relative to ``out`` and its size."""
    if task.kind == "real":
        rel = os.path.join("mixed", f"{task.index:07d}_{os.path.basename(task.source)}")
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(task.source, dest)
        return rel, os.path.getsize(dest)
    s = task.series
    ds = image_dataset(seed, s, task.instance, tiny, task.kind == "multiframe")
    rel = os.path.join(ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                       f"IM{task.instance:06d}.dcm")
    dest = os.path.join(out, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return rel, os.path.getsize(dest)


def image_dataset(seed: int, s: Series, instance: int, tiny: bool, multi: bool) -> Dataset:
    rng = rng_for(seed, "file", s.index, instance)
    side = TINY if tiny else FULL
    frames = MULTIFRAME_FRAMES if multi else 1
    sop_class = ENHANCED_CT_STORAGE if multi else (CT_STORAGE if s.modality == "CT" else MR_STORAGE)
    ds = Dataset()
    ds.file_meta = file_meta(sop_class, uid(seed, "sop", s.index, instance), s.implicit)
    _standard(ds, seed, s, instance, rng, side, frames, sop_class)
    _private(ds, s.modality, rng, seed)
    if multi:
        _functional_groups(ds, frames, rng)
    ds.PixelData = pixels(seed, s.index, instance, side, frames)
    return ds


def file_meta(sop_class: str, sop_instance: str, implicit: bool) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "FASTDUMP_BENCH"
    return meta


def _standard(ds: Dataset, seed: int, s: Series, instance: int, rng: random.Random,
              side: int, frames: int, sop_class: str) -> None:
    """The standard attributes a CT or MR scanner writes (~77 elements with sequences)."""
    prng = rng_for(seed, "patient", s.patient)
    study_date = f"20{prng.randint(10, 23)}{prng.randint(1, 12):02d}{prng.randint(1, 28):02d}"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = study_date
    ds.InstanceCreationTime = f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
    ds.StudyTime = "081500.000"
    ds.SeriesTime = f"08{15 + s.index % 40:02d}30.000"
    ds.AcquisitionTime = ds.ContentTime = f"08{15 + s.index % 40:02d}{instance % 60:02d}.250"
    ds.AccessionNumber = f"A{seed % 100:02d}{s.patient:06d}{s.study:02d}"
    ds.Modality = s.modality
    ds.Manufacturer = "GE MEDICAL SYSTEMS" if s.modality == "CT" else "SIEMENS"
    ds.InstitutionName = "Fastdump Benchmark Hospital"
    ds.InstitutionAddress = "1 Example Street, Sample City"
    ds.ReferringPhysicianName = f"{prng.choice(LAST)}^{prng.choice(FIRST)}"
    ds.StationName = f"{s.modality}SCAN{s.index % 7:02d}"
    ds.StudyDescription = f"{prng.choice(WORDS)} {prng.choice(WORDS)}"
    ds.ProcedureCodeSequence = Sequence([_code(f"P{s.study:04d}", "L", ds.StudyDescription)])
    ds.SeriesDescription = f"{rng_for(seed, 'series', s.index).choice(WORDS)} {s.index}"
    ds.ManufacturerModelName = "LightSpeed VCT" if s.modality == "CT" else "Skyra"
    ds.ReferencedImageSequence = Sequence([
        _ref(CT_STORAGE if s.modality == "CT" else MR_STORAGE,
             uid(seed, "sop", s.index, max(1, instance - 1)))
    ])
    ds.PatientName = f"{prng.choice(LAST)}^{prng.choice(FIRST)}"
    ds.PatientID = patient_id(seed, s.patient)
    ds.PatientBirthDate = f"19{prng.randint(30, 99)}{prng.randint(1, 12):02d}15"
    ds.PatientSex = prng.choice("MF")
    ds.PatientAge = f"{prng.randint(18, 90):03d}Y"
    ds.PatientWeight = f"{prng.randint(45, 110)}.0"
    ds.BodyPartExamined = prng.choice(("HEAD", "CHEST", "ABDOMEN", "PELVIS"))
    ds.SliceThickness = "1.25" if s.modality == "CT" else "3.0"
    if s.modality == "CT":
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500.0"
        ds.ReconstructionDiameter = "360.0"
        ds.DistanceSourceToDetector = "949.075"
        ds.GantryDetectorTilt = "0.0"
        ds.TableHeight = f"{rng.uniform(120, 180):.2f}"
        ds.ExposureTime = str(rng.randint(500, 1000))
        ds.XRayTubeCurrent = str(rng.randint(100, 400))
        ds.Exposure = str(rng.randint(50, 300))
        ds.ConvolutionKernel = "STANDARD"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    else:
        ds.ScanningSequence = ["SE", "IR"]
        ds.SequenceVariant = ["SK", "SP"]
        ds.RepetitionTime = f"{rng.uniform(400, 4000):.1f}"
        ds.EchoTime = f"{rng.uniform(8, 120):.2f}"
        ds.MagneticFieldStrength = "3"
        ds.ImagingFrequency = "123.2"
        ds.EchoTrainLength = str(rng.randint(1, 32))
        ds.FlipAngle = str(rng.choice((90, 150, 180)))
    ds.SoftwareVersions = "fastdump-bench 1"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uid(seed, "study", s.patient, s.study)
    ds.SeriesInstanceUID = uid(seed, "series", s.index)
    ds.StudyID = str(s.study + 1)
    ds.SeriesNumber = str(s.index + 1)
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(instance)
    z = -instance * float(ds.SliceThickness)
    ds.ImagePositionPatient = ["-180.0", "-180.0", f"{z:.2f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = uid(seed, "for", s.patient, s.study)
    ds.PositionReferenceIndicator = "SN"
    ds.SliceLocation = f"{z:.2f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = ds.Columns = side
    ds.PixelSpacing = ["0.703125", "0.703125"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RequestAttributesSequence = Sequence([_request(seed, s, rng)])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
    return item


def _request(seed: int, s: Series, rng: random.Random) -> Dataset:
    item = Dataset()
    item.RequestedProcedureID = f"RP{s.study:05d}"
    item.ScheduledProcedureStepID = f"SPS{s.index:05d}"
    item.ScheduledProcedureStepDescription = rng.choice(WORDS)
    item.ScheduledProtocolCodeSequence = Sequence([_code("P-1234", "99FDB", "Routine")])
    return item


def _private(ds: Dataset, modality: str, rng: random.Random, seed: int) -> None:
    """~180 private elements: vendor blocks with their dictionary VRs, and a private sequence."""
    for creator, group, count in PRIVATE_BLOCKS[modality]:
        block = ds.private_block(group, creator, create=True)
        for offset, vr, vm in private_elements(creator, group, count):
            block.add_new(offset, vr, private_value(vr, vm, rng))
    block = ds.private_block(0x0071, BENCH_CREATOR, create=True)
    items = []
    for i in range(2):
        item = Dataset()
        inner = item.private_block(0x0071, BENCH_CREATOR, create=True)
        inner.add_new(0x01, "LO", f"item {i}")
        inner.add_new(0x02, "FD", [rng.uniform(0, 1) for _ in range(3)])
        inner.add_new(0x03, "UL", rng.randint(0, 2**31))
        items.append(item)
    block.add_new(0x10, "SQ", Sequence(items))
    block.add_new(0x11, "OB", bytes(rng.getrandbits(8) for _ in range(64)))
    block.add_new(0x12, "UT", " ".join(rng.choice(WORDS) for _ in range(40)))


@cache
def private_elements(creator: str, group: int, count: int) -> list[tuple[int, str, str]]:
    """The first ``count`` elements of ``creator``'s dictionary in ``group`` with a plain VR."""
    found = []
    for key, (vr, vm, *_rest) in sorted(private_dictionaries[creator].items()):
        if key[:6] != f"{group:04X}xx" or vr in ("SQ", "AT", "UN"):
            continue
        if " " in vr or not vm or vm.startswith("0"):
            continue
        found.append((int(key[-2:], 16), vr, vm))
    return found[:count]


def private_value(vr: str, vm: str, rng: random.Random):
    """A valid value of ``vr`` with multiplicity ``vm`` ('1', '3', '1-n', '2-2n'...)."""
    n = _multiplicity(vm, rng)
    if vr in ("OB", "OW", "UN"):
        # Most binary values are small; some (CSA-like headers) are far above the bulk threshold.
        size = rng.choice((16, 64, 256, 8192)) if vr != "OW" else 128
        return rng.randbytes(size)
    values = [_one_value(vr, rng) for _ in range(n)]
    return values[0] if n == 1 else values


def _multiplicity(vm: str, rng: random.Random) -> int:
    if vm.isdigit():
        return int(vm)
    low = vm.split("-")[0]
    low_n = int(low) if low.isdigit() else 1
    return low_n * rng.randint(1, 3) if vm.endswith("n") else low_n


def _one_value(vr: str, rng: random.Random):
    if vr in ("US", "UL"):
        return rng.randint(0, 65535 if vr == "US" else 2**31)
    if vr in ("SS", "SL"):
        return rng.randint(-32768, 32767)
    if vr in ("FL", "FD"):
        return round(rng.uniform(-1000, 1000), 3)
    if vr == "DS":
        return f"{rng.uniform(-1000, 1000):.4f}"
    if vr == "IS":
        return str(rng.randint(-1000, 100000))
    if vr == "DA":
        return f"20{rng.randint(10, 23)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}"
    if vr == "TM":
        return f"1{rng.randint(0, 9)}{rng.randint(10, 59)}{rng.randint(10, 59)}"
    if vr == "DT":
        return f"2023051{rng.randint(0, 9)}1{rng.randint(0, 9)}3000"
    if vr == "UI":
        return f"1.2.840.113619.2.{rng.randint(1, 99999)}.{rng.randint(1, 99999)}"
    if vr in ("CS", "AE"):
        return rng.choice(WORDS)
    if vr in ("SH", "LO", "PN"):
        return f"{rng.choice(WORDS)} {rng.randint(0, 999)}"
    return " ".join(rng.choice(WORDS).lower() for _ in range(rng.randint(3, 30)))  # LT ST UT


def _functional_groups(ds: Dataset, frames: int, rng: random.Random) -> None:
    """Enhanced multi-frame: one per-frame functional group item per frame."""
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = ["0.703125", "0.703125"]
    measures.SliceThickness = "1.25"
    orientation = Dataset()
    orientation.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for i in range(frames):
        item = Dataset()
        content = Dataset()
        content.FrameAcquisitionNumber = i + 1
        content.DimensionIndexValues = [1, i + 1]
        position = Dataset()
        position.ImagePositionPatient = ["-180.0", "-180.0", f"{-1.25 * i:.2f}"]
        item.FrameContentSequence = Sequence([content])
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)


@lru_cache(maxsize=8)
def _phantom(seed: int, series: int, side: int) -> np.ndarray:
    """A CT-like slice: a body ellipse with organs and noise, per series."""
    rng = np.random.default_rng([seed, series])
    y, x = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
    img = np.zeros((side, side), np.float32)
    img[(x / 0.85) ** 2 + (y / 0.65) ** 2 < 1] = 1040
    for _ in range(6):
        cx, cy, r = rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4), rng.uniform(0.05, 0.2)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(900, 1400)
    img += rng.normal(0, 15, img.shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def pixels(seed: int, series: int, instance: int, side: int, frames: int) -> bytes:
    base = _phantom(seed, series, side)
    # Slices differ a little from each other, as neighbouring slices do.
    stack = [np.roll(base, instance + f, axis=0) for f in range(frames)]
    return np.ascontiguousarray(np.stack(stack)).astype("<u2").tobytes()


# ---------------------------------------------------------------- the archive


def _write_chunk(args: tuple[list[Task], str, int, bool]) -> list[tuple[str, int]]:
    tasks, out, seed, tiny = args
    return [write_task(t, out, seed, tiny) for t in tasks]


def _chunks(tasks: list[Task], size: int) -> Iterator[list[Task]]:
    for i in range(0, len(tasks), size):
        yield tasks[i:i + size]


def generate(out: str | os.PathLike, files: int, *, seed: int = 0, tiny_pixels: bool = False,
             multiframe: int | None = None, real: int | None = None, jobs: int | None = None,
             ) -> list[tuple[str, int]]:
    """Write the archive; return (relative path, size) of every file, in plan order."""
    out = os.fspath(out)
    multiframe = default_multiframe(files) if multiframe is None else multiframe
    real = default_real(files) if real is None else real
    tasks = plan(files, seed, multiframe, real)
    os.makedirs(out, exist_ok=True)
    work = [(chunk, out, seed, tiny_pixels) for chunk in _chunks(tasks, 64)]
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(work) == 1:
        results = map(_write_chunk, work)
    else:
        pool = get_context("spawn").Pool(jobs)
        results = pool.imap(_write_chunk, work)
    written = [item for chunk in results for item in chunk]
    if jobs != 1 and len(work) != 1:
        pool.close()
        pool.join()
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", metavar="OUT", help="directory to write the archive into")
    p.add_argument("--files", type=int, required=True, metavar="N", help="number of files")
    p.add_argument("--tiny-pixels", action="store_true",
                   help="16x16 pixel payloads instead of 512x512 (same elements, ~30x smaller)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0): same seed, same bytes")
    p.add_argument("--multiframe", type=int, default=None, metavar="K",
                   help="large enhanced multi-frame files (default: N/500, 1..5; 0 below 100)")
    p.add_argument("--real", type=int, default=None, metavar="K",
                   help="copies of pydicom's real test files (default: N/50, at most all)")
    p.add_argument("--jobs", type=int, default=None, help="writer processes (default: all cores)")
    args = p.parse_args(argv)
    if args.files < 1:
        p.error("--files must be at least 1")
    written = generate(args.out, args.files, seed=args.seed, tiny_pixels=args.tiny_pixels,
                       multiframe=args.multiframe, real=args.real, jobs=args.jobs)
    total = sum(size for _, size in written)
    print(f"{len(written)} files, {total / 1e6:.1f} MB -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
