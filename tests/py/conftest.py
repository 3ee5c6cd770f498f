"""Shared fixtures for memhound's integration tests.

The tests drive real programs: each one is written to a temporary
directory, run under `build/memhound run` with one of the interpreters of
the version matrix, and judged from `build/memhound report --format json`.
pytest itself runs under Debian's /usr/bin/python3 (`make test-py`).

The matrix is /usr/bin/python3 plus pyenv's 3.9-3.13; `make test-py` passes
the interpreters it found in MEMHOUND_MATRIX (space-separated paths). An
expected interpreter that is absent is announced on one line and its tests
are skipped. MEMHOUND_BIN overrides build/memhound.

Every process a test starts is bounded in time and killed (its whole
process group) when the test ends, whatever happened.
"""

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMHOUND = Path(os.environ.get("MEMHOUND_BIN", ROOT / "build" / "memhound"))
PYDIR = Path(os.environ.get("MEMHOUND_PYTHONPATH",
                            MEMHOUND.parent / "python"))
SYSTEM_PY = "/usr/bin/python3"
MINORS = (9, 10, 11, 12, 13)
RUN_TIMEOUT = 120  # seconds for any one program under memhound


# --- the interpreter matrix --------------------------------------------------

def _version_of(path):
    """'3.11' for an interpreter path, from the path when it says so."""
    m = re.search(r"/versions/(3\.\d+)\.", path)
    if m:
        return m.group(1)
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _matrix():
    """[(test id, interpreter path or None, reason when None)]."""
    listed = os.environ.get("MEMHOUND_MATRIX", "").split()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = {}
    if listed:
        for path in listed:
            if "/versions/" not in path and \
                    os.path.realpath(path) == os.path.realpath(SYSTEM_PY):
                found["system"] = path
            else:
                v = _version_of(path)
                if v:
                    found.setdefault(v, path)
    else:
        if os.path.exists(SYSTEM_PY):
            found["system"] = SYSTEM_PY
        for minor in MINORS:
            hits = sorted(glob.glob(str(pyenv / "versions" /
                                        ("3.%d.*" % minor) / "bin" /
                                        "python3")))
            if hits:
                found["3.%d" % minor] = hits[-1]
    out = []
    if "system" in found:
        out.append(("system", found["system"], None))
    else:
        out.append(("system", None, "%s is not installed" % SYSTEM_PY))
    for minor in MINORS:
        v = "3.%d" % minor
        if v in found:
            out.append((v, found[v], None))
        else:
            out.append((v, None, "python %s not found under %s" % (
                v, pyenv / "versions")))
    return out


MATRIX = _matrix()


def pytest_report_header(config):
    lines = ["memhound: %s" % MEMHOUND]
    for vid, path, why in MATRIX:
        if path:
            lines.append("memhound: interpreter %-6s %s" % (vid, path))
        else:
            lines.append("memhound: interpreter %-6s skipped: %s" % (vid, why))
    return lines


def pytest_sessionstart(session):
    # The header is hidden under -q; the skipped interpreters must show.
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for vid, path, why in MATRIX:
        if not path:
            msg = "memhound: skipping the core tests on python %s: %s" % (
                vid, why)
            if tr is not None:
                tr.write_line(msg)
            else:
                print(msg, file=sys.stderr)


def _parametrized_by_marker(metafunc, name):
    for m in metafunc.definition.iter_markers("parametrize"):
        names = m.args[0] if m.args else m.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc):
    # A test that takes `py` runs once per interpreter of the matrix,
    # unless it parametrizes `py` itself.
    if "py" in metafunc.fixturenames and \
            not _parametrized_by_marker(metafunc, "py"):
        params = []
        for vid, path, why in MATRIX:
            marks = [] if path else [pytest.mark.skip(reason=why)]
            params.append(pytest.param(path, id=vid, marks=marks))
        metafunc.parametrize("py", params)


# --- running programs ------------------------------------------------------

def clean_env(**extra):
    """The test's environment without anything memhound or Python path
    related that the caller may have set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMHOUND_") and k not in (
               "PYTHONPATH", "PYTHONTRACEMALLOC", "PYTHONHOME")}
    if "MEMHOUND_PYTHONPATH" in os.environ:
        env["MEMHOUND_PYTHONPATH"] = os.environ["MEMHOUND_PYTHONPATH"]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _kill_group(p):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# The signals tests send or expect a program to die of. CI may start the
# suite with some ignored (nohup: SIGHUP; `cmd &` in a script: SIGINT) or
# blocked, and children inherit both; a test that kills with SIGHUP would
# then wait for nothing until its timeout.
DEFAULT_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM,
                   signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


# Source for a target program: one request on the agent's control
# socket (docs/snapshot.md), the reply line as a str.
CONTROL_CLIENT = """
def control_request(path, line, timeout=20):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(line.encode() + b"\\n")
    reply = b""
    while not reply.endswith(b"\\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    return reply.decode()
"""


def default_signals():
    """preexec_fn giving the child the default action for DEFAULT_SIGNALS,
    unblocked, however the test suite itself was started."""
    for s in DEFAULT_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFAULT_SIGNALS)


class Procs:
    """Starts processes in their own process groups, with default signal
    dispositions (default_signals), and kills what is left of each group
    at teardown."""

    def __init__(self):
        self.procs = []

    def popen(self, argv, **kw):
        kw.setdefault("start_new_session", True)
        kw.setdefault("preexec_fn", default_signals)
        p = subprocess.Popen([str(a) for a in argv], **kw)
        self.procs.append(p)
        return p

    def run(self, argv, timeout=RUN_TIMEOUT, **kw):
        """Like subprocess.run (text, captured), killing the whole group on
        timeout. Returns a CompletedProcess."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("text", True)
        p = self.popen(argv, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            out, err = p.communicate()
            pytest.fail("timed out after %ds: %s\nstdout:\n%s\nstderr:\n%s" % (
                timeout, " ".join(map(str, argv)), out, err))
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def cleanup(self):
        for p in self.procs:
            # Kill the group even when the leader is gone: a forked child or
            # a gunicorn worker may outlive it.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if p.poll() is None:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            for f in (p.stdout, p.stderr, p.stdin):
                if f:
                    f.close()


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


class Program:
    """A test program written to a file, with its marked lines: a line
    ending in `# MARK:name` is known as lines["name"]."""

    def __init__(self, path, source):
        self.path = Path(path)
        self.source = textwrap.dedent(source).lstrip("\n")
        self.path.write_text(self.source)
        self.lines = {}
        for i, line in enumerate(self.source.splitlines(), 1):
            m = re.search(r"#\s*MARK:(\w+)", line)
            if m:
                self.lines[m.group(1)] = i

    def site(self, mark):
        return (str(self.path), self.lines[mark])


@pytest.fixture
def program(tmp_path):
    def make(source, name="prog.py"):
        return Program(tmp_path / name, source)
    return make


class Memhound:
    """build/memhound, run with the test's process bookkeeping."""

    def __init__(self, procs, tmp_path):
        self.procs = procs
        self.tmp = tmp_path

    def run(self, py, prog_args, output=None, options=(), env=None,
            timeout=RUN_TIMEOUT, check=True):
        """`memhound run [options] -o OUTPUT -- py prog_args...`; returns
        the CompletedProcess. The target must exit 0 when check is set."""
        output = output or self.tmp / "cap.mhc"
        argv = [MEMHOUND, "run", "-o", output, *options, "--", py,
                *prog_args]
        r = self.procs.run(argv, timeout=timeout, env=env or clean_env(),
                           cwd=str(self.tmp))
        if check:
            assert r.returncode == 0, describe(r)
        return r

    def captures(self, pattern="*.mhc"):
        return sorted(str(p) for p in self.tmp.glob(pattern))

    def report(self, captures, *options, expect=0):
        argv = [MEMHOUND, "report", *options, *captures]
        r = self.procs.run(argv, timeout=RUN_TIMEOUT, env=clean_env())
        assert r.returncode == expect, describe(r)
        return r

    def report_json(self, captures, *options):
        r = self.report(captures, "--format", "json", "--top", "0",
                        *options)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            pytest.fail("report is not JSON (%s): %s" % (e, r.stdout[:2000]))


@pytest.fixture
def mh(procs, tmp_path):
    if not MEMHOUND.exists():
        pytest.fail("%s is not built: run make" % MEMHOUND)
    return Memhound(procs, tmp_path)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (servers other
    tests start run next to this one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, p, timeout):
    """True once something accepts on 127.0.0.1:port; False when the
    process p exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def describe(r):
    args = r.args if isinstance(r.args, (list, tuple)) else [r.args]
    return "exit %s: %s\n--- stdout\n%s\n--- stderr\n%s" % (
        r.returncode, " ".join(map(str, args)), (r.stdout or "")[-4000:],
        (r.stderr or "")[-4000:])


# --- reading reports -------------------------------------------------------

def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def site_of(entry):
    return (entry.get("file"), entry.get("line"))


def find_site(sites, site):
    """The entry for (file, line) in a report list, or None."""
    for e in sites:
        if e.get("line") == site[1] and e.get("file") and \
                same_file(e["file"], site[0]):
            return e
    return None


def fmt_sites(sites, n=8):
    return "\n".join("  %12s  %s:%s in %s" % (
        "{:,}".format(int(e.get("growth_bytes", 0))), e.get("file"),
        e.get("line"), e.get("function")) for e in sites[:n])


def assert_top_growth(rep, site, what=""):
    growth = rep.get("growth") or []
    assert growth, "no growth sites%s; summary: %s" % (what, rep.get(
        "summary"))
    top = growth[0]
    assert top.get("line") == site[1] and same_file(top["file"], site[0]), (
        "top growth site%s is not %s:%d; growth:\n%s" % (
            what, site[0], site[1], fmt_sites(growth)))
    return top
