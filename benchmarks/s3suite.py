"""The S3 suite's set-up: the project's moto S3 server, and one delaying proxy per latency.

The server and the proxy are the tests' own (tests/s3_support.py): a real
moto S3 server on 127.0.0.1 in a process of its own, and a TCP proxy that
holds each request back ``delay`` seconds. Objects are uploaded straight to
the server; fastdump and the baseline reach it only through a proxy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
from harness import Contender, Measured, exit_status

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.s3_support import CountingProxy, start_moto  # noqa: E402

BUCKET, PREFIX = "fastdump-bench", "ct"
# moto accepts any credentials; a profile from ~/.aws must not take their place
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_PROFILE": None}


class Server:
    """moto with the objects uploaded, and a proxy per delay (context manager)."""

    def __init__(self, workdir: Path, root: Path, objects: list[str], log) -> None:
        self.workdir, self.root, self.objects, self.log = workdir, root, objects, log
        self.url = f"s3://{BUCKET}/{PREFIX}/"
        self.nbytes = sum(os.path.getsize(p) for p in objects)
        self.proxies: dict[int, CountingProxy] = {}

    def __enter__(self) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc, self.port = start_moto(self.workdir / "moto.log")
        try:
            self._upload()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def _upload(self) -> None:
        import boto3

        self.log(f"uploading {len(self.objects)} objects, {self.nbytes / 1e6:.0f} MB, to moto")
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for path in self.objects:
            key = f"{PREFIX}/{os.path.relpath(path, self.root)}"
            with open(path, "rb") as fp:
                s3.put_object(Bucket=BUCKET, Key=key, Body=fp)

    def client_env(self, delay_ms: int) -> dict[str, str | None]:
        """The environment of a client that reaches the server with ``delay_ms`` per request."""
        if delay_ms not in self.proxies:
            self.proxies[delay_ms] = CountingProxy(self.port, delay=delay_ms / 1000)
        endpoint = f"http://127.0.0.1:{self.proxies[delay_ms].port}"
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def baseline(name: str, url: str, objects: int, group: str, nbytes: int) -> Contender:
    """benchmarks/s3_baseline.py: list, then 64 threads of one 64 KiB ranged GET per object."""
    script = str(HERE / "s3_baseline.py")

    def judge(scratch: Path, m: Measured) -> tuple[int | None, str]:
        try:
            report = orjson.loads(m.stdout.splitlines()[-1])
        except (IndexError, orjson.JSONDecodeError):
            return None, exit_status(m) or "no report"
        wrong = "" if report["objects"] == objects else f"read {report['objects']} objects"
        return 0, exit_status(m) or wrong

    return Contender(name, "python benchmarks/s3_baseline.py s3://bucket/prefix/ --threads 64",
                     lambda _s: [[sys.executable, script, url, "--threads", "64"]], objects,
                     nbytes, judge, group=group)
