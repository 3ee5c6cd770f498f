"""Which frames count as the user's own code, on a real program: a Flask
app under Debian's gunicorn (`/usr/bin/gunicorn`, a console-script
wrapper) recorded by `memhound run --web`. The wrapper's `<module>` frame
is never a row's user frame ("called from /usr/bin/gunicorn:33"), and
`--by stack` shows none of memhound's own frames (its web layer, its
bootstrap)."""
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import MEMHOUND, PYDIR, Program, clean_env

GUNICORN = "/usr/bin/gunicorn"
MEMHOUND_PY = str(PYDIR)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=10) as r:
        return r.read()


def _frames(site):
    yield site.get("user_file"), site.get("user_line"), \
        site.get("user_function")
    for fr in site.get("frames") or ():
        yield fr["file"], fr["line"], fr["function"]


def test_flask_gunicorn_user_frames(procs, tmp_path):
    if not os.path.exists(GUNICORN) or not importlib.util.find_spec("flask"):
        pytest.skip("Debian's gunicorn and python3-flask are not installed")
    app = Program(tmp_path / "app.py", """
        from flask import Flask, request

        app = Flask(__name__)
        kept = []

        @app.route("/health")
        def health():
            return "ok"

        @app.route("/leak")
        def leak():
            kept.append({"path": request.path, "pad": "x" * 20000})  # MARK:leak
            return "ok"
        """)
    port = _free_port()
    out = tmp_path / "web.mhc"
    log = open(tmp_path / "server.log", "w+")
    p = procs.popen(
        [MEMHOUND, "run", "--web", "--sample-interval", "8k", "-q", "-o", out,
         "--", GUNICORN, "--workers", "1", "--bind", "127.0.0.1:%d" % port,
         "--chdir", str(tmp_path), "--log-level", "warning", "app:app"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=clean_env(), cwd=str(tmp_path))
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(port, "/health")
            break
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail("gunicorn did not come up:\n" + log.read())
            time.sleep(0.2)
    for _ in range(600):
        _get(port, "/leak")
    os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=60)

    caps = sorted(str(c) for c in tmp_path.glob("web*.mhc"))
    assert caps
    by_line = json.loads(subprocess.run(
        [MEMHOUND, "report", "--format", "json", "--top", "0", *caps], capture_output=True,
        check=True).stdout)
    by_stack = json.loads(subprocess.run(
        [MEMHOUND, "report", "--format", "json", "--top", "0", "--by", "stack", *caps],
        capture_output=True, check=True).stdout)

    rows = by_line["growth"] + by_line["live"]
    # The leak is found at its line in app.py (growth needs a run longer
    # than this one's second to be sure of; live at the end is certain).
    assert any(s.get("file") == str(app.path) and
               s.get("line") == app.lines["leak"]
               for s in rows), rows[:3]
    # No row is "called from" the console-script wrapper.
    # (a row whose site is the wrapper's own line is that line's, and
    # names it: that is not "called from")
    wrapped = [s for s in rows if s.get("user_file") == GUNICORN and
               s.get("file") != GUNICORN]
    assert not wrapped, wrapped[:2]
    # Library rows behind the leak name the app's line as their user frame,
    # not gunicorn's wrapper.
    lib_rows = [s for s in rows if s.get("user_file") and
                s.get("file") != s.get("user_file")]
    assert any(s["user_file"] == str(app.path) for s in lib_rows), lib_rows[:3]

    # --by stack: not one of memhound's own frames anywhere.
    srows = by_stack["growth"] + by_stack["live"]
    assert srows
    assert any(s.get("frames") for s in srows)
    ours = [f for s in srows for f in _frames(s)
            if f[0] and f[0].startswith(MEMHOUND_PY + "/")]
    assert not ours, ours[:3]
