"""s3:// archives: a real moto S3 server on 127.0.0.1, reached through a byte-counting proxy.

The records of an S3 prefix must equal those of the same files dumped from
disk, every object must be accounted for once, and a file with 100 MB of
pixel data must cost a small fraction of its size in transfer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import orjson
import pytest

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto")

import fastdump  # noqa: E402
from fastdump.walk import Entry, walk  # noqa: E402

from .conftest import NOT_DICOM, pydicom_file  # noqa: E402
from .helpers import read_jsonl, records_by_path, run_cli  # noqa: E402
from .s3_support import CountingProxy, start_moto, write_large_dicom  # noqa: E402

BUCKET, PREFIX = "archive", "pacs"
URL = f"s3://{BUCKET}/{PREFIX}/"
PIXEL_BYTES = 100_000_000
LONG_TEXT = "".join(f"finding {i:05d}: nothing to report.\n" for i in range(2500))  # ~90 KB
PRIVATE_BLOB = bytes(range(256)) * 20
SMALL = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm"]
LARGE = "big/large.dcm"  # header longer than one 64 KiB block
PLAIN = "big/plain.dcm"  # a usual header of a few KB
# a key URIs must percent-encode: its BulkDataURIs' offset went into a #fragment before
ODD = "odd names/hash#x q?x=1 %20.dcm"
OBJECTS = [*SMALL, LARGE, PLAIN, "junk/notes.dcm", ODD]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(local copy of the archive, proxy, env for fastdump, direct s3fs client)."""
    tmp = tmp_path_factory.mktemp("s3")
    proc, port = start_moto(tmp / "moto.log")
    proxy = CountingProxy(port)
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}
    env = {**os.environ, **creds, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    env.pop("AWS_PROFILE", None)
    try:
        local = tmp / "local" / PREFIX
        (local / "big").mkdir(parents=True)
        (local / "junk").mkdir()
        for name in SMALL:
            shutil.copy(pydicom_file(name), local / name)
        (local / "junk" / "notes.dcm").write_bytes(NOT_DICOM["notes.dcm"])
        (local / ODD).parent.mkdir()
        shutil.copy(pydicom_file("CT_small.dcm"), local / ODD)
        write_large_dicom(local / LARGE, LONG_TEXT, PRIVATE_BLOB, PIXEL_BYTES)
        write_large_dicom(local / PLAIN, "nothing to report", PRIVATE_BLOB, PIXEL_BYTES)
        direct = s3fs.S3FileSystem(key="testing", secret="testing",
                                   endpoint_url=f"http://127.0.0.1:{port}")
        direct.mkdir(BUCKET)
        direct.put(str(local) + "/", f"{BUCKET}/{PREFIX}/", recursive=True)
        yield local, proxy, env, direct
    finally:
        proxy.close()
        proc.terminate()
        proc.wait(timeout=30)


def listed(direct, name: str) -> dict:
    """The listing's entry for one object (what fastdump's walk sees)."""
    folder = f"{BUCKET}/{PREFIX}/{name}".rsplit("/", 1)[0]
    return next(i for i in direct.ls(folder, detail=True, refresh=True)
                if i["name"] == f"{BUCKET}/{PREFIX}/{name}")


def dump_ok(env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = run_cli("dump", *args, "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def s3_run(s3, tmp_path_factory):
    local, proxy, env, direct = s3
    out = tmp_path_factory.mktemp("s3out") / "out"
    proxy.reset()
    dump_ok(env, URL, "-o", str(out), "--jobs", "2")
    return out, list(proxy.requests)


@pytest.mark.parametrize("url", ["s3://", "s3:///"])
def test_a_url_without_a_bucket_is_refused_in_one_line(tmp_path, url):
    result = run_cli("dump", url, "-o", tmp_path / "o", "--no-progress")
    assert result.returncode == 2, result.stderr  # (before: 0, and an error line)
    assert result.stderr == (f"fastdump: error: {url} names no bucket: give one, and a prefix "
                             "if you like (s3://bucket/prefix/)\n")
    assert not (tmp_path / "o").exists()


def test_records_equal_a_local_dump_of_the_same_files(s3, s3_run, tmp_path):
    local = s3[0]
    out, _ = s3_run
    fastdump.dump([local], tmp_path / "local", jobs=2, progress=False)
    from_s3 = records_by_path(out, [URL])
    from_disk = records_by_path(tmp_path / "local", [f"{local.as_uri()}/", f"{local}/"])
    assert set(from_s3) == {f"ROOT/{n}" for n in OBJECTS}
    assert from_s3 == from_disk
    assert from_s3["ROOT/junk/notes.dcm"]["error"].startswith("NotDicomError: not a DICOM file")


def test_a_bulk_data_uri_of_an_object_names_it_and_its_bytes(s3, s3_run):
    local, _, _, direct = s3
    out, _ = s3_run
    (record,) = [r for r in read_jsonl(out / "dump.jsonl") if r["path"] == URL + ODD]
    uris = [e["BulkDataURI"] for e in record["dataset"].values() if "BulkDataURI" in e]
    assert uris
    for uri in uris:
        parts = urlparse(uri)
        query = parse_qs(parts.query)
        assert (parts.scheme, parts.netloc, parts.fragment) == ("s3", BUCKET, "")
        assert unquote(parts.path) == f"/{PREFIX}/{ODD}"
        start, length = int(query["offset"][0]), int(query["length"][0])
        got = direct.cat_file(f"{BUCKET}{unquote(parts.path)}", start=start, end=start + length)
        assert got == (local / ODD).read_bytes()[start:start + length]


def test_large_object_header_is_complete(s3_run):
    out, _ = s3_run
    rec = next(r for r in read_jsonl(out / "dump.jsonl") if r["path"] == URL + LARGE)
    ds = rec["dataset"]
    # The UT value is longer than one block and than the deferral size: read
    # from the still-open object, after pydicom skipped it.
    assert ds["0040A160"]["Value"] == [LONG_TEXT]
    assert ds["00280010"]["Value"] == [PIXEL_BYTES // 20000]
    blob = ds["00091001"]["BulkDataURI"]
    assert blob.startswith(URL + LARGE + "?offset=")
    assert blob.endswith(f"&length={len(PRIVATE_BLOB)}")
    assert rec["size"] > PIXEL_BYTES
    assert "7FE00010" not in ds


def requests_for(requests: list, name: str, method: str) -> list:
    key = f"/{BUCKET}/{PREFIX}/{name}"
    return [r for r in requests if r.method == method and unquote(r.target.split("?")[0]) == key]


@pytest.mark.parametrize("name", [LARGE, PLAIN])
def test_large_object_costs_kilobytes_not_megabytes(s3_run, name):
    out, requests = s3_run
    size = next(r["size"] for r in read_jsonl(out / "dump.jsonl") if r["path"] == URL + name)
    gets = requests_for(requests, name, "GET")
    fetched = sum(r.received for r in gets)  # bytes on the wire: HTTP headers and body
    print(f"\n{name}: {size} bytes, {len(gets)} GET, {fetched} bytes fetched "
          f"({100 * fetched / size:.3f} %)")
    assert gets, "the object was never read"
    assert fetched < 0.02 * size


def test_every_object_is_read(s3_run):
    _, requests = s3_run
    assert all(requests_for(requests, name, "GET") for name in OBJECTS)


def test_no_head_request_per_object(s3_run):
    _, requests = s3_run
    assert not [r for name in OBJECTS for r in requests_for(requests, name, "HEAD")]


def test_resume_reads_only_changed_objects(s3, s3_run, tmp_path):
    local, proxy, env, direct = s3
    out = tmp_path / "out"
    shutil.copytree(s3_run[0], out)
    proxy.reset()
    dump_ok(env, URL, "-o", str(out), "--resume")
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["unchanged"], summary["new"], summary["changed"]) == (len(OBJECTS), 0, 0)
    assert not [r for r in proxy.requests if r.method == "GET" and "list-type" not in r.target]

    direct.pipe(f"{BUCKET}/{PREFIX}/CT_small.dcm", Path(pydicom_file("MR_small.dcm")).read_bytes())
    direct.pipe(f"{BUCKET}/{PREFIX}/new.dcm", Path(pydicom_file("CT_small.dcm")).read_bytes())
    dump_ok(env, URL, "-o", str(out), "--resume")
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["unchanged"], summary["new"], summary["changed"]) == (len(OBJECTS) - 1, 1, 1)
    records = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    assert len(read_jsonl(out / "dump.jsonl")) == len(records) == len(OBJECTS)  # notes.dcm: error
    changed = records[URL + "CT_small.dcm"]
    assert changed["dataset"]["00080060"]["Value"] == ["MR"]
    assert changed["mtime"] == listed(direct, "CT_small.dcm")["LastModified"].timestamp()


def test_walk_streams_objects_with_listing_stat(s3, monkeypatch):
    _, proxy, env, direct = s3
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                 "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, env[name])
    s3fs.S3FileSystem.clear_instance_cache()
    found = list(walk([URL + "big", URL + LARGE]))
    expected = [Entry(URL + n, listed(direct, n)["size"],
                      listed(direct, n)["LastModified"].timestamp()) for n in (LARGE, PLAIN)]
    assert found == expected  # in key order, LARGE once although named twice


def test_read_record_of_a_url_is_the_record_a_dump_writes(s3, s3_run, monkeypatch):
    _, _, env, _ = s3
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                 "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, env[name])
    s3fs.S3FileSystem.clear_instance_cache()
    out, _ = s3_run
    dumped = {r["path"]: r for r in read_jsonl(out / "dump.jsonl")}
    for name in ("rtplan.dcm", LARGE):  # before: read as the local path "./s3:/archive/..."
        assert fastdump.read_record(URL + name) == dumped[URL + name]
    assert fastdump.read_tags(URL + "MR_small.dcm") == dumped[URL + "MR_small.dcm"]["dataset"]
    with pytest.raises(IsADirectoryError):
        fastdump.read_record(URL.rstrip("/"))
    with pytest.raises(FileNotFoundError):
        fastdump.read_record(URL + "no-such.dcm")


def test_missing_prefix_is_one_line_exit_2(s3, tmp_path):
    _, _, env, _ = s3
    proc = run_cli("dump", f"s3://{BUCKET}/no-such-prefix/", "-o", tmp_path / "out",
                   "--no-progress", env=env, timeout=120)
    assert proc.returncode == 2
    missing = f"s3://{BUCKET}/no-such-prefix/"
    assert proc.stderr == f"fastdump: error: no such object or prefix: {missing}\n"
