"""Corpus: a small-object leak. Truth: leak.

A dict gains ~1 MB/s of small strings (100-byte values, one entry every
0.1 ms) and never drops one: the classic unbounded memo. The verdict must
be `leak` within 15 s of data (docs/verdict.md's goal for a 1 MB/s leak).
"""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
memo = {}
i = 0
t0 = time.monotonic()
while time.monotonic() - t0 < SECONDS:
    for _ in range(1000):
        memo["k%d" % i] = "v" * 60 + str(i)
        i += 1
    time.sleep(0.1)
print("done", os.getpid(), len(memo), flush=True)
