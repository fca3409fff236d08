"""Every private name of a third-party library fastdump relies on still exists."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading

import pydicom
import pytest

from fastdump import compat

from .conftest import pydicom_file


def test_pydicom_version_without_importing_it():
    code = ("import sys; from fastdump import compat; v = compat.pydicom_version(); "
            "assert 'pydicom' not in sys.modules and 'importlib.metadata' not in sys.modules; "
            "print(v)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == pydicom.__version__, result.stderr


def test_pydicom_private_names():
    assert compat.pydicom_data("_dicom_dict").DicomDictionary[0x00100010][0] == "PN"
    assert "GEMS_IDEN_01" in compat.pydicom_data("_private_dict").private_dictionaries
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    assert compat.character_sets(ds) == ["latin_1"]  # CT_small is ISO_IR 100
    assert 0x00100010 in compat.raw_elements(ds)


def test_loky_private_names():
    from joblib.externals.loky import get_reusable_executor, reusable_executor

    assert hasattr(reusable_executor, "_executor")
    executor = get_reusable_executor(max_workers=1, timeout=10)
    try:
        assert executor.submit(int, "7").result() == 7
        assert compat.current_loky_executor() is executor
        assert compat.loky_worker_pids() and all(isinstance(p, int)
                                                 for p in compat.loky_worker_pids())
        assert isinstance(compat.loky_feeder_thread(executor), threading.Thread)
        assert hasattr(executor._work_ids, "get_nowait")
        compat.drop_loky_queued_work(executor)
        trackers = compat.resource_tracker_pids()
        assert trackers and all(isinstance(p, int) for p in trackers)
    finally:
        executor.shutdown(wait=True, kill_workers=True)


def test_multiprocessing_private_names():
    from multiprocessing import util

    assert isinstance(util._finalizer_registry, dict)
    compat.release_semaphores()  # none of ours are left: it must simply run


def test_s3fs_private_names():
    s3fs = pytest.importorskip("s3fs")
    assert inspect.iscoroutinefunction(s3fs.S3FileSystem._iterdir) or inspect.isasyncgenfunction(
        s3fs.S3FileSystem._iterdir)
    assert isinstance(s3fs.core.S3File.details, property) and s3fs.core.S3File.details.fset
    assert "max_items" in inspect.signature(s3fs.S3FileSystem._iterdir).parameters
    # compat.cat_range: fsspec's async API, as the header prefetch awaits it
    assert inspect.iscoroutinefunction(s3fs.S3FileSystem._cat_file)
    assert {"start", "end"} <= set(inspect.signature(s3fs.S3FileSystem._cat_file).parameters)


def test_a_missing_extra_names_its_pip_install():
    """By the extra's own packages: fastdump is not on PyPI, "fastdump[parquet]" finds nothing."""
    with pytest.raises(compat.OptionError, match=r'^--format parquet needs no_such_module: '
                       r'pip install "pyarrow>=14" \(fastdump\'s \[parquet\] extra\)$'):
        compat.import_optional("no_such_module", "parquet", "--format parquet")
    assert compat.install_hint("s3") == \
        'pip install "s3fs>=2024.3" "fsspec>=2024.3" (fastdump\'s [s3] extra)'
    assert compat.install_hint("no_such_extra") == \
        'pip install ".[no_such_extra]" in fastdump\'s source folder'
