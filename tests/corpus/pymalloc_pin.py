"""Corpus: pymalloc arena pinning. Truth: retention (pymalloc).

Builds 1.5 M small objects (< 512 bytes, so pymalloc serves them), keeps
one in 50, frees the rest: every arena keeps a survivor, so pymalloc
cannot return any, and ~100 MiB of free space stays inside its arenas
(malloc_trim cannot help). Then it idles with light, balanced work.
"""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
objs = [("row", i, str(i) * 3) for i in range(1500000)]
keep = objs[::50]
del objs
t0 = time.monotonic()
while time.monotonic() - t0 < SECONDS:
    tmp = [(i, str(i)) for i in range(2000)]
    del tmp
    time.sleep(0.1)
print("done", os.getpid(), len(keep), flush=True)
