"""The agent's own guarantees, on every interpreter of the matrix: RAW
allocations made without the GIL, a full disk, fork without a spurious
warning, restart with another mode. Each runs a real program under
`memhound run` (or the in-process API) and reads the report's JSON."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMHOUND = os.path.join(ROOT, "build", "memhound")
PYDIR = os.path.join(ROOT, "build", "python")


def matrix():
    env = os.environ.get("MEMHOUND_MATRIX")
    if env:
        found = env.split()
    else:
        found = [sys.executable]
    return found


def interpreters():
    out = []
    for py in matrix():
        if os.path.exists(py):
            out.append(pytest.param(py, id=os.path.basename(os.path.dirname(os.path.dirname(py))) or py))
        else:
            print("memhound tests: skipping absent interpreter %s" % py)
    return out


def run_target(py, tmp_path, source, *run_args, env=None, timeout=120):
    script = tmp_path / "target.py"
    script.write_text(textwrap.dedent(source))
    capture = tmp_path / "cap.mhc"
    proc = subprocess.run(
        [MEMHOUND, "run", "-o", str(capture), *run_args, "--", py, str(script)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    return proc, capture


def report(*captures, args=()):
    proc = subprocess.run(
        [MEMHOUND, "report", "--format", "json", *args, *map(str, captures)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("py", interpreters())
def test_raw_allocations_without_gil_have_no_stack(py, tmp_path):
    # ctypes.CDLL calls release the GIL: these PyMem_RawMalloc calls come
    # from threads that do not hold it, so the agent must not read frames.
    proc, cap = run_target(py, tmp_path, """
        import ctypes, threading
        lib = ctypes.CDLL(None)
        lib.PyMem_RawMalloc.restype = ctypes.c_void_p
        lib.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
        kept = []
        def grab():
            for _ in range(500):
                p = lib.PyMem_RawMalloc(64 * 1024)
                ctypes.memset(p, 1, 64 * 1024)
                kept.append(p)
        ts = [threading.Thread(target=grab) for _ in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
    """)
    assert proc.returncode == 0, proc.stderr
    rep = report(cap, args=("--warmup", "0"))
    nostack = [g["live_bytes"] for g in rep["live"] if g["key"] == "<no Python stack>"]
    assert nostack, rep["live"][:5]
    # 4 threads x 500 x 64 KiB = 125 MiB, estimated within 20%
    assert abs(nostack[0] - 125 * 2**20) < 0.2 * 125 * 2**20, nostack


@pytest.fixture
def full_fs(tmp_path):
    """A real file system that fills up: a 64 KiB tmpfs (memhound refuses
    to write into a device such as /dev/full)."""
    if os.geteuid() != 0:
        print("skipped: mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "full"
    d.mkdir(mode=0o700)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode:
        print("skipped: cannot mount a tmpfs: %s" % r.stderr.strip())
        pytest.skip("cannot mount a tmpfs")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.parametrize("py", interpreters())
def test_full_disk_is_reported_and_the_program_carries_on(py, tmp_path, full_fs):
    script = tmp_path / "t.py"
    script.write_text("x = [bytearray(1000) for _ in range(200000)]\nprint('done', len(x))\n")
    proc = subprocess.run([MEMHOUND, "run", "--trace-all", "-o", str(full_fs / "c.mhc"), "--",
                           py, str(script)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "done 200000" in proc.stdout
    assert "cannot write capture" in proc.stderr and "No space left" in proc.stderr


@pytest.mark.parametrize("py", interpreters())
def test_fork_does_not_warn_about_threads(py, tmp_path):
    # 3.12+ warns when forking a multi-threaded process; the writer thread
    # must not make a single-threaded program see that (or fail under -W error).
    script = tmp_path / "f.py"
    script.write_text(textwrap.dedent("""
        import os
        kept = [bytearray(500) for _ in range(20000)]
        pid = os.fork()
        if pid == 0:
            more = [bytearray(700) for _ in range(20000)]
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child status", status)
    """))
    proc = subprocess.run([MEMHOUND, "run", "-o", str(tmp_path / "c.%p.mhc"), "--",
                           py, "-W", "error::DeprecationWarning", str(script)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "child status 0" in proc.stdout
    assert "DeprecationWarning" not in proc.stderr
    caps = sorted(tmp_path.glob("c.*.mhc"))
    assert len(caps) == 2, proc.stderr


@pytest.mark.parametrize("py", interpreters())
def test_restart_with_another_mode(py, tmp_path):
    script = tmp_path / "r.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import _memhound
        _memhound.start(%r, mode=0)
        a = [bytearray(1000) for _ in range(50000)]
        s = _memhound.stats()
        assert s["active"] and s["mode"] == "sample" and s["samples"] > 50, s
        _memhound.stop()
        assert not _memhound.stats()["active"]
        _memhound.start(%r, mode=1)
        b = [bytearray(100) for _ in range(1000)]
        s = _memhound.stats()
        assert s["mode"] == "trace" and s["samples"] >= 2000, s
        try:
            _memhound.start(%r)
        except RuntimeError as e:
            assert "already recording" in str(e)
        else:
            raise AssertionError("second start accepted")
        _memhound.stop()
        _memhound.stop()
        print("ok")
    """ % (os.path.join(PYDIR, "memhound"), str(tmp_path / "a.mhc"),
           str(tmp_path / "b.mhc"), str(tmp_path / "c.mhc"))))
    proc = subprocess.run([py, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    rep = report(tmp_path / "b.mhc", args=("--warmup", "0"))
    top = rep["live"][0]
    assert top["file"].endswith("r.py"), rep["live"][:3]


@pytest.mark.parametrize("py", interpreters())
def test_stacks_sharing_outer_frames_are_told_apart(py, tmp_path):
    # The interner shares the outer frames of stacks (a prefix tree):
    # stacks that are prefixes of one another, at every depth, must come
    # out whole and distinct, each with its own count (trace-all: exact).
    proc, cap = run_target(py, tmp_path, """
        KEEP = []


        def rec(n):
            if n == 0:
                b = bytearray(3000)  # line 7: leaf
                KEEP.append(b)  # (the list's growth: not line 7 or 10)
                return
            b = bytearray(2000)  # line 10: mid
            KEEP.append(b)
            rec(n - 1)  # line 12


        for _ in range(3):
            for d in range(25):
                rec(d)  # line 17
    """, "--trace-all")
    assert proc.returncode == 0, proc.stderr
    rep = report(cap, args=("--warmup", "0", "--by", "stack", "--top", "0"))
    counts = {}
    for site in rep["live"]:
        frames = tuple(f.rsplit("/", 1)[-1]
                       for f in site["key"].split(" < "))
        if frames[0] in ("target.py:7 in rec", "target.py:10 in rec"):
            counts[frames] = site["live_count"]

    def stack(line, depth):
        return (("target.py:%d in rec" % line,) +
                ("target.py:12 in rec",) * depth +
                ("target.py:17 in <module>",))

    leaf = [counts.pop(stack(7, d), 0) for d in range(25)]
    mid = [counts.pop(stack(10, j), 0) for j in range(24)]
    assert not counts, sorted(counts)[:3]
    # 3 calls reach each depth d; mid runs at depth j in every call with
    # d > j: 3 * (24 - j) times. A bytearray is one or two blocks.
    per = leaf[0] // 3
    assert per > 0 and leaf == [3 * per] * 25, leaf
    assert mid == [3 * (24 - j) * per for j in range(24)], mid
