"""The Python web layer (docs/web.md): request tagging and naming in real
frameworks, the pass-through when not recording, nesting, the endpoint
cap, jobs, and the Django findings at the user's exact line.

Each test writes a small program that serves requests in-process (Django's
and Flask's test clients, aiohttp's real server on 127.0.0.1 with real
client requests, a Starlette app under a real uvicorn server on 127.0.0.1)
and runs it with Debian's /usr/bin/python3 under `memhound run`, with
`--web` (zero-code-change) or with the middleware added by hand; the
results are read from `memhound report --by endpoint --format json`. A
framework that is not installed for /usr/bin/python3 skips its tests,
saying so.
"""

import functools
import os
import subprocess
from collections import Counter

import pytest

from conftest import PYDIR, SYSTEM_PY, clean_env, describe

ENV_ROWS = "50"  # MEMHOUND_DJANGO_ROWS in the Django programs


# --- what is installed -------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _missing(module):
    """Why `module` cannot be used here, or None."""
    if not os.path.exists(SYSTEM_PY):
        return "%s is not installed" % SYSTEM_PY
    r = subprocess.run([SYSTEM_PY, "-c", "import " + module],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        return "%s cannot import %s (install Debian's python3-%s)" % (
            SYSTEM_PY, module, module)
    return None


_announced = set()


@pytest.fixture
def needs(request):
    """needs("django", ...) skips the test, with a line on the terminal
    naming what is missing (once per module)."""
    def check(*modules):
        for m in modules:
            why = _missing(m)
            if why:
                if m not in _announced:
                    _announced.add(m)
                    tr = request.config.pluginmanager.get_plugin(
                        "terminalreporter")
                    if tr is not None:
                        tr.write_line("memhound: skipping the %s web-layer "
                                      "tests: %s" % (m, why))
                pytest.skip(why)
    return check


# --- reading the results: memhound report --by endpoint ------------------------

class Report:
    """`memhound report --by endpoint --format json` of a test's captures
    (docs/report-json.md)."""

    def __init__(self, mh):
        caps = mh.captures()
        assert caps, "no capture written"
        self.json = mh.report_json(caps, "--by", "endpoint")
        self.by_name = {e["endpoint"]: e for e in self.json["endpoints"]}

    def endpoints(self):
        """Counter of requests by endpoint name."""
        return Counter({e["endpoint"]: e["requests"]
                        for e in self.json["endpoints"]})

    def found(self, rule):
        """The findings of one rule (grouped by file:line), by line."""
        return sorted((f for f in self.json["findings"] if f["id"] == rule),
                      key=lambda f: f["line"])

    def lines(self):
        return {f["line"] for f in self.json["findings"]}


def run_web(mh, prog, mode, trace=False, **env):
    """Runs `prog MODE` under memhound run: with --web for mode "web";
    the program adds the middleware itself ("hand") or calls
    memhound.web.instrument() itself ("late")."""
    opts = ["--web"] if mode == "web" else []
    if trace:
        opts.append("--trace-all")
    r = mh.run(SYSTEM_PY, [prog.path, mode], options=opts,
               env=clean_env(**env))
    return r, Report(mh)


# --- Django -------------------------------------------------------------------

DJANGO_APP = r'''
import asyncio, os, sys
import django
from django.conf import settings

BY_HAND = sys.argv[1] == "hand"
settings.configure(
    DEBUG=True, SECRET_KEY="x", ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": os.path.join(os.getcwd(), "db.sqlite3")}},
    MIDDLEWARE=(["memhound.django.MemhoundMiddleware"] if BY_HAND else []),
    DEFAULT_AUTO_FIELD="django.db.models.AutoField", USE_TZ=True)
django.setup()
if BY_HAND:
    # the middleware installs the findings when Django loads it, at the
    # first request; the queries below come before any
    import memhound.django_findings
    memhound.django_findings.install()
from django.contrib.auth.models import Group
from django.db import connection
from django.http import HttpResponse
from django.urls import path
from django.test import AsyncClient, Client


def truth_if(request):
    groups = Group.objects.filter(name__startswith="g")
    if groups:  # MARK:if
        return HttpResponse("some")
    return HttpResponse("none")


def truth_bool(request):
    groups = Group.objects.all()
    flag = bool(groups)  # MARK:bool
    return HttpResponse(str(flag))


def truth_len(request):
    groups = Group.objects.all()
    n = len(groups)  # MARK:len
    return HttpResponse(str(n))


def truth_ternary(request):
    groups = Group.objects.all()
    total = None if groups else 0  # MARK:ternary
    return HttpResponse(str(total))


def reused(request):
    groups = Group.objects.all()
    names = []
    if groups:  # MARK:reuse
        for g in groups:
            names.append(g.name)
    first = Group.objects.all()
    if first:  # MARK:reuse_index
        names.append(first[0].name)
    return HttpResponse(str(len(names)))


def cheap(request):
    qs = Group.objects.all()
    n = qs.count() if qs.exists() else 0  # MARK:exists
    for g in Group.objects.all().iterator():  # MARK:iterator
        n += 1
    Group.objects.get(pk=1)  # MARK:get
    return HttpResponse(str(n))


def large(request):
    n = 0
    for g in Group.objects.all():  # MARK:large
        n += len(g.name)
    return HttpResponse(str(n))


def many_queries(request):
    for i in range(1200):
        Group.objects.filter(pk=1).exists()  # MARK:inrequest
    return HttpResponse("ok")


def item(request, pk):
    return HttpResponse("item %d" % pk)


def home(request):
    return HttpResponse("home")


urlpatterns = [
    path("truth/if/", truth_if), path("truth/bool/", truth_bool),
    path("truth/len/", truth_len), path("truth/ternary/", truth_ternary),
    path("reused/", reused), path("cheap/", cheap), path("large/", large),
    path("many/", many_queries), path("items/<int:pk>/", item),
    path("", home),
]

if os.path.exists("db.sqlite3"):
    os.unlink("db.sqlite3")
with connection.schema_editor() as e:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    e.create_model(ContentType)
    e.create_model(Permission)
    e.create_model(Group)
Group.objects.bulk_create([Group(name="g%03d" % i) for i in range(60)])

# DEBUG=True outside any request: the log is never reset.
for i in range(2100):
    Group.objects.filter(pk=1).exists()  # MARK:outside

client = Client()
for url, status in [("/truth/if/", 200), ("/truth/bool/", 200),
                    ("/truth/len/", 200), ("/truth/ternary/", 200),
                    ("/reused/", 200), ("/cheap/", 200), ("/large/", 200),
                    ("/many/", 200), ("/items/1/", 200), ("/items/2/", 200),
                    ("/", 200), ("/nowhere/42/", 404)]:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code)


async def async_requests():
    c = AsyncClient()
    for url in ("/items/3/", "/items/4/"):
        r = await c.get(url)
        assert r.status_code == 200, (url, r.status_code)

asyncio.run(async_requests())
print("django ok")
'''


@pytest.mark.parametrize("mode", ["web", "hand"])
def test_django_names_and_findings(mh, program, needs, mode):
    needs("django")
    prog = program(DJANGO_APP, "djapp.py")
    r, cap = run_web(mh, prog, mode, MEMHOUND_DJANGO_ROWS=ENV_ROWS)
    assert "django ok" in r.stdout, describe(r)

    assert cap.endpoints() == Counter({
        "truth/if/": 1, "truth/bool/": 1, "truth/len/": 1,
        "truth/ternary/": 1, "reused/": 1, "cheap/": 1, "large/": 1,
        "many/": 1, "items/<int:pk>/": 4, "__main__.home": 1,
        "(not found)": 1}), cap.endpoints()

    L = prog.lines
    truth = cap.found("django-queryset-truthiness")
    assert [(f["line"], f["endpoints"]) for f in truth] == sorted([
        (L["if"], ["truth/if/"]), (L["bool"], ["truth/bool/"]),
        (L["len"], ["truth/len/"]), (L["ternary"], ["truth/ternary/"])]), truth
    for f in truth:
        assert os.path.samefile(f["file"], prog.path), f
        assert f["occurrences"] == 1 and f["count_max"] == 60, f  # rows
        assert f["bytes_max"] > 0, f
    assert {f["function"] for f in truth} == {
        "truth_if", "truth_bool", "truth_len", "truth_ternary"}

    large = cap.found("django-large-queryset")
    assert [(f["line"], f["endpoints"]) for f in large] == [
        (L["large"], ["large/"])], large
    assert large[0]["count_max"] == 60 and large[0]["bytes_max"] > 0, large

    # Outside any request, reported at 1,000 and 2,000 logged queries.
    debug = cap.found("django-debug-query-log")
    assert [(f["line"], f["occurrences"], f["count_max"], f["count_total"])
            for f in debug] == [(L["outside"], 2, 2000, 3000)], debug
    assert debug[0]["endpoints"] == [] and debug[0]["bytes_max"] > 2000 * 50, \
        debug
    # No finding anywhere else: reuse, .exists(), .iterator(), get(), and
    # 1,200 queries inside a request with DEBUG=True.
    for quiet in ("reuse", "reuse_index", "exists", "iterator", "get",
                  "inrequest"):
        assert L[quiet] not in cap.lines(), (quiet, cap.json["findings"])


# --- Flask --------------------------------------------------------------------

FLASK_APP = r'''
import sys
from flask import Flask
import memhound.web

app = Flask(__name__)


@app.route("/users/<int:uid>")
def user(uid):
    return "user %d" % uid


@app.route("/")
def root():
    return "root"


@app.route("/stream")
def stream():
    def gen():
        for i in range(3):
            yield "chunk %d\n" % i
    return app.response_class(gen())


if sys.argv[1] == "hand":
    memhound.web.init_flask(app)
elif sys.argv[1] == "late":  # Flask imported and the app made before
    memhound.web.instrument()
c = app.test_client()
for url, status in [("/users/1", 200), ("/users/2", 200), ("/", 200),
                    ("/stream", 200), ("/nowhere/7", 404)]:
    r = c.get(url)
    assert r.status_code == status, (url, r.status_code)
    r.close()
# a response the test client never closes: the next request ends it
c.get("/users/3")
c.get("/").close()
print("flask ok")
'''


@pytest.mark.parametrize("mode", ["web", "hand", "late"])
def test_flask_names(mh, program, needs, mode):
    needs("flask")
    prog = program(FLASK_APP, "flaskapp.py")
    r, cap = run_web(mh, prog, mode)
    assert "flask ok" in r.stdout, describe(r)
    assert cap.endpoints() == Counter({
        "/users/<int:uid>": 3, "/": 2, "/stream": 1, "(not found)": 1}), \
        cap.endpoints()


# --- aiohttp ------------------------------------------------------------------

AIOHTTP_APP = r'''
import asyncio, sys
from aiohttp import ClientSession, TCPConnector, web

BY_HAND = sys.argv[1] == "hand"
kept = []


async def big(request):
    await asyncio.sleep(0.01)
    data = [bytearray(1000) for _ in range(100)]  # ~100 KB per request
    await asyncio.sleep(0.01)
    return web.Response(text=str(len(data)))


async def small(request):
    await asyncio.sleep(0.02)
    return web.Response(text="s" + request.match_info["id"])


async def ping(request):
    return web.Response(text="pong " + request.match_info["n"])


async def main():
    middlewares = []
    if BY_HAND:
        import memhound.web
        middlewares.append(memhound.web.aiohttp_middleware)
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/big", big)
    app.router.add_get("/small/{id}", small)
    sub = web.Application()
    sub.router.add_get(r"/ping/{n:\d+}", ping)
    app.add_subapp("/sub", sub)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    base = "http://127.0.0.1:%d" % port
    async with ClientSession(connector=TCPConnector(limit=100)) as s:
        async def get(url, status=200):
            async with s.get(base + url) as r:
                assert r.status == status, (url, r.status)
                await r.read()
        # 100 concurrent requests in one thread: the tag follows the task
        await asyncio.gather(*[
            get("/big" if i % 2 else "/small/%d" % i) for i in range(100)])
        await get("/sub/ping/7")
        await get("/nowhere", 404)
    await runner.cleanup()
    print("aiohttp ok")

asyncio.run(main())
'''


@pytest.mark.parametrize("mode", ["web", "hand"])
def test_aiohttp_concurrent_attribution(mh, program, needs, mode):
    needs("aiohttp")
    prog = program(AIOHTTP_APP, "aioapp.py")
    r, cap = run_web(mh, prog, mode, trace=True)
    assert "aiohttp ok" in r.stdout, describe(r)
    assert cap.endpoints() == Counter({
        "/big": 50, "/small/{id}": 50, "/sub/ping/{n}": 1,
        "(not found)": 1}), cap.endpoints()
    # trace-all: exact. Each /big request allocated its ~100 KB, none of
    # which went to the /small requests interleaved with it.
    big = cap.by_name["/big"]["allocated_bytes_per_request"]
    small = cap.by_name["/small/{id}"]["allocated_bytes_per_request"]
    assert big >= 100 * 1000 and small < 30 * 1000, (big, small)


# --- Starlette under uvicorn --------------------------------------------------

STARLETTE_APP = r'''
import sys, threading, time, urllib.error, urllib.request
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route


async def item(request):
    return PlainTextResponse("item " + request.path_params["item_id"])


async def user(request):
    return PlainTextResponse("user %d" % request.path_params["uid"])


async def home(request):
    return PlainTextResponse("home")


app = Starlette(routes=[
    Route("/items/{item_id}", item), Route("/", home),
    Mount("/api", routes=[Route("/users/{uid:int}", user)])])
if sys.argv[1] == "hand":
    import memhound.web
    app = memhound.web.ASGIMiddleware(app)

server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                       log_level="warning", lifespan="on"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.time() + 30
while not server.started:
    assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
    time.sleep(0.02)
port = server.servers[0].sockets[0].getsockname()[1]
for url, status in [("/items/abc", 200), ("/items/42", 200), ("/", 200),
                    ("/api/users/7", 200), ("/api/users/8", 200),
                    ("/nowhere/1", 404)]:
    try:
        got = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, url),
                                     timeout=30).status
    except urllib.error.HTTPError as e:
        got = e.code
    assert got == status, (url, got)
server.should_exit = True
thread.join(30)
print("starlette ok")
'''


@pytest.mark.parametrize("mode", ["web", "hand"])
def test_starlette_under_uvicorn_names(mh, program, needs, mode):
    needs("starlette", "uvicorn")
    prog = program(STARLETTE_APP, "stapp.py")
    r, cap = run_web(mh, prog, mode)
    assert "starlette ok" in r.stdout, describe(r)
    assert cap.endpoints() == Counter({
        "/items/{item_id}": 2, "/": 1, "/api/users/{uid:int}": 2,
        "(not found)": 1}), cap.endpoints()


# --- WSGI/ASGI middleware by hand: nesting, the cap, jobs ----------------------

PLAIN_APP = r'''
import asyncio, io, sys
import memhound
import memhound.web as web
from wsgiref.util import FileWrapper, setup_testing_defaults

calls = []


def app(environ, start_response):
    calls.append(environ["PATH_INFO"])
    # a job inside a request: no second request, the name stays
    with memhound.request("inner job"):
        pass
    if environ["PATH_INFO"] == "/boom":
        raise ValueError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"].startswith("/file"):
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file body"))
    return [b"ok ", environ["PATH_INFO"].encode()]


nested = web.WSGIMiddleware(web.WSGIMiddleware(app))


def get(path):
    env = {}
    setup_testing_defaults(env)
    env["PATH_INFO"] = path
    env["wsgi.file_wrapper"] = FileWrapper
    result = nested(env, lambda status, headers, exc_info=None: None)
    body = b"".join(result)
    if path.startswith("/file"):
        assert isinstance(result, FileWrapper), result  # kept for sendfile
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return body


assert get("/orders/12") == b"ok /orders/12"
assert get("/orders/9f86d081884c7d65/lines/123e4567-e89b-12d3-a456-426614174000") \
    == b"ok /orders/9f86d081884c7d65/lines/123e4567-e89b-12d3-a456-426614174000"
assert get("/file/1") == b"file body"
try:
    get("/boom")
except ValueError:
    pass
else:
    raise AssertionError("the app's exception was swallowed")
for p in ("/a", "/b", "/c", "/d"):  # past MEMHOUND_MAX_ENDPOINTS=4
    get(p)


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        calls.append("lifespan")
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


async def drive_asgi():
    wrapped = web.ASGIMiddleware(web.ASGIMiddleware(asgi_app))
    sent = []

    async def send(m):
        sent.append(m)

    async def receive():
        return {"type": "http.request"}

    await wrapped({"type": "lifespan"}, receive, send)
    await wrapped({"type": "http", "path": "/e/77"}, receive, send)
    assert sent[-1]["body"] == b"hi"

asyncio.run(drive_asgi())

with memhound.request("job cm"):
    x = [0] * 1000


@memhound.request("job deco")
def job(n):
    return [1] * n


@memhound.request("job async")
async def ajob(n):
    await asyncio.sleep(0)
    return [1] * n

assert len(job(10)) == 10
assert len(job(20)) == 20
assert len(asyncio.run(ajob(5))) == 5
assert web.name_request("ignored") is False  # no request current
print("plain ok", calls.count("lifespan"))
'''


def test_wsgi_asgi_nesting_cap_and_jobs(mh, program):
    prog = program(PLAIN_APP, "plain.py")
    r, cap = run_web(mh, prog, "hand", MEMHOUND_MAX_ENDPOINTS="4")
    assert "plain ok 1" in r.stdout, describe(r)
    # One request per call however deeply the middleware nests; the first
    # four names are kept, later new ones go to "(other)"; memhound's own
    # "(...)" names do not count.
    assert cap.endpoints() == Counter({
        "/orders/{id}": 1, "/orders/{id}/lines/{id}": 1, "/file/{id}": 1,
        "/boom": 1, "(other)": 4 + 1 + 4}), cap.endpoints()


def test_jobs_are_requests(mh, program):
    prog = program(PLAIN_APP, "plain.py")
    r, cap = run_web(mh, prog, "hand")
    assert "plain ok 1" in r.stdout, describe(r)
    eps = cap.endpoints()
    assert eps["job cm"] == 1 and eps["job deco"] == 2 and \
        eps["job async"] == 1, eps
    assert eps["/e/{id}"] == 1 and "inner job" not in eps, eps


PASS_THROUGH = r'''
import sys
if sys.argv[1] == "no-agent":
    sys.modules["memhound._memhound"] = None  # as if none were built
exec(open(sys.argv[2]).read())
import memhound
assert not memhound.is_active()
'''


@pytest.mark.parametrize("how", ["not-recording", "no-agent"])
def test_pass_through(procs, program, how):
    """Not recording, or no agent at all: every layer is a pass-through
    and the app sees exactly what it would without memhound."""
    prog = program(PLAIN_APP, "plain.py")
    runner = program(PASS_THROUGH, "runner.py")
    r = procs.run([SYSTEM_PY, runner.path, how, prog.path],
                  env=clean_env(PYTHONPATH=str(PYDIR)), cwd=str(prog.path.parent))
    assert r.returncode == 0, describe(r)
    assert "plain ok 1" in r.stdout, describe(r)
    assert not list(prog.path.parent.glob("*.mhc"))


DJANGO_PASS = r'''
import os, sys
if sys.argv[1] == "no-agent":
    sys.modules["memhound._memhound"] = None
import django
from django.conf import settings
settings.configure(DEBUG=True, SECRET_KEY="x", ALLOWED_HOSTS=["testserver"],
                   ROOT_URLCONF=__name__, MIDDLEWARE=["memhound.django.MemhoundMiddleware"],
                   INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
                   DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                          "NAME": ":memory:"}})
django.setup()
import memhound.web
memhound.web.instrument()
from django.http import HttpResponse
from django.urls import path
from django.test import Client
from django.contrib.auth.models import Group
from django.db import connection
with connection.schema_editor() as e:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    e.create_model(ContentType); e.create_model(Permission); e.create_model(Group)
Group.objects.create(name="a")
urlpatterns = [path("g/<int:pk>/", lambda r, pk: HttpResponse(str(bool(Group.objects.all()))))]
c = Client()
assert c.get("/g/1/").content == b"True"
assert c.get("/nope/").status_code == 404
print("django pass ok")
'''


@pytest.mark.parametrize("how", ["not-recording", "no-agent"])
def test_django_pass_through(procs, program, needs, how):
    needs("django")
    prog = program(DJANGO_PASS, "djpass.py")
    r = procs.run([SYSTEM_PY, prog.path, how],
                  env=clean_env(PYTHONPATH=str(PYDIR)), cwd=str(prog.path.parent))
    assert r.returncode == 0 and "django pass ok" in r.stdout, describe(r)
    assert "memhound" not in r.stderr, describe(r)


ENV_PROBE = r'''
import os, sys
hooked = any(type(f).__name__ == "_PostImportFinder" for f in sys.meta_path)
print("MEMHOUND_WEB=%s hooked=%s" % (os.environ.get("MEMHOUND_WEB"), hooked))
'''


@pytest.mark.parametrize("web", [True, False])
def test_run_web_flag(mh, program, web):
    """--web reaches every Python process through MEMHOUND_WEB and the
    bootstrap installs the import hook; without it, an inherited
    MEMHOUND_WEB does not leak through."""
    prog = program(ENV_PROBE, "probe.py")
    r = mh.run(SYSTEM_PY, [prog.path], options=["--web"] if web else [],
               env=clean_env(MEMHOUND_WEB="1") if not web else None)
    expect = "MEMHOUND_WEB=1 hooked=True" if web else \
        "MEMHOUND_WEB=None hooked=False"
    assert expect in r.stdout, describe(r)
