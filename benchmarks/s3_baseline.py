"""The S3 suite's baseline: list a prefix, then one ranged GET of each object's first bytes.

    python benchmarks/s3_baseline.py s3://bucket/prefix/ [--threads 64] [--bytes 65536]

What a hand-written boto3 script that only fetches headers would do, with as
many requests in flight as threads: the latency floor fastdump is compared
with (it parses nothing). Endpoint and credentials come from the AWS
environment (``AWS_ENDPOINT_URL``...), as for fastdump. Prints
``{"objects": n, "bytes": b}`` on its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def split_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--bytes", type=int, default=65536, help="bytes per ranged GET")
    args = p.parse_args(argv)
    bucket, prefix = split_url(args.url)
    # boto3 keeps 10 connections by default: as many as threads, or threads wait for one
    s3 = boto3.client("s3", config=Config(max_pool_connections=args.threads))
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def head(key: str) -> int:
        reply = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{args.bytes - 1}")
        return len(reply["Body"].read())

    with ThreadPoolExecutor(args.threads) as pool:
        fetched = sum(pool.map(head, keys))
    print(json.dumps({"objects": len(keys), "bytes": fetched}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
