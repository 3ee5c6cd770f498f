"""Corpus: a leak and retention together. Truth: leak+retention.

Fragments glibc's heap first (as glibc_frag.py: ~100 MiB free kept
behind 1-in-10 survivors), then leaks ~500 KB/s of small objects into a
list for the rest of the run. Both parts must be reported, each with
its remedy (fix the site; trim).
"""
import os
import random
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
rng = random.Random(3)
objs = [bytes(rng.randrange(1024, 4096)) for _ in range(50000)]
keep = objs[::10]
del objs
audit = []
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < SECONDS:
    for _ in range(500):
        audit.append("event %d " % i + "." * 80)
        i += 1
    time.sleep(0.1)
print("done", os.getpid(), len(keep), len(audit), flush=True)
