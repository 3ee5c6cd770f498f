"""A Flask app on wsgiref's server, driven by a bounded load from a
thread: /items/<int:id> keeps ~4 KB per request (an audit log), /health
keeps nothing, /search allocates and frees."""
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Flask, jsonify

app = Flask(__name__)
audit = []


def log_access(item_id):
    audit.append(("item %d " % item_id).encode() * 400)  # the leak


@app.route("/items/<int:item_id>")
def item(item_id):
    log_access(item_id)
    return jsonify(id=item_id)


@app.route("/health")
def health():
    return "ok"


@app.route("/search")
def search():
    hits = [str(i) * 50 for i in range(300)]
    return str(len(hits))


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
port = server.server_address[1]
t = threading.Thread(target=server.serve_forever, daemon=True)
t.start()
for i in range(300):
    for path in ("/items/%d" % i, "/health", "/search"):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path)) as r:
            r.read()
for path in ("/missing",):
    try:
        urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path))
    except Exception:
        pass
server.shutdown()
