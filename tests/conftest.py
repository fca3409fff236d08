"""Test archives built from the real DICOM files that ship with pydicom."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

# The fast path may only ever say "unsupported": any other failure of it is a bug,
# and must fail the test that meets it instead of quietly falling back to pydicom.
# Set here, before any run starts, so that worker processes inherit it too.
os.environ["FASTDUMP_STRICT"] = "1"


def pytest_report_header() -> str:
    from fastdump import hotpath

    return f"fastdump: {hotpath.describe()} ({hotpath.PURE_ENV}=1 runs the .py files)"


def pytest_sessionstart(session: pytest.Session) -> None:
    # a compiled module beside an edited .py shadows it: every test would run the old code
    from fastdump import hotpath

    stale = hotpath.stale_sources()
    if stale:
        pytest.exit(f"the compiled hot path is older than {', '.join(stale)}: "
                    "run pip install -e . again", returncode=1)

PYDICOM_FILES = sorted(f for f in get_testdata_files() if os.path.isfile(f))
TESTDATA_DIR = Path(os.path.commonpath(PYDICOM_FILES))

# Files that are not DICOM at all; each must become one error record.
NOT_DICOM = {
    "notes.dcm": b"This is a text file named .dcm\n" * 20,
    "empty.dcm": b"",
    "tiny": b"DI",
    "random.bin": bytes((i * 7919 + 13) % 256 for i in range(3000)),
}


def pydicom_file(name: str) -> str:
    """Path of one of pydicom's test files."""
    return next(f for f in PYDICOM_FILES if os.path.basename(f) == name)


def pydicom_path_file(folder: Path) -> str:
    """A real file only the pydicom path reads: CT_small.dcm with an empty person name
    among several (pydicom's to_json_dict fails on it: the record keeps its bytes)."""
    import pydicom

    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientName = ["A", "", "B"]
    path = folder / "empty-name-among-several.dcm"
    ds.save_as(path)
    return str(path)


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All of pydicom's test files (its folder tree copied), a few non-DICOM files,
    and the same file names in two folders."""
    root = tmp_path_factory.mktemp("archive")
    shutil.copytree(TESTDATA_DIR, root / "pydicom")
    junk = root / "junk"
    junk.mkdir()
    for name, data in NOT_DICOM.items():
        (junk / name).write_bytes(data)
    for series in ("series1", "series2"):
        (root / "study" / series).mkdir(parents=True)
        shutil.copy(pydicom_file("CT_small.dcm"), root / "study" / series / "IM0001")
    return root


def regular_files(root: Path) -> set[str]:
    """Every regular file under root, as fastdump records it (absolute, no symlinks)."""
    found = set()
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.add(os.path.abspath(path))
    return found
