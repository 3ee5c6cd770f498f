"""One benchmark workload, run in its own process by bench/run.py.

    workload.py NAME [--iterations N] [--seconds S] [--stats]
    workload.py --build-db PATH

NAME is one of
  small     Django test Client GETs of a small JSON endpoint
  queryset  Django test Client GETs of a view that evaluates a 20k-row,
            16-column QuerySet (the field notes' incident)
  cpu       pure-Python number crunching (spectral norm and n-body, as in
            pyperformance): no I/O, many short-lived floats
  threads   the queryset request in 4 threads at once

The process sets up (imports Django, opens the database, serves one warm-up
request) and then times only the loop, so the numbers compare steady state,
not start-up. With --iterations 0 it does the set-up and the warm-up only:
under callgrind, bench/run.py subtracts that run's instruction count from
the full one to get the loop's.
It prints one JSON line: workload, iterations, seconds, rss, and the
agent's stats when it runs under memhound (--stats).
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _django_setup():
    sys.path.insert(0, HERE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
    import django

    django.setup()


def build_db(path):
    """Creates the 20,000-row Student table at `path` (replacing it)."""
    import datetime
    import random

    if os.path.exists(path):
        os.unlink(path)
    os.environ["MEMHOUND_BENCH_DB"] = path
    _django_setup()
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from benchsite.models import Student

    with connection.schema_editor() as editor:
        editor.create_model(ContentType)
        editor.create_model(Student)
    rng = random.Random(20)
    now = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    rows = []
    for i in range(20_000):
        rows.append(Student(
            first_name="first%05d" % i, last_name="last%05d" % i,
            email="student%05d@example.edu" % i,
            age=21 + i % 10, grade=1 + i % 12,
            score=rng.uniform(0, 100), gpa=rng.uniform(1, 4),
            city="city%03d" % (i % 300), country="country%02d" % (i % 40),
            enrolled=datetime.date(2020, 1 + i % 12, 1 + i % 28),
            updated=now, active=bool(i % 3), credits=i % 180,
            advisor="advisor%03d" % (i % 150),
            notes="note %d: " % i + "lorem ipsum " * 4))
    with transaction.atomic():
        Student.objects.bulk_create(rows, batch_size=2000)
    connection.close()


# --- workloads: each returns a callable doing one iteration ----------------

def _small():
    from django.test import Client

    client = Client()

    def once():
        r = client.get("/ping/", {"name": "bench"})
        assert r.status_code == 200, r.status_code

    return once


def _queryset(rows=20_000):
    from django.test import Client

    client = Client()
    query = {"limit": rows} if rows != 20_000 else {}

    def once():
        r = client.get("/students/", query)
        assert r.status_code == 200, r.status_code
        assert json.loads(r.content)["count"] == rows

    return once


def _threads(rows=20_000):
    from django.db import connection

    def worker(errors):
        try:
            _queryset(rows)()
        except Exception as e:  # reported by the caller
            errors.append(e)
        finally:
            connection.close()

    def once():
        errors = []
        ts = [threading.Thread(target=worker, args=(errors,))
              for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]

    return once


def _spectral_norm(n):
    def a(i, j):
        return 1.0 / ((i + j) * (i + j + 1) // 2 + i + 1)

    def av(x):
        return [sum(a(i, j) * xj for j, xj in enumerate(x)) for i in range(n)]

    def atv(x):
        return [sum(a(j, i) * xj for j, xj in enumerate(x)) for i in range(n)]

    u = [1.0] * n
    for _ in range(6):
        v = atv(av(u))
        u = atv(av(v))
    vbv = sum(ui * vi for ui, vi in zip(u, v))
    vv = sum(vi * vi for vi in v)
    return (vbv / vv) ** 0.5


def _nbody(steps):
    bodies = [
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 39.47],
        [[4.84, -1.16, -0.10], [0.606, 2.81, -0.02], 0.037],
        [[8.34, 4.12, -0.40], [-1.01, 1.82, 0.008], 0.011],
        [[12.89, -15.11, -0.22], [1.08, 0.868, -0.010], 0.0017],
        [[15.37, -25.91, 0.179], [0.979, 0.594, -0.034], 0.002],
    ]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    dt = 0.01
    for _ in range(steps):
        for ((x1, y1, z1), v1, m1), ((x2, y2, z2), v2, m2) in pairs:
            dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1m, b2m = m1 * mag, m2 * mag
            v1[0] -= dx * b2m
            v1[1] -= dy * b2m
            v1[2] -= dz * b2m
            v2[0] += dx * b1m
            v2[1] += dy * b1m
            v2[2] += dz * b1m
        for (r, (vx, vy, vz), m) in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz
    return bodies[0][0][0]


def _cpu(scale=1.0):
    def once():
        _spectral_norm(int(120 * scale ** 0.5))
        _nbody(int(20000 * scale))

    return once


WORKLOADS = {"small": _small, "queryset": _queryset, "cpu": _cpu,
             "threads": _threads}
DJANGO = {"small", "queryset", "threads"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?", choices=sorted(WORKLOADS))
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="loop for this long instead (steady service)")
    ap.add_argument("--rows", type=int, default=20_000,
                    help="rows the queryset view builds (queryset, threads)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="size of one cpu iteration (cpu)")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                    help="start tracemalloc after the set-up (callgrind)")
    ap.add_argument("--stats", action="store_true",
                    help="print the agent's stats (under memhound)")
    ap.add_argument("--build-db", metavar="PATH")
    args = ap.parse_args()

    if args.build_db:
        build_db(args.build_db)
        return 0
    if not args.workload:
        ap.error("a workload is required")
    if args.workload in DJANGO:
        _django_setup()
    if args.workload in ("queryset", "threads"):
        once = WORKLOADS[args.workload](args.rows)
    elif args.workload == "cpu":
        once = WORKLOADS[args.workload](args.scale)
    else:
        once = WORKLOADS[args.workload]()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(args.tracemalloc)
    if not args.no_warmup:
        once()
    # A collection now, so the loop's collections do not depend on how
    # many objects the set-up left pending: sampling mode's start-up makes
    # a few more, which moved the one full collection of (a)'s 800-request
    # loop into its set-up, so subtracting the set-up-only run under
    # callgrind took ~15 M instructions out of its loop (1.017x read
    # against a 1.022x forward-only floor).
    import gc

    gc.collect()

    n = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    if args.seconds > 0:
        end = t0 + args.seconds
        while time.perf_counter() < end:
            once()
            n += 1
    else:
        for _ in range(args.iterations):
            once()
        n = args.iterations
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0

    out = {"workload": args.workload, "iterations": n, "seconds": elapsed,
           "cpu_seconds": cpu, "rss": _rss(), "memhound": None}
    if args.stats:
        try:
            import memhound

            out["memhound"] = memhound.stats()
        except Exception as e:  # not under memhound, or an older agent
            out["memhound"] = {"error": str(e)}
    print("BENCH " + json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
