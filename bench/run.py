#!/usr/bin/python3
"""memhound's benchmark: what each tool costs a running program.

    make bench                      # full run, writes docs/performance.md
    make bench BENCH_ARGS=--quick   # a few minutes, writes build/bench/

Workloads (bench/workload.py): (a) Django test-client loop on a small
endpoint, (b) a view that builds a 20k-row, 16-column QuerySet, (c) a
pure-CPU loop, (d) (b) in 4 threads. Tools: none, tracemalloc(1),
tracemalloc(25), a do-nothing hook that is not memhound's (bench/floorhook.c,
built here and loaded from a sitecustomize), the agent with hooks that only
forward (mode "forward"): together the floor any allocator hook costs,
memhound sampling, memhound sampling with
`--web` (the Django workloads only: each test-client request goes through
the request tagging and naming, and the Django findings' QuerySet wrapper,
exactly as a served request does), memhound trace-all.

Wall time: each workload process times its own loop after set-up and a
warm-up request; rounds alternate the tools (the order rotates every round),
and a tool's ratio is its median time per iteration over the median of
"none" from the same run. Instructions: callgrind on smaller variants, each
counted twice (loop and set-up only) so the ratio is of the loop alone.
Besides: capture growth of a steady service, tracker memory vs RSS, and
`memhound report` on a 10-million-event trace-all capture.

Runs under /usr/bin/python3 (Debian's Django lives there).
"""

import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# MEMHOUND_BIN: another build's CLI (its agents are the python/ beside it).
MEMHOUND = os.environ.get("MEMHOUND_BIN",
                          os.path.join(ROOT, "build", "memhound"))
WORKLOAD = os.path.join(HERE, "workload.py")
PY = sys.executable or "/usr/bin/python3"

TOOLS = ["none", "tracemalloc1", "tracemalloc25", "hook", "noop", "sample",
         "sample+web", "trace"]
TOOL_LABEL = {
    "none": "none",
    "tracemalloc1": "tracemalloc(1)",
    "tracemalloc25": "tracemalloc(25)",
    "hook": "do-nothing hook (bench/floorhook.c)",
    "noop": "memhound forward-only hooks",
    "sample": "memhound sampling",
    "sample+web": "memhound sampling + web",
    "trace": "memhound trace-all",
}
WORKLOADS = ["small", "queryset", "cpu", "threads"]
WORKLOAD_LABEL = {
    "small": "(a) Django small endpoint",
    "queryset": "(b) Django 20k-row QuerySet",
    "cpu": "(c) pure-CPU loop",
    "threads": "(d) (b) in 4 threads",
}

# Arguments per workload: wall-time runs (full and --quick) and the
# smaller callgrind variants (each callgrind run stays well under a minute).
WALL_ARGS = {
    "small": ["--iterations", "2000"],
    "queryset": ["--iterations", "3"],
    "cpu": ["--iterations", "3"],
    "threads": ["--iterations", "1"],
}
QUICK_ARGS = {
    "small": ["--iterations", "500"],
    "queryset": ["--iterations", "1"],
    "cpu": ["--iterations", "1"],
    "threads": ["--iterations", "1", "--rows", "5000"],
}
CG_ARGS = {
    "small": ["--iterations", "800"],
    "queryset": ["--iterations", "1", "--rows", "2000"],
    "cpu": ["--iterations", "1", "--scale", "0.05"],
    "threads": ["--iterations", "1", "--rows", "1000"],
}
CG_LABEL = {
    "small": "800 requests",
    "queryset": "1 request, 2,000 rows",
    "cpu": "1/20 of an iteration",
    "threads": "4 x 1,000 rows",
}
# tracemalloc(25) is 10-40x slower: fewer iterations and rounds keep the
# full run in bounds (times are per iteration, so ratios still compare).
SLOW = {"tracemalloc25": {"small": ["--iterations", "500"],
                          "queryset": ["--iterations", "1"],
                          "cpu": ["--iterations", "1"],
                          "threads": ["--iterations", "1"]}}
CG_TOOLS = ["none", "tracemalloc1", "hook", "noop", "sample", "sample+web",
            "trace"]
# `--web` attributes requests: it applies to the Django workloads only.
WEB_TOOLS = {"sample+web"}
DJANGO_WORKLOADS = {"small", "queryset", "threads"}
# Issue 4's goal: middleware plus sampling within 2% of no tool on the
# Django request benchmark, workload (a).
WEB_GOAL = 1.02
WEB_GOAL_WORKLOAD = "small"


def applies(tool, workload):
    return tool not in WEB_TOOLS or workload in DJANGO_WORKLOADS


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def tool_cmd(tool, wargs, capdir, callgrind=False):
    """argv and extra environment that run the workload under `tool`."""
    base = [PY, WORKLOAD] + wargs
    env = {}
    if tool == "none":
        return base, env
    if tool.startswith("tracemalloc"):
        frames = tool[len("tracemalloc"):]
        if callgrind:
            # Started after the set-up, so the set-up-only run costs what
            # "none" costs and the subtraction leaves the loop.
            return base + ["--tracemalloc", frames], env
        return [PY, "-X", "tracemalloc=" + frames, WORKLOAD] + wargs, env
    if tool == "hook":
        return base, {"PYTHONPATH": HOOK_DIR}
    cap = os.path.join(capdir, "bench.mhc")
    if tool == "noop":
        # The agent's do-nothing mode: `memhound run` picks the mode itself,
        # so it is asked for through the bootstrap's environment contract
        # directly (docs/architecture.md).
        return base, noop_env(cap)
    cmd = [MEMHOUND, "run", "-o", cap]
    if tool == "trace":
        cmd.append("--trace-all")
    if tool == "sample+web":
        cmd.append("--web")
    if tool in ("sample", "sample+web"):
        base = base + ["--stats"]
    return cmd + ["--"] + base, env


HOOK_DIR = None  # where build_floorhook() put the module and sitecustomize


def build_floorhook(tmp):
    """Builds bench/floorhook.c for PY into tmp with a sitecustomize that
    installs it; returns the directory, or None (and why) when it cannot
    be built (no compiler or no Python headers)."""
    import sysconfig

    d = os.path.join(tmp, "floorhook")
    os.makedirs(d, exist_ok=True)
    so = os.path.join(d, "floorhook" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = os.environ.get("CC", "cc")
    p = subprocess.run([cc, "-O2", "-shared", "-fPIC",
                        "-I" + sysconfig.get_paths()["include"],
                        os.path.join(HERE, "floorhook.c"), "-o", so],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        return None, p.stdout.strip().splitlines()[-1:] or ["cc failed"]
    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
        f.write("import floorhook\nfloorhook.install()\n")
    return d, None


def noop_env(cap):
    pydir = os.path.join(os.path.dirname(MEMHOUND), "python")
    return {"PYTHONPATH": os.path.join(pydir, "bootstrap") + os.pathsep +
            pydir, "MEMHOUND_OUTPUT": cap, "MEMHOUND_MODE": "forward"}


def parse_bench(out):
    for line in out.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    return None


LOADS = []  # 1-minute load average at the start of each wall-time run


def run_once(tool, wargs, env_base, timeout=900):
    LOADS.append(os.getloadavg()[0])
    capdir = tempfile.mkdtemp(prefix="mhbench-")
    try:
        argv, extra = tool_cmd(tool, wargs, capdir)
        env = dict(env_base, **extra)
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        res = parse_bench(p.stdout)
        if p.returncode != 0 or res is None:
            raise RuntimeError("%s failed (exit %d): %s\n%s" % (
                " ".join(map(shlex.quote, argv)), p.returncode,
                p.stdout[-2000:], p.stderr[-2000:]))
        res["capture_bytes"] = sum(os.path.getsize(f) for f in
                                   glob.glob(os.path.join(capdir, "*")))
        return res
    finally:
        shutil.rmtree(capdir, ignore_errors=True)


def retry(fn, *args):
    """fn(*args), once more if it fails: a run killed from outside (a
    shared machine) should not cost the whole benchmark."""
    try:
        return fn(*args)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log("retrying after: %s" % str(e).splitlines()[0])
        return fn(*args)


def wall_phase(args, env, tools, workloads):
    table = args.quick and QUICK_ARGS or WALL_ARGS
    times = {w: {t: [] for t in tools} for w in workloads}
    extra = {w: {t: [] for t in tools} for w in workloads}
    slow_rounds = max(1, min(args.rounds, 2))
    for r in range(args.rounds):
        for wi, w in enumerate(workloads):
            k = (r + wi) % len(tools)
            order = tools[k:] + tools[:k]
            for t in order:
                if t in SLOW and r >= slow_rounds or not applies(t, w):
                    continue
                wargs = [w] + (SLOW[t][w] if t in SLOW and not args.quick
                               else table[w])
                res = retry(run_once, t, wargs, env)
                per = res["seconds"] / max(1, res["iterations"])
                times[w][t].append(per)
                extra[w][t].append(res)
                log("round %d/%d %-9s %-14s %.4f s/iter" % (
                    r + 1, args.rounds, w, t, per))
    return times, extra


def callgrind_count(cmd, env, workdir):
    """Instructions executed by the Python process running workload.py."""
    out = os.path.join(workdir, "cg.%p")
    argv = ["valgrind", "--tool=callgrind", "--trace-children=yes",
            "--callgrind-out-file=" + out] + cmd
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError("callgrind run failed (exit %d): %s\n%s" % (
            p.returncode, " ".join(argv), p.stderr[-3000:]))
    best = None
    for f in glob.glob(os.path.join(workdir, "cg.*")):
        cmdline, total = "", None
        with open(f, errors="replace") as fh:
            for line in fh:
                if line.startswith("cmd:"):
                    cmdline = line
                elif line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        if "workload.py" in cmdline and total is not None:
            best = total if best is None else max(best, total)
    if best is None:
        raise RuntimeError("no callgrind output for " + " ".join(cmd))
    return best


def cg_job(tool, w, iterations_zero, env):
    workdir = tempfile.mkdtemp(prefix="mhcg-")
    try:
        wargs = [w] + list(CG_ARGS[w])
        if iterations_zero:
            i = wargs.index("--iterations")
            wargs[i + 1] = "0"
        cmd, extra = tool_cmd(tool, wargs, workdir, callgrind=True)
        return callgrind_count(cmd, dict(env, **extra), workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def callgrind_phase(args, env, tools, workloads):
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        for w in workloads:
            for t in tools:
                if not applies(t, w):
                    continue
                for zero in (False, True):
                    jobs[(w, t, zero)] = ex.submit(retry, cg_job, t, w,
                                                   zero, env)
        res = {}
        for (w, t, zero), fut in jobs.items():
            res[(w, t, zero)] = fut.result()
            log("callgrind %-9s %-14s %s %d" % (
                w, t, "set-up" if zero else "full  ", res[(w, t, zero)]))
    loop = {w: {t: res[(w, t, False)] - res[(w, t, True)] for t in tools
                if (w, t, False) in res}
            for w in workloads}
    return loop, res


def steady_growth(args, env):
    """Capture size over time for a steady service in sampling mode."""
    seconds = 15 if args.quick else 60
    capdir = tempfile.mkdtemp(prefix="mhgrow-")
    try:
        cap = os.path.join(capdir, "steady.mhc")
        argv = [MEMHOUND, "run", "-o", cap, "--", PY, WORKLOAD, "small",
                "--seconds", str(seconds), "--stats"]
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        points = []
        while p.poll() is None and time.monotonic() - t0 < seconds + 120:
            time.sleep(0.5)
            size = os.path.getsize(cap) if os.path.exists(cap) else 0
            points.append((time.monotonic() - t0, size))
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
        res = parse_bench(out)
        if res is None:
            raise RuntimeError("steady run failed: " + err[-2000:])
        final = os.path.getsize(cap)
        # Growth after the first quarter (start-up defines most tables).
        live = [(t, s) for t, s in points if s > 0]
        a = next((pt for pt in live if pt[0] >= seconds / 4), live[0])
        b = live[-1]
        rate = (b[1] - a[1]) / max(1e-9, b[0] - a[0]) * 60
        return {"seconds": seconds, "final_bytes": final,
                "bytes_per_min": rate, "requests": res["iterations"],
                "rss": res["rss"], "stats": res.get("memhound")}
    finally:
        shutil.rmtree(capdir, ignore_errors=True)


TEN_M = """
import sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    s = "%d" % (i * 7)          # an int and a str, both freed
    if i % 1000 == 0:
        keep.append(s)
"""


def big_report(args, env):
    """`memhound report` on a capture of ~10 million events (trace-all)."""
    # About 11.5 events (allocations and frees) per iteration on 3.11.
    n = 200_000 if args.quick else 900_000
    capdir = tempfile.mkdtemp(prefix="mhbig-")
    try:
        prog = os.path.join(capdir, "ten_million.py")
        with open(prog, "w") as f:
            f.write(TEN_M)
        cap = os.path.join(capdir, "big.mhc")
        t0 = time.monotonic()
        subprocess.run([MEMHOUND, "run", "--trace-all", "-o", cap, "--", PY,
                        prog, str(n)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        gen = time.monotonic() - t0
        caps = sorted(glob.glob(os.path.join(capdir, "*.mhc")))
        out = {"iterations": n, "capture_bytes": sum(map(os.path.getsize,
                                                         caps)),
               "generate_seconds": gen}
        for fmt in ("json", "text"):
            elapsed, status, maxrss, stdout = _timed([
                MEMHOUND, "report", "--format", fmt] + caps)
            out[fmt + "_seconds"] = elapsed
            out[fmt + "_exit"] = status
            out[fmt + "_max_rss"] = maxrss
            if fmt == "json" and status == 0:
                try:
                    out["summary"] = json.loads(stdout).get("summary", {})
                except ValueError:
                    pass
        out["max_rss"] = max(out["json_max_rss"], out["text_max_rss"])
        return out
    finally:
        shutil.rmtree(capdir, ignore_errors=True)


def _timed(argv):
    """Runs argv; returns (seconds, exit status, peak RSS in bytes, stdout).
    The peak is the command's own (wait4), not the largest child's so far."""
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        elapsed = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return elapsed, p.returncode, ru.ru_maxrss * 1024, out.read()


def probe_noop(env):
    """Whether the agent offers hooks that only forward
    (MEMHOUND_MODE=forward)."""
    code = ("import memhound, json; s = memhound.stats(); "
            "print(json.dumps({'mode': s.get('mode'), "
            "'active': s.get('active')}))")
    with tempfile.TemporaryDirectory() as d:
        try:
            p = subprocess.run(
                [PY, "-c", code],
                env=dict(env, **noop_env(os.path.join(d, "p.mhc"))),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=60)
        except subprocess.TimeoutExpired:
            return False
    if p.returncode != 0 or "memhound:" in p.stderr:
        return False
    try:
        st = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    return st.get("active") is True and str(st.get("mode")) == "forward"


# --- the report --------------------------------------------------------------

def fmt_bytes(n):
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import django
        dj = django.get_version()
    except ImportError:
        dj = "absent"
    return "%s, %d cores, Linux %s, Python %s (%s), Django %s" % (
        cpu or platform.machine(), os.cpu_count() or 0, platform.release(),
        platform.python_version(), PY, dj)


def render(args, command, tools, workloads, wall, wall_extra, cg,
           cg_workloads, growth, big, notes):
    lines = []
    add = lines.append
    now = datetime.datetime.now(datetime.timezone.utc)
    add("# memhound performance")
    add("")
    add("Generated by `bench/run.py` (see its docstring for the method); do "
        "not edit by hand: rerun it.")
    add("")
    add("- command: `%s`" % command)
    add("- date: %s" % now.strftime("%Y-%m-%d %H:%M UTC"))
    add("- machine: %s" % machine())
    add("- mode: %s" % ("--quick (indicative only)" if args.quick else
                        "full, %d alternating rounds" % args.rounds))
    if LOADS:
        add("- load average (1 min) at the start of the wall-time runs: "
            "%.1f median, %.1f max, on %d cores%s" % (
                statistics.median(LOADS), max(LOADS), os.cpu_count() or 0,
                "; the machine was shared, so wall and CPU times are noisy "
                "and the instruction counts are the ones to trust"
                if max(LOADS) > 1.5 else ""))
    add("")
    if wall:
        add("## Wall time")
        add("")
        add("Median seconds per iteration of the workload's own loop (set-up "
            "and a warm-up request excluded), and the ratio to *none* "
            "from the same run. Rounds alternate the tools.")
        add("")
        add("| workload | " + " | ".join(TOOL_LABEL[t] for t in tools) + " |")
        add("| --- |" + " ---: |" * len(tools))
        for w in workloads:
            base = statistics.median(wall[w]["none"]) if wall[w].get(
                "none") else None
            cells = []
            for t in tools:
                v = wall[w].get(t)
                if not v:
                    cells.append("—")
                    continue
                m = statistics.median(v)
                if t == "none" or base is None:
                    cells.append("%.4f s" % m)
                else:
                    cells.append("**%.2fx** (%.4f s)" % (m / base, m))
            add("| %s | %s |" % (WORKLOAD_LABEL[w], " | ".join(cells)))
        add("")
        add("CPU time (user + system, all threads, the agent's writer "
            "thread included) per iteration, median, and the ratio to "
            "*none*: less sensitive than wall time to other load on the "
            "machine.")
        add("")
        add("| workload | " + " | ".join(TOOL_LABEL[t] for t in tools) + " |")
        add("| --- |" + " ---: |" * len(tools))
        for w in workloads:
            per = {t: [r["cpu_seconds"] / max(1, r["iterations"])
                       for r in wall_extra[w].get(t, [])
                       if "cpu_seconds" in r] for t in tools}
            base = statistics.median(per["none"]) if per.get("none") \
                else None
            cells = []
            for t in tools:
                if not per.get(t):
                    cells.append("—")
                    continue
                m = statistics.median(per[t])
                if t == "none" or not base:
                    cells.append("%.4f s" % m)
                else:
                    cells.append("%.2fx" % (m / base))
            add("| %s | %s |" % (WORKLOAD_LABEL[w], " | ".join(cells)))
        add("")
        add("Iterations per run: " + "; ".join(
            "%s %s" % (w, " ".join((QUICK_ARGS if args.quick else
                                    WALL_ARGS)[w])) for w in workloads) +
            ("" if args.quick else
             " (tracemalloc(25): one iteration, 500 for (a), 2 rounds)") + ".")
        add("")
    if cg:
        cg_tools = [t for t in tools
                    if any(t in cg[w] for w in cg_workloads)]
        add("## Instructions (callgrind)")
        add("")
        add("Instructions of the loop alone (a run with the loop minus a run "
            "that stops after set-up and warm-up), ratio to *none*. Smaller "
            "variants, since callgrind is ~50x slower; tracemalloc is "
            "started after the set-up here (`tracemalloc.start(N)`), so the "
            "set-up-only runs match. tracemalloc(25) is not counted (too "
            "slow under callgrind).")
        add("")
        add("| workload (variant) | " +
            " | ".join(TOOL_LABEL[t] for t in cg_tools) + " |")
        add("| --- |" + " ---: |" * len(cg_tools))
        for w in cg_workloads:
            base = cg[w]["none"]
            cells = []
            for t in cg_tools:
                v = cg[w].get(t)
                if v is None:
                    cells.append("—")
                elif t == "none":
                    cells.append("%.3f G" % (v / 1e9))
                else:
                    cells.append("**%.3fx**" % (v / base))
            add("| %s (%s) | %s |" % (WORKLOAD_LABEL[w], CG_LABEL[w],
                                      " | ".join(cells)))
        add("")
    mem_rows = []
    if wall_extra:
        for w in workloads:
            for res in wall_extra[w].get("sample", []):
                st = res.get("memhound") or {}
                if "tracker_bytes" in st:
                    mem_rows.append((w, res["rss"], st["tracker_bytes"],
                                     st.get("tracker_peak_bytes",
                                            st["tracker_bytes"]),
                                     st.get("samples"),
                                     res.get("capture_bytes")))
                    break
    if mem_rows:
        add("## Tracker memory and capture size (sampling mode)")
        add("")
        add("At the end of one wall-time run: the agent's own memory "
            "(`memhound.stats()[\"tracker_bytes\"]`, and its high-water "
            "mark `tracker_peak_bytes`, which includes the compressor's "
            "transient context) against the process's RSS at the end, "
            "samples taken, and the capture file's size.")
        add("")
        add("| workload | RSS | tracker | tracker / RSS | tracker peak | "
            "peak / RSS | samples | capture |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for w, rss, tb, pk, ns, capb in mem_rows:
            add("| %s | %s | %s | %.2f%% | %s | %.2f%% | %s | %s |" % (
                WORKLOAD_LABEL[w], fmt_bytes(rss), fmt_bytes(tb),
                100.0 * tb / max(1, rss), fmt_bytes(pk),
                100.0 * pk / max(1, rss), ns, fmt_bytes(capb or 0)))
        add("")
    if growth:
        st = growth.get("stats") or {}
        add("## Capture growth of a steady service (sampling mode)")
        add("")
        add("Workload (a) in a loop for %d s (%d requests) under `memhound "
            "run`; the file's size sampled every 0.5 s, growth measured "
            "after the first quarter." % (growth["seconds"],
                                          growth["requests"]))
        add("")
        add("| duration | capture | growth | RSS | tracker |")
        add("| ---: | ---: | ---: | ---: | ---: |")
        add("| %d s | %s | **%s/min** | %s | %s |" % (
            growth["seconds"], fmt_bytes(growth["final_bytes"]),
            fmt_bytes(growth["bytes_per_min"]), fmt_bytes(growth["rss"]),
            fmt_bytes(st["tracker_bytes"]) if "tracker_bytes" in st
            else "—"))
        add("")
    if big:
        summ = big.get("summary") or {}
        add("## `memhound report` on a large trace-all capture")
        add("")
        events = summ.get("samples", 0) + summ.get("frees", 0)
        add("A loop of %s iterations formatting numbers (every allocation "
            "freed again but one in a thousand) under `memhound run "
            "--trace-all`: %s events (allocations and frees)." % (
                "{:,}".format(big["iterations"]), "{:,}".format(events)))
        add("")
        add("| capture | report --format json | report (text) | peak RSS "
            "of report |")
        add("| ---: | ---: | ---: | ---: |")
        add("| %s | %.2f s%s | %.2f s%s | %s |" % (
            fmt_bytes(big["capture_bytes"]), big["json_seconds"],
            "" if big["json_exit"] == 0 else " (exit %d)" % big["json_exit"],
            big["text_seconds"],
            "" if big["text_exit"] == 0 else " (exit %d)" % big["text_exit"],
            fmt_bytes(big["max_rss"])))
        add("")
    web = web_section(args, tools, workloads, wall, wall_extra, cg)
    if web:
        lines.extend(web)
    goals = goal_lines(wall, cg, cg_workloads, mem_rows, growth, big, tools,
                       workloads)
    if goals:
        add("## Goals")
        add("")
        lines.extend(goals)
        add("")
    if notes:
        add("## Notes")
        add("")
        for n in notes:
            add("- " + n)
        add("")
    return "\n".join(lines)


def _ratio(values, base):
    """Median of values over median of base, or None."""
    if not values or not base:
        return None
    return statistics.median(values) / statistics.median(base)


def web_ratios(wall, cg, w):
    """(wall, instructions) ratios of sample+web to none for workload w,
    each None when not measured."""
    rw = _ratio((wall or {}).get(w, {}).get("sample+web"),
                (wall or {}).get(w, {}).get("none")) if wall else None
    rc = None
    if cg and w in cg and "sample+web" in cg[w] and cg[w].get("none"):
        rc = cg[w]["sample+web"] / cg[w]["none"]
    return rw, rc


def web_section(args, tools, workloads, wall, wall_extra, cg):
    """The "## Web attribution" section: what `--web` adds to sampling
    on the Django workloads."""
    if "sample+web" not in tools:
        return []
    rows = [w for w in workloads if w in DJANGO_WORKLOADS]
    if not rows:
        return []
    out = ["## Web attribution (sampling + `--web`)", "",
           "*memhound sampling + web* runs the workload under `memhound run "
           "--web`: each Django test-client request is begun, named (its "
           "route) and ended by the patched `BaseHandler.get_response`, and "
           "QuerySet fetches go through the Django findings' wrapper, as for "
           "a request a server hands to Django (docs/web.md). Ratios to "
           "*none* and to *memhound sampling* (same runs, same method as "
           "above); *requests tagged* is the agent's count in one run "
           "(iterations plus the warm-up request, four per iteration for "
           "(d)), which shows the layer was active.", "",
           "| workload | wall vs none | wall vs sampling | CPU vs none | "
           "instructions vs none | instructions vs sampling | requests "
           "tagged |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def fmt(v):
        return "—" if v is None else "%.3fx" % v

    for w in rows:
        ww = (wall or {}).get(w, {})
        rw, rc = web_ratios(wall, cg, w)
        rws = _ratio(ww.get("sample+web"), ww.get("sample"))
        runs = (wall_extra or {}).get(w, {})

        def cpu(t):
            return [r["cpu_seconds"] / max(1, r["iterations"])
                    for r in runs.get(t, []) if "cpu_seconds" in r]

        rcpu = _ratio(cpu("sample+web"), cpu("none"))
        rcs = None
        if cg and w in cg and "sample+web" in cg[w] and cg[w].get("sample"):
            rcs = cg[w]["sample+web"] / cg[w]["sample"]
        tagged = "—"
        for r in runs.get("sample+web", []):
            st = r.get("memhound") or {}
            if "requests" in st:
                tagged = "%s (%d iterations)" % (
                    "{:,}".format(int(st["requests"])), r["iterations"])
                break
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            WORKLOAD_LABEL[w], "**%s**" % fmt(rw) if rw else fmt(rw),
            fmt(rws), fmt(rcpu), "**%s**" % fmt(rc) if rc else fmt(rc),
            fmt(rcs), tagged))
    out.append("")
    return out


def web_goal_lines(wall, cg, tools):
    if "sample+web" not in tools:
        return []
    rw, rc = web_ratios(wall, cg, WEB_GOAL_WORKLOAD)
    parts = []
    if rw is not None:
        parts.append("wall %.3fx" % rw)
    if rc is not None:
        parts.append("instructions %.3fx" % rc)
    if not parts:
        return []
    ok = all(v <= WEB_GOAL for v in (rw, rc) if v is not None)
    return ["- issue 4: middleware plus sampling ≤ %.2fx of none on the "
            "Django request benchmark, %s: %s (%s)" % (
                WEB_GOAL, WORKLOAD_LABEL[WEB_GOAL_WORKLOAD],
                "met" if ok else "**not met**", ", ".join(parts))]


def goal_lines(wall, cg, cg_workloads, mem_rows, growth, big, tools,
               workloads):
    out = []

    def mark(ok):
        return "met" if ok else "**not met**"

    if wall and "sample" in tools:
        r = {w: statistics.median(wall[w]["sample"]) /
             statistics.median(wall[w]["none"]) for w in workloads
             if wall[w].get("sample") and wall[w].get("none")}
        if r:
            out.append("- sampling wall time ≤ 1.05x: %s (%s)" % (
                mark(all(v <= 1.05 for v in r.values())),
                ", ".join("%s %.3fx" % (w, v) for w, v in r.items())))
    if cg and "sample" in cg[cg_workloads[0]]:
        r = {w: cg[w]["sample"] / cg[w]["none"] for w in cg_workloads}
        out.append("- sampling instructions ≤ 1.03x: %s (%s)" % (
            mark(all(v <= 1.03 for v in r.values())),
            ", ".join("%s %.3fx" % (w, v) for w, v in r.items())))
        if "hook" in cg[cg_workloads[0]]:
            f = {w: cg[w]["hook"] / cg[w]["none"] for w in cg_workloads}
            out.append("- sampling instructions, the floor (a do-nothing "
                       "hook that is not memhound's): %s; sampling above "
                       "it: %s" % (
                           ", ".join("%s %.3fx" % (w, v)
                                     for w, v in f.items()),
                           ", ".join("%s %.3fx" % (w, r[w] / f[w])
                                     for w in cg_workloads)))
    if wall and "trace" in tools and "tracemalloc1" in tools:
        r = {w: (statistics.median(wall[w]["trace"]),
                 statistics.median(wall[w]["tracemalloc1"]))
             for w in workloads
             if wall[w].get("trace") and wall[w].get("tracemalloc1")}
        if r:
            out.append("- trace-all cheaper than tracemalloc(1) (wall): %s "
                       "(%s)" % (mark(all(a < b for a, b in r.values())),
                                 ", ".join("%s %.2fx of it" % (w, a / b)
                                           for w, (a, b) in r.items())))
    if cg and "trace" in cg[cg_workloads[0]] and \
            "tracemalloc1" in cg[cg_workloads[0]]:
        r = {w: cg[w]["trace"] / cg[w]["tracemalloc1"]
             for w in cg_workloads}
        out.append("- trace-all cheaper than tracemalloc(1) (instructions): "
                   "%s (%s)" % (mark(all(v < 1 for v in r.values())),
                                ", ".join("%s %.2fx of it" % (w, v)
                                          for w, v in r.items())))
    if mem_rows:
        worst = max(pk / max(1, rss) for _, rss, _, pk, _, _ in mem_rows)
        out.append("- tracker memory ≤ 1%% of RSS (its peak): %s "
                   "(worst %.2f%%)" % (mark(worst <= 0.01), 100 * worst))
    if growth:
        out.append("- capture growth ≤ 1 MB/min: %s (%s/min)" % (
            mark(growth["bytes_per_min"] <= 1e6),
            fmt_bytes(growth["bytes_per_min"])))
    events = 0
    if big:
        summ = big.get("summary") or {}
        events = summ.get("samples", 0) + summ.get("frees", 0)
    if events >= 10_000_000:
        out.append("- report on a 10M-event capture ≤ 10 s, ≤ 500 MB: %s "
                   "(%.1f s, %s)" % (
                       mark(big["json_seconds"] <= 10 and
                            big["max_rss"] <= 500e6 and
                            big["json_exit"] == 0),
                       big["json_seconds"], fmt_bytes(big["max_rss"])))
    out = ["- issue 2: " + line[2:] for line in out]
    out.extend(web_goal_lines(wall, cg, tools))
    return out


OWN_SECTIONS = ("## Wall time", "## Instructions", "## Tracker memory",
                "## Capture growth", "## `memhound report`",
                "## Web attribution", "## Goals", "## Notes")


def foreign_sections(path):
    """The `## ` sections of an existing `path` that this script does not
    write (other benchmarks' sections, e.g. bench/guard_bench.py's), to keep
    after ours."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return ""
    kept, keep = [], False
    for line in old.splitlines():
        if line.startswith("## "):
            keep = not line.startswith(OWN_SECTIONS)
        elif line.startswith("# "):
            keep = False
        if keep:
            kept.append(line)
    return ("\n" + "\n".join(kept).rstrip() + "\n") if kept else ""


def save_raw(args, data):
    """Writes the raw results (also after each phase, so a failure later
    loses nothing measured); returns the path."""
    raw = os.path.join(ROOT, "build", "bench", "results%s.json" % (
        "-quick" if args.quick else ""))
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw, "w") as f:
        json.dump(data, f, indent=1, default=str)
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small runs, 2 rounds, callgrind on (a) and (c) "
                    "only; writes build/bench/performance.md")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--no-wall", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip capture growth and the large report")
    ap.add_argument("--jobs", type=int, default=2,
                    help="callgrind runs at once (instruction counts do not "
                    "depend on load)")
    ap.add_argument("--output", help="markdown file to write")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    tools = [t for t in args.tools.split(",") if t]
    workloads = [w for w in args.workloads.split(",") if w]
    for t in tools:
        if t not in TOOLS:
            ap.error("unknown tool %r (known: %s)" % (t, ", ".join(TOOLS)))
    for w in workloads:
        if w not in WORKLOADS:
            ap.error("unknown workload %r" % w)
    if "none" not in tools:
        tools.insert(0, "none")
    if args.quick and args.tools == ",".join(TOOLS):
        tools.remove("tracemalloc25")
    output = args.output or (os.path.join(ROOT, "build", "bench",
                                          "performance.md") if args.quick
                             else os.path.join(ROOT, "docs",
                                               "performance.md"))
    command = "make bench" + (" BENCH_ARGS=%s" % shlex.quote(
        " ".join(sys.argv[1:])) if sys.argv[1:] else "") + \
        "  (= /usr/bin/python3 bench/run.py%s)" % (
            "".join(" " + shlex.quote(a) for a in sys.argv[1:]))

    if not os.access(MEMHOUND, os.X_OK):
        sys.exit("bench: %s is missing; run make first" % MEMHOUND)
    notes = []
    tmp = tempfile.mkdtemp(prefix="mhbench-db-")
    # A fixed hash seed takes one source of run-to-run variance away.
    env = dict(os.environ, MEMHOUND_BENCH_DB=os.path.join(tmp, "bench.db"),
               PYTHONHASHSEED="0")
    env.pop("PYTHONTRACEMALLOC", None)
    try:
        subprocess.run([PY, WORKLOAD, "--build-db", env["MEMHOUND_BENCH_DB"]],
                       env=env, check=True)
        global HOOK_DIR
        if "hook" in tools:
            HOOK_DIR, why = build_floorhook(tmp)
            if HOOK_DIR is None:
                tools.remove("hook")
                notes.append("bench/floorhook.c could not be built (%s), so "
                             "that column is absent." % why[0])
            else:
                notes.append("*do-nothing hook (bench/floorhook.c)*: a "
                             "15-line extension, not memhound's, that "
                             "wraps the RAW, MEM and OBJ domains and only "
                             "forwards, loaded from a sitecustomize: the "
                             "floor any PyMem_SetAllocator hook pays on "
                             "this interpreter.")
        if "noop" in tools and not probe_noop(env):
            tools.remove("noop")
            notes.append("The agent offers no do-nothing mode "
                         "(MEMHOUND_MODE=forward), so that column is absent.")
        elif "noop" in tools:
            notes.append("*memhound forward-only hooks*: the agent started with "
                         "MEMHOUND_MODE=forward, hooks on the RAW, MEM and "
                         "OBJ domains that only forward: the floor any "
                         "hook-based tracker pays.")
        wall = extra = cg = growth = big = None
        if not args.no_wall:
            wall, extra = wall_phase(args, env, tools, workloads)
            save_raw(args, {"wall": wall, "tools": tools,
                            "workloads": workloads})
        cg_work = workloads
        if not args.no_callgrind and shutil.which("valgrind"):
            cg_tools = [t for t in CG_TOOLS if t in tools]
            cg_work = workloads
            if args.quick:
                cg_tools = [t for t in cg_tools if t in (
                    "none", "hook", "noop", "sample", "sample+web",
                    "trace")]
                cg_work = [w for w in workloads if w in ("small", "cpu")] \
                    or workloads
            try:
                cg, _ = callgrind_phase(args, env, cg_tools, cg_work)
            except Exception as e:  # keep what the other phases measured
                notes.append("The callgrind phase failed: %s" %
                             str(e).splitlines()[0])
                log("callgrind phase failed: %s" % e)
        if not args.no_extras and "sample" in tools:
            try:
                growth = retry(steady_growth, args, env)
                log("capture growth %.0f bytes/min" % growth["bytes_per_min"])
                big = retry(big_report, args, env)
                log("report on %d-iteration capture: %.2f s" % (
                    big["iterations"], big["json_seconds"]))
            except Exception as e:
                notes.append("A measurement failed: %s" %
                             str(e).splitlines()[0])
                log("extras failed: %s" % e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cg_workloads = [w for w in workloads if cg and w in cg]
    text = render(args, command, tools, workloads, wall, extra, cg,
                  cg_workloads, growth, big, notes)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    text = text.rstrip() + "\n" + foreign_sections(output)
    with open(output, "w") as f:
        f.write(text)
    raw = save_raw(args, {"wall": wall, "wall_runs": extra, "callgrind": cg,
                          "growth": growth, "big_report": big,
                          "tools": tools, "workloads": workloads})
    log("wrote %s and %s" % (output, raw))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
