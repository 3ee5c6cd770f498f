"""`memhound top`: one frame for scripts (--once) and the live view in a
pseudo-terminal, on real processes: one whose memory grows steadily, one
that sits still, a parent with children (--tree), and a process that
records under `memhound run` and ends requests at a steady rate (the
agent's request counter, read through `stats` on its control socket).
"""

import os
import pty
import select
import signal
import subprocess
import sys
import time

from conftest import MEMHOUND, SYSTEM_PY, clean_env, describe


GROWER = """
import time
keep = []
while len(keep) < 300:
    keep.append(bytearray(2 << 20))
    time.sleep(0.05)
time.sleep(60)
"""

PARENT = """
import os, signal, sys, time
for _ in range(2):
    if os.fork() == 0:
        signal.pause()
        os._exit(0)
print("up", flush=True)
time.sleep(60)
"""

STATS = """
import os, time
import memhound
print(os.getpid(), flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with memhound.request("job"):
        pass
    time.sleep(0.1)
"""


def _rows(out):
    """{pid: fields after the pid} from a frame."""
    rows = {}
    started = False
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["PID"]:
            started = True
            continue
        if started and words and words[0].isdigit():
            rows[int(words[0])] = words[1:]
    return rows


def _start(procs, tmp_path, name, src):
    path = tmp_path / name
    path.write_text(src)
    return procs.popen([sys.executable, path], stdout=subprocess.PIPE,
                       text=True, env=clean_env())


def test_top_once_shows_growth(procs, tmp_path):
    grower = _start(procs, tmp_path, "grow.py", GROWER)
    still = procs.popen(["sleep", "60"])
    time.sleep(0.3)
    r = procs.run([MEMHOUND, "top", "--once", "--samples", "8",
                   "--interval", "0.25s", grower.pid, still.pid],
                  env=clean_env(), timeout=30)
    assert r.returncode == 0, describe(r)
    assert "\x1b" not in r.stdout, "escapes in --once output"
    assert "cgroup" in r.stdout.splitlines()[1]
    rows = _rows(r.stdout)
    assert set(rows) == {grower.pid, still.pid}, r.stdout
    # RSS USS MiB/h R2 REQ/S AGE LIMIT COMMAND...
    g = rows[grower.pid]
    rss, uss, slope, r2 = float(g[0]), float(g[1]), float(g[2]), float(g[3])
    assert uss <= rss
    # 2 MiB every 50 ms: 40 MiB/s, some 144000 MiB/h; be generous.
    assert slope > 20000, r.stdout
    assert r2 > 0.9, r.stdout
    s = rows[still.pid]
    # Flat: its 95% interval holds zero, so no slope is extrapolated.
    assert s[2] == "~0" or abs(float(s[2])) < 50, r.stdout
    assert s[4] == "-"  # no agent: requests unknown
    assert "sleep 60" in " ".join(s)


def test_top_tree_follows_children(procs, tmp_path):
    parent = _start(procs, tmp_path, "parent.py", PARENT)
    assert parent.stdout.readline().strip() == "up"
    r = procs.run([MEMHOUND, "top", "--once", "--tree", parent.pid],
                  env=clean_env(), timeout=30)
    assert r.returncode == 0, describe(r)
    rows = _rows(r.stdout)
    assert len(rows) == 3, r.stdout
    assert rows[parent.pid][0] == "master"
    assert sorted(v[0] for k, v in rows.items() if k != parent.pid) == \
        ["child", "child"]
    assert "3 processes" in r.stdout.splitlines()[0]


def test_top_requests_per_second(procs, tmp_path):
    (tmp_path / "stats.py").write_text(STATS)
    run = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "c.mhc",
                       "--", SYSTEM_PY, tmp_path / "stats.py"],
                      stdout=subprocess.PIPE, text=True, env=clean_env(),
                      cwd=str(tmp_path))
    pid = int(run.stdout.readline())
    r = procs.run([MEMHOUND, "top", "--once", "--samples", "3",
                   "--interval", "0.5s", pid], env=clean_env(), timeout=30)
    assert r.returncode == 0, describe(r)
    # A request every 0.1 s and a little: under 10 per second.
    row = _rows(r.stdout)[pid]
    # 3 samples extrapolate nothing: no slope before 8 (docs/verdict.md).
    assert row[2] == "-" and row[3] == "-", r.stdout
    rps = float(row[4])
    assert 3 < rps < 11, r.stdout


def test_top_live_view_in_a_terminal(procs, tmp_path):
    still = procs.popen(["sleep", "60"])
    master, slave = pty.openpty()
    p = procs.popen([MEMHOUND, "top", "--interval", "0.2s", still.pid],
                    stdin=slave, stdout=slave, stderr=slave,
                    env=clean_env(TERM="xterm"))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) == 0
    os.close(master)
    text = out.decode(errors="replace")
    assert text.count("\x1b[H") >= 3, "no refresh in place: %r" % text[:300]
    assert "\x1b[K" in text and "\x1b[J" in text
    assert "memhound top" in text and str(still.pid) in text


def test_top_errors(procs):
    r = procs.run([MEMHOUND, "top", "--once", "999999999"], env=clean_env(),
                  timeout=10)
    assert r.returncode == 1 and "none of the processes" in r.stderr, \
        describe(r)
    r = procs.run([MEMHOUND, "top", "--once"], env=clean_env(), timeout=10)
    assert r.returncode == 2, describe(r)
    r = procs.run([MEMHOUND, "top", "--interval", "0", "1"],
                  env=clean_env(), timeout=10)
    assert r.returncode == 2 and "invalid --interval" in r.stderr, \
        describe(r)
