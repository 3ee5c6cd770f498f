"""Corpus: a pre-fork job server, master + 2 workers. Truth: leak in
each worker; the master does not grow.

The master loads its data, forks two workers and waits. Each worker
handles a job every 20 ms and keeps ~10 KB of every job's result in a
module-level list (never cleared); the master only waits. Judged per
process, and merged: "leak in 2 of 2 workers; the master does not grow".
"""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
WORKERS = 2
results = []
config = {"k%d" % i: i for i in range(10000)}


def worker():
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < SECONDS:
        job = [str(n) * 10 for _ in range(200)]
        results.append(("job %d" % n).ljust(10000, "."))  # MARK: leak
        del job
        n += 1
        time.sleep(0.02)
    os._exit(0)


kids = []
for _ in range(WORKERS):
    pid = os.fork()
    if pid == 0:
        worker()
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
print("done", os.getpid(), flush=True)
