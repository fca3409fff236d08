"""Archives in object storage: ``s3://bucket/prefix/`` or any other fsspec URL.

Three jobs, all through fsspec (extra ``fastdump[s3]``, imported only here):

* :func:`walk_url` streams the listing as :class:`~fastdump.walk.Entry` items
  (size and LastModified straight from the listing);
* :class:`Heads` fetches the first :data:`HEAD_BYTES` of every object of a
  batch, many requests in flight, while the worker parses the ones already in;
* :func:`open_url` opens one object so that only its header is fetched: what
  a read past the prefetched block (a long header) goes through, and any read
  outside a worker's batch.

Why the open is tuned: s3fs reads in blocks of 5-50 MiB by default, so a plain
open of a file with 100 MB of pixel data downloads most of it; no cache at all
turns pydicom's many small reads into hundreds of GET requests. A 64 KiB block
with a read-ahead cache fetches the header in one or two ranged GETs, and the
size known from the listing spares a HEAD request per object.

Why the prefetch: a request to an object store takes 10-100 ms, a header's
parse well under one, so reading one object after the other leaves a worker
waiting on the network nearly all the time. :class:`Heads` keeps up to
``--fetch-concurrency`` ranged GETs in flight on fsspec's event loop (the
backend's own async ``_cat_file``, with its retries), and hands the blocks to
:func:`fastdump.source.open_source` in the batch's order.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import io
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import IO, Any, cast

from . import compat
from .errors import InputNotFoundError, OptionError
from .types import FETCH_CONCURRENCY, Entry, Found, Problem, Skipped

BLOCK_SIZE = 64 * 1024  # bytes fetched past each read: one GET covers most headers
HEAD_BYTES = 64 * 1024  # prefetched per object: the fast parser's first read and more
HOLD = 2  # blocks fetched ahead of the parser: at most HOLD x the requests in flight
_S3_PROTOCOLS = ("s3", "s3a")


def filesystem(url: str, connections: int | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path within it.

    Credentials, region and endpoint come from the usual places (for S3: the
    AWS_* environment variables, including AWS_ENDPOINT_URL, and ~/.aws/config).
    ``connections``: requests this process may have in flight on it (S3's
    client keeps only 10 connections unless told; every client here keeps at
    least :data:`~fastdump.types.FETCH_CONCURRENCY`, so that the listing and
    the reads share one client unless more are asked for).
    """
    fsspec = compat.import_optional("fsspec", "s3", f"reading {url}")
    compat.import_optional("fsspec.core", "s3", f"reading {url}")
    protocol = url.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol in _S3_PROTOCOLS:
        options["default_block_size"] = BLOCK_SIZE
        configured = fsspec.config.conf.get(protocol, {}).get("config_kwargs", {})
        pool = max(connections or 0, FETCH_CONCURRENCY)
        options["config_kwargs"] = {**configured, "max_pool_connections": pool}
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise OptionError(
            f"reading {protocol}:// URLs needs an fsspec backend: {exc} "
            f"(for S3: {compat.install_hint('s3')})"
        ) from None
    except ValueError as exc:  # unknown protocol
        raise OptionError(f"cannot read {url}: {exc}") from None


def check_url(url: str) -> None:
    """Raise :class:`InputNotFoundError` if nothing exists at ``url``."""
    fs, path = filesystem(url)
    if not path.strip("/"):  # (s3:// listed every bucket, and failed on their names)
        raise InputNotFoundError(f"{url} names no bucket: give one, and a prefix if you "
                                 "like (s3://bucket/prefix/)")
    try:
        found = _exists(fs, url, path)
    except Exception as exc:  # noqa: BLE001 - any backend failure is unusable input
        raise InputNotFoundError(f"cannot list {url}: {type(exc).__name__}: {exc}") from None
    if not found:
        raise InputNotFoundError(f"no such object or prefix: {url}")


def _exists(fs: Any, url: str, path: str) -> bool:
    """``fs.exists``, in one request for an S3 prefix (exists() makes two: HEAD, then LIST)."""
    if not (url.endswith("/") and compat.has_s3_pages(fs) and fs.protocol[0] in _S3_PROTOCOLS):
        return bool(fs.exists(path))
    bucket, key, _ = fs.split_path(path)
    if not key:
        return bool(fs.exists(path))
    from fsspec.asyn import sync

    pages = compat.s3_pages(fs, bucket, key.rstrip("/") + "/", max_items=1)
    try:
        sync(fs.loop, pages.__anext__)
        return True
    except (StopAsyncIteration, FileNotFoundError):
        return False
    finally:
        sync(fs.loop, pages.aclose)


def open_url(url: str, size: int | None = None, connections: int | None = None) -> IO[bytes]:
    """Open ``url`` for reading with a small block and a read-ahead cache.

    ``size`` (from the listing) spares the backend a HEAD request to learn it.
    """
    fs, path = filesystem(url, connections)
    return _open(fs, path, size)


def _open(fs: Any, path: str, size: int | None) -> IO[bytes]:
    kwargs: dict[str, Any] = {"block_size": BLOCK_SIZE, "cache_type": "readahead"}
    if size is not None:
        kwargs["size"] = size
    fp = fs.open(path, "rb", **kwargs)
    if size is not None and isinstance(getattr(type(fp), "details", None), property):
        # s3fs looks up the object's details (a HEAD request) on the first read
        # unless they are known; the listing already told us all it needs.
        fp.details = {"name": path, "size": size, "type": "file"}
    return fp


class Heads:
    """The first :data:`HEAD_BYTES` of each object of a batch, fetched ``concurrency`` at a time.

    Fetching starts at once, in the batch's order, on fsspec's event loop
    (a thread of this process); :meth:`open` waits for one object's block.
    Bounded: at most ``concurrency`` requests in flight, and at most
    ``HOLD * concurrency`` blocks fetched ahead of the object being read
    (the fetch waits for the parser). Objects opened in the batch's order
    (each may be opened again, e.g. by the pydicom path after the fast one);
    a block is dropped once a later object is opened. Objects of a backend
    without async support are not prefetched: :meth:`open` says None and
    they are opened as before. Use as a context manager, or :meth:`close`.
    """

    def __init__(self, entries: Sequence[Entry], concurrency: int,
                 block: int = HEAD_BYTES) -> None:
        self.concurrency = max(1, concurrency)
        self._paths = [e.path for e in entries]
        self._sizes = [e.size for e in entries]
        self._blocks: list[Future | None] = [None] * len(entries)
        self._where: list[tuple[Any, str] | None] = [None] * len(entries)  # (fs, path)
        self._cursor = 0  # the object being read: those before it are done
        self._stalled = False  # the fetch waits for the cursor to move (to be woken)
        self._moved = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: Future | None = None
        jobs = []
        filesystems: dict[str, Any] = {}
        for i, entry in enumerate(entries):
            try:
                fs, path = self._locate(entry.path, filesystems)
            except Exception:  # noqa: BLE001 - open_url will say why, for this object only
                continue
            self._where[i] = (fs, path)
            if not getattr(fs, "async_impl", False):
                continue
            if self._loop is None:
                self._loop = fs.loop
            elif fs.loop is not self._loop:
                continue
            self._blocks[i] = Future()
            jobs.append((i, fs, path, max(0, min(entry.size, block))))
        if jobs:
            assert self._loop is not None
            self._task = asyncio.run_coroutine_threadsafe(self._fetch_all(jobs), self._loop)

    def _locate(self, url: str, filesystems: dict[str, Any]) -> tuple[Any, str]:
        """:func:`filesystem` once per bucket (or host) of the batch, not once per object:
        even from fsspec's cache, a filesystem costs more than a header parsed from memory."""
        protocol, sep, rest = url.partition("://")
        if not sep or "::" in protocol:  # chained URLs: looked up every time
            return filesystem(url, self.concurrency)
        root = f"{protocol}://{rest.split('/', 1)[0]}"
        fs = filesystems.get(root)
        if fs is None:
            fs = filesystems[root] = filesystem(url, self.concurrency)[0]
        return fs, fs._strip_protocol(url)

    def __enter__(self) -> Heads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop fetching; requests still in flight are cancelled."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._blocks = [None] * len(self._blocks)
        self._where = [None] * len(self._where)

    def open(self, url: str, size: int | None = None) -> IO[bytes] | None:
        """``url`` opened on its prefetched block, or None if it has none.

        Waits for the block; raises what fetching it raised (a deleted
        object's FileNotFoundError, the error the backend gave up with).
        """
        at = self._find(url)
        if at is None:
            return None
        if at > self._cursor:
            for i in range(self._cursor, at):
                self._blocks[i] = self._where[i] = None  # done with: its bytes may go
            self._cursor = at
            if self._stalled and self._loop is not None:  # the fetch waits for the parser
                self._stalled = False
                self._loop.call_soon_threadsafe(self._moved.set)
        block, where = self._blocks[at], self._where[at]
        if block is None or where is None:
            return None
        return cast(IO[bytes], HeadFile(url, self._sizes[at], block.result(), *where))

    def _find(self, url: str) -> int | None:
        paths = self._paths
        for i in range(self._cursor, len(paths)):
            if paths[i] == url:
                return i
        return None

    async def _fetch_all(self, jobs: list[tuple[int, Any, str, int]]) -> None:
        in_flight = asyncio.Semaphore(self.concurrency)
        ahead = HOLD * self.concurrency
        tasks = []
        try:
            for i, fs, path, end in jobs:
                while i >= self._cursor + ahead:
                    # flag first, then look again: open() moves the cursor, then
                    # looks at the flag, so no wake-up is lost between the two
                    self._moved.clear()
                    self._stalled = True
                    if i < self._cursor + ahead:
                        self._stalled = False
                        break
                    await self._moved.wait()
                await in_flight.acquire()
                tasks.append(asyncio.ensure_future(self._fetch(i, fs, path, end, in_flight)))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _fetch(self, i: int, fs: Any, path: str, end: int,
                     in_flight: asyncio.Semaphore) -> None:
        block = self._blocks[i]
        try:
            data = await compat.cat_range(fs, path, 0, end, self._sizes[i]) if end else b""
        except asyncio.CancelledError:
            if block is not None:
                block.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - this object's error, raised when opened
            if block is not None:
                block.set_exception(exc)
        else:
            if block is not None:
                block.set_result(data)
        finally:
            in_flight.release()


class HeadFile(io.RawIOBase):
    """An object read from its prefetched first bytes; reads past them fetch the rest.

    What :func:`fastdump.source.open_source` gives for an object of the
    current batch: the parsers read it as any file. A read beyond the block
    (a header longer than :data:`HEAD_BYTES`) opens the object as
    :func:`open_url` does (``fs``, ``path``: where it is), a ranged GET for
    what is missing.
    """

    def __init__(self, url: str, size: int, head: bytes, fs: Any, path: str) -> None:
        super().__init__()
        self.name = url
        self.size = size
        self._head = head
        self._pos = 0
        self._rest: IO[bytes] | None = None
        self._fs, self._path = fs, path

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self.size
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence})")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        self._pos = offset
        return offset

    def read(self, n: int | None = -1) -> bytes:
        pos, head = self._pos, self._head
        end = self.size if n is None or n < 0 else min(pos + n, self.size)
        if end <= pos:
            return b""
        if end <= len(head):
            data = head[pos:end]
        else:
            data = head[pos:] if pos < len(head) else b""
            data += self._read_rest(pos + len(data), end)
        self._pos = pos + len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _read_rest(self, start: int, end: int) -> bytes:
        if self._rest is None:
            self._rest = _open(self._fs, self._path, self.size)
        self._rest.seek(start)
        return self._rest.read(end - start)

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        super().close()


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


def url_entry(url: str, fresh: bool = False) -> Entry:
    """One object, as the walk lists it: ``FileNotFoundError`` if there is none,
    ``IsADirectoryError`` for a prefix (a folder). ``fresh``: as the store says now, not
    as this process's listing left it in the filesystem's cache."""
    fs, path = filesystem(url)
    if fresh:
        fs.invalidate_cache(path)
    found = _to_found(fs, fs.info(path))
    if not isinstance(found, Entry):
        raise IsADirectoryError(errno.EISDIR, "a prefix (folder), not an object", url)
    return found


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
