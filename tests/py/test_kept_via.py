"""The line that keeps what grows (issue 12, "The right lines"): a row whose
allocating line is the user's own code inside a helper also names the
user-code caller that stored it ("kept via", JSON `via`), and under async
servers the handler coroutine's frames are the stack of what it allocates.

Real programs and servers, each recorded by `memhound run` and judged from
`memhound report`:

- a plain program (every interpreter of the matrix, --trace-all so the
  shares are exact): a helper called from two storing callers (3:1), a
  helper that stores itself when a library (threading) calls it, a
  library's allocation kept by the user's line;
- a Flask app under Debian's gunicorn (gthread), a FastAPI app under
  uvicorn, an aiohttp app on its own runner, and a plain asyncio HTTP
  server (every interpreter): each keeps ~20 KB per request in a helper
  called from its handler, and a library's result (json) in the handler
  itself. The top growth row is the helper's line, "kept via" the
  handler's line; the json row is "called from" the handler's line; no row
  is "called from" the line that started the event loop.

Loads are bounded (wrk through tests/apps/wrkload.py, a fixed number of
requests after a warm-up of a few requests each route, which the report
leaves out with --warmup); servers listen on 127.0.0.1 on a free port.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import textwrap
import time

import pytest

from conftest import MEMHOUND, Program, clean_env, describe, free_port, \
    same_file
from test_web_servers import GUNICORN, UVICORN, Server, _load, wrkload

PY = "/usr/bin/python3"
REQUESTS = 1500  # ~30 MB kept: the helper's row leads by far


# --- reading the report ----------------------------------------------------

def _text(procs, caps, *options):
    r = procs.run([MEMHOUND, "report", "--top", "0", *options, *caps],
                  env=clean_env())
    assert r.returncode == 0, describe(r)
    return r.stdout


def _json(procs, caps, *options):
    r = procs.run([MEMHOUND, "report", "--format", "json", "--top", "0",
                   *options, *caps], env=clean_env())
    assert r.returncode == 0, describe(r)
    return json.loads(r.stdout)


def _row(rows, prog, mark):
    for s in rows:
        if s.get("line") == prog.lines[mark] and s.get("file") and \
                same_file(s["file"], prog.path):
            return s
    return None


def _fmt(rows, n=6):
    return "\n".join("  %12s  %s:%s in %s  user %s:%s  via %s" % (
        "{:,}".format(int(s.get("growth_bytes") or s.get("live_bytes") or
                          0)), s.get("file"), s.get("line"),
        s.get("function"), s.get("user_file"), s.get("user_line"),
        s.get("via")) for s in rows[:n])


def _check_via(row, prog, mark, function, share=1.0):
    v = row.get("via")
    assert v, "no via: %s" % row
    assert same_file(v["file"], prog.path) and \
        v["line"] == prog.lines[mark] and v["function"] == function, (
            "via is %s, expected %s:%d in %s" % (
                v, prog.path, prog.lines[mark], function))
    assert abs(v["share"] - share) <= 0.05, v


def _text_block(text, prog, mark):
    """The lines of the first row of `text` whose site is prog:mark, with
    its continuation lines."""
    site = "%s:%d in " % (prog.path, prog.lines[mark])
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if site in line:
            out = [line]
            for nxt in lines[i + 1:]:
                if not re.match(r"^\s{20,}\S", nxt):
                    break
                out.append(nxt)
            return out
    pytest.fail("no row %s in:\n%s" % (site, text[-3000:]))


# --- a plain program -------------------------------------------------------

PLAIN = """
    import json
    import threading

    HISTORY = []
    AUDIT = []
    BY_THREAD = []
    PARSED = []


    def make_entry(n):
        return {"n": n, "pad": "x" * 20000 + str(n)}  # MARK:entry


    def record(n):
        HISTORY.append(make_entry(n))  # MARK:record


    def audit(n):
        AUDIT.append(make_entry(n))  # MARK:audit


    def worker():
        for n in range(50):
            BY_THREAD.append("y" * 30000 + str(n))  # MARK:thread


    def parse(n):
        PARSED.append(json.loads('{"k": "%s"}' % ("z" * 30000)))  # MARK:parse


    for n in range(200):
        record(n)
        record(n)
        record(n)
        audit(n)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    for n in range(50):
        parse(n)
    """


def test_plain_program_kept_via(py, mh, program, procs):
    prog = program(PLAIN)
    mh.run(py, [str(prog.path)], options=("--trace-all",))
    caps = mh.captures()
    # All of it is live at the end; the run is one warm-up long or less.
    rep = _json(procs, caps, "--warmup", "0")
    for section in ("growth", "live"):
        rows = rep[section]
        entry = _row(rows, prog, "entry")
        assert entry, "%s: no row for make_entry:\n%s" % (section, _fmt(rows))
        assert entry["user_line"] == prog.lines["entry"], entry
        # Three of every four entries are stored by record().
        _check_via(entry, prog, "record", "record", share=0.75)

        # A thread's target, called by threading (a library): the line
        # is its own keeper.
        thread = _row(rows, prog, "thread")
        assert thread and thread["via"] is None, thread

        # A library's allocation: its user frame is the line that keeps
        # it, and it has no via.
        lib = [s for s in rows if s.get("user_line") == prog.lines["parse"]
               and s.get("file") != s.get("user_file")]
        assert lib, "%s: no json row called from parse:\n%s" % (
            section, _fmt(rows))
        assert all(s["via"] is None for s in lib), lib

    text = _text(procs, caps, "--warmup", "0")
    block = _text_block(text, prog, "entry")
    assert block[1].strip() == "kept via %s:%d in record (75%% of it)" % (
        prog.path, prog.lines["record"]), block
    block = _text_block(text, prog, "thread")
    assert not any("kept via" in line for line in block), block

    # --by stack shows the whole stack instead.
    assert "kept via" not in _text(procs, caps, "--by", "stack")
    stack = _json(procs, caps, "--by", "stack")
    assert all(s["via"] is None for s in stack["growth"] + stack["live"])


# --- servers ---------------------------------------------------------------

# What every app below shares: a helper that builds an entry, and the lists
# its handler keeps entries and parsed documents in.
HELPER = """
    HISTORY = []
    PARSED = []


    def make_entry(path, n):
        return {"path": path, "n": n, "pad": "x" * 20000 + str(n)}  # MARK:entry
    """


def _app(head, tail):
    """An app's source: its imports, HELPER, then its handlers."""
    return "\n".join(textwrap.dedent(x).strip("\n") + "\n"
                     for x in (head, HELPER, tail))


FLASK_APP = _app("""
    import json

    from flask import Flask, request

    app = Flask(__name__)
    """, """


    @app.route("/health")
    def health():
        return "ok"


    @app.route("/leak/<int:n>")
    def leak(n):
        HISTORY.append(make_entry(request.path, n))  # MARK:keep
        PARSED.append(json.loads('{"k": "%s"}' % ("z" * 3000)))  # MARK:lib
        return "ok"
    """)

FASTAPI_APP = _app("""
    import json

    from fastapi import FastAPI, Request

    app = FastAPI()
    """, """


    @app.get("/health")
    async def health():
        return {"ok": True}


    @app.get("/leak/{n}")
    async def leak(n: int, request: Request):
        HISTORY.append(make_entry(request.url.path, n))  # MARK:keep
        PARSED.append(json.loads('{"k": "%s"}' % ("z" * 3000)))  # MARK:lib
        return {"n": len(HISTORY)}
    """)

AIOHTTP_APP = _app("""
    import json
    import sys

    from aiohttp import web

    """, """


    async def health(request):
        return web.Response(text="ok")


    async def leak(request):
        HISTORY.append(make_entry(request.path, len(HISTORY)))  # MARK:keep
        PARSED.append(json.loads('{"k": "%s"}' % ("z" * 3000)))  # MARK:lib
        return web.Response(text="ok")


    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/leak/{n}", leak)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]),  # MARK:start
                print=None, access_log=None)
    """)

# HTTP/1.1 with keep-alive, enough for wrk: no framework, only asyncio.
ASYNCIO_APP = _app("""
    import asyncio
    import json
    import sys

    """, """


    async def leak(path):
        await asyncio.sleep(0)
        HISTORY.append(make_entry(path, len(HISTORY)))  # MARK:keep
        PARSED.append(json.loads('{"k": "%s"}' % ("z" * 3000)))  # MARK:lib
        return b"ok"


    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                path = head.split(b" ", 2)[1].decode()
                body = await leak(path) if path.startswith("/leak") \\
                    else b"ok"
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n"
                             b"\\r\\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1",
                                            int(sys.argv[1]))
        async with server:
            await server.serve_forever()


    asyncio.run(main())  # MARK:start
    """)


def _require(request, what):
    have = {
        "wrk": shutil.which("wrk"),
        "flask": os.path.exists(GUNICORN) and
        importlib.util.find_spec("flask"),
        "fastapi": os.path.exists(UVICORN) and
        importlib.util.find_spec("fastapi"),
        "aiohttp": importlib.util.find_spec("aiohttp"),
    }
    for w in ("wrk", what):
        if w and not have[w]:
            pytest.skip("%s is not installed (Debian's package)" % w)
    if not MEMHOUND.exists():
        pytest.fail("%s is not built: run make" % MEMHOUND)


def _serve_and_report(procs, tmp_path, argv, port, env=None):
    """Serves, warms up (each route a few times), sends REQUESTS leaky
    requests, stops with SIGTERM; returns (text report, JSON report)."""
    server = Server(procs, tmp_path, argv, tmp_path, env or clean_env())
    try:
        server.wait_serving(port, "/health")
        warm = wrkload.weighted([("/leak/{n}", "leak", ["/leak/1"]),
                                 ("/health", "ordinary", ["/health"])],
                                {"leak": 1, "ordinary": 1})
        _load(procs, port, warm, tmp_path, "warm-up", 2, 20, threads=1)
        cut = time.monotonic() - server.launched
        time.sleep(0.3)
        plan = wrkload.weighted([("/leak/{n}", "leak", ["/leak/7"])],
                                {"leak": 1})
        _load(procs, port, plan, tmp_path, "main", 4, REQUESTS, threads=1)
        time.sleep(1.2)  # a flush in every worker
    finally:
        rc = server.stop()
    assert rc in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
        rc, server.output())
    caps = sorted(str(c) for c in tmp_path.glob("web*.mhc"))
    assert caps, server.output()
    opts = ("--warmup", "%.2fs" % cut)
    return (_text(procs, caps, *opts), _json(procs, caps, *opts),
            _json(procs, caps, *opts, "--by", "stack"))


def _in_loop(frames, app):
    """1 when the stack runs in asyncio's callback dispatch
    (Handle._run) with none of the app's frames inside it."""
    for k, f in enumerate(frames):
        if k and (f.get("file") or "").endswith("/asyncio/events.py") and \
                f.get("function") in ("_run", "Handle._run"):
            return True
        if f.get("file") and same_file(f["file"], app.path):
            return False
    return False


def _check_server(text, rep, stacks, app, handler, what, loop_rows=False):
    growth = rep["growth"]
    assert growth, "%s: no growth: %s" % (what, rep.get("summary"))
    top = growth[0]
    # The allocating line, in the helper; its user frame is itself.
    assert top.get("file") and same_file(top["file"], app.path) and \
        top["line"] == app.lines["entry"], (
            "%s: top growth row is not the helper's line %d:\n%s" % (
                what, app.lines["entry"], _fmt(growth)))
    assert top["user_line"] == app.lines["entry"] and \
        top["function"] == "make_entry", top
    # The line that keeps it: the handler's append, all of it.
    _check_via(top, app, "keep", handler)
    block = _text_block(text, app, "entry")
    assert block[1].strip() == "kept via %s:%d in %s" % (
        app.path, app.lines["keep"], handler), (what, block)

    # A library's allocation in the handler is "called from" the
    # handler's line (not the loop's, nor the server's).
    lib = [s for s in growth if s.get("user_line") == app.lines["lib"] and
           s.get("file") != s.get("user_file")]
    assert lib and same_file(lib[0]["user_file"], app.path) and \
        lib[0]["user_function"] == handler, (
            "%s: no json row called from the handler:\n%s" % (
                what, _fmt(growth, 12)))
    # The line that started the event loop calls nothing that runs in it:
    # what the loop's callbacks allocate outside the app's frames has no
    # user frame (the stack goes on to the `asyncio.run()` line).
    if "start" in app.lines:
        srows = stacks["growth"] + stacks["live"]
        inside = [s for s in srows if _in_loop(s.get("frames") or (), app)]
        # (aiohttp keeps some; a bare asyncio server's are all freed)
        assert inside or not loop_rows, \
            "%s: no stack runs in the loop's dispatch" % what
        started = [s for s in inside if s.get("user_file")]
        assert not started, "%s: loop callbacks called from %s:\n%s" % (
            what, started[0].get("user_file"), _fmt(started))
    return top


def _kept_via(request, procs, tmp_path, need, source, argv, what,
              loop_rows=False):
    """Serves app.py (`source`) with argv(app, port) and checks the
    report."""
    _require(request, need)
    app = Program(tmp_path / "app.py", source)
    port = free_port()
    text, rep, stacks = _serve_and_report(procs, tmp_path, argv(app, port),
                                          port)
    _check_server(text, rep, stacks, app, "leak", what, loop_rows)


def test_flask_gunicorn_kept_via(request, procs, tmp_path):
    _kept_via(request, procs, tmp_path, "flask", FLASK_APP, lambda app, port: [
        GUNICORN, "--workers", "1", "--worker-class", "gthread", "--threads",
        "4", "--bind", "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
        "--log-level", "warning", "app:app"], "flask/gunicorn")


def test_fastapi_uvicorn_kept_via(request, procs, tmp_path):
    _kept_via(request, procs, tmp_path, "fastapi", FASTAPI_APP,
              lambda app, port: [
                  UVICORN, "--app-dir", str(tmp_path), "--host", "127.0.0.1",
                  "--port", str(port), "--no-access-log", "--log-level",
                  "warning", "app:app"], "fastapi/uvicorn")


def test_aiohttp_kept_via(request, procs, tmp_path):
    _kept_via(request, procs, tmp_path, "aiohttp", AIOHTTP_APP,
              lambda app, port: [PY, str(app.path), str(port)], "aiohttp",
              loop_rows=True)


def test_asyncio_server_kept_via(py, request, procs, tmp_path):
    _kept_via(request, procs, tmp_path, None, ASYNCIO_APP,
              lambda app, port: [py, str(app.path), str(port)], "asyncio")
