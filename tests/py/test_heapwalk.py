"""The heap walker (src/agent/heapdump*.c) on every interpreter of the
matrix: exact counts on constructed heaps, names of edges and roots,
sizes as sys.getsizeof says, a heap the dump leaves unchanged, a busy
multi-threaded target, and ALLOC records joined to the objects.

Each test runs a program that builds a heap, dumps it with
`_memhound.dump_heap(path)` and prints what it knows (ids, counts) as
JSON; the dump is then read with tests/py/heapdump_reader.py, a reader
independent of the CLI's."""
import json
import os
import sys
import textwrap

import pytest

from conftest import MEMHOUND, PYDIR, clean_env, describe
import heapdump_reader

PRELUDE = """
import gc, json, os, sys, threading
sys.path.insert(0, %r)
import _memhound

def dump(path, **kw):
    r = _memhound.dump_heap(path)
    assert r["pause_ns"] > 0, r
    return r
""" % str(PYDIR / "memhound")

ATTR, DICTVAL, ITEM, DICTKEY, CELL, SLOT = 1, 2, 3, 4, 5, 6
ROOT_FRAME = 3
FOUND_BY_REF = 2


def run(procs, program, py, source, timeout=120, env=None):
    prog = program(PRELUDE + textwrap.dedent(source))
    r = procs.run([py, prog.path], timeout=timeout,
                  env=env or clean_env(), cwd=str(prog.path.parent))
    assert r.returncode == 0, describe(r)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines, describe(r)
    return json.loads(lines[-1]), prog.path.parent


def read(path):
    d = heapdump_reader.Dump(str(path))
    assert not d.truncated and d.end, "dump %s is not whole" % path
    assert d.end["objects"] == len(d.objects)
    return d


def minor(py):
    import subprocess
    out = subprocess.run([py, "-c", "import sys; print(sys.version_info[1])"],
                         capture_output=True, text=True, timeout=30)
    return int(out.stdout)


def test_str_keyed_dict_keys_all_found(py, procs, program):
    info, tmp = run(procs, program, py, """
        cache = {"key-%d" % i: i * 7 for i in range(100000)}
        dump("d.mhh")
        print(json.dumps({"cache": id(cache)}))
    """)
    d = read(tmp / "d.mhh")
    o = d.get(info["cache"])
    assert o is not None and o.type == "dict"
    keys = [(t, n) for t, k, n in o.edges if k == DICTKEY]
    vals = [(t, n) for t, k, n in o.edges if k == DICTVAL]
    assert len(keys) == 100000 and len(vals) == 100000
    names = {n for _, n in keys}
    assert len(names) == 100000 and "'key-99999'" in names
    # every key object is in the dump, as a str
    assert all(d.get(t) is not None and d.get(t).type == "str"
               for t, _ in keys)
    assert {n for _, n in vals} == names


def test_objects_held_only_by_untracked_containers(py, procs, program):
    info, tmp = run(procs, program, py, """
        inner = (10**12 + 1, 10**12 + 2, "only-here-" + str(os.getpid()))
        holder = {"t": inner}
        gc.collect()
        assert not gc.is_tracked(holder) and not gc.is_tracked(inner)
        top = [holder]
        dump("d.mhh")
        print(json.dumps({"holder": id(holder), "inner": id(inner),
                          "items": [id(x) for x in inner]}))
    """)
    d = read(tmp / "d.mhh")
    h = d.get(info["holder"])
    assert h and h.named(DICTVAL, "'t'") == [info["inner"]]
    assert h.flags & FOUND_BY_REF
    t = d.get(info["inner"])
    assert t and [x for x, k, _ in t.edges if k == ITEM] == info["items"]
    for a in info["items"]:
        o = d.get(a)
        assert o is not None and o.flags & FOUND_BY_REF
    assert [d.get(a).type for a in info["items"]] == ["int", "int", "str"]


def test_inline_attributes_read_without_a_dict(py, procs, program):
    info, tmp = run(procs, program, py, """
        import ctypes
        class Point:
            def __init__(self, i):
                self.x = i
                self.label = "p%d" % i
        pts = [Point(i) for i in range(50000)]

        def dicts():
            # instances whose __dict__ exists, read from memory: the
            # managed dict word (3.11+) or the tp_dictoffset slot
            off = Point.__dictoffset__
            n = 0
            for p in pts:
                addr = id(p) - 3 * 8 if off < 0 else id(p) + off
                v = ctypes.c_void_p.from_address(addr).value
                # 3.12 tags a values pointer with bit 0
                n += v is not None and not (sys.version_info[:2] == (3, 12)
                                            and v & 1)
            return n
        gc.collect()
        before = (len(gc.get_objects()), dicts())
        dump("d.mhh")
        gc.collect()
        after = (len(gc.get_objects()), dicts())
        print(json.dumps({"pts": [id(p) for p in pts[:50]],
                          "xs": [id(p.x) for p in pts[:50]],
                          "labels": [id(p.label) for p in pts[:50]],
                          "before": before, "after": after,
                          "minor": sys.version_info[1]}))
    """)
    assert info["before"] == info["after"], info
    if info["minor"] >= 11:
        assert info["before"][1] == 0  # inline values, no __dict__
    d = read(tmp / "d.mhh")
    insts = d.by_type("__main__.Point")
    assert len(insts) == 50000
    for a, x, lab in zip(info["pts"], info["xs"], info["labels"]):
        o = d.get(a)
        if info["minor"] >= 11:
            assert o.named(ATTR, "x") == [x] and o.named(ATTR, "label") == [
                lab]
        else:
            (dd,) = o.named(SLOT, "__dict__")
            dobj = d.get(dd)
            assert dobj.named(DICTVAL, "'x'") == [x]
            assert dobj.named(DICTVAL, "'label'") == [lab]


def test_parked_thread_frame_locals(py, procs, program):
    info, tmp = run(procs, program, py, """
        class Marker:
            pass
        ev = threading.Event()
        ready = threading.Event()
        box = {}
        def parked():
            marker = Marker()
            box["id"] = id(marker)
            ready.set()
            ev.wait()
        t = threading.Thread(target=parked, name="parker")
        t.start()
        ready.wait()
        dump("d.mhh")
        ev.set()
        t.join()
        print(json.dumps({"marker": box["id"], "ident": t.ident}))
    """)
    d = read(tmp / "d.mhh")
    roots = [(k, n) for k, n, a in d.roots if a == info["marker"]]
    assert roots, "no root for the parked thread's local"
    kind, name = roots[0]
    assert kind == ROOT_FRAME
    assert name.startswith("thread %d [parker] " % info["ident"]), name
    assert name.endswith(" in parked: marker"), name
    assert d.get(info["marker"]).type == "__main__.Marker"


def test_closure_cells_named(py, procs, program):
    info, tmp = run(procs, program, py, """
        class Secret:
            pass
        def outer():
            secret = Secret()
            other = 5
            def inner():
                return secret, other
            return inner, secret
        fn, s = outer()
        del s
        dump("d.mhh")
        i = fn.__code__.co_freevars.index("secret")
        print(json.dumps({"fn": id(fn), "closure": id(fn.__closure__),
                          "secret": id(fn.__closure__[i].cell_contents),
                          "cell": id(fn.__closure__[i])}))
    """)
    d = read(tmp / "d.mhh")
    f = d.get(info["fn"])
    assert f.named(ATTR, "__closure__") == [info["closure"]]
    t = d.get(info["closure"])
    assert t.named(CELL, "secret") == [info["cell"]]
    assert t.named(CELL, "other")
    c = d.get(info["cell"])
    assert c.named(ATTR, "cell_contents") == [info["secret"]]


def test_sizes_as_getsizeof(py, procs, program):
    info, tmp = run(procs, program, py, """
        class C:
            def __init__(self):
                self.a = 1
        class S:
            __slots__ = ("p",)
        class D(dict):
            pass
        c = C()
        samples = [0, 1, -1, 2**30, 2**70, True, False, 1.5, "", "a",
                   "\\xe9" * 3, "\\u65e5", "\\U0001f600", "e\\u0301",
                   b"", b"abc", bytearray(b"xy"), {}, {"a": 1}, {1: 2},
                   dict.fromkeys(range(100)),
                   c, S(), D(a=1), [], [1, 2], list(range(100)), (), (1,),
                   set(), {1, 2}, set(range(100)), frozenset([1]), int, C,
                   None, 3 + 4j, object()]
        s8 = "\\xfc" * 2
        s8.encode("utf-8")
        samples.append(s8)
        dump("d.mhh")
        print(json.dumps({"objs": [[id(o), sys.getsizeof(o), repr(o)[:30]]
                                   for o in samples]}))
    """)
    d = read(tmp / "d.mhh")
    bad = []
    for a, size, r in info["objs"]:
        o = d.get(a)
        if o is None:
            bad.append(("missing", r))
        elif o.size != size:
            bad.append((r, o.size, size))
    assert not bad, bad


def test_type_names(py, procs, program):
    info, tmp = run(procs, program, py, """
        import collections
        class Outer:
            class Inner:
                pass
        objs = [Outer(), Outer.Inner(), collections.deque(), "s", b"b",
                collections.OrderedDict()]
        dump("d.mhh")
        print(json.dumps({"objs": [id(o) for o in objs]}))
    """)
    d = read(tmp / "d.mhh")
    assert [d.get(a).type for a in info["objs"]] == [
        "__main__.Outer", "__main__.Outer.Inner", "collections.deque",
        "str", "bytes", "collections.OrderedDict"]


def test_busy_threads_dump_without_deadlock(py, procs, program):
    info, tmp = run(procs, program, py, """
        import time
        stop = False
        def churn(k):
            keep = []
            while not stop:
                keep.append({"k": [k] * 10, "s": "x" * 100})
                if len(keep) > 1000:
                    keep.clear()
        ts = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.2)
        pauses = []
        for i in range(5):
            pauses.append(dump("d%d.mhh" % i)["pause_ns"])
        stop = True
        for t in ts:
            t.join()
        print(json.dumps({"pauses": pauses}))
    """, timeout=120)
    for i in range(5):
        d = read(tmp / ("d%d.mhh" % i))
        assert d.header["pause_ns"] > 0
        assert len(d.objects) > 1000


def test_allocs_joined_in_trace_mode(py, procs, program):
    info, tmp = run(procs, program, py, """
        class Leaf:
            pass
        _memhound.start("cap.mhc", mode=1)
        kept = [Leaf() for i in range(2000)]
        strs = ["s%d" % i * 10 for i in range(2000)]
        dump("d.mhh")
        _memhound.stop()
        print(json.dumps({"kept": [id(o) for o in kept],
                          "strs": [id(s) for s in strs]}))
    """)
    d = read(tmp / "d.mhh")
    assert d.header["capture"].endswith("cap.mhc")
    assert d.header["interval"] == 0
    by_obj = {a[3]: a for a in d.allocs if a[3]}
    found = [a for a in info["kept"] + info["strs"] if a in by_obj]
    assert len(found) >= 0.99 * 4000, (len(found), len(d.allocs))
    assert all(by_obj[a][2] for a in found)  # each has its stack id
    # the block starts before the object by its type's pre-header
    pre = {name: p for _, name, p, _ in d.types.values()}
    for a in found[:100]:
        blk = by_obj[a]
        assert a - blk[0] == pre[d.get(a).type]


def test_walk_goals_smoke(py, procs, program):
    # A small version of the benchmark heap: the dump must stay compact.
    info, tmp = run(procs, program, py, """
        data = [{"name": "n%d" % i} for i in range(100000)]
        dump("d.mhh")
        print(json.dumps({"size": os.path.getsize("d.mhh")}))
    """)
    d = read(tmp / "d.mhh")
    assert len(d.objects) >= 200000
    per = info["size"] / len(d.objects)
    assert per <= 40, "%.1f bytes/object" % per


def test_allocs_in_sampling_mode(py, procs, program):
    info, tmp = run(procs, program, py, """
        _memhound.start("cap.mhc", mode=0, interval=4096)
        kept = [bytes(1000) for i in range(20000)]
        dump("d.mhh")
        _memhound.stop()
        print(json.dumps({"kept": [id(o) for o in kept]}))
    """)
    d = read(tmp / "d.mhh")
    assert d.header["interval"] == 4096
    kept = set(info["kept"])
    joined = [a for a in d.allocs if a[3] in kept]
    # each 1 KB block is sampled with probability 1 - exp(-1033/4096)
    assert 0.1 * 20000 < len(joined) < 0.4 * 20000, len(joined)
    assert all(a[2] and d.get(a[3]).type == "bytes" for a in joined)


def test_cli_reads_the_dump_and_rejects_a_corrupt_one(py, procs, program):
    if not MEMHOUND.exists():
        pytest.skip("build/memhound is not built")
    info, tmp = run(procs, program, py, """
        words = ["w%d" % i for i in range(30000)]
        dump("d.mhh")
        print(json.dumps({}))
    """)
    d = read(tmp / "d.mhh")
    r = procs.run([MEMHOUND, "heap", "census", "--format", "json",
                   "--top", "0", tmp / "d.mhh"], env=clean_env())
    assert r.returncode == 0, describe(r)
    census = {t["type"]: t for t in json.loads(r.stdout)["types"]}
    assert census["str"]["count"] == len(d.by_type("str"))
    data = (tmp / "d.mhh").read_bytes()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    (tmp / "bad.mhh").write_bytes(bytes(bad))
    (tmp / "cut.mhh").write_bytes(data[:len(data) // 2])
    for name in ("bad.mhh", "cut.mhh"):
        r = procs.run([MEMHOUND, "heap", "census", tmp / name],
                      env=clean_env())
        assert r.returncode >= 0, describe(r)  # no crash
        if name == "bad.mhh":
            assert r.returncode != 0 and "bad.mhh" in r.stderr, describe(r)
        else:
            assert "trunc" in (r.stderr + r.stdout).lower() or \
                "cut short" in r.stderr, describe(r)
