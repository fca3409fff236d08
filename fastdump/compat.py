"""Third-party libraries: optional ones imported with a clear error, and every
private name of one that fastdump relies on, in one place.

pydicom, loky (joblib's process pool) and s3fs expose no public way to do these
few things; each is wrapped here with why it is needed, and
``tests/test_compat.py`` checks that every one of them still exists, so an
upgrade that removes one fails a test instead of a run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Any

from .errors import OptionError


def import_optional(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import an optional dependency, or say which ``pip install`` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OptionError(f"{needed_for} needs {module.split('.')[0]}: "
                          f"{install_hint(extra)}") from None


def install_hint(extra: str) -> str:
    """How to install an extra's packages: by their names, as fastdump is installed from
    its source folder, not from PyPI (``pip install "fastdump[parquet]"`` finds nothing)."""
    from importlib import metadata

    try:
        wanted = [req.split(";")[0].strip() for req in metadata.requires("fastdump") or []
                  if f'extra == "{extra}"' in req.replace("'", '"')]
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        wanted = []
    if not wanted:
        return f'pip install ".[{extra}]" in fastdump\'s source folder'
    names = " ".join(f'"{req}"' for req in wanted)
    return f"pip install {names} (fastdump's [{extra}] extra)"


# --- pydicom ------------------------------------------------------------------


def pydicom_data(name: str) -> ModuleType:
    """One of pydicom's data modules (``_dicom_dict``, ``_private_dict``), loaded from
    its file without running ``pydicom/__init__.py``: they are plain dicts."""
    import importlib.util

    spec = importlib.util.find_spec("pydicom")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise OptionError("fastdump needs pydicom: pip install pydicom")
    path = f"{list(spec.submodule_search_locations)[0]}/{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"fastdump._pydicom{name}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def pydicom_version() -> str:
    """pydicom's version, without importing it (nor importlib.metadata, ~50 ms) when this
    process has not: read from the name of its ``pydicom-X.Y.Z.dist-info`` folder."""
    module = sys.modules.get("pydicom")
    if module is not None:
        return str(module.__version__)
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pydicom")
    if spec is not None and spec.origin:
        for dist in Path(spec.origin).parent.parent.glob("pydicom-*.dist-info"):
            return dist.name[len("pydicom-"):-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pydicom")
    except PackageNotFoundError:
        return "unknown"


def character_sets(ds: Any) -> str | list[str]:
    """The Python codecs a pydicom Dataset decodes its text with."""
    return ds._character_set


def raw_elements(ds: Any) -> dict[int, Any]:
    """A Dataset's element store: raw elements stay raw (deferred values unread) here."""
    return ds._dict


# --- the interpreter -----------------------------------------------------------


def in_import(frame: Any) -> bool:
    """Whether the code ``frame`` runs (where a signal interrupted it) is inside an import
    statement: CPython's import machinery is frozen modules named ``<frozen importlib...>``."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def interpreter_exiting() -> bool:
    """Whether the main thread has ended and Python waits for the other threads to end
    (a script that started dump() in a thread and did not join it): concurrent.futures
    and loky then refuse new work and new workers ("cannot schedule new futures after
    interpreter shutdown", "can't register atexit after shutdown")."""
    import threading

    return bool(getattr(threading, "_SHUTTING_DOWN", False)) or sys.is_finalizing()


# --- loky (joblib) ----------------------------------------------------------------


def current_loky_executor() -> Any:
    """The reusable executor this process started, or None."""
    from joblib.externals.loky import reusable_executor

    return reusable_executor._executor


def loky_executor_usable(executor: Any) -> bool:
    """Whether an executor still takes work (not broken by a dead worker, not shut down)."""
    flags = executor._flags
    return flags.broken is None and not flags.shutdown


def loky_feeder_thread(executor: Any) -> Any:
    """The thread feeding an executor's call queue (loky does not join it itself)."""
    return getattr(getattr(executor, "_call_queue", None), "_thread", None)


def drop_loky_queued_work(executor: Any) -> None:
    """Empty the ids of work not yet handed to a worker (see stopping.stop_executor)."""
    import queue

    work_ids = getattr(executor, "_work_ids", None)
    with contextlib.suppress(queue.Empty, AttributeError):
        while True:
            work_ids.get_nowait()  # type: ignore[union-attr]


def _loky_processes(executor: Any) -> dict[int, Any]:
    """pid -> worker process of a loky executor (a copy: loky's thread changes it)."""
    return dict(getattr(executor, "_processes", None) or {})


def loky_worker_died_unnoticed(executor: Any) -> bool:
    """Whether a worker process of ``executor`` has ended (asked without blocking) while
    loky still takes work: it has not noticed yet, or a half-sent result holds it."""
    return loky_executor_usable(executor) and any(
        process.exitcode is not None for process in _loky_processes(executor).values())


def break_loky_executor(executor: Any) -> None:
    """Kill every worker of ``executor``, and close this process's end of the pipe they
    send results on: a read of a result its worker died while sending then ends (end of
    file), and loky breaks the pool as for any dead worker."""
    import signal

    for process in _loky_processes(executor).values():
        with contextlib.suppress(OSError, TypeError):  # gone already; not started
            os.kill(process.pid, signal.SIGKILL)
    writer = getattr(getattr(executor, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


def loky_worker_pids() -> list[int]:
    executor = current_loky_executor() if "joblib.externals.loky" in sys.modules else None
    return list(_loky_processes(executor))


def resource_tracker_pids() -> set[int]:
    """The pids of loky's and multiprocessing's resource trackers started by this process."""
    from multiprocessing import resource_tracker as stdlib

    modules: list[Any] = [stdlib]
    if "joblib.externals.loky" in sys.modules:
        from joblib.externals.loky.backend import resource_tracker as loky

        modules.append(loky)
    return {pid for module in modules
            if (pid := getattr(getattr(module, "_resource_tracker", None), "_pid", None))}


def release_semaphores() -> None:
    """Unlink this process's multiprocessing semaphores, as a normal exit would."""
    from multiprocessing import util

    registry = util._finalizer_registry  # type: ignore[attr-defined]
    for finalizer in list(registry.values()):
        if getattr(finalizer._callback, "__qualname__", "") == "SemLock._cleanup":
            finalizer()


# --- s3fs / fsspec ----------------------------------------------------------------


def s3_pages(fs: Any, bucket: str, prefix: str, max_items: int | None = None) -> Any:
    """s3fs's async iterator over the objects of a flat listing (fetched 1000 keys a page;
    ``max_items``: only so many, fetched in one smaller page)."""
    return fs._iterdir(bucket, delimiter="", prefix=prefix, max_items=max_items)


def has_s3_pages(fs: Any) -> bool:
    return hasattr(fs, "_iterdir")


async def cat_range(fs: Any, path: str, start: int, end: int,
                    listed: int | None = None) -> bytes:
    """Bytes [start, end) of one object, on the filesystem's event loop: fsspec's async
    API (``_``-prefixed by its convention), the backend's retries included.

    ``listed``: the object's size as listed. On S3 the answer's Content-Range says the
    size of the object read; another one is an OSError: the object was replaced since
    (its first bytes, read as the listed size, could parse as a smaller file's record).
    """
    if listed is None or not has_s3_pages(fs):
        return await fs._cat_file(path, start=start, end=end)
    data, size = await _s3_range(fs, path, start, end)
    if size is not None and size != listed:
        raise OSError(changed_since_listed(size, listed))
    return data


def changed_since_listed(now: int, then: int) -> str:
    return (f"the object changed after it was listed ({now} bytes now, {then} then): "
            "--resume reads it again")


async def _s3_range(fs: Any, path: str, start: int, end: int) -> tuple[bytes, int | None]:
    """s3fs's ``_cat_file`` of a range (its retries, its error translation), keeping the
    size the answer gives."""
    from s3fs.core import _error_wrapper, version_id_kw

    bucket, key, version = fs.split_path(path)

    async def call_and_read() -> tuple[bytes, str | None]:
        resp = await fs._call_s3("get_object", Bucket=bucket, Key=key,
                                 Range=f"bytes={start}-{end - 1}", **version_id_kw(version))
        try:
            return await resp["Body"].read(), resp.get("ContentRange")
        finally:
            resp["Body"].close()

    data, content_range = await _error_wrapper(call_and_read, retries=fs.retries)
    total = (content_range or "").rpartition("/")[2]  # "bytes 0-545/39206"
    return data, int(total) if total.isdigit() else None
