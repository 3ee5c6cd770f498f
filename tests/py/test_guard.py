"""`memhound guard` against real pre-fork servers: Debian's gunicorn and
uWSGI (python3 plugin) on 127.0.0.1, serving a WSGI app that keeps ~1 MB
per request, started by the guard with the agent loaded, under a bounded
urllib load that counts its failures.

What is checked (issue 5, "Acceptance"): every worker past the limit is
recycled, no request fails, never more than one recycle at a time, a
worker that crosses the limit and then goes idle is recycled too (within
two intervals plus the evidence), and every recycle leaves a log line and
a heap dump; the guard refuses to signal a process that is not a worker of
its master. Every process runs in its own process group, killed at
teardown (conftest.Procs).
"""

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import (MEMHOUND, SYSTEM_PY, assert_top_growth, clean_env,
                      describe)

GUNICORN = "/usr/bin/gunicorn"
UWSGI = "/usr/bin/uwsgi"
INTERVAL = 0.5
LIMIT_MB = 64
HEAP_MAGIC = b"\x89MHH\r\n\x1a\n"

APP = """
import os

_KEEP = []


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/grow":
        mb = int(environ.get("QUERY_STRING", "mb=1").split("=")[1])
        _KEEP.append(bytearray(mb << 20))
    else:
        _KEEP.append(bytearray(1 << 20))  # MARK:leak
    body = ("%d %d\\n" % (os.getpid(), len(_KEEP))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, path, timeout=10):
    """(status, pid of the worker that served it)."""
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=timeout) as r:
        body = r.read().decode()
        return r.status, int(body.split()[0])


def _wait_serving(port, p, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            _get(port, "/pid-probe-not-retained-much", timeout=2)
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _events(log):
    out = []
    try:
        with open(log) as f:
            for line in f:
                out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def _wall(event):
    return datetime.datetime.strptime(
        event["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


def _wait_for(log, pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = [e for e in _events(log) if pred(e)]
        if ev:
            return ev
        time.sleep(0.1)
    return []


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append((int(d), int(fields[21]) * os.sysconf("SC_PAGESIZE")))
    return kids


def _load(port, seconds, clients=4, max_requests=2000, pause=0.0):
    """Bounded load: `clients` threads until the deadline or their share of
    max_requests, `pause` seconds between one's requests. Returns (ok,
    failures, pids that served)."""
    deadline = time.monotonic() + seconds
    ok = [0] * clients
    failed = []
    pids = set()
    lock = threading.Lock()

    def client(k):
        while time.monotonic() < deadline and \
                ok[k] < max_requests // clients:
            try:
                status, pid = _get(port, "/leak?c=%d" % k)
            except Exception as e:  # any failure counts
                with lock:
                    failed.append(repr(e))
                continue
            if status != 200:
                with lock:
                    failed.append("status %d" % status)
                continue
            ok[k] += 1
            with lock:
                pids.add(pid)
            time.sleep(pause)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 60)
    return sum(ok), failed, pids


def _check_log(log, tmp_path, limit):
    ev = _events(log)
    recycles = [e for e in ev if e["event"] == "recycle"]
    # One at a time: each recycle's exit comes before the next recycle.
    open_pid = None
    for e in ev:
        if e["event"] == "recycle":
            assert open_pid is None, (
                "recycle of %d while %d was still being recycled:\n%s" % (
                    e["pid"], open_pid, "\n".join(map(json.dumps, ev))))
            open_pid = e["pid"]
        elif e["event"] in ("exit", "kill") and e.get("pid") == open_pid:
            if e["event"] == "exit":
                open_pid = None
    assert not [e for e in ev if e["event"] == "kill"], \
        "a worker needed SIGKILL:\n%s" % "\n".join(map(json.dumps, ev))
    for e in recycles:
        assert e["reason"] == "rss" and e["rss"] > limit, e
        assert e["dump"], "recycle without a heap dump: %s" % e
        with open(e["dump"], "rb") as f:
            assert f.read(8) == HEAP_MAGIC, e["dump"]
        assert os.path.dirname(e["dump"]) == str(tmp_path / "snap")
        assert e["capture"] and os.path.exists(e["capture"]), e
    return ev, recycles


def _guard_server(procs, tmp_path, server_argv, extra=(), limits=None):
    log = tmp_path / "guard.log"
    if limits is None:
        limits = ["--rss-limit", "%dm" % LIMIT_MB,
                  "--interval", "%gs" % INTERVAL]
    argv = [MEMHOUND, "guard", *limits, "--mercy", "20s",
            "--snapshot-dir", tmp_path / "snap", "--log", log, *extra,
            "--", *server_argv]
    out = open(tmp_path / "server.out", "w+")
    p = procs.popen(argv, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=clean_env(),
                    cwd=str(tmp_path))
    return p, log, out


def _stop(p, log, out):
    """SIGTERM to the guard: it passes it on, the server stops, the guard
    exits with the server's status."""
    # uWSGI's master, when a worker dies young, sleeps 2 s before the
    # respawn ("worker respawning too fast"); a SIGTERM in that sleep
    # leaves the respawned worker out of its shutdown and the master
    # waiting for it. Stop when the respawns are done.
    exits = [e for e in _events(log) if e["event"] == "exit"]
    if exits:
        time.sleep(max(0.0, _wall(exits[-1]) + 3.0 - time.time()))
    master = _events(log)[0]["master"]
    pids = [master] + [pid for pid, _ in _children(master)]
    os.kill(p.pid, signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("guard did not exit after SIGTERM")
    # Workers the server killed could not remove their control sockets.
    for pid in pids:
        sock = "/tmp/memhound-%d/%d.sock" % (os.geteuid(), pid)
        if not os.path.exists("/proc/%d" % pid) and os.path.exists(sock):
            os.unlink(sock)
    ev = _events(log)
    assert ev[-1]["event"] == "stop", ev[-1]
    out.seek(0)
    return rc, out.read()


def _acceptance(procs, tmp_path, server_argv, port, expected_server):
    (tmp_path / "app.py").write_text(APP.lstrip("\n"))
    limit = LIMIT_MB << 20
    p, log, out = _guard_server(procs, tmp_path, server_argv)
    if not _wait_serving(port, p):
        out.seek(0)
        pytest.fail("server did not come up:\n%s" % out.read()[-3000:])
    start = _events(log)[0]
    assert start["event"] == "start", start
    assert start["server"] == expected_server and \
        start["signal_from"] == "server", start
    master = start["master"]
    time.sleep(1.0)
    workers = _children(master)
    assert len(workers) == 3, workers
    assert all(rss < limit - (24 << 20) for _, rss in workers), (
        "workers start too big for the test's limit: %s" % workers)

    # A worker that crosses the limit and then goes idle.
    status, idle_pid = _get(port, "/grow?mb=%d" % (LIMIT_MB - 10))
    crossed = time.time()
    assert status == 200
    ev = _wait_for(log, lambda e: e["event"] == "recycle" and
                   e["pid"] == idle_pid, 30)
    assert ev, "idle worker %d past the limit was not recycled:\n%s" % (
        idle_pid, open(log).read())
    rec = ev[0]
    when = _wall(rec)
    assert when - crossed <= 2 * INTERVAL + rec["evidence_s"] + 0.5, (
        "signalled %.2f s after crossing (evidence %.2f s)" % (
            when - crossed, rec["evidence_s"]))
    assert _wait_for(log, lambda e: e["event"] == "exit" and
                     e["pid"] == idle_pid, 20)

    # Bounded load: every worker crosses the limit, some several times.
    load_start = time.time()
    n_ok, failed, served = _load(port, 20, max_requests=480, pause=0.04)
    load_end = time.time()
    assert not failed, "%d of %d requests failed: %s" % (
        len(failed), n_ok + len(failed), failed[:5])
    assert n_ok > 3 * (LIMIT_MB - 24), "load too small: %d requests" % n_ok

    # Afterwards no worker stays past the limit.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        big = [w for w in _children(master) if w[1] > limit]
        if not big:
            break
        time.sleep(0.2)
    assert not big, "workers past the limit were left alone: %s\n%s" % (
        big, open(log).read())
    time.sleep(2 * INTERVAL)
    ev, recycles = _check_log(log, tmp_path, limit)
    during = [e for e in recycles
              if load_start <= _wall(e) <= load_end]
    assert len(during) >= 3, "recycles under load: %d (load %.1f s)\n%s" % (
        len(during), load_end - load_start, "\n".join(map(json.dumps, ev)))
    assert set(e["pid"] for e in recycles) >= served - \
        set(w[0] for w in _children(master)), "a worker that served " \
        "requests and is gone was not recycled by the guard"
    return p, log, out, recycles


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_guard_gunicorn(procs, tmp_path):
    port = _free_port()
    argv = [GUNICORN, "--workers", "3", "--bind", "127.0.0.1:%d" % port,
            "--chdir", str(tmp_path), "--graceful-timeout", "20",
            "--log-level", "warning", "app:app"]
    p, log, out, recycles = _acceptance(procs, tmp_path, argv, port,
                                        "gunicorn")
    rc, server_out = _stop(p, log, out)
    assert rc == 0, server_out[-3000:]

    # The capture of a recycled worker says what it had accumulated.
    cap = recycles[-1]["capture"]
    r = procs.run([MEMHOUND, "report", "--format", "json", "--top", "0",
                   cap], env=clean_env())
    assert r.returncode == 0, describe(r)
    app_line = [i for i, line in enumerate(APP.lstrip("\n").splitlines(), 1)
                if "MARK:leak" in line][0]
    assert_top_growth(json.loads(r.stdout),
                      (str(tmp_path / "app.py"), app_line),
                      " of recycled worker %d" % recycles[-1]["pid"])


def _uwsgi_has_python():
    return os.path.exists(UWSGI) and (
        os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"))


@pytest.mark.skipif(not _uwsgi_has_python(),
                    reason="Debian's uwsgi + uwsgi-plugin-python3 are not "
                           "installed")
def test_guard_uwsgi(procs, tmp_path):
    port = _free_port()
    # --py-call-osafterfork lets Python (and so the agent) know about
    # uWSGI's forks: without it the workers do not record and recycles
    # carry no dump (the guard says why in the log).
    argv = [UWSGI, "--master", "--processes", "3", "--http-socket",
            "127.0.0.1:%d" % port, "--plugin", "python3", "--chdir",
            str(tmp_path), "--wsgi-file", "app.py", "--callable", "app",
            "--py-call-osafterfork", "--enable-threads", "--die-on-term",
            "--worker-reload-mercy", "20", "--disable-logging"]
    p, log, out, recycles = _acceptance(procs, tmp_path, argv, port,
                                        "uwsgi")
    assert all(e["signal"] == "SIGHUP" for e in recycles)
    rc, server_out = _stop(p, log, out)
    assert rc == 0, server_out[-3000:]
    assert "Gracefully killing worker" in server_out


FAKE_MASTER = """
import os, signal, sys, time

kids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    kids.append(pid)
print(" ".join(map(str, kids)), flush=True)
time.sleep(120)
"""


def _stat_start(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return int(s[s.rindex(")") + 2:].split()[19])


def test_guard_refuses_non_workers(procs, tmp_path):
    """A master whose children we control, a stranger (a child of the
    test), and a worker named with a wrong start time (as after pid reuse):
    the guard must refuse both and signal neither."""
    (tmp_path / "master.py").write_text(FAKE_MASTER)
    master = procs.popen([sys.executable, tmp_path / "master.py"],
                         stdout=subprocess.PIPE, text=True)
    kids = [int(x) for x in master.stdout.readline().split()]
    stranger = procs.popen(["sleep", "60"])
    victims = "%d,%d:%d" % (stranger.pid, kids[0], _stat_start(kids[0]) + 7)
    log = tmp_path / "guard.log"
    g = procs.popen([MEMHOUND, "guard", "--rss-limit", "1g", "--interval",
                     "0.2s", "--log", log, "--worker-match", r"master\.py",
                     "--pid", master.pid],
                    env=clean_env(MEMHOUND_GUARD_TEST_VICTIM=victims),
                    stderr=subprocess.PIPE, text=True)
    refusals = _wait_for(log, lambda e: e["event"] == "refuse", 10)
    time.sleep(0.5)
    refusals = [e for e in _events(log) if e["event"] == "refuse"]
    assert {e["pid"] for e in refusals} == {stranger.pid, kids[0]}, \
        open(log).read()
    why = {e["pid"]: e["reason"] for e in refusals}
    assert "not a worker of master %d" % master.pid in why[stranger.pid]
    assert "pid was reused" in why[kids[0]]
    assert stranger.poll() is None and os.path.exists("/proc/%d" % kids[0])
    with open("/proc/%d/stat" % kids[0]) as f:
        assert ") Z" not in f.read()

    # --pid: SIGTERM stops the guard, not the server.
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait(timeout=10) == 0, g.stderr.read()
    assert _events(log)[-1]["event"] == "stop"
    assert master.poll() is None


def test_guard_recycles_children_of_a_pid_master(procs, tmp_path):
    """--pid with a master that is not our child: a child past the limit
    gets the signal given with --signal, within two intervals."""
    src = """
import os, signal, sys, time
kids = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        if n == 0:
            ballast = bytearray(40 << 20)  # past the limit
        signal.signal(signal.SIGUSR1, lambda *a: os._exit(7))
        while True:
            signal.pause()
    kids.append(pid)
print(" ".join(map(str, kids)), flush=True)
time.sleep(120)
"""
    (tmp_path / "master.py").write_text(src)
    master = procs.popen([sys.executable, tmp_path / "master.py"],
                         stdout=subprocess.PIPE, text=True)
    kids = [int(x) for x in master.stdout.readline().split()]
    log = tmp_path / "guard.log"
    procs.popen([MEMHOUND, "guard", "--rss-limit", "32m", "--interval",
                 "0.2s", "--signal", "USR1", "--log", log, "--worker-match",
                 r"master\.py", "--pid", master.pid], env=clean_env(),
                stderr=subprocess.DEVNULL)
    ev = _wait_for(log, lambda e: e["event"] == "exit", 10)
    assert ev, open(log).read()
    events = _events(log)
    start = events[0]
    assert start["signal"] == "SIGUSR1" and start["signal_from"] == "option"
    rec = [e for e in events if e["event"] == "recycle"]
    assert [e["pid"] for e in rec] == [kids[0]], open(log).read()
    assert rec[0]["dump"] is None and "no control socket" in \
        rec[0]["evidence"]
    assert rec[0]["over_s"] <= 2 * 0.2 + rec[0]["evidence_s"] + 0.2
    assert os.path.exists("/proc/%d" % kids[1])


@pytest.mark.parametrize("args,msg", [
    (["--", "true"], "needs a limit"),
    (["--rss-limit", "1g"], "needs either --pid"),
    (["--rss-limit", "1g", "--pid", "12345", "--", "true"], "needs either"),
    (["--rss-limit", "12q", "--pid", "12345"], "invalid --rss-limit"),
    (["--max-lifetime", "1h", "--signal", "KILL", "--pid", "12345"],
     "invalid --signal"),
])
def test_guard_usage_errors(procs, args, msg):
    r = procs.run([MEMHOUND, "guard", *args], env=clean_env(), timeout=10)
    assert r.returncode == 2 and msg in r.stderr, describe(r)


def test_guard_no_such_master(procs, tmp_path):
    r = procs.run([MEMHOUND, "guard", "--rss-limit", "1g", "--log",
                   tmp_path / "g.log", "--pid", "999999999"],
                  env=clean_env(), timeout=10)
    assert r.returncode == 1 and "no process 999999999" in r.stderr, \
        describe(r)


COUNTING_MASTER = """
import contextlib, os, signal, sys, time
try:
    from memhound import request
except ImportError:  # not run by memhound
    def request(name):
        return contextlib.nullcontext()
kids = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        # Requests as a web worker ends them: the first child fast,
        # after a start-up of LATE seconds (the web layer comes with the
        # first request).
        time.sleep(float(os.environ.get("LATE", "0")))
        while True:
            with request("job"):
                pass
            time.sleep(0.02 if n == 0 else 1.0)
    kids.append(pid)
print(" ".join(map(str, kids)), flush=True)
time.sleep(120)
"""


def _counting_master(procs, tmp_path, record, late=0.0):
    """A master forking two workers that count requests, from `late`
    seconds after the fork; with `record`, all of it runs under
    `memhound run` (the real agent)."""
    (tmp_path / "master.py").write_text(COUNTING_MASTER)
    argv = [SYSTEM_PY, tmp_path / "master.py"]
    if record:
        argv = [MEMHOUND, "run", "-q", "-o", tmp_path / "cap.%p.mhc", "--",
                *argv]
    master = procs.popen(argv, stdout=subprocess.PIPE, text=True,
                         env=clean_env(LATE=str(late)),
                         cwd=str(tmp_path))
    kids = [int(x) for x in master.stdout.readline().split()]
    pid = master.pid
    if record:  # `run` waits for the python it started
        pid = [p for p in _children(master.pid)][0][0]
    return pid, kids


@pytest.mark.parametrize("late", [0.0, 2.0])
def test_guard_max_requests_from_the_agent(procs, tmp_path, late):
    """Workers recording with the agent, which counts their requests: the
    one past --max-requests is recycled with reason "requests", after a
    heap dump and with its capture named. With `late`, the workers'
    web layer (memhound.request) comes seconds after the guard's first
    stats answers: those say web=0, which is no reason to refuse."""
    master, kids = _counting_master(procs, tmp_path, True, late)
    log = tmp_path / "guard.log"
    procs.popen([MEMHOUND, "guard", "--max-requests", "20",
                 "--interval", "0.2s", "--signal", "TERM", "--log", log,
                 "--snapshot-dir", tmp_path, "--worker-match",
                 r"master\.py", "--pid", master], env=clean_env(),
                stderr=subprocess.DEVNULL)
    ev = _wait_for(log, lambda e: e["event"] == "exit", 15)
    assert ev, open(log).read()
    rec = [e for e in _events(log) if e["event"] == "recycle"]
    # The first child counts 50 a second, the other 1: only the first
    # passes 20 within the test.
    assert len(rec) == 1 and rec[0]["reason"] == "requests", \
        open(log).read()
    assert rec[0]["pid"] == kids[0]
    assert rec[0]["requests"] >= 20 and rec[0]["limit"] == 20
    with open(rec[0]["dump"], "rb") as f:
        assert f.read(8) == HEAP_MAGIC
    assert rec[0]["capture"] == str(tmp_path / ("cap.%d.mhc" % kids[0]))
    assert not [e for e in _events(log) if e["event"] == "warning"]


def test_guard_max_requests_without_agent_warns_once(procs, tmp_path):
    master, kids = _counting_master(procs, tmp_path, False)
    log = tmp_path / "guard.log"
    g = procs.popen([MEMHOUND, "guard", "--max-requests", "20",
                     "--interval", "0.2s", "--signal", "TERM", "--log",
                     log, "--worker-match", r"master\.py", "--pid", master],
                    env=clean_env(), stderr=subprocess.DEVNULL)
    assert _wait_for(log, lambda e: e["event"] == "warning", 10)
    time.sleep(1.0)
    warnings = [e for e in _events(log) if e["event"] == "warning"]
    assert len(warnings) == 1 and "does not record with memhound" in \
        warnings[0]["message"], warnings
    assert not [e for e in _events(log) if e["event"] == "recycle"]
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait(timeout=10) == 0


SMALL_APP = """
import os


def app(environ, start_response):
    body = ("%d 0\\n" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def _gunicorn_argv(tmp_path, port, workers=2):
    (tmp_path / "app.py").write_text(SMALL_APP.lstrip("\n"))
    return [GUNICORN, "--workers", str(workers), "--bind",
            "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
            "--graceful-timeout", "20", "--log-level", "warning", "app:app"]


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_guard_max_requests_counts_in_the_server_it_starts(procs, tmp_path):
    """`guard --max-requests N -- gunicorn ...` turns request counting on
    (the web layer, as `run --web` does) without being asked: a worker
    past N requests is recycled with reason "requests", after a heap dump
    and with its capture named, as every recycle keeps its evidence."""
    port = _free_port()
    p, log, out = _guard_server(
        procs, tmp_path, _gunicorn_argv(tmp_path, port),
        limits=["--max-requests", "20", "--interval", "0.2s"])
    if not _wait_serving(port, p):
        out.seek(0)
        pytest.fail("server did not come up:\n%s" % out.read()[-3000:])
    # Bounded: 2 workers share 80 requests, so at least one passes 20.
    n_ok, failed, _ = _load(port, 30, clients=2, max_requests=80,
                            pause=0.01)
    assert not failed and n_ok == 80, (n_ok, failed[:5])
    ev = _wait_for(log, lambda e: e["event"] == "exit", 15)
    assert ev, "no recycle after %d requests:\n%s" % (n_ok,
                                                        open(log).read())
    rec = [e for e in _events(log) if e["event"] == "recycle"]
    assert rec and all(e["reason"] == "requests" and
                       20 <= e["requests"] <= n_ok + 1 and e["limit"] == 20
                       for e in rec), open(log).read()
    for e in rec:
        with open(e["dump"], "rb") as f:
            assert f.read(8) == HEAP_MAGIC
        assert os.path.exists(e["capture"]), e
    assert not [e for e in _events(log) if e["event"] == "warning"], \
        open(log).read()
    rc, server_out = _stop(p, log, out)
    assert rc == 0, server_out[-3000:]


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_guard_max_requests_refuses_a_server_without_the_web_layer(
        procs, tmp_path):
    """`--pid` of a gunicorn recording under `memhound run` without --web:
    its workers count no requests, so --max-requests could never fire;
    once a worker has run past the settling time without the web layer,
    the guard says so, naming the pid and the way out, and exits 2."""
    port = _free_port()
    run = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "cap.%p.mhc",
                       "--", *_gunicorn_argv(tmp_path, port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      env=clean_env(), cwd=str(tmp_path))
    assert _wait_serving(port, run), "gunicorn did not come up"
    for _ in range(10):
        _get(port, "/")
    master = _children(run.pid)[0][0]
    log = tmp_path / "guard.log"
    t0 = time.monotonic()
    r = procs.run([MEMHOUND, "guard", "--max-requests", "20", "--interval",
                   "0.2s", "--log", log, "--pid", master],
                  env=clean_env(), timeout=40)
    assert r.returncode == 2, describe(r)
    assert "--max-requests cannot apply to process %d" % master in \
        r.stderr and "do not count requests" in r.stderr and \
        "memhound run --web" in r.stderr, describe(r)
    assert r.stderr.count("memhound:") == 1, describe(r)
    assert time.monotonic() - t0 < 20, describe(r)
    assert _events(log)[-1]["event"] == "stop", open(log).read()
    assert not [e for e in _events(log) if e["event"] == "recycle"]
    # The server was left alone: it serves on.
    assert _get(port, "/")[0] == 200


def test_guard_limit_fraction_recycles_the_largest(procs, tmp_path):
    """--limit-fraction: when the cgroup's working set passes the fraction
    of its limit, the worker with the most private memory goes. The cgroup
    is a directory of v2 files the test writes (a real limit would need a
    cgroup of our own)."""
    src = """
import os, signal, time
kids = []
for mb in (8, 48, 16):
    pid = os.fork()
    if pid == 0:
        ballast = bytearray(mb << 20)  # private to this child
        signal.pause()
        os._exit(0)
    kids.append(pid)
print(" ".join(map(str, kids)), flush=True)
time.sleep(120)
"""
    (tmp_path / "master.py").write_text(src)
    master = procs.popen([sys.executable, tmp_path / "master.py"],
                         stdout=subprocess.PIPE, text=True)
    kids = [int(x) for x in master.stdout.readline().split()]
    time.sleep(0.3)  # the ballasts are touched
    cg = tmp_path / "cgroup"
    cg.mkdir()
    (cg / "memory.max").write_text("1000000000\n")
    (cg / "memory.current").write_text("950000000\n")
    (cg / "memory.stat").write_text("anon 1\ninactive_file 100000000\n")
    log = tmp_path / "guard.log"
    procs.popen([MEMHOUND, "guard", "--limit-fraction", "0.8", "--interval",
                 "0.5s", "--signal", "TERM", "--log", log, "--worker-match",
                 r"master\.py", "--pid", master.pid],
                env=clean_env(MEMHOUND_GUARD_TEST_CGROUP=str(cg)),
                stderr=subprocess.DEVNULL)
    # The recycle is decided and signalled at one check (no agent, no
    # dump); the next check is an interval later: the pressure is gone by
    # then, as the worker's exit would have made it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [
            e for e in _events(log) if e["event"] == "recycle"]:
        time.sleep(0.01)
    (cg / "memory.current").write_text("100000000\n")
    assert _wait_for(log, lambda e: e["event"] == "exit", 10), \
        open(log).read()
    time.sleep(1.2)
    events = _events(log)
    start = events[0]
    assert start["limits"]["cgroup_limit"] == 1000000000, start
    rec = [e for e in events if e["event"] == "recycle"]
    assert [e["pid"] for e in rec] == [kids[1]], open(log).read()
    assert rec[0]["reason"] == "cgroup" and rec[0]["limit"] == 800000000
    assert all(os.path.exists("/proc/%d" % k) for k in (kids[0], kids[2]))


# ---- which processes are signalled (issue 10) ----

GUNICORN_CONF = """
import subprocess, sys


def when_ready(server):
    # Helpers a deployment starts next to its workers: children of the
    # master too, but not workers.
    helpers = [subprocess.Popen(["sleep", "300"]),
               subprocess.Popen([sys.executable, "-c",
                                 "import time; time.sleep(300)"])]
    with open(%r, "w") as f:
        f.write(" ".join(str(p.pid) for p in helpers))
"""


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return ") Z" not in f.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_guard_never_signals_a_helper_of_the_master(procs, tmp_path):
    """gunicorn's when_ready hook starts two helpers (`sleep`, and a
    python running another command line): they are reported, never
    signalled, while the real workers past --max-lifetime are recycled
    with a heap dump each."""
    (tmp_path / "app.py").write_text(APP.lstrip("\n"))
    helpers_file = tmp_path / "helpers"
    (tmp_path / "gconf.py").write_text(GUNICORN_CONF % str(helpers_file))
    port = _free_port()
    p, log, out = _guard_server(
        procs, tmp_path,
        [GUNICORN, "-c", tmp_path / "gconf.py", "--workers", "2", "--bind",
         "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
         "--log-level", "warning", "app:app"],
        limits=["--max-lifetime", "2s", "--interval", "0.3s"])
    if not _wait_serving(port, p):
        out.seek(0)
        pytest.fail("server did not come up:\n%s" % out.read()[-3000:])
    deadline = time.monotonic() + 10
    while not helpers_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    helpers = [int(x) for x in helpers_file.read_text().split()]
    assert len(helpers) == 2

    recycles = _wait_for(log, lambda e: e["event"] == "recycle", 30)
    deadline = time.monotonic() + 30
    while len(recycles) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        recycles = [e for e in _events(log) if e["event"] == "recycle"]
    ev = _events(log)
    text = "\n".join(map(json.dumps, ev))
    assert len(recycles) >= 3, text
    assert all(e["reason"] == "lifetime" and e["dump"] for e in recycles), \
        text
    assert all(_alive(h) for h in helpers), text
    touched = {e.get("pid") for e in ev
               if e["event"] in ("recycle", "refuse", "kill", "exit")}
    assert not touched & set(helpers), text
    reported = {e["pid"]: e["reason"] for e in ev
                if e["event"] == "not_worker"}
    assert set(helpers) <= set(reported), text
    assert "runs '/usr/bin/sleep'" in reported[helpers[0]], reported
    assert "is neither the master's nor a gunicorn worker's" in \
        reported[helpers[1]], reported
    rc, server_out = _stop(p, log, out)
    assert rc == 0, server_out[-3000:]
    assert all(_alive(h) for h in helpers)


def _shell_with_sleeps(procs):
    sh = procs.popen(["sh", "-c", "sleep 60 & sleep 61 & wait"])
    deadline = time.monotonic() + 10
    while len(_children(sh.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    kids = [pid for pid, _ in _children(sh.pid)]
    assert len(kids) == 2
    return sh, kids


def test_guard_pid_must_be_a_server_master(procs, tmp_path):
    """--pid of a shell or of pid 1 is refused (exit 2) before anything is
    signalled; with --worker-match the user names the workers, and only
    the children that match are recycled."""
    sh, kids = _shell_with_sleeps(procs)
    log = tmp_path / "guard.log"
    for pid in (sh.pid, 1):
        # A limit nothing passes: were the refusal missing, the guard
        # would run (and the test time out) rather than signal anything.
        r = procs.run([MEMHOUND, "guard", "--rss-limit", "1t", "--force",
                       "--log", log, "--pid", pid], env=clean_env(),
                      timeout=10)
        assert r.returncode == 2, describe(r)
        assert "process %d (" % pid in r.stderr and \
            "is not a gunicorn or uWSGI master" in r.stderr and \
            "--worker-match REGEX" in r.stderr, r.stderr
    assert all(_alive(k) for k in kids) and sh.poll() is None
    assert not [e for e in _events(log) if e["event"] != "warning"]

    # Named explicitly: "sleep 60" is a worker, "sleep 61" is not.
    cmd = {k: open("/proc/%d/cmdline" % k).read() for k in kids}
    worker = [k for k in kids if cmd[k] == "sleep\0" "60\0"]
    other = [k for k in kids if k not in worker]
    g = procs.popen([MEMHOUND, "guard", "--max-lifetime", "1s",
                     "--interval", "0.2s", "--no-dump", "--force",
                     "--log", log, "--worker-match", "^sleep 60$",
                     "--pid", sh.pid],
                    env=clean_env(), stderr=subprocess.PIPE, text=True)
    assert _wait_for(log, lambda e: e["event"] == "exit", 10), \
        open(log).read()
    ev = _events(log)
    by = {}
    for e in ev:
        by.setdefault(e["event"], []).append(e.get("pid"))
    assert by.get("recycle") == worker and not _alive(worker[0]), ev
    assert by.get("not_worker") == other and _alive(other[0]), ev
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait(timeout=10) == 0, g.stderr.read()


def test_guard_bad_worker_match(procs, tmp_path):
    r = procs.run([MEMHOUND, "guard", "--rss-limit", "1g", "--worker-match",
                   "(", "--pid", os.getpid()], env=clean_env(), timeout=10)
    assert r.returncode == 2 and "invalid --worker-match '('" in r.stderr, \
        describe(r)
    r = procs.run([MEMHOUND, "guard", "--rss-limit", "1g", "--", "sh", "-c",
                   "sleep 1"], env=clean_env(), timeout=10)
    assert r.returncode == 2 and "'sh' is neither gunicorn nor uWSGI" in \
        r.stderr, describe(r)


# ---- workers that drop root (issue 10) ----

@pytest.fixture
def app_user():
    """A system user and group made for the test, removed after it."""
    if os.geteuid() != 0:
        print("skipping: creating a user needs root")
        pytest.skip("creating a user needs root")
    import pwd
    import shutil
    name = "mhguard%d" % os.getpid()
    r = subprocess.run(["useradd", "--system", "--no-create-home",
                        "--user-group", "--shell", "/usr/sbin/nologin",
                        name], capture_output=True, text=True)
    if r.returncode != 0:
        print("skipping: useradd failed: %s" % r.stderr.strip())
        pytest.skip("useradd failed: %s" % r.stderr.strip())
    pw = pwd.getpwnam(name)
    try:
        yield pw
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree("/tmp/memhound-%d" % pw.pw_uid, ignore_errors=True)


def _euid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[2])
    return -1


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_workers_that_drop_root_stay_reachable(procs, tmp_path, app_user):
    """gunicorn --user/--group under `memhound run` as root, with root's
    XDG_RUNTIME_DIR inherited: each worker's socket follows it to its new
    user's directory; snapshot and inspect reach a worker, guard dumps it
    before the recycle and names the right reason, and after the stop no
    socket is left anywhere."""
    (tmp_path / "app.py").write_text(APP.lstrip("\n"))
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    uid, name = app_user.pw_uid, app_user.pw_name
    dirs = [xdg / "memhound", "/tmp/memhound-0", "/tmp/memhound-%d" % uid]
    port = _free_port()
    out = open(tmp_path / "server.out", "w+")
    # --preload: the app is imported as root; the workers, as the user,
    # could not read it under pytest's private tmp_path.
    run = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "cap.%p.mhc",
                       "--", GUNICORN, "--workers", "2", "--user", name,
                       "--group", name, "--preload", "--bind",
                       "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
                       "--graceful-timeout", "10", "--log-level", "warning",
                       "app:app"],
                      env=clean_env(XDG_RUNTIME_DIR=str(xdg)),
                      cwd=str(tmp_path), stdout=out,
                      stderr=subprocess.STDOUT)
    if not _wait_serving(port, run):
        out.seek(0)
        pytest.fail("server did not come up:\n%s" % out.read()[-3000:])
    master = _children(run.pid)[0][0]
    seen = {master}

    def user_sockets():
        workers = [pid for pid, _ in _children(master)]
        seen.update(workers)
        return [pid for pid in workers if _euid(pid) == uid and
                os.path.exists("/tmp/memhound-%d/%d.sock" % (uid, pid))]

    deadline = time.monotonic() + 10
    while len(user_sockets()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = user_sockets()
    assert len(workers) == 2, (workers, _children(master))
    st = os.stat("/tmp/memhound-%d" % uid)
    assert st.st_uid == uid and st.st_mode & 0o777 == 0o700
    st = os.stat("/tmp/memhound-%d/%d.sock" % (uid, workers[0]))
    assert st.st_uid == uid and st.st_mode & 0o777 == 0o600

    r = procs.run([MEMHOUND, "snapshot", workers[0], "-o",
                   tmp_path / "w.mhh"], env=clean_env(), timeout=60)
    assert r.returncode == 0, describe(r)
    with open(tmp_path / "w.mhh", "rb") as f:
        assert f.read(8) == HEAP_MAGIC
    r = procs.run([MEMHOUND, "inspect", workers[0]], env=clean_env(),
                  timeout=60)
    assert r.returncode == 0 and "not recording" not in r.stderr, \
        describe(r)

    log = tmp_path / "guard.log"
    g = procs.popen([MEMHOUND, "guard", "--max-lifetime", "1s",
                     "--interval", "0.3s", "--mercy", "10s",
                     "--snapshot-dir", tmp_path / "snap", "--log", log,
                     "--pid", master], env=clean_env(),
                    stderr=subprocess.PIPE, text=True)
    ev = _wait_for(log, lambda e: e["event"] == "exit", 30)
    assert ev, open(log).read()
    rec = [e for e in _events(log) if e["event"] == "recycle"][0]
    assert rec["reason"] == "lifetime" and rec["dump"], rec
    assert "heap dump written" in rec["evidence"], rec
    with open(rec["dump"], "rb") as f:
        assert f.read(8) == HEAP_MAGIC
    assert rec["capture"] == str(tmp_path / ("cap.%d.mhc" % rec["pid"]))
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait(timeout=10) == 0, g.stderr.read()

    user_sockets()
    os.kill(run.pid, signal.SIGTERM)
    run.wait(timeout=30)
    left = [os.path.join(d, "%d.sock" % pid) for d in dirs for pid in seen
            if os.path.exists(os.path.join(d, "%d.sock" % pid))]
    assert not left, left


@pytest.mark.skipif(not _uwsgi_has_python(),
                    reason="Debian's uwsgi + uwsgi-plugin-python3 are not "
                           "installed")
@pytest.mark.parametrize("procname", [True, False])
def test_guard_uwsgi_workers_by_their_own_names(procs, tmp_path, procname):
    """A uWSGI that does not record (default fork, no agent in the
    workers): with --auto-procname its workers are recognised by uWSGI's
    own names ("uWSGI worker N") and recycled; without, they cannot be
    told from other forks of the master and are reported, never
    signalled."""
    (tmp_path / "app.py").write_text(APP.lstrip("\n"))
    port = _free_port()
    argv = [UWSGI, "--master", "--processes", "2", "--http-socket",
            "127.0.0.1:%d" % port, "--plugin", "python3", "--chdir",
            str(tmp_path), "--wsgi-file", "app.py", "--callable", "app",
            "--die-on-term", "--disable-logging"]
    if procname:
        argv.append("--auto-procname")
    out = open(tmp_path / "server.out", "w+")
    server = procs.popen(argv, stdout=out, stderr=subprocess.STDOUT,
                         env=clean_env(), cwd=str(tmp_path))
    if not _wait_serving(port, server):
        out.seek(0)
        pytest.fail("server did not come up:\n%s" % out.read()[-3000:])
    workers = [pid for pid, _ in _children(server.pid)]
    assert len(workers) == 2
    log = tmp_path / "guard.log"
    g = procs.popen([MEMHOUND, "guard", "--max-lifetime", "1s",
                     "--interval", "0.2s", "--mercy", "10s", "--log", log,
                     "--pid", server.pid], env=clean_env(),
                    stderr=subprocess.PIPE, text=True)
    if procname:
        ev = _wait_for(log, lambda e: e["event"] == "exit", 15)
        assert ev, open(log).read()
        rec = [e for e in _events(log) if e["event"] == "recycle"]
        assert rec and rec[0]["pid"] in workers and \
            rec[0]["signal"] == "SIGHUP", open(log).read()
        assert not [e for e in _events(log) if e["event"] == "not_worker"]
    else:
        ev = _wait_for(log, lambda e: e["event"] == "not_worker", 10)
        time.sleep(1.0)
        ev = _events(log)
        assert {e["pid"] for e in ev if e["event"] == "not_worker"} == \
            set(workers), ev
        assert "neither registered with memhound" in [
            e for e in ev if e["event"] == "not_worker"][0]["reason"]
        assert not [e for e in ev if e["event"] in ("recycle", "refuse")]
        assert all(_alive(w) for w in workers)
        warn = [e for e in ev if e["event"] == "warning"]
        assert len(warn) == 1 and "none of the 2 children" in \
            warn[0]["message"] and "--auto-procname" in \
            warn[0]["message"], warn
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait(timeout=10) == 0, g.stderr.read()
