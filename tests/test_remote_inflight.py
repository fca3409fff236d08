"""Object storage with many header fetches in flight (issue 11): a real moto S3 server
on 127.0.0.1, reached through the tests' byte-counting proxy (tests/s3_support.py),
one of them holding each request back to play a distant store.

What must hold with the prefetch as without it: the same records, the same
error lines (a deleted object, a store that keeps failing), every object once,
a header longer than the prefetched block complete, few bytes per object; and
what the prefetch is for: requests of one worker really in flight together,
never more than asked.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pydicom
import pytest
from pydicom.encaps import encapsulate

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto")

import fastdump  # noqa: E402
import fastdump.pool  # noqa: E402
import fastdump.worker  # noqa: E402
from fastdump import batching, remote  # noqa: E402
from fastdump.batching import FIRST, MOST, BatchSizer, batches  # noqa: E402
from fastdump.types import Entry, Options  # noqa: E402
from fastdump.walk import walk  # noqa: E402
from fastdump.worker import process_batch  # noqa: E402

from . import poison  # noqa: E402
from .conftest import NOT_DICOM, pydicom_file  # noqa: E402
from .helpers import records_by_path, run_cli  # noqa: E402
from .s3_support import CountingProxy, start_moto, write_large_dicom  # noqa: E402

BUCKET = "inflight"
SAMPLES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm",
           "SC_rgb_small_odd.dcm", "waveform_ecg.dcm", "image_dfl.dcm", "nested_priv_SQ.dcm"]
MANY = [f"f{i:03d}-{SAMPLES[i % len(SAMPLES)]}" for i in range(40)] + ["notes.dcm", "empty.dcm"]
LONG = "long.dcm"  # a header longer than one prefetched block
LONG_TEXT = "".join(f"finding {i:05d}: nothing to report.\n" for i in range(2500))  # ~90 KB
PIXEL_BYTES = 20_000_000
DELAY = 0.1  # seconds per request through the slow proxy
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class Store:
    def __init__(self, tmp: Path) -> None:
        self.proc, self.port = start_moto(tmp / "moto.log")
        self.proxy = CountingProxy(self.port)  # no delay
        self.slow = CountingProxy(self.port, delay=DELAY)
        self.direct = s3fs.S3FileSystem(key="testing", secret="testing",
                                        endpoint_url=f"http://127.0.0.1:{self.port}")
        self.local = tmp / "local"

    def env(self, proxy: CountingProxy) -> dict[str, str]:
        env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
        env.pop("AWS_PROFILE", None)
        return env

    def close(self) -> None:
        self.proxy.close()
        self.slow.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inflight")
    store = Store(tmp)
    try:
        many = store.local / "many"
        many.mkdir(parents=True)
        for name in MANY[:-2]:
            shutil.copy(pydicom_file(name.split("-", 1)[1]), many / name)
        for name in ("notes.dcm", "empty.dcm"):
            (many / name).write_bytes(NOT_DICOM[name])
        (store.local / "long").mkdir()
        write_large_dicom(store.local / "long" / LONG, LONG_TEXT, bytes(range(256)) * 20,
                          PIXEL_BYTES)
        store.direct.mkdir(BUCKET)
        store.direct.put(str(store.local) + "/", f"{BUCKET}/", recursive=True)
        yield store
    finally:
        store.close()


@pytest.fixture
def s3_env(store, monkeypatch):
    """This process reaches the store through the proxy without delay."""
    for name, value in store.env(store.proxy).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield store
    s3fs.S3FileSystem.clear_instance_cache()


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = run_cli("dump", *args, "--no-progress", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def local_many(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("local-many") / "out"
    fastdump.dump([store.local / "many"], out, jobs=1, progress=False)
    root = store.local / "many"
    return records_by_path(out, [f"{root.as_uri()}/", f"{root}/"])


def gets(proxy: CountingProxy, key: str = "") -> list:
    return [r for r in proxy.requests if r.method == "GET" and "list-type" not in r.target
            and r.target.split("?")[0].startswith(f"/{BUCKET}/{key}")]


# ------------------------------------------------------------- requests in flight


@pytest.mark.parametrize("concurrency", [1, 8])
def test_requests_overlap_up_to_the_concurrency_and_records_are_unchanged(
        store, local_many, tmp_path, concurrency):
    proxy = store.slow
    proxy.reset()
    out = tmp_path / "out"
    run(store.env(proxy), f"s3://{BUCKET}/many/", "-o", str(out), "--jobs", "1",
            "--fetch-concurrency", str(concurrency))
    assert records_by_path(out, [f"s3://{BUCKET}/many/"]) == local_many
    # one GET per object: the prefetched block; a second one for the rest of the
    # header only where it is longer than the block (the ECG's waveform, 90 KB in);
    # none for an empty object
    per_object = Counter(r.target.removeprefix(f"/{BUCKET}/many/") for r in gets(proxy, "many/"))
    assert set(per_object) == set(MANY) - {"empty.dcm"}
    assert {n for n, count in per_object.items() if count > 1} == {
        n for n in MANY if "waveform" in n}
    assert max(per_object.values()) == 2
    assert not [r for r in proxy.requests if r.method == "HEAD" and "/many/" in r.target]
    # next to the blocks: the listing, and the GET for the rest of a header longer
    # than its block (the parser's, outside the blocks' count)
    assert proxy.max_in_flight <= concurrency + 2
    if concurrency > 1:
        # 42 objects, 0.1 s each: one at a time would take 4 s; the bound is loose so a
        # busy machine cannot fail it, but nowhere near one at a time
        assert proxy.max_in_flight >= concurrency // 2


def test_a_dask_worker_fetches_ahead_too(store, local_many, tmp_path):
    pytest.importorskip("distributed")
    proxy = store.slow
    proxy.reset()
    out = tmp_path / "out"
    run(store.env(proxy), f"s3://{BUCKET}/many/", "-o", str(out), "--scheduler", "local",
            "--jobs", "2", "--fetch-concurrency", "4")
    assert records_by_path(out, [f"s3://{BUCKET}/many/"]) == local_many
    assert {r.target for r in gets(proxy, "many/")} == {
        f"/{BUCKET}/many/{n}" for n in MANY if n != "empty.dcm"}
    # each of the 2 worker threads: 4 blocks and a header's rest (both waveform objects'
    # rests were seen in flight next to 8 blocks); and the listing
    assert 2 <= proxy.max_in_flight <= 2 * (4 + 1) + 1


# ------------------------------------------------------------- errors, as without prefetch


def many_entries() -> list[Entry]:
    found = list(walk([f"s3://{BUCKET}/many/"]))
    assert len(found) == len(MANY) and all(isinstance(e, Entry) for e in found)
    return found  # type: ignore[return-value]


def outcome_lines(outcomes) -> dict[str, bytes]:
    return {o.path: o.error_line or o.payload for o in outcomes}


def test_an_object_deleted_after_the_listing_is_the_same_error_line(s3_env):
    store = s3_env
    entries = many_entries()
    gone = entries[3]
    data = store.direct.cat_file(gone.path)
    store.direct.rm(gone.path)
    try:
        prefetched = outcome_lines(process_batch(entries, Options(fetch_concurrency=8)))
        one_by_one = outcome_lines(process_batch(entries, Options(fetch_concurrency=0)))
    finally:
        store.direct.pipe(gone.path, data)
    assert prefetched == one_by_one
    error = orjson.loads(prefetched[gone.path])
    assert error["error"] == ("FileNotFoundError: the file was deleted or moved after the walk "
                              "found it")
    assert (error["size"], error["mtime"]) == (gone.size, gone.mtime)
    assert sum(b"\"error\"" in line for line in prefetched.values()) == 3  # notes, empty


def test_a_throttled_request_is_retried(s3_env):
    store = s3_env
    entries = many_entries()
    expected = outcome_lines(process_batch(entries, Options(fetch_concurrency=8)))
    victim = entries[5].path
    key = victim.removeprefix("s3://")
    store.proxy.reset()
    store.proxy.fail(key, times=2)
    got = outcome_lines(process_batch(entries, Options(fetch_concurrency=8)))
    assert got == expected
    assert len(gets(store.proxy, key.split("/", 1)[1])) == 3  # 503, 503, then the block


def test_a_store_that_keeps_failing_gives_an_error_record_and_the_rest_is_read(
        s3_env, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own retries: keep the test short
    store = s3_env
    entries = [e for e in many_entries() if "/many/f" in e.path][:6]
    victim = entries[2].path
    key = victim.removeprefix("s3://")
    store.proxy.fail(key, times=10_000)
    try:
        prefetched = outcome_lines(process_batch(entries, Options(fetch_concurrency=8)))
        one_by_one = outcome_lines(process_batch(entries, Options(fetch_concurrency=0)))
    finally:
        store.proxy.fail(key, times=0)
    assert prefetched == one_by_one
    error = orjson.loads(prefetched[victim])["error"]
    assert "SlowDown" in error or "reduce your request rate" in error, error
    assert all(b"\"error\"" not in prefetched[e.path] for e in entries if e.path != victim)


# ------------------------------------------------------------- bytes per object


def test_a_header_longer_than_the_block_is_complete_in_two_requests(s3_env, tmp_path):
    store = s3_env
    url = f"s3://{BUCKET}/long/{LONG}"
    [entry] = list(walk([url]))
    store.proxy.reset()
    [outcome] = process_batch([entry], Options(fetch_concurrency=8))
    requests = gets(store.proxy, f"long/{LONG}")
    fetched = sum(r.received for r in requests)
    assert len(requests) == 2  # the prefetched block, then the rest of the header
    assert fetched < 0.02 * entry.size
    record = orjson.loads(outcome.payload)
    assert record["dataset"]["0040A160"]["Value"] == [LONG_TEXT]
    local = fastdump.read_record(store.local / "long" / LONG)
    assert record["dataset"] == orjson.loads(orjson.dumps(local["dataset"]).decode().replace(
        (store.local / "long").as_uri() + "/", f"s3://{BUCKET}/long/"))


@pytest.mark.parametrize("path", ["fast", "pydicom"])
def test_encapsulated_pixel_data_of_an_object_costs_no_request_past_its_header(
        s3_env, tmp_path, monkeypatch, path):
    """A local file's encapsulated Pixel Data is checked to end in the file (its last
    8 bytes are read); an object's is not: that would be one more request per object."""
    store = s3_env
    if path == "pydicom":
        monkeypatch.setattr(fastdump.worker, "try_fast_record", lambda *args: (None, "forced"))
    ds = pydicom.dcmread(pydicom_file("JPEG2000.dcm"))
    ds.PixelData = encapsulate([bytes(range(256)) * 1024])  # 256 KiB: past the block
    local = tmp_path / "encap.dcm"
    ds.save_as(local)
    assert local.stat().st_size > remote.HEAD_BYTES
    store.direct.pipe(f"{BUCKET}/encap/encap.dcm", local.read_bytes())
    [entry] = list(walk([f"s3://{BUCKET}/encap/encap.dcm"]))
    store.proxy.reset()
    [outcome] = process_batch([entry], Options(fetch_concurrency=8))
    assert len(gets(store.proxy, "encap/")) == 1  # the prefetched block only
    assert outcome.error_line is None
    record = orjson.loads(outcome.payload)
    assert record["dataset"] == fastdump.read_record(local)["dataset"]


def test_a_prefetched_object_reads_like_the_object(s3_env):
    store = s3_env
    url = f"s3://{BUCKET}/long/{LONG}"
    data = (store.local / "long" / LONG).read_bytes()[:400_000]
    size = (store.local / "long" / LONG).stat().st_size
    fp = remote.HeadFile(url, size, data[:1000], *remote.filesystem(url))
    rng = random.Random(11)
    with fp:
        assert fp.seek(0, io.SEEK_END) == size
        for _ in range(200):
            pos = rng.choice([rng.randrange(0, 2000), rng.randrange(0, 300_000)])
            n = rng.choice([0, 1, 7, 500, 1000, 70_000])
            assert fp.seek(pos) == pos
            assert fp.read(n) == data[pos:pos + n]
            assert fp.tell() == pos + n
        fp.seek(size - 10)
        assert len(fp.read()) == 10 and fp.read(5) == b""
    assert fp.closed


# ------------------------------------------------------------- every object once


def test_every_object_once_over_many_batches_and_listing_pages(store, tmp_path):
    """1,100 objects (two listing pages) in batches far larger than what may be held:
    the fetch waits for the parser and is woken again, batch after batch."""
    names = [f"p{i:05d}.dcm" for i in range(1100)]
    dicom = Path(pydicom_file("rtplan.dcm")).read_bytes()
    junk = NOT_DICOM["random.bin"]
    bodies = {n: junk if i % 50 == 7 else dicom for i, n in enumerate(names)}

    def put(name: str) -> None:
        store.direct.pipe(f"{BUCKET}/pages/{name}", bodies[name])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))
    out = tmp_path / "out"
    store.proxy.reset()
    run(store.env(store.proxy), f"s3://{BUCKET}/pages/", "-o", str(out), "--jobs", "2",
            "--fetch-concurrency", "3")
    found = records_by_path(out, [f"s3://{BUCKET}/pages/"])
    assert set(found) == {f"ROOT/{n}" for n in names}
    errors = {p for p, r in found.items() if "error" in r}
    assert errors == {f"ROOT/{n}" for i, n in enumerate(names) if i % 50 == 7}
    assert len(gets(store.proxy, "pages/")) == len(names)
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["files"], summary["ok"], summary["errors"]) == (1100, 1078, 22)


# ------------------------------------------------------------- which process reads

# Each outcome names the process that read it (tests/poison.py), as its "fallback".


def test_a_short_run_of_objects_reads_them_here(s3_env, local_many, tmp_path, monkeypatch):
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    monkeypatch.setattr(fastdump.pool, "START_AFTER", 0)  # what holds them back: not this
    url = f"s3://{BUCKET}/many/"
    summary = fastdump.dump([url], tmp_path / "out", jobs=2, progress=False, batch_size=4)
    assert set(summary.fallback_reasons) == {f"pid {os.getpid()}"}
    assert records_by_path(tmp_path / "out", [url]) == local_many


def test_a_longer_run_of_objects_hands_them_to_workers(s3_env, local_many, tmp_path,
                                                       monkeypatch):
    fastdump.pool.shutdown_local_pool()
    monkeypatch.setattr(fastdump.pool, "process_batch", poison.names_its_process)
    monkeypatch.setenv("FASTDUMP_TEST_SLOW_PID", str(os.getpid()))
    monkeypatch.setattr(fastdump.pool, "REMOTE_START_AFTER", 0)
    url = f"s3://{BUCKET}/many/"
    summary = fastdump.dump([url], tmp_path / "out", jobs=2, progress=False, batch_size=2)
    pids = {int(reason.split()[1]) for reason in summary.fallback_reasons}
    # the first batches were read here while the workers started (and imported the
    # store's client), the others by them
    assert os.getpid() in pids and pids - {os.getpid()}, pids
    assert records_by_path(tmp_path / "out", [url]) == local_many


# ------------------------------------------------------------- batches and the option


def test_batches_of_urls_keep_the_fetches_busy_and_local_ones_are_unchanged():
    sizer = BatchSizer(2, fetch_concurrency=32)
    assert sizer.size() == FIRST
    assert sizer.size(remote=True) == batching.REMOTE_ROUNDS * 32
    sizer.per_file = 0.004  # 4 ms a file: by work alone, 12 files
    assert sizer.size() == round(batching.TARGET_SECONDS / 0.004)
    assert sizer.size(remote=True) == batching.REMOTE_ROUNDS * 32
    sizer.per_file = 0.1  # slow files: no more than REMOTE_SECONDS of work
    assert sizer.size(remote=True) == round(batching.REMOTE_SECONDS / 0.1)
    sizer.per_file = 5.0
    assert sizer.size(remote=True) == 1
    assert BatchSizer(2, fetch_concurrency=1000).size(remote=True) == MOST
    assert BatchSizer(2, fixed=5, fetch_concurrency=32).size(remote=True) == 5

    items = [Entry(f"/a/{i}", 1, 0.0) for i in range(100)] + [
        Entry(f"s3://b/{i}", 1, 0.0) for i in range(300)]
    sizes = [len(b) for b in batches(iter(items), BatchSizer(1, fetch_concurrency=16))]
    assert sizes == [FIRST, FIRST, FIRST, FIRST, 64, 64, 64, 64, 300 - (FIRST - 4) - 4 * 64]


def test_fetch_concurrency_below_one_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastdump", "dump", str(tmp_path), "-o", str(tmp_path / "out"),
         "--fetch-concurrency", "0", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "--fetch-concurrency must be a whole number, at least 1, not 0" in proc.stderr


@pytest.mark.parametrize("url", [f"s3://{BUCKET}/no-such-prefix/", "s3://no-such-bucket/x/"])
def test_a_missing_prefix_is_found_out_in_one_request(store, tmp_path, url):
    store.proxy.reset()
    proc = subprocess.run(
        [sys.executable, "-m", "fastdump", "dump", url, "-o", str(tmp_path / "out"),
         "--no-progress"],
        env=store.env(store.proxy), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"fastdump: error: no such object or prefix: {url}\n"
    assert len(store.proxy.requests) == 1


@pytest.mark.parametrize("listed, replacement", [
    ("CT_small.dcm", "MR_small.dcm"), ("CT_small.dcm", "rtstruct.dcm"),  # smaller, larger
    # larger, its first 546 bytes a whole file of elements: a record of bytes of neither
    ("priv_SQ.dcm", "CT_small.dcm")])
def test_an_object_replaced_after_the_listing_says_so(s3_env, listed, replacement):
    # (before: "The requested range is not satisfiable", a TruncatedError of a healthy
    # object, or a record: it was read with the size the listing gave)
    store = s3_env
    key = f"{BUCKET}/replaced/{listed}-{replacement}"
    store.direct.pipe(key, (Path(pydicom_file(listed))).read_bytes())
    [entry] = list(walk([f"s3://{key}"]))
    new = Path(pydicom_file(replacement)).read_bytes()
    store.direct.pipe(key, new[:200] if replacement == "MR_small.dcm" else new)
    [outcome] = process_batch([entry], Options(fetch_concurrency=4))
    error = orjson.loads(outcome.error_line)["error"]
    assert error.startswith("OSError: the object changed after it was listed"), error
    assert f"({store.direct.info(key)['size']} bytes now, {entry.size} then)" in error
