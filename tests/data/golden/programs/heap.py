"""What a heap dump shows: tracebacks kept in a list (frames, locals), an
lru_cache keeping results, a closure holding a buffer, and an object leaked
below Python (ctypes Py_IncRef, its last reference dropped). Two dumps,
before and after more of the same, for `heap diff`."""
import ctypes
import functools

import memhound

errors = []


class Session:
    def __init__(self, n):
        self.n = n
        self.buffer = bytearray(2000)


def fail(n):
    s = Session(n)
    raise ValueError("bad request %d" % s.n)


def collect_errors(count):
    for n in range(count):
        try:
            fail(n)
        except ValueError as e:
            errors.append(e)  # keeps the traceback, its frames, the Session


@functools.lru_cache(maxsize=None)
def render(n):
    return "page %d " % n * 30


def make_handler(size):
    state = bytearray(size)

    def handler():
        return len(state)
    return handler


class Leaky:
    pass


handlers = [make_handler(50000)]
collect_errors(50)
for n in range(100):
    render(n)
memhound.dump_heap()  # next to the capture: <stem>.heap1.mhh

collect_errors(100)
for n in range(100, 400):
    render(n)
handlers.append(make_handler(80000))
o = Leaky()
o.payload = bytearray(100000)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(o))  # what a C bug does
del o
memhound.dump_heap()  # <stem>.heap2.mhh
