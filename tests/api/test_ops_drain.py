"""Graceful shutdown (http.draintimeout): on SIGTERM or SIGINT berth stops accepting
connections, lets the requests in flight finish for up to the drain timeout, and exits 0.
An upload cut off by a short drain stays resumable after a restart, and nothing half-written
is linked into the repository."""

import os
import re
import signal
import socket
import time

import berthtest as bt
from berthtest import setUpModule  # noqa: F401


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


CHUNK = 100000


def payload(n):
    """n bytes that are not all the same (a wrong offset shows up in the digest)."""
    block = bytes(range(256)) * 4096
    out = (block * (n // len(block) + 1))[:n]
    return out


class SlowPatch:
    """A PATCH of `data` to an upload, its body sent a chunk at a time by the test."""

    def __init__(self, port, path, data):
        self.data = data
        self.sent = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                           "Connection: close\r\n\r\n" % (path, len(data))).encode())

    def send(self, n=CHUNK):
        """Sends the next n bytes; False once the server has closed the connection."""
        chunk = self.data[self.sent:self.sent + n]
        try:
            self.sock.sendall(chunk)
        except OSError:
            return False
        self.sent += len(chunk)
        return True

    def done(self):
        return self.sent >= len(self.data)

    def response(self, timeout=15):
        """The raw response head (b"" if the server closed without one)."""
        self.sock.settimeout(timeout)
        resp = b""
        try:
            while b"\r\n\r\n" not in resp:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                resp += chunk
        except OSError:
            pass
        return resp

    def close(self):
        self.sock.close()


class DrainTest(bt.OpsTestCase):
    def start(self, root, drain, name):
        def make(port):
            extra = "  draintimeout: %s\n" % drain if drain is not None else ""
            return ["serve", bt.write_file(self.path(name + ".yml"),
                                           "version: 0.1\n"
                                           "log:\n  level: info\n"
                                           "storage:\n  filesystem:\n    rootdirectory: %s\n"
                                           "http:\n  addr: 127.0.0.1:%d\n%s"
                                           % (root, port, extra))], {}
        return self.spawn(make)

    def upload_dir(self, root, repo, uuid):
        return os.path.join(root, "docker", "registry", "v2", "repositories", repo, "_uploads", uuid)

    def begin(self, s, repo, data):
        r = s.client().start_upload(repo)
        loc = r.header("Location")
        uuid = r.header("Docker-Upload-UUID") or loc.rstrip("/").split("/")[-1].split("?")[0]
        p = SlowPatch(s.port, s.client().resolve(loc), data)
        self.addCleanup(p.close)
        return p, loc, uuid

    def test_in_flight_upload_completes_within_drain_timeout(self):
        root = self.path("complete", "root")
        s = self.start(root, "10s", "complete")
        repo = "drain/complete"
        data = payload(20 * CHUNK)
        p, loc, uuid = self.begin(s, repo, data)
        for _ in range(5):
            self.assertTrue(p.send())
            time.sleep(0.05)
        t_term = time.time()
        s.send(signal.SIGTERM)
        # new connections are refused while the upload goes on
        refused = bt.wait_until(lambda: not bt.port_open(s.port), 3)
        self.assertTrue(refused, "berth still accepts connections after SIGTERM\n" + s.describe())
        while not p.done():
            self.assertTrue(s.alive(), "berth exited with the upload in flight (drain 10s)\n"
                            + s.describe())
            self.assertTrue(p.send(), "berth closed the in-flight upload (drain 10s)\n"
                            + s.describe())
            time.sleep(0.05)
        resp = p.response()
        self.assertRegex(resp, rb"^HTTP/1\.[01] 202 ", "the in-flight PATCH must complete\n"
                         + resp.decode("latin-1") + s.describe())
        self.assertRegex(resp, rb"(?i)\r\nRange: 0-%d\r\n" % (len(data) - 1))
        rc = s.wait(5)
        self.assertEqual(rc, 0, "berth must exit 0 soon after the last request\n" + s.describe())
        self.assertLess(time.time() - t_term, 9, "berth waited for the whole drain timeout "
                        "though nothing was in flight any more")
        # the upload is whole: a restarted server finishes it
        s2 = self.start(root, None, "complete-restart")
        c = s2.client()
        r = c.get(c.resolve(loc))
        self.assertStatus(r, 204)
        self.assertHeader(r, "Range", "0-%d" % (len(data) - 1))
        r = c.put(c.resolve(loc, {"digest": bt.digest(data)}))
        self.assertStatus(r, 201)
        r = c.get("/v2/%s/blobs/%s" % (repo, bt.digest(data)))
        self.assertStatus(r, 200)
        self.assertTrue(r.body == data, "blob content differs after the drained upload")

    def check_cut_off(self, drain, max_exit):
        name = "cut-" + drain
        root = self.path(name, "root")
        s = self.start(root, drain, name)
        repo = "drain/cut-" + drain
        data = payload(60 * CHUNK)  # 6 s of streaming: the cut must come well before its end
        p, loc, uuid = self.begin(s, repo, data)
        for _ in range(5):
            self.assertTrue(p.send())
            time.sleep(0.05)
        t_term = time.time()
        s.send(signal.SIGTERM)
        while not p.done() and s.alive() and time.time() - t_term < max_exit + 5:
            if not p.send():
                break
            time.sleep(0.1)
        rc = s.wait(max_exit + 5)
        took = time.time() - t_term
        self.assertEqual(rc, 0, "exit status after SIGTERM with draintimeout %s\n%s"
                         % (drain, s.describe()))
        self.assertLess(took, max_exit, "draintimeout %s: berth took %.1fs to exit" % (drain, took))
        self.assertFalse(p.done(), "the test meant to cut the upload off, but it finished")
        sent = p.sent
        p.close()

        # nothing of it is linked or stored as a blob
        d = bt.digest(data)
        hexd = d.split(":")[1]
        v2 = os.path.join(root, "docker", "registry", "v2")
        self.assertFalse(os.path.exists(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd)))
        self.assertFalse(os.path.exists(os.path.join(v2, "repositories", repo, "_layers",
                                                     "sha256", hexd)))
        self.assertTrue(os.path.isdir(self.upload_dir(root, repo, uuid)),
                        "the cut-off upload's directory is gone")

        s2 = self.start(root, None, name + "-restart")
        c = s2.client()
        self.assertStatus(c.head("/v2/%s/blobs/%s" % (repo, d)), 404)
        r = c.get(c.resolve(loc))
        self.assertStatus(r, 204, "the cut-off upload must still be known after a restart")
        m = re.match(r"^0-(\d+)$", r.header("Range", ""))
        self.assertTrue(m, "Range of the resumed upload" + r.describe())
        offset = int(m.group(1)) + 1
        self.assertLessEqual(offset, sent, "the upload claims more bytes than were sent")
        self.assertGreater(offset, CHUNK, "what was received before SIGTERM was lost")
        r = c.put(c.resolve(loc, {"digest": d}), data[offset:],
                  headers={"Content-Type": "application/octet-stream"})
        self.assertStatus(r, 201, "finishing the resumed upload at offset %d" % offset)
        r = c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertTrue(r.body == data, "blob content differs after the resumed upload")

    def test_zero_drain_exits_promptly_and_upload_resumes(self):
        self.check_cut_off("0s", 3.0)

    def test_short_drain_cuts_off_and_upload_resumes(self):
        self.check_cut_off("1s", 4.0)

    def test_sigint_at_rest(self):
        s = self.start(self.path("sigint", "root"), "10s", "sigint")
        self.assertStatus(s.client().get("/v2/"), 200)
        t = time.time()
        self.assertEqual(s.stop(signal.SIGINT, timeout=5), 0, s.describe())
        self.assertLess(time.time() - t, 2, "nothing in flight: SIGINT must not wait 10s")

    def test_idle_keepalive_connection_does_not_hold_drain(self):
        s = self.start(self.path("idle", "root"), "10s", "idle")
        sess = s.client().session()
        self.addCleanup(sess.close)
        self.assertEqual(sess.request("GET", "/v2/").status, 200)
        t = time.time()
        s.send(signal.SIGTERM)
        rc = s.wait(8)
        self.assertEqual(rc, 0, s.describe())
        self.assertLess(time.time() - t, 3, "an idle keep-alive connection held the drain")


if __name__ == "__main__":
    bt.main()
