"""Blobs: GET/HEAD (end-2), ranges, conditional requests, DELETE (end-10), sha512."""

import hashlib
import os
import shutil
import socket

import berthtest
from berthtest import digest, setUpModule, tearDownModule  # noqa: F401


def verify_digest_header(tc, r, body):
    """Docker-Content-Digest, if present, MUST match the body (spec: pulling blobs)."""
    dcd = tc.assertHeader(r, "Docker-Content-Digest")
    alg, _, hexpart = dcd.partition(":")
    tc.assertIn(alg, ("sha256", "sha512"), r.describe())
    tc.assertEqual(hashlib.new(alg, body).hexdigest(), hexpart,
                   "Docker-Content-Digest does not match the blob" + r.describe())


class BlobGetTest(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.r = "blobs/get"
        cls.data = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, binary
        cls.d = cls.c.push_blob(cls.r, cls.data)
        cls.url = "/v2/%s/blobs/%s" % (cls.r, cls.d)

    def test_get(self):
        r = self.c.get(self.url)
        self.assertStatus(r, 200)  # spec MUST
        self.assertEqual(r.body, self.data, "blob body differs")
        self.assertHeader(r, "Content-Length", str(len(self.data)))
        # SHOULD carry Docker-Content-Digest; if present MUST match the body
        self.assertHeader(r, "Docker-Content-Digest", self.d)
        verify_digest_header(self, r, r.body)
        # Distribution sends an ETag (the quoted digest) and a long Cache-Control: follow it
        self.assertTrue(self.assertHeader(r, "ETag"))
        self.assertTrue(self.assertHeader(r, "Cache-Control"))

    def test_head(self):
        r = self.c.head(self.url)
        self.assertStatus(r, 200)  # spec MUST
        self.assertHeader(r, "Content-Length", str(len(self.data)))
        self.assertHeader(r, "Docker-Content-Digest", self.d)
        self.assertTrue(self.assertHeader(r, "ETag"))
        self.assertNoBody(r)

    def test_if_none_match_304(self):
        etag = self.assertHeader(self.c.head(self.url), "ETag")
        r = self.c.get(self.url, headers={"If-None-Match": etag})
        self.assertStatus(r, 304)  # RFC 9110 / Distribution
        self.assertNoBody(r)
        r = self.c.head(self.url, headers={"If-None-Match": etag})
        self.assertStatus(r, 304)
        # a different ETag does not match
        r = self.c.get(self.url, headers={"If-None-Match": '"sha256:%s"' % ("0" * 64)})
        self.assertStatus(r, 200)
        self.assertEqual(r.body, self.data)

    def test_range_206(self):
        n = len(self.data)
        for rng, start, end in (("bytes=0-3", 0, 3), ("bytes=100-199", 100, 199),
                                ("bytes=10000-", 10000, n - 1), ("bytes=-4", n - 4, n - 1),
                                ("bytes=5-999999", 5, n - 1)):
            r = self.c.get(self.url, headers={"Range": rng})
            # spec SHOULD support Range (RFC 9110); Distribution does
            self.assertStatus(r, 206, rng)
            self.assertHeader(r, "Content-Range", "bytes %d-%d/%d" % (start, end, n))
            self.assertEqual(r.body, self.data[start:end + 1], rng)
            self.assertHeader(r, "Content-Length", str(end - start + 1))

    def test_range_unsatisfiable_416(self):
        n = len(self.data)
        for rng in ("bytes=%d-" % n, "bytes=%d-%d" % (n + 10, n + 20)):
            r = self.c.get(self.url, headers={"Range": rng})
            self.assertStatus(r, 416, rng)  # RFC 9110
            # RFC 9110 SHOULD send Content-Range: bytes */size; Distribution does
            self.assertHeader(r, "Content-Range", "bytes */%d" % n)

    def test_unknown_blob_404(self):
        url = "/v2/%s/blobs/%s" % (self.r, digest(b"never pushed"))
        self.assertError(self.c.get(url), 404, "BLOB_UNKNOWN")  # spec MUST 404; code-1
        r = self.c.head(url)
        self.assertStatus(r, 404)
        self.assertNoBody(r)

    def test_blob_of_other_repo_not_linked_404(self):
        other = self.repo()
        self.c.push_blob(other, b"unrelated")
        self.assertError(self.c.get("/v2/%s/blobs/%s" % (other, self.d)), 404, "BLOB_UNKNOWN")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (other, self.d)), 404)

    def test_blob_in_unknown_repo_404(self):
        r = self.c.get("/v2/%s/blobs/%s" % (self.repo("nosuch"), self.d))
        self.assertError(r, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))

    def test_invalid_digest_400(self):
        # spec silent; Distribution: 400 DIGEST_INVALID for anything shaped like alg:hex
        for bad in ("sha256:abc", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65,
                    "sha512:abc", "sha256:" + "g" * 64):
            self.assertError(self.c.get("/v2/%s/blobs/%s" % (self.r, bad)), 400, "DIGEST_INVALID", bad)
            self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (self.r, bad)), 400, bad)
        # no algorithm at all: Distribution has no route for it (404); 400 is as good
        self.assertStatus(self.c.get("/v2/%s/blobs/abc" % self.r), (400, 404))

    def test_empty_blob(self):
        repo = self.repo()
        d = self.c.push_blob(repo, b"")
        self.assertEqual(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")
        self.assertHeader(r, "Content-Length", "0")

    def test_large_blob_roundtrip(self):
        repo = self.repo()
        data = os.urandom(3 * 1024 * 1024 + 17)
        d = self.c.push_blob(repo, data)
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertEqual(len(r.body), len(data))
        self.assertTrue(r.body == data, "large blob content differs")
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d), headers={"Range": "bytes=2000000-2000099"})
        self.assertStatus(r, 206)
        self.assertEqual(r.body, data[2000000:2000100])


def written_bytes(pid):
    """wchar of /proc/PID/io: bytes the process passed to write-type system calls (write,
    pwrite, sendfile, ...; not send/sendto on a socket)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise AssertionError("no wchar in /proc/%d/io" % pid)


def host_address():
    """An address of this host that is not loopback (the one its default route leaves from;
    no packet is sent), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("198.51.100.1", 9))  # TEST-NET-2: only the route is looked up
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


class BlobBodyTest(berthtest.TestCase):
    """To a client on this host, a blob file's bytes are read into a buffer and sent from
    there, not with sendfile: over loopback the segments sendfile builds cost the receiving
    client far more to take in (src/http/stream.c, bench/README.md); to other hosts, sendfile. sendfile counts its bytes in the process's wchar, send() does not, so the
    server's wchar tells the two apart."""

    BLOCK = 128 * 1024  # the response buffer (stream.c FILE_BLOCK): ranges across its edges

    @berthtest.berth_only("watches the berth process's own system calls")
    def test_body_sent_from_a_buffer(self):
        if self.srv.kind != "berth" or os.environ.get("BERTH_STORAGE"):
            self.skipTest("a filesystem-backed berth of this test's own")
        repo = self.repo()
        data = os.urandom(4 * self.BLOCK + 4097)
        d = self.c.push_blob(repo, data)
        url = "/v2/%s/blobs/%s" % (repo, d)
        pid = self.srv.proc.pid
        before = written_bytes(pid)
        r = self.c.get(url)
        self.assertStatus(r, 200)
        self.assertTrue(r.body == data, "blob body differs")
        n = len(data)
        for start, end in ((self.BLOCK - 10, self.BLOCK + 9), (1, 2 * self.BLOCK + 1),
                           (3 * self.BLOCK, n - 1), (n - 1, n - 1)):
            r = self.c.get(url, headers={"Range": "bytes=%d-%d" % (start, end)})
            self.assertStatus(r, 206)
            self.assertHeader(r, "Content-Range", "bytes %d-%d/%d" % (start, end, n))
            self.assertTrue(r.body == data[start:end + 1], "range %d-%d differs" % (start, end))
        written = written_bytes(pid) - before
        # the access log's lines are all berth writes here
        self.assertLess(written, n // 4, "%d bytes written by the server while serving %d: "
                        "the body went out with sendfile (or write)" % (written, n))

    @berthtest.berth_only("watches the berth process's own system calls")
    def test_body_to_own_address_from_a_buffer(self):
        """A client on this host that connects to one of the host's own addresses (not
        127.0.0.1) goes through the loopback device as well: the buffer, not sendfile. (Which
        peers get sendfile: tests/unit/http/test_same_host.c.)"""
        if self.srv.kind != "berth" or os.environ.get("BERTH_STORAGE"):
            self.skipTest("a filesystem-backed berth of this test's own")
        addr = host_address()
        if not addr:
            self.skipTest("this host has no address but loopback")
        proc, c, tmp = berthtest.start_with_config(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %%(root)s\n"
            "http:\n  addr: %s:%%(port)d\n" % addr, "berth-ownaddr-", host=addr)
        try:
            repo = "ownaddr/test"
            data = os.urandom(4 * self.BLOCK + 4097)
            d = c.push_blob(repo, data)
            before = written_bytes(proc.pid)
            r = c.get("/v2/%s/blobs/%s" % (repo, d))
            self.assertStatus(r, 200)
            self.assertTrue(r.body == data, "blob body differs")
            written = written_bytes(proc.pid) - before
            self.assertLess(written, len(data) // 4, "%d bytes written by the server while serving %d "
                            "to %s, this host's own address: the body went out with sendfile"
                            % (written, len(data), addr))
        finally:
            failure = berthtest.stop_serve(proc, os.path.join(tmp, "log"))
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertIsNone(failure)


class BlobSha512Test(berthtest.TestCase):
    def test_sha512_blob(self):
        repo = self.repo()
        data = b"a blob addressed by sha512\n" * 3
        d = self.c.push_blob(repo, data, alg="sha512")
        self.assertTrue(d.startswith("sha512:"))
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, data)
        # the spec lets the header use another algorithm (MAY differ), but it MUST match the body
        verify_digest_header(self, r, r.body)
        r = self.c.head("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertHeader(r, "Content-Length", str(len(data)))

    def test_sha512_wrong_digest_rejected(self):
        repo = self.repo()
        up = self.c.start_upload(repo)
        wrong = digest(b"something else", "sha512")
        r = self.c.put(self.c.resolve(up.header("Location"), {"digest": wrong}), b"payload")
        self.assertError(r, 400, "DIGEST_INVALID")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, wrong)), 404)


class BlobDeleteTest(berthtest.TestCase):
    def test_delete_202_then_404(self):
        repo = self.repo()
        d = self.c.push_blob(repo, b"to be deleted")
        r = self.c.delete("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 202)  # spec MUST 202
        self.assertError(self.c.get("/v2/%s/blobs/%s" % (repo, d)), 404, "BLOB_UNKNOWN")
        self.assertStatus(self.c.head("/v2/%s/blobs/%s" % (repo, d)), 404)
        # deleting again: spec MUST 404 when the blob is not found
        self.assertError(self.c.delete("/v2/%s/blobs/%s" % (repo, d)), 404, "BLOB_UNKNOWN")

    def test_delete_unknown_blob_404(self):
        r = self.c.delete("/v2/%s/blobs/%s" % (self.repo(), digest(b"never")))
        self.assertError(r, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))  # spec MUST 404

    def test_delete_invalid_digest_400(self):
        r = self.c.delete("/v2/%s/blobs/sha256:abc" % self.repo())
        self.assertError(r, 400, "DIGEST_INVALID")  # Distribution

    def test_delete_only_unlinks_from_that_repo(self):
        a, b = self.repo(), self.repo()
        data = b"shared by two repositories"
        d = self.c.push_blob(a, data)
        self.c.push_blob(b, data)
        self.assertStatus(self.c.delete("/v2/%s/blobs/%s" % (a, d)), 202)
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (a, d)), 404)
        r = self.c.get("/v2/%s/blobs/%s" % (b, d))
        self.assertStatus(r, 200, "blob deleted in %s must stay in %s" % (a, b))
        self.assertEqual(r.body, data)

    def test_reupload_after_delete(self):
        repo = self.repo()
        data = b"deleted then pushed again"
        d = self.c.push_blob(repo, data)
        self.assertStatus(self.c.delete("/v2/%s/blobs/%s" % (repo, d)), 202)
        self.c.push_blob(repo, data)
        r = self.c.get("/v2/%s/blobs/%s" % (repo, d))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, data)


class BlobDeleteDisabledTest(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = berthtest.server(delete=False)
        cls.c = cls.srv.client()

    def test_delete_without_delete_flag_405(self):
        repo = self.repo()
        d = self.c.push_blob(repo, b"undeletable")
        r = self.c.delete("/v2/%s/blobs/%s" % (repo, d))
        # spec: MUST be 400 or 405 when disabled; Distribution: 405 UNSUPPORTED
        self.assertError(r, 405, "UNSUPPORTED")
        self.assertStatus(self.c.get("/v2/%s/blobs/%s" % (repo, d)), 200)


if __name__ == "__main__":
    berthtest.main()
