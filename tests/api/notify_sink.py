"""A webhook sink for the notification tests (python3 stdlib): an HTTP server on a loopback port
that records every POST (headers and JSON body). `fail` makes the next N requests answer 500;
`delay` makes every request wait that many seconds before answering."""

import http.server
import json
import socket
import threading
import time


class Sink:
    def __init__(self, port=0):
        self.posts = []          # (headers message, parsed body) in arrival order
        self.lock = threading.Lock()
        self.fail = 0
        self.delay = 0.0
        self.attempts = 0
        self.times = []          # arrival time of every request
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with sink.lock:
                    sink.attempts += 1
                    sink.times.append(time.time())
                    failing = sink.fail > 0
                    if failing:
                        sink.fail -= 1
                if sink.delay:
                    time.sleep(sink.delay)
                if not failing:
                    with sink.lock:
                        sink.posts.append((self.headers, json.loads(body)))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/events" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        with self.lock:
            return [e for _, body in self.posts for e in body.get("events", [])]

    def wait_events(self, n, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ev = self.events()
            if len(ev) >= n:
                return ev
            time.sleep(0.05)
        return self.events()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def unused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    # notify_sink.py PORTFILE OUTFILE: serves until killed, one event per line in OUTFILE.
    import sys
    out = open(sys.argv[2], "a")
    sink = Sink()

    def record():
        written = 0
        while True:
            ev = sink.events()
            for e in ev[written:]:
                out.write(json.dumps(e) + "\n")
            out.flush()
            written = len(ev)
            time.sleep(0.05)
    threading.Thread(target=record, daemon=True).start()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(sink.port))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    threading.Event().wait()
