"""Third-party libraries: optional ones imported with a clear error, and every
private name of one that fastdump relies on, in one place.

pydicom, loky (joblib's process pool) and s3fs expose no public way to do these
few things; each is wrapped here with why it is needed, and
``tests/test_compat.py`` checks that every one of them still exists, so an
upgrade that removes one fails a test instead of a run.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .errors import OptionError


def import_optional(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import an optional dependency, or say which ``pip install`` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OptionError(f"{needed_for} needs {module.split('.')[0]}: "
                          f'pip install "fastdump[{extra}]"') from None


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


def character_sets(ds: Any) -> str | list[str]:
    """The Python codecs a pydicom Dataset decodes its text with."""
    return ds._character_set


def raw_elements(ds: Any) -> dict[int, Any]:
    """A Dataset's element store: raw elements stay raw (deferred values unread) here."""
    return ds._dict


# --- loky (joblib) ----------------------------------------------------------------


def current_loky_executor() -> Any:
    """The reusable executor this process started, or None."""
    from joblib.externals.loky import reusable_executor

    return reusable_executor._executor


def starts_workers_on_submit(executor: Any) -> bool:
    """Whether the next submit may start worker processes (loky starts missing ones
    lazily, in submit): then SIGINT must be ignored meanwhile, so they inherit it."""
    processes = getattr(executor, "_processes", None)
    return processes is None or len(processes) < executor._max_workers


# --- s3fs / fsspec ----------------------------------------------------------------


def s3_pages(fs: Any, bucket: str, prefix: str, max_items: int | None = None) -> Any:
    """s3fs's async iterator over the objects of a flat listing (fetched 1000 keys a page;
    ``max_items``: only so many, fetched in one smaller page)."""
    return fs._iterdir(bucket, delimiter="", prefix=prefix, max_items=max_items)


def has_s3_pages(fs: Any) -> bool:
    return hasattr(fs, "_iterdir")


async def cat_range(fs: Any, path: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of one object, on the filesystem's event loop: fsspec's async
    API (``_``-prefixed by its convention), the backend's retries included."""
    return await fs._cat_file(path, start=start, end=end)
