"""The local test hosts' HTTP server (demo/local-hosts.sh starts it; Python 3 stdlib only).

Serves what runbooks/demo/monthly-local.yaml calls over HTTP:

  GET   /health/HOST                          200 "ok", or 503 while STATE/hosts/HOST/unhealthy exists
  POST  /api/now/table/change_request         opens a change (ServiceNow table API shape):
                                              201 {"result": {"number": "CHG00010001", "sys_id": ..., "state": "new", ...}}
  PATCH /api/now/table/change_request/SYS_ID  updates it (e.g. {"state": "closed", ...}): 200 {"result": {...}}
  GET   /api/now/table/change_request[/SYS_ID]  {"result": [...]} / {"result": {...}}

The API wants `Authorization: Bearer <the token in --token-file>` (401 otherwise), as the real one
wants credentials. Each change is kept as STATE/changes/<number>.json, so people (and tests) can
read what patchday sent. One line per request goes to stdout, without the Authorization header.
Prints READY 127.0.0.1:PORT once it listens.
"""
import argparse
import datetime
import hmac
import json
import os
import re
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--state", required=True)
parser.add_argument("--token-file", required=True)
args = parser.parse_args()

API = "/api/now/table/change_request"
CHANGES = os.path.join(args.state, "changes")
HOSTS = os.path.join(args.state, "hosts")
os.makedirs(CHANGES, exist_ok=True)
with open(args.token_file) as f:
    TOKEN = f.read().strip()
LOCK = threading.Lock()


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def changes():
    out = []
    for name in sorted(os.listdir(CHANGES)):
        if name.endswith(".json"):
            with open(os.path.join(CHANGES, name)) as f:
                out.append(json.load(f))
    return out


def save(change):
    path = os.path.join(CHANGES, change["number"] + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(change, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


class Handler(BaseHTTPRequestHandler):
    server_version = "patchday-demo-hosts"

    def log_message(self, fmt, *a):
        sys.stdout.write("%s %s\n" % (now(), fmt % a))
        sys.stdout.flush()

    def reply(self, status, body, content_type="application/json"):
        data = (json.dumps(body) + "\n").encode() if content_type == "application/json" else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), ("Bearer " + TOKEN).encode()):
            return True
        self.reply(401, {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"})
        return False

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def find(self, sys_id):
        return next((c for c in changes() if c["sys_id"] == sys_id), None)

    def do_GET(self):
        m = re.fullmatch(r"/health/([A-Za-z0-9_.-]+)", self.path)
        if m:
            host = m.group(1)
            if os.path.exists(os.path.join(HOSTS, host, "unhealthy")):
                return self.reply(503, "unhealthy %s\n" % host, "text/plain")
            return self.reply(200, "ok %s\n" % host, "text/plain")
        if self.path == "/health":
            return self.reply(200, "ok\n", "text/plain")
        if self.path == API:
            if self.authorized():
                self.reply(200, {"result": changes()})
            return
        if self.path.startswith(API + "/"):
            if self.authorized():
                change = self.find(self.path[len(API) + 1:])
                if change is None:
                    return self.reply(404, {"error": {"message": "No Record found"}, "status": "failure"})
                self.reply(200, {"result": change})
            return
        self.reply(404, {"error": {"message": "not found: %s" % self.path}})

    def do_POST(self):
        if self.path != API:
            return self.reply(404, {"error": {"message": "not found: %s" % self.path}})
        if not self.authorized():
            return
        fields = self.body()
        if fields is None:
            return self.reply(400, {"error": {"message": "the body must be a JSON object"}})
        with LOCK:
            number = "CHG%08d" % (10000 + len(changes()) + 1)
            change = dict(fields)
            change.update(
                number=number,
                sys_id=uuid.uuid4().hex,
                state="new",
                opened_at=now(),
                updated_at=now(),
            )
            save(change)
        self.reply(201, {"result": change})

    def do_PATCH(self):
        if not self.path.startswith(API + "/"):
            return self.reply(404, {"error": {"message": "not found: %s" % self.path}})
        if not self.authorized():
            return
        fields = self.body()
        if fields is None:
            return self.reply(400, {"error": {"message": "the body must be a JSON object"}})
        with LOCK:
            change = self.find(self.path[len(API) + 1:])
            if change is None:
                return self.reply(404, {"error": {"message": "No Record found"}, "status": "failure"})
            for key in ("number", "sys_id", "opened_at"):
                fields.pop(key, None)
            change.update(fields)
            change["updated_at"] = now()
            if fields.get("state") == "closed":
                change["closed_at"] = now()
            save(change)
        self.reply(200, {"result": change})


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print("READY 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
