"""Django middleware for per-request attribution (docs/web.md).

    MIDDLEWARE = ["memhound.django.MemhoundMiddleware", ...]   # first

Each request is named by its URL pattern (request.resolver_match.route,
e.g. "reports/<int:year>/"), or the view's dotted name when the pattern is
empty; "(not found)" when nothing resolved. Works in sync and async
stacks. Also installs the Django findings (memhound.django_findings).
Under `memhound run --web` nothing needs adding: Django's handler is
patched instead, and this middleware, if present, only names the request.
"""

import asyncio

from . import django_findings, web

__all__ = ["MemhoundMiddleware"]

try:  # asgiref 3.6+: how Django marks an async __call__
    from asgiref.sync import markcoroutinefunction as _mark_coroutine
except ImportError:
    def _mark_coroutine(obj):
        marker = getattr(asyncio.coroutines, "_is_coroutine", None)
        if marker is not None:  # what asyncio.iscoroutinefunction() looks for
            obj._is_coroutine = marker
        else:
            import inspect
            inspect.markcoroutinefunction(obj)
        return obj


class MemhoundMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        web._counting()
        self._async = asyncio.iscoroutinefunction(get_response)
        if self._async:
            _mark_coroutine(self)
        try:
            django_findings.install()
        except Exception as exc:
            django_findings._warn("cannot install the Django findings: %s" % (exc,))

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        req = web._begin()
        if req is None:
            response = self.get_response(request)
            _name_outer(request, response)
            return response
        response = None
        try:
            response = self.get_response(request)
            return response
        finally:
            web._name_django(req, request, response)
            web._end(req)

    async def __acall__(self, request):
        req = web._begin()
        if req is None:
            response = await self.get_response(request)
            _name_outer(request, response)
            return response
        response = None
        try:
            response = await self.get_response(request)
            return response
        finally:
            web._name_django(req, request, response)
            web._end(req)


def _name_outer(request, response):
    """Names the request an outer layer (WSGI or ASGI middleware, the
    patched handler) began, if one did."""
    req = web._current()
    if req is not None:
        web._name_django(req, request, response)
