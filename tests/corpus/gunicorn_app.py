"""Corpus: a per-request leak under real gunicorn, with idle periods.
Truth: leak in every worker that serves requests (~10 KB per request);
the master does not grow.

A WSGI app that remembers every request's rendered page (~10 KB) in a
module-level dict. The corpus runner serves it with Debian's gunicorn
(2 workers) under `memhound run --web`, so requests are tagged, and
drives it in bursts with idle gaps: growth per request is steady, growth
per second is not.
"""
import time

_PAGES = {}


def app(environ, start_response):
    key = "%s?%s@%.9f" % (environ.get("PATH_INFO"),
                          environ.get("QUERY_STRING"), time.time())
    body = ("<p>%s</p>" % key).ljust(10000, " ").encode()
    _PAGES[key] = body  # MARK: leak
    scratch = [key.upper() for _ in range(100)]
    del scratch
    start_response("200 OK", [("Content-Type", "text/html"),
                              ("Content-Length", str(len(body)))])
    return [body]
