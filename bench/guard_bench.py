#!/usr/bin/python3
"""What `memhound guard` costs, and how fast it reacts (issue 5, Goals):

- guard CPU with 32 workers at a 1 s interval, from /proc/<guard>/stat
  (utime + stime) over a measured stretch, in % of one core; the goal is
  at most 1 %. Two configurations: --rss-limit alone (RSS comes from the
  stat line the guard reads anyway) and --rss-limit plus a --uss-limit
  below the workers' RSS, so that USS (smaps_rollup, a page-table walk in
  the kernel) is read;
- reaction: a worker made to cross the limit with one request, then idle:
  seconds from the response to the guard's signal (the goal: within two
  intervals, plus the heap dump when the worker records), with and
  without the evidence step.

The server is Debian's gunicorn (32 sync workers, every one recording with
the agent, as `memhound guard -- COMMAND` starts it); without gunicorn, a
Python master with 32 forked children that sleep stands in (reaction is
then not measured).

    /usr/bin/python3 bench/guard_bench.py [--seconds 60] [--output FILE]

Writes (or replaces) the "## guard" section of docs/performance.md, or of
FILE, leaving every other section as it is, so it runs after bench/run.py
(which writes the rest of that file).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import MEMHOUND, add_output_args, logger, require_memhound, \
    update_doc

GUNICORN = "/usr/bin/gunicorn"
HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGESIZE")

APP = """
import os

_KEEP = []


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/grow":
        _KEEP.append(bytearray(int(environ["QUERY_STRING"][3:]) << 20))
    body = ("%d\\n" % os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""

# The ballast is the master's, shared with the children: their RSS is
# well above their USS, like pre-forked workers.
FAKE = """
import os, signal, sys, time
ballast = bytearray(24 << 20)
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        signal.pause()
        os._exit(0)
time.sleep(1e6)
"""


log = logger("guard-bench")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append((int(d), int(fields[21]) * PAGE))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def events(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wall_time(ev):
    return datetime.datetime.strptime(
        ev["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


class Server:
    """The guard and its server, in a process group of their own."""

    def __init__(self, tmp, guard_args, workers, use_gunicorn):
        self.tmp = tmp
        self.log = os.path.join(tmp, "guard-%d.log" % time.monotonic_ns())
        self.port = free_port()
        if use_gunicorn:
            with open(os.path.join(tmp, "app.py"), "w") as f:
                f.write(APP)
            argv = [MEMHOUND, "guard", *guard_args, "--log", self.log,
                    "--snapshot-dir", os.path.join(tmp, "snap"), "--",
                    GUNICORN, "-w", str(workers), "-b",
                    "127.0.0.1:%d" % self.port, "--chdir", tmp,
                    "--log-level", "warning", "app:app"]
            self.fake = None
        else:
            fake = os.path.join(tmp, "fake.py")
            with open(fake, "w") as f:
                f.write(FAKE)
            self.fake = subprocess.Popen([sys.executable, fake,
                                          str(workers)],
                                         start_new_session=True)
            argv = [MEMHOUND, "guard", *guard_args, "--log", self.log,
                    "--pid", str(self.fake.pid)]
        self.out = open(os.path.join(tmp, "server.out"), "a")
        self.p = subprocess.Popen(argv, stdout=self.out,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ev = events(self.log)
            if ev and ev[0]["event"] == "start" and \
                    len(children(ev[0]["master"])) >= workers:
                self.master = ev[0]["master"]
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not come up; see %s" %
                           os.path.join(tmp, "server.out"))

    def stop(self):
        for p in (self.p, self.fake):
            if p is None:
                continue
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.out.close()


def measure_cpu(server, seconds):
    time.sleep(3)  # the workers finish booting
    t0, c0 = time.monotonic(), cpu_ticks(server.p.pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(server.p.pid)
    return 100.0 * (c1 - c0) / HZ / (t1 - t0)


def reaction(server, limit_mb, rounds=3):
    """Seconds from the response that made a worker cross the limit to the
    guard's recycle event, and the event's evidence time."""
    out = []
    for _ in range(rounds):
        base = max(rss for _, rss in children(server.master)) >> 20
        grow = max(limit_mb - base + 8, 8)
        url = "http://127.0.0.1:%d/grow?mb=%d" % (server.port, grow)
        with urllib.request.urlopen(url, timeout=30) as r:
            pid = int(r.read())
        crossed = time.time()
        deadline = time.monotonic() + 60
        rec = None
        while time.monotonic() < deadline and not rec:
            rec = [e for e in events(server.log)
                   if e["event"] == "recycle" and e["pid"] == pid]
            time.sleep(0.02)
        if not rec:
            raise RuntimeError("worker %d was not recycled" % pid)
        out.append((wall_time(rec[0]) - crossed, rec[0]["evidence_s"]))
        while time.monotonic() < deadline and not [
                e for e in events(server.log)
                if e["event"] == "exit" and e["pid"] == pid]:
            time.sleep(0.05)
        time.sleep(2)  # the replacement boots
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60,
                    help="measured stretch per configuration (default 60)")
    ap.add_argument("--workers", type=int, default=32)
    add_output_args(ap)
    ap.add_argument("--fake", action="store_true",
                    help="a Python stand-in instead of gunicorn")
    args = ap.parse_args()
    require_memhound("guard-bench")
    use_gunicorn = os.path.exists(GUNICORN) and not args.fake
    tmp = tempfile.mkdtemp(prefix="mhguard-bench-")
    rows, react = [], {}
    try:
        limit_mb = 1024
        configs = [
            ("--rss-limit", ["--rss-limit", "%dm" % limit_mb]),
            ("--rss-limit + --uss-limit (USS read)",
             ["--rss-limit", "%dm" % limit_mb, "--uss-limit", "8m"]),
        ]
        for label, extra in configs:
            s = Server(tmp, ["--interval", "1s", *extra], args.workers,
                       use_gunicorn)
            try:
                rss = sum(r for _, r in children(s.master)) / \
                    max(1, len(children(s.master)))
                log("%s: measuring %g s" % (label, args.seconds))
                cpu = measure_cpu(s, args.seconds)
                rows.append((label, cpu, rss))
                log("%s: %.3f %% of a core" % (label, cpu))
            finally:
                s.stop()
        if use_gunicorn:
            for label, extra in (("with heap dump", []),
                                 ("--no-dump", ["--no-dump"])):
                s = Server(tmp, ["--interval", "1s", "--rss-limit",
                                 "64m", *extra], 3, True)
                try:
                    react[label] = reaction(s, 64)
                    log("reaction %s: %s" % (label, react[label]))
                finally:
                    s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    server = ("Debian's gunicorn, %d sync workers, each recording with the "
              "agent" % args.workers) if use_gunicorn else \
        "a Python master with %d sleeping children" % args.workers
    out = ["## guard", "",
           "`memhound guard` CPU with %d workers at a 1 s interval "
           "(goal: at most 1 %% of one core), from /proc/<guard>/stat "
           "utime + stime over %g s per configuration; server: %s. "
           "Machine: %s, %d CPUs, Linux %s. Produced by `/usr/bin/python3 "
           "bench/guard_bench.py` on %s." % (
               args.workers, args.seconds, server, platform.machine(),
               os.cpu_count(), platform.release(),
               datetime.date.today().isoformat()),
           "",
           "| configuration | guard CPU, % of one core | worker RSS |",
           "| --- | ---: | ---: |"]
    for label, cpu, rss in rows:
        out.append("| %s | %.3f | %.1f MiB |" % (label, cpu, rss / 2**20))
    if react:
        out += ["",
                "Reaction: a worker made to cross a 64 MiB --rss-limit "
                "by one request, then idle; seconds from the response to "
                "the guard's signal, at a 1 s interval (goal: within two "
                "intervals, plus the heap dump when the worker records). "
                "Three rounds each.",
                "",
                "| evidence | crossing → signal (s) | of which heap dump "
                "(s) |",
                "| --- | --- | --- |"]
        for label, r in react.items():
            out.append("| %s | %s | %s |" % (
                label, ", ".join("%.2f" % a for a, _ in r),
                ", ".join("%.2f" % b for _, b in r)))
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        update_doc(args.output, "## guard", text)
        log("wrote the guard section of %s" % args.output)
    worst = max(cpu for _, cpu, _ in rows)
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
