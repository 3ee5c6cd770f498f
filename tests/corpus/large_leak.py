"""Corpus: a leak of large buffers. Truth: leak.

Every 0.25 s a 256 KiB buffer (a "response body" kept for a debug log)
is appended to a list that is never cleared: ~1 MiB/s of large blocks,
which go to malloc/mmap rather than pymalloc.
"""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
debug_log = []
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < SECONDS:
    body = bytearray(256 * 1024)
    body[::4096] = b"x" * len(body[::4096])  # touch every page
    debug_log.append(body)
    n += 1
    time.sleep(0.25)
print("done", os.getpid(), n, flush=True)
