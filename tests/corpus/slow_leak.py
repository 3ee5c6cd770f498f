"""Corpus: a steady slow leak. Truth: leak.

~50 KB/s (one 500-byte object every 10 ms) kept forever, for two
minutes: 176 MiB an hour, small against the process at any instant. The
verdict must be `leak` within 120 s of data (docs/verdict.md's goal).
"""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 125
kept = []
t0 = time.monotonic()
while time.monotonic() - t0 < SECONDS:
    for _ in range(10):
        kept.append("r" * 450 + str(len(kept)))
    time.sleep(0.1)
print("done", os.getpid(), len(kept), flush=True)
