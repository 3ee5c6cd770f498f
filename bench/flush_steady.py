#!/usr/bin/python3
"""docs/performance.md, "Flush interval": a steady request-like loop for
argv[1] seconds; prints the writer thread's CPU time (schedstat) and the
process's."""

import os
import sys
import time

keep = []
t_end = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < t_end:
    req = {"path": "/item/%d" % n, "headers": [("k%d" % i, "v" * 40) for i in range(20)]}
    body = ("row %d," % n) * 200
    if n % 50 == 0:
        keep.append(body)
    n += 1
me = os.getpid()
writer = 0
for tid in os.listdir("/proc/self/task"):
    if int(tid) != me:
        with open("/proc/self/task/%s/schedstat" % tid) as f:
            writer += int(f.read().split()[0])
t = os.times()
print("requests %d writer_cpu_ms %.1f process_cpu_s %.3f" % (n, writer / 1e6, t.user + t.system))
