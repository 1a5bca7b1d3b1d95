"""The HTTP parser's edges (issue 15), answered as Distribution's Go server answers them:

  - a request with thousands of query arguments is answered (200), whether it fills the
    connection's memory or not; a client that leaves before its answer leaves nothing in flight,
    so SIGTERM does not wait the whole drain timeout;
  - a request head (line and headers) of up to 120 KB is answered; berth refuses a longer one
    (past its 128 KiB connection buffer) with 414 or 431 and goes on serving;
  - a field name that is not a token ("Content-Length : 40", a tab before the colon) is refused
    with 400 and the connection closed, so the body is never read as a second request (request
    smuggling behind a proxy that reads the header the other way); so is a field value with a
    control character, and a request target with a space;
  - an HTTP/1.1 request with no Host, or two, is refused with 400 (HTTP/1.0 needs none);
  - a transfer coding other than a single "chunked" is refused with 501;
  - an absolute-form target ("GET http://host/v2/") is served like its path.
"""

import os
import signal
import socket
import time

import berthtest as bt
from berthtest import setUpModule  # noqa: F401


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


def many_args_request(n, value_len, path="/v2/"):
    query = "&".join("a%d=%s" % (i, "v" * value_len) for i in range(n))
    return ("GET %s?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            % (path, query)).encode()


def statuses(resp):
    """Every status line in a raw exchange (more than one means a body was read as a request)."""
    return [line for line in resp.split(b"\r\n") if line.startswith(b"HTTP/1.")]


class QueryArgumentsTest(bt.TestCase):
    def test_thousands_of_arguments_are_answered(self):
        # (count, value length): below and well past what libmicrohttpd's 128 KiB
        # per-connection pool holds as argument records (~56 bytes each), all within it as text
        for n, value_len in ((3000, 10), (3000, 30), (5000, 10), (12000, 1), (400, 250)):
            st, resp = self.c.raw(many_args_request(n, value_len), timeout=5)
            self.assertEqual(st, 200, "%d arguments of %d bytes: %r" % (n, value_len, resp[:300]))

    @bt.berth_only("the tag list is not paginated in 2.8")
    def test_arguments_still_reach_the_handlers(self):
        repo = self.repo()
        for tag in ("a", "b", "c"):
            self.c.push_image(repo, tag=tag)
        # n and last among many others, with '+' and %XX decoded as before
        query = "&".join(["x%d=y" % i for i in range(4000)] + ["n=1", "last=a", "n=99"])
        r = self.c.get("/v2/%s/tags/list?%s" % (repo, query))
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["tags"], ["b"])
        r = self.c.get("/v2/%s/tags/list?n=%%31&last=%%61" % repo)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["tags"], ["b"])


class HeadSizeTest(bt.TestCase):
    def test_heads_up_to_120_kb_are_answered(self):
        st, resp = self.c.raw(("GET /v2/?a=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                               % ("x" * 120000)).encode(), timeout=5)
        self.assertEqual(st, 200, resp[:300])
        st, resp = self.c.raw(("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
                               % ("x" * 120000)).encode(), timeout=5)
        self.assertEqual(st, 200, resp[:300])

    @bt.berth_only("Go's server takes heads of up to 1 MB")
    def test_longer_heads_are_refused(self):
        for raw, status in ((b"GET /v2/?a=" + b"x" * 140000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
                            (b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 140000 + b"\r\n\r\n", 431)):
            st, resp = self.c.raw(raw, timeout=5)
            self.assertEqual(st, status, resp[:300])
            self.assertEqual(len(statuses(resp)), 1, resp[:300])
            self.assertStatus(self.c.get("/v2/"), 200)


class FramingTest(bt.TestCase):
    def assert_refused(self, raw, status, what):
        st, resp = self.c.raw(raw, timeout=5)
        self.assertEqual(st, status, "%s: %r" % (what, resp[:400]))
        self.assertEqual(len(statuses(resp)), 1, "%s: more than one answer: %r" % (what, resp))
        if not bt.reference_mode():
            self.assertIn(b'"errors":[', resp, what)
        r = self.c.get("/v2/")
        self.assertStatus(r, 200, "after " + what)

    def test_space_before_colon(self):
        smuggled = b"DELETE /v2/x/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n"
        for sep in (b" :", b"\t:"):
            self.assert_refused(b"POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length" + sep +
                                b" %d\r\n\r\n" % len(smuggled) + smuggled, 400,
                                "Content-Length%r" % sep)
        self.assert_refused(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A : 1\r\nConnection: close\r\n\r\n",
                            400, "a space in a field name")

    def test_control_characters_and_spaces(self):
        # (a NUL is not among them: libmicrohttpd ends the value there, out of berth's sight)
        for value in (b"a\x01b", b"a\x7fb", b"a\rb"):
            self.assert_refused(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: " + value +
                                b"\r\nConnection: close\r\n\r\n", 400, "header value %r" % value)
        for value in (b"a\tb", b"caf\xc3\xa9", b"\xff"):  # allowed in a field value
            st, resp = self.c.raw(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: " + value +
                                  b"\r\nConnection: close\r\n\r\n", timeout=5)
            self.assertEqual(st, 200, "header value %r: %r" % (value, resp[:300]))
        self.assert_refused(b"GET /v2/ x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400,
                            "a space in the request target")

    def test_host_header(self):
        self.assert_refused(b"GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "no Host")
        self.assert_refused(b"GET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
                            400, "two Host headers")
        st, resp = self.c.raw(b"GET /v2/ HTTP/1.0\r\n\r\n", timeout=5)
        self.assertEqual(st, 200, "HTTP/1.0 needs no Host: %r" % resp[:300])

    def test_unknown_transfer_coding(self):
        for te in (b"xchunked", b"gzip, chunked", b"identity"):
            self.assert_refused(b"POST /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                                b"\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501,
                                "Transfer-Encoding: %s" % te.decode())
        self.assert_refused(b"POST /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", 501,
                            "two Transfer-Encoding headers")
        # the one coding berth reads is still read
        repo = self.repo()
        data = b"chunked body"
        loc = self.c.start_upload(repo).header("Location")
        r = self.c.request("PUT", self.c.resolve(loc, {"digest": bt.digest(data)}), body=data,
                           chunked=True)
        self.assertStatus(r, 201)

    def test_absolute_form_target(self):
        port = self.c.port
        for target in (b"http://127.0.0.1:%d/v2/" % port, b"HTTP://example.com/v2/"):
            st, resp = self.c.raw(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Connection: close\r\n\r\n", timeout=5)
            self.assertEqual(st, 200, "%r: %r" % (target, resp[:300]))
        repo = self.repo()
        self.c.push_image(repo, tag="abs")
        st, resp = self.c.raw(b"GET http://127.0.0.1:%d/v2/%s/tags/list?n=1 HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n" % (port, repo.encode()),
                              timeout=5)
        self.assertEqual(st, 200, resp[:300])
        self.assertIn(b'"tags":["abs"]', resp)


class LeavingClientTest(bt.OpsTestCase):
    def test_client_leaving_before_the_answer_does_not_hold_the_drain(self):
        def make(port):
            return ["serve", bt.write_file(self.path("drain.yml"),
                                           "version: 0.1\n"
                                           "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                           "http:\n  addr: 127.0.0.1:%d\n  draintimeout: 20s\n"
                                           % (os.path.dirname(self.path("root", "x")), port))], {}
        s = self.spawn(make)
        for n in (5000, 20000):
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
                sock.sendall(many_args_request(n, 10))
            # gone at once: the answer (or its absence) is never read
        # requests libmicrohttpd refuses itself once berth's context exists (too many header
        # fields for its memory), read or left unread
        many_headers = (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n")
        for read in (False, True):
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
                sock.sendall(many_headers)
                if read:
                    self.assertIn(bt.read_until_closed(sock)[:12], (b"", b"HTTP/1.1 431"))
        st, resp = s.client().raw(many_args_request(5000, 10), timeout=5)
        self.assertEqual(st, 200, resp[:300])
        time.sleep(0.3)
        t0 = time.time()
        s.send(signal.SIGTERM)
        rc = s.wait(15)
        self.assertEqual(rc, 0, "berth must exit 0 (and leak nothing) after SIGTERM\n" + s.describe())
        self.assertLess(time.time() - t0, 5, "SIGTERM waited for requests no longer in flight\n"
                        + s.describe())


if __name__ == "__main__":
    bt.main()
