"""A pre-fork server: Debian's gunicorn (/usr/bin/gunicorn, a shebang
script for /usr/bin/python3) under `memhound run`, serving a tiny WSGI app
that leaks, driven by a bounded real load over loopback, then stopped with
SIGTERM as a service manager would. The master and each worker write their
own capture; the merged report puts the app's leaking line on top.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import (MEMHOUND, assert_top_growth, clean_env, describe,
                      find_site, fmt_sites)
from conftest import free_port as _free_port
from conftest import wait_listening as _wait_listening

GUNICORN = "/usr/bin/gunicorn"
WORKERS = 2

APP = """
import time

_SEEN = {}  # module-level, str-keyed: every request adds an entry


def _fingerprint(environ):
    return "%s?%s@%.9f" % (environ.get("PATH_INFO"),
                           environ.get("QUERY_STRING"), time.time())


def _remember(environ):
    key = _fingerprint(environ)
    _SEEN[key] = key.ljust(4096, ".")  # MARK:leak


def _page(environ):
    words = [w.upper() for w in environ.get("QUERY_STRING", "").split("&")]
    return ("<p>%s</p>" % " ".join(words * 20)).encode()


def app(environ, start_response):
    _remember(environ)
    body = _page(environ)
    start_response("200 OK", [("Content-Type", "text/html"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def _urllib_load(port, seconds, max_requests, clients=4):
    """Bounded load without wrk: `clients` threads, each stops at the
    deadline or at its share of max_requests."""
    deadline = time.monotonic() + seconds
    done = [0] * clients

    def client(k):
        n = 0
        while time.monotonic() < deadline and n < max_requests // clients:
            url = "http://127.0.0.1:%d/item?user=%d&n=%d" % (port, k, n)
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
            except OSError:
                time.sleep(0.05)
                continue
            n += 1
        done[k] = n

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 30)
    return sum(done)


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_gunicorn_workers_merge_in_one_report(mh, program, procs, tmp_path):
    prog = program(APP, name="leakyapp.py")
    port = _free_port()
    out = tmp_path / "gunicorn.mhc"
    argv = [MEMHOUND, "run", "-o", out, "--", GUNICORN,
            "--workers", str(WORKERS), "--bind", "127.0.0.1:%d" % port,
            "--chdir", str(tmp_path), "--graceful-timeout", "10",
            "--log-level", "warning", "leakyapp:app"]
    log = open(tmp_path / "server.log", "w+")
    p = procs.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=clean_env(),
                    cwd=str(tmp_path))
    try:
        assert _wait_listening(port, p, 30), "gunicorn did not come up"
        time.sleep(1.0)  # let both workers boot
        if shutil.which("wrk"):
            load = procs.run(["wrk", "-t2", "-c8", "-d3s", "--timeout", "2s",
                              "http://127.0.0.1:%d/item?user=1&n=2" % port],
                             timeout=60)
            assert load.returncode == 0, describe(load)
            assert " requests in " in load.stdout, load.stdout
        else:
            assert _urllib_load(port, 3, 4000) > 100
        time.sleep(1.5)  # a flush in every worker
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)  # to `memhound run`: passed on
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("gunicorn did not stop within 60 s of SIGTERM")
    log.seek(0)
    server_log = log.read()
    log.close()
    assert p.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
        p.returncode, server_log[-3000:])

    caps = mh.captures()
    assert len(caps) >= 1 + WORKERS, (
        "expected the master's and each worker's capture: %s\n%s" % (
            caps, server_log[-3000:]))
    rep = mh.report_json(caps)
    assert rep["summary"]["captures"] == len(caps), rep["summary"]
    procs_ = rep["processes"]
    master = [x for x in procs_ if not x.get("fork_parent")]
    workers = [x for x in procs_ if x.get("fork_parent")]
    assert len(master) == 1 and len(workers) >= WORKERS, procs_
    assert all(w["fork_parent"] == master[0]["pid"] for w in workers), procs_
    top = assert_top_growth(rep, prog.site("leak"))
    assert top["growth_bytes"] > 4 * 1 << 20, fmt_sites(rep["growth"])
    # The leak was found in more than one worker, and merged.
    per_worker = []
    for w in workers:
        one = mh.report_json([w["file"]])
        e = find_site(one["growth"], prog.site("leak"))
        per_worker.append(e["growth_bytes"] if e else 0)
    assert sum(1 for g in per_worker if g > 0) >= 2, per_worker
