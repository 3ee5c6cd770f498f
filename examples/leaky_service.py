"""A small JSON/HTML service that leaks, for `make demo`.

It is what a real leak tends to look like: a threaded WSGI app (stdlib
only) with three endpoints and a module-level memo of rendered page
fragments. The memo is keyed by a string that includes the request id, so
it never hits and never evicts: every /profile request adds a few KB that
stay alive for good. Around it, /search makes plenty of short-lived objects
and /export builds a large temporary table (a peak that is freed again), so
the leak is not the only thing allocating, nor the biggest thing alive at
any one moment.

The script drives its own load (a few client threads over loopback) for a
bounded time and number of requests, then shuts down and exits, so

    memhound run --force -o build/demo.mhc -- python3 examples/leaky_service.py
    memhound report build/demo.mhc

shows the memo's fill line as the top growth site.

    python3 examples/leaky_service.py [--seconds 12] [--clients 4]
"""

import argparse
import http.client
import json
import random
import socketserver
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# --- the application -------------------------------------------------------

USERS = {
    uid: {"id": uid, "name": "user%04d" % uid, "plan": random.choice(
        ["free", "team", "business"]), "tags": ["t%d" % (uid % 7)]}
    for uid in range(1, 501)
}

# Rendered fragments, so a profile page is "cheap" the next time. The key
# includes the request id, so the next time never comes.
_FRAGMENT_CACHE = {}
_FRAGMENT_LOCK = threading.Lock()

_TEMPLATE = (
    "<section class='profile' data-request='{rid}'>"
    "<h1>{name}</h1><p>plan: {plan}</p><ul>{items}</ul>"
    "<footer>{footer}</footer></section>"
)


def _render_fragment(user, rid):
    items = "".join("<li>%s</li>" % t for t in user["tags"] * 120)
    footer = "rendered for %s at %.6f " % (user["name"], time.time())
    fields = {"rid": rid, "name": user["name"], "plan": user["plan"],
              "items": items, "footer": footer * 60}
    return _TEMPLATE.format(**fields)


def _cached_fragment(user, rid):
    key = "profile:%d:%s" % (user["id"], rid)
    with _FRAGMENT_LOCK:
        html = _FRAGMENT_CACHE.get(key)
        if html is None:
            html = _render_fragment(user, rid)
            _FRAGMENT_CACHE[key] = html
    return html


def profile_view(environ, uid):
    user = USERS.get(uid)
    if user is None:
        return "404 Not Found", "text/plain", b"no such user"
    rid = environ.get("HTTP_X_REQUEST_ID", "-")
    body = _cached_fragment(user, rid).encode()
    return "200 OK", "text/html", body


def search_view(environ):
    # Transient noise: parse, filter, sort, serialise, all dropped.
    query = environ.get("QUERY_STRING", "")
    term = query.partition("=")[2] or "user"
    hits = [dict(u, score=len(u["name"]) * random.random())
            for u in USERS.values() if term in u["name"]]
    hits.sort(key=lambda h: h["score"], reverse=True)
    return "200 OK", "application/json", json.dumps(hits[:20]).encode()


def export_view(environ):
    # A big temporary table (~20 MB while it lives), summarised and freed.
    rows = [("row%06d" % i, i, i * 1.5, "x" * 64) for i in range(120_000)]
    total = sum(r[1] for r in rows)
    del rows
    body = json.dumps({"rows": 120_000, "total": total}).encode()
    return "200 OK", "application/json", body


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/profile/"):
        status, ctype, body = profile_view(environ, int(path[9:] or 0))
    elif path == "/search":
        status, ctype, body = search_view(environ)
    elif path == "/export":
        status, ctype, body = export_view(environ)
    else:
        status, ctype, body = "404 Not Found", "text/plain", b"not found"
    start_response(status, [("Content-Type", ctype),
                            ("Content-Length", str(len(body)))])
    return [body]


# --- serving and load ------------------------------------------------------

class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _client(port, deadline, budget, counts, seed):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while time.monotonic() < deadline and n < budget:
        r = rng.random()
        if r < 0.45:
            path = "/profile/%d" % rng.randint(1, 500)
        elif r < 0.995:
            path = "/search?q=user%d" % rng.randint(0, 49)
        else:
            path = "/export"
        headers = {"X-Request-Id": "%d-%d" % (seed, n)}
        try:
            conn.request("GET", path, headers=headers)
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        n += 1
    conn.close()
    counts[seed] = n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=12.0,
                    help="how long to drive load (default 12)")
    ap.add_argument("--clients", type=int, default=4,
                    help="client threads (default 4)")
    ap.add_argument("--max-requests", type=int, default=60_000,
                    help="cap on requests in all (default 60000)")
    args = ap.parse_args(argv)

    server = make_server("127.0.0.1", 0, app, server_class=_Server,
                         handler_class=_QuietHandler)
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever,
                               kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    print("leaky_service: serving on 127.0.0.1:%d for %.0f s with %d "
          "clients" % (port, args.seconds, args.clients), flush=True)

    start = time.monotonic()
    deadline = start + args.seconds
    counts = {}
    clients = [threading.Thread(target=_client,
                                args=(port, deadline,
                                      args.max_requests // args.clients,
                                      counts, i))
               for i in range(args.clients)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    server.shutdown()
    server.server_close()
    elapsed = time.monotonic() - start
    cached = sum(len(v) for v in _FRAGMENT_CACHE.values())
    print("leaky_service: %d requests in %.1f s; fragment cache holds %d "
          "entries, %.1f MB of text" % (sum(counts.values()), elapsed,
                                       len(_FRAGMENT_CACHE), cached / 1e6),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
