"""Corpus: memory growing outside the tracked domains. Truth: leak
(native: a C library's malloc).

Calls libc's malloc through ctypes, ~1 MiB/s in 64 KiB blocks that are
written and never freed, as a leaking C extension would: Python's
allocators never see it, so tracked live bytes stay flat while RSS and
malloc's in-use bytes grow.
"""
import ctypes
import ctypes.util
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < SECONDS:
    for _ in range(4):
        p = libc.malloc(64 * 1024)
        libc.memset(p, 1, 64 * 1024)
        n += 1
    time.sleep(0.25)
print("done", os.getpid(), n, flush=True)
