"""Corpus: no growth at all. Truth: no-growth.

A steady worker: each "request" builds a few hundred KiB of objects,
renders them and drops them. Memory moves up and down with every
request; nothing accumulates.
"""
import json
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < SECONDS:
    rows = [{"id": i, "name": "user%d" % i, "tags": ["a", "b"]}
            for i in range(2000)]
    body = json.dumps(rows)
    del rows, body
    n += 1
    time.sleep(0.05)
print("done", os.getpid(), n, flush=True)
