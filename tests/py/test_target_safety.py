"""The target's files are never touched (docs/run.md, "What memhound
holds in your program"): memhound's descriptors sit far above the numbers
programs use, close-on-exec, and every capture write first checks that the
descriptor is still memhound's file. A program that closes every
descriptor (os.closerange, as daemonising code does) and opens its own
files keeps them to itself. Subinterpreters are skipped quietly. A
selection of CPython's own test suite passes under `memhound run` wherever
it passes without it.
"""

import re
import subprocess

import pytest

from conftest import MATRIX, MEMHOUND, clean_env, describe, find_site

# Allocates between steps so the writer has chunks to write (every 100 ms)
# while the program's own files are open.
CLOSERANGE = r"""
import os, sys, time

def churn(n, size):
    return [bytearray(size) for _ in range(n)]

keep = churn(20000, 1000)
time.sleep(0.3)                     # a few capture chunks written
os.closerange(3, 4096)              # daemonising code does this
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"MY DATA")
mode = sys.argv[2]
if mode == "fill":
    # Every number up to 4096 (memhound's old one included) is now the
    # program's data file: no descriptor of memhound's is left.
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft, 4096)
    for n in range(3, top):
        if n != fd:
            try:
                os.dup2(fd, n, inheritable=False)
            except OSError:
                break
    # ...and the capture's path no longer names the capture.
    os.rename(sys.argv[3], sys.argv[3] + ".moved")
keep += [bytearray(3000) for _ in range(50000)]  # MARK:after
time.sleep(0.5)                     # more chunks while the file is open
os.write(fd, b" END")
os.close(fd)
print("first free fd", os.open(os.devnull, os.O_RDONLY))
"""


def test_closerange_keeps_program_file_and_capture(mh, py, program,
                                                   tmp_path):
    prog = program(CLOSERANGE, name="closer.py")
    data = tmp_path / "data.bin"
    out = tmp_path / "cap.mhc"
    r = mh.run(py, [prog.path, data, "plain"], output=out)
    assert data.read_bytes() == b"MY DATA END", describe(r)
    # Nothing was lost: the capture was reopened by its path and goes on
    # after the closerange, to its END.
    assert "memhound: warning" not in r.stderr, describe(r)
    rep = mh.report_json([str(out)])
    assert rep["processes"][0].get("clean_end") is not False, rep["processes"]
    assert find_site(rep["live"], prog.site("after")), rep["live"]


def test_program_takes_every_fd_capture_stops(mh, py, program, tmp_path):
    prog = program(CLOSERANGE, name="closer.py")
    data = tmp_path / "data.bin"
    out = tmp_path / "cap.mhc"
    r = mh.run(py, [prog.path, data, "fill", out], output=out)
    # Not one byte of the capture in the program's file...
    assert data.read_bytes() == b"MY DATA END", describe(r)
    # ...the loss is named, and what was written before stays readable.
    assert re.search(r"memhound: warning: cannot write capture '.*': the "
                     r"program closed or reused its descriptor \(\d+\) and "
                     r"the file cannot be reopened; recording stopped, the "
                     r"capture ends here", r.stderr), describe(r)
    moved = str(out) + ".moved"
    rep = mh.report_json([moved])
    assert rep["processes"][0].get("clean_end") is False, rep["processes"]


def test_descriptors_sit_high_and_close_on_exec(mh, py, tmp_path):
    prog = tmp_path / "fds.py"
    prog.write_text(r"""
import os, subprocess, sys
fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
mine = []
for n in fds:
    try:
        target = os.readlink("/proc/self/fd/%d" % n)
    except OSError:
        continue
    if target.endswith(".mhc") or target.startswith("socket:"):
        mine.append(n)
print("memhound fds", mine)
print("first free fd", os.open(os.devnull, os.O_RDONLY))
# A child started with close_fds=False sees none of them.
out = subprocess.run(["ls", "/proc/self/fd"], close_fds=False,
                     capture_output=True, text=True).stdout.split()
print("child fds", sorted(int(n) for n in out))
""")
    r = mh.run(py, [prog])
    m = re.search(r"memhound fds \[([\d, ]*)\]", r.stdout)
    mine = [int(x) for x in m.group(1).split(",") if x.strip()]
    assert len(mine) >= 2, describe(r)  # the capture and the socket
    assert all(n >= 100 for n in mine), describe(r)
    assert "first free fd 3" in r.stdout, describe(r)
    child = re.search(r"child fds \[([\d, ]*)\]", r.stdout).group(1)
    assert not set(mine) & {int(x) for x in child.split(",") if x.strip()}


SUBINTERP = r"""
import sys, time
try:
    import _interpreters as I            # 3.13
except ImportError:
    import _xxsubinterpreters as I       # 3.9-3.12
keep = []
for k in range(3):
    i = I.create()
    src = "x = [bytearray(1000) for _ in range(3000)]\n"
    if hasattr(I, "exec"):
        I.exec(i, src)
    else:
        I.run_string(i, src)
    I.destroy(i)
    keep.append([bytearray(2000) for _ in range(5000)])  # MARK:main
print("done")
"""


def _has_subinterpreters(py):
    r = subprocess.run([py, "-c", "import _xxsubinterpreters"],
                       capture_output=True)
    r2 = subprocess.run([py, "-c", "import _interpreters"],
                        capture_output=True)
    return r.returncode == 0 or r2.returncode == 0


def test_subinterpreters_are_skipped_quietly(mh, py, program, tmp_path):
    if not _has_subinterpreters(py):
        pytest.skip("%s has no _xxsubinterpreters/_interpreters" % py)
    prog = program(SUBINTERP)
    r = mh.run(py, [prog.path])
    assert "done" in r.stdout, describe(r)
    noise = [l for l in r.stderr.splitlines()
             if l.startswith("memhound:") and "wrote capture" not in l
             and "to see what grew" not in l]
    assert not noise, describe(r)
    caps = mh.captures()
    assert len(caps) == 1, caps
    rep = mh.report_json(caps)
    assert rep["processes"][0].get("clean_end") is not False
    assert rep["summary"].get("samples", 1) != 0 or rep["growth"], rep


# --- CPython's own tests ---------------------------------------------------
#
# Tests that spawn children, pass and close descriptors, and fork, from the
# interpreter's own `test` package, run under `memhound run` (which records
# every Python process they start). What passes without memhound must pass
# with it. The one allowed difference (docs/run.md): a test whose child
# lists its own descriptors with subprocessdata/fd_status.py and expects
# only the ones it was given; a child recorded by memhound also holds
# memhound's. Those are left out by name.

CPYTHON_FILES = ["test_subprocess", "test_os", "test_fork1", "test_threading"]
CPYTHON_MATCH = ["test_pass_fds*", "test_close_fds*", "test_swap_fds",
                 "test_closerange", "test_dup2", "*Inheritable*", "*fork*",
                 "ForkTest*", "test_nested_import", "test_threaded_import"]
CPYTHON_LISTS_OWN_FDS = ["test_pass_fds_redirected",
                         "test_close_fds_when_max_fd_is_lowered"]


def _has_test_package(py):
    """Whether py ships CPython's own tests (Debian's python3 has only a
    part of them without libpython3-testsuite)."""
    code = ("import importlib.util as u, sys; sys.exit(not all("
            "u.find_spec('test.' + m) for m in %r))" % (CPYTHON_FILES,))
    return subprocess.run([py, "-c", code], capture_output=True).returncode == 0


def _regrtest(procs, argv, tmp_path):
    r = procs.run(argv, timeout=300, env=clean_env(), cwd=str(tmp_path))
    m = re.search(r"^Total tests: run=(\d+)", r.stdout, re.M)
    ran = int(m.group(1)) if m else None
    return r, ran


@pytest.mark.parametrize("py", [
    pytest.param(path, id=vid, marks=[] if path else [pytest.mark.skip(
        reason=why)])
    for vid, path, why in MATRIX if vid in ("3.11", "3.12", "3.13")])
def test_cpython_suite_selection(mh, procs, py, tmp_path):
    if not _has_test_package(py):
        print("memhound: skipping CPython's own tests on %s: it ships no "
              "`test` package" % py)
        pytest.skip("%s ships no `test` package" % py)
    argv = [py, "-m", "test", "-j2", "--timeout", "120"]
    for pat in CPYTHON_MATCH:
        argv += ["-m", pat]
    for pat in CPYTHON_LISTS_OWN_FDS:
        argv += ["-i", pat]
    argv += CPYTHON_FILES
    plain, plain_ran = _regrtest(procs, argv, tmp_path)
    out = tmp_path / "suite.mhc"
    under, under_ran = _regrtest(
        procs, [MEMHOUND, "run", "-o", out, "--", *argv], tmp_path)
    if plain.returncode == 0:
        assert under.returncode == 0, describe(under)
    # The same tests ran, and enough of them to mean something.
    assert plain_ran and plain_ran > 20, describe(plain)
    assert under_ran == plain_ran, (describe(plain), describe(under))
    assert "Result: SUCCESS" in under.stdout or plain.returncode != 0, (
        describe(under))
    # It was recorded: the runner and the workers it started.
    assert len(mh.captures("suite*.mhc")) >= 3, mh.captures()


@pytest.mark.parametrize("py", [
    pytest.param(path, id=vid, marks=[] if path else [pytest.mark.skip(
        reason=why)])
    for vid, path, why in MATRIX if vid in ("3.11", "3.12", "3.13")])
def test_cpython_fd_listing_sees_only_high_descriptors(mh, procs, py,
                                                        tmp_path):
    """The allowed difference, pinned down: a child that lists its own
    descriptors sees memhound's, and only above the numbers the test
    passed it (not at 3 and 4, where it expected its own)."""
    if not _has_test_package(py):
        print("memhound: skipping CPython's own tests on %s: it ships no "
              "`test` package" % py)
        pytest.skip("%s ships no `test` package" % py)
    r, _ = _regrtest(procs, [MEMHOUND, "run", "-o", tmp_path / "fds.mhc",
                             "--", py, "-m", "test", "-v", "-m",
                             "test_pass_fds_redirected", "test_subprocess"],
                     tmp_path)
    m = re.search(r"Items in the first set but not the second:\n"
                  r"([\d\n]+) : output=", r.stdout)
    assert m, describe(r)
    extra = [int(x) for x in m.group(1).split()]
    assert extra and all(fd >= 100 for fd in extra), (extra, describe(r))
