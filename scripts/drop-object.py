"""Drops a file into a pipeline's input bucket and prints what comes out.

usage: drop-object.py PIPELINE FILE [--namespace NS] [--key KEY]
       drop-object.py PIPELINE --empty [--namespace NS]

Reads the pipeline's status (kubectl) for the real names of its `input`
and `processed` buckets, puts FILE as KEY (default: the file's name) into
`input`, waits for processed/KEY in `processed`, and prints it with the time
it took. With --empty, deletes every object of the pipeline's buckets
instead (before deleting a pipeline whose buckets hold data). Works against
moto (the demo) and AWS alike.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import boto3


def bucket(status: dict, logical: str) -> str:
    for entry in status.get("inventory", []):
        if entry["kind"] == "S3::Bucket" and entry["name"] == logical:
            return entry["id"]
    sys.exit(f"the pipeline has no bucket named {logical!r} in its status")


def empty(status: dict) -> None:
    s3 = boto3.client("s3")
    for entry in status.get("inventory", []):
        if entry["kind"] != "S3::Bucket":
            continue
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=entry["id"])
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=entry["id"], Delete={"Objects": keys[start : start + 1000]})
        print(f"emptied s3://{entry['id']} ({len(keys)} objects)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pipeline")
    parser.add_argument("file", nargs="?")
    parser.add_argument("--empty", action="store_true")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    kubectl = os.environ.get("SLUICE_KUBECTL", "kubectl")
    raw = subprocess.run(
        [kubectl, "get", "dp", args.pipeline, "-n", args.namespace, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    status = json.loads(raw).get("status", {})
    if args.empty:
        empty(status)
        return
    if not args.file:
        parser.error("FILE is required unless --empty")
    source, sink = bucket(status, "input"), bucket(status, "processed")
    key = args.key or os.path.basename(args.file)
    s3 = boto3.client("s3")
    with open(args.file, "rb") as f:
        body = f.read()
    started = time.monotonic()
    s3.put_object(Bucket=source, Key=key, Body=body, ContentType="application/json")
    print(f"put s3://{source}/{key} ({len(body)} bytes)")
    out = f"processed/{key}"
    while True:
        try:
            result = s3.get_object(Bucket=sink, Key=out)["Body"].read()
            break
        except s3.exceptions.NoSuchKey:
            if time.monotonic() - started > args.timeout:
                sys.exit(f"no s3://{sink}/{out} after {args.timeout:.0f} s")
            time.sleep(0.05)
    took = (time.monotonic() - started) * 1000
    print(f"got s3://{sink}/{out} after {took:.0f} ms:")
    print(json.dumps(json.loads(result), indent=2))


if __name__ == "__main__":
    main()
