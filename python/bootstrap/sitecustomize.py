# memhound's bootstrap. `memhound run` puts this directory first on
# PYTHONPATH, so the site module imports this file in every Python process
# the command starts (subprocesses inherit the environment). It starts
# recording as MEMHOUND_* asks (docs/architecture.md), then hands over to
# the sitecustomize this one shadows, if any.
#
# Whatever happens here, the program carries on: a failure prints one
# "memhound: ..." line and the process runs unrecorded. Every process pays
# for this file at startup, so it imports nothing that site has not
# already imported. It stays Python 2 syntax, so an old interpreter the
# program starts reads the message instead of a SyntaxError.

import os
import sys


def _memhound_unlist():
    # This directory holds only this file; off sys.path, the program's
    # path looks as it would without memhound, and the real
    # sitecustomize can be found.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]


def _memhound_start():
    if not os.environ.get("MEMHOUND_OUTPUT"):
        return
    if sys.version_info < (3, 9):
        _memhound_fail("Python %d.%d is not supported (3.9 or later needed)"
                       % sys.version_info[:2])
        return
    try:
        import memhound
        path = memhound._start_from_environ()
    except Exception as exc:
        if exc.__class__.__name__ == "AgentNotAvailableError":
            _memhound_fail(str(exc))
        else:
            _memhound_fail("%s: %s" % (exc.__class__.__name__, exc))
        return
    if path and os.environ.get("MEMHOUND_WEB"):
        # `run --web`: attribute memory to requests (docs/web.md). The
        # process records either way.
        try:
            import memhound.web
            memhound.web.instrument()
        except Exception as exc:
            try:
                sys.stderr.write("memhound: pid %d: requests are not attributed: "
                                 "%s: %s\n" % (os.getpid(), exc.__class__.__name__, exc))
            except Exception:
                pass


def _memhound_fail(cause):
    try:
        sys.stderr.write("memhound: pid %d (%s) runs unrecorded: %s\n"
                         % (os.getpid(), sys.executable or "python", cause))
        sys.stderr.flush()
    except Exception:
        pass
    # "pid<TAB>" with no path tells `memhound run` this process ran Python
    # but could not record, so it does not claim no Python ran at all.
    registry = os.environ.get("MEMHOUND_REGISTRY")
    if not registry:
        return
    try:
        # `memhound run` made it in its private directory: opened as it
        # is, never created or followed here.
        fd = os.open(registry, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
                     | getattr(os, "O_CLOEXEC", 0))
        try:
            os.write(fd, ("%d\t\n" % os.getpid()).encode("ascii"))
        finally:
            os.close(fd)
    except Exception:
        pass


def _memhound_chain():
    # Imports the sitecustomize this file shadows the way site would have:
    # through the normal import system (so .pyc, zip and package forms all
    # work), once. The one found replaces this module in sys.modules, so
    # `import sitecustomize` later gets it. Its errors propagate: site
    # reports them as it would have without memhound.
    me = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the next one on sys.path)
    except ImportError as exc:
        if getattr(exc, "name", "sitecustomize") != "sitecustomize":
            raise
    finally:
        if "sitecustomize" not in sys.modules and me is not None:
            sys.modules["sitecustomize"] = me


_memhound_unlist()
_memhound_start()
_memhound_chain()
