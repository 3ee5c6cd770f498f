"""Heap dumps without editing the program: `memhound snapshot PID` through
the agent's control socket, `memhound run --heap-every`, and
`memhound.dump_heap()` in-process; every dump is noted in the capture, so
`memhound report` lists it.

A target prints "ready <pid>" when it records and keeps running until
the test creates its stop file (or a deadline passes), so a test never
waits on a process that is gone or hangs on one that never ends.
"""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MEMHOUND, PYDIR, SYSTEM_PY, clean_env, describe

HEAP_MAGIC = b"\x89MHH\r\n\x1a\n"
WAIT = 60  # seconds for anything a test waits on

pytestmark = pytest.mark.skipif(
    not MEMHOUND.exists(), reason="%s is not built (make)" % MEMHOUND)

TARGET = r'''
import os, sys, threading, time
stop = sys.argv[1]
nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
keep = []

def churn(n):
    # allocates and frees all the time, holding a few thousand objects
    mine = []
    while not os.path.exists(stop):
        mine.append({"k%d" % i: str(i) * 3 for i in range(20)})
        if len(mine) > 2000:
            del mine[:1000]

for i in range(nthreads):
    threading.Thread(target=churn, args=(i,), daemon=True).start()
for i in range(10000):
    keep.append("kept %d" % i)
import memhound
print("ready", os.getpid(), memhound.stats()["control"], flush=True)
deadline = time.time() + DEADLINE
while not os.path.exists(stop) and time.time() < deadline:
    keep.append(str(time.time()))
    time.sleep(0.01)
print("done", len(keep), flush=True)
'''


def mh(*args, timeout=WAIT, env=None, cwd=None, user=None):
    """Runs build/memhound ARGS; returns the CompletedProcess (text)."""
    pre = None
    if user is not None:
        def pre():
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)
    return subprocess.run([str(MEMHOUND), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env or clean_env(),
                          cwd=str(cwd) if cwd else None, preexec_fn=pre,
                          stdin=subprocess.DEVNULL)


class Target:
    """A program under `memhound run` that records until stopped."""

    def __init__(self, procs, tmp, py, nthreads=0, options=(), deadline=WAIT,
                 env=None):
        self.tmp = tmp
        self.stopfile = tmp / "stop"
        prog = tmp / "target.py"
        prog.write_text(TARGET.replace("DEADLINE", str(deadline)))
        self.capture = tmp / "cap.mhc"
        self.proc = procs.popen(
            [MEMHOUND, "run", "-q", "-o", self.capture, *options, "--", py,
             prog, self.stopfile, str(nthreads)],
            cwd=str(tmp), env=env or clean_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.proc.kill()
            pytest.fail("target did not start: %r\n%s" % (
                line, self.proc.stderr.read()))
        _, pid, self.socket = line.split()
        self.pid = int(pid)

    def stop(self):
        self.stopfile.write_text("")
        out, err = self.proc.communicate(timeout=WAIT)
        assert self.proc.returncode == 0, err
        assert "done" in out, out
        return out, err


def heap_dumps_in_report(capture):
    """The dumps `memhound report` found in the capture's markers."""
    r = mh("report", "--format", "json", capture)
    assert r.returncode == 0, describe(r)
    rep = json.loads(r.stdout)
    return [d["path"] for d in rep["heap"]["dumps"]]


def check_dump(path):
    p = Path(path)
    assert p.exists(), path
    st = p.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(p, "rb") as f:
        assert f.read(8) == HEAP_MAGIC
    # the dump is whole and reads: the census of it lists types
    r = mh("heap", "census", path, "--format", "json")
    assert r.returncode == 0, describe(r)
    assert json.loads(r.stdout)["types"], r.stdout[:500]


# --- a live process ----------------------------------------------------------

def test_snapshot_of_a_live_process(procs, tmp_path, py):
    t = Target(procs, tmp_path, py)
    sock = Path(t.socket)
    assert sock.name == "%d.sock" % t.pid
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
    d = sock.parent.lstat()
    assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o700
    assert d.st_uid == os.geteuid()

    r = mh("snapshot", t.pid, cwd=tmp_path)
    assert r.returncode == 0, describe(r)
    # the default name: the pid, then a random tag (docs/security.md)
    first = tmp_path / r.stdout.split(":")[0]
    assert re.fullmatch(r"memhound-heap\.%d\.[0-9a-f]{10}\.mhh" % t.pid,
                        first.name), r.stdout
    assert "paused" in r.stdout and "walk" in r.stdout
    check_dump(first)

    r = mh("snapshot", t.pid, "-o", "named.mhh", "--format", "json",
           cwd=tmp_path)
    assert r.returncode == 0, describe(r)
    info = json.loads(r.stdout)
    assert info["pid"] == t.pid and info["complete"] is True
    assert info["path"] == str(tmp_path / "named.mhh")
    assert 0 < info["pause_ns"] < 5e9 and info["walk_ns"] > 0
    check_dump(tmp_path / "named.mhh")

    # the next default name does not overwrite the first
    r = mh("snapshot", t.pid, cwd=tmp_path)
    assert r.returncode == 0, describe(r)
    second = tmp_path / r.stdout.split(":")[0]
    assert second != first
    check_dump(second)

    t.stop()
    assert not sock.exists(), "the socket outlived the process"
    found = heap_dumps_in_report(t.capture)
    assert found == [str(first), str(tmp_path / "named.mhh"), str(second)]


def test_control_protocol(procs, tmp_path):
    t = Target(procs, tmp_path, SYSTEM_PY)

    def ask(line, fd=None):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(WAIT)
        s.connect(t.socket)
        if fd is None:
            s.sendall(line)
        else:
            socket.send_fds(s, [line], [fd])
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode()

    assert ask(b"ping\n") == "ok %d %s\n" % (t.pid, t.capture)
    assert ask(b"flush\n") == "ok\n"
    assert ask(b"dump relative.mhh\n").startswith("error dump needs an absolute")
    assert ask(b"frobnicate\n").startswith("error unknown request 'frobnicate'")
    assert ask(b"dump /a\0b\n").startswith("error request contains a NUL")
    assert ask(b"x" * 10000).startswith("error request too long")
    reply = ask(b"dump-wait %s\n" % str(tmp_path / "p.mhh").encode())
    ok, child, pause, walk = reply.split()
    assert ok == "ok" and int(child) > 0 and int(pause) > 0 and int(walk) > 0
    check_dump(tmp_path / "p.mhh")
    reply = ask(b"dump %s\n" % str(tmp_path / "nowait.mhh").encode())
    assert reply.startswith("ok ") and len(reply.split()) == 3
    # a dump that cannot be written says why
    reply = ask(b"dump-wait /nonexistent/dir/x.mhh\n")
    assert reply.startswith("error "), reply
    # A file passed with the request (SCM_RIGHTS) is where the dump goes;
    # the path only names it. Not a regular file open for writing: refused.
    passed = tmp_path / "passed.mhh"
    fd = os.open(passed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        reply = ask(b"dump-wait /nonexistent/named.mhh\n", fd)
    finally:
        os.close(fd)
    assert reply.startswith("ok "), reply
    check_dump(passed)
    assert not os.path.exists("/nonexistent/named.mhh")
    r, w = os.pipe()
    ro = os.open(passed, os.O_RDONLY)
    try:
        for bad in (w, ro):
            reply = ask(b"dump-wait %s\n" % str(tmp_path / "b.mhh").encode(),
                        bad)
            assert reply.startswith("error the descriptor passed with "
                                    "dump-wait is not a regular file"), reply
    finally:
        for x in (r, w, ro):
            os.close(x)
    assert not (tmp_path / "b.mhh").exists()
    t.stop()


# --- errors --------------------------------------------------------------------

def test_dead_pid(tmp_path):
    p = subprocess.Popen(["true"])
    p.wait()
    r = mh("snapshot", p.pid, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == "memhound: no process %d\n" % p.pid


def test_process_not_recording(procs, tmp_path):
    p = procs.popen([SYSTEM_PY, "-c", "import time; time.sleep(60)"],
                    env=clean_env())
    r = mh("snapshot", p.pid, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith(
        "memhound: process %d is not recording with memhound: no control "
        "socket at '" % p.pid), r.stderr
    assert "%d.sock'" % p.pid in r.stderr
    assert not list(tmp_path.glob("*.mhh"))


def test_stale_socket(procs, tmp_path):
    # a process with a socket file nobody listens on: what a SIGKILLed
    # target whose pid was reused leaves behind
    p = procs.popen([SYSTEM_PY, "-c", "import time; time.sleep(60)"],
                    env=clean_env())
    xdg = tmp_path / "xdg"
    (xdg / "memhound").mkdir(parents=True, mode=0o700)
    path = xdg / "memhound" / ("%d.sock" % p.pid)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    r = mh("snapshot", p.pid, env=clean_env(XDG_RUNTIME_DIR=str(xdg)))
    assert r.returncode == 1
    assert "is stale" in r.stderr and str(path) in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_permission_denied(procs, tmp_path):
    t = Target(procs, tmp_path, SYSTEM_PY)
    os.chmod(tmp_path, 0o777)
    r = mh("snapshot", t.pid, "-o", tmp_path / "x.mhh", user=65534)
    assert r.returncode == 1
    assert "Permission denied" in r.stderr, r.stderr
    assert "only its user or root" in r.stderr
    assert not (tmp_path / "x.mhh").exists()
    t.stop()


def test_socket_outside_the_ownership_rule_is_not_used(procs, tmp_path):
    # The CLI looks for a process's socket only in a directory of the
    # process's user open to nobody else, never through a symlink, and
    # only as a socket of that user (docs/security.md).
    p = procs.popen([SYSTEM_PY, "-c", "import time; time.sleep(60)"],
                    env=clean_env())
    xdg = tmp_path / "xdg"
    d = xdg / "memhound"
    d.mkdir(parents=True, mode=0o700)
    path = d / ("%d.sock" % p.pid)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    env = clean_env(XDG_RUNTIME_DIR=str(xdg))
    try:
        os.chmod(d, 0o755)
        r = mh("snapshot", p.pid, env=env)
        assert r.returncode == 1 and "is open to other users (mode 755)" \
            in r.stderr, r.stderr
        r = mh("inspect", p.pid, env=env)
        assert r.returncode == 1 and "is open to other users (mode 755)" \
            in r.stderr, r.stderr
        os.chmod(d, 0o700)
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
            r = mh("snapshot", p.pid, env=env)
            assert r.returncode == 1 and "does not belong to uid 0" in \
                r.stderr, r.stderr
            os.chown(path, 0, 0)
        d.rename(xdg / "elsewhere")
        os.symlink(xdg / "elsewhere", d)
        r = mh("snapshot", p.pid, env=env)
        assert r.returncode == 1 and "is a symbolic link" in r.stderr, \
            r.stderr
        assert not list(tmp_path.glob("*.mhh"))
    finally:
        s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_root_may_snapshot_another_users_process(procs):
    # a target running as nobody; root asks; nobody's agent writes the file
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="memhound-test-"))
    try:
        os.chmod(tmp, 0o1777)  # sticky, like /tmp: memhound refuses 0777
        prog = tmp / "t.py"
        prog.write_text(TARGET.replace("DEADLINE", str(WAIT)))
        stopfile = tmp / "stop"

        def nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        p = procs.popen([MEMHOUND, "run", "-q", "-o", tmp / "n.mhc", "--",
                         SYSTEM_PY, prog, stopfile],
                        cwd=str(tmp), preexec_fn=nobody, text=True,
                        env=clean_env(XDG_RUNTIME_DIR=""),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = p.stdout.readline()
        assert line.startswith("ready"), p.stderr.read()
        pid = int(line.split()[1])
        assert line.split()[2] == "/tmp/memhound-65534/%d.sock" % pid
        # The command creates the file and hands it to the agent: the dump
        # lands in a directory only root may write, owned by root, 0600.
        private = tmp / "root-only"
        private.mkdir(mode=0o700)
        r = mh("snapshot", pid, "-o", private / "root.mhh")
        assert r.returncode == 0, describe(r)
        st = (private / "root.mhh").stat()
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600, st
        check_dump(private / "root.mhh")
        stopfile.write_text("")
        p.communicate(timeout=WAIT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_unsafe_socket_directory_is_refused(procs, tmp_path):
    # a runtime dir whose memhound/ is open to others: no socket there,
    # the agent falls back to /tmp/memhound-<uid> and says nothing fatal
    xdg = tmp_path / "xdg"
    (xdg / "memhound").mkdir(parents=True)
    os.chmod(xdg / "memhound", 0o755)
    prog = tmp_path / "t.py"
    prog.write_text(TARGET.replace("DEADLINE", str(WAIT)))
    p = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "c.mhc", "--",
                     SYSTEM_PY, prog, tmp_path / "stop"],
                    cwd=str(tmp_path), env=clean_env(XDG_RUNTIME_DIR=str(xdg)),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), p.stderr.read()
    pid = int(line.split()[1])
    assert line.split()[2] == "/tmp/memhound-%d/%d.sock" % (os.geteuid(), pid)
    assert not list((xdg / "memhound").iterdir())
    # the CLI looks in both places
    r = mh("snapshot", pid, "-o", tmp_path / "d.mhh",
           env=clean_env(XDG_RUNTIME_DIR=str(xdg)))
    assert r.returncode == 0, describe(r)
    (tmp_path / "stop").write_text("")
    p.communicate(timeout=WAIT)

    # a symlink in place of the directory is refused the same way
    (xdg / "memhound").rmdir()
    (xdg / "elsewhere").mkdir(mode=0o700)
    os.symlink(xdg / "elsewhere", xdg / "memhound")
    (tmp_path / "stop").unlink()
    p = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "c2.mhc", "--",
                     SYSTEM_PY, prog, tmp_path / "stop"],
                    cwd=str(tmp_path), env=clean_env(XDG_RUNTIME_DIR=str(xdg)),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("ready"), p.stderr.read()
    assert line.split()[2].startswith("/tmp/memhound-")
    assert not list((xdg / "elsewhere").iterdir())
    (tmp_path / "stop").write_text("")
    p.communicate(timeout=WAIT)


def test_usage_errors(tmp_path):
    for args, text in [((), "snapshot needs the PID"),
                       (("abc",), "invalid PID 'abc'"),
                       (("0",), "invalid PID '0'"),
                       (("1", "2"), "takes one PID"),
                       (("1", "--timeout", "x"), "invalid --timeout"),
                       (("1", "--bogus"), "unknown option '--bogus'")]:
        r = mh("snapshot", *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert text in r.stderr, (args, r.stderr)


def test_wait_for_a_process_that_starts_recording(procs, tmp_path):
    prog = tmp_path / "late.py"
    prog.write_text(
        "import os, sys, time\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(1.5)\n"
        "import memhound\n"
        "memhound.start(%r)\n"
        "while not os.path.exists(%r): time.sleep(0.01)\n" % (
            str(tmp_path / "late.mhc"), str(tmp_path / "stop")))
    env = clean_env(PYTHONPATH=str(PYDIR))
    p = procs.popen([SYSTEM_PY, prog], env=env, stdout=subprocess.PIPE,
                    text=True)
    pid = int(p.stdout.readline())
    r = mh("snapshot", pid, "-o", tmp_path / "x.mhh", cwd=tmp_path)
    assert r.returncode == 1 and "not recording" in r.stderr
    r = mh("snapshot", "--wait", pid, "-o", tmp_path / "x.mhh", cwd=tmp_path)
    assert r.returncode == 0, describe(r)
    check_dump(tmp_path / "x.mhh")
    (tmp_path / "stop").write_text("")
    p.wait(timeout=WAIT)


# --- periodic and in-process dumps ---------------------------------------------

def test_heap_every(procs, tmp_path, py):
    t = Target(procs, tmp_path, py, options=("--heap-every", "1s"))
    deadline = time.time() + WAIT
    while not (tmp_path / "cap.heap3.mhh").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # let the third walk finish
    t.stop()
    dumps = sorted(tmp_path.glob("cap.heap*.mhh"))
    assert len(dumps) >= 3, dumps
    for d in dumps:
        check_dump(d)
    found = heap_dumps_in_report(t.capture)
    assert found[:3] == [str(tmp_path / ("cap.heap%d.mhh" % i))
                         for i in (1, 2, 3)]

    # Moved elsewhere together (an archive, another machine), the capture
    # still finds its dumps: beside it, by the names it recorded.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for f in [t.capture, *dumps]:
        f.rename(moved / f.name)
    r = mh("report", "--format", "json", moved / "cap.mhc")
    assert r.returncode == 0, describe(r)
    heap = json.loads(r.stdout)["heap"]
    got = [(d["path"], d["exists"], d["problem"]) for d in heap["dumps"]]
    assert got[:3] == [(str(moved / ("cap.heap%d.mhh" % i)), True, None)
                       for i in (1, 2, 3)], got
    assert any(d["compared"] for d in heap["dumps"]), heap["dumps"]


def test_heap_every_usage(tmp_path):
    for bad in ("0", "-1", "10ms", "abc", "5x", "2y"):
        r = mh("run", "--heap-every", bad, "--", SYSTEM_PY, "-c", "pass",
               cwd=tmp_path)
        assert r.returncode == 2, (bad, r.stderr)
        assert "invalid --heap-every" in r.stderr


def test_busy_threads_do_not_deadlock(procs, tmp_path, py):
    t = Target(procs, tmp_path, py, nthreads=4)
    times = []
    for i in range(3):
        start = time.time()
        r = mh("snapshot", t.pid, "-o", tmp_path / ("busy%d.mhh" % i),
               "--format", "json", "--timeout", "60", timeout=90)
        assert r.returncode == 0, describe(r)
        times.append(time.time() - start)
        info = json.loads(r.stdout)
        assert info["complete"]
        check_dump(tmp_path / ("busy%d.mhh" % i))
    t.stop()  # the threads are still running and the process ends well
    print("snapshot wall times: %s" % ["%.2f" % x for x in times])


DUMP_IN_PROCESS = r'''
import os, sys, stat
import memhound
here = sys.argv[1]
recording = memhound.is_active()
blob = ["x%d" % i for i in range(1000)]
a = memhound.dump_heap()
b = memhound.dump_heap(os.path.join(here, "explicit.mhh"))
c = memhound.dump_heap("relative.mhh", wait=False)
print(recording, a, b, c)
'''


def test_dump_heap_in_process(tmp_path, py):
    prog = tmp_path / "d.py"
    prog.write_text(DUMP_IN_PROCESS)
    r = subprocess.run([MEMHOUND, "run", "-q", "-o", tmp_path / "cap.mhc",
                        "--", py, prog, tmp_path], cwd=str(tmp_path),
                       env=clean_env(), capture_output=True, text=True,
                       timeout=WAIT)
    assert r.returncode == 0, describe(r)
    recording, a, b, c = r.stdout.split()
    assert recording == "True"
    assert a == str(tmp_path / "cap.heap1.mhh")
    assert b == str(tmp_path / "explicit.mhh")
    assert c == str(tmp_path / "relative.mhh")
    for p in (a, b):
        check_dump(p)
    deadline = time.time() + WAIT
    while time.time() < deadline and Path(c).stat().st_size < 20:
        time.sleep(0.05)
    assert heap_dumps_in_report(tmp_path / "cap.mhc") == [a, b, c]


def test_dump_heap_without_recording(tmp_path):
    prog = tmp_path / "d.py"
    prog.write_text(DUMP_IN_PROCESS)
    env = clean_env(PYTHONPATH=str(PYDIR))
    r = subprocess.run([SYSTEM_PY, prog, tmp_path], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0, describe(r)
    recording, a, b, c = r.stdout.split()
    assert recording == "False"
    assert os.path.dirname(a) == str(tmp_path)
    assert re.fullmatch(r"memhound-heap\.\d+\.[0-9a-f]{10}\.mhh", os.path.basename(a)), a
    check_dump(a)
    check_dump(b)


FORKING = r'''
import os, sys, time
import memhound
stop = sys.argv[1]
pid = os.fork()
if pid == 0:
    print("child", os.getpid(), memhound.stats()["control"], flush=True)
    keep = ["child %d" % i for i in range(5000)]
    while not os.path.exists(stop):
        time.sleep(0.01)
    sys.exit(0)
print("parent", os.getpid(), memhound.stats()["control"], flush=True)
os.waitpid(pid, 0)
'''


def test_forked_child_has_its_own_socket(procs, tmp_path):
    prog = tmp_path / "f.py"
    prog.write_text(FORKING)
    stop = tmp_path / "stop"
    p = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "cap.mhc", "--",
                     SYSTEM_PY, prog, stop], cwd=str(tmp_path),
                    env=clean_env(), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    seen = {}
    for _ in range(2):
        who, pid, sock = p.stdout.readline().split()
        seen[who] = (int(pid), sock)
    child, csock = seen["child"]
    parent, psock = seen["parent"]
    assert csock != psock and csock.endswith("/%d.sock" % child)
    r = mh("snapshot", child, "-o", tmp_path / "child.mhh")
    assert r.returncode == 0, describe(r)
    check_dump(tmp_path / "child.mhh")
    stop.write_text("")
    p.communicate(timeout=WAIT)
    assert p.returncode == 0
    assert not Path(csock).exists() and not Path(psock).exists()
    # the dump is noted in the child's capture, not in the parent's
    assert heap_dumps_in_report(tmp_path / ("cap.%d.mhc" % child)) == [
        str(tmp_path / "child.mhh")]
    assert heap_dumps_in_report(tmp_path / "cap.mhc") == []


def test_sockets_of_killed_processes_are_swept(procs, tmp_path):
    # A directory of the test's own: every process that starts or stops
    # recording sweeps its directory, and other tests record meanwhile.
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    env = clean_env(XDG_RUNTIME_DIR=str(xdg))
    t = Target(procs, tmp_path, SYSTEM_PY, env=env)
    sock = Path(t.socket)
    assert sock.parent == xdg / "memhound"
    os.kill(t.pid, 9)
    t.proc.wait(timeout=WAIT)
    assert sock.exists()  # nobody removed it
    r = mh("snapshot", t.pid, env=env)
    assert r.returncode == 1 and "no process" in r.stderr
    # the next process that records in that directory removes it
    (tmp_path / "stop").unlink(missing_ok=True)
    t2 = Target(procs, tmp_path, SYSTEM_PY, env=env,
                options=("--force",))  # cap.mhc again
    assert Path(t2.socket).parent == sock.parent
    assert not sock.exists()
    t2.stop()
