"""The leak / retention / no-growth verdict (docs/verdict.md): `memhound
inspect` on live processes under `memhound run`, the report's verdict
section, and `memhound trim`.

Targets: one that allocates a few hundred MB across threads and frees 90%
in a scattered pattern (every 10th object kept, so glibc's heaps and
pymalloc's arenas stay pinned) -> retention; one whose dict keeps growing
-> leak; an idle one -> no-growth. Each runs at most ~15 s.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import MATRIX, MEMHOUND, clean_env, describe

RETAIN = """
import os, random, threading, time
keep = []
lock = threading.Lock()
def work(seed):
    rnd = random.Random(seed)
    objs = [bytes(rnd.randrange(1024, 8192)) for _ in range(9000)]
    mine = objs[::10]
    del objs
    with lock:
        keep.extend(mine)
ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
for t in ts: t.start()
for t in ts: t.join()
small = [str(i) * 20 for i in range(600000)]
small = small[::10]
print("ready", os.getpid(), flush=True)
time.sleep(15)
"""

LEAK = """
import os, time
d = {}
i = 0
print("ready", os.getpid(), flush=True)
t0 = time.time()
while time.time() - t0 < 15:
    for _ in range(1000):
        d[i] = "x" * 200 + str(i)
        i += 1
    time.sleep(0.05)
"""

IDLE = """
import os, time
print("ready", os.getpid(), flush=True)
time.sleep(15)
"""

# The system interpreter and one of pyenv's (the newest found).
PYS = [pytest.param(p, id=v) for v, p, _ in MATRIX if p and v == "system"]
PYS += [pytest.param(p, id=v) for v, p, _ in reversed(MATRIX)
        if p and v != "system"][:1]


def _start(procs, tmp_path, py, src):
    script = tmp_path / "target.py"
    script.write_text(src)
    p = procs.popen([MEMHOUND, "run", "-o", tmp_path / "t.mhc", "--", py,
                     script], stdout=subprocess.PIPE, text=True,
                    env=clean_env())
    line = p.stdout.readline().split()
    assert line[:1] == ["ready"], line
    return p, int(line[1])


def _inspect(procs, pid):
    r = procs.run([MEMHOUND, "inspect", "--format", "json", pid],
                  env=clean_env(), timeout=30)
    assert r.returncode == 0, describe(r)
    return json.loads(r.stdout)["verdict"]


@pytest.mark.parametrize("py", PYS)
def test_retention_and_trim(procs, tmp_path, py):
    p, pid = _start(procs, tmp_path, py, RETAIN)
    time.sleep(4)
    v = _inspect(procs, pid)
    assert v["verdict"] == "retention", v
    assert v["mallinfo"]["fordblks"] > 100 << 20, v
    assert v["arena_bytes"] and v["arena_free"] > 0, v
    assert "malloc-trim" in v["remedies"], v
    r = procs.run([MEMHOUND, "inspect", pid], env=clean_env(), timeout=30)
    assert r.returncode == 0 and "Verdict: retention" in r.stdout, describe(r)
    assert "memhound trim %d" % pid in r.stdout
    r = procs.run([MEMHOUND, "trim", pid], env=clean_env(), timeout=30)
    assert r.returncode == 0, describe(r)
    kv = dict(w.split("=") for w in r.stdout.split() if "=" in w)
    before, after = int(kv["rss_before"]), int(kv["rss_after"])
    assert after < before - (50 << 20), r.stdout
    os.kill(pid, signal.SIGTERM)
    p.wait(timeout=20)


@pytest.mark.parametrize("py", PYS)
def test_leak(procs, tmp_path, py):
    p, pid = _start(procs, tmp_path, py, LEAK)
    time.sleep(6)
    v = _inspect(procs, pid)
    assert v["verdict"] == "leak", v
    assert v["live_growth"] > 10 << 20 and v["live_r2"] > 0.9, v
    assert "recycle" in v["remedies"] and v["rss_limit"] > v["rss"], v
    p.wait(timeout=30)
    # The report of the finished capture says the same.
    r = procs.run([MEMHOUND, "report", "--format", "json",
                   tmp_path / "t.mhc"], env=clean_env(), timeout=60)
    assert r.returncode == 0, describe(r)
    assert json.loads(r.stdout)["verdict"]["verdict"] == "leak"
    r = procs.run([MEMHOUND, "report", tmp_path / "t.mhc"],
                  env=clean_env(), timeout=60)
    assert "Verdict: leak" in r.stdout, describe(r)


@pytest.mark.parametrize("py", PYS)
def test_no_growth(procs, tmp_path, py):
    p, pid = _start(procs, tmp_path, py, IDLE)
    time.sleep(4)
    # Under 5 s of window: no label yet, but how long to wait.
    v = _inspect(procs, pid)
    assert v["verdict"] == "not-enough-data", v
    assert 0 < v["more_seconds"] <= 60, v
    r = procs.run([MEMHOUND, "inspect", pid], env=clean_env(), timeout=30)
    assert "not enough data yet: about 1 more minute" in r.stdout, \
        describe(r)
    time.sleep(3)
    v = _inspect(procs, pid)
    assert v["verdict"] == "no-growth", v
    assert v["remedies"] == [], v
    os.kill(pid, signal.SIGTERM)
    p.wait(timeout=20)


def test_inspect_errors(procs):
    sleeper = procs.popen(["sleep", "30"])
    r = procs.run([MEMHOUND, "inspect", sleeper.pid], env=clean_env(),
                  timeout=30)
    assert r.returncode == 1
    assert "does not run the memhound agent" in r.stderr, describe(r)
    dead = procs.popen(["true"])
    dead.wait()
    r = procs.run([MEMHOUND, "inspect", dead.pid], env=clean_env(),
                  timeout=30)
    assert r.returncode == 1
    assert "no process %d" % dead.pid in r.stderr, describe(r)
    r = procs.run([MEMHOUND, "trim", dead.pid], env=clean_env(), timeout=30)
    assert r.returncode == 1 and "no process" in r.stderr, describe(r)
    r = procs.run([MEMHOUND, "inspect"], env=clean_env(), timeout=30)
    assert r.returncode == 2
