"""The suites' archives, built once and kept in the work directory.

Each archive sits next to a marker ``NAME.json`` holding what it was built
from; an archive whose marker matches is reused, anything else is rebuilt.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

# Real files hard-linked into the resume suite's archives: a CT, an MR, an RT plan and a
# JPEG 2000 file from pydicom's test data (records of 3-11 KB, ~7 KB on average).
LINK_SOURCES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm")
LINKS_PER_INODE = 50_000  # ext4 allows 65,000 links to one file
FILES_PER_DIR = 1_000


def marker(root: Path) -> Path:
    return root.with_name(root.name + ".json")


def cached(root: Path, spec: dict, build: Callable[[Path], None],
           log: Callable[[str], None]) -> Path:
    """``root`` as built by ``build`` from ``spec``: reused if its marker says so."""
    if marker(root).exists() and orjson.loads(marker(root).read_bytes()) == spec:
        return root
    marker(root).unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {root.name} ({spec})")
    started = time.perf_counter()
    build(root)
    log(f"built {root.name} in {time.perf_counter() - started:.0f} s")
    marker(root).write_bytes(orjson.dumps(spec))
    return root


def generated(workdir: Path, files: int, seed: int, tiny: bool,
              log: Callable[[str], None]) -> Path:
    """benchmarks/generate.py's CT/MR archive (``tiny``: 16x16 pixels, same elements)."""
    root = workdir / "archives" / f"{'tiny' if tiny else 'ct'}-{files}-seed{seed}"
    spec = {"kind": "generated", "files": files, "seed": seed, "tiny": tiny,
            "generator": _digest(HERE / "generate.py")}
    return cached(root, spec, lambda r: generate.generate(r, files, seed=seed, tiny_pixels=tiny),
                  log)


def mix(workdir: Path, files: int, log: Callable[[str], None]) -> Path:
    """pydicom's own test files (``get_testdata_files()``), copied until about ``files``."""
    import pydicom

    sources = pydicom_test_files()
    copies = max(1, round(files / len(sources)))
    root = workdir / "archives" / f"mix-{copies}x{len(sources)}"
    spec = {"kind": "mix", "copies": copies, "sources": len(sources),
            "pydicom": pydicom.__version__}

    def build(dest: Path) -> None:
        base = os.path.commonpath(sources)
        for i in range(copies):
            for src in sources:
                target = dest / f"copy-{i:03d}" / os.path.relpath(src, base)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)

    return cached(root, spec, build, log)


def pydicom_test_files() -> list[str]:
    """Every test file pydicom ships (only the local ones: nothing is downloaded)."""
    from pydicom.data import get_testdata_files

    return sorted(f for f in get_testdata_files() if os.path.isfile(f))


def links(workdir: Path, files: int, log: Callable[[str], None]) -> Path:
    """``files`` hard links to a few real files, 1,000 per folder: a large archive for free."""
    import pydicom

    root = workdir / "archives" / f"links-{files}"
    spec = {"kind": "links", "files": files, "sources": list(LINK_SOURCES),
            "pydicom": pydicom.__version__}

    def build(dest: Path) -> None:
        inodes = _link_sources(dest.with_name(dest.name + "-sources"), files)
        for i in range(files):
            folder = dest / f"d{i // FILES_PER_DIR:05d}"
            if i % FILES_PER_DIR == 0:
                folder.mkdir(parents=True)
            os.link(inodes[i % len(inodes)], folder / f"f{i:07d}.dcm")

    return cached(root, spec, build, log)


def _link_sources(folder: Path, files: int) -> list[Path]:
    """Copies of the source files, enough that no file gets more than LINKS_PER_INODE links.

    Kept outside the archive (the walk must not find them).
    """
    by_name = {os.path.basename(p): p for p in pydicom_test_files()}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sets = math.ceil(files / (LINKS_PER_INODE * len(LINK_SOURCES)))
    inodes = []
    for s in range(sets):
        for name in LINK_SOURCES:
            dest = folder / f"{s:03d}-{name}"
            shutil.copyfile(by_name[name], dest)
            inodes.append(dest)
    return inodes


def ct_images(root: Path, count: int, max_bytes: int = 1 << 20) -> list[str]:
    """The first ``count`` single-frame CT images of a generated archive, in walk order."""
    import pydicom

    chosen = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            if "mixed" in folder or os.path.getsize(path) > max_bytes:
                continue  # pydicom's real files, enhanced multi-frame
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
            if ds.get("Modality") == "CT":
                chosen.append(path)
                if len(chosen) == count:
                    return chosen
    raise SystemExit(f"{root} holds only {len(chosen)} single-frame CT images, not {count}")


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
