"""A stand-in for the agent's control channel (docs/snapshot.md), for the
tests of the commands that talk to it (guard, top): serves
<dir>/<pid>.sock where the agent would, one request per connection, one
reply line. `stats` answers "ok requests=N", N growing by `step` per
question, as the request counter of issue 4 is expected to; the other
requests answer as an agent without a heap walker would.

    python3 fakeagent.py            # serve for this process until killed
"""
import os
import socket
import sys
import threading


def socket_dir():
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/") and os.path.isdir(xdg):
        return os.path.join(xdg, "memhound")
    return "/tmp/memhound-%d" % os.geteuid()


def serve(step=3, capture="/nonexistent/fake.mhc", stats=True):
    """Starts a daemon thread serving this process's socket; returns its
    path, which the caller removes when done. With stats=False, `stats`
    is an unknown request, as for an agent without a request counter."""
    d = socket_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, "%d.sock" % os.getpid())
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(8)
    count = [0]

    def loop():
        while True:
            conn, _ = srv.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                req = data.decode().strip()
                if req == "stats" and stats:
                    count[0] += step
                    reply = "ok requests=%d" % count[0]
                elif req == "ping":
                    reply = "ok %d %s" % (os.getpid(), capture)
                elif req == "flush":
                    reply = "ok"
                elif req.startswith("dump"):
                    reply = "error this fake agent has no heap walker"
                else:
                    reply = "error unknown request '%s'" % req
                try:
                    conn.sendall((reply + "\n").encode())
                except OSError:
                    pass  # the client went away, as a client may

    threading.Thread(target=loop, daemon=True).start()
    return path


if __name__ == "__main__":
    p = serve()
    try:
        threading.Event().wait()
    finally:
        os.unlink(p)
