"""The routes the two async test apps (aiohttp_app.py, starlette_app.py)
serve, with concrete URLs for a load generator: the same API in both, each
route pattern in its framework's syntax. Plain Python: no framework import.

routes(framework) -> [(pattern, role, [url, ...])], role "leak" for the
route that keeps a record of every request, "ordinary" for the rest.
"""

_ROUTES = [
    # (aiohttp pattern, starlette pattern, role, urls)
    ("/", "/", "ordinary", ["/"]),
    ("/health", "/health", "ordinary", ["/health"]),
    ("/users/{user_id}/profile", "/users/{user_id:int}/profile", "ordinary",
     ["/users/%d/profile" % u for u in (1, 77, 4040)]),
    ("/users/{user_id}/activity", "/users/{user_id:int}/activity", "leak",
     ["/users/%d/activity?page=%s" % (u, p) for u, p in (
         (3, "home"), (512, "cart"), (90210, "search"), (7, "checkout"))]),
    ("/items/{item_id}", "/items/{item_id:int}", "ordinary",
     ["/items/%d" % i for i in (10, 2020, 31337)]),
    ("/items/{item_id}/reviews/{page}",
     "/items/{item_id:int}/reviews/{page:int}", "ordinary",
     ["/items/%d/reviews/%d" % ip for ip in ((10, 1), (88, 4))]),
    ("/search", "/search", "ordinary",
     ["/search?q=%s" % q for q in ("lamp", "desk", "chair")]),
    ("/compute/{n}", "/compute/{n:int}", "ordinary",
     ["/compute/%d" % n for n in (200, 3000)]),
    ("/render/{rows}", "/render/{rows:int}", "ordinary",
     ["/render/%d" % n for n in (5, 200)]),
    ("/slow/{ms}", "/slow/{ms:int}", "ordinary", ["/slow/20", "/slow/50"]),
    # aiohttp registers "/echo/{tail:.*}" and names it by its canonical
    # form, without the regex.
    ("/echo/{tail}", "/echo/{tail:path}", "ordinary",
     ["/echo/a/b", "/echo/x/y/z/w"]),
]

# What the leaky routes keep per request (these apps' and the Django
# site's): 60 strings of 1,000 characters (1,049 bytes each as str
# objects), the list, the headers dict and the record: about 65 KB.
LEAK_BYTES = 60 * 1049 + 2000


def routes(framework):
    col = {"aiohttp": 0, "starlette": 1}[framework]
    return [(r[col], r[2], r[3]) for r in _ROUTES]
