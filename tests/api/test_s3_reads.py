"""The S3 read paths, counted in S3 requests (Ceph's RADOS Gateway on loopback, tests/fixtures/s3/,
with tests/fixtures/s3/faultproxy.py in front of it as a request log, no faults): what each
registry read costs, asserted by count rather than by time, and kept correct across instances
(a second berth on the same bucket, not through the log, makes the changes).

- A manifest pulled by tag whose bytes are cached costs one S3 request (the tag's current link:
  another instance may move it), not three (and two before the revision link is first seen).
  A tag moved, and a manifest deleted, through the other instance are seen at once.
- A tag list built without an earlier one makes no request per tag: one listing of the tags
  directory's objects (a current link marks a complete tag). Asked again, it costs one HEAD of
  the repository's tag generation, which berth instances bump when a tag appears or goes; after
  a bump it is rebuilt from one delimited listing, as Distribution's, with a request only for
  a tag it did not list before: a tag added or removed through the other instance is seen at
  once. A tag directory without its current link is not listed.
- A blob GET of 12 MiB costs two GETs (a first window, then the rest streamed), not one per
  window; a ranged GET inside it and a range starting past the first window are served right.
  Clients that stop reading mid-body hold a bounded amount of berth's memory (one send block and
  one curl buffer per response), not the blob.
Skipped when radosgw is not installed (scripts/install-deps.sh installs it).
"""

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import berthtest

ROOT = "/reads"
CUT_AFTER = 3 << 20  # bytes of a ranged GET's body the cutting proxy lets through

state = {}


def _start_berth(name, endpoint):
    config = berthtest.s3_config(ROOT, state["rgw"], endpoint, chunksize=None, accesslog=False, delete=True,
                                 cache="inmemory", purging=False)
    # no background look for writers that bump no generation: its requests would mix with the
    # ones counted (test-only knob, README)
    return berthtest.start_s3_module_berth(state, name, config, {"BERTH_TEST_LOOK_INTERVAL_MS": str(3600 * 1000)})


def setUpModule():
    if not (shutil.which("radosgw") and shutil.which("ceph-mon")):
        raise unittest.SkipTest("radosgw and ceph-mon are not installed")
    tmp = state["tmp"] = tempfile.mkdtemp(prefix="berth-s3reads-")
    try:
        env = state["rgw"] = berthtest.start_rgw(tmp, "serve")
        state["log"] = os.path.join(tmp, "requests.log")
        logged = berthtest.start_s3_faultproxy(state, "proxy", env["S3_ENDPOINT"], ["--log-file", state["log"]])
        cut = berthtest.start_s3_faultproxy(state, "cut_proxy", env["S3_ENDPOINT"], ["--cut-after", str(CUT_AFTER)])
        state["cut"] = _start_berth("cut", cut)
        # "counted" reaches S3 through the request log; "other" directly, as another instance.
        state["counted"] = _start_berth("counted", logged)
        state["other"] = _start_berth("other", env["S3_ENDPOINT"])
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    berthtest.stop_s3_module(state, ("proxy", "cut_proxy"))


def s3_requests(action):
    """The S3 requests berth "counted" made during action(): a list of (method, target)."""
    return berthtest.logged_requests(state["log"], action)


def is_listing(req):
    return req[0] == "GET" and "list-type=2" in req[1]


class S3Reads(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c, cls.other = state["counted"], state["other"]

    def setUp(self):
        pass  # the module's own servers, not berthtest's

    def get_manifest(self, client, repo, ref):
        return client.get("/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": berthtest.OCI_MANIFEST})

    def test_manifest_by_tag_one_request(self):
        repo = self.repo("bytag")
        one = self.other.push_image(repo, "v1", seed="one")
        first = s3_requests(lambda: self.assertEqual(self.get_manifest(self.c, repo, "v1").status, 200))
        self.assertGreaterEqual(len(first), 2, first)  # the tag link, the revision link, the bytes
        for _ in range(3):
            reqs = s3_requests(lambda: self.assertEqual(self.get_manifest(self.c, repo, "v1").body,
                                                        one["manifest"]))
            self.assertEqual(len(reqs), 1, reqs)
            self.assertIn("/_manifests/tags/v1/current/link", reqs[0][1])
        # Moved through the other instance: seen at once.
        two = self.other.push_image(repo, "v1", seed="two")
        r = self.get_manifest(self.c, repo, "v1")
        self.assertEqual((r.status, r.body), (200, two["manifest"]))
        # Deleted through the other instance (which untags it): seen at once.
        self.assertEqual(self.other.delete("/v2/%s/manifests/%s" % (repo, two["digest"])).status, 202)
        self.assertEqual(self.get_manifest(self.c, repo, "v1").status, 404)
        self.assertEqual(self.get_manifest(self.c, repo, two["digest"]).status, 404)
        # The first manifest, by digest, still there (its revision link is checked each time).
        r = self.get_manifest(self.c, repo, one["digest"])
        self.assertEqual((r.status, r.body), (200, one["manifest"]))

    def tags(self, client, repo):
        r = client.get("/v2/%s/tags/list" % repo)
        self.assertEqual(r.status, 200, r.describe())
        return r.json()["tags"]

    def test_tag_list_without_a_request_per_tag(self):
        repo = self.repo("taglist")
        n = 60
        img = self.other.push_image(repo, "t000", seed="tags")
        for i in range(1, n):
            self.other.push_manifest(repo, "t%03d" % i, img["manifest"])
        want = ["t%03d" % i for i in range(n)]
        got = []
        cold = s3_requests(lambda: got.append(self.tags(self.c, repo)))
        self.assertEqual(got[0], want)
        self.assertEqual([q for q in cold if q[0] == "HEAD" and "/current/link" in q[1]], [], cold)
        self.assertLessEqual(len(cold), 3, cold)  # the directory's stat, one listing
        # Again: one HEAD of the repository's tag generation, nothing per tag.
        got = []
        warm = s3_requests(lambda: got.append(self.tags(self.c, repo)))
        self.assertEqual(got[0], want)
        self.assertEqual(len(warm), 1, warm)
        self.assertEqual(warm[0][0], "HEAD", warm)
        self.assertTrue(warm[0][1].endswith("/_generation"), warm)
        # A tag added through the other instance: seen at once, one request for it.
        self.other.push_manifest(repo, "t999", img["manifest"])
        got = []
        added = s3_requests(lambda: got.append(self.tags(self.c, repo)))
        self.assertEqual(got[0], want + ["t999"])
        self.assertEqual(len([q for q in added if "/current/link" in q[1]]), 1, added)
        # Removed through the other instance: gone at once.
        self.assertEqual(self.other.delete("/v2/%s/manifests/t005" % repo).status, 202)
        self.assertEqual(self.tags(self.c, repo), [t for t in want if t != "t005"] + ["t999"])

    def test_tag_without_current_link_not_listed(self):
        repo = self.repo("halftag")
        img = self.other.push_image(repo, "full", seed="half")
        # A tag write cut short: its index link written, not its current link.
        env = state["rgw"]
        key = "%s/docker/registry/v2/repositories/%s/_manifests/tags/half/index/sha256/%s/link" % (
            ROOT.strip("/"), repo, img["digest"].split(":", 1)[1])
        put_object(env, key, img["digest"].encode())
        self.assertEqual(self.tags(self.c, repo), ["full"])
        self.assertEqual(self.tags(self.c, repo), ["full"])

    def test_blob_get_streams(self):
        repo = self.repo("blob")
        size = 12 << 20
        data = hashlib.sha256(b"seed").digest() * (size // 32)
        d = self.other.push_blob(repo, data)
        path = "/v2/%s/blobs/%s" % (repo, d)
        got = []
        reqs = s3_requests(lambda: got.append(self.c.get(path, timeout=60)))
        self.assertEqual(got[0].status, 200)
        self.assertTrue(got[0].body == data, "the blob's bytes differ")
        gets = [q for q in reqs if q[0] == "GET" and q[1].split("?")[0].endswith("/data")]
        self.assertEqual(len(gets), 2, reqs)  # a first window, then the rest in one stream
        for first, last in ((100, 4099), (3 << 20, (5 << 20) + 17), (size - 10, size - 1)):
            r = self.c.get(path, headers={"Range": "bytes=%d-%d" % (first, last)})
            self.assertEqual(r.status, 206, r.describe())
            self.assertTrue(r.body == data[first:last + 1], "range %d-%d differs" % (first, last))

    def test_blob_get_resumes_a_cut_stream(self):
        """Every GET of the blob through the cutting proxy ends 3 MiB into its body: the stream
        goes on from where it stopped (with If-Match), and the client gets every byte."""
        repo = self.repo("cut")
        data = hashlib.sha512(b"cut").digest() * ((10 << 20) // 64)
        d = self.other.push_blob(repo, data)
        r = state["cut"].get("/v2/%s/blobs/%s" % (repo, d), timeout=60)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body == data, "the blob's bytes differ")

    def test_blob_get_slow_client(self):
        """A client reading slowly: the ring fills, the S3 transfer waits (paused, TCP's flow
        control), and every byte arrives in order."""
        repo = self.repo("slow")
        data = hashlib.sha256(b"slow").digest() * ((6 << 20) // 32)
        d = self.other.push_blob(repo, data)
        sock = socket.create_connection(("127.0.0.1", self.c.port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.sendall(("GET /v2/%s/blobs/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                      % (repo, d)).encode())
        got = bytearray()
        while True:
            chunk = sock.recv(256 << 10)
            if not chunk:
                break
            got += chunk
            time.sleep(0.005)
        sock.close()
        head, _, body = bytes(got).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:200])
        self.assertEqual(len(body), len(data))
        self.assertTrue(body == data, "the blob's bytes differ")

    def test_stalled_clients_hold_bounded_memory(self):
        """Clients that stop reading mid-body: each response holds one send block (1 MiB) and
        one curl buffer, not the rest of the blob; what is not read waits in the kernel's
        socket buffers (TCP holds the S3 server back). berth's RSS grows by a few MiB per
        stalled response, not by the blob's size (24 MiB each)."""
        repo = self.repo("stall")
        size, clients = 24 << 20, 6
        data = hashlib.sha256(b"stall").digest() * (size // 32)
        d = self.other.push_blob(repo, data)
        path = "/v2/%s/blobs/%s" % (repo, d)
        self.assertTrue(self.c.get(path, timeout=60).body == data, "the blob's bytes differ")
        pid = [p.pid for p, name in state["procs"] if name == "counted"][0]
        before = rss_kib(pid)
        socks = []
        try:
            for _ in range(clients):
                sock = socket.create_connection(("127.0.0.1", self.c.port), timeout=30)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
                got = b""
                while len(got) < (256 << 10):  # well into the body: its first block is out
                    chunk = sock.recv(64 << 10)
                    self.assertTrue(chunk, "the body ended early")
                    got += chunk
                self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
                socks.append(sock)
            time.sleep(0.5)  # room for a read-ahead that would hold more (there is none)
            grown = rss_kib(pid) - before
        finally:
            for sock in socks:
                sock.close()
        # AddressSanitizer's allocator adds its own (26 MiB measured): a looser bound, still far
        # below what responses holding the blob (24 MiB each) would take
        per_client = (12 << 10) if os.environ.get("BERTH_SANITIZE") else (4 << 10)
        self.assertLess(grown, clients * per_client, "RSS grew by %d KiB for %d stalled responses"
                        % (grown, clients))
        # served whole after the stalled ones left
        self.assertTrue(self.c.get(path, timeout=60).body == data, "the blob's bytes differ")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def put_object(env, key, body):
    """A PUT straight to the bucket, signed by curl (as the README of tests/fixtures/s3 says)."""
    url = "%s/%s/%s" % (env["S3_ENDPOINT"], env["S3_BUCKET"], key)
    subprocess.run(["curl", "-sf", "-X", "PUT", "--aws-sigv4", "aws:amz:%s:s3" % env["S3_REGION"],
                    "--user", "%s:%s" % (env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]),
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--data-binary", "@-", url],
                   input=body, check=True, capture_output=True)


if __name__ == "__main__":
    unittest.main()
