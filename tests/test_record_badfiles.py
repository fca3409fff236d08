"""Bad inputs never stop a run: each is one line, with a reason a person can act on."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter

import pytest
from pydicom.datadict import tag_for_keyword

import fastdump
from fastdump.lines import exact

from .badfiles import CASES, CT, PLAN, truncated_at
from .conftest import pydicom_file, regular_files
from .helpers import accounted, read_jsonl

GOOD = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "waveform_ecg.dcm"]


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """Good files with every bad case beside them, dumped once."""
    root = tmp_path_factory.mktemp("dirty")
    for name in GOOD:
        shutil.copy(pydicom_file(name), root / name)
    for name, (make, _) in CASES.items():
        (root / "bad").mkdir(exist_ok=True)
        (root / "bad" / name).write_bytes(make())
    out = root.parent / (root.name + "-out")
    summary = fastdump.dump([root], out, jobs=2, progress=False)
    return root, out, summary


def test_every_bad_file_is_one_line(dirty):
    root, out, summary = dirty
    assert sorted(accounted(out)) == sorted(regular_files(root))
    assert summary.files == len(GOOD) + len(CASES)
    # counted by type, as errors.jsonl spells them ("NotDicomError: not a DICOM file: ...")
    kinds = Counter(line["error"].split(":")[0] for line in read_jsonl(out / "errors.jsonl"))
    assert summary.error_kinds == dict(kinds) and len(kinds) >= 3
    assert sum(kinds.values()) == summary.errors


@pytest.mark.parametrize("name", [n for n, (_, kind) in CASES.items() if kind == "error"])
def test_unreadable_files_are_error_records_with_reasons(dirty, name):
    root, out, _ = dirty
    errors = {r["path"]: r["error"] for r in read_jsonl(out / "errors.jsonl")}
    reason = errors[str(root / "bad" / name)]
    kind, _, text = reason.partition(": ")
    assert kind.isidentifier() and len(text) > 10, reason


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("cut-in-", "length-"))])
def test_truncated_files_are_reported_not_shrunk(dirty, name):
    root, out, _ = dirty
    errors = {r["path"]: r for r in read_jsonl(out / "errors.jsonl")}
    record = errors[str(root / "bad" / name)]
    assert record["error"].startswith(("TruncatedError: ", "NotDicomError: ")), record["error"]


# a cut inside an element --tags steps over (PatientBirthDate; a beam's item), with a
# selected tag before it and one after it
SELECTIVE_CUTS = [(CT, 0x00100030, 3, "PatientID", "PixelSpacing"),
                  (PLAN, 0x300A00B0, 300, "PatientID", "PatientSetupSequence")]


@pytest.mark.parametrize("name, cut_in, into, before, after", SELECTIVE_CUTS,
                         ids=[case[0] for case in SELECTIVE_CUTS])
def test_tags_past_a_cut_make_a_truncated_file_not_a_smaller_record(
        tmp_path, name, cut_in, into, before, after):
    """--tags stepped over a value cut by the file's end as over the file's own end:
    the selected elements after it were missing from a record, without a word."""
    root = tmp_path / "in"
    root.mkdir()
    (root / name).write_bytes(truncated_at(name, cut_in, into))
    whole = fastdump.dump([root], tmp_path / "whole", progress=False)
    full_error = read_jsonl(tmp_path / "whole" / "errors.jsonl")[0]["error"]
    assert whole.errors == 1 and full_error.startswith("TruncatedError: "), full_error
    fastdump.dump([root], tmp_path / "past", tags=f"{before},{after}", progress=False)
    [error] = read_jsonl(tmp_path / "past" / "errors.jsonl")
    assert not (tmp_path / "past" / "dump.jsonl").read_text()
    assert error["error"] == full_error  # the same cut element named
    key = f"{tag_for_keyword(before):08X}"
    assert list(error["partial"]["dataset"]) == [key]
    with pytest.raises(fastdump.TruncatedError):
        fastdump.read_tags(root / name, tags=[before, after])
    # damage past the last selected tag is not looked at (README, --tags)
    fastdump.dump([root], tmp_path / "before", tags=before, progress=False)
    [record] = read_jsonl(tmp_path / "before" / "dump.jsonl")
    assert list(record["dataset"]) == [key]


def test_a_gzipped_dicom_file_is_named_as_such(dirty, tmp_path):
    root, out, _ = dirty
    errors = {r["path"]: r["error"] for r in read_jsonl(out / "errors.jsonl")}
    packed = root / "bad" / "gzipped.dcm.gz"
    assert errors[str(packed)] == (
        "NotDicomError: not a DICOM file: it is gzip-compressed; if it holds a DICOM file "
        "(a .dcm.gz), decompress it (gunzip) to dump it")
    unpacked = tmp_path / "gunzipped.dcm"
    unpacked.write_bytes(gzip.decompress(packed.read_bytes()))
    assert fastdump.read_tags(unpacked)["00080060"]["Value"] == ["CT"]


_UNPACKED = "; if it holds a DICOM file, decompress it ({}) to dump it"
_EXTRACTED = "; if it holds DICOM files, extract them ({}) to dump them"
PACKED = {
    "study.zip": ("it is a ZIP archive" + _EXTRACTED.format("unzip"),
                  lambda data: zipfile.ZipFile(io.BytesIO(data)).read(CT)),
    "study.tar": ("it is a tar archive" + _EXTRACTED.format("tar xf"),
                  lambda data: tarfile.open(fileobj=io.BytesIO(data)).extractfile(CT).read()),
    "ct.dcm.bz2": ("it is bzip2-compressed" + _UNPACKED.format("bunzip2"), bz2.decompress),
    "ct.dcm.xz": ("it is xz-compressed" + _UNPACKED.format("unxz"), lzma.decompress),
    "empty.7z": ("it is a 7-Zip archive" + _EXTRACTED.format("7z x"), None),
    "empty.zst": ("it is zstd-compressed" + _UNPACKED.format("unzstd"), None),
}


@pytest.mark.parametrize("name", sorted(PACKED))
def test_a_packed_file_is_named_with_the_way_to_unpack_it(dirty, tmp_path, name):
    root, out, _ = dirty
    errors = {r["path"]: r["error"] for r in read_jsonl(out / "errors.jsonl")}
    reason, unpack = PACKED[name]
    packed = root / "bad" / name
    assert errors[str(packed)] == f"NotDicomError: not a DICOM file: {reason}"
    if unpack is not None:  # what it holds is the DICOM file packed
        unpacked = tmp_path / "unpacked.dcm"
        unpacked.write_bytes(unpack(packed.read_bytes()))
        assert fastdump.read_tags(unpacked)["00080060"]["Value"] == ["CT"]


def test_good_files_are_dumped_as_if_alone(dirty, tmp_path):
    root, out, _ = dirty
    records = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    for name in GOOD:
        assert records[str(root / name)]["dataset"] == fastdump.read_tags(root / name)


def test_invalid_text_keeps_its_bytes(dirty):
    root, out, _ = dirty
    records = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    record = records[str(root / "bad" / "invalid-utf8.dcm")]
    # b"Bad\xff\xfe " is not UTF-8: kept as raw bytes, not decoded with U+FFFD
    assert record["dataset"]["00100010"] == {"vr": "UN", "InlineBinary": "QmFk//4g"}
    assert record["warnings"][0]["error"].startswith("CharsetError")
    unknown = records[str(root / "bad" / "unknown-charset.dcm")]
    assert unknown["warnings"][0]["error"].startswith("UnknownCharset: 'ISO_IR 999'")


def test_symlink_loops_and_non_utf8_names(tmp_path):
    root = tmp_path / "a"
    root.mkdir()
    os.symlink(root, root / "loop")
    name = os.path.join(os.fsencode(root), b"caf\xe9.dcm")
    shutil.copy(pydicom_file("CT_small.dcm"), name)
    out = tmp_path / "out"
    for follow in (False, True):
        summary = fastdump.dump([root], out, follow_symlinks=follow, overwrite=True,
                                progress=False)
        assert (summary.ok, summary.errors) == (1, 0)
    (record,) = read_jsonl(out / "dump.jsonl")
    assert exact(record, "path") == os.fsdecode(name)  # the recorded name reopens the file
    assert fastdump.read_tags(exact(record, "path")) == record["dataset"]


def python_for_nobody() -> list[str] | None:
    """A command running fastdump as user 'nobody', or None if this machine has none.

    Root reads every file, so the test drops to 'nobody'. The venv's interpreter may
    sit under /root (mode 700), so fall back to the system python of the same version
    with this environment's packages on PYTHONPATH.
    """
    site = [p for p in sys.path if p.endswith("site-packages")]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": os.pathsep.join([repo, *site]), "PATH": "/usr/bin:/bin"}
    for python in (sys.executable, shutil.which("python3", path="/usr/bin:/bin")):
        if not python:
            continue
        try:
            probe = subprocess.run([python, "-c", "import fastdump"], user=65534, group=65534,
                                   extra_groups=[], env=env, capture_output=True, timeout=60)
        except OSError:
            continue
        if probe.returncode == 0:
            return [python], env
    return None


def test_files_the_user_may_not_read(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), root / "open.dcm")
    shutil.copy(pydicom_file("MR_small.dcm"), root / "secret.dcm")
    (root / "secret.dcm").chmod(0)
    (root / "locked").mkdir()
    shutil.copy(pydicom_file("MR_small.dcm"), root / "locked" / "inside.dcm")
    (root / "locked").chmod(0)
    out = tmp_path / "out"
    command, options = [sys.executable], {}
    if os.geteuid() == 0:  # root reads everything: run fastdump as 'nobody'
        for p in (tmp_path, root, root / "open.dcm", *tmp_path.parents):
            if p != root / "locked":
                p.chmod(p.stat().st_mode | 0o005 if p.is_file() else p.stat().st_mode | 0o001)
        for p in (tmp_path, root):
            p.chmod(0o755)
        (root / "open.dcm").chmod(0o644)
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        found = python_for_nobody()
        if found is None:
            pytest.skip("no interpreter that user 'nobody' may run")
        command, env = found
        options = {"user": 65534, "group": 65534, "extra_groups": [], "env": env}
    result = subprocess.run([*command, "-m", "fastdump", "dump", str(root), "-o", str(out),
                             "--no-progress", "--jobs", "1"], capture_output=True, text=True,
                            timeout=120, **options)
    (root / "locked").chmod(0o755)
    assert result.returncode == 0, result.stderr
    errors = {r["path"]: r["error"] for r in read_jsonl(out / "errors.jsonl")}
    assert errors[str(root / "secret.dcm")].startswith("PermissionError: Permission denied")
    assert errors[str(root / "locked")].startswith("PermissionError: cannot list directory")
    for path in ("secret.dcm", "locked"):  # whose rights count (a folder's line said not)
        assert f"(fastdump runs as user id {65534 if os.geteuid() == 0 else os.getuid()})" \
            in errors[str(root / path)]
    assert [r["path"] for r in read_jsonl(out / "dump.jsonl")] == [str(root / "open.dcm")]
