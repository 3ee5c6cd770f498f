"""Corpus: glibc fragmentation. Truth: retention.

Builds ~120 MiB of 1-4 KiB buffers (malloc, not pymalloc), keeps every
10th and frees the rest: the survivors pin glibc's heap, so ~100 MiB of
free chunks stay in the process (mallinfo2 fordblks) while live bytes are
~12 MiB. Then it serves light, balanced work. `memhound trim` would
return most of it.
"""
import os
import random
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
rng = random.Random(1)
objs = [bytes(rng.randrange(1024, 4096)) for _ in range(50000)]
keep = objs[::10]
del objs
t0 = time.monotonic()
while time.monotonic() - t0 < SECONDS:
    tmp = [bytes(rng.randrange(1024, 4096)) for _ in range(200)]
    del tmp
    time.sleep(0.1)
print("done", os.getpid(), len(keep), flush=True)
