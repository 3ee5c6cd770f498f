"""A service loop: transient work per item, and a cache that a helper
fills and nothing empties (the leak, kept via handle()'s line)."""
import time

_cache = {}


def remember(key, value):
    _cache[key] = value.encode()  # the helper's line: what grows


def handle(i):
    scratch = bytearray(16000)  # freed at return: not growth
    body = ("item-%06d;" % i) * 40
    remember(i, body)  # the caller that keeps it
    return len(scratch)


def main():
    for i in range(6000):  # ~6 s: long enough for a verdict's trend
        handle(i)
        if i % 100 == 0:
            time.sleep(0.1)


main()
