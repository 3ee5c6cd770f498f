"""Corpus: a leak under heavy transient churn. Truth: leak.

One code path leaks ~250 KB/s of small objects into a module-level list;
another allocates big short-lived buffers (33-64 MiB, above glibc's
largest mmap threshold, so they go back to the system when freed, and
freed within 0.1 s) three times a second: live memory swings by tens
of MiB while its floor rises slowly. Judging the floor, not the mean, is
what finds it.
"""
import os
import random
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
rng = random.Random(7)
sessions = []


def handle_upload():
    buf = bytearray(rng.randrange(33, 64) << 20)  # transient
    buf[::65536] = b"u" * len(buf[::65536])
    time.sleep(0.08)
    return len(buf)


def remember_session(i):
    for k in range(700):
        sessions.append(("sess-%d-%d" % (i, k), i))  # MARK: leak


t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < SECONDS:
    remember_session(i)
    handle_upload()
    i += 1
    time.sleep(0.2)
print("done", os.getpid(), len(sessions), flush=True)
