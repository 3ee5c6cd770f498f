"""Bounded HTTP load with wrk and load.lua, for the web tests.

    plan = weighted(routes, {"leak": 40, "truthiness": 0.3, "ordinary": 1})
    write_plan(plan_file, plan)
    argv = wrk_argv(base_url, plan_file, connections=100, threads=2,
                    max_requests=3000, seconds=20)
    res = run(popen, argv, threads=2, timeout=60)
    # {"requests", "errors", "non_2xx", "sent", ...}; failures(res) == 0

A route's weight is shared among its concrete URLs. Requests stop at
max_requests (split among wrk's threads; up to one request per connection
more may be in flight when a thread stops) or after `seconds`, whichever
comes first.
"""

import json
import os
import signal
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "load.lua")


def weighted(routes, role_weights):
    """[(weight, url, pattern, role)] for routes [(pattern, role, urls)]:
    each route gets its role's weight, shared among its URLs."""
    out = []
    for pattern, role, urls in routes:
        w = float(role_weights[role])
        for u in urls:
            out.append((w / len(urls), u, pattern, role))
    return out


def expected(plan, requests):
    """Expected requests per route pattern out of `requests`."""
    total = sum(w for w, _, _, _ in plan)
    per = {}
    for w, _, pattern, _ in plan:
        per[pattern] = per.get(pattern, 0.0) + requests * w / total
    return per


def write_plan(path, plan):
    with open(path, "w") as f:
        for w, url, _, _ in plan:
            f.write("%.6f %s\n" % (w, url))


def wrk_argv(base_url, plan_file, connections, threads, max_requests,
             seconds, timeout=10):
    threads = max(1, min(threads, connections))
    per_thread = max(1, max_requests // threads)
    return ["wrk", "-t%d" % threads, "-c%d" % connections,
            "-d%ds" % seconds, "--timeout", "%ds" % timeout, "-s", LUA,
            base_url, "--", plan_file, str(per_thread)]


def parse(stdout):
    for line in stdout.splitlines():
        if line.startswith("WRKLOAD "):
            return json.loads(line[len("WRKLOAD "):])
    raise ValueError("no WRKLOAD line in wrk's output:\n" + stdout[-3000:])


def failures(res):
    """Requests that failed: socket errors of any kind and responses
    outside 2xx."""
    e = res["errors"]
    return (e["connect"] + e["read"] + e["write"] + e["timeout"] +
            max(e["status"], res["non_2xx"]))


def sent_per_route(res, plan):
    """Requests sent per route pattern (from wrk's per-URL counts)."""
    by_url = {url: pattern for _, url, pattern, _ in plan}
    per = {}
    for url, n in res["sent"].items():
        p = by_url.get(url, url)
        per[p] = per.get(p, 0) + n
    return per


def run(popen, argv, threads, timeout):
    """Runs wrk (argv from wrk_argv) with popen (subprocess.Popen or a
    caller's wrapper that owns the process); sends it SIGINT once every
    thread hit its request limit, SIGKILL past `timeout` seconds. Returns
    parse() of its output plus "stdout" and "stderr"; raises RuntimeError
    when wrk fails or is killed."""
    p = popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              stdin=subprocess.DEVNULL, text=True)
    err_lines = []
    done = [0]
    killed = []

    def read_stderr():
        for line in p.stderr:
            err_lines.append(line)
            if line.startswith("wrkload: thread done"):
                done[0] += 1
                if done[0] == threads and p.poll() is None:
                    p.send_signal(signal.SIGINT)

    def watchdog():
        if p.poll() is None:
            killed.append(True)
            p.kill()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, watchdog)
    timer.start()
    try:
        out = p.stdout.read()  # to EOF: wrk exited
        p.wait()
    finally:
        timer.cancel()
    reader.join(5)
    if killed:
        raise RuntimeError("wrk did not finish within %ds: %s" % (
            timeout, " ".join(argv)))
    if p.returncode != 0:
        raise RuntimeError("wrk failed (exit %d): %s\n%s" % (
            p.returncode, " ".join(argv), "".join(err_lines)[-2000:]))
    res = parse(out)
    res["stdout"] = out
    res["stderr"] = "".join(err_lines)
    return res
