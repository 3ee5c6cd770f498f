"""Django findings (docs/findings.md), from watching the running program.

- django-queryset-truthiness: a QuerySet evaluated by `if qs:`, `bool(qs)`,
  `len(qs)`, `x if qs else y` whose rows are then never read (no iteration
  or indexing before it is freed, or before exit). count = rows fetched,
  bytes = what the thread allocated while fetching them.
- django-large-queryset: more than MEMHOUND_DJANGO_ROWS rows (10,000)
  materialized at once by anything else than truthiness or len()
  (iteration, indexing; `.iterator()` does not materialize).
- django-debug-query-log: DEBUG=True and queries run outside a Django
  request (no request_started without its request_finished in this thread
  or task), so the connection's queries_log is never reset; reported when
  it passes 1,000, 2,000, 4,000, ... entries.

A finding points at the user's line: the first frame outside Django,
memhound and the standard library. The hot paths (every QuerySet fetch,
every query under DEBUG) do a few attribute reads and one or two calls into
the agent; the rest runs only when a rule fires.
"""

import os
import sys

from . import _memhound as _agent
from . import _warn

_ROWS = 10000
try:
    _ROWS = max(1, int(os.environ.get("MEMHOUND_DJANGO_ROWS") or _ROWS))
except ValueError:
    pass

_LOG_FIRST = 1000     # queries_log entries before the first report
_PER_SITE = 1000      # findings written per (rule, file, line); then at powers of 2

if _agent is not None and hasattr(_agent, "finding"):
    _finding = _agent.finding
    _thread_allocated = _agent.thread_allocated
else:
    _finding = _thread_allocated = None


def _current_request():
    try:
        return _agent.request_current()
    except Exception:
        return None


# --- the user's line -------------------------------------------------------------

_skip_cache = {}
_skip_dirs = None  # (django, memhound) directories, each ending in os.sep
_stdlib = None


def _init_dirs():
    global _skip_dirs, _stdlib
    dirs = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    django = sys.modules.get("django")
    if django is not None and getattr(django, "__file__", None):
        dirs.append(os.path.dirname(os.path.abspath(django.__file__)) + os.sep)
    _skip_dirs = tuple(dirs)
    _stdlib = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


def _is_skipped(filename):
    skip = _skip_cache.get(filename)
    if skip is not None:
        return skip
    if _skip_dirs is None:
        _init_dirs()
    if filename.startswith("<"):  # <frozen ...>, <string>
        skip = filename.startswith("<frozen")
    elif filename.startswith(_skip_dirs):
        skip = True
    elif filename.startswith(_stdlib):
        rest = filename[len(_stdlib):]
        skip = "site-packages" not in rest and "dist-packages" not in rest
    else:
        skip = False
    if len(_skip_cache) < 4096:
        _skip_cache[filename] = skip
    return skip


def _is_django(filename):
    if _skip_dirs is None:
        _init_dirs()
    return len(_skip_dirs) > 1 and filename.startswith(_skip_dirs[1])


def _user_site(frame):
    """(file, line, function) of the first frame from `frame` outwards
    outside Django, memhound and the stdlib; the outermost one if all are."""
    last = None
    while frame is not None:
        code = frame.f_code
        if not _is_skipped(code.co_filename):
            break
        last = frame
        frame = frame.f_back
    if frame is None:
        frame = last
        if frame is None:
            return "", 0, ""
        code = frame.f_code
    return (code.co_filename, frame.f_lineno or 0,
            getattr(code, "co_qualname", None) or code.co_name)


_site_counts = {}


def _report(rule, site, count, nbytes, detail, request=None):
    """Writes a finding; past _PER_SITE for one (rule, file, line), only at
    powers of two, so a line run in a hot loop cannot flood the capture."""
    if _finding is None:
        return
    key = (rule, site[0], site[1])
    n = _site_counts.get(key, 0) + 1
    if len(_site_counts) < 65536 or key in _site_counts:
        _site_counts[key] = n
    if n > _PER_SITE and n & (n - 1):
        return
    try:
        _finding(rule, site[0], site[1], site[2], count=count, bytes=nbytes,
                 detail=detail, request=request)
    except Exception:
        pass


# --- QuerySet evaluation ------------------------------------------------------------

class _Probe:
    """A QuerySet evaluated for truthiness or len(), waiting to see whether
    its rows are read."""

    __slots__ = ("site", "rows", "nbytes", "detail", "ref", "request")

    def __init__(self, site, rows, nbytes, detail, request):
        self.site = site
        self.rows = rows
        self.nbytes = nbytes
        self.detail = detail
        self.ref = None
        # The finding is written when the QuerySet is freed, often after
        # its request ended: it must name the request that evaluated it.
        self.request = request


_pending = {}  # id(queryset) -> _Probe, while the queryset lives unread
_exit_hooked = False


def _freed(key):
    probe = _pending.pop(key, None)
    if probe is not None:
        _report("django-queryset-truthiness", probe.site, probe.rows,
                probe.nbytes, probe.detail, probe.request)


def _at_exit():
    # Runs before memhound's own exit handler (registered earlier), so the
    # findings reach the capture.
    while _pending:
        try:
            key = next(iter(_pending))
        except (StopIteration, RuntimeError):
            break
        _freed(key)


def _watch(qs, site, rows, nbytes, how):
    global _exit_hooked
    import weakref

    if not _exit_hooked:
        import atexit

        atexit.register(_at_exit)
        _exit_hooked = True
    model = getattr(getattr(qs, "model", None), "__name__", "?")
    detail = ("%s evaluated a QuerySet of %s: %d rows fetched and built, "
              "then never read" % (how, model, rows))
    probe = _Probe(site, rows, nbytes, detail, _current_request())
    key = id(qs)
    probe.ref = weakref.ref(qs, lambda _ref, key=key: _freed(key))
    _pending[key] = probe


def _read(qs):
    # Rows read: the evaluation was not for truthiness alone. Dropping the
    # probe drops its weakref, whose callback then never runs.
    _pending.pop(id(qs), None)


_ITERABLE_KIND = {
    "ModelIterable": "model instances",
    "ValuesIterable": "dicts",
    "ValuesListIterable": "tuples",
    "NamedValuesListIterable": "named tuples",
    "FlatValuesListIterable": "values",
}


def _observe(qs, frame, before, bool_code, len_code):
    """After a fetch: decides which rule, if any, it falls under. `frame`
    called _fetch_all."""
    rows = len(qs._result_cache)
    code = frame.f_code
    if code is bool_code or code is len_code:
        caller = frame.f_back
        # Django's own len(clone) (get()) and the like are not the user's.
        if caller is not None and not _is_django(caller.f_code.co_filename):
            after = _thread_allocated()
            nbytes = after - before if after is not None and after >= before else 0
            how = "`if qs:` / bool(qs)" if code is bool_code else "len(qs)"
            _watch(qs, _user_site(caller), rows, nbytes, how)
            return
    if rows <= _ROWS:
        return
    after = _thread_allocated()
    nbytes = after - before if after is not None and after >= before else 0
    model = getattr(getattr(qs, "model", None), "__name__", "?")
    kind = _ITERABLE_KIND.get(getattr(qs, "_iterable_class", type).__name__, "rows")
    _report("django-large-queryset", _user_site(frame.f_back), rows, nbytes,
            "a QuerySet of %s materialized %d rows as %s at once (more than %d)"
            % (model, rows, kind, _ROWS))


def patch_query(mod):
    """Patches django.db.models.query.QuerySet (once)."""
    if _thread_allocated is None:
        return
    QuerySet = mod.QuerySet
    fetch_all = QuerySet.__dict__["_fetch_all"]
    if getattr(fetch_all, "_memhound_original", None) is not None:
        return
    bool_code = QuerySet.__bool__.__code__
    len_code = QuerySet.__len__.__code__
    it = QuerySet.__iter__
    getitem = QuerySet.__getitem__
    getframe = sys._getframe
    allocated = _thread_allocated

    def _fetch_all(self):
        if self._result_cache is not None:
            return fetch_all(self)
        before = allocated()
        fetch_all(self)
        if before is not None and self._result_cache is not None:
            try:
                _observe(self, getframe(1), before, bool_code, len_code)
            except Exception:
                pass

    def __iter__(self):
        if _pending:
            _read(self)
        return it(self)

    def __getitem__(self, k):
        if _pending:
            _read(self)
        return getitem(self, k)

    for name, new, orig in (("_fetch_all", _fetch_all, fetch_all),
                            ("__iter__", __iter__, it),
                            ("__getitem__", __getitem__, getitem)):
        new._memhound_original = orig
        new.__qualname__ = orig.__qualname__
        new.__doc__ = orig.__doc__
        setattr(QuerySet, name, new)


# --- DEBUG=True query log ------------------------------------------------------------

# Whether a Django request is in progress in this thread or task: set by
# request_started, cleared by request_finished. The receivers cost every
# request a little, so they are connected only once a query is logged
# (DEBUG=True); until then, a memhound request in progress stands for a
# Django one.
_in_request = None  # the ContextVar, once connected
_signals = None     # django.core.signals


def _request_started(**kwargs):
    _in_request.set(True)


def _request_finished(**kwargs):
    _in_request.set(False)


def patch_signals(mod):
    """Notes django.core.signals, for _follow_requests()."""
    global _signals
    _signals = mod


def _follow_requests():
    global _in_request
    import contextvars

    mod = _signals or sys.modules.get("django.core.signals")
    if mod is None:
        return
    try:
        current = _agent.request_current() is not None
    except Exception:
        current = False
    var = contextvars.ContextVar("memhound_django_request", default=False)
    if current:
        var.set(True)
    mod.request_started.connect(_request_started, weak=False,
                                dispatch_uid="memhound.request_started")
    mod.request_finished.connect(_request_finished, weak=False,
                                 dispatch_uid="memhound.request_finished")
    _in_request = var


def _log_bytes(log):
    size = sys.getsizeof
    total = 0
    for entry in list(log):
        total += size(entry)
        for v in entry.values():
            total += size(v)
    return total


def _check_log(db, frame):
    log = db.queries_log
    n = len(log)
    last, nxt = db.__dict__.get("_memhound_log", (0, _LOG_FIRST))
    if n < last:  # reset_queries() ran: start over
        nxt = _LOG_FIRST
    if n >= nxt and not _in_request.get():
        from django.conf import settings

        if settings.DEBUG:
            alias = getattr(db, "alias", "?")
            nbytes = _log_bytes(log)
            maxlen = getattr(log, "maxlen", None)
            _report("django-debug-query-log", _user_site(frame), n, nbytes,
                    "DEBUG=True: connection '%s' holds %d logged queries (~%d bytes) "
                    "run outside a request, where Django never resets the log%s"
                    % (alias, n, nbytes,
                       " (it keeps the last %d)" % maxlen if maxlen else ""))
            while nxt <= n:
                nxt *= 2
    db.__dict__["_memhound_log"] = (n, nxt)


def patch_backend_utils(mod):
    """Patches django.db.backends.utils.CursorDebugWrapper (the cursor
    Django uses only while it logs queries: DEBUG=True), once."""
    if _finding is None:
        return
    Wrapper = mod.CursorDebugWrapper
    getframe = sys._getframe

    def make(orig):
        def run(self, *args, **kwargs):
            if _in_request is None:
                try:
                    _follow_requests()
                except Exception:
                    pass
            try:
                return orig(self, *args, **kwargs)
            finally:
                try:
                    if len(self.db.queries_log) >= _LOG_FIRST and _in_request is not None:
                        _check_log(self.db, getframe(1))
                except Exception:
                    pass
        run._memhound_original = orig
        run.__name__ = orig.__name__
        run.__qualname__ = orig.__qualname__
        return run

    for name in ("execute", "executemany"):
        orig = Wrapper.__dict__.get(name)
        if orig is not None and getattr(orig, "_memhound_original", None) is None:
            setattr(Wrapper, name, make(orig))


def install():
    """Installs the findings for what of Django is imported already (from
    MemhoundMiddleware, or by hand after django.setup())."""
    for name, patch in (("django.core.signals", patch_signals),
                        ("django.db.models.query", patch_query),
                        ("django.db.backends.utils", patch_backend_utils)):
        mod = sys.modules.get(name)
        if mod is None:
            __import__(name)
            mod = sys.modules[name]
        try:
            patch(mod)
        except Exception as exc:
            _warn("cannot watch %s for findings (%s: %s)" % (name, type(exc).__name__, exc))
