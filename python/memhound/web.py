"""Per-request memory attribution for web services and jobs (docs/web.md).

The outermost layer that sees a request calls the agent's request_begin()
and request_end(); until the end, the agent tags the samples it takes in
that thread or asyncio task (and the tasks it starts) with the request.
Inner layers only name it: a framework's route pattern, never the raw URL.

    WSGIMiddleware(app), ASGIMiddleware(app)    any WSGI / ASGI app
    aiohttp_middleware                          web.Application(middlewares=[...])
    init_flask(app)                             Flask
    memhound.django.MemhoundMiddleware          Django's MIDDLEWARE
    request(name)                               a job: `with` or a decorator
    name_request(endpoint)                      name the current request
    instrument()                                all of it, without editing the
                                                program (`memhound run --web`)

The target must never suffer: when memhound is not recording, or there is
no agent, every layer is a pass-through, and no error of ours reaches the
application. Importing this module imports no framework; each is patched
after it is imported, if it ever is.
"""

import os
import sys

from . import _memhound as _agent  # None when no agent loads (memhound/__init__)
from . import _warn

# aiohttp_middleware is public too, but made on first access (it needs
# aiohttp), so `import *` leaves it out.
__all__ = [
    "ASGIMiddleware",
    "WSGIMiddleware",
    "init_flask",
    "instrument",
    "name_request",
    "request",
]

OTHER = "(other)"          # a name past the cap
NOT_FOUND = "(not found)"  # no route matched (404)
_MAX_NAME = 200            # characters kept of an endpoint name


def _env_int(name, default):
    try:
        value = int(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


_MAX_ENDPOINTS = _env_int("MEMHOUND_MAX_ENDPOINTS", 200)

if _agent is not None and hasattr(_agent, "request_begin"):
    _request_begin = _agent.request_begin
    _request_current = _agent.request_current
    _request_end = _agent.request_end
else:  # no agent, or one built before requests existed
    def _request_begin():
        return None

    _request_current = _request_begin

    def _request_end(req):
        return None


def _counting():
    """Tell the agent this process counts requests from now on: its
    `stats` says web=1, which guard's --max-requests waits for before it
    trusts requests=. Called where a layer is installed (instrument(), a
    middleware made), not at the first request, so a worker that inherits
    an instrumented master says so from its first answer."""
    if _agent is not None and hasattr(_agent, "count_requests"):
        try:
            _agent.count_requests()
        except Exception:
            pass


# --- guarded calls into the agent --------------------------------------------

def _begin():
    try:
        return _request_begin()
    except Exception:
        return None


def _current():
    try:
        return _request_current()
    except Exception:
        return None


def _end(req):
    try:
        _request_end(req)
    except Exception:
        pass


_names = {}  # endpoint names given out in this process (the cap)


def _capped(name):
    """`name` while fewer than MEMHOUND_MAX_ENDPOINTS names are in use,
    "(other)" for new ones past that. Our own "(...)" names are free."""
    if name in _names:
        return name
    return _capped_new(name)


def _capped_new(name):
    if not isinstance(name, str):
        name = str(name)
    if len(name) > _MAX_NAME:
        name = name[:_MAX_NAME]
        if name in _names:
            return name
    if name[:1] == "(" and name[-1:] == ")":
        return name
    if len(_names) >= _MAX_ENDPOINTS:
        return OTHER
    _names[name] = None
    return name


def _name(req, name):
    try:
        req.endpoint = name if name in _names else _capped_new(name)
    except Exception:
        pass


def name_request(endpoint):
    """Names the current request (a route pattern such as "/users/{id}",
    never a raw URL). Returns False when there is none: not recording, or
    no request begun in this thread or task."""
    req = _current()
    if req is None:
        return False
    _name(req, endpoint)
    return True


# --- a path as a template -----------------------------------------------------

_HEX = frozenset("0123456789abcdefABCDEF")
_UUID_DASHES = (8, 13, 18, 23)


def _is_id(seg):
    if seg.isdigit():
        return True
    n = len(seg)
    if n == 36 and all(seg[i] == "-" for i in _UUID_DASHES):
        return _HEX.issuperset(seg.replace("-", ""))
    return n >= 16 and _HEX.issuperset(seg) and not seg.isalpha()


def _template(path):
    """'/users/42/orders/9f86d081884c7d65' -> '/users/{id}/orders/{id}':
    numbers, UUIDs and long hex strings become {id}, so a URL that names
    an object does not become an endpoint of its own."""
    if not path:
        return "/"
    if not isinstance(path, str):
        try:
            path = path.decode("latin-1")
        except Exception:
            return "(unnamed)"
    parts = path.split("/")
    changed = False
    for i, seg in enumerate(parts):
        if seg and _is_id(seg):
            parts[i] = "{id}"
            changed = True
    return "/".join(parts) if changed else path


# Requests whose WSGI app has returned, until the server closes the
# response: request -> path. A server (or test client) that never closes
# it would leave the request current in its thread; the next WSGI call
# there ends it instead (_begin_wsgi).
_awaiting_close = {}


def _begin_wsgi():
    req = _begin()
    if req is None and _awaiting_close:
        cur = _current()
        if cur is not None and cur in _awaiting_close:
            _finish(cur, _awaiting_close.get(cur))
            req = _begin()
    return req


def _finish(req, path):
    """Ends `req`, named by its path's template when no framework layer
    named it."""
    _awaiting_close.pop(req, None)
    try:
        if req.endpoint is None:
            req.endpoint = _capped(_template(path))
    except Exception:
        pass
    _end(req)


# --- WSGI -----------------------------------------------------------------------

class _Response:
    """The app's response iterable; the request ends when the server closes
    it (PEP 3333), after the body is sent. Iteration goes to the app's own
    iterator, so it costs nothing per chunk."""

    __slots__ = ("_result", "_req", "_path")

    def __init__(self, result, req, path):
        self._result = result
        self._req = req
        self._path = path

    def __iter__(self):
        return iter(self._result)

    def close(self):
        req = self._req
        if req is None:
            return
        self._req = None
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            _finish(req, self._path)

    def __del__(self):
        # A server that never calls close() must not leave the request
        # current in its thread forever.
        req = self._req
        if req is not None:
            self._req = None
            _finish(req, self._path)


def _closing_file(result, req, path):
    """A wsgi.file_wrapper response stays itself (the server sends it with
    sendfile when it recognizes it); its close() ends the request."""
    inner = getattr(result, "close", None)

    def close():
        try:
            if inner is not None:
                inner()
        finally:
            _finish(req, path)

    try:
        result.close = close
    except Exception:
        _finish(req, path)
    return result


def _wsgi_response(result, req, environ, path):
    _awaiting_close[req] = path
    fw = environ.get("wsgi.file_wrapper")
    if fw is not None and isinstance(fw, type) and isinstance(result, fw):
        return _closing_file(result, req, path)
    return _Response(result, req, path)


def _app_attr(wrapper, name):
    try:
        app = wrapper.__dict__["app"]
    except KeyError:
        raise AttributeError(name) from None
    return getattr(app, name)


class WSGIMiddleware:
    """Wraps a WSGI app: each call is a request, ended when the server
    closes the response. Named by the framework inside when it names it
    (Django, Flask), else by the path as a template (/users/{id})."""

    def __init__(self, app):
        self.app = app
        _counting()

    def __call__(self, environ, start_response):
        req = _begin_wsgi()
        if req is None:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO")
        try:
            result = self.app(environ, start_response)
        except BaseException:
            _finish(req, path)
            raise
        return _wsgi_response(result, req, environ, path)

    def __getattr__(self, name):  # the app's own attributes stay reachable
        return _app_attr(self, name)


# --- ASGI -----------------------------------------------------------------------

_ASGI_TYPES = ("http", "websocket")
_route_tables = {}  # id(Starlette router) -> (router, {endpoint: [(path, params)]})


def _starlette_table(router):
    table = {}

    def walk(routes, prefix, depth):
        if depth > 8:
            return
        for route in routes:
            path = getattr(route, "path", None)
            if hasattr(route, "endpoint") and path is not None:  # Route, WebSocketRoute
                keys = frozenset(getattr(route, "param_convertors", None) or ())
                try:
                    table.setdefault(route.endpoint, []).append((prefix + path, keys))
                except TypeError:  # an unhashable endpoint
                    pass
                continue
            sub = getattr(route, "routes", None)  # Mount, Host
            mount = prefix + (path or "")
            if path is not None:  # Mount: its app is the endpoint of what it serves
                try:
                    table.setdefault(route.app, []).append((mount or "/", None))
                except (TypeError, AttributeError):
                    pass
            if sub:
                walk(sub, mount, depth + 1)

    walk(getattr(router, "routes", None) or (), "", 0)
    return table


def _starlette_route(router, endpoint, scope):
    """The route path Starlette matched (its router leaves the endpoint in
    the scope, 0.26 not the route), or None."""
    entry = _route_tables.get(id(router))
    if entry is None or entry[0] is not router:
        if len(_route_tables) >= 16:
            _route_tables.clear()
        entry = (router, _starlette_table(router))
        _route_tables[id(router)] = entry
    try:
        found = entry[1].get(endpoint)
    except TypeError:
        return None
    if not found:
        return None
    if len(found) > 1:  # one endpoint under several paths: the parameters tell
        params = frozenset(scope.get("path_params") or ())
        for path, keys in found:
            if keys == params:
                return path
    return found[0][0]


def _asgi_name(scope, path):
    route = scope.get("route")  # FastAPI and later Starlette versions
    if route is not None:
        name = getattr(route, "path", None)
        if isinstance(name, str):
            return name
    router = scope.get("router")
    if router is not None:  # Starlette's
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return NOT_FOUND
        name = _starlette_route(router, endpoint, scope)
        if name:
            return name
    return _template(path)


class ASGIMiddleware:
    """Wraps an ASGI 3 app: each http or websocket connection is a request
    (lifespan passes through). Named by the route when the app put it in
    the scope (Starlette, FastAPI), else by the path as a template."""

    def __init__(self, app):
        self.app = app
        _counting()

    async def __call__(self, scope, receive, send):
        if scope.get("type") not in _ASGI_TYPES:
            return await self.app(scope, receive, send)
        req = _begin()
        if req is None:
            return await self.app(scope, receive, send)
        path = scope.get("path")
        try:
            return await self.app(scope, receive, send)
        finally:
            try:
                if req.endpoint is None:
                    req.endpoint = _capped(_asgi_name(scope, path))
            except Exception:
                pass
            _end(req)

    def __getattr__(self, name):
        return _app_attr(self, name)


# --- aiohttp --------------------------------------------------------------------

def _aiohttp_name(request):
    info = request.match_info
    resource = info.route.resource
    if resource is None:
        exc = getattr(info, "http_exception", None)
        if exc is not None and getattr(exc, "status", 404) == 405:
            return "(method not allowed)"
        return NOT_FOUND
    return resource.canonical


def _make_aiohttp_middleware():
    from aiohttp import web
    _counting()

    @web.middleware
    async def memhound_middleware(request, handler):
        req = _begin()
        if req is None:
            req = _current()
            if req is not None:  # an outer layer owns it: only name it
                try:
                    _name(req, _aiohttp_name(request))
                except Exception:
                    pass
            return await handler(request)
        try:
            try:
                _name(req, _aiohttp_name(request))
            except Exception:
                pass
            return await handler(request)
        finally:
            _end(req)

    return memhound_middleware


def __getattr__(name):
    # aiohttp_middleware is made on first use, so that importing this
    # module does not import aiohttp.
    if name == "aiohttp_middleware":
        mw = _make_aiohttp_middleware()
        globals()[name] = mw
        return mw
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# --- Flask ----------------------------------------------------------------------

_flask_request = None


def _flask_name():
    global _flask_request
    if _flask_request is None:
        from flask import request as _flask_request
    rule = _flask_request.url_rule
    return rule.rule if rule is not None else NOT_FOUND


def _flask_before_request():
    req = _current()
    if req is not None:
        try:
            _name(req, _flask_name())
        except Exception:
            pass


def init_flask(app):
    """Attributes a Flask app's requests to its URL rules: wraps
    app.wsgi_app with WSGIMiddleware and names each request first thing
    in it. Returns the app."""
    if not isinstance(app.wsgi_app, WSGIMiddleware):
        app.wsgi_app = WSGIMiddleware(app.wsgi_app)
    funcs = app.before_request_funcs.setdefault(None, [])
    if _flask_before_request not in funcs:
        funcs.insert(0, _flask_before_request)
    return app


# --- Django (the middleware itself is memhound.django.MemhoundMiddleware) --------

def _name_django(req, request, response):
    # The route pattern (Django 2.2+), else the view's dotted name (an
    # empty route: path("", view)); "(not found)" when nothing resolved.
    try:
        match = request.resolver_match
        if match is None:
            status = getattr(response, "status_code", 404)
            name = NOT_FOUND if status == 404 else "(no view)"
        else:
            name = match.route or match._func_path or "(unnamed)"
        req.endpoint = name if name in _names else _capped_new(name)
    except Exception:
        pass


# --- jobs -----------------------------------------------------------------------

class request:
    """A job as a request: `with memhound.request("crawl item"):` or
    `@memhound.request("nightly report")` (functions and coroutine
    functions). Inside a request already begun (a web request calling the
    job's function), it does nothing: that request keeps its own name."""

    __slots__ = ("name", "_owned")

    def __init__(self, name):
        if not isinstance(name, str):
            raise TypeError("request() needs a str name, not %s" % type(name).__name__)
        self.name = name
        self._owned = []  # requests this object began and has not ended

    def __enter__(self):
        req = _begin()
        if req is None:
            return None
        _name(req, self.name)
        self._owned.append(req)
        return req

    def __exit__(self, *exc):
        owned = self._owned
        if not owned:
            return False
        cur = _current()
        # One object may be entered in several threads or tasks at once:
        # end the one current here.
        for i in range(len(owned) - 1, -1, -1):
            if owned[i] is cur:
                del owned[i]
                _end(cur)
                break
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, *exc):
        return self.__exit__(*exc)

    def __call__(self, func):
        import functools
        import inspect

        name = self.name
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def job(*args, **kwargs):
                with request(name):
                    return await func(*args, **kwargs)
        else:
            @functools.wraps(func)
            def job(*args, **kwargs):
                with request(name):
                    return func(*args, **kwargs)
        return job


# --- zero-code-change instrumentation --------------------------------------------

def _patched(obj, attr, make):
    """Replaces obj.attr with make(original) once; a patch carries
    `_memhound_original`."""
    orig = obj.__dict__.get(attr) if isinstance(obj, type) else getattr(obj, attr, None)
    if orig is None or getattr(orig, "_memhound_original", None) is not None:
        return False
    new = make(orig)
    new._memhound_original = orig
    for a in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(new, a, getattr(orig, a))
        except (AttributeError, TypeError):
            pass
    setattr(obj, attr, new)
    return True


def _patch_django_handler(mod):
    # Every Django request passes here: the agent's functions are called
    # directly, guarded inline (a call less each).
    def sync(orig):
        def get_response(self, request):
            try:
                req = _request_begin()
            except Exception:
                req = None
            if req is None:
                response = orig(self, request)
                try:
                    req = _request_current()
                except Exception:
                    req = None
                if req is not None:
                    _name_django(req, request, response)
                return response
            try:
                response = orig(self, request)
            except BaseException:
                _name_django(req, request, None)
                _end(req)
                raise
            _name_django(req, request, response)
            try:
                _request_end(req)
            except Exception:
                pass
            return response
        return get_response

    def asynchronous(orig):
        async def get_response_async(self, request):
            req = _begin()
            if req is None:
                response = await orig(self, request)
                req = _current()
                if req is not None:
                    _name_django(req, request, response)
                return response
            response = None
            try:
                response = await orig(self, request)
                return response
            finally:
                _name_django(req, request, response)
                _end(req)
        return get_response_async

    _patched(mod.BaseHandler, "get_response", sync)
    if "get_response_async" in mod.BaseHandler.__dict__:
        _patched(mod.BaseHandler, "get_response_async", asynchronous)


def _patch_flask(mod):
    def wsgi(orig):
        def wsgi_app(self, environ, start_response):
            req = _begin_wsgi()
            if req is None:
                return orig(self, environ, start_response)
            path = environ.get("PATH_INFO")
            try:
                result = orig(self, environ, start_response)
            except BaseException:
                _finish(req, path)
                raise
            return _wsgi_response(result, req, environ, path)
        return wsgi_app

    def dispatch(orig):
        def full_dispatch_request(self):
            _flask_before_request()
            return orig(self)
        return full_dispatch_request

    _patched(mod.Flask, "wsgi_app", wsgi)
    _patched(mod.Flask, "full_dispatch_request", dispatch)


def _patch_aiohttp(mod):
    def make(orig):
        def pre_freeze(self):
            if not getattr(self, "_pre_frozen", True):
                try:
                    mw = globals().get("aiohttp_middleware") or __getattr__("aiohttp_middleware")
                    if mw not in self._middlewares:
                        self._middlewares.insert(0, mw)
                except Exception:
                    pass
            return orig(self)
        return pre_freeze

    _patched(mod.Application, "pre_freeze", make)


def _patch_uvicorn(mod):
    def make(orig):
        def load(self):
            orig(self)
            app = getattr(self, "loaded_app", None)
            if app is not None and not isinstance(app, ASGIMiddleware):
                self.loaded_app = ASGIMiddleware(app)
        return load

    _patched(mod.Config, "load", make)


_GUNICORN_WSGI_WORKERS = ("gunicorn.workers.sync", "gunicorn.workers.gthread",
                          "gunicorn.workers.base_async")


def _patch_gunicorn(mod):
    def make(orig):
        def load_wsgi(self):
            orig(self)
            # Only workers that serve WSGI: aiohttp's and uvicorn's gunicorn
            # workers load their app the same way.
            if any(c.__module__ in _GUNICORN_WSGI_WORKERS for c in type(self).__mro__):
                app = getattr(self, "wsgi", None)
                if app is not None and not isinstance(app, WSGIMiddleware):
                    self.wsgi = WSGIMiddleware(app)
        return load_wsgi

    _patched(mod.Worker, "load_wsgi", make)


def _django_findings(attr):
    def patch(mod):
        from . import django_findings
        getattr(django_findings, attr)(mod)
    return patch


# module name -> patch, applied once the module has executed
_PATCHES = {
    "django.core.handlers.base": _patch_django_handler,
    "django.core.signals": _django_findings("patch_signals"),
    "django.db.models.query": _django_findings("patch_query"),
    "django.db.backends.utils": _django_findings("patch_backend_utils"),
    "flask.app": _patch_flask,
    "aiohttp.web_app": _patch_aiohttp,
    "uvicorn.config": _patch_uvicorn,
    "gunicorn.workers.base": _patch_gunicorn,
}


def _apply(name, module):
    patch = _PATCHES.get(name)
    if patch is None:
        return
    try:
        patch(module)
    except Exception as exc:  # a version we do not know: record without it
        _warn("cannot instrument %s (%s: %s); its requests are not attributed"
              % (name, type(exc).__name__, exc))


class _PostImportFinder:
    """A sys.meta_path entry that lets the other finders find one of the
    modules in _PATCHES, then has the loader patch the module right after
    it executes. Any other import is not looked at."""

    def __init__(self):
        self._busy = set()  # names being looked up (the import lock of
                            # each name serializes threads)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _PATCHES or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_patch(module):
            try:
                del loader.exec_module  # the class's own, for later imports
            except AttributeError:
                pass
            exec_module(module)
            _apply(fullname, module)

        try:
            loader.exec_module = exec_and_patch
        except Exception:  # a loader that takes no attributes: unpatched
            pass
        return spec

    def invalidate_caches(self):
        pass


_finder = None


def instrument():
    """Attributes memory to requests in whatever web framework and server
    this process runs, without editing it (`memhound run --web`): Django,
    Flask, aiohttp, uvicorn's ASGI app, gunicorn's WSGI app; installs the
    Django findings. Frameworks already imported are patched now, the
    others when they are imported. Idempotent."""
    global _finder
    _counting()
    if _finder is None:
        _finder = _PostImportFinder()
        sys.meta_path.insert(0, _finder)
    for name in _PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _apply(name, module)
