#!/usr/bin/python3
"""A small aiohttp service for tests/py/test_web_servers.py, served by
aiohttp's own runner:

    aiohttp_app.py PORT

Eleven routes (asyncplan.py lists them). Handlers await in the middle of
their work, as real ones await a database or a cache, so under load many
requests are in progress at once in the one thread. `activity` keeps a
record of every request in a module-level list that nothing trims.
"""

import asyncio
import hashlib
import json
import sys
import time

from aiohttp import web

_ACTIVITY = []  # every page view recorded since the process started


async def index(request):
    return web.Response(text="shop: %d routes\n" % len(request.app.router))


async def health(request):
    return web.json_response({"status": "ok", "time": time.time()})


async def profile(request):
    user = int(request.match_info["user_id"])
    prefs = {"key%d" % i: "value %d for %d" % (i, user) for i in range(200)}
    await asyncio.sleep(0.001)
    return web.json_response({"user": user, "prefs": len(prefs),
                              "digest": hashlib.md5(json.dumps(
                                  prefs).encode()).hexdigest()})


async def activity(request):
    user = int(request.match_info["user_id"])
    crumbs = []
    for step in range(60):
        label = "%s step %d user %d" % (request.path, step, user)
        crumbs.append(label.ljust(1000, "."))
        if step % 10 == 9:
            await asyncio.sleep(0)  # the session store, in real life
    record = {"user": user, "page": request.query.get("page", ""),
              "at": time.time(), "headers": dict(request.headers),
              "crumbs": crumbs}
    _ACTIVITY.append(record)  # MARK:leak
    return web.json_response({"ok": True, "recorded": len(_ACTIVITY)})


async def item(request):
    item_id = int(request.match_info["item_id"])
    specs = ["spec %d of item %d" % (i, item_id) for i in range(300)]
    await asyncio.sleep(0)
    return web.json_response({"item": item_id, "specs": specs[:5],
                              "n": len(specs)})


async def reviews(request):
    item_id = int(request.match_info["item_id"])
    page = int(request.match_info["page"])
    rows = [{"item": item_id, "review": page * 20 + i,
             "text": "review text " * 20} for i in range(20)]
    await asyncio.sleep(0.002)
    return web.json_response({"reviews": rows})


async def search(request):
    q = request.query.get("q", "")
    hits = [("%s-%d" % (q, i)).upper() for i in range(500) if i % 7]
    await asyncio.sleep(0)
    return web.json_response({"q": q, "hits": hits[:10], "n": len(hits)})


async def compute(request):
    n = min(int(request.match_info["n"]), 20000)
    total = sum(i * i for i in range(n))
    return web.json_response({"n": n, "sum": total})


async def render(request):
    rows = min(int(request.match_info["rows"]), 2000)
    html = "".join("<tr><td>%d</td><td>row %d</td></tr>" % (i, i)
                   for i in range(rows))
    await asyncio.sleep(0)
    return web.Response(text="<table>%s</table>" % html,
                        content_type="text/html")


async def slow(request):
    ms = min(int(request.match_info["ms"]), 500)
    buf = bytearray(64 * 1024)
    await asyncio.sleep(ms / 1000)
    return web.json_response({"slept_ms": ms, "buffer": len(buf)})


async def echo(request):
    tail = request.match_info["tail"]
    return web.json_response({"tail": tail, "parts": tail.split("/")})


def make_app():
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/users/{user_id}/profile", profile)
    app.router.add_get("/users/{user_id}/activity", activity)
    app.router.add_get("/items/{item_id}", item)
    app.router.add_get("/items/{item_id}/reviews/{page}", reviews)
    app.router.add_get("/search", search)
    app.router.add_get("/compute/{n}", compute)
    app.router.add_get("/render/{rows}", render)
    app.router.add_get("/slow/{ms}", slow)
    app.router.add_get("/echo/{tail:.*}", echo)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]),
                access_log=None, print=None, backlog=512)
