"""The crawler from the field notes: a Django job with DEBUG = True running
ORM queries outside the request cycle, so every SQL statement is kept in
connection.queries_log (up to 9,000 per connection) and never reset.

Two heap dumps are taken from outside with `memhound snapshot PID` while
the job runs; `memhound heap diff` must show `str` growing first and
`memhound heap why --since OLD` must name `queries_log`; the report on the
job's capture joins the two dumps and says the same in one place.

Debian's python3-django on /usr/bin/python3, sqlite in memory, settings
configured in the script; bounded in time.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import MEMHOUND, SYSTEM_PY, clean_env, describe

WAIT = 90

JOB = r'''
import os, sys, time
import django
from django.conf import settings

settings.configure(
    DEBUG=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": ":memory:"}},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    USE_TZ=True,
)
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User

call_command("migrate", verbosity=0)
User.objects.bulk_create([User(username="user%d" % i) for i in range(200)])

stop = sys.argv[1]
deadline = time.time() + 60
# Long statements, as a crawler's are: the IN list makes each one ~2 KB.
names = ["user%d" % i for i in range(150)]
n = 0
while not os.path.exists(stop) and time.time() < deadline and n < 8500:
    wanted = names[n % 50:] + ["crawl-%d" % n]
    list(User.objects.filter(username__in=wanted).only("id")[:3])  # MARK:query
    n += 1
    if n % 250 == 0:
        print("queries", n, os.getpid(), flush=True)
        time.sleep(0.05)  # let a snapshot in between, as a real job would
print("done", n, flush=True)
'''


def django_available():
    r = subprocess.run([SYSTEM_PY, "-c", "import django"], capture_output=True)
    return r.returncode == 0


pytestmark = [
    pytest.mark.skipif(not MEMHOUND.exists(), reason="memhound is not built"),
    pytest.mark.skipif(not os.path.exists(SYSTEM_PY) or not django_available(),
                       reason="needs Debian's python3-django"),
]


def memhound(*args, cwd=None):
    r = subprocess.run([str(MEMHOUND), *map(str, args)], capture_output=True,
                       text=True, timeout=WAIT, env=clean_env(),
                       cwd=str(cwd) if cwd else None)
    assert r.returncode == 0, describe(r)
    return r


def test_debug_queries_log(procs, tmp_path):
    job = tmp_path / "job.py"
    job.write_text(JOB.lstrip("\n"))
    stop = tmp_path / "stop"
    p = procs.popen([MEMHOUND, "run", "-q", "-o", tmp_path / "job.mhc", "--",
                     SYSTEM_PY, job, stop], cwd=str(tmp_path),
                    env=clean_env(), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    old, new = tmp_path / "old.mhh", tmp_path / "new.mhh"
    taken = {}
    deadline = time.time() + WAIT
    try:
        for line in p.stdout:
            assert time.time() < deadline, "the job took too long"
            words = line.split()
            if words[0] != "queries":
                break
            n, pid = int(words[1]), int(words[2])
            if n >= 1000 and old not in taken:
                memhound("snapshot", pid, "-o", old)
                taken[old] = n
            elif n >= 6000 and new not in taken:
                memhound("snapshot", pid, "-o", new)
                taken[new] = n
                stop.write_text("")
    finally:
        stop.write_text("")
    out, err = p.communicate(timeout=WAIT)
    assert p.returncode == 0, err
    assert old in taken and new in taken, (taken, err)

    diff = json.loads(memhound("heap", "diff", old, new, "--format",
                               "json").stdout)
    top = diff["types"][0]
    assert top["type"] == "str", diff["types"][:5]
    # each query kept its statement: thousands of new strings
    assert top["count_delta"] > 0.8 * (taken[new] - taken[old]), top

    why = json.loads(memhound("heap", "why", new, "--since", old, "--format",
                              "json").stdout)
    first = why["paths"][0]
    assert "queries_log" in first["path"], why["paths"][:3]
    assert "['sql']" in first["path"], first

    # the report on the capture finds both dumps and joins them
    rep = json.loads(memhound("report", "--format", "json",
                              tmp_path / "job.mhc").stdout)
    heap = rep["heap"]
    assert [d["path"] for d in heap["dumps"]] == [str(old), str(new)]
    proc = heap["processes"][0]
    assert proc["old"] == str(old) and proc["new"] == str(new)
    assert proc["types"][0]["type"] == "str", proc["types"][:3]
    paths = proc["types"][0]["paths"]
    assert paths and "queries_log" in paths[0]["path"], paths
    # allocated by Django's SQL compiler, called from the job's query line
    query_line = next(i for i, l in enumerate(JOB.lstrip("\n").splitlines(), 1)
                      if "MARK:query" in l)
    sites = proc["types"][0]["sites"]
    assert any((s["user_file"] == str(job) and s["user_line"] == query_line)
               or (s["file"] == str(job) and s["line"] == query_line)
               for s in sites), sites
    text = memhound("report", tmp_path / "job.mhc").stdout
    assert "queries_log" in text, text[-3000:]
