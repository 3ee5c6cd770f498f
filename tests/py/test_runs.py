"""Run ids (docs/run.md, "Runs"; docs/report-json.md, "Runs"): every
capture names its run, `report` never merges two runs' captures unless
told to, `run` never writes into an earlier run's capture, and its closing
hint is one pattern that matches this run's captures and reproduces the
report. Real forks, real gunicorn, a real pid namespace for pid reuse.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MEMHOUND, SYSTEM_PY, clean_env, describe

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = "/usr/bin/gunicorn"

FORKER = """
import os
keep = [bytearray(4096) for _ in range(300)]
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        more = [bytearray(4096) for _ in range(300)]
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.waitpid(k, 0)
print("pids", os.getpid(), *kids, flush=True)
"""

HINT = re.compile(r"^memhound: to see what grew: (.*)$", re.M)
WROTE = re.compile(r"^memhound: wrote capture '([^']+)' \(pid (\d+)\)$", re.M)


def _run(procs, tmp_path, args, prefix=(), expect=0):
    r = procs.run([*prefix, MEMHOUND, "run", *args], env=clean_env(),
                  cwd=str(tmp_path))
    assert r.returncode == expect, describe(r)
    return r


def _report(procs, tmp_path, args, expect=0):
    r = procs.run([MEMHOUND, "report", *args], env=clean_env(),
                  cwd=str(tmp_path))
    assert r.returncode == expect, describe(r)
    return r


def _json(r):
    return json.loads(r.stdout)


def _hint(r):
    """The hint's command line, as the shell would run it, and its run id
    (from --run, or the 16 hex digits in the pattern)."""
    m = HINT.search(r.stderr)
    assert m, r.stderr
    return m.group(1)


def _run_hint(procs, tmp_path, hint, *more):
    """Runs the hint with a POSIX shell, as a user pasting it would."""
    r = procs.run(["sh", "-c", hint + " " + " ".join(more)], env=clean_env(),
                  cwd=str(tmp_path))
    assert r.returncode == 0, describe(r)
    return r


def _files(rep, cwd):
    return sorted(os.path.realpath(os.path.join(cwd, p["file"]))
                  for p in rep["processes"])


def _wrote(r, tmp_path):
    return sorted(os.path.realpath(os.path.join(tmp_path, p))
                  for p, _ in WROTE.findall(r.stderr))


def _digest(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_two_runs_into_one_pattern(procs, program, tmp_path):
    prog = program(FORKER, name="forker.py")
    out = str(tmp_path / "app.%R.mhc")
    r1 = _run(procs, tmp_path, ["-o", out, "--", SYSTEM_PY, prog.path])
    r2 = _run(procs, tmp_path, ["-o", out, "--", SYSTEM_PY, prog.path])
    first, second = _wrote(r1, tmp_path), _wrote(r2, tmp_path)
    assert len(first) == 4 and len(second) == 4, (r1.stderr, r2.stderr)
    pids2 = sorted(int(x) for x in r2.stdout.split()[1:])

    # Every process of a run (master and forked children) has its id.
    rep2 = _json(_report(procs, tmp_path, ["--format", "json", *second]))
    ids2 = {p["run_id"] for p in rep2["processes"]}
    rep1 = _json(_report(procs, tmp_path, ["--format", "json", *first]))
    ids1 = {p["run_id"] for p in rep1["processes"]}
    assert len(ids1) == 1 and len(ids2) == 1 and ids1 != ids2, (ids1, ids2)
    (id1,), (id2,) = ids1, ids2
    assert re.fullmatch(r"[0-9a-f]{16}", id2)
    assert rep2["summary"]["runs"] == 1

    # The hint is one pattern (not 4 paths) naming this run's captures
    # only, and running it gives the report of exactly those.
    hint = _hint(r2)
    assert id2 in hint and "'" in hint and len(hint.split()) == 3, hint
    rep = _json(_run_hint(procs, tmp_path, hint, "--format json --top 0"))
    assert _files(rep, tmp_path) == second, (hint, _files(rep, tmp_path))
    assert sorted(p["pid"] for p in rep["processes"]) == pids2

    # Both runs given: refused, listing each run.
    both = sorted(str(p) for p in tmp_path.glob("app.*.mhc"))
    assert len(both) == 8, both
    r = _report(procs, tmp_path, both, expect=1)
    assert r.stdout == "", r.stdout
    assert "the 8 captures come from 2 different runs" in r.stderr, r.stderr
    for rid in (id1, id2):
        m = re.search(r"^  run %s: started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, "
                      r"\S*python3\S* \S*forker\.py\n"
                      r"      4 captures, e.g. '(.*)'$" % rid, r.stderr, re.M)
        assert m, r.stderr
        assert os.path.realpath(m.group(1)) in (first if rid == id1
                                                else second)
    assert "--mixed" in r.stderr and "--run" in r.stderr, r.stderr

    # --run last / --run ID: the second run alone.
    rep = _json(_report(procs, tmp_path,
                        ["--run", "last", "--format", "json", *both]))
    assert _files(rep, tmp_path) == second
    rep = _json(_report(procs, tmp_path,
                        ["--run", id1, "--format", "json", *both]))
    assert _files(rep, tmp_path) == first
    r = _report(procs, tmp_path, ["--run", "0123456789abcdef", *both],
                expect=1)
    assert "no capture of run '0123456789abcdef'" in r.stderr, r.stderr
    r = _report(procs, tmp_path, ["app.nothing*.mhc"], expect=1)
    assert "no capture matches 'app.nothing*.mhc'" in r.stderr, r.stderr

    # --mixed merges and says so.
    rep = _json(_report(procs, tmp_path, ["--mixed", "--format", "json",
                                          *both]))
    assert rep["summary"]["captures"] == 8 and rep["summary"]["runs"] == 2
    text = _report(procs, tmp_path, ["--mixed", *both]).stdout
    assert "captures of 2 different runs (--mixed)" in text, text


def test_pid_reuse_never_overwrites(procs, program, tmp_path):
    """In a new pid namespace the pids of a second run are those of the
    first: names with %p (and the `.<pid>` of forked children) are taken.
    The earlier captures stay byte for byte; the new run records into
    fresh names, and its hint still reports it alone."""
    unshare = shutil.which("unshare")
    if not unshare or subprocess.run(
            [unshare, "-pf", "--mount-proc", "true"],
            capture_output=True).returncode != 0:
        pytest.skip("cannot make a pid namespace here")
    prog = program(FORKER, name="forker.py")
    ns = [unshare, "-pf", "--mount-proc"]
    out = str(tmp_path / "cap.mhc")
    r1 = _run(procs, tmp_path, ["-o", out, "--", SYSTEM_PY, prog.path],
              prefix=ns)
    first = _wrote(r1, tmp_path)
    assert len(first) == 4, r1.stderr
    before = _digest(first)

    # The master's fixed name: refused before anything starts.
    r = _run(procs, tmp_path, ["-o", out, "--", SYSTEM_PY, prog.path],
             prefix=ns, expect=1)
    assert "the file exists; pass --force" in r.stderr, r.stderr
    assert _digest(first) == before

    # %p names: every one of them is taken when the pids repeat.
    pat = str(tmp_path / "pid.%p.mhc")
    r1 = _run(procs, tmp_path, ["-o", pat, "--", SYSTEM_PY, prog.path],
              prefix=ns)
    before_p = _digest(_wrote(r1, tmp_path))
    r2 = _run(procs, tmp_path, ["-o", pat, "--", SYSTEM_PY, prog.path],
              prefix=ns)
    pids1, pids2 = r1.stdout.split()[1:], r2.stdout.split()[1:]
    # Real pid reuse: the master (pid 2 after unshare and memhound) and
    # its first child at least; threads may shift the later ones.
    reused = set(pids1) & set(pids2)
    assert pids1[:2] == pids2[:2], (r1.stdout, r2.stdout)
    first, second = _wrote(r1, tmp_path), _wrote(r2, tmp_path)
    assert len(second) == 4 and not set(first) & set(second), (first, second)
    fresh = [p for p in second
             if re.fullmatch(r"pid\.\d+\.[0-9a-f]{10}\.mhc",
                             os.path.basename(p))]
    assert len(fresh) == len(reused), (reused, second)
    assert _digest(first) == before_p
    assert "unrecorded" not in r2.stderr, r2.stderr

    # The pattern matches the earlier run too, so the hint says which.
    hint = _hint(r2)
    assert "--run " in hint, hint
    rep = _json(_run_hint(procs, tmp_path, hint, "--format json"))
    assert _files(rep, tmp_path) == second


def test_old_captures_are_a_run_of_their_own(procs, program, tmp_path):
    old = ROOT / "tests" / "data" / "v1-small.mhc"
    r = _report(procs, tmp_path, ["--format", "json", str(old)])
    assert _json(r)["processes"][0]["run_id"] is None
    prog = program("x = [bytearray(100) for _ in range(1000)]\n")
    r = _run(procs, tmp_path, ["-o", str(tmp_path / "new.mhc"), "--",
                               SYSTEM_PY, prog.path])
    r = _report(procs, tmp_path, [str(old), str(tmp_path / "new.mhc")],
                expect=1)
    assert "2 different runs" in r.stderr, r.stderr
    assert "no run id (captures from before run ids)" in r.stderr, r.stderr


def test_start_makes_a_run_per_call(procs, program, tmp_path):
    """memhound.start() without `run`: a new id per start(), kept by the
    children forked while it records."""
    prog = program("""
        import os, sys
        sys.path.insert(0, %r)
        import memhound
        for name in ("a", "b"):
            memhound.start(%r + "/" + name + ".%%p.mhc")
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            memhound.stop()
    """ % (str(MEMHOUND.parent / "python"), str(tmp_path)))
    r = procs.run([SYSTEM_PY, prog.path], env=clean_env(), cwd=str(tmp_path))
    assert r.returncode == 0, describe(r)
    ids = {}
    for name in ("a", "b"):
        caps = sorted(str(p) for p in tmp_path.glob(name + ".*.mhc"))
        assert len(caps) == 2, caps
        rep = _json(_report(procs, tmp_path, ["--format", "json", *caps]))
        ids[name] = {p["run_id"] for p in rep["processes"]}
        assert len(ids[name]) == 1 and None not in ids[name], rep["processes"]
    assert ids["a"] != ids["b"], ids


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_once(procs, tmp_path, out):
    """README's `memhound run -o OUT -- gunicorn -w 2 app:app`, a few
    requests, then SIGTERM. Returns run's stderr."""
    import socket
    import urllib.request
    port = _free_port()
    argv = [MEMHOUND, "run", "-o", out, "--", GUNICORN, "-w", "2",
            "--bind", "127.0.0.1:%d" % port, "--chdir", str(tmp_path),
            "--log-level", "warning", "app:app"]
    p = procs.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL, env=clean_env(),
                    cwd=str(tmp_path), text=True)
    deadline = time.monotonic() + 30
    served = 0
    try:
        while time.monotonic() < deadline and served < 40:
            assert p.poll() is None, p.stderr.read()
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/x" % port, timeout=2) as resp:
                    resp.read()
                served += 1
            except OSError:
                time.sleep(0.1)
        assert served == 40
        time.sleep(0.5)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    return err


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_gunicorn_twice_readme_pattern(procs, program, tmp_path):
    program("""
        _KEEP = []
        def app(environ, start_response):
            _KEEP.append(bytearray(8192))
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
    """, name="app.py")
    # README: memhound run -o /tmp/web.%R.mhc -- gunicorn -w 4 app:app
    #         memhound report --run last /tmp/web.*.mhc
    out = str(tmp_path / "web.%R.mhc")
    err1 = _serve_once(procs, tmp_path, out)
    err2 = _serve_once(procs, tmp_path, out)
    first = sorted(os.path.realpath(os.path.join(tmp_path, p))
                   for p, _ in WROTE.findall(err1))
    second = sorted(os.path.realpath(os.path.join(tmp_path, p))
                    for p, _ in WROTE.findall(err2))
    assert len(first) >= 3 and len(second) >= 3, (err1, err2)
    before = _digest(first)
    every = sorted(str(p) for p in tmp_path.glob("web.*.mhc"))
    assert len(every) == len(first) + len(second)

    rep = _json(_report(procs, tmp_path,
                        ["--run", "last", "--format", "json", *every]))
    assert _files(rep, tmp_path) == second
    master = [p for p in rep["processes"] if not p["fork_parent"]]
    workers = [p for p in rep["processes"] if p["fork_parent"]]
    assert len(master) == 1 and len(workers) >= 2, rep["processes"]
    assert len({p["run_id"] for p in rep["processes"]}) == 1

    r = _report(procs, tmp_path, every, expect=1)
    assert "come from 2 different runs" in r.stderr, r.stderr
    assert r.stderr.count("gunicorn -w 2") == 2, r.stderr

    hint = _hint(type("R", (), {"stderr": err2})())
    assert "--run" not in hint and hint.count("'") == 2, hint
    rep = _json(_run_hint(procs, tmp_path, hint, "--format json"))
    assert _files(rep, tmp_path) == second
    assert _digest(first) == before


def test_standard_input_is_read_once(procs, tmp_path):
    """A capture on standard input or a pipe is not grouped by run (it
    can be read only once): the report reads all of it."""
    data = (ROOT / "tests" / "data" / "v1-small.mhc").read_bytes()
    r = subprocess.run([str(MEMHOUND), "report", "--format", "json", "-"],
                       input=data, capture_output=True, env=clean_env(),
                       cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["processes"][0]["pid"] == 4242
