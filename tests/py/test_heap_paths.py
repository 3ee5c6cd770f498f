"""Retention paths that name every hop, on every interpreter of the
matrix: a real program keeps objects alive the ways services leak them
(tracebacks kept in a list, an unbounded lru_cache, closures, suspended
generators, asyncio tasks, bound methods, weakref callbacks, a deque, a
set, a property) and `memhound heap why --type T` must print each path
exactly, as a Python expression from the module global down, where
Python has one, else with a labelled step (`.<lru_cache>`) or the
holder's type (`->?<property>`). The same program checks the --type
selector: a unique short name, an ambiguous one, an unknown one."""
import json
import subprocess
import textwrap

import pytest

from conftest import MEMHOUND, PYDIR, clean_env, describe

pytestmark = pytest.mark.skipif(
    not MEMHOUND.exists(), reason="%s is not built (make)" % MEMHOUND)

PROGRAM = """
import asyncio, collections, functools, sys, weakref
sys.path.insert(0, %r)
import _memhound


# A worker loop that keeps the traceback of every failed job.
class Payload:
    def __init__(self, n):
        self.blob = bytearray(n)

FAILED = []

def handle(job):
    payload = Payload(1000 + job)
    if job %% 2 == 0:
        raise ValueError("job %%d failed" %% job)
    return len(payload.blob)

def worker(jobs):
    for job in jobs:
        try:
            handle(job)
        except ValueError as e:
            FAILED.append(e.__traceback__)

worker(range(20))


# The same, where the failing frame's local is a cell (an inner
# function uses it).
class Conn2:
    pass

FAILED_CELLS = []

def handle_cell(job):
    conn = Conn2()
    def use():
        return conn
    raise ValueError(job)

for _job in range(3):
    try:
        handle_cell(_job)
    except ValueError as e:
        FAILED_CELLS.append(e.__traceback__)
del _job


# A generator suspended inside a for loop: its iterator is on the
# frame's value stack.
class Marker:
    pass

def walk():
    for item in [Marker(), Marker()]:
        yield item

WALKER = walk()
next(WALKER)


# An unbounded lru_cache whose values grow with its keys.
class History:
    pass

@functools.lru_cache(maxsize=None)
def _quote(symbol):
    return {"history": History()}

for i in range(50):
    _quote("SYM%%d" %% i)


# A bounded one: its dict holds list elements, the wrapper the results.
class Quote:
    pass

@functools.lru_cache(maxsize=128)
def _price(symbol):
    return {"quote": Quote()}

for i in range(20):
    _price("P%%d" %% i)


# Handlers whose closures keep a connection each.
class Conn:
    pass

def make_handler():
    conn = Conn()
    def handler():
        return conn
    return handler

HANDLERS = [make_handler() for _ in range(5)]


# Generators started and never finished.
class Row:
    pass

def rows():
    row = Row()
    yield 1
    yield row

PENDING = [rows() for _ in range(5)]
for _g in PENDING:
    next(_g)
del _g


# Mutable defaults.
class Pool:
    pass

class Seen:
    pass

def connect(dsn, *, pool=Pool()):
    return pool

def fetch(url, seen=[Seen()]):
    return seen


# Bound methods kept as callbacks, weakref callbacks.
class Session:
    def on_close(self):
        pass

class Resource:
    pass

class Listener:
    def notify(self, ref):
        pass

CALLBACKS = [Session().on_close for _ in range(3)]
RESOURCES = [Resource() for _ in range(3)]
WATCHES = [weakref.ref(r, Listener().notify) for r in RESOURCES]


# A deque, a set, a property whose getter is a partial.
class Event:
    pass

class Token:
    pass

class Secret:
    pass

def _get(secret, self):
    return secret

class Config:
    value = property(functools.partial(_get, Secret()))

RECENT = collections.deque(Event() for _ in range(4))
SEEN = {Token() for _ in range(12)}


# Two classes of one name in two modules, for the selector.
import types
_other = types.ModuleType("other")
exec("class Payload:\\n    pass\\nKEEP = Payload()\\n", _other.__dict__)
sys.modules["other"] = _other


# asyncio tasks kept in a list, each waiting with a request in a local.
class Request:
    pass

TASKS = []

async def serve():
    request = Request()
    await asyncio.sleep(3600)

async def main():
    TASKS.extend(asyncio.ensure_future(serve()) for _ in range(5))
    await asyncio.sleep(0)
    _memhound.dump_heap(sys.argv[1])

asyncio.run(main())
print("dumped")
""" % str(PYDIR / "memhound")

# The path of every object of each type: one path, the same on every
# interpreter (3.9-3.10 hold a generator's locals in a frame object,
# 3.11+ in the generator itself; both read gen.gi_frame.f_locals).
M = "sys.modules['__main__']."
EXPECTED = {
    "Payload": M + "FAILED[*].tb_next.tb_frame.f_locals['payload']",
    "Conn2": M + "FAILED_CELLS[*].tb_next.tb_frame.<cell conn>.cell_contents",
    "Marker": [M + "WALKER.gi_frame.f_locals['item']",
               M + "WALKER.gi_frame.<value stack>->?<tuple_iterator>[*]"],
    "History": M + "_quote.<lru_cache>[*]['history']",
    "Quote": M + "_price.<lru_cache value>['quote']",
    "Conn": M + "HANDLERS[*].__closure__.<closure conn>.cell_contents",
    "Row": M + "PENDING[*].gi_frame.f_locals['row']",
    "Request": M + "TASKS[*].get_coro().cr_frame.f_locals['request']",
    "Session": M + "CALLBACKS[*].__self__",
    "Pool": M + "connect.__kwdefaults__['pool']",
    "Seen": M + "fetch.__defaults__[0][0]",
    "Listener": M + "WATCHES[*].__callback__.__self__",
    "Event": M + "RECENT[*]",
    "Token": M + "SEEN.<set member>",
    "Secret": M + "Config.value->?<property>.args[0]",
}


def heap(*args, expect=0):
    r = subprocess.run([str(MEMHOUND), "heap", *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == expect, describe(r)
    return r


@pytest.fixture
def dump(py, procs, program, tmp_path):
    prog = program(textwrap.dedent(PROGRAM))
    r = procs.run([py, prog.path, tmp_path / "d.mhh"], timeout=120,
                  env=clean_env(), cwd=str(tmp_path))
    assert r.returncode == 0 and "dumped" in r.stdout, describe(r)
    return tmp_path / "d.mhh"


def why_paths(dump, type_name):
    rep = json.loads(heap("why", dump, "--type", type_name,
                          "--format", "json").stdout)
    return rep["selection"]["value"], [p["path"] for p in rep["paths"]]


def test_every_hop_named(dump):
    got = {}
    for short in EXPECTED:
        full, paths = why_paths(dump, "__main__." + short)
        assert full == "__main__." + short
        got[short] = sorted(paths)
    assert got == {k: sorted(v) if isinstance(v, list) else [v]
                   for k, v in EXPECTED.items()}


def test_one_object_gets_its_exact_path(dump):
    # The unique short name selects it; one object: indices exact.
    r = heap("why", dump, "--type", "Secret")
    assert "objects of type '__main__.Secret': 1 objects" in r.stdout
    assert M + "Config.value->?<property>.args[0]" in r.stdout
    full, paths = why_paths(dump, "__main__.Session")
    assert paths == [M + "CALLBACKS[*].__self__"]


def test_type_selectors(dump):
    # unique short name -> the qualified type
    full, paths = why_paths(dump, "History")
    assert full == "__main__.History" and paths == [EXPECTED["History"]]
    full, _ = why_paths(dump, "functools._lru_cache_wrapper")
    assert full == "functools._lru_cache_wrapper"
    # two classes called Payload: an error naming both
    r = heap("why", dump, "--type", "Payload", expect=1)
    assert "'Payload' is ambiguous" in r.stderr
    assert "__main__.Payload" in r.stderr and "other.Payload" in r.stderr
    assert r.stdout == ""
    # unknown: an error listing the closest names, best first
    r = heap("why", dump, "--type", "Sesion", expect=1)
    assert "no type is called 'Sesion'" in r.stderr
    assert "the closest are: __main__.Session" in r.stderr, r.stderr
    r = heap("why", dump, "--type", "listener", expect=1)
    assert "the closest are: __main__.Listener" in r.stderr, r.stderr
    r = heap("why", dump, "--type", "Nope", expect=1)
    assert "no type is called 'Nope'" in r.stderr
    assert "the closest are: " in r.stderr and r.stdout == ""
