"""Compute-only figures of the Python baseline: runs one handler in-process
on the events `make bench` generated, against in-memory stand-ins for S3
and DynamoDB, and prints one JSON line: seconds spent in the handler calls
(event parsing included, as the managed runtime parses each event before
the call), the number of calls, and peak memory.

    python compute.py SCENARIO_DIR

SCENARIO_DIR/scenario.json names the handler module, its environment, the
objects to preload ({"bucket", "key", "file"}) and the file of events (one
JSON event per line).
"""

import bisect
import importlib
import json
import os
import sys
import time


class StreamingBody:
    def __init__(self, data):
        self._data = data

    def read(self):
        return self._data


class MemoryS3:
    """get_object, put_object and paginated list_objects_v2 over a dict."""

    def __init__(self):
        self.objects = {}
        self.sorted_keys = {}

    def add(self, bucket, key, body):
        if (bucket, key) not in self.objects:
            bisect.insort(self.sorted_keys.setdefault(bucket, []), key)
        self.objects[(bucket, key)] = body

    def get_object(self, Bucket, Key):
        body = self.objects[(Bucket, Key)]
        return {"Body": StreamingBody(body), "ContentLength": len(body)}

    def put_object(self, Bucket, Key, Body, ContentType=None):
        self.add(Bucket, Key, Body)
        return {}

    def list_objects_v2(self, Bucket, Prefix="", ContinuationToken=None, MaxKeys=1000):
        keys = self.sorted_keys.get(Bucket, [])
        start = bisect.bisect_right(keys, ContinuationToken) if ContinuationToken else bisect.bisect_left(keys, Prefix)
        page = []
        position = start
        while position < len(keys) and len(page) < MaxKeys and keys[position].startswith(Prefix):
            page.append({"Key": keys[position], "Size": len(self.objects[(Bucket, keys[position])])})
            position += 1
        more = position < len(keys) and keys[position].startswith(Prefix)
        result = {"Contents": page, "IsTruncated": more, "KeyCount": len(page)}
        if more:
            result["NextContinuationToken"] = page[-1]["Key"]
        return result


class MemoryTable:
    def __init__(self):
        self.items = {}

    def put_item(self, Item):
        self.items[Item["id"]] = Item
        return {}


def peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "scenario.json")) as f:
        scenario = json.load(f)
    os.environ.update(scenario["env"])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module = importlib.import_module(scenario["module"])
    s3 = MemoryS3()
    for entry in scenario.get("objects", []):
        with open(os.path.join(directory, entry["file"]), "rb") as f:
            s3.add(entry["bucket"], entry["key"], f.read())
    if hasattr(module, "s3_client"):
        module.s3_client = s3
    if hasattr(module, "results_table"):
        module.results_table = MemoryTable()
    with open(os.path.join(directory, scenario["events"]), "rb") as f:
        events = f.read().splitlines()
    input_kib = peak_kib()

    # The handlers print as the article's do; Lambda sends that to its log.
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
    elapsed = 0.0
    for event in events:
        start = time.perf_counter()
        module.handler(json.loads(event), None)
        elapsed += time.perf_counter() - start
    sys.stdout.close()
    sys.stdout = stdout
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "calls": len(events),
                "input_hwm_kib": input_kib,
                "vm_hwm_kib": peak_kib(),
            }
        )
    )


if __name__ == "__main__":
    main()
