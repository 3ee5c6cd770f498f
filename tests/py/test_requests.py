"""Per-request attribution in the agent (src/agent/requests.c), on every
interpreter of the matrix: the Request API in real threads and real
asyncio tasks, nesting, ending twice or from another thread, findings,
thread_allocated() exactness, the request counter in stats() and on the
control socket, and fork.

Each test runs a program that records with the in-process API and prints
what it knows as JSON; the capture is then read by the small reader
below, straight from docs/capture-format.md (TAG, REQUEST, FINDING and
the ALLOC records), independent of the CLI's reader."""
import json
import struct
import textwrap
import zlib

import pytest

from conftest import CONTROL_CLIENT, PYDIR, clean_env, describe
import heapdump_reader

PRELUDE = """
import asyncio, json, os, socket, sys, threading
sys.path.insert(0, %r)
import memhound
from memhound import _memhound

def out(**kw):
    print(json.dumps(kw), flush=True)
""" % str(PYDIR) + CONTROL_CLIENT


def run(procs, program, py, source, timeout=120):
    prog = program(PRELUDE + textwrap.dedent(source))
    r = procs.run([py, prog.path], timeout=timeout, env=clean_env(),
                  cwd=str(prog.path.parent))
    assert r.returncode == 0, describe(r)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines, describe(r)
    return json.loads(lines[-1]), prog.path.parent


# --- a small capture reader ---------------------------------------------

def _uv(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def _str(b, i):
    n, i = _uv(b, i)
    return b[i:i + n].decode("utf-8"), i + n


def read_capture(path):
    """The capture's events in file order, as tuples:
    ("alloc", size, request) with the request of the chunk's last TAG,
    ("request", id, t_begin, t_end, endpoint), ("finding", dict),
    ("chunk",) at each chunk start."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89MHC\r\n\x1a\n"
    pos, events = 12, []
    while pos < len(data):
        assert data[pos] == 0x4B, "bad chunk tag at %d" % pos
        n, crc = struct.unpack_from("<II", data, pos + 1)
        flags = data[pos + 9]
        payload = data[pos + 10:pos + 10 + n]
        assert len(payload) == n, "truncated at %d" % pos
        assert zlib.crc32(payload) == crc
        pos += 10 + n
        if flags & 1:
            raw, k = _uv(payload, 0)
            payload = heapdump_reader._unzstd(payload[k:], raw)
        events.append(("chunk",))
        tag, i = 0, 0  # every chunk starts untagged
        while i < len(payload):
            t = payload[i]
            i += 1
            if 1 <= t <= 3:
                _, i = _uv(payload, i)
                size, i = _uv(payload, i)
                _, i = _uv(payload, i)
                events.append(("alloc", size, tag))
            elif t == 4:
                _, i = _uv(payload, i)
            else:
                assert t >= 0x40, "unknown fixed record 0x%02x" % t
                ln, i = _uv(payload, i)
                body, i = payload[i:i + ln], i + ln
                if t == 0x49:  # TAG
                    tag, k = _uv(body, 0)
                    assert k == len(body)
                elif t == 0x48:  # REQUEST
                    rid, k = _uv(body, 0)
                    t0, k = _uv(body, k)
                    t1, k = _uv(body, k)
                    ep, k = _str(body, k)
                    assert k == len(body)
                    events.append(("request", rid, t0, t1, ep))
                elif t == 0x4A:  # FINDING
                    f = {}
                    f["t"], k = _uv(body, 0)
                    f["request"], k = _uv(body, k)
                    f["id"], k = _str(body, k)
                    f["file"], k = _str(body, k)
                    f["line"], k = _uv(body, k)
                    f["function"], k = _str(body, k)
                    f["count"], k = _uv(body, k)
                    f["bytes"], k = _uv(body, k)
                    f["detail"], k = _str(body, k)
                    assert k == len(body)
                    events.append(("finding", f))
    return events


def requests_of(events):
    """{id: (t_begin, t_end, endpoint)}; ids are unique per capture."""
    out = {}
    for e in events:
        if e[0] == "request":
            assert e[1] > 0 and e[1] not in out, "request id %d twice" % e[1]
            assert e[2] <= e[3], e
            out[e[1]] = (e[2], e[3], e[4])
    return out


def tags_of_size(events, size):
    """The requests of the ALLOCs of size (bytearray(n) asks for n + 1)."""
    return [e[2] for e in events if e[0] == "alloc" and e[1] in (size, size + 1)]


def assert_requests_follow_their_allocs(events):
    ended = set()
    for e in events:
        if e[0] == "request":
            ended.add(e[1])
        elif e[0] == "alloc":
            assert e[2] not in ended, "ALLOC tagged %d after its REQUEST" % e[2]


# --- tests ----------------------------------------------------------------

def test_asyncio_tasks_carry_their_request(py, procs, program):
    # 100 requests in one thread, interleaved at every await; each task
    # allocates sizes nobody else does, also in a child task (which copies
    # its context) and in a straggler that runs after the request ended.
    info, tmp = run(procs, program, py, """
        memhound.start("cap.mhc", mode="trace")
        N = 100
        def size(i, k): return 300017 + 64 * (3 * i + k)

        async def child(i):
            await asyncio.sleep(0)
            b = bytearray(size(i, 1)); del b

        async def straggler(i):
            await LATER.wait()
            b = bytearray(size(i, 2)); del b

        async def handle(i, ids, stragglers):
            req = _memhound.request_begin()
            req.endpoint = "task-%d" % i
            ids[i] = req.id
            await asyncio.sleep(0)
            b = bytearray(size(i, 0)); del b
            await asyncio.sleep(0)
            await asyncio.create_task(child(i))
            stragglers.append(asyncio.create_task(straggler(i)))
            assert _memhound.request_current() is req
            await asyncio.sleep(0)
            _memhound.request_end(req)
            assert _memhound.request_current() is None

        async def main():
            global LATER
            LATER = asyncio.Event()  # in the loop (3.9 binds it at creation)
            ids, stragglers = {}, []
            await asyncio.gather(*(handle(i, ids, stragglers) for i in range(N)))
            assert _memhound.request_current() is None
            LATER.set()
            await asyncio.gather(*stragglers)
            return ids

        ids = asyncio.run(main())
        st = _memhound.stats()
        memhound.stop()
        out(ids=ids, sizes=[[size(i, k) for k in range(3)] for i in range(N)],
            requests=st["requests"])
    """)
    events = read_capture(tmp / "cap.mhc")
    reqs = requests_of(events)
    assert info["requests"] == 100
    assert len(reqs) == 100
    assert_requests_follow_their_allocs(events)
    for i, (own, in_child, after) in enumerate(info["sizes"]):
        rid = info["ids"][str(i)]
        assert reqs[rid][2] == "task-%d" % i
        assert tags_of_size(events, own) == [rid], "task %d" % i
        assert tags_of_size(events, in_child) == [rid], "child of task %d" % i
        assert tags_of_size(events, after) == [0], "straggler of task %d" % i


@pytest.mark.parametrize("mode", ["trace", "sample"])
def test_threads_carry_their_request(py, procs, program, mode):
    # Real threads inside their requests at the same time; sampling with
    # a 1-byte interval samples every allocation of this size.
    info, tmp = run(procs, program, py, """
        mode = %r
        if mode == "trace":
            memhound.start("cap.mhc", mode="trace")
        else:
            memhound.start("cap.mhc", sample_interval=1)
        N = 8
        def size(i, k): return 400033 + 64 * (2 * i + k)
        barrier = threading.Barrier(N)
        ids = {}

        def work(i):
            req = _memhound.request_begin()
            req.endpoint = "thread-%%d" %% i
            ids[i] = req.id
            b = bytearray(size(i, 0)); del b
            barrier.wait()
            assert _memhound.request_current() is req
            b = bytearray(size(i, 1)); del b
            barrier.wait()
            _memhound.request_end(req)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(N)]
        for t in ts: t.start()
        for t in ts: t.join()
        b = bytearray(size(N, 0)); del b  # main thread: no request
        memhound.stop()
        out(ids=ids, sizes=[[size(i, k) for k in range(2)] for i in range(N + 1)])
    """ % mode)
    events = read_capture(tmp / "cap.mhc")
    reqs = requests_of(events)
    assert len(reqs) == 8
    assert_requests_follow_their_allocs(events)
    for i in range(8):
        rid = info["ids"][str(i)]
        assert reqs[rid][2] == "thread-%d" % i
        for s in info["sizes"][i]:
            # Sampling at a 1-byte interval misses a 400 KB allocation
            # with probability exp(-400033): never.
            assert tags_of_size(events, s) == [rid], (i, s)
    assert tags_of_size(events, info["sizes"][8][0]) == [0]


def test_nesting_end_twice_and_end_from_another_thread(py, procs, program):
    info, tmp = run(procs, program, py, """
        assert _memhound.request_begin() is None      # not recording
        assert _memhound.request_current() is None
        memhound.start("cap.mhc", mode="trace")
        outer = _memhound.request_begin()
        assert isinstance(outer, _memhound.Request) and outer.id > 0
        assert outer.endpoint is None and not outer.ended
        assert _memhound.request_begin() is None      # nested: outer owns it
        _memhound.request_end(None)                   # what a nested layer got
        _memhound.request_current().endpoint = "named/<slug>/"  # inner layer names it
        b = bytearray(500009); del b
        _memhound.request_end(outer)
        assert outer.ended and outer.endpoint == "named/<slug>/"
        _memhound.request_end(outer)                  # idempotent
        assert _memhound.request_current() is None
        b = bytearray(500041); del b                  # after the end: untagged
        unnamed = _memhound.request_begin()
        _memhound.request_end(unnamed)

        # begun in one thread, ended in another
        started, ended = threading.Event(), threading.Event()
        box = {}
        def worker():
            box["req"] = _memhound.request_begin()
            box["req"].endpoint = "cross"
            b = bytearray(500057); del b
            started.set()
            ended.wait()
            box["current_after"] = _memhound.request_current()
            b = bytearray(500069); del b              # ended elsewhere: untagged
            box["again"] = _memhound.request_begin()  # a new one may begin
            b = bytearray(500083); del b
            _memhound.request_end(box["again"])
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        _memhound.request_end(box["req"])
        ended.set()
        t.join()
        try:
            _memhound.request_end(42)
            bad = None
        except TypeError as e:
            bad = str(e)
        try:
            outer.endpoint = 3
        except TypeError:
            pass
        else:
            raise AssertionError("endpoint accepted an int")
        try:
            outer.id = 5
        except AttributeError:
            pass
        else:
            raise AssertionError("id is writable")
        try:
            _memhound.Request()
        except TypeError:
            pass
        else:
            raise AssertionError("Request() made an instance")
        n = _memhound.stats()["requests"]
        memhound.stop()
        out(outer=outer.id, unnamed=unnamed.id, cross=box["req"].id,
            again=box["again"].id, current_after=repr(box["current_after"]),
            requests=n, bad=bad)
    """)
    events = read_capture(tmp / "cap.mhc")
    reqs = requests_of(events)
    assert info["requests"] == 4
    assert set(reqs) == {info["outer"], info["unnamed"], info["cross"],
                         info["again"]}
    assert reqs[info["outer"]][2] == "named/<slug>/"
    assert reqs[info["unnamed"]][2] == "(unnamed)"
    assert reqs[info["cross"]][2] == "cross"
    assert len({info["outer"], info["unnamed"], info["cross"],
                info["again"]}) == 4
    assert tags_of_size(events, 500009) == [info["outer"]]
    assert tags_of_size(events, 500041) == [0]
    assert tags_of_size(events, 500057) == [info["cross"]]
    assert info["current_after"] == "None"
    assert tags_of_size(events, 500069) == [0]
    assert tags_of_size(events, 500083) == [info["again"]]
    assert_requests_follow_their_allocs(events)
    assert info["bad"] and "Request" in info["bad"]


def test_findings_and_long_strings(py, procs, program):
    info, tmp = run(procs, program, py, """
        # not recording: accepted, nothing happens
        assert _memhound.finding("x-rule", "/app/a.py", 3) is None
        memhound.start("cap.mhc", mode="trace")
        _memhound.finding("no-request", "/app/a.py", 7)
        req = _memhound.request_begin()
        req.endpoint = "a" + "\\u00e9" * 40000       # 80,001 bytes of UTF-8
        _memhound.finding("django-queryset-truthiness", "/app/views.py", 42,
                          function="report", count=20000, bytes=12345678,
                          detail="if students:")
        _memhound.finding("surrogate", "/app/\\ud800.py", 1)
        errors = []
        for args in (("", "f", 1), ("x", "f", -1), ("x", "f", 2 ** 32),
                     ("x", None, 1), ("x", "f", 1, "", -5)):
            try:
                _memhound.finding(*args)
            except (ValueError, TypeError, OverflowError) as e:
                errors.append(type(e).__name__)
        _memhound.request_end(req)
        memhound.stop()
        assert _memhound.finding("x-rule", "/app/a.py", 3) is None
        out(req=req.id, errors=errors)
    """)
    events = read_capture(tmp / "cap.mhc")
    findings = [e[1] for e in events if e[0] == "finding"]
    assert [f["id"] for f in findings] == [
        "no-request", "django-queryset-truthiness", "surrogate"]
    assert info["errors"] == ["ValueError", "OverflowError", "OverflowError",
                              "TypeError", "OverflowError"]
    assert findings[0]["request"] == 0 and findings[0]["line"] == 7
    f = findings[1]
    assert f == dict(f, request=info["req"], file="/app/views.py", line=42,
                     function="report", count=20000, bytes=12345678,
                     detail="if students:")
    assert 0 < findings[0]["t"] <= f["t"]
    assert findings[2]["file"] == "/app/\\ud800.py"
    ep = requests_of(events)[info["req"]][2]
    assert ep == ("a" + "\u00e9" * 40000).encode()[:65535].decode()
    assert len(ep.encode()) == 65535  # cut on a character boundary


@pytest.mark.parametrize("mode", ["sample", "sample64", "trace"])
def test_thread_allocated_is_exact(py, procs, program, mode):
    info, _ = run(procs, program, py, """
        mode = %r
        assert _memhound.thread_allocated() is None   # not recording
        if mode == "trace":
            memhound.start("cap.mhc", mode="trace")
        elif mode == "sample64":
            memhound.start("cap.mhc", sample_interval=64)
        else:
            memhound.start("cap.mhc")
        ta = _memhound.thread_allocated
        def measure():  # locals: storing a global may grow a dict
            deltas = []
            for n in (100, 1000, 4000, 100000, 3000000, 20000000):
                for _ in range(5):
                    t0 = ta()
                    b = bytearray(n)
                    t1 = ta()
                    del b
                    deltas.append([n, t1 - t0])
            return deltas
        deltas = measure()
        # Another thread's allocations are not this one's.
        go, done = threading.Event(), threading.Event()
        def other():
            go.wait()
            kept = [bytearray(1000000) for _ in range(20)]
            done.set()
        t = threading.Thread(target=other)
        t.start()
        t0 = ta()
        go.set()
        done.wait()
        t1 = ta()
        t.join()
        box = {}
        def fresh():
            box["start"] = ta()
            b = bytearray(5000000)
            box["delta"] = ta() - box["start"]
        t = threading.Thread(target=fresh); t.start(); t.join()
        memhound.stop()
        out(deltas=deltas, other=t1 - t0, fresh=box, stopped=ta())
    """ % mode)
    # bytearray(n) asks for n + 1 bytes; the bytearray object and the int
    # the second call returns are the interpreter's noise (84 bytes on
    # 3.9-3.13).
    for n, d in info["deltas"]:
        assert n + 1 <= d <= n + 1 + 256, (n, d, info["deltas"])
    assert 0 <= info["other"] < 64 * 1024, info
    assert 5000001 <= info["fresh"]["delta"] <= 5000001 + 2048, info
    assert info["stopped"] is None


def test_request_counter_in_stats_and_control_socket(py, procs, program):
    info, _ = run(procs, program, py, """
        memhound.start("cap.mhc")
        assert _memhound.stats()["requests"] == 0
        for i in range(7):
            r = _memhound.request_begin()
            _memhound.request_end(r)
            _memhound.request_end(r)
        r = _memhound.request_begin()   # in progress: not counted yet
        st = _memhound.stats()
        reply = control_request(st["control"], "stats")
        _memhound.request_end(r)
        n = _memhound.stats()["requests"]
        memhound.stop()
        out(stats=st["requests"], reply=reply, after=n)
    """)
    assert info["stats"] == 7 and info["after"] == 8
    words = info["reply"].split()
    assert words[0] == "ok", info
    assert "requests=7" in words, info
    assert "web=1" in words, info  # it began requests: it counts them


def test_fork_keeps_the_current_request_and_the_ids(py, procs, program):
    info, tmp = run(procs, program, py, """
        memhound.start("cap.%p.mhc", mode="trace")
        first = _memhound.request_begin()
        _memhound.request_end(first)
        req = _memhound.request_begin()
        req.endpoint = "forked"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            cur = _memhound.request_current()
            b = bytearray(600043); del b
            _memhound.request_end(cur)
            again = _memhound.request_begin()
            _memhound.request_end(again)
            os.write(w, json.dumps({"cur": cur.id if cur else None,
                                    "again": again.id}).encode())
            memhound.stop()
            os._exit(0)
        os.close(w)
        child = json.loads(os.read(r, 4096).decode())
        os.waitpid(pid, 0)
        b = bytearray(600067); del b
        _memhound.request_end(req)
        memhound.stop()
        out(parent=os.getpid(), child_pid=pid, req=req.id, first=first.id,
            child=child)
    """)
    assert info["child"]["cur"] == info["req"]
    assert info["child"]["again"] == info["req"] + 1
    parent = read_capture(tmp / ("cap.%d.mhc" % info["parent"]))
    child = read_capture(tmp / ("cap.%d.mhc" % info["child_pid"]))
    preqs, creqs = requests_of(parent), requests_of(child)
    assert set(preqs) == {info["first"], info["req"]}
    assert preqs[info["req"]][2] == "forked"
    assert set(creqs) == {info["req"], info["req"] + 1}
    assert creqs[info["req"]][2] == "forked"
    assert tags_of_size(child, 600043) == [info["req"]]
    assert tags_of_size(parent, 600067) == [info["req"]]
    assert_requests_follow_their_allocs(parent)
    assert_requests_follow_their_allocs(child)


def test_reading_the_request_allocates_nothing(py, procs, program):
    # In trace-all every allocation reads the current request in the hook;
    # an allocation there would count in thread_allocated(). Fifty other
    # context variables make the lookup walk HAMT nodes and compare keys.
    info, _ = run(procs, program, py, """
        import contextvars
        memhound.start("cap.mhc", mode="trace")
        others = [contextvars.ContextVar("v%d" % i) for i in range(50)]
        for i, v in enumerate(others):
            v.set(i)
        ta = _memhound.thread_allocated
        def measure():
            out = []
            for n in (100, 1000, 100000):
                t0 = ta()
                b = [bytearray(n) for _ in range(20)]
                out.append(ta() - t0)
                del b
            return out
        measure()  # warm-up: first calls allocate caches
        outside = measure()
        req = _memhound.request_begin()
        # a fresh context each time: the var's cache is cold, so the hook
        # looks the request up in the HAMT
        inside = [contextvars.copy_context().run(measure) for _ in range(3)]
        _memhound.request_end(req)
        memhound.stop()
        out(outside=outside, inside=inside)
    """)
    for got in info["inside"]:
        assert got == info["outside"], info


def test_changing_the_request_while_the_hook_reads_it(py, procs, program):
    """PyContextVar_Reset clears the var's cache and then allocates the new
    HAMT; a sample taken there must not cache the outgoing Request, which
    the swap frees (a dangling cache crashed gunicorn workers). Other vars
    in the context make the HAMT allocate; a 64-byte interval samples
    nearly every allocation."""
    got, _ = run(procs, program, py, """
        import contextvars
        others = [contextvars.ContextVar("v%d" % i) for i in range(5)]
        for v in others:
            v.set(1)
        memhound.start("c.mhc", sample_interval=64)
        for i in range(50000):
            r = _memhound.request_begin()
            x = [0] * 10
            _memhound.request_end(r)
            del r
            y = _memhound.request_begin()
            if y is not None:
                _memhound.request_end(y)
        memhound.stop()
        out(survived=True)
    """)
    assert got["survived"]
