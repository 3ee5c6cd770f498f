"""A small Starlette service for tests/py/test_web_servers.py, served by
Debian's uvicorn:

    uvicorn --app-dir tests/apps starlette_app:app --port PORT

The same eleven routes as aiohttp_app.py (asyncplan.py lists them), with
the same awaits in the middle of the work; `activity` keeps a record of
every request in a module-level list that nothing trims.
"""

import asyncio
import hashlib
import json
import time

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

_ACTIVITY = []  # every page view recorded since the process started


async def index(request):
    return PlainTextResponse("shop: %d routes\n" % len(request.app.routes))


async def health(request):
    return JSONResponse({"status": "ok", "time": time.time()})


async def profile(request):
    user = request.path_params["user_id"]
    prefs = {"key%d" % i: "value %d for %d" % (i, user) for i in range(200)}
    await asyncio.sleep(0.001)
    return JSONResponse({"user": user, "prefs": len(prefs),
                         "digest": hashlib.md5(json.dumps(
                             prefs).encode()).hexdigest()})


async def activity(request):
    user = request.path_params["user_id"]
    crumbs = []
    for step in range(60):
        label = "%s step %d user %d" % (request.url.path, step, user)
        crumbs.append(label.ljust(1000, "."))
        if step % 10 == 9:
            await asyncio.sleep(0)  # the session store, in real life
    record = {"user": user, "page": request.query_params.get("page", ""),
              "at": time.time(), "headers": dict(request.headers),
              "crumbs": crumbs}
    _ACTIVITY.append(record)  # MARK:leak
    return JSONResponse({"ok": True, "recorded": len(_ACTIVITY)})


async def item(request):
    item_id = request.path_params["item_id"]
    specs = ["spec %d of item %d" % (i, item_id) for i in range(300)]
    await asyncio.sleep(0)
    return JSONResponse({"item": item_id, "specs": specs[:5],
                         "n": len(specs)})


async def reviews(request):
    item_id = request.path_params["item_id"]
    page = request.path_params["page"]
    rows = [{"item": item_id, "review": page * 20 + i,
             "text": "review text " * 20} for i in range(20)]
    await asyncio.sleep(0.002)
    return JSONResponse({"reviews": rows})


async def search(request):
    q = request.query_params.get("q", "")
    hits = [("%s-%d" % (q, i)).upper() for i in range(500) if i % 7]
    await asyncio.sleep(0)
    return JSONResponse({"q": q, "hits": hits[:10], "n": len(hits)})


async def compute(request):
    n = min(request.path_params["n"], 20000)
    total = sum(i * i for i in range(n))
    return JSONResponse({"n": n, "sum": total})


async def render(request):
    rows = min(request.path_params["rows"], 2000)
    html = "".join("<tr><td>%d</td><td>row %d</td></tr>" % (i, i)
                   for i in range(rows))
    await asyncio.sleep(0)
    return HTMLResponse("<table>%s</table>" % html)


async def slow(request):
    ms = min(request.path_params["ms"], 500)
    buf = bytearray(64 * 1024)
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms, "buffer": len(buf)})


async def echo(request):
    tail = request.path_params["tail"]
    return JSONResponse({"tail": tail, "parts": tail.split("/")})


app = Starlette(routes=[
    Route("/", index),
    Route("/health", health),
    Route("/users/{user_id:int}/profile", profile),
    Route("/users/{user_id:int}/activity", activity),
    Route("/items/{item_id:int}", item),
    Route("/items/{item_id:int}/reviews/{page:int}", reviews),
    Route("/search", search),
    Route("/compute/{n:int}", compute),
    Route("/render/{rows:int}", render),
    Route("/slow/{ms:int}", slow),
    Route("/echo/{tail:path}", echo),
])
