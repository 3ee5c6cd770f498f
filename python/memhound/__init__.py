"""memhound: find what keeps growing in a long-running Python program.

    import memhound
    memhound.start("leak.%p.mhc")      # sampling; mode="trace" records all
    ...
    memhound.stop()                     # also done at exit

then `memhound report leak.<pid>.mhc`. `memhound run -- COMMAND` does the
same for a whole program without editing it (through bootstrap/
sitecustomize.py, which calls _start_from_environ()).

This module stays thin: the recording is done by the `_memhound` extension
(docs/architecture.md). Its import cost matters, since `memhound run`
imports it in every Python process at startup: nothing beyond os and sys
is imported here up front.
"""

import os
import sys

__all__ = [
    "AgentNotAvailableError",
    "dump_heap",
    "flush",
    "is_active",
    "mark",
    "request",
    "start",
    "stats",
    "stop",
]

DEFAULT_PATH = "memhound.%p.%r.mhc"  # %r: random, so nobody can plant the file first
_MODES = {"sample": 0, "trace": 1, "forward": 2}  # forward: hooks that only forward (benchmark floor)

try:
    __import__(__name__ + "._memhound")
    _memhound = sys.modules[__name__ + "._memhound"]
except ImportError as exc:  # importable anyway; start() explains
    _memhound = None
    _agent_import_error = exc
else:
    _agent_import_error = None


class AgentNotAvailableError(ImportError):
    """No `_memhound` extension loads for this interpreter."""


class _State:
    """What the at-fork handler needs to give a forked child its capture."""

    def __init__(self, template, has_pid, path, pid, run_id, force):
        self.template = template  # absolute, %p not expanded
        self.run_id = run_id  # the run's id, which forked children keep
        self.force = force  # replace files of ours
        self.has_pid = has_pid
        self.path = path  # the capture this process writes
        self.pid = pid  # the process that writes it


_state = None  # set while start() is in effect; None after stop()
_hooks_installed = False


def _python_version():
    return "%d.%d" % sys.version_info[:2]


def _agent():
    if _memhound is not None:
        return _memhound
    exe = sys.executable or "python%s" % _python_version()
    here = os.path.dirname(os.path.abspath(__file__))
    exc = _agent_import_error
    if isinstance(exc, ModuleNotFoundError) and exc.name == __name__ + "._memhound":
        msg = "no agent built for Python %s (%s) in '%s'; build it with: " \
              "make agent PYTHON=%s" % (_python_version(), exe, here, exe)
    else:
        msg = "cannot load the agent for Python %s (%s): %s; rebuild it with: " \
              "make agent PYTHON=%s" % (_python_version(), exe, exc, exe)
    raise AgentNotAvailableError(msg, name=__name__ + "._memhound") from exc


def _random_tag():
    """10 hex digits from getrandom() (os.urandom), for names nobody can
    guess in advance (docs/security.md)."""
    return os.urandom(5).hex()


def _new_run_id():
    """64 random bits, never 0 (0 means "no run id" in a capture)."""
    while True:
        run_id = int.from_bytes(os.urandom(8), "little")
        if run_id:
            return run_id


def _env_run_id():
    """The run id `memhound run` passes (16 hex digits), else a new one."""
    value = os.environ.get("MEMHOUND_RUN_ID")
    if not value:
        return _new_run_id()
    try:
        run_id = int(value, 16) if len(value) == 16 else 0
    except ValueError:
        run_id = 0
    if not run_id:
        raise ValueError("MEMHOUND_RUN_ID=%r is not 16 hex digits" % (value,))
    return run_id


def _expand(template, pid, run_id):
    """Expands %p to the pid, %r to a random tag, %R to the run id (16 hex
    digits) and %% to %; returns (path, had_pid)."""
    if "%" not in template:
        return template, False
    out = []
    had_pid = False
    i = 0
    n = len(template)
    while i < n:
        c = template[i]
        if c == "%" and i + 1 < n and template[i + 1] in "prR%":
            if template[i + 1] == "p":
                out.append(str(pid))
                had_pid = True
            elif template[i + 1] == "r":
                out.append(_random_tag())
            elif template[i + 1] == "R":
                out.append("%016x" % run_id)
            else:
                out.append("%")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out), had_pid


def _with_pid(path, pid):
    """'out/memhound.mhc' -> 'out/memhound.<pid>.mhc'."""
    head, tail = os.path.split(path)
    root, ext = os.path.splitext(tail)
    return os.path.join(head, "%s.%d%s" % (root, pid, ext))


def _fresh_name(path):
    """'out/web.123.mhc' -> 'out/web.123.<random>.mhc': where a capture of
    that name exists already and stays."""
    root, ext = os.path.splitext(path)
    return "%s.%s%s" % (root, _random_tag(), ext)


def _first_to_claim(registry):
    """Under `memhound run`, true for the one process that gets a template
    without %p as it is; the claim is an O_EXCL file next to the registry,
    so two processes starting together cannot both win."""
    if not registry:
        return True
    try:
        fd = os.open(registry + ".first",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


def _register(pid, path):
    """Tells `memhound run` about a capture ('' = could not record)."""
    registry = os.environ.get("MEMHOUND_REGISTRY")
    if not registry:
        return
    line = ("%d\t%s\n" % (pid, path)).encode("utf-8", "surrogateescape")
    try:
        # `run` made it in its private directory; never created here.
        fd = os.open(registry, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # `run` is gone (the program outlived it); nobody to tell
    try:
        os.write(fd, line)  # one write: O_APPEND keeps lines whole
    except OSError:
        pass
    finally:
        os.close(fd)


# Also web's and django_findings' voice: one `memhound: ...` line to stderr
# that can never raise into the program.
def _warn(msg):
    try:
        sys.stderr.write("memhound: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


def _argv():
    argv = getattr(sys, "orig_argv", None)  # 3.10+
    if argv:
        return list(argv)
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
        return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]]
    except OSError:
        return [sys.executable] + list(sys.argv)


def _lib_prefixes():
    """Directories whose code is not the user's own: the standard library
    and every site-packages/dist-packages. What sysconfig.get_paths() calls
    stdlib/platstdlib/purelib/platlib is taken from sysconfig when it is
    already loaded, else from cheaper sources that name the same
    directories (importing sysconfig costs milliseconds per process)."""
    import site  # imported at startup already, unless python -S

    dirs = []
    sc = sys.modules.get("sysconfig")
    if sc is not None:
        try:
            paths = sc.get_paths()
            dirs.extend(paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib"))
        except Exception:
            pass
    dirs.append(os.path.dirname(os.__file__))  # stdlib
    for entry in sys.path:
        base = os.path.basename(entry)
        if base == "lib-dynload":  # platstdlib's extension modules
            dirs.append(os.path.dirname(entry))
            dirs.append(entry)
        elif base in ("site-packages", "dist-packages"):
            dirs.append(entry)
    try:
        dirs.extend(site.getsitepackages())
    except Exception:  # some virtualenv versions ship an older site.py
        pass
    try:
        dirs.append(site.getusersitepackages())
    except Exception:
        pass
    seen = set()
    out = []
    for d in dirs:
        if not d:
            continue
        real = os.path.realpath(d)
        if real not in seen:
            seen.add(real)
            out.append(real)
    return out


def start(path=DEFAULT_PATH, mode="sample", sample_interval=None, max_depth=128,
          heap_every=None, force=False):
    """Starts recording this process into the capture `path`.

    `%p` in `path` is the pid, `%r` a random tag, `%R` the run id (the
    same in every process of the run). A forked child records
    into a capture of its own: `%p` gives it its own name; without `%p`,
    `.<pid>` goes before the extension. The capture is created mode 0600,
    never through a symbolic link and never into an existing file: an
    existing `path` raises FileExistsError unless force=True, which
    replaces a regular file of this user (docs/security.md).
    mode="sample" records a sample every `sample_interval` bytes on
    average (the agent's default when None); mode="trace" records every
    allocation. Returns the capture's path. Stopped at exit. Each call
    starts a new run: its captures, and those of the children forked
    while it records, carry one run id of their own, which `memhound
    report` uses to keep captures of different runs apart.

    Raises AgentNotAvailableError (an ImportError) when no agent is built
    for this interpreter, RuntimeError when already recording, OSError when
    the file cannot be created, ValueError/TypeError for bad arguments.
    """
    return _start(path, mode, sample_interval, max_depth, registry=None,
                  heap_every=heap_every, force=force, run_id=_new_run_id())


def _start(path, mode, sample_interval, max_depth, registry, heap_every=None,
           force=False, run_id=0):
    global _state
    agent = _agent()
    if mode not in _MODES:
        raise ValueError("mode must be 'sample' or 'trace', not %r" % (mode,))
    template = os.fsdecode(os.fspath(path))
    if not template:
        raise ValueError("path must not be empty")
    kwargs = {"mode": _MODES[mode]}
    if sample_interval is not None:
        if not isinstance(sample_interval, int) or isinstance(sample_interval, bool):
            raise TypeError("sample_interval must be an int, not %s"
                            % type(sample_interval).__name__)
        if sample_interval < 1:
            raise ValueError("sample_interval must be at least 1 byte, not %d" % sample_interval)
        kwargs["interval"] = sample_interval
    if max_depth is not None:
        if not isinstance(max_depth, int) or isinstance(max_depth, bool):
            raise TypeError("max_depth must be an int, not %s" % type(max_depth).__name__)
        if max_depth < 1:
            raise ValueError("max_depth must be at least 1, not %d" % max_depth)
        kwargs["max_depth"] = max_depth
    if heap_every is not None:
        if not isinstance(heap_every, (int, float)) or isinstance(heap_every, bool):
            raise TypeError("heap_every must be a number of seconds, not %s"
                            % type(heap_every).__name__)
        if not 0.1 <= heap_every <= 3.2e7:
            raise ValueError("heap_every must be 0.1 to 3.2e7 seconds, not %r" % (heap_every,))
        kwargs["heap_every"] = float(heap_every)
    if _state is not None and agent.stats().get("active"):
        raise RuntimeError("memhound is already recording into '%s'" % _state.path)

    # Absolute, so a forked child that has changed directory still writes
    # next to its parent's capture.
    template = os.path.abspath(template)
    pid = os.getpid()
    resolved, has_pid = _expand(template, pid, run_id)
    if not has_pid and registry is not None and not _first_to_claim(registry):
        resolved = _with_pid(resolved, pid)
    kwargs["argv"] = _argv()
    kwargs["lib_prefixes"] = _lib_prefixes()
    kwargs["sys_path"] = [p for p in sys.path if isinstance(p, str)]
    kwargs["force"] = bool(force)
    kwargs["run_id"] = run_id
    try:
        agent.start(resolved, **kwargs)
    except FileExistsError:
        # A process that exec'd Python again finds the capture it wrote
        # before the exec, or one whose pid an earlier run's process had
        # finds that one's: it stays; this one gets a fresh name.
        if registry is None:
            raise
        resolved = _fresh_name(resolved)
        agent.start(resolved, **kwargs)
    _state = _State(template, has_pid, resolved, pid, run_id, bool(force))
    _install_hooks()
    _register(pid, resolved)
    return resolved


def _start_from_environ():
    """Starts recording as `memhound run` asked through the environment
    (docs/architecture.md). Does nothing without MEMHOUND_OUTPUT, or when
    this process records already."""
    env = os.environ
    template = env.get("MEMHOUND_OUTPUT")
    if not template or _state is not None or not _in_main_interpreter():
        return None
    mode = env.get("MEMHOUND_MODE") or "sample"
    interval = _env_int("MEMHOUND_INTERVAL")
    depth = _env_int("MEMHOUND_MAX_DEPTH")
    every = env.get("MEMHOUND_HEAP_EVERY")
    if every:
        try:
            every = float(every)
        except ValueError:
            raise ValueError("MEMHOUND_HEAP_EVERY=%r is not a number of seconds"
                             % (every,)) from None
    return _start(template, mode, interval, depth if depth is not None else 128,
                  registry=env.get("MEMHOUND_REGISTRY") or "",
                  heap_every=every or None, force=env.get("MEMHOUND_FORCE") == "1",
                  run_id=_env_run_id())


def _in_main_interpreter():
    """A subinterpreter shares the process, the allocator hooks and so the
    capture with the main interpreter (its allocations are counted there,
    without stacks): `run` starts nothing in it, quietly."""
    import _thread  # built in, imported at startup

    check = getattr(_thread, "_is_main_interpreter", None)  # 3.12+
    if check is not None:
        return check()
    if _memhound is not None:  # before 3.12 it loads in subinterpreters too
        return _memhound._in_main_interpreter()
    return True


def _env_int(name):
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError("%s=%r is not a whole number" % (name, value)) from None


def _install_hooks():
    global _hooks_installed
    if _hooks_installed:
        return
    import atexit

    atexit.register(_stop_at_exit)
    os.register_at_fork(after_in_child=_after_fork_child)
    _wrap_exit_and_exec()
    _wrap_signal_default()
    _hooks_installed = True


# os._exit() and os.exec*() end the Python program without atexit: the
# capture's tail would be lost. os._exit() stops recording first (END is
# written); os.execv()/os.execve(), which every other exec function calls
# through os's globals, write the tail and an EXEC marker and go on
# recording if the exec fails. The wrappers keep the originals'
# names and signatures; whatever memhound does there cannot raise.

def _like(wrapper, real):
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapper, attr, getattr(real, attr))
        except (AttributeError, TypeError):
            pass
    wrapper.__wrapped__ = real
    return wrapper


def _wrap_exit_and_exec():
    real_exit, real_execv, real_execve = os._exit, os.execv, os.execve

    def _exit(status, /):
        st = _state
        if st is not None and st.pid == os.getpid():
            try:
                stop()
            except BaseException:
                pass
        real_exit(status)

    def execv(path, argv, /):
        noted = _note_exec(path)
        try:
            return real_execv(path, argv)
        finally:  # only reached when the exec failed
            if noted:
                _exec_failed()

    def execve(path, argv, env, /):
        noted = _note_exec(path)
        try:
            return real_execve(path, argv, env)
        finally:
            if noted:
                _exec_failed()

    os._exit = _like(_exit, real_exit)
    os.execv = _like(execv, real_execv)
    os.execve = _like(execve, real_execve)


def _note_exec(path):
    st = _state
    if st is None or st.pid != os.getpid():
        return False
    try:
        if isinstance(path, int):
            path = "fd %d" % path
        _memhound._before_exec(os.fsdecode(os.fspath(path)))
    except BaseException:
        return False
    return True


def _exec_failed():
    try:
        _memhound._after_exec_failed()
    except BaseException:
        pass


def _wrap_signal_default():
    # The agent's handler for SIGTERM/SIGINT/SIGHUP sits where the program
    # left the default action (src/agent/sigflush.h); a program that sets
    # SIG_DFL again gets it back, unseen: signal.getsignal() says SIG_DFL.
    # signal.signal() calls _signal.signal() through the module, so this
    # covers both without importing signal.py.
    try:
        import _signal
    except ImportError:
        return
    real = _signal.signal
    fatal = frozenset(getattr(_signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP")
                      if hasattr(_signal, n))
    dfl = _signal.SIG_DFL

    def signal(signalnum, handler, /):
        old = real(signalnum, handler)
        if handler is dfl or (type(handler) is int and handler == dfl):
            if signalnum in fatal and _state is not None:
                try:
                    _memhound._arm_signal(int(signalnum))
                except BaseException:
                    pass
        return old

    _signal.signal = _like(signal, real)


def _after_fork_child():
    # Runs in every forked child, also in ones that never return to
    # Python code; it must not raise, and must not break the child.
    global _state
    st = _state
    if st is None:
        return
    pid = os.getpid()
    if st.pid == pid:
        # Started already: the agent's pending call after a fork can run
        # inside an earlier fork hook (threading's) before this one.
        return
    try:
        path, _ = _expand(st.template, pid, st.run_id)
        if not st.has_pid:
            path = _with_pid(path, pid)
        if not st.force and os.path.lexists(path):
            # An earlier run's process with this pid left its capture
            # there (no %r in the name): it stays. (The agent creates
            # with O_EXCL all the same.)
            path = _fresh_name(path)
        if _memhound.after_fork_child(path, st.pid) is False:
            # The pending call ran between two bytecodes of this very
            # function and started the capture: it is that one's.
            return
        st.path = path
        st.pid = pid
        _register(pid, path)
    except BaseException as exc:
        _state = None
        _warn("cannot record forked process %d: %s" % (pid, exc))
        _register(pid, "")


def _stop_at_exit():
    try:
        stop()
    except BaseException as exc:
        _warn("cannot finish the capture: %s" % (exc,))


def stop():
    """Stops recording and completes the capture. Does nothing when not
    recording."""
    global _state
    _state = None
    if _memhound is not None:
        _memhound.stop()


def flush():
    """Writes what is buffered to the capture now. Does nothing when not
    recording, so it can stay in the code."""
    if _state is not None:
        _memhound.flush()


def mark(text):
    """Writes a marker (e.g. "request 1000 done") into the capture; reports
    can show it on the timeline. Does nothing when not recording."""
    if not isinstance(text, str):
        raise TypeError("mark() needs a str, not %s" % type(text).__name__)
    if _state is not None:
        _memhound.mark(text)


def dump_heap(path=None, wait=True, force=False):
    """Writes a heap dump of this process (docs/heap-format.md) and returns
    its absolute path.

    The walk runs in a fork()ed child; this process pauses only for the
    fork, its other threads keep running. With wait=True (the default) the
    call returns once the dump is complete and raises OSError if the walk
    failed; with wait=False it returns right after the fork (the file is
    complete when its END record is written).

    Without `path`, the dump goes next to the capture as
    `<capture stem>.heap<N>.mhh` when this process is recording, else to
    `memhound-heap.<pid>.<random>.mhh` in the current directory. While
    recording, the dump is noted in the capture (a heap-dump marker), so
    `memhound report CAPTURE` finds it. The file is created mode 0600,
    never through a symbolic link or into an existing file, unless
    force=True (or the recording's force) replaces a regular file of this
    user.
    """
    agent = _agent()
    if not hasattr(agent, "dump_heap"):
        raise AgentNotAvailableError(
            "the agent in '%s' was built without heap dumps; rebuild it with: "
            "make agent PYTHON=%s" % (os.path.dirname(agent.__file__), sys.executable),
            name=__name__ + "._memhound")
    if path is None:
        path = agent.next_dump_path() if _state is not None else None
        if path is None:
            path = os.path.join(os.getcwd(), "memhound-heap.%d.%s.mhh"
                                % (os.getpid(), _random_tag()))
    path = os.path.abspath(os.fsdecode(os.fspath(path)))
    if not path or path.endswith(os.sep):
        raise ValueError("path must name a file, not %r" % (path,))
    agent.dump_heap(path, bool(wait), bool(force))
    if _state is not None:
        agent.mark(path, 1)  # MARKER kind 1: heap dump written
    return path


def request(name):
    """A job as a request of its own, for per-request attribution
    (docs/web.md): `with memhound.request("crawl item"):` or, as a
    decorator, `@memhound.request("nightly report")`. Memory allocated
    inside is reported under `name` by `memhound report --by endpoint`.
    Does nothing when not recording."""
    from .web import request as _request

    return _request(name)


def stats():
    """The agent's counters, as a dict: active, mode, interval, path, pid,
    samples, frees, dropped, live_bytes, stacks, tracker_bytes (the
    agent's own memory), tracker_peak_bytes (its highest), control (the
    control socket's path, '' when there is none)."""
    return dict(_agent().stats())


def is_active():
    """Whether this process is recording now."""
    if _memhound is None:
        return False
    return bool(_memhound.stats().get("active"))
