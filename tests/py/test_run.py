"""`memhound run` and the in-process API, driving real programs.

The target interpreter is Debian's /usr/bin/python3 (it has gunicorn); the
tests taking a `py` argument run on every interpreter of the matrix
(conftest.py parametrizes them). MEMHOUND_BIN overrides build/memhound.
Every program runs in its own session, killed as a group on timeout.
"""

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import default_signals

ROOT = Path(__file__).resolve().parents[2]
MEMHOUND = Path(os.environ.get("MEMHOUND_BIN", ROOT / "build" / "memhound"))
PYDIR = Path(os.environ.get("MEMHOUND_PYTHONPATH", MEMHOUND.parent / "python"))
PY = "/usr/bin/python3"
MAGIC = b"\x89MHC\r\n\x1a\n"
TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    not MEMHOUND.exists(), reason="%s is not built (make)" % MEMHOUND)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMHOUND_")
           and k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONTRACEMALLOC")}
    if "MEMHOUND_PYTHONPATH" in os.environ:
        env["MEMHOUND_PYTHONPATH"] = os.environ["MEMHOUND_PYTHONPATH"]
    env.update(extra)
    return env


def mh_run(args, cwd, env=None, input=None, **kw):
    """`memhound run ARGS...` to completion, as subprocess.run would."""
    argv = [str(MEMHOUND), "run", *args]
    kw.setdefault("preexec_fn", default_signals)
    p = subprocess.Popen(argv, cwd=str(cwd), env=env or clean_env(), text=True,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(input, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        pytest.fail("timed out: %s\n%s" % (" ".join(argv), err))
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait()


@pytest.fixture
def spawn():
    """Starts `memhound run ARGS...` in its own session and returns the
    Popen; the group is killed after TIMEOUT seconds (so a blocked read
    ends) and at the end of the test, whatever happened."""
    started = []

    def start(args, cwd, **kw):
        kw.setdefault("preexec_fn", default_signals)
        p = subprocess.Popen([str(MEMHOUND), "run", *args], cwd=str(cwd), env=clean_env(),
                             text=True, start_new_session=True, **kw)
        watchdog = threading.Timer(TIMEOUT, kill_group, [p])
        watchdog.daemon = True
        watchdog.start()
        started.append((p, watchdog))
        return p

    yield start
    for p, watchdog in started:
        watchdog.cancel()
        kill_group(p)
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                f.close()


CAPTURE_LINE = re.compile(r"^memhound: wrote capture '(.*)' \(pid (\d+)\)$", re.M)


def captures(result, cwd):
    """{pid: absolute path} from run's summary; each file is a capture."""
    found = {}
    for path, pid in CAPTURE_LINE.findall(result.stderr):
        p = Path(cwd, path)
        assert p.exists(), result.stderr
        with open(p, "rb") as f:
            assert f.read(8) == MAGIC, "%s is not a capture" % p
        found[int(pid)] = p
    return found


def script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


# -- exit status, signals, stdio ------------------------------------------


@pytest.mark.parametrize("code", [0, 3])
def test_exit_status_passes_through(tmp_path, code):
    r = mh_run(["--", PY, "-c", "import sys; sys.exit(%d)" % code], tmp_path)
    assert r.returncode == code, r.stderr
    caps = captures(r, tmp_path)
    assert len(caps) == 1, r.stderr
    assert re.search(r"^memhound: to see what grew: \S*memhound\S* report \S+$", r.stderr, re.M)


def test_death_by_signal_passes_through(tmp_path):
    r = mh_run(["--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
               tmp_path)
    assert r.returncode == -signal.SIGTERM, r.stderr
    assert len(captures(r, tmp_path)) == 1, r.stderr


WAITER = """
    import os, signal, sys, time
    def on(sig, frame):
        print("got", sig, flush=True)
        if sig == signal.SIGUSR2:
            sys.exit(0)
    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, on)
    print("ready", os.getpid(), flush=True)
    # Short sleeps: a signal landing between the last check and the start
    # of one long sleep would wait for the whole sleep (CPython's race).
    deadline = time.time() + %d
    while time.time() < deadline:
        time.sleep(0.01)
""" % TIMEOUT


def start_waiter(spawn, tmp_path):
    prog = script(tmp_path, "waiter.py", WAITER)
    p = spawn(["--", PY, str(prog)], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    assert line.startswith("ready"), line + p.stderr.read()
    return p, int(line.split()[1])


def test_signals_sent_to_memhound_are_forwarded(spawn, tmp_path):
    p, child = start_waiter(spawn, tmp_path)
    assert child != p.pid
    p.send_signal(signal.SIGUSR1)
    assert p.stdout.readline().split() == ["got", str(int(signal.SIGUSR1))]
    p.send_signal(signal.SIGUSR2)
    assert p.stdout.readline().split() == ["got", str(int(signal.SIGUSR2))]
    assert p.wait(TIMEOUT) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_memhound_survives_and_forwards(spawn, tmp_path, sig):
    # The child dies of it (SIGINT: Python exits by re-raising it after
    # KeyboardInterrupt); memhound only dies of it by passing it on.
    p, child = start_waiter(spawn, tmp_path)
    p.send_signal(sig)
    assert p.wait(TIMEOUT) == -sig
    err = p.stderr.read()
    assert "wrote capture" in err, err


def test_terminal_interrupt_reaches_child_once(tmp_path):
    # ^C on a terminal signals the whole foreground process group; memhound
    # must not forward a second SIGINT on top.
    prog = script(tmp_path, "count.py", """
        import signal, time
        n = 0
        def on(sig, frame):
            global n
            n += 1
        signal.signal(signal.SIGINT, on)
        print("ready", flush=True)
        deadline = time.time() + %d
        while n == 0 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        print("count", n, flush=True)
    """ % TIMEOUT)
    pid, fd = pty.fork()
    if pid == 0:
        default_signals()
        os.chdir(str(tmp_path))
        os.execve(str(MEMHOUND), [str(MEMHOUND), "run", "-q", "--", PY, str(prog)],
                  clean_env())
    out = b""
    try:
        out = read_pty_until(fd, b"ready")
        os.write(fd, b"\x03")
        out += read_pty_until(fd, b"count")
        out += read_pty_until(fd, b"\n")
    finally:
        status = wait_or_kill(pid)
        os.close(fd)
    assert re.search(rb"count 1\b", out), out
    assert os.waitstatus_to_exitcode(status) == 0


def wait_or_kill(pid):
    """The wait status of `pid` (a session leader), killing its group
    when it has not ended within TIMEOUT."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.killpg(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def read_pty_until(fd, token):
    out = b""
    deadline = time.time() + TIMEOUT
    while token not in out and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_ignored_signals_stay_ignored(tmp_path):
    # nohup, or `cmd &` in a script: the command must inherit SIG_IGN as
    # it would without memhound.
    def ignore():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    show = ("import signal; print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN,"
            " signal.getsignal(signal.SIGINT) == signal.SIG_IGN)")
    r = mh_run(["--", PY, "-c", show], tmp_path, preexec_fn=ignore)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True True\n"


def test_stdin_and_stdout_pass_through(tmp_path):
    r = mh_run(["--", PY, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"],
               tmp_path, input="hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "HELLO\nWORLD\n"


# -- ways to start Python -------------------------------------------------


def test_shebang_script(tmp_path):
    prog = script(tmp_path, "tool", """\
        #!%s
        import os
        print("tool", os.getpid())
    """ % PY)
    prog.chmod(0o755)
    r = mh_run(["--", "./tool"], tmp_path)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[1])
    assert pid in captures(r, tmp_path), r.stderr


@pytest.mark.skipif(not shutil.which("gunicorn"), reason="gunicorn not installed")
def test_console_script(tmp_path):
    r = mh_run(["--", "gunicorn", "--version"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "gunicorn" in (r.stdout + r.stderr)
    assert len(captures(r, tmp_path)) == 1, r.stderr


@pytest.mark.skipif(not shutil.which("gunicorn"), reason="gunicorn not installed")
def test_prefork_server_stopped_through_memhound(spawn, tmp_path):
    # The common deployment: master + forked workers, each with its own
    # capture; SIGTERM to memhound reaches the master, which shuts down
    # cleanly, and memhound exits with its status.
    script(tmp_path, "wsgi.py", """
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
    """)
    p = spawn(["--", "gunicorn", "-w", "2", "-b", "unix:%s" % (tmp_path / "g.sock"),
               "wsgi:app"], tmp_path, stderr=subprocess.PIPE)
    workers = set()
    log = ""
    while len(workers) < 2:
        line = p.stderr.readline()
        assert line, log
        log += line
        m = re.search(r"Booting worker with pid: (\d+)", line)
        if m:
            workers.add(int(m.group(1)))
    p.send_signal(signal.SIGTERM)
    log += p.stderr.read()
    assert p.wait(TIMEOUT) == 0, log
    caps = captures(subprocess.CompletedProcess(p.args, 0, "", log), tmp_path)
    assert len(caps) == 3, log
    assert workers < set(caps), log


def test_python_dash_m(tmp_path):
    script(tmp_path, "mymod.py", """
        import sys
        print("module", sys.argv[1:])
    """)
    r = mh_run(["--", PY, "-m", "mymod", "a", "b"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "module ['a', 'b']\n"
    assert len(captures(r, tmp_path)) == 1, r.stderr


def test_command_without_double_dash(tmp_path):
    r = mh_run([PY, "-c", "print(42)"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    assert len(captures(r, tmp_path)) == 1


def test_each_interpreter_records(tmp_path, py):
    r = mh_run(["--", py, "-c", "import memhound; print(memhound.is_active())"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True\n", r.stderr
    assert len(captures(r, tmp_path)) == 1, r.stderr


# -- no Python, no command ------------------------------------------------


def test_not_a_python_program(tmp_path):
    r = mh_run(["--", "/bin/true"], tmp_path)
    assert r.returncode == 0
    assert "no Python process reported in: '/bin/true' is not a Python program" in r.stderr
    assert "wrote capture" not in r.stderr


@pytest.mark.parametrize("flag", ["-I", "-E", "-S"])
def test_python_flags_that_skip_sitecustomize(tmp_path, flag):
    r = mh_run(["--", PY, flag, "-c", "pass"], tmp_path)
    assert r.returncode == 0
    assert "no Python process reported in" in r.stderr
    assert "with %s," % flag in r.stderr


def test_shebang_with_isolated_flag(tmp_path):
    prog = script(tmp_path, "iso", "#!%s -I\nprint('iso')\n" % PY)
    prog.chmod(0o755)
    r = mh_run(["--", "./iso"], tmp_path)
    assert r.stdout == "iso\n"
    assert "runs Python with -I" in r.stderr


def test_command_not_found(tmp_path):
    r = mh_run(["--", "memhound-no-such-command"], tmp_path)
    assert r.returncode == 127
    assert "cannot run 'memhound-no-such-command': command not found" in r.stderr


def test_command_not_executable(tmp_path):
    script(tmp_path, "noexec", "print('x')\n")
    r = mh_run(["--", "./noexec"], tmp_path)
    assert r.returncode == 126
    assert "cannot run './noexec': Permission denied" in r.stderr


@pytest.mark.parametrize("args, text", [
    ([], "run needs a command"),
    (["--sample-interval", "lots", "true"], "invalid --sample-interval 'lots'"),
    (["--max-depth", "0", "true"], "invalid --max-depth '0'"),
    (["--bogus", "true"], "unknown option '--bogus'"),
    (["-o"], "option '-o' needs a value"),
])
def test_usage_errors(tmp_path, args, text):
    r = mh_run(args, tmp_path)
    assert r.returncode == 2
    assert text in r.stderr


def test_unwritable_output_dir(tmp_path):
    r = mh_run(["-o", str(tmp_path / "missing" / "x.mhc"), "--", PY, "-c", "pass"], tmp_path)
    assert r.returncode == 1
    assert "cannot use the directory '%s': No such file or directory" % (
        tmp_path / "missing") in r.stderr, r.stderr


# -- options reach the agent ----------------------------------------------


def test_options_reach_the_agent(tmp_path):
    show = "import memhound; s = memhound.stats(); print(s['mode'], s['interval'])"
    r = mh_run(["--sample-interval", "512k", "--", PY, "-c", show], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == str(512 * 1024)
    r = mh_run(["--trace-all", "--", PY, "-c", show], tmp_path)
    assert r.returncode == 0, r.stderr
    sample_mode = mh_run(["--", PY, "-c", show], tmp_path).stdout.split()[0]
    assert r.stdout.split()[0] != sample_mode


def test_quiet(tmp_path):
    r = mh_run(["-q", "--", PY, "-c", "pass"], tmp_path)
    assert r.returncode == 0
    assert r.stderr == ""
    assert len(list(tmp_path.glob("memhound.*.mhc"))) == 1


def test_registry_is_removed(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = mh_run(["--", PY, "-c", "pass"], tmp_path, env=clean_env(TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr
    assert list(tmp.iterdir()) == []


# -- sitecustomize ----------------------------------------------------------


def test_existing_sitecustomize_runs_once(tmp_path, py):
    usc = tmp_path / "usc"
    usc.mkdir()
    log = tmp_path / "usc.log"
    (usc / "sitecustomize.py").write_text(
        "import os\nwith open(%r, 'a') as f: f.write('%%d\\n' %% os.getpid())\n" % str(log))
    prog = "import sitecustomize, memhound; print(sitecustomize.__file__, memhound.is_active())"
    r = mh_run(["--", py, "-c", prog], tmp_path, env=clean_env(PYTHONPATH=str(usc)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(usc / "sitecustomize.py"), "True"]
    assert len(log.read_text().split()) == 1


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3.11/sitecustomize.py"),
                    reason="no Debian sitecustomize")
def test_debian_sitecustomize_still_loads(tmp_path):
    r = mh_run(["--", PY, "-c", "import sitecustomize; print(sitecustomize.__file__)"],
               tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "/usr/lib/python3.11/sitecustomize.py"


def test_failing_sitecustomize_reported_as_without_memhound(tmp_path):
    usc = tmp_path / "usc"
    usc.mkdir()
    (usc / "sitecustomize.py").write_text("raise ValueError('boom')\n")
    r = mh_run(["--", PY, "-c", "print('carried on')"], tmp_path,
               env=clean_env(PYTHONPATH=str(usc)))
    assert r.returncode == 0
    assert r.stdout == "carried on\n"
    assert "Error in sitecustomize" in r.stderr and "ValueError: boom" in r.stderr
    assert len(captures(r, tmp_path)) == 1


def test_user_pythonpath_is_kept(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper_mod.py").write_text("X = 7\n")
    r = mh_run(["--", PY, "-c", "import helper_mod; print(helper_mod.X)"], tmp_path,
               env=clean_env(PYTHONPATH=str(lib)))
    assert r.stdout == "7\n", r.stderr


def test_program_runs_on_when_agent_missing(tmp_path):
    # A Python side without any agent build: the program runs unrecorded,
    # and run says why nothing was written.
    pydir = tmp_path / "py"
    shutil.copytree(str(PYDIR / "bootstrap"), str(pydir / "bootstrap"))
    (pydir / "memhound").mkdir()
    shutil.copy(str(PYDIR / "memhound" / "__init__.py"), str(pydir / "memhound"))
    r = mh_run(["--", PY, "-c", "print('still here')"], tmp_path,
               env=clean_env(MEMHOUND_PYTHONPATH=str(pydir)))
    assert r.returncode == 0
    assert r.stdout == "still here\n"
    assert "runs unrecorded: no agent built for Python 3." in r.stderr
    assert "make agent PYTHON=%s" % PY in r.stderr
    assert "no capture written: 1 Python process could not start recording" in r.stderr


# -- more processes -------------------------------------------------------


def test_python_subprocess_gets_its_own_capture(tmp_path, py):
    prog = script(tmp_path, "parent.py", """
        import os, subprocess, sys
        print(os.getpid(), flush=True)
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True)
    """)
    r = mh_run(["--", py, str(prog)], tmp_path)
    assert r.returncode == 0, r.stderr
    pids = [int(x) for x in r.stdout.split()]
    caps = captures(r, tmp_path)
    assert sorted(caps) == sorted(pids), r.stderr
    assert len(set(caps.values())) == 2


FORKER = """
    import os
    pid = os.fork()
    if pid == 0:
        print("child", os.getpid(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    print("parent", os.getpid(), flush=True)
"""


def test_forked_child_gets_its_own_capture(tmp_path, py):
    prog = script(tmp_path, "forker.py", FORKER)
    r = mh_run(["--", py, str(prog)], tmp_path)
    assert r.returncode == 0, r.stderr
    pids = dict(line.split() for line in r.stdout.splitlines())
    caps = captures(r, tmp_path)
    assert sorted(caps) == sorted(int(p) for p in pids.values()), r.stderr
    # the default name: the run id, the pid, then a random tag
    # (docs/security.md)
    assert re.fullmatch(r"memhound\.[0-9a-f]{16}\.%s\.[0-9a-f]{10}\.mhc" % pids["child"],
                        caps[int(pids["child"])].name), caps


def test_output_without_pid_goes_to_the_first_process(tmp_path):
    (tmp_path / "out").mkdir()
    prog = script(tmp_path, "forker.py", FORKER)
    r = mh_run(["-o", "out/cap.mhc", "--", PY, str(prog)], tmp_path)
    assert r.returncode == 0, r.stderr
    pids = dict(line.split() for line in r.stdout.splitlines())
    caps = captures(r, tmp_path)
    assert caps[int(pids["parent"])] == tmp_path / "out" / "cap.mhc"
    assert caps[int(pids["child"])] == tmp_path / "out" / ("cap.%s.mhc" % pids["child"])


def test_child_that_changed_directory_writes_next_to_parent(tmp_path):
    prog = script(tmp_path, "wander.py", """
        import os
        os.chdir("/")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
    """)
    r = mh_run(["-o", "rel.%p.mhc", "--", PY, str(prog)], tmp_path)
    assert r.returncode == 0, r.stderr
    child = int(r.stdout)
    assert captures(r, tmp_path)[child] == tmp_path / ("rel.%d.mhc" % child)


# -- in-process API ---------------------------------------------------------


def api(code, cwd, py=PY, pythonpath=None):
    """Runs `code` under `py` with the memhound package importable."""
    env = clean_env(PYTHONPATH=str(pythonpath or PYDIR))
    return subprocess.run([py, "-c", textwrap.dedent(code)], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_api_start_stop(tmp_path):
    r = api("""
        import os, memhound
        assert not memhound.is_active()
        memhound.mark("ignored while stopped")
        memhound.flush()
        path = memhound.start("api.%p.mhc")
        assert path == os.path.abspath("api.%d.mhc" % os.getpid()), path
        assert memhound.is_active()
        s = memhound.stats()
        assert s["active"] and s["pid"] == os.getpid(), s
        memhound.mark("phase 2")
        data = [bytearray(1000) for _ in range(1000)]
        memhound.flush()
        memhound.stop()
        memhound.stop()
        assert not memhound.is_active()
        print(path)
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    with open(r.stdout.strip(), "rb") as f:
        assert f.read(8) == MAGIC


def test_api_errors(tmp_path):
    r = api("""
        import memhound
        for kwargs, exc in [({"mode": "fast"}, ValueError),
                            ({"sample_interval": 0}, ValueError),
                            ({"sample_interval": "1m"}, TypeError),
                            ({"max_depth": 0}, ValueError)]:
            try:
                memhound.start("x.mhc", **kwargs)
            except exc as e:
                print(type(e).__name__, e)
            else:
                raise SystemExit("no error for %r" % kwargs)
        memhound.start("x.mhc")
        try:
            memhound.start("y.mhc")
        except RuntimeError as e:
            print("RuntimeError", e)
        else:
            raise SystemExit("second start accepted")
        memhound.stop()
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "mode must be 'sample' or 'trace', not 'fast'" in r.stdout
    assert "already recording" in r.stdout


def test_api_without_agent(tmp_path):
    pkg = tmp_path / "py" / "memhound"
    pkg.mkdir(parents=True)
    shutil.copy(str(PYDIR / "memhound" / "__init__.py"), str(pkg))
    r = api("""
        import memhound, sys
        assert not memhound.is_active()
        memhound.stop()
        try:
            memhound.start()
        except ImportError as e:
            print(type(e).__name__, e)
    """, tmp_path, pythonpath=tmp_path / "py")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("AgentNotAvailableError no agent built for Python 3.")
    assert "make agent PYTHON=%s" % PY in r.stdout


def test_api_fork_child_capture(tmp_path):
    r = api("""
        import os, memhound
        memhound.start("f.mhc")
        pid = os.fork()
        if pid == 0:
            s = memhound.stats()
            ok = s["active"] and s["path"].endswith("f.%d.mhc" % os.getpid())
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        memhound.stop()
        print(pid, status)
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    pid, status = r.stdout.split()
    assert status == "0", r.stderr
    assert (tmp_path / "f.mhc").exists()
    assert (tmp_path / ("f.%s.mhc" % pid)).exists()


def test_lib_prefixes_cover_sysconfig(tmp_path, py):
    r = api("""
        import os, sys, memhound
        mine = set(memhound._lib_prefixes())  # before sysconfig is loaded
        import sysconfig
        want = {os.path.realpath(p) for k, p in sysconfig.get_paths().items()
                if k in ("stdlib", "platstdlib", "purelib", "platlib")}
        print(sorted(want - mine))
    """, tmp_path, py=py)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"
