"""A pre-fork master: three workers forked with os.fork, each serving a
different number of jobs and keeping a per-job result (one run id, four
captures)."""
import os
import time

results = []


def job(n):
    results.append(bytes(3000 + n % 7))  # kept: grows with jobs served
    return bytearray(8000)  # transient


def worker(jobs):
    for n in range(jobs):
        job(n)
        if n % 200 == 0:
            time.sleep(0.02)
    os._exit(0)


pids = []
for jobs in (600, 1200, 1800):
    pid = os.fork()
    if pid == 0:
        worker(jobs)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
