"""Corpus: a bounded cache that grows, then plateaus. Truth: bounded (not
a leak).

An LRU cache of at most 6000 entries of ~4 KB fills over the first 12 s
(~24 MiB); full, most lookups hit and the few new pages evict old ones,
for the rest of the run (45 s in the corpus): live memory rises, then
stays level. Until the
level shows (about a quarter of the run), it is a leak as far as any
timeline can tell.
"""
import collections
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 45
MAX = 6000
cache = collections.OrderedDict()
t0 = time.monotonic()
i = 0
while time.monotonic() - t0 < SECONDS:
    # Filling: every lookup misses. Full: most hit, a few new pages.
    for _ in range(50 if len(cache) < MAX else 5):
        cache["page-%d" % i] = "p" * 4000 + str(i)
        cache.move_to_end("page-%d" % i)
        if len(cache) > MAX:
            cache.popitem(last=False)
        i += 1
    for k in range(max(0, i - 100), i, 2):
        page = cache.get("page-%d" % k)
        if page is not None:
            cache.move_to_end("page-%d" % k)
    time.sleep(0.1)
print("done", os.getpid(), len(cache), flush=True)
