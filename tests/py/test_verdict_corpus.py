"""The verdict's labelled corpus (docs/verdict.md): real programs under
tests/corpus/, each with its truth in its header, run under `memhound run`
in sampling mode, and judged by `memhound report` (per process and
merged) and, while they run, by `memhound inspect` (how soon the verdict
was right and stayed right).

All programs run at once (they mostly sleep), so the corpus costs about
the slow leak's two minutes of wall time: it needs 120 s of real data.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import MEMHOUND, clean_env, describe

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PY = "/usr/bin/python3"
GUNICORN = "/usr/bin/gunicorn"
SHORT = 30  # seconds each program runs; the slow leak runs SLOW
SLOW = 125

# name: (seconds, accepted verdict, extra check on the verdict json)
TRUTH = {
    "small_leak": (SHORT, "leak", None),
    "large_leak": (SHORT, "leak", None),
    "churn_leak": (SHORT, "leak", None),
    "slow_leak": (SLOW, "leak", None),
    "bounded_cache": (45, "bounded", None),
    "glibc_frag": (SHORT, "retention",
                   lambda v: "malloc-trim" in v["remedies"]),
    "pymalloc_pin": (SHORT, "retention",
                     lambda v: "pymalloc" in v["remedies"]),
    "thread_arenas": (SHORT, "retention",
                      lambda v: {"malloc-trim", "malloc-arena-max"}
                      <= set(v["remedies"])),
    "no_growth": (SHORT, "no-growth", lambda v: v["remedies"] == []),
    "native_growth": (SHORT, "leak",
                      lambda v: v["native"] and not v["leak"]),
    "leak_retention": (SHORT, "leak+retention",
                       lambda v: {"find-leak", "malloc-trim"}
                       <= set(v["remedies"])),
}
# When `memhound inspect` asks each single-process program.
POLLS = [8, 12, 15, 20, 25, 29]
SLOW_POLLS = [30, 45, 60, 75, 90, 105, 120]


def _polls(secs):
    return POLLS if secs == SHORT else SLOW_POLLS if secs == SLOW else \
        list(range(10, secs, 5))


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _inspect(pid):
    r = subprocess.run([str(MEMHOUND), "inspect", "--format", "json",
                        str(pid)], env=clean_env(), capture_output=True,
                       text=True, timeout=60)
    if r.returncode:
        return None
    return json.loads(r.stdout)["verdict"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bursts(port, stop):
    """Bursts of 3 s at up to 50 requests/s with 3 s idle gaps, at most
    4000 requests: the traffic spreads over the whole run, well past the
    workers' warm-up (the first 10% of their life is not judged)."""
    sent = 0
    while not stop.is_set() and sent < 4000:
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end and not stop.is_set() \
                and sent < 4000:
            url = "http://127.0.0.1:%d/item?n=%d" % (port, sent)
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                sent += 1
            except OSError:
                time.sleep(0.05)
            time.sleep(0.02)
        stop.wait(3)
    return sent


class Corpus:
    def __init__(self, tmp):
        self.tmp = tmp
        self.runs = {}      # name -> Popen of `memhound run`
        self.polls = {}     # name -> [(span, verdict)]
        self.gunicorn = None
        self.gunicorn_log = None

    def start(self):
        for name, (secs, _, _) in TRUTH.items():
            self.runs[name] = subprocess.Popen(
                [str(MEMHOUND), "run", "-o", str(self.tmp / (name + ".mhc")),
                 "--", PY, str(CORPUS / (name + ".py")), str(secs)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=clean_env(), start_new_session=True)
            self.polls[name] = []
        self.runs["prefork"] = subprocess.Popen(
            [str(MEMHOUND), "run", "-o", str(self.tmp / "prefork.mhc"), "--",
             PY, str(CORPUS / "prefork.py"), str(SHORT)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=clean_env(), start_new_session=True)

    def start_gunicorn(self):
        if os.path.exists(GUNICORN):
            gdir = self.tmp / "gunicorn"
            gdir.mkdir()
            shutil.copy(CORPUS / "gunicorn_app.py", gdir)
            self.port = _free_port()
            self.gunicorn_log = open(self.tmp / "gunicorn.log", "w+")
            self.gunicorn = subprocess.Popen(
                [str(MEMHOUND), "run", "--web", "-o",
                 str(gdir / "g.mhc"), "--", GUNICORN, "--workers", "2",
                 "--bind", "127.0.0.1:%d" % self.port, "--chdir", str(gdir),
                 "--log-level", "warning", "gunicorn_app:app"],
                stdout=self.gunicorn_log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=clean_env(), cwd=str(gdir),
                start_new_session=True)

    def drive_gunicorn(self):
        """Waits (up to 60 s) until the app answers, then starts the
        bursts; returns when they started."""
        stop = threading.Event()
        box = []
        t = threading.Thread(target=lambda: box.append(
            _bursts(self.port, stop)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = "http://127.0.0.1:%d/up" % self.port
                with urllib.request.urlopen(url, timeout=2) as r:
                    r.read()
                break
            except OSError:
                time.sleep(0.2)
        t.start()
        return stop, t, box, time.monotonic()

    def poll(self, t0):
        """Asks inspect at each poll time while the programs run."""
        plan = sorted((at, name) for name in TRUTH
                      for at in _polls(TRUTH[name][0]))
        for at, name in plan:
            wait = t0 + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            run = self.runs[name]
            kids = _children(run.pid)
            if run.poll() is not None or not kids:
                continue
            v = _inspect(kids[0])
            if v:
                self.polls[name].append((v["span"], v["verdict"]))

    def stop(self):
        for p in list(self.runs.values()) + [self.gunicorn]:
            if p is None:
                continue
            try:
                p.wait(timeout=SLOW + 120)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if p.stdout:
                p.stdout.close()


def _kill(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    c = Corpus(tmp_path_factory.mktemp("corpus"))
    try:
        c.start()
        t0 = time.monotonic()
        poller = threading.Thread(target=c.poll, args=(t0,))
        poller.start()
        # The server runs while the slow leak does, after the short
        # programs (their start is CPU-heavy): its workers boot on a
        # quiet machine.
        for name, (secs, _, _) in TRUTH.items():
            if secs == SHORT:
                c.runs[name].wait(timeout=SHORT + 60)
        c.start_gunicorn()
        if c.gunicorn:
            load = c.drive_gunicorn()
            # Bursts for ~35 s, then 6 s idle, then a stop as a service
            # manager would.
            time.sleep(max(0, load[3] + 35 - time.monotonic()))
            load[0].set()
            load[1].join(30)
            c.sent = load[2][0] if load[2] else 0
            time.sleep(6)
            os.kill(c.gunicorn.pid, signal.SIGTERM)
        poller.join()
        c.stop()
        yield c
    finally:
        for p in list(c.runs.values()) + [c.gunicorn]:
            if p is not None:
                _kill(p)
        if c.gunicorn_log:
            c.gunicorn_log.close()


def _report(paths):
    r = subprocess.run([str(MEMHOUND), "report", "--format", "json"]
                       + [str(p) for p in paths], env=clean_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, describe(r)
    return json.loads(r.stdout)


def _text(paths):
    r = subprocess.run([str(MEMHOUND), "report"] + [str(p) for p in paths],
                       env=clean_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, describe(r)
    return r.stdout


def time_to_verdict(polls, truth):
    """The data (s) from which every poll said the truth, or None."""
    first = None
    for span, verdict in polls:
        if verdict == truth:
            first = span if first is None else first
        else:
            first = None
    return first


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_corpus_single_process(corpus, name):
    secs, truth, extra = TRUTH[name]
    rep = _report([corpus.tmp / (name + ".mhc")])
    v = rep["verdict"]
    ttv = time_to_verdict(corpus.polls[name], truth)
    sys.stderr.write("corpus %s: truth %s, verdict %s, polls %s, "
                     "time to verdict %s\n" % (
                         name, truth, v["verdict"], corpus.polls[name], ttv))
    assert v["verdict"] == truth, json.dumps(v, indent=1)
    if extra:
        assert extra(v), json.dumps(v, indent=1)
    assert v["processes"][0]["verdict"] == truth
    text = _text([corpus.tmp / (name + ".mhc")])
    assert "Verdict: %s\n" % truth in text, text
    if "leak" in truth and not v["native"]:
        # The verdict names the growth site the leak is in.
        assert "growth sites carrying it: " in v["sites"], v["sites"]
        assert (name + ".py:") in v["sites"], v["sites"]
    if v["rss_limit"]:
        assert v["rss_limit"] <= 4 * v["rss_peak"], v
    # inspect agreed by the end, and early enough.
    assert ttv is not None, corpus.polls[name]
    if name == "small_leak":
        assert ttv <= 15, corpus.polls[name]
    if name == "slow_leak":
        assert ttv <= 120, corpus.polls[name]


def _workers(rep):
    return [p for p in rep["verdict"]["processes"] if p["role"] == "worker"]


def test_corpus_prefork_merged(corpus):
    caps = sorted(corpus.tmp.glob("prefork*.mhc"))
    assert len(caps) == 3, caps
    rep = _report(caps)
    v = rep["verdict"]
    assert v["verdict"] == "leak", json.dumps(v, indent=1)
    assert "leak in 2 of 2 workers" in v["summary"], v["summary"]
    assert "the master does not grow" in v["summary"], v["summary"]
    masters = [p for p in v["processes"] if p["role"] == "master"]
    assert len(masters) == 1 and masters[0]["verdict"] == "no-growth"
    assert [w["verdict"] for w in _workers(rep)] == ["leak", "leak"]
    assert "prefork.py:" in v["sites"], v["sites"]
    # Each process's own capture, alone, says the same as in the merge.
    for pr in rep["processes"]:
        one = _report([pr["file"]])["verdict"]
        want = "leak" if pr.get("fork_parent") else "no-growth"
        assert one["verdict"] == want, (pr["file"], one)
    text = _text(caps)
    assert "Verdict: leak\n  leak in 2 of 2 workers" in text, text
    sys.stderr.write("corpus prefork: %s; %s\n" % (v["summary"], [
        (p["role"], p["verdict"]) for p in v["processes"]]))


@pytest.mark.skipif(not os.path.exists(GUNICORN),
                    reason="Debian's gunicorn is not installed")
def test_corpus_gunicorn_per_request(corpus):
    caps = sorted((corpus.tmp / "gunicorn").glob("*.mhc"))
    corpus.gunicorn_log.seek(0)
    log = corpus.gunicorn_log.read()[-3000:]
    assert len(caps) >= 3, (caps, log)
    sent = getattr(corpus, "sent", 0)
    assert sent >= 300, (sent, log)
    rep = _report(caps)
    v = rep["verdict"]
    workers = _workers(rep)
    served = [w for w in workers
              if w.get("live_trend", {}).get("by") == "requests"]
    if not served:
        sys.stderr.write("corpus gunicorn: %d sent\n%s\n%s\n" % (
            sent, log, json.dumps(rep["processes"], indent=1)[:6000]))
    assert served, (log, rep["processes"], [
        (p["pid"], p["role"], p["verdict"], p["why"])
        for p in v["processes"]])
    for w in served:
        assert w["verdict"] == "leak", json.dumps(w, indent=1)
        # ~10 KB of page per request, plus the key and the dict's share.
        assert 4000 < w["per_request"] < 40000, w
    masters = [p for p in v["processes"] if p["role"] == "master"]
    assert [m["verdict"] for m in masters] == ["no-growth"], v["summary"]
    assert v["verdict"] == "leak"
    assert "leak in %d of %d workers" % (len(served), len(workers)) \
        in v["summary"], v["summary"]
    assert "per request" in v["summary"], v["summary"]
    assert "gunicorn_app.py:" in v["sites"], v["sites"]
    sys.stderr.write("corpus gunicorn: %d requests; %s; %s\n" % (
        getattr(corpus, "sent", 0), v["summary"], [
            (p["role"], p["verdict"], p.get("per_request"))
            for p in v["processes"]]))
