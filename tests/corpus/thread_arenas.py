"""Corpus: per-thread arenas with many threads. Truth: retention (glibc,
MALLOC_ARENA_MAX).

16 threads each build ~8 MiB of 1-8 KiB buffers at the same time (glibc
gives busy threads arenas of their own), keep one in 8 and free the
rest: each thread's arena keeps its free chunks. The threads then stay
alive, idle.
"""
import os
import random
import sys
import threading
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
kept = []
lock = threading.Lock()
stop = threading.Event()
start = threading.Barrier(16)


def worker(seed):
    rng = random.Random(seed)
    start.wait()
    objs = [bytes(rng.randrange(1024, 8192)) for _ in range(2000)]
    with lock:
        kept.extend(objs[::8])
    del objs
    stop.wait()


ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
for t in ts:
    t.start()
time.sleep(SECONDS)
stop.set()
for t in ts:
    t.join()
print("done", os.getpid(), len(kept), flush=True)
