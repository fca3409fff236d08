"""Archives in object storage: ``s3://bucket/prefix/`` or any other fsspec URL.

Two jobs, both through fsspec (extra ``fastdump[s3]``, imported only here):

* :func:`walk_url` streams the listing as :class:`~fastdump.walk.Entry` items
  (size and LastModified straight from the listing);
* :func:`open_url` opens one object so that only its header is fetched.

Why the open is tuned: s3fs reads in blocks of 5-50 MiB by default, so a plain
open of a file with 100 MB of pixel data downloads most of it; no cache at all
turns pydicom's many small reads into hundreds of GET requests. A 64 KiB block
with a read-ahead cache fetches the header in one or two ranged GETs, and the
size known from the listing spares a HEAD request per object.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import IO, Any

from . import compat
from .errors import InputNotFoundError, OptionError
from .types import Entry, Found, Problem, Skipped

BLOCK_SIZE = 64 * 1024  # bytes fetched past each read: one GET covers most headers
_S3_PROTOCOLS = ("s3", "s3a")


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path within it.

    Credentials, region and endpoint come from the usual places (for S3: the
    AWS_* environment variables, including AWS_ENDPOINT_URL, and ~/.aws/config).
    """
    fsspec = compat.import_optional("fsspec", "s3", f"reading {url}")
    compat.import_optional("fsspec.core", "s3", f"reading {url}")
    protocol = url.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol in _S3_PROTOCOLS:
        options["default_block_size"] = BLOCK_SIZE
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise OptionError(
            f"reading {protocol}:// URLs needs an fsspec backend: {exc} "
            "(for S3: pip install 'fastdump[s3]')"
        ) from None
    except ValueError as exc:  # unknown protocol
        raise OptionError(f"cannot read {url}: {exc}") from None


def check_url(url: str) -> None:
    """Raise :class:`InputNotFoundError` if nothing exists at ``url``."""
    fs, path = filesystem(url)
    try:
        found = fs.exists(path)
    except Exception as exc:  # noqa: BLE001 - any backend failure is unusable input
        raise InputNotFoundError(f"cannot list {url}: {type(exc).__name__}: {exc}") from None
    if not found:
        raise InputNotFoundError(f"no such object or prefix: {url}")


def open_url(url: str, size: int | None = None) -> IO[bytes]:
    """Open ``url`` for reading with a small block and a read-ahead cache.

    ``size`` (from the listing) spares the backend a HEAD request to learn it.
    """
    fs, path = filesystem(url)
    kwargs: dict[str, Any] = {"block_size": BLOCK_SIZE, "cache_type": "readahead"}
    if size is not None:
        kwargs["size"] = size
    fp = fs.open(path, "rb", **kwargs)
    if size is not None and isinstance(getattr(type(fp), "details", None), property):
        # s3fs looks up the object's details (a HEAD request) on the first read
        # unless they are known; the listing already told us all it needs.
        fp.details = {"name": path, "size": size, "type": "file"}
    return fp


def walk_url(url: str, seen: set[str]) -> Iterator[Found]:
    """Yield every object under ``url`` (an object, or a prefix/folder), once each.

    S3 listings stream page by page (1000 keys per request, in key order);
    other backends are walked folder by folder, in sorted order.
    """
    fs, path = filesystem(url)
    try:
        for info in _list(fs, url, path):
            found = _to_found(fs, info)
            if found.path not in seen:
                seen.add(found.path)
                yield found
    except FileNotFoundError as exc:
        yield Problem(url, f"FileNotFoundError: cannot list: {exc}")
    except Exception as exc:  # noqa: BLE001 - a failed listing is reported, not fatal
        yield Problem(url, f"{type(exc).__name__}: cannot list: {exc}")


def _list(fs: Any, url: str, path: str) -> Iterator[dict]:
    if not url.endswith("/"):
        info = fs.info(path)
        if info.get("type") != "directory":
            yield info
            return
    if compat.has_s3_pages(fs) and fs.protocol[0] in _S3_PROTOCOLS:
        yield from _stream_s3(fs, path)
        return
    for _, _, files in fs.walk(path, detail=True):
        for name in sorted(files):
            yield files[name]


def _stream_s3(fs: Any, path: str) -> Iterator[dict]:
    """The flat listing of an S3 prefix, one page at a time.

    ``fs.find`` would hold the whole listing (millions of keys) before the
    first file is read; s3fs's page iterator is async, so it is driven here
    step by step on s3fs's own event loop.
    """
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    prefix = key.rstrip("/") + "/" if key else ""
    pages = compat.s3_pages(fs, bucket, prefix)
    try:
        while True:
            try:
                yield sync(fs.loop, pages.__anext__)
            except StopAsyncIteration:
                return
    finally:
        sync(fs.loop, pages.aclose)


def _to_found(fs: Any, info: dict) -> Found:
    url = fs.unstrip_protocol(info["name"])
    if info.get("type") == "directory" or info["name"].endswith("/"):
        return Skipped(url, "folder marker, not an object")
    return Entry(url, int(info["size"]), _mtime(info))


def _mtime(info: dict) -> float | None:
    """Modification time as epoch seconds: LastModified on S3, mtime elsewhere."""
    for key in ("LastModified", "mtime", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
