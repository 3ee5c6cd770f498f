"""Which endpoint leaks, on real servers (issue 4, "Acceptance"): the test
apps of tests/apps/ served on 127.0.0.1 by Debian's gunicorn (gthread, 4
threads), uWSGI (python3 plugin, 4 threads), aiohttp's own runner and
uvicorn, each under `memhound run --web` with no change to the app, driven
by wrk with a bounded load (requests and time), stopped with SIGTERM as a
service manager would, and judged from `memhound report --by endpoint
--format json`:

- the Django site (113 route patterns): the view that keeps ~65 KB per
  request ranks first by retained bytes per request; the report view that
  tests a 20,000-row QuerySet's truthiness ranks first by peak (p50 and
  p95), and a `django-queryset-truthiness` finding names its `if` line;
  under gunicorn and under uWSGI;
- the aiohttp app under 100 concurrent connections and the Starlette app
  under uvicorn: the leaky route ranks first, with about its own bytes and
  well ahead of the rest (the 100 requests in flight in the one thread do
  not blur it);
- no request fails; endpoints are route patterns, never raw URLs.

One process serves the Django site (4 threads). A process's first request
to a route fills caches that stay (templates, model and field caches,
linecache, imports): up to ~0.5 MB, measured. The warm-up (every route
once, left out with --warmup) takes them out of the figures, but only in
the process that served it, and with several workers the kernel, not the
test, picks which one; with a few dozen requests, one such fill in
another worker would rank the truthiness view above the leak.

Statistics. Runs use --sample-interval 8k (R = 8 KiB; the default is
256 KiB). The leaky views keep 60 blocks of ~1 KB per request: 7.2
samples per request expected, >= 2,700 over the >= 380 leaky requests of
a Django run (>= 5,800 over >= 800 in the async ones), so the estimate is
within +-20% of the truth (10 standard deviations) but for a negligible
probability. What competes with it: CPython keeps up to 2,000 freed
tuples of each size below 20 on a free list without handing them back to
the allocator, so 2,000 of the 17-column row tuples the truthiness view's
last request freed never reach the free hook (tracemalloc sees the same),
and that request shows ~470 KB retained (410-570 KB in four trial runs):
Poisson with a mean of ~57 samples of ~8.3 KB. With >= 19 requests of
that view after the warm-up, it reaches 0.8 x 65 KB per request only with
>= 120 samples: P < 1e-12 (< 1e-7 were the true mean 600 KB). With a
handful of requests, as in the incident, it would outrank a leak of this
size: the test sends it ~24. Ordinary routes left <= 15 KB per request in
trial runs (with persistent database connections; see the site's
settings). Peaks: the truthiness view builds ~27 MB per request (~3,000
samples) against < 0.5 MB for any other request.

Every process runs in its own process group, killed at teardown
(conftest.Procs); the servers are stopped with SIGTERM in `finally`.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import MEMHOUND, ROOT, clean_env, describe, same_file

APPS = ROOT / "tests" / "apps"
SITE = APPS / "django_site"
sys.path.insert(0, str(APPS))
sys.path.insert(0, str(SITE))
import asyncplan  # noqa: E402
import loadplan  # noqa: E402
import wrkload  # noqa: E402

GUNICORN = "/usr/bin/gunicorn"
UWSGI = "/usr/bin/uwsgi"
UWSGI_PY3 = "/usr/lib/uwsgi/plugins/python3_plugin.so"
UVICORN = "/usr/bin/uvicorn"
PY = "/usr/bin/python3"

SAMPLE_INTERVAL = "8k"
# What the leaky views keep per request (tests/apps: 60 strings of 1,000
# characters and their containers).
LEAK_BYTES = asyncplan.LEAK_BYTES

# Django: 111 ordinary routes at weight 1, the leaky view at 40, the
# truthiness view at 2.4: of 1,600 requests, ~420 leaky, ~24 truthiness
# (whole requests per URL and wrk thread: 4 for each of its 3 URLs).
DJANGO_WEIGHTS = {"ordinary": 1, "leak": 40, "truthiness": 2.4}
DJANGO_REQUESTS = 1600
DJANGO_CONNECTIONS = 8
# uWSGI keeps a thread on a keep-alive connection until it closes: no more
# connections than threads, or the extra ones wait (and time out).
UWSGI_CONNECTIONS = 4
# Async: 10 ordinary routes at weight 1, the leaky one at 2: of 6,000
# requests, 1,000 leaky.
ASYNC_WEIGHTS = {"ordinary": 1, "leak": 2}
ASYNC_REQUESTS = 6000
ASYNC_CONNECTIONS = 100
LOAD_SECONDS = 60  # wrk's own bound; the request bound ends runs first


# --- what must be installed ------------------------------------------------

def _skip(request, reason):
    """Skip, saying why on the terminal even under -q."""
    pm = request.config.pluginmanager
    tr = pm.get_plugin("terminalreporter")
    capman = pm.get_plugin("capturemanager")
    msg = "memhound: skipping %s: %s" % (request.node.name, reason)
    if tr is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line(msg)
    else:
        print(msg, file=sys.stderr)
    pytest.skip(reason)


def _require(request, *what):
    checks = {
        "wrk": (lambda: shutil.which("wrk"), "wrk is not installed"),
        "django": (lambda: importlib.util.find_spec("django"),
                   "Debian's python3-django is not installed"),
        "gunicorn": (lambda: os.path.exists(GUNICORN),
                     "Debian's gunicorn is not installed"),
        "uwsgi": (lambda: os.path.exists(UWSGI) and
                  os.path.exists(UWSGI_PY3),
                  "Debian's uwsgi and uwsgi-plugin-python3 are not "
                  "installed"),
        "aiohttp": (lambda: importlib.util.find_spec("aiohttp"),
                    "Debian's python3-aiohttp is not installed"),
        "uvicorn": (lambda: os.path.exists(UVICORN) and
                    importlib.util.find_spec("starlette"),
                    "Debian's uvicorn and python3-starlette are not "
                    "installed"),
    }
    for w in what:
        ok, why = checks[w]
        if not ok():
            _skip(request, why)
    if not MEMHOUND.exists():
        pytest.fail("%s is not built: run make" % MEMHOUND)


# --- servers -----------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`memhound run --web` around a server command, in its own process
    group; its output goes to server.log."""

    def __init__(self, procs, tmp_path, argv, cwd, env):
        self.tmp = tmp_path
        self.log_path = tmp_path / "server.log"
        self.log = open(self.log_path, "w+")
        self.launched = time.monotonic()
        self.p = procs.popen(
            [MEMHOUND, "run", "--web", "--sample-interval", SAMPLE_INTERVAL,
             "-q", "-o", tmp_path / "web.mhc", "--", *argv],
            stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, cwd=str(cwd))

    def output(self, tail=4000):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-tail:]

    def wait_serving(self, port, path, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                break
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d%s" % (port, path),
                        timeout=10) as r:
                    r.read()
                    if r.status == 200:
                        return
            except OSError as e:
                last = e
            time.sleep(0.2)
        pytest.fail("server did not come up (%s; exit %s):\n%s" % (
            last, self.p.poll(), self.output()))

    def stop(self, timeout=60):
        """SIGTERM to `memhound run` (passed on to the server); returns
        its exit status. The group is killed at teardown in any case."""
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("server did not stop within %ds of SIGTERM:\n%s" % (
                timeout, self.output()))
        finally:
            self.log.close()


def _load(procs, port, plan, tmp_path, name, connections, requests,
          threads=2):
    plan_file = tmp_path / ("%s.plan" % name)
    wrkload.write_plan(plan_file, plan)
    argv = wrkload.wrk_argv("http://127.0.0.1:%d" % port, str(plan_file),
                            connections, threads, requests, LOAD_SECONDS)
    try:
        res = wrkload.run(procs.popen, argv, min(threads, connections),
                          LOAD_SECONDS + 60)
    except RuntimeError as e:
        pytest.fail("%s load: %s" % (name, e))
    assert wrkload.failures(res) == 0, (
        "%s load: requests failed: %s\n%s" % (
            name, {k: res[k] for k in ("errors", "non_2xx", "statuses")},
            res["stdout"][-2000:]))
    res["per_route"] = wrkload.sent_per_route(res, plan)
    return res


def _warm_plan(routes):
    """Every route once (its first URL), in one wrk thread."""
    return wrkload.weighted([(p, r, urls[:1]) for p, r, urls in routes],
                            {"ordinary": 1, "leak": 1, "truthiness": 1})


def _drive(procs, server, port, routes, weights, tmp_path, connections,
           requests):
    """Warm-up (every route once), then the main load. Returns (main
    load's result, warm-up cut in seconds for the report, requests sent
    per route over both)."""
    warm = _load(procs, port, _warm_plan(routes), tmp_path, "warm-up",
                 min(4, connections), len(routes), threads=1)
    # Requests that began before this are left out of the retained
    # figures: caches filled on first use are not leaks. Measured from
    # the server's launch, it is at or after the cut in every capture.
    cut = time.monotonic() - server.launched
    time.sleep(0.5)
    plan = wrkload.weighted(routes, weights)
    main = _load(procs, port, plan, tmp_path, "main", connections,
                 requests)
    sent = dict(warm["per_route"])
    for k, v in main["per_route"].items():
        sent[k] = sent.get(k, 0) + v
    return main, cut, sent


def _report(procs, tmp_path, cut, *options):
    caps = sorted(str(p) for p in tmp_path.glob("*.mhc"))
    assert caps, "no captures in %s" % tmp_path
    argv = [MEMHOUND, "report", "--by", "endpoint", "--format", "json",
            "--top", "0", "--warmup", "%.2fs" % cut, *options, *caps]
    r = procs.run(argv, env=clean_env())
    assert r.returncode == 0, describe(r)
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        pytest.fail("report is not JSON (%s): %s" % (e, r.stdout[:2000]))


# --- judging reports -------------------------------------------------------

def _norm(name):
    return (name or "").lstrip("/")


def _fmt_endpoints(eps, n=8):
    return "\n".join(
        "  %-48s req %5d  retained/req %9.0f  alloc/req %10.0f  "
        "peak p50 %10.0f  p95 %10.0f" % (
            e.get("endpoint"), e.get("requests", 0),
            e.get("retained_bytes_per_request", 0),
            e.get("allocated_bytes_per_request", 0),
            e.get("peak_bytes_p50", 0), e.get("peak_bytes_p95", 0))
        for e in eps[:n])


def _top_by(eps, key):
    return max(eps, key=lambda e: e.get(key, 0))


def _endpoint(eps, pattern):
    for e in eps:
        if _norm(e.get("endpoint")) == _norm(pattern):
            return e
    return None


def _check_endpoints(rep, routes, sent, connections, what, apart=False):
    """Route patterns only; the leaky one first by retained bytes per
    request, with about its own bytes (and, with `apart`, at least twice
    the runner-up's); its request count is what wrk sent. Returns the
    endpoint list."""
    eps = rep.get("endpoints") or []
    table = _fmt_endpoints(sorted(
        eps, key=lambda e: -e.get("retained_bytes_per_request", 0)))
    assert eps, "%s: no endpoints in the report: %s" % (
        what, rep.get("summary"))
    names = {e.get("endpoint") for e in eps}
    patterns = {_norm(p) for p, _, _ in routes}
    urls = {_norm(u.split("?")[0]) for _, _, us in routes for u in us}
    raw_names = [n for n in names
                 if _norm(n) in urls and _norm(n) not in patterns]
    assert not raw_names, "%s: raw URLs as endpoints: %s" % (what, raw_names)
    for bad in ("(unnamed)", "(other)", "(not found)"):
        assert bad not in names, "%s: requests named %s:\n%s" % (
            what, bad, table)
    known = [n for n in names if _norm(n) in patterns]
    assert len(known) >= len(routes) - 1, (
        "%s: %d of %d route patterns found; names: %s" % (
            what, len(known), len(routes), sorted(map(str, names))[:40]))

    leak_pattern = [p for p, role, _ in routes if role == "leak"][0]
    leak = _endpoint(eps, leak_pattern)
    assert leak, "%s: no endpoint %r:\n%s" % (what, leak_pattern, table)
    assert abs(leak["requests"] - sent[leak_pattern]) <= connections, (
        "%s: %s has %d requests, wrk sent %d" % (
            what, leak_pattern, leak["requests"], sent[leak_pattern]))
    top = _top_by(eps, "retained_bytes_per_request")
    assert _norm(top["endpoint"]) == _norm(leak_pattern) and \
        _norm(eps[0]["endpoint"]) == _norm(leak_pattern), (
            "%s: %s is not first by retained bytes per request:\n%s" % (
                what, leak_pattern, table))
    # Its top site is a line of the app (the master's capture, which has
    # no requests, once made the top site one with no stack).
    site = (leak.get("sites") or [{}])[0]
    assert site.get("file") and site.get("user_file"), (
        "%s: %s's top site has no line: %s" % (what, leak_pattern, site))
    got = leak["retained_bytes_per_request"]
    # +-20% (the module's docstring: >= 2,700 samples, 10 standard
    # deviations); measured 0.960-1.041 of LEAK_BYTES over 3 runs of the
    # four servers.
    assert 0.8 * LEAK_BYTES <= got <= 1.2 * LEAK_BYTES, (
        "%s: %s retains %.0f bytes per request, expected about %d:\n%s" % (
            what, leak_pattern, got, LEAK_BYTES, table))
    second = max((e for e in eps if e is not leak),
                 key=lambda e: e.get("retained_bytes_per_request", 0),
                 default={})
    runner_up = second.get("retained_bytes_per_request", 0)
    print("%s: %s retains %.0f B/request over %d requests; next: %s %.0f "
          "B/request over %d" % (
              what, leak_pattern, got, leak.get("requests_after_warmup", 0),
              second.get("endpoint"), runner_up,
              second.get("requests_after_warmup", 0)))
    assert not apart or runner_up < 0.5 * got, (
        "%s: the runner-up retains %.0f bytes per request, the leak %.0f:"
        "\n%s" % (what, runner_up, got, table))
    return eps


def _check_truthiness(rep, procs, tmp_path, cut, site_dir, what):
    eps = rep["endpoints"]
    table = _fmt_endpoints(sorted(eps, key=lambda e: -e.get(
        "peak_bytes_p95", 0)))
    for key in ("peak_bytes_p50", "peak_bytes_p95"):
        top = _top_by(eps, key)
        assert _norm(top["endpoint"]) == _norm(loadplan.TRUTHINESS), (
            "%s: %s is not first by %s:\n%s" % (
                what, loadplan.TRUTHINESS, key, table))
    by_peak = _report(procs, tmp_path, cut, "--sort", "peak")["endpoints"]
    assert _norm(by_peak[0]["endpoint"]) == _norm(loadplan.TRUTHINESS), (
        "%s: --sort peak puts %s first:\n%s" % (
            what, by_peak[0]["endpoint"], _fmt_endpoints(by_peak)))

    peaks = sorted(eps, key=lambda e: -e.get("peak_bytes_p50", 0))[:2]
    print("%s: peak p50 %s" % (what, ", ".join(
        "%s %.0f" % (e["endpoint"], e["peak_bytes_p50"]) for e in peaks)))
    views = site_dir / "school" / "views.py"
    line = [i for i, s in enumerate(views.read_text().splitlines(), 1)
            if "MARK:truthiness" in s][0]
    findings = rep.get("findings") or []
    mine = [f for f in findings if f.get("id") ==
            "django-queryset-truthiness"]
    listing = "\n".join("  %s %s:%s count_max=%s endpoints=%s" % (
        f.get("id"), f.get("file"), f.get("line"), f.get("count_max"),
        f.get("endpoints")) for f in findings)
    hit = [f for f in mine if f.get("line") == line and f.get("file") and
           same_file(f["file"], views)]
    assert hit, "%s: no django-queryset-truthiness finding at %s:%d; " \
        "findings:\n%s" % (what, views, line, listing)
    assert len(mine) == 1, "%s: truthiness findings elsewhere:\n%s" % (
        what, listing)
    f = hit[0]
    assert f.get("count_max") == 20_000, f
    assert f.get("endpoints") and _norm(f["endpoints"][0]) == _norm(
        loadplan.TRUTHINESS), f
    for k in ("title", "evidence", "fix"):
        assert f.get(k), "%s: finding without %s: %s" % (what, k, f)


# --- the Django site --------------------------------------------------------

@pytest.fixture(scope="module")
def school_db(tmp_path_factory):
    """The site's database (20,000 students), built once for the module
    without memhound."""
    if not importlib.util.find_spec("django"):
        return None
    path = tmp_path_factory.mktemp("school") / "school.db"
    r = subprocess.run([PY, SITE / "builddb.py", path], env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, describe(r)
    return path


def _site(tmp_path):
    """A copy of the site to serve (its __pycache__ stays out of the
    source tree)."""
    dst = tmp_path / "django_site"
    shutil.copytree(SITE, dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc"))
    return dst


def _django_acceptance(procs, tmp_path, server_argv, site_dir, school_db,
                       port, what, connections=DJANGO_CONNECTIONS):
    env = clean_env(SCHOOL_DB=str(school_db),
                    DJANGO_SETTINGS_MODULE="schoolsite.settings")
    server = Server(procs, tmp_path, server_argv, site_dir, env)
    try:
        server.wait_serving(port, "/health/")
        routes = loadplan.routes()
        main, cut, sent = _drive(procs, server, port, routes,
                                 DJANGO_WEIGHTS, tmp_path, connections,
                                 DJANGO_REQUESTS)
        time.sleep(1.5)  # a flush in every worker
    finally:
        rc = server.stop()
    assert rc in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
        rc, server.output())
    # Enough requests after the warm-up for the docstring's statistics.
    leaky = main["per_route"].get(loadplan.LEAK, 0)
    truthiness = main["per_route"].get(loadplan.TRUTHINESS, 0)
    assert leaky >= 380 and truthiness >= 19, (
        "%s: load too small (wrk's -d reached?): %s requests, %d leaky, %d "
        "truthiness" % (what, main["requests"], leaky, truthiness))
    rep = _report(procs, tmp_path, cut)
    _check_endpoints(rep, routes, sent, connections, what)
    _check_truthiness(rep, procs, tmp_path, cut, site_dir, what)


def test_django_gunicorn_gthread(request, procs, tmp_path, school_db):
    _require(request, "wrk", "django", "gunicorn")
    site_dir = _site(tmp_path)
    port = _free_port()
    argv = [GUNICORN, "--workers", "1", "--worker-class", "gthread",
            "--threads", "4", "--bind", "127.0.0.1:%d" % port, "--chdir",
            site_dir, "--timeout", "60", "--graceful-timeout", "20",
            "--log-level", "warning", "schoolsite.wsgi:application"]
    _django_acceptance(procs, tmp_path, argv, site_dir, school_db, port,
                       "gunicorn gthread")


def test_django_uwsgi(request, procs, tmp_path, school_db):
    _require(request, "wrk", "django", "uwsgi")
    site_dir = _site(tmp_path)
    port = _free_port()
    # --py-call-osafterfork: without it uWSGI forks its workers behind
    # Python's back and they do not record (docs/web.md). --http11-socket:
    # keep-alive, as wrk expects (plain --http-socket closes every
    # connection after its response, which wrk counts as read errors).
    argv = [UWSGI, "--master", "--processes", "1", "--threads", "4",
            "--http11-socket", "127.0.0.1:%d" % port, "--plugin", "python3",
            "--chdir", site_dir, "--module", "schoolsite.wsgi:application",
            "--py-call-osafterfork", "--enable-threads", "--die-on-term",
            "--worker-reload-mercy", "20", "--disable-logging"]
    _django_acceptance(procs, tmp_path, argv, site_dir, school_db, port,
                       "uWSGI", connections=UWSGI_CONNECTIONS)


# --- the async apps ---------------------------------------------------------

def _async_acceptance(procs, tmp_path, framework, server_argv, port):
    server = Server(procs, tmp_path, server_argv, APPS, clean_env())
    try:
        server.wait_serving(port, "/health")
        routes = asyncplan.routes(framework)
        main, cut, sent = _drive(procs, server, port, routes,
                                 ASYNC_WEIGHTS, tmp_path,
                                 ASYNC_CONNECTIONS, ASYNC_REQUESTS)
        time.sleep(1.5)
    finally:
        rc = server.stop()
    assert rc in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
        rc, server.output())
    leak = [p for p, role, _ in routes if role == "leak"][0]
    assert main["per_route"].get(leak, 0) >= 800, (
        "%s: load too small (wrk's -d reached?): %d requests, %d leaky" % (
            framework, main["requests"], main["per_route"].get(leak, 0)))
    rep = _report(procs, tmp_path, cut)
    _check_endpoints(rep, routes, sent, ASYNC_CONNECTIONS, framework,
                     apart=True)


def test_aiohttp_100_connections(request, procs, tmp_path):
    _require(request, "wrk", "aiohttp")
    port = _free_port()
    _async_acceptance(procs, tmp_path, "aiohttp",
                      [PY, APPS / "aiohttp_app.py", str(port)], port)


def test_starlette_uvicorn(request, procs, tmp_path):
    _require(request, "wrk", "uvicorn")
    port = _free_port()
    argv = [UVICORN, "--app-dir", APPS, "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning",
            "--backlog", "512", "starlette_app:app"]
    _async_acceptance(procs, tmp_path, "starlette", argv, port)
