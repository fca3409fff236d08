"""Helpers for the S3 tests: a moto server process, a byte-counting proxy in
front of it, and a large synthetic DICOM file written without holding it in memory."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from .helpers import free_port


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_moto(log: Path) -> tuple[subprocess.Popen, int]:
    """A real moto S3 server on 127.0.0.1, in its own process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
    )
    try:
        wait_for_port(port, 60)
    except OSError:
        proc.kill()
        raise
    return proc, port


@dataclass
class Request:
    method: str
    target: str  # "/bucket/key?query"
    received: int = 0  # bytes the server sent back: status line, headers and body


class CountingProxy:
    """A TCP proxy that counts, per HTTP request, the bytes the server sends back.

    HTTP/1.1 clients (aiohttp under s3fs) send one request per connection at a
    time, so every byte from the server belongs to the last request on that
    connection. Only meant for requests without a body (GET, HEAD, LIST).

    ``delay`` (seconds) holds each request back that long before passing it on:
    the latency of a distant object store, per request, on a local server.
    ``max_in_flight`` is the most requests seen waiting for their answer at once.
    :meth:`fail` makes the next requests for a key answer 503 Slow Down, as a
    throttled or overloaded store does, without reaching the server.
    """

    def __init__(self, upstream_port: int, delay: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: dict[str, int] = {}  # "/bucket/key" -> requests still to fail
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.requests = []
            self.max_in_flight = self.in_flight

    def fail(self, bucket_key: str, times: int = 1) -> None:
        """Answer the next ``times`` requests for ``bucket_key`` with 503 Slow Down."""
        with self._lock:
            self._faults[f"/{bucket_key}"] = times

    def _should_fail(self, target: str) -> bool:
        with self._lock:
            left = self._faults.get(target.split("?")[0], 0)
            if left:
                self._faults[target.split("?")[0]] = left - 1
            return bool(left)

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def fetched(self, bucket_key: str, method: str = "GET") -> tuple[int, int]:
        """(requests, bytes received) for one object."""
        with self._lock:
            hits = [r for r in self.requests
                    if r.method == method and r.target.split("?")[0] == f"/{bucket_key}"]
        return len(hits), sum(r.received for r in hits)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"current": None, "expect_request": True}
            threading.Thread(target=self._pump_requests, args=(client, upstream, state),
                             daemon=True).start()
            threading.Thread(target=self._pump_responses, args=(upstream, client, state),
                             daemon=True).start()

    def _pump_requests(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        try:
            while data := src.recv(65536):
                if state["expect_request"]:
                    method, target = data.split(b" ", 2)[:2]
                    request = Request(method.decode(), target.decode())
                    with self._lock:
                        self.requests.append(request)
                        self.in_flight += 1
                        self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    state["current"], state["expect_request"] = request, False
                    if self.delay:  # each connection has its own thread: delays overlap
                        time.sleep(self.delay)
                    if self._should_fail(request.target):
                        self._answered(state)
                        src.sendall(SLOW_DOWN)  # the client's side: the server never sees it
                        continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(dst)

    def _answered(self, state: dict) -> None:
        with self._lock:
            if not state["expect_request"]:
                self.in_flight -= 1
            state["expect_request"] = True

    def _pump_responses(self, src: socket.socket, dst: socket.socket, state: dict) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if state["current"] is not None:
                        state["current"].received += len(data)
                self._answered(state)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(dst)


_SLOW_DOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                   b"<Message>Please reduce your request rate.</Message></Error>")
SLOW_DOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
             b"Content-Length: %d\r\n\r\n" % len(_SLOW_DOWN_BODY) + _SLOW_DOWN_BODY)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def write_large_dicom(path: Path, text: str, private_blob: bytes, pixel_bytes: int) -> None:
    """A CT image whose Pixel Data is ``pixel_bytes`` long, streamed to disk.

    Its header holds ``text`` as a UT Text Value (longer than fastdump's
    deferral size, and long enough to make the header larger than one 64 KiB
    block) and a private OB value (a BulkDataURI in the record).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Large^Object", "S3-0001", "CT"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20240131", 7, 1
    ds.private_block(0x0009, "FASTDUMP TEST", create=True).add_new(0x01, "OB", private_blob)
    ds.TextValue = text
    columns = 10000
    ds.Rows, ds.Columns = pixel_bytes // (2 * columns), columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.save_as(path, enforce_file_format=True)
    nbytes = ds.Rows * ds.Columns * 2
    chunk = bytes(range(256)) * 4096  # 1 MiB, not all zeros
    with open(path, "ab") as fp:
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, nbytes))
        left = nbytes
        while left:
            fp.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
