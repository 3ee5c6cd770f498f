#!/usr/bin/python3
"""What heap dumps and the heap CLI cost on a 1,000,000-object heap
(issue 3, Goals):

- the agent: a target (/usr/bin/python3) builds 500k dicts + 500k str (a
  list of small dicts, each holding one distinct str), or the variant of
  500k class instances (each with one str attribute), imports memhound
  from build/python, calls memhound.start() then memhound.dump_heap()
  twice, before and after adding 10 % more objects. Measured: dump time
  (wall time of dump_heap(), which waits for the walker by default), the
  fork pause (the dump header's pause_ns, as `heap census --format json`
  reports it) and dump bytes per object (file size / the dump's object
  count);
- the CLI: wall time and peak RSS (/usr/bin/time -f "%e %M") of
  `heap census`, `heap diff OLD NEW` and `heap why --type str` on those
  dumps;
- side by side: objgraph (Debian's python3-objgraph) typestats() on the
  same heap, in-process. guppy3 and pympler are not packaged in Debian;
  the issue's numbers are cited for them.

Every figure is the median of --runs runs (default 3).

    /usr/bin/python3 bench/heap_bench.py [--runs 3] [--output FILE]

Writes (or replaces) the "## heap" section of docs/performance.md, or of
FILE, leaving every other section as it is, so it runs after bench/run.py
(which writes the rest of that file).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import MEMHOUND, ROOT, add_output_args, logger, \
    require_memhound, update_doc

AGENT_PATH = os.path.join(ROOT, "build", "python")
PYTHON = "/usr/bin/python3"
N = 500_000
GROW = N // 10  # 10 % more objects between the two dumps

# argv: variant (dict|inst), mode (dump|objgraph), workdir, agent path
TARGET = r"""
import json, os, sys, time

variant, mode, workdir, agent_path = sys.argv[1:5]
N, GROW = %d, %d


class Item:
    def __init__(self, s):
        self.s = s


def build(lo, hi):
    if variant == "dict":
        return [{"k": "value-%%09d" %% i} for i in range(lo, hi)]
    return [Item("value-%%09d" %% i) for i in range(lo, hi)]


heap = build(0, N)
out = {}
if mode == "dump":
    sys.path.insert(0, agent_path)
    import memhound
    memhound.start(os.path.join(workdir, "target.mhc"))
    t0 = time.perf_counter()
    memhound.dump_heap(os.path.join(workdir, "old.mhh"))
    out["dump_old_s"] = time.perf_counter() - t0
    heap.extend(build(N, N + GROW))
    t0 = time.perf_counter()
    memhound.dump_heap(os.path.join(workdir, "new.mhh"))
    out["dump_new_s"] = time.perf_counter() - t0
    memhound.stop()
else:
    import objgraph
    t0 = time.perf_counter()
    stats = objgraph.typestats()
    out["typestats_s"] = time.perf_counter() - t0
    out["objects"] = sum(stats.values())
print(json.dumps(out))
""" % (N, GROW)


log = logger("heap-bench")


def median(xs):
    return statistics.median(xs)


def run_target(tmp, variant, mode, workdir):
    script = os.path.join(tmp, "target.py")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(TARGET)
    r = subprocess.run([PYTHON, script, variant, mode, workdir, AGENT_PATH],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("target %s/%s failed: %s" % (variant, mode,
                                                        r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1])


def timed_cli(args, tmp):
    """Runs `memhound ARGS` under /usr/bin/time: (seconds, peak RSS bytes,
    stdout)."""
    tfile = os.path.join(tmp, "time.out")
    r = subprocess.run(["/usr/bin/time", "-o", tfile, "-f", "%e %M",
                        MEMHOUND, *args], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError("memhound %s failed (%d): %s" % (
            " ".join(args), r.returncode, r.stderr.strip()))
    with open(tfile) as f:
        secs, kib = f.read().split()[-2:]
    return float(secs), int(kib) * 1024, r.stdout


def bench_variant(tmp, variant, runs):
    res = {k: [] for k in ("dump_old_s", "dump_new_s", "pause_old_ms",
                           "pause_new_ms", "walk_old_s", "bpo", "objects",
                           "objects_new", "census_s", "census_rss",
                           "diff_s", "diff_rss", "why_s", "why_rss",
                           "cli_total_s", "og_s", "og_objects")}
    for i in range(runs):
        wd = os.path.join(tmp, "%s-%d" % (variant, i))
        os.makedirs(wd)
        t = run_target(tmp, variant, "dump", wd)
        old, new = os.path.join(wd, "old.mhh"), os.path.join(wd, "new.mhh")
        cs, crss, cout = timed_cli(["heap", "census", old, "--format",
                                    "json"], tmp)
        census = json.loads(cout)
        ds, drss, dout = timed_cli(["heap", "diff", old, new, "--format",
                                    "json"], tmp)
        newdump = json.loads(dout)["new"]
        ws, wrss, _ = timed_cli(["heap", "why", old, "--type", "str"], tmp)
        objs = census["dump"]["objects"]
        res["dump_old_s"].append(t["dump_old_s"])
        res["dump_new_s"].append(t["dump_new_s"])
        res["pause_old_ms"].append(census["dump"]["pause_ns"] / 1e6)
        res["pause_new_ms"].append(newdump["pause_ns"] / 1e6)
        res["walk_old_s"].append((census["dump"]["walk_ns"] or 0) / 1e9)
        res["bpo"].append(os.path.getsize(old) / objs)
        res["objects"].append(objs)
        res["objects_new"].append(newdump["objects"])
        res["census_s"].append(cs)
        res["census_rss"].append(crss)
        res["diff_s"].append(ds)
        res["diff_rss"].append(drss)
        res["why_s"].append(ws)
        res["why_rss"].append(wrss)
        res["cli_total_s"].append(cs + ds + ws)
        og = run_target(tmp, variant, "objgraph", wd)
        res["og_s"].append(og["typestats_s"])
        res["og_objects"].append(og["objects"])
        log("%s run %d: dump %.3f s, pause %.2f ms, %.1f B/object, "
            "census %.2f s, diff %.2f s, why %.2f s; objgraph %.3f s, "
            "%d objects" % (variant, i + 1, t["dump_old_s"],
                            res["pause_old_ms"][-1], res["bpo"][-1], cs, ds,
                            ws, og["typestats_s"], og["objects"]))
        shutil.rmtree(wd, ignore_errors=True)
    return {k: median(v) for k, v in res.items()}


def met(ok):
    return "met" if ok else "**not met**"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    add_output_args(ap)
    args = ap.parse_args()
    require_memhound("heap-bench")
    pyver = subprocess.run([PYTHON, "-c", "import platform; "
                            "print(platform.python_version())"],
                           capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="mhheap-bench-")
    results = {}
    try:
        for variant in ("dict", "inst"):
            results[variant] = bench_variant(tmp, variant, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    labels = {"dict": "500k dicts + 500k str",
              "inst": "500k instances + 500k str"}
    load = os.getloadavg()[0]
    out = ["## heap", "",
           "Heap dumps and the heap CLI on a 1,000,000-object heap "
           "(issue 3): a target on %s (Python %s) builds a list of 500k "
           "small dicts each holding one distinct str, or of 500k class "
           "instances each with one str attribute; it calls "
           "`memhound.start()` (sampling), then `memhound.dump_heap()` "
           "twice, before (OLD) and after (NEW) adding %dk more of the "
           "same. *Dump* is dump_heap()'s wall time (it waits for the "
           "walker's fork()ed child to finish), *pause* the fork pause from "
           "the dump header (`pause_ns`), *bytes/object* the OLD file's "
           "size as written (chunks zstd-compressed at level 1) over its "
           "object count (`heap census --format json`). The "
           "CLI figures are wall time and peak RSS (`/usr/bin/time -f "
           "\"%%e %%M\"`) of `heap census OLD --format json`, `heap diff OLD "
           "NEW --format json` and `heap why OLD --type str`; RSS per "
           "object is over OLD's objects (census, why) or NEW's (diff). "
           "Medians of %d runs. Machine: %s, %d CPUs, Linux %s, load "
           "average %.2f at the end. Produced by `make bench` (standalone: "
           "`/usr/bin/python3 bench/heap_bench.py`) on %s." % (
               PYTHON, pyver, GROW // 1000, args.runs, platform.machine(),
               os.cpu_count(), platform.release(), load,
               datetime.date.today().isoformat()),
           "",
           "| heap | objects in OLD / NEW | dump OLD / NEW (s) | of which "
           "walk (s) | pause OLD / NEW (ms) | dump bytes/object | census "
           "(s, MiB) | diff (s, MiB) | why --type str (s, MiB) | census + "
           "diff + why (s) | peak CLI RSS bytes/object |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "| ---: | ---: |"]
    goals = []
    for v, r in results.items():
        rss_bpo = max(r["census_rss"] / r["objects"],
                      r["why_rss"] / r["objects"],
                      r["diff_rss"] / r["objects_new"])
        r["rss_bpo"] = rss_bpo
        out.append("| %s | %d / %d | %.3f / %.3f | %.3f | %.2f / %.2f | "
                   "%.1f | %.2f, %.0f | %.2f, %.0f | %.2f, %.0f | %.2f | "
                   "%.0f |" % (
                       labels[v], r["objects"], r["objects_new"],
                       r["dump_old_s"], r["dump_new_s"], r["walk_old_s"],
                       r["pause_old_ms"], r["pause_new_ms"], r["bpo"],
                       r["census_s"], r["census_rss"] / 2**20,
                       r["diff_s"], r["diff_rss"] / 2**20,
                       r["why_s"], r["why_rss"] / 2**20,
                       r["cli_total_s"], rss_bpo))
    out += ["", "Goals (issue 3), on OLD (1,000,000 objects), worst of the "
            "two heaps:", ""]
    worst = lambda k: max(r[k] for r in results.values())
    goal_rows = [
        ("dump <= 1.0 s", "%.3f s" % worst("dump_old_s"),
         worst("dump_old_s") <= 1.0),
        ("service pause <= 50 ms (forked)", "%.2f ms" % max(
            max(r["pause_old_ms"], r["pause_new_ms"])
            for r in results.values()),
         max(max(r["pause_old_ms"], r["pause_new_ms"])
             for r in results.values()) <= 50),
        ("dump <= 40 bytes/object", "%.1f" % worst("bpo"),
         worst("bpo") <= 40),
        ("census + diff + why <= 2 s", "%.2f s" % worst("cli_total_s"),
         worst("cli_total_s") <= 2.0),
        ("census + diff + why <= 200 bytes/object (peak RSS)",
         "%.0f" % worst("rss_bpo"), worst("rss_bpo") <= 200),
    ]
    for goal, val, ok in goal_rows:
        out.append("- %s: %s — %s" % (goal, val, met(ok)))
        goals.append(ok)
    out += ["",
            "Side by side, in-process on the same heaps (medians of %d "
            "runs):" % args.runs, "",
            "| tool | heap | time (s) | objects seen |",
            "| --- | --- | ---: | ---: |"]
    for v, r in results.items():
        out.append("| objgraph.typestats() (Debian python3-objgraph) | %s "
                   "| %.3f | %d |" % (labels[v], r["og_s"], r["og_objects"]))
    out += ["",
            "objgraph walks only `gc.get_objects()`: GC-tracked containers. "
            "Dicts holding only str are untracked and str is never tracked, "
            "so on the dict heap it misses nearly everything. guppy3 and "
            "pympler are not packaged in Debian and were not run; the "
            "issue's numbers on the 500k dicts + 500k str heap: guppy3 "
            "~1.4 s and changes the heap; pympler 2.1 s and misses the 500k "
            "strings; objgraph sees 14,201 objects; tracemalloc snapshot + "
            "statistics 5 s."]
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        update_doc(args.output, "## heap", text)
        log("wrote the heap section of %s" % args.output)
    return 0 if all(goals) else 1


if __name__ == "__main__":
    sys.exit(main())
