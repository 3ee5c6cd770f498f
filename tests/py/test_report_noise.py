"""Less noise in `memhound report` (issue 12, item 5), on real programs
with a known truth:

- start-up apart from "live at the end": a program builds a 20 MB
  module-level cache at import time, then leaks a little steadily; the
  leak tops the growth and the after-warm-up live list, the cache is in
  the start-up list only;
- significance marks: a Flask app under Debian's gunicorn with one leaky
  endpoint and three that allocate and free: only the leaky one is
  significant, and it is listed first;
- per-request peaks below the sampling interval print "< R", not 0 B;
- processes that recorded next to nothing (120 `python -c pass` helpers)
  fold into one line of the text report, and JSON marks them;
- a merged summary never shows live above peak: forked children that
  each hold memory to their end, one after the other (the peak is then
  the processes' own peaks summed, and says so), or all at once (the peak
  of the sum, which covers the ends).
"""

import importlib.util
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import (MEMHOUND, clean_env, find_site, fmt_sites, free_port,
                      wait_listening)

PY = "/usr/bin/python3"
GUNICORN = "/usr/bin/gunicorn"

STARTUP_AND_LEAK = """
import time

# Built at import time and kept: ~20 MB, all before the warm-up ends.
CACHE = [bytes(1000) + str(i).encode() for i in range(20000)]  # MARK:cache

kept = []
t0 = time.monotonic()
while time.monotonic() - t0 < 3:
    kept.append(bytearray(3000))  # MARK:leak
    time.sleep(0.001)
"""


def test_startup_apart_from_live_at_the_end(mh, program):
    prog = program(STARTUP_AND_LEAK)
    mh.run(PY, [prog.path])
    caps = mh.captures()
    rep = mh.report_json(caps)
    s = rep["summary"]

    top = rep["growth"][0]
    assert find_site([top], prog.site("leak")), fmt_sites(rep["growth"])
    assert top["significant"] is True, top
    lo, hi = top["growth_interval"]
    assert 0 < lo <= top["growth_bytes"] <= hi, top

    after = rep["live_after_warmup"]
    assert find_site(after[:1], prog.site("leak")), fmt_sites(after)
    cache_after = find_site(after, prog.site("cache"))
    assert cache_after is None or \
        cache_after["live_bytes"] - cache_after["startup_bytes"] < 1 << 20, \
        cache_after
    cache = find_site(rep["live_startup"], prog.site("cache"))
    assert cache is not None, fmt_sites(rep["live_startup"])
    # ~20.8 MB in ~80 samples of 256 KiB: 10 MiB is 4 sd away.
    assert cache["startup_bytes"] > 10 << 20, cache
    # `live` keeps its meaning: everything live at the end, both kinds.
    assert find_site(rep["live"], prog.site("cache"))
    assert find_site(rep["live"], prog.site("leak"))
    assert 10 << 20 < s["startup_bytes"] < s["live_bytes"], s

    text = mh.report(caps).stdout
    recent = text.split("live at the end, allocated after the warm-up")[1]
    recent, startup = recent.split("live since start-up")
    first_row = [ln for ln in recent.splitlines()[2:] if ln.strip()][0]
    assert "prog.py:%d" % prog.lines["leak"] in first_row, recent
    assert "prog.py:%d " % prog.lines["cache"] not in recent, recent
    assert "prog.py:%d " % prog.lines["cache"] in startup, startup


# --- forks: live never above peak -------------------------------------

SEQUENTIAL_CHILDREN = """
import os, time

for k in range(4):
    pid = os.fork()
    if pid == 0:
        held = [bytearray(4096) for _ in range(2500)]  # ~10 MB, to the end
        time.sleep(0.4)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_merged_live_never_above_peak(mh, program):
    prog = program(SEQUENTIAL_CHILDREN)
    mh.run(PY, [prog.path])
    caps = mh.captures()
    assert len(caps) == 5, caps
    rep = mh.report_json(caps)
    s = rep["summary"]
    children = [p for p in rep["processes"] if p["fork_parent"]]
    assert len(children) == 4, rep["processes"]
    # Each child holds ~10 MB at its end; they never ran at once, so the
    # sum of the ends (~40 MB) is above any moment's sum (~10 MB).
    assert s["live_bytes"] > 20 << 20, s
    assert s["tracked_peak_bytes"] >= s["live_bytes"], s
    assert s["tracked_peak_kind"] == "sum_of_process_peaks", s
    at_once = max(p["live"] for p in rep["timeline"])
    assert at_once < s["live_bytes"], (at_once, s)
    text = mh.report(caps).stdout
    assert "the processes' own peaks summed" in text, text[:2000]

    # One capture: the peak is the process's own, and the plain label.
    one = mh.report_json([children[0]["file"]])["summary"]
    assert one["tracked_peak_kind"] == "peak_of_sum", one
    assert one["tracked_peak_bytes"] >= one["live_bytes"], one


CONCURRENT_CHILDREN = """
import os, time

pids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        held = [bytearray(4096) for _ in range(2500)]  # ~10 MB, to the end
        time.sleep(1.0)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


def test_merged_peak_of_sum_when_processes_overlap(mh, program):
    prog = program(CONCURRENT_CHILDREN)
    mh.run(PY, [prog.path])
    caps = mh.captures()
    assert len(caps) == 5, caps
    s = mh.report_json(caps)["summary"]
    # All four held their memory at once: the peak of the sum covers the
    # sum of the ends, and is what the summary reports.
    assert s["live_bytes"] > 20 << 20, s
    assert s["tracked_peak_kind"] == "peak_of_sum", s
    assert s["tracked_peak_bytes"] >= s["live_bytes"], s


# --- short-lived helpers fold into one line ----------------------------

SPAWNER = """
import subprocess, sys

procs = [subprocess.Popen([sys.executable, "-c", "pass"])
         for _ in range(120)]
for p in procs:
    assert p.wait() == 0
kept = [bytearray(4000) for _ in range(3000)]  # MARK:kept
"""


def test_processes_that_recorded_nothing_fold(mh, program):
    prog = program(SPAWNER)
    mh.run(PY, [prog.path], timeout=300)
    caps = mh.captures()
    assert len(caps) == 121, len(caps)
    rep = mh.report_json(caps)
    procs = rep["processes"]
    assert len(procs) == 121
    empty = [p for p in procs if p["empty"]]
    assert len(empty) >= 100, [(p["pid"], p["samples"], p["live_bytes"])
                               for p in procs if not p["empty"]]
    assert rep["summary"]["empty_processes"] == len(empty)
    main = [p for p in procs if p["argv"][-1].endswith("prog.py")]
    assert len(main) == 1 and not main[0]["empty"], main

    text = mh.report(caps).stdout
    table = text.split("\nprocesses\n")[1].split("\n\n")[0]
    rows = table.splitlines()[1:]
    # The header, the few helpers with something live, the main one, and
    # the folded line (two lines).
    assert len(rows) < 121 - len(empty) + 3, table
    assert "%d more processes recorded next to nothing" % len(empty) in \
        table, table
    assert str(empty[0]["pid"]) in table
    assert "%d " % main[0]["pid"] in table, table


# --- gunicorn: only the leaky endpoint is significant -------------------

FLASK_APP = """
from flask import Flask

app = Flask(__name__)
KEPT = []


@app.route("/leak/<int:n>")
def leak(n):
    KEPT.append(["%d-%d" % (n, i) * 100 for i in range(40)])  # MARK:leak
    return "ok"


@app.route("/render/<int:n>")
def render(n):
    page = ["<td>%d</td>" % i * 20 for i in range(400)]
    return "ok %d" % len(page)


@app.route("/json")
def as_json():
    rows = [{"id": i, "name": "x" * 50} for i in range(500)]
    return {"n": len(rows)}


@app.route("/health")
def health():
    return "ok"
"""


@pytest.mark.skipif(not os.path.exists(GUNICORN) or
                    not importlib.util.find_spec("flask"),
                    reason="Debian's gunicorn and python3-flask are needed")
def test_gunicorn_only_the_leaky_endpoint_is_significant(mh, program, procs,
                                                          tmp_path):
    prog = program(FLASK_APP, name="flaskapp.py")
    port = free_port()
    out = tmp_path / "web.mhc"
    argv = [MEMHOUND, "run", "--web", "--sample-interval", "8k", "-o", out,
            "--", GUNICORN, "--workers", "1", "--bind",
            "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
            "--log-level", "warning", "flaskapp:app"]
    log = open(tmp_path / "server.log", "w+")
    p = procs.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=clean_env(),
                    cwd=str(tmp_path))
    try:
        assert wait_listening(port, p, 30), "gunicorn did not come up"
        paths = ["/leak/%d", "/render/%d", "/json", "/health"]
        for n in range(240):
            for path in paths:
                url = "http://127.0.0.1:%d%s" % (
                    port, path % n if "%d" in path else path)
                with urllib.request.urlopen(url, timeout=10) as r:
                    assert r.status == 200
        time.sleep(0.5)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("gunicorn did not stop within 60 s of SIGTERM")
    log.seek(0)
    server_log = log.read()
    log.close()

    caps = mh.captures()
    r = mh.report(caps, "--by", "endpoint", "--format", "json")
    rep = json.loads(r.stdout)
    eps = [e for e in rep["endpoints"] if not e["in_progress"]]
    names = {e["endpoint"]: e for e in eps}
    leak = [e for n, e in names.items() if "leak" in n]
    assert len(leak) == 1, (list(names), server_log[-2000:])
    leak = leak[0]
    assert leak["significant"] is True, leak
    lo, hi = leak["slope_interval_per_1000_requests"]
    assert 0 < lo <= leak["slope_bytes_per_1000_requests"] <= hi, leak
    others = [e for e in eps if e is not leak]
    assert len(others) == 3, list(names)
    assert not any(e["significant"] for e in others), [
        (e["endpoint"], e["slope_bytes_per_1000_requests"],
         e["slope_interval_per_1000_requests"]) for e in others]
    assert rep["endpoints"][0] is leak or \
        rep["endpoints"][0]["endpoint"] == leak["endpoint"], rep["endpoints"]

    # The leaky line's growth row is significant too.
    site = find_site(rep["growth"], prog.site("leak"))
    assert site is not None and site["significant"], fmt_sites(rep["growth"])

    text = mh.report(caps, "--by", "endpoint").stdout
    table = text.split("\nendpoints by ")[1].split("\n\n")[0]
    rows = table.splitlines()[2:]
    assert leak["endpoint"] in rows[0] and not rows[0].startswith("?"), table
    for e in others:
        row = [ln for ln in rows if ln.rstrip().endswith(e["endpoint"])]
        assert row and row[0].startswith("?"), table
    assert "? not significant" in table, table


# --- peaks the sampling cannot resolve ---------------------------------

@pytest.mark.skipif(not os.path.exists(GUNICORN) or
                    not importlib.util.find_spec("flask"),
                    reason="Debian's gunicorn and python3-flask are needed")
def test_unresolvable_peaks_say_so(mh, program, procs, tmp_path):
    program(FLASK_APP, name="flaskapp.py")
    port = free_port()
    argv = [MEMHOUND, "run", "--web", "-o", tmp_path / "web.mhc", "--",
            GUNICORN, "--workers", "1", "--bind", "127.0.0.1:%d" % port,
            "--chdir", str(tmp_path), "--log-level", "warning",
            "flaskapp:app"]
    p = procs.popen(argv, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                    env=clean_env(), cwd=str(tmp_path))
    try:
        assert wait_listening(port, p, 30), "gunicorn did not come up"
        for n in range(100):
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/health" % port, timeout=10) as r:
                r.read()
        time.sleep(0.3)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=60)
    caps = mh.captures()
    rep = mh.report_json(caps, "--by", "endpoint")
    assert rep["summary"]["interval"] == 256 * 1024, rep["summary"]
    health = [e for e in rep["endpoints"] if e["endpoint"].endswith(
        "health")]
    assert health, [e["endpoint"] for e in rep["endpoints"]]
    h = health[0]
    # A tiny request at the default interval: nothing to resolve.
    assert h["peak_resolved_p50"] is False, h
    assert h["peak_resolution_bytes"] == 256 * 1024, h
    text = mh.report(caps, "--by", "endpoint").stdout
    table = text.split("\nendpoints by ")[1].split("\n\n")[0]
    row = [ln for ln in table.splitlines() if ln.rstrip().endswith(
        h["endpoint"])][0]
    assert "< 256.0 KiB" in row, table
    assert "cannot resolve" in table, table
