"""Logs as Distribution's config asks for them: log.formatter text (logfmt) or json, log.fields
on every line, log.level filtering, log.accesslog.disabled, and one access line per request
with its own request id and the http.* fields.

Each test starts berth with a config, makes requests, stops it with SIGTERM (so every access
line is written) and then reads the whole log."""

import json
import os
import re
import signal

import berthtest as bt
from berthtest import setUpModule  # noqa: F401


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


ACCESS_FIELDS = ("http.request.id", "http.request.method", "http.request.uri",
                 "http.request.remoteaddr", "http.request.useragent", "http.response.status",
                 "http.request.contentlength", "http.response.written", "http.response.duration")
USER_AGENT = "berth-ops-logs/1.0 (test)"
TIME_RX = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
LOGFMT_TOKEN = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')


def parse_logfmt(line):
    """key=value pairs (values bare or double-quoted with \\ escapes); None if the line is not
    entirely made of them."""
    out, pos = {}, 0
    while pos < len(line):
        m = LOGFMT_TOKEN.match(line, pos)
        if not m or m.end() == pos:
            return None
        v = m.group(2)
        if v.startswith('"'):
            v = json.loads(v)
        out[m.group(1)] = v
        pos = m.end()
    return out


class LogCase(bt.OpsTestCase):
    def start(self, log_yaml, name):
        root = self.path(name, "root")

        def make(port):
            return ["serve", bt.write_file(self.path(name, "config.yml"),
                                           "version: 0.1\n%s"
                                           "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                           "  delete:\n    enabled: true\n"
                                           "http:\n  addr: 127.0.0.1:%d\n"
                                           % (log_yaml, root, port))], {}
        return self.spawn(make)

    def traffic(self, s):
        """A few requests of different kinds; returns what the access log should show."""
        c = s.client()
        h = {"User-Agent": USER_AGENT}
        data = b"0123456789abcdef" * 64  # 1024 bytes
        d = bt.digest(data)
        reqs = []

        def do(method, path, body=None, status=None, **kw):
            r = c.request(method, path, body=body, headers=dict(h, **kw.pop("headers", {})), **kw)
            if status is not None:
                self.assertStatus(r, status)
            reqs.append({"method": method, "uri": path, "status": r.status,
                         "in": len(body) if body else 0,
                         "out": 0 if method == "HEAD" else len(r.body)})
            return r

        do("GET", "/v2/", status=200)
        r = do("POST", "/v2/logs/x/blobs/uploads/", status=202)
        loc = c.resolve(r.header("Location"), {"digest": d})
        do("PUT", loc, data, status=201, headers={"Content-Type": "application/octet-stream"})
        do("GET", "/v2/logs/x/blobs/%s" % d, status=200)
        do("HEAD", "/v2/logs/x/blobs/%s" % d, status=200)
        do("GET", "/v2/logs/x/manifests/nope", status=404)
        do("GET", "/v2/logs/x/tags/list?n=5&last=a", status=404)
        return reqs

    def stop(self, s):
        rc = s.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, "berth did not exit 0 on SIGTERM\n" + s.describe())
        return s.log_lines()

    def check_access(self, entries, reqs, log):
        """entries: parsed access lines. Values may be strings (text) or numbers. A line is
        written when its request completes, after the answer was sent: two requests on
        different connections may log in either order, so lines are matched to requests."""
        self.assertEqual(len(entries), len(reqs),
                         "one access line per request expected\n" + log)
        ids = set()
        for e in entries:
            for k in ACCESS_FIELDS:
                self.assertIn(k, e, "access line without %s: %s" % (k, e))
            rid = str(e["http.request.id"])
            self.assertTrue(rid, e)
            self.assertNotIn(rid, ids, "request id %s used twice\n%s" % (rid, log))
            ids.add(rid)
            self.assertEqual(e["http.request.useragent"], USER_AGENT, e)
            self.assertIn("127.0.0.1", str(e["http.request.remoteaddr"]), e)
            dur = str(e["http.response.duration"])
            self.assertRegex(dur, r"^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)?$", e)

        def key(method, uri, status, n_in, n_out):
            # (the query string: test_uri_is_the_request_uri)
            return (method, uri.split("?")[0], int(status), int(n_in), int(n_out))
        got = sorted(key(e["http.request.method"], e["http.request.uri"],
                         e["http.response.status"], e["http.request.contentlength"],
                         e["http.response.written"]) for e in entries)
        want = sorted(key(r["method"], r["uri"], r["status"], r["in"], r["out"]) for r in reqs)
        self.assertEqual(got, want, "access lines (method, uri, status, contentlength, "
                         "written) differ from the requests made\n" + log)


class TextLongLineTest(LogCase):
    def test_long_values_stay_parseable(self):
        s = self.start("log:\n  formatter: text\n", "textlong")
        ua = "berth-long-agent/" + "b" * 8192
        self.assertStatus(s.client().get("/v2/", headers={"User-Agent": ua}), 200)
        lines = self.stop(s)
        access = [parse_logfmt(l) for l in lines if "response completed" in l]
        self.assertEqual(len(access), 1, "\n".join(l[:200] for l in lines))
        e = access[0]
        self.assertIsNotNone(e, "a long access line is no longer logfmt: ...%r"
                             % [l for l in lines if "response completed" in l][0][-60:])
        self.assertEqual(e.get("http.response.status"), "200", "fields after the long value lost")


class TextInvalidUtf8Test(LogCase):
    def test_invalid_utf8_is_escaped(self):
        """In text (logfmt) lines, a byte that is not part of UTF-8 becomes \\xNN (as Go's %q
        writes it); every line stays UTF-8 and logfmt."""
        lines = JsonFormatTest.invalid_utf8_traffic(self, self.start("log:\n  formatter: text\n", "utf8t"))
        access = []
        for raw in lines:
            try:
                line = raw.decode("utf-8")
            except ValueError:
                self.fail("not a UTF-8 line: %r" % raw)
            # logfmt throughout (values left quoted: \\xNN is a Go escape, not a JSON one)
            pos = 0
            while pos < len(line):
                m = LOGFMT_TOKEN.match(line, pos)
                self.assertTrue(m and m.end() > pos, "not logfmt: %r" % line)
                pos = m.end()
            if "http.request.id" in line:
                access.append(line)
        self.assertEqual(len(access), 1, lines)
        self.assertIn('http.request.useragent="ag\\xc3(\\x80ent \u00e9\U0001f433"', access[0])
        self.assertIn('http.request.uri="/v2/x\\xff\\xfe\\xc0\\xaf\\xed\\xa0\\x80/tags/list?q=\\xe2\\x82"',
                      access[0])


class JsonFormatTest(LogCase):
    def test_json_lines_parse(self):
        s = self.start("log:\n  level: info\n  formatter: json\n"
                       "  fields:\n    service: registry\n    environment: staging\n", "json")
        reqs = self.traffic(s)
        lines = self.stop(s)
        log = "\n".join(lines)
        access = []
        for l in lines:
            try:
                e = json.loads(l)
            except ValueError:
                self.fail("not a JSON line: %r\n%s" % (l, log))
            self.assertIsInstance(e, dict, l)
            self.assertRegex(e.get("time", ""), TIME_RX, l)
            self.assertIn(e.get("level"), ("debug", "info", "warn", "warning", "error"), l)
            self.assertIsInstance(e.get("msg"), str, l)
            self.assertEqual(e.get("service"), "registry", l)
            self.assertEqual(e.get("environment"), "staging", l)
            if "http.request.id" in e:
                access.append(e)
                self.assertIsInstance(e["http.response.status"], int, l)
                self.assertIsInstance(e["http.request.contentlength"], int, l)
                self.assertIsInstance(e["http.response.written"], int, l)
        self.check_access(access, reqs, log)

    def test_escaping(self):
        """Quotes, backslashes, control characters and UTF-8 in logged values keep every line
        valid JSON, and the values come back as sent."""
        s = self.start("log:\n  formatter: json\n", "escape")
        ua = 'we"ird\\agent\tt\u00e9'
        r = s.client().get("/v2/%22q%5C/tags/list", headers={"User-Agent": ua.encode("utf-8")})
        self.assertIn(r.status, (400, 404))
        lines = self.stop(s)
        got = None
        for l in lines:
            try:
                e = json.loads(l)
            except ValueError:
                self.fail("not a JSON line: %r" % l)
            if "http.request.id" in e:
                got = e
        self.assertIsNotNone(got, "\n".join(lines))
        self.assertEqual(got["http.request.useragent"], ua)

    def invalid_utf8_traffic(self, s):
        """A request whose URI and User-Agent hold bytes that are not UTF-8 (a lone
        continuation byte, an overlong '/', a surrogate, a cut sequence) next to valid UTF-8;
        returns the log's raw lines once berth stopped."""
        st, resp = s.client().raw(b"GET /v2/x\xff\xfe\xc0\xaf\xed\xa0\x80/tags/list?q=\xe2\x82 HTTP/1.1\r\n"
                                  b"Host: x\r\nUser-Agent: ag\xc3(\x80ent \xc3\xa9\xf0\x9f\x90\xb3\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertIn(st, (400, 404), resp[:300])
        self.stop(s)
        with open(s.log_path, "rb") as f:
            return f.read().splitlines()

    def test_invalid_utf8_is_escaped(self):
        """Every line is valid UTF-8 and valid JSON whatever bytes a client sends: a byte that
        is not part of UTF-8 becomes U+FFFD (as Go's encoding/json writes it), valid UTF-8 stays."""
        lines = self.invalid_utf8_traffic(self.start("log:\n  formatter: json\n", "utf8"))
        got = None
        for raw in lines:
            try:
                e = json.loads(raw.decode("utf-8"))
            except ValueError:
                self.fail("not a UTF-8 JSON line: %r" % raw)
            if "http.request.id" in e:
                got = e
        self.assertIsNotNone(got, lines)
        self.assertEqual(got["http.request.useragent"], "ag\ufffd(\ufffdent \u00e9\U0001f433")
        self.assertEqual(got["http.request.uri"], "/v2/x" + "\ufffd" * 7 + "/tags/list?q=" + "\ufffd" * 2)

    def test_long_values_stay_valid_json(self):
        """A long User-Agent (8 KiB) must not cut the line into invalid JSON or lose the
        fields after it (logrus writes lines of any length; a shortened value is fine)."""
        s = self.start("log:\n  formatter: json\n", "long")
        ua = "berth-long-agent/" + "a" * 8192
        self.assertStatus(s.client().get("/v2/", headers={"User-Agent": ua}), 200)
        lines = self.stop(s)
        access = []
        for l in lines:
            try:
                e = json.loads(l)
            except ValueError:
                self.fail("log line of %d bytes is not JSON; it ends %r" % (len(l), l[-60:]))
            if "http.request.id" in e:
                access.append(e)
        self.assertEqual(len(access), 1, "\n".join(l[:200] for l in lines))
        e = access[0]
        self.assertTrue(ua.startswith(e["http.request.useragent"]), "user agent mangled")
        self.assertEqual(e["http.response.status"], 200, "fields after the long value are lost")

    def test_logstash_is_json(self):
        s = self.start("log:\n  formatter: logstash\n", "logstash")
        self.assertStatus(s.client().get("/v2/"), 200)
        lines = self.stop(s)
        self.assertTrue(lines)
        for l in lines:
            self.assertIsInstance(json.loads(l), dict, l)


class LevelTest(LogCase):
    def levels(self, lines):
        out = []
        for l in lines:
            e = parse_logfmt(l)
            self.assertIsNotNone(e, l)
            out.append(e)
        return out

    def test_warn_hides_info_and_access_lines(self):
        s = self.start("log:\n  level: warn\n", "warn")
        self.traffic(s)
        lines = self.stop(s)
        for e in self.levels(lines):
            self.assertIn(e.get("level"), ("warn", "warning", "error"),
                          "log.level warn let through: %s" % e)
            self.assertNotIn("http.request.id", e, "access line at log.level warn: %s" % e)

    def test_error_level(self):
        s = self.start("log:\n  level: error\n", "error")
        self.traffic(s)
        for e in self.levels(self.stop(s)):
            self.assertEqual(e.get("level"), "error", e)

    def test_info_and_debug_show_access_lines(self):
        for level in ("info", "debug"):
            s = self.start("log:\n  level: %s\n" % level, "lvl-" + level)
            reqs = self.traffic(s)
            entries = [e for e in self.levels(self.stop(s)) if "http.request.id" in e]
            self.check_access(entries, reqs, s.log())

    def test_deprecated_loglevel(self):
        s = self.start("loglevel: warn\n", "loglevel")
        self.traffic(s)
        for e in self.levels(self.stop(s)):
            self.assertNotEqual(e.get("level"), "info", "loglevel: warn let through %s" % e)

    def test_accesslog_disabled(self):
        s = self.start("log:\n  level: info\n  accesslog:\n    disabled: true\n", "noaccess")
        self.traffic(s)
        entries = self.levels(self.stop(s))
        self.assertTrue(any("listening" in e.get("msg", "") for e in entries),
                        "info lines must still be there\n" + s.log())
        for e in entries:
            self.assertNotIn("http.request.id", e, "access line with accesslog.disabled: %s" % e)
            self.assertNotEqual(e.get("msg"), "response completed", e)


class RequestUriTest(LogCase):
    def test_uri_is_the_request_uri(self):
        """http.request.uri is the request target as sent, query string and %-escapes included
        (Distribution logs Go's r.RequestURI)."""
        s = self.start("log:\n  formatter: json\n", "uri")
        targets = ["/v2/_catalog?n=1", "/v2/logs/uri/tags/list?n=5&last=a%3Ab",
                   "/v2/logs/uri/blobs/uploads/?mount=sha256%3A" + "0" * 64 + "&from=x%2Fy"]
        for t in targets:
            s.client().request("POST" if "uploads" in t else "GET", t)
        lines = self.stop(s)
        uris = [json.loads(l)["http.request.uri"] for l in lines if "http.request.id" in l]
        self.assertEqual(sorted(uris), sorted(targets), "\n".join(lines))


class RequestIdTest(LogCase):
    def test_request_ids_unique_across_connections_and_keepalive(self):
        s = self.start("log:\n  formatter: json\n", "ids")
        sess = s.client().session()
        for _ in range(5):
            self.assertEqual(sess.request("GET", "/v2/").status, 200)
        sess.close()
        for _ in range(5):
            self.assertStatus(s.client().get("/v2/"), 200)
        lines = self.stop(s)
        ids = [json.loads(l)["http.request.id"] for l in lines if "http.request.id" in l]
        self.assertEqual(len(ids), 10, "\n".join(lines))
        self.assertEqual(len(set(ids)), 10, "request ids repeat: %s" % ids)


if __name__ == "__main__":
    bt.main()
