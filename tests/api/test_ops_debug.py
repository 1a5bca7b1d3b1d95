"""The debug server (http.debug.addr): GET /debug/health, and Prometheus metrics at
http.debug.prometheus.path when enabled. The metrics text must parse, and the counters must move
by exactly what the requests made: one berth process per class, so the numbers are its own."""

import math
import os
import re
import socket
import time

import berthtest as bt
from berthtest import ACCEPT_ALL, setUpModule  # noqa: F401
from hardening_lib import Registry


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(?:,|$)')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Metrics:
    """A parsed Prometheus text exposition (format 0.0.4)."""

    def __init__(self, text):
        self.text = text
        self.types = {}      # family -> type
        self.samples = {}    # (name, ((label, value), ...)) -> float
        self.errors = []
        seen_families = set()
        for n, line in enumerate(text.split("\n"), 1):
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    fam = parts[2]
                    if fam in self.types:
                        self.errors.append("line %d: second TYPE for %s" % (n, fam))
                    if len(parts) < 4 or parts[3].strip() not in TYPES:
                        self.errors.append("line %d: bad TYPE line %r" % (n, line))
                    else:
                        self.types[fam] = parts[3].strip()
                    if fam in seen_families:
                        self.errors.append("line %d: TYPE for %s after its samples" % (n, fam))
                continue
            m = SAMPLE.match(line)
            if not m:
                self.errors.append("line %d: not a sample: %r" % (n, line))
                continue
            name, labels, value = m.groups()
            lab = []
            if labels:
                pos = 0
                labels = labels.rstrip(",")
                while pos < len(labels):
                    lm = LABEL.match(labels, pos)
                    if not lm:
                        self.errors.append("line %d: bad labels %r" % (n, labels))
                        break
                    lab.append((lm.group(1), lm.group(2)))
                    pos = lm.end()
            try:
                v = float(value)
            except ValueError:
                self.errors.append("line %d: bad value %r" % (n, value))
                continue
            fam = self.family(name)
            seen_families.add(fam)
            if fam not in self.types:
                self.errors.append("line %d: sample %s without a TYPE line" % (n, name))
            key = (name, tuple(sorted(lab)))
            if key in self.samples:
                self.errors.append("line %d: duplicate series %s%s" % (n, name, dict(lab)))
            self.samples[key] = v

    def family(self, name):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name[: -len(suffix)]) in ("histogram",
                                                                                "summary"):
                return name[: -len(suffix)]
        return name

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name):
        """{labels dict as tuple: value} for every series of name."""
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


def start_debug_server(tmp, extra_yaml, name, args=()):
    root = "%s/%s-root" % (tmp, name)
    ports = {}

    def make(port):
        ports["debug"] = bt.free_port()
        return ["serve", bt.write_file("%s/%s.yml" % (tmp, name),
                                       "version: 0.1\n"
                                       "log:\n  level: warn\n"
                                       "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                       "  delete:\n    enabled: true\n"
                                       "  cache:\n    blobdescriptor: inmemory\n"
                                       "http:\n  addr: 127.0.0.1:%d\n"
                                       "  debug:\n    addr: 127.0.0.1:%d\n%s"
                                       % (root, port, ports["debug"], extra_yaml))] + list(args), {}
    s = bt.spawn_berth(make, tmp)
    # the debug listener starts after the main one
    if not bt.wait_until(lambda: bt.port_open(ports["debug"]), 5):
        raise RuntimeError("debug server not listening\n" + s.describe())
    s.debug = bt.Client("http://127.0.0.1:%d" % ports["debug"])
    return s


class DebugServerTest(bt.OpsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s = start_debug_server(cls.tmp, "    prometheus:\n      enabled: true\n"
                                            "      path: /metrics\n"
                                            "health:\n  storagedriver:\n    enabled: true\n"
                                            "    interval: 1s\n    threshold: 1\n", "debug")
        cls.c = cls.s.client()
        cls.d = cls.s.debug

    def setUp(self):
        if not self.s.alive():
            self.fail("berth is no longer running\n" + self.s.describe())

    def scrape(self):
        r = self.d.get("/metrics")
        self.assertStatus(r, 200)
        self.assertRegex(r.header("Content-Type", ""), r"^text/plain")
        m = Metrics(r.body.decode("utf-8"))
        if m.errors:
            self.fail("metrics do not parse:\n%s\n--- text ---\n%s" % ("\n".join(m.errors[:20]),
                                                                     m.text[:3000]))
        return m

    def test_health(self):
        r = self.d.get("/debug/health")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {}, r.describe())
        self.assertRegex(r.header("Content-Type", ""), r"^application/json")

    def test_debug_endpoints_only_on_debug_port(self):
        self.assertStatus(self.c.get("/debug/health"), 404)
        self.assertStatus(self.c.get("/metrics"), 404)
        self.assertStatus(self.d.get("/v2/"), 404)
        self.assertStatus(self.d.get("/no/such/thing"), 404)

    def test_metrics_parse_and_declare_types(self):
        m = self.scrape()
        want = {"berth_http_requests_total": "counter",
                "berth_http_request_duration_seconds": "histogram",
                "berth_http_request_bytes_total": "counter",
                "berth_http_response_bytes_total": "counter",
                "berth_storage_operation_duration_seconds": "histogram",
                "berth_storage_coalesced_total": "counter",
                "berth_cache_requests_total": "counter",
                "berth_uploads_in_progress": "gauge",
                "berth_http_connections_open": "gauge",
                "berth_http_connections_refused_total": "counter",
                "berth_http_header_timeouts_total": "counter",
                "berth_http_client_closes_noticed_total": "counter",
                "berth_http_wrong_protocol_total": "counter"}
        for fam, typ in want.items():
            self.assertEqual(m.types.get(fam), typ, "TYPE of %s\n%s" % (fam, m.text[:2000]))
        for (name, labels), v in m.samples.items():
            self.assertFalse(math.isnan(v), name)
            if m.types.get(m.family(name)) == "counter" or name.endswith(("_count", "_bucket")):
                self.assertGreaterEqual(v, 0, "%s%s" % (name, dict(labels)))

    def test_uploads_in_progress_zero_at_rest(self):
        self.assertEqual(self.scrape().series("berth_uploads_in_progress"), {(): 0.0})

    def test_counters_move_by_the_requests_made(self):
        repo = "metrics/count"
        data = b"metrics blob " * 300
        cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        before = self.scrape()
        made = []  # (route, method, status)

        def note(r, route):
            made.append((route, r.method, str(r.status)))
            return r

        note(self.c.get("/v2/"), "base")
        note(self.c.get("/v2/%s/manifests/nope" % repo, headers=ACCEPT_ALL), "manifest")
        for blob in (data, cfg):
            r = note(self.c.post("/v2/%s/blobs/uploads/" % repo), "uploads")
            r = note(self.c.put(self.c.resolve(r.header("Location"), {"digest": bt.digest(blob)}),
                                blob), "upload")
            self.assertStatus(r, 201)
        note(self.c.head("/v2/%s/blobs/%s" % (repo, bt.digest(data))), "blob")
        r = note(self.c.get("/v2/%s/blobs/%s" % (repo, bt.digest(data))), "blob")
        self.assertEqual(r.body, data)
        note(self.c.get("/v2/%s/blobs/sha256:%s" % (repo, "0" * 64)), "blob")
        m = bt.canonical({"schemaVersion": 2, "mediaType": bt.OCI_MANIFEST,
                          "config": bt.descriptor(cfg, bt.OCI_CONFIG),
                          "layers": [bt.descriptor(data, bt.OCI_LAYER)]})
        r = note(self.c.put_manifest(repo, "v1", m), "manifest")
        self.assertStatus(r, 201)
        note(self.c.get("/v2/%s/tags/list" % repo), "tags")
        note(self.c.get("/v2/_catalog"), "catalog")
        note(self.c.delete("/v2/%s/manifests/%s" % (repo, bt.digest(m))), "manifest")
        note(self.c.patch("/v2/%s/blobs/uploads/nope" % repo, b"x"), "upload")

        # a request is counted when it completes, just after its answer was sent: wait until
        # the last one is in
        def total(m):
            return sum(m.series("berth_http_requests_total").values())
        want_total = total(before) + len(made)
        after = bt.wait_until(lambda: (lambda m: m if total(m) >= want_total else None)(
            self.scrape()), 3)
        if after is None:
            after = self.scrape()

        expected = {}
        for k in made:
            expected[k] = expected.get(k, 0) + 1
        got = {}
        for labels, v in after.series("berth_http_requests_total").items():
            d = dict(labels)
            delta = v - before.get("berth_http_requests_total", **d)
            if delta:
                got[(d.get("route"), d.get("method"), d.get("status"))] = delta
        self.assertEqual(got, {k: float(v) for k, v in expected.items()},
                         "berth_http_requests_total moved by something else than the requests "
                         "made (%d)" % len(made))

        def delta(name, **labels):
            return after.get(name, **labels) - before.get(name, **labels)
        # (the PATCH to an unknown upload may be refused before its 1 byte is read)
        self.assertIn(delta("berth_http_request_bytes_total", route="upload"),
                      (len(data) + len(cfg), len(data) + len(cfg) + 1))
        self.assertEqual(delta("berth_http_request_bytes_total", route="manifest"), len(m))
        self.assertEqual(delta("berth_http_response_bytes_total", route="base"), 2)
        self.assertGreaterEqual(delta("berth_http_response_bytes_total", route="blob"), len(data))
        for route in ("base", "manifest", "upload", "blob", "uploads", "tags", "catalog"):
            n = sum(v for (r, _, _), v in expected.items() if r == route)
            self.assertEqual(delta("berth_http_request_duration_seconds_count", route=route), n,
                             route)
            self.assertGreaterEqual(delta("berth_http_request_duration_seconds_sum", route=route), 0)
        ops = after.series("berth_storage_operation_duration_seconds_count")
        moved = {dict(l)["op"] for l, v in ops.items()
                 if v > before.get("berth_storage_operation_duration_seconds_count", **dict(l))}
        for op in ("put_content", "get_content", "stat", "writer", "move"):
            self.assertIn(op, moved, "storage op %s did not count a push (moved: %s)"
                          % (op, sorted(moved)))
        cache = sum(after.series("berth_cache_requests_total").values()) - \
            sum(before.series("berth_cache_requests_total").values())
        self.assertGreater(cache, 0, "no blob descriptor cache lookup counted for HEAD/GET blob")
        self.assertEqual(after.get("berth_uploads_in_progress"), 0)

    def test_histograms_are_cumulative(self):
        self.c.get("/v2/")
        self.c.get("/v2/x/manifests/y")
        m = self.scrape()
        checked = 0
        for fam, typ in m.types.items():
            if typ != "histogram":
                continue
            groups = {}
            for labels, v in m.series(fam + "_bucket").items():
                d = dict(labels)
                le = d.pop("le", None)
                self.assertIsNotNone(le, "%s_bucket without le" % fam)
                groups.setdefault(tuple(sorted(d.items())), []).append(
                    (math.inf if le == "+Inf" else float(le), v))
            self.assertTrue(groups, "histogram %s has no buckets" % fam)
            for labels, buckets in groups.items():
                buckets.sort()
                values = [v for _, v in buckets]
                self.assertEqual(values, sorted(values),
                                 "%s%s buckets are not cumulative: %s" % (fam, dict(labels), buckets))
                self.assertEqual(buckets[-1][0], math.inf, "%s%s has no +Inf bucket" % (fam, labels))
                count = m.samples.get((fam + "_count", labels))
                self.assertIsNotNone(count, "%s%s has no _count" % (fam, dict(labels)))
                self.assertEqual(buckets[-1][1], count, "%s%s: +Inf bucket != _count" % (fam, labels))
                self.assertIn((fam + "_sum", labels), m.samples, "%s%s has no _sum" % (fam, labels))
                checked += 1
        self.assertGreater(m.get("berth_http_request_duration_seconds_count", route="base"), 0)
        self.assertGreater(checked, 2)

    def test_uploads_in_progress_counts_a_body_being_received(self):
        r = self.c.start_upload("metrics/inprogress")
        path = self.c.resolve(r.header("Location"))
        body = b"z" * 200000
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                          "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % (path, len(body))).encode() + body[:1000])
            seen = bt.wait_until(lambda: self.scrape().get("berth_uploads_in_progress") == 1, 5)
            sock.sendall(body[1000:])
            resp = b""
            while b"\r\n\r\n" not in resp:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                resp += chunk
        self.assertTrue(seen, "berth_uploads_in_progress did not show the PATCH being received")
        self.assertRegex(resp, rb"^HTTP/1\.1 202")
        self.assertTrue(bt.wait_until(lambda: self.scrape().get("berth_uploads_in_progress") == 0, 5),
                        "berth_uploads_in_progress did not go back to 0")

    def test_connection_metrics(self):
        """berth_http_connections_open counts a keep-alive connection while it is open, and a
        client that dies mid-body (its close riding on its last bytes) is counted as noticed."""
        sock, _ = bt.keepalive_after_ping(self.s.port)
        with sock:
            held = self.scrape().get("berth_http_connections_open")
            self.assertGreaterEqual(held, 1)
        self.assertTrue(bt.wait_until(lambda: self.scrape().get("berth_http_connections_open") <= held - 1, 5),
                        "berth_http_connections_open did not come down when a connection closed")
        noticed0 = self.scrape().get("berth_http_client_closes_noticed_total")
        r = Registry(self.s.port)
        self.addCleanup(r.close)
        r.die_mid_body("PATCH", r.start_upload("metrics/dies"), b"d" * 100000, 5000)
        self.assertTrue(bt.wait_until(
            lambda: self.scrape().get("berth_http_client_closes_noticed_total") > noticed0, 5),
            "a client gone mid-body was not noticed")

    def test_debug_methods(self):
        r = self.d.post("/metrics", b"")
        self.assertIn(r.status, (404, 405), r.describe())


class ConnectionLimitMetricsTest(bt.OpsTestCase):
    """berth_http_connections_refused_total and berth_http_header_timeouts_total, with
    --max-connections 2 --header-timeout 1."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s = start_debug_server(cls.tmp, "    prometheus:\n      enabled: true\n      path: /metrics\n",
                                   "limits", args=("--max-connections", "2", "--header-timeout", "1"))

    def metric(self, name):
        r = self.s.debug.get("/metrics")
        self.assertStatus(r, 200)
        return Metrics(r.body.decode("utf-8")).get(name)

    def test_refusals_and_header_timeouts_counted(self):
        refused0 = self.metric("berth_http_connections_refused_total")
        timeouts0 = self.metric("berth_http_header_timeouts_total")
        held = [socket.create_connection(("127.0.0.1", self.s.port), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as third:
                third.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    self.assertEqual(third.recv(100), b"", "a third connection was served")
                except ConnectionResetError:
                    pass
            self.assertGreater(self.metric("berth_http_connections_refused_total"), refused0)
            # the two held connections never send a request: cut at the 1 s header deadline
            self.assertTrue(bt.wait_until(
                lambda: self.metric("berth_http_header_timeouts_total") >= timeouts0 + 2, 5),
                "the header deadline cuts were not counted")
        finally:
            for h in held:
                h.close()


    def test_wrong_protocol_counted(self):
        before = self.metric("berth_http_wrong_protocol_total")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))
        self.assertEqual(self.metric("berth_http_wrong_protocol_total"), before + 1)


class HealthCheckTest(bt.OpsTestCase):
    """health.storagedriver as in Distribution: checked every interval, failing after threshold
    failures in a row; while it fails /debug/health says why (503) and the API answers 503
    UNAVAILABLE; the first success clears it."""

    def test_storage_failure_and_recovery(self):
        s = start_debug_server(self.tmp, "health:\n  storagedriver:\n    enabled: true\n"
                                         "    interval: 300ms\n    threshold: 3\n", "health")
        self.addCleanup(bt.stop_spawned, s)
        c = s.client()
        c.push_blob("health/x", b"a blob")  # the storage root exists
        root = os.path.join(self.tmp, "health-root")
        self.assertStatus(s.debug.get("/debug/health"), 200)
        # Break the storage root (the driver's "/"): a link to itself fails every stat (ELOOP).
        os.rename(root, root + ".away")
        os.symlink(os.path.basename(root), root)
        t0 = time.time()
        self.assertTrue(bt.wait_until(lambda: s.debug.get("/debug/health").status == 503, 5),
                        "the health check never failed\n" + s.describe())
        self.assertGreaterEqual(time.time() - t0, 0.5, "failed before 3 checks in a row")
        r = s.debug.get("/debug/health")
        self.assertEqual(list(r.json()), ["storagedriver_filesystem"], r.describe())
        r = c.get("/v2/")
        self.assertError(r, 503, "UNAVAILABLE")
        self.assertError(c.get("/v2/health/x/tags/list"), 503, "UNAVAILABLE")
        os.unlink(root)
        os.rename(root + ".away", root)
        self.assertTrue(bt.wait_until(lambda: c.get("/v2/").status == 200, 5),
                        "the API did not come back\n" + s.describe())
        self.assertStatus(s.debug.get("/debug/health"), 200)


class ExternalHealthChecksTest(bt.OpsTestCase):
    """health.file, health.http and health.tcp as in Distribution: a file that exists, a URI
    that answers another status to a HEAD (with the configured headers), an address that
    refuses connections make /debug/health 503 with the check's name and error, and the API
    503; each clears at its first success."""

    def test_file_http_tcp_checks(self):
        import http.server
        import threading
        seen, answer = [], {"status": 200}

        class Probe(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                seen.append((self.command, self.headers.get("X-Probe")))
                self.send_response(answer["status"])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        probe = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Probe)
        threading.Thread(target=probe.serve_forever, daemon=True).start()
        self.addCleanup(probe.server_close)
        self.addCleanup(probe.shutdown)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        tcp_addr = "127.0.0.1:%d" % listener.getsockname()[1]
        drain = os.path.join(self.tmp, "drain-me")
        uri = "http://127.0.0.1:%d/ping" % probe.server_address[1]
        s = start_debug_server(self.tmp, "health:\n"
                               "  file:\n    - file: %s\n      interval: 200ms\n"
                               "  http:\n    - uri: %s\n      headers:\n        X-Probe: [yes]\n"
                               "      statuscode: 204\n      timeout: 1s\n      interval: 200ms\n"
                               "      threshold: 2\n"
                               "  tcp:\n    - addr: %s\n      timeout: 1s\n      interval: 200ms\n"
                               % (drain, uri, tcp_addr), "external")
        self.addCleanup(bt.stop_spawned, s)
        c = s.client()

        def report():
            r = s.debug.get("/debug/health")
            return r.status, r.json()
        # the probe answers 200, not the 204 asked for: that check fails, the others pass
        self.assertTrue(bt.wait_until(lambda: report()[0] == 503, 5), s.describe())
        status, body = report()
        self.assertEqual(body, {uri: "%s: downstream service returned unexpected status: 200" % uri})
        self.assertEqual(seen[0], ("HEAD", "yes"))
        self.assertError(c.get("/v2/"), 503, "UNAVAILABLE")
        answer["status"] = 204
        self.assertTrue(bt.wait_until(lambda: report() == (200, {}), 5), s.describe())
        self.assertStatus(c.get("/v2/"), 200)
        # a file that exists takes the node out of rotation, until it is removed
        bt.write_file(drain, "")
        self.assertTrue(bt.wait_until(lambda: report() == (503, {drain: "file exists"}), 5), s.describe())
        os.unlink(drain)
        self.assertTrue(bt.wait_until(lambda: report() == (200, {}), 5), s.describe())
        # an address that stops listening
        listener.close()
        self.assertTrue(bt.wait_until(lambda: list(report()[1]) == [tcp_addr], 5), s.describe())
        self.assertIn("connection failed", report()[1][tcp_addr])


class DebugWithoutPrometheusTest(bt.OpsTestCase):
    def test_health_without_metrics(self):
        s = start_debug_server(self.tmp, "", "noprom")
        self.addCleanup(bt.stop_spawned, s)
        r = s.debug.get("/debug/health")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {})
        self.assertStatus(s.debug.get("/metrics"), 404, "prometheus is not enabled")

    def test_custom_metrics_path(self):
        s = start_debug_server(self.tmp, "    prometheus:\n      enabled: true\n"
                                         "      path: /prom/stats\n", "custom")
        self.addCleanup(bt.stop_spawned, s)
        r = s.debug.get("/prom/stats")
        self.assertStatus(r, 200)
        self.assertFalse(Metrics(r.body.decode()).errors)
        self.assertStatus(s.debug.get("/metrics"), 404)


if __name__ == "__main__":
    bt.main()
