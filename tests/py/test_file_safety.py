"""Every file memhound creates is created safely (docs/security.md, "Files"):
never through a symbolic link, never into a FIFO, a device or a file it did
not create, mode 0600, unpredictable default names, output directories
checked the way ssh checks its own, and --force replaces only a regular
file of the same user.

Real symlinks, a real FIFO (every run is bounded by a timeout, so a hang
fails the test instead of stalling the suite), /dev/null, a real second
user (useradd; skipped with a printed line when not root), and real
`memhound run`, `snapshot`, `guard`, `report` and `heap` commands.
"""

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import MEMHOUND, PYDIR, SYSTEM_PY, clean_env, describe

TIMEOUT = 60  # any one command; a FIFO hang would hit it

pytestmark = pytest.mark.skipif(
    not MEMHOUND.exists(), reason="%s is not built (make)" % MEMHOUND)

PROG = "x = [bytearray(100) for _ in range(20000)]\nprint('ran')\n"


def mh(*args, cwd=None, env=None, timeout=TIMEOUT, umask=None):
    """build/memhound ARGS to completion; a hang fails the test."""
    pre = (lambda: os.umask(umask)) if umask is not None else None
    try:
        return subprocess.run([str(MEMHOUND), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env or clean_env(),
                              cwd=str(cwd) if cwd else None, stdin=subprocess.DEVNULL,
                              preexec_fn=pre, start_new_session=True)
    except subprocess.TimeoutExpired:
        pytest.fail("memhound %s hung (timeout %ds)" % (" ".join(map(str, args)), timeout))


def prog(tmp_path, source=PROG, name="t.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(source))
    return p


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_not_started(r, tmp_path):
    """The target never ran: memhound refused before starting it."""
    assert r.returncode == 1, describe(r)
    assert "ran" not in r.stdout, describe(r)
    assert not list(tmp_path.glob("*.mhc")), list(tmp_path.iterdir())


# --- symbolic links ----------------------------------------------------------

@pytest.mark.parametrize("force", [False, True])
def test_symlink_output_is_never_followed(tmp_path, force):
    victim = tmp_path / "victim"
    victim.write_text("MY DATA")
    (tmp_path / "x.mhc").symlink_to(victim)
    r = mh("run", *(["--force"] if force else []), "-o", "x.mhc", "--",
           SYSTEM_PY, prog(tmp_path), cwd=tmp_path)
    assert r.returncode == 1, describe(r)
    assert "ran" not in r.stdout
    assert "x.mhc': it is a symbolic link (memhound never writes through one)" \
        in r.stderr, describe(r)
    assert victim.read_text() == "MY DATA"
    assert os.path.islink(tmp_path / "x.mhc")


def test_dangling_symlink_creates_nothing(tmp_path):
    target = tmp_path / "made-through-link"
    (tmp_path / "x.mhc").symlink_to(target)
    r = mh("run", "-o", "x.mhc", "--", SYSTEM_PY, prog(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "symbolic link" in r.stderr, describe(r)
    assert not target.exists()


def test_agent_refuses_a_symlink_planted_for_a_child(tmp_path):
    # `run` cannot know a child's pid in advance: the agent itself must
    # refuse the link. The planted name is the one memhound.start() gets.
    victim = tmp_path / "victim"
    victim.write_text("MY DATA")
    link = tmp_path / "planted.mhc"
    link.symlink_to(victim)
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import memhound
        for force in (False, True):
            try:
                memhound.start(%r, force=force)
            except OSError as e:
                print("refused:", e)
            else:
                print("recording")
    """ % (str(PYDIR), str(link)))
    r = subprocess.run([SYSTEM_PY, "-c", code], capture_output=True, text=True,
                       timeout=TIMEOUT, env=clean_env())
    assert r.stdout.count("refused:") == 2, describe(r)
    assert "it is a symbolic link" in r.stdout, describe(r)
    assert victim.read_text() == "MY DATA"


# --- FIFOs and devices -------------------------------------------------------

def test_fifo_output_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "f.mhc"
    os.mkfifo(fifo)
    marker = tmp_path / "started"
    p = prog(tmp_path, "open(%r, 'w').close()\n" % str(marker))
    for extra in ([], ["--force"]):
        t0 = time.monotonic()
        r = mh("run", *extra, "-o", fifo, "--", SYSTEM_PY, p, timeout=20)
        assert r.returncode == 1, describe(r)
        assert "f.mhc': it is a FIFO, not a regular file" in r.stderr, describe(r)
        assert "not a Python program" not in r.stderr
        assert time.monotonic() - t0 < 10
        assert not marker.exists()  # refused before the target started
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_agent_refuses_a_fifo_without_hanging(tmp_path):
    fifo = tmp_path / "child.mhc"
    os.mkfifo(fifo)
    code = "import sys; sys.path.insert(0, %r); import memhound\n" \
           "try:\n    memhound.start(%r, force=True)\n" \
           "except OSError as e:\n    print('refused:', e)\n" % (str(PYDIR), str(fifo))
    r = subprocess.run([SYSTEM_PY, "-c", code], capture_output=True, text=True,
                       timeout=20, env=clean_env())
    assert "refused:" in r.stdout and "it is a FIFO" in r.stdout, describe(r)


@pytest.mark.parametrize("cmd", ["run", "report", "snapshot"])
def test_dev_null_is_refused(tmp_path, cmd):
    if cmd == "run":
        r = mh("run", "-o", "/dev/null", "--", SYSTEM_PY, prog(tmp_path), cwd=tmp_path)
        assert "ran" not in r.stdout
    elif cmd == "report":
        cap = tmp_path / "c.mhc"
        ok = mh("run", "-q", "-o", cap, "--", SYSTEM_PY, prog(tmp_path))
        assert ok.returncode == 0, describe(ok)
        r = mh("report", cap, "-o", "/dev/null", "--force")
    else:
        # checked before the process is asked; our own pid is recording
        # nothing, so use a recording target
        r = None
        with Recording(tmp_path) as t:
            r = mh("snapshot", t.pid, "-o", "/dev/null", "--force")
    assert r.returncode == 1, describe(r)
    assert "cannot create '/dev/null': it is a character device, not a regular file" \
        in r.stderr, describe(r)


# --- existing files and --force ---------------------------------------------

def test_existing_file_needs_force_and_force_replaces_it(tmp_path):
    cap = tmp_path / "old.mhc"
    cap.write_text("OLD")
    os.chmod(cap, 0o644)
    twin = tmp_path / "twin"
    os.link(cap, twin)  # another name for the old inode: must keep "OLD"
    r = mh("run", "-o", cap, "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "old.mhc': the file exists; pass --force to replace it" in r.stderr, describe(r)
    assert cap.read_text() == "OLD"
    r = mh("run", "-q", "--force", "-o", cap, "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    assert mode(cap) == 0o600
    assert twin.read_text() == "OLD"  # replaced by rename, never written
    rep = mh("report", "--format", "json", cap)
    assert rep.returncode == 0, describe(rep)
    # report -o: the same rule
    out = tmp_path / "report.txt"
    out.write_text("mine")
    r = mh("report", cap, "-o", out)
    assert r.returncode == 1 and "pass --force" in r.stderr, describe(r)
    assert out.read_text() == "mine"
    r = mh("report", cap, "-o", out, "--force")
    assert r.returncode == 0, describe(r)
    assert out.read_text() != "mine" and mode(out) == 0o600


def test_run_force_also_replaces_derived_heap_dumps(tmp_path):
    # A second `run --force` over the first one's files: the capture and
    # its periodic dumps (same names) are replaced, not refused.
    p = prog(tmp_path, "import time\nx = [str(i) for i in range(20000)]\n"
                       "time.sleep(1.5)\nprint('ran')\n")
    cap = tmp_path / "c.mhc"
    for extra in ([], ["--force"]):
        r = mh("run", "-q", *extra, "--heap-every", "0.5s", "-o", cap, "--", SYSTEM_PY, p)
        assert r.returncode == 0, describe(r)
        assert "cannot" not in r.stderr, describe(r)
    assert list(tmp_path.glob("c.heap*.mhh"))


def test_exec_keeps_the_capture_written_before_it(tmp_path):
    # Python exec'ing Python: same pid, same %p name. The second must not
    # truncate the first (nor fail): it gets a fresh name.
    p = prog(tmp_path, """
        import os, sys
        x = [bytearray(100) for _ in range(20000)]
        if len(sys.argv) == 1:
            os.execv(sys.executable, [sys.executable, __file__, "again"])
        print("ran")
    """)
    r = mh("run", "-o", tmp_path / "c.%p.mhc", "--", SYSTEM_PY, p)
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    assert "unrecorded" not in r.stderr, describe(r)
    caps = sorted(tmp_path.glob("c.*.mhc"))
    assert len(caps) == 2, describe(r)


# --- another real user -------------------------------------------------------

@pytest.fixture
def other_user():
    """A real second user, made with useradd for this test, removed after."""
    if os.geteuid() != 0:
        print("skipped: creating a second user needs root")
        pytest.skip("needs root for useradd")
    name = "mhsafe" + uuid.uuid4().hex[:8]
    r = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false", name],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("skipped: useradd failed: %s" % r.stderr.strip())
        pytest.skip("useradd failed: %s" % r.stderr.strip())
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def as_user(user, *argv, cwd=None):
    def drop():
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    return subprocess.run(list(map(str, argv)), capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=drop, cwd=cwd, env=clean_env())


@pytest.fixture
def shared_dir():
    """A directory like /tmp (sticky, world-writable) that another user
    can reach: pytest's own directories are private to root."""
    d = Path(tempfile.mkdtemp(prefix="mh-shared-", dir="/tmp"))
    os.chmod(d, 0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_file_precreated_by_another_user(tmp_path, other_user, shared_dir):
    cap = shared_dir / "x.mhc"
    # the other user plants a world-readable, world-writable file
    r = as_user(other_user, SYSTEM_PY, "-c",
                "import os; os.umask(0); open(%r, 'w').write('THEIRS')" % str(cap))
    assert r.returncode == 0, describe(r)
    assert os.stat(cap).st_uid == other_user.pw_uid and mode(cap) == 0o666
    r = mh("run", "-o", cap, "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "the file exists; pass --force" in r.stderr, describe(r)
    r = mh("run", "--force", "-o", cap, "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "cannot replace '%s': it belongs to another user (uid %d); --force " \
        "only replaces a file of your own" % (cap, other_user.pw_uid) in r.stderr, describe(r)
    st = os.stat(cap)
    assert st.st_uid == other_user.pw_uid and cap.read_text() == "THEIRS"
    # the agent refuses it too (a child's name cannot be preflighted)
    code = "import sys; sys.path.insert(0, %r); import memhound\n" \
           "try:\n    memhound.start(%r, force=True)\n" \
           "except OSError as e:\n    print('refused:', e)\n" % (str(PYDIR), str(cap))
    r = subprocess.run([SYSTEM_PY, "-c", code], capture_output=True, text=True,
                       timeout=TIMEOUT, env=clean_env())
    assert "refused:" in r.stdout and "belongs to another user" in r.stdout, describe(r)
    assert cap.read_text() == "THEIRS"
    # report -o and the guard log follow the same rule
    rep_cap = tmp_path / "mine.mhc"
    assert mh("run", "-q", "-o", rep_cap, "--", SYSTEM_PY, prog(tmp_path)).returncode == 0
    r = mh("report", rep_cap, "-o", cap, "--force")
    assert r.returncode == 1 and "belongs to another user" in r.stderr, describe(r)
    r = mh("guard", "--worker-match", "python", "--force", "--log", cap, "--rss-limit", "1g", "--", SYSTEM_PY, "-c", "pass")
    assert r.returncode == 1 and "belongs to another user" in r.stderr, describe(r)
    assert cap.read_text() == "THEIRS" and os.stat(cap).st_uid == other_user.pw_uid


def test_directory_of_another_user_is_refused(tmp_path, other_user):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    r = mh("run", "-o", theirs / "x.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert_not_started(r, theirs)
    assert "cannot write in '%s': it belongs to another user (uid %d)" % (
        theirs, other_user.pw_uid) in r.stderr, describe(r)
    r = mh("guard", "--worker-match", "python", "--snapshot-dir", theirs, "--rss-limit", "1g", "--",
           SYSTEM_PY, "-c", "print('ran')")
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "belongs to another user" in r.stderr, describe(r)
    r = mh("guard", "--snapshot-dir", theirs, "--rss-limit", "1g", "--pid", "999999999")
    assert r.returncode == 1 and "belongs to another user" in r.stderr, describe(r)


# --- directories ---------------------------------------------------------------

def test_world_writable_directory_is_refused_unless_sticky(tmp_path):
    ww = tmp_path / "ww"
    ww.mkdir()
    os.chmod(ww, 0o777)
    want = "cannot write in '%s': it is writable by other users (mode 0777, not sticky)" % ww
    r = mh("run", "-o", ww / "x.%p.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert want in r.stderr, describe(r)
    cap = tmp_path / "c.mhc"
    assert mh("run", "-q", "-o", cap, "--", SYSTEM_PY, prog(tmp_path)).returncode == 0
    r = mh("report", cap, "-o", ww / "r.txt")
    assert r.returncode == 1 and want in r.stderr, describe(r)
    r = mh("guard", "--worker-match", "python", "--snapshot-dir", ww, "--rss-limit", "1g", "--", SYSTEM_PY, "-c",
           "print('ran')")
    assert r.returncode == 1 and "ran" not in r.stdout and want in r.stderr, describe(r)
    # --pid: no capture template to check, only the dump directory
    r = mh("guard", "--snapshot-dir", ww, "--rss-limit", "1g", "--pid", "999999999")
    assert r.returncode == 1 and want in r.stderr, describe(r)
    # group-writable too; a sticky one (like /tmp) is fine
    os.chmod(ww, 0o770)
    r = mh("run", "-o", ww / "x.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "writable by its group" in r.stderr, describe(r)
    os.chmod(ww, 0o1777)
    r = mh("run", "-q", "-o", ww / "x.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    # a safe directory below an unsafe one is not safe
    os.chmod(ww, 0o777)
    sub = ww / "sub"
    sub.mkdir(mode=0o700)
    r = mh("run", "-o", sub / "x.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "'%s' above it is writable by other users" % ww \
        in r.stderr, describe(r)


def test_pid_in_a_directory_is_refused(tmp_path):
    r = mh("run", "-o", tmp_path / "%p" / "x.mhc", "--", SYSTEM_PY, prog(tmp_path))
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "%p, %r and %R may appear in the file name only" in r.stderr, describe(r)


def test_guard_creates_its_snapshot_dir_0700(tmp_path):
    snap = tmp_path / "snap"
    log = tmp_path / "g.log"
    r = mh("guard", "--worker-match", "python", "--snapshot-dir", snap, "--log", log, "--rss-limit", "1g",
           "--", SYSTEM_PY, "-c", "print('ran')", umask=0)
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    assert mode(snap) == 0o700
    assert mode(log) == 0o600
    assert json.loads(log.read_text().splitlines()[0])["event"] == "start"


# --- the guard log -----------------------------------------------------------

def test_guard_log_is_created_safely(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("MY DATA")
    link = tmp_path / "link.log"
    link.symlink_to(victim)
    r = mh("guard", "--worker-match", "python", "--force", "--log", link, "--rss-limit", "1g", "--",
           SYSTEM_PY, "-c", "print('ran')")
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "it is a symbolic link" in r.stderr, describe(r)
    assert victim.read_text() == "MY DATA"
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    r = mh("guard", "--worker-match", "python", "--force", "--log", fifo, "--rss-limit", "1g", "--",
           SYSTEM_PY, "-c", "print('ran')", timeout=20)
    assert r.returncode == 1 and "it is a FIFO" in r.stderr, describe(r)
    log = tmp_path / "g.log"
    log.write_text("earlier\n")
    os.chmod(log, 0o644)
    r = mh("guard", "--worker-match", "python", "--log", log, "--rss-limit", "1g", "--", SYSTEM_PY, "-c", "print('ran')")
    assert r.returncode == 1 and "ran" not in r.stdout, describe(r)
    assert "the file exists; pass --force to append to it" in r.stderr, describe(r)
    r = mh("guard", "--worker-match", "python", "--force", "--log", log, "--rss-limit", "1g", "--",
           SYSTEM_PY, "-c", "print('ran')")
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier" and len(lines) > 1, lines
    assert mode(log) == 0o600


# --- modes and names ---------------------------------------------------------

class Recording:
    """A Python program under `memhound run` that records until told to
    stop (a file appears) or a deadline passes."""

    SRC = """
        import os, sys, time
        import memhound
        keep = [str(i) for i in range(20000)]
        print("ready", os.getpid(), flush=True)
        deadline = time.time() + 60
        while not os.path.exists(sys.argv[1]) and time.time() < deadline:
            time.sleep(0.02)
    """

    def __init__(self, tmp_path, output=None):
        self.tmp = tmp_path
        self.stop = tmp_path / "stop"
        p = prog(tmp_path, self.SRC, "rec.py")
        self.args = [str(MEMHOUND), "run", "-q"]
        if output:
            self.args += ["-o", str(output)]
        self.args += ["--", SYSTEM_PY, str(p), str(self.stop)]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, cwd=str(self.tmp), env=clean_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True,
                                     preexec_fn=lambda: os.umask(0))
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.proc.kill()
            pytest.fail("target did not start: %r %s" % (line, self.proc.stderr.read()))
        self.pid = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        self.stop.write_text("")
        try:
            self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.communicate()


def test_every_created_file_is_0600(tmp_path):
    # umask 0: the modes are memhound's doing, not the umask's
    p = prog(tmp_path, """
        import os, time
        x = [bytearray(100) for _ in range(20000)]
        pid = os.fork()
        if pid == 0:
            y = [bytearray(100) for _ in range(20000)]
            time.sleep(0.8)
            os._exit(0)
        os.waitpid(pid, 0)
        print("ran")
    """)
    r = mh("run", "-q", "--heap-every", "0.3s", "-o", tmp_path / "c.%p.mhc", "--",
           SYSTEM_PY, p, umask=0)
    assert r.returncode == 0 and "ran" in r.stdout, describe(r)
    caps = list(tmp_path.glob("c.*.mhc"))
    dumps = list(tmp_path.glob("c.*.heap*.mhh"))
    assert len(caps) == 2, caps  # the parent's and the forked child's
    assert dumps, list(tmp_path.iterdir())
    for f in caps + dumps:
        assert mode(f) == 0o600, (f, oct(mode(f)))
    out = tmp_path / "report.json"
    r = mh("report", "--format", "json", "-o", out, *caps, umask=0)
    assert r.returncode == 0, describe(r)
    assert mode(out) == 0o600
    census = tmp_path / "census.txt"
    r = mh("heap", "census", "-o", census, dumps[0], umask=0)
    assert r.returncode == 0, describe(r)
    assert mode(census) == 0o600
    with Recording(tmp_path, tmp_path / "rec.mhc") as t:
        r = mh("snapshot", t.pid, "-o", tmp_path / "snap.mhh", umask=0)
        assert r.returncode == 0, describe(r)
        assert mode(tmp_path / "snap.mhh") == 0o600
        r = mh("snapshot", t.pid, "-o", tmp_path / "snap.mhh")
        assert r.returncode == 1 and "pass --force" in r.stderr, describe(r)
        r = mh("snapshot", "--force", t.pid, "-o", tmp_path / "snap.mhh")
        assert r.returncode == 0, describe(r)
    assert mode(tmp_path / "rec.mhc") == 0o600


def test_default_names_are_unpredictable(tmp_path):
    names = []
    for _ in range(2):
        r = mh("run", "-q", "--", SYSTEM_PY, prog(tmp_path), cwd=tmp_path)
        assert r.returncode == 0, describe(r)
    for f in tmp_path.glob("memhound.*.mhc"):
        m = re.fullmatch(r"memhound\.[0-9a-f]{16}\.(\d+)\.([0-9a-f]{10})\.mhc", f.name)
        assert m, f.name
        names.append(m.group(2))
        assert mode(f) == 0o600
    assert len(names) == 2 and names[0] != names[1], names
    with Recording(tmp_path) as t:
        r = mh("snapshot", t.pid, cwd=tmp_path)
        assert r.returncode == 0, describe(r)
        dumps = list(tmp_path.glob("memhound-heap.*.mhh"))
        assert len(dumps) == 1, dumps
        assert re.fullmatch(r"memhound-heap\.%d\.[0-9a-f]{10}\.mhh" % t.pid,
                            dumps[0].name), dumps[0].name
        assert mode(dumps[0]) == 0o600
    # memhound.dump_heap() without a path, not recording
    code = "import sys; sys.path.insert(0, %r); import memhound\n" \
           "print(memhound.dump_heap())\n" % str(PYDIR)
    r = subprocess.run([SYSTEM_PY, "-c", code], capture_output=True, text=True,
                       timeout=TIMEOUT, env=clean_env(), cwd=str(tmp_path))
    assert r.returncode == 0, describe(r)
    assert re.fullmatch(r"memhound-heap\.\d+\.[0-9a-f]{10}\.mhh",
                        os.path.basename(r.stdout.strip())), r.stdout
