"""The catalog and tag lists on S3 (BERTH_STORAGE=s3: run by tests/e2e/test_s3_suites.sh on its
RGW), every request berth makes counted by tests/fixtures/s3/faultproxy.py (--every 0: it only
forwards and logs). A catalog whose snapshot holds costs one HEAD (the store's catalog
generation) and no LIST; the walk it replaces lists the whole repositories tree without a
delimiter (a few requests for these repositories, where one LIST per directory took one per
repository); a repository pushed through a second instance on the same bucket is listed at
once. A tag list likewise costs one HEAD (the repository's tag generation), and a tag made or
deleted through the other instance is listed (or not) at once. A repository or tag written
behind berth's back (objects put straight into the bucket) is listed after the look for such
writers, which runs in the background: the request that finds it due answers from what it has.
BERTH_TEST_LOOK_INTERVAL_MS (test-only) sets the look's interval: endless where requests are
counted, 0 where the look is to happen at once."""

import hashlib
import os
import subprocess
import unittest
import uuid

import berthtest
from berthtest import tearDownModule  # noqa: F401

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "s3")


def setUpModule():
    if not berthtest.s3_mode():
        raise unittest.SkipTest("S3 only (BERTH_STORAGE=s3, see tests/e2e/test_s3_suites.sh)")


class S3Catalog(berthtest.OpsTestCase):
    def start_proxy(self):
        tag = uuid.uuid4().hex[:8]  # one proxy per test, in the class's directory
        port_file, self.log = self.path("proxy-%s.port" % tag), self.path("requests-%s.log" % tag)
        proxy = subprocess.Popen(
            ["python3", os.path.join(FIXTURES, "faultproxy.py"), "--upstream",
             os.environ["S3_ENDPOINT"], "--every", "0", "--port-file", port_file,
             "--log-file", self.log, "--max-seconds", "300"])
        self.addCleanup(proxy.wait)
        self.addCleanup(proxy.kill)
        self.assertTrue(berthtest.wait_until(lambda: os.path.exists(port_file), timeout=10))
        with open(port_file) as f:
            return "http://127.0.0.1:%s" % f.read().strip()

    def requests(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def spawn_on(self, name, rootdir, endpoint, look_ms=None):
        cfg = self.path(name + ".yml")

        def make(port):
            berthtest.write_file(cfg, berthtest.s3_config(rootdir, endpoint=endpoint, delete=True,
                                                          addr="127.0.0.1:%d" % port))
            env = None if look_ms is None else {"BERTH_TEST_LOOK_INTERVAL_MS": str(look_ms)}
            return ["serve", cfg], env

        return self.spawn(make)

    def test_catalog_held_with_one_head(self):
        rootdir = "/catalog-%s" % uuid.uuid4().hex[:12]
        endpoint = self.start_proxy()
        a = self.spawn_on("a", rootdir, endpoint, look_ms=NEVER).client()
        b = self.spawn_on("b", rootdir, os.environ["S3_ENDPOINT"]).client()
        names = sorted("team/r%d" % i for i in range(12))
        for n in names:
            a.push_blob(n, n.encode())

        def catalog():
            r = a.get("/v2/_catalog?n=1000")
            self.assertStatus(r, 200)
            return r.json()["repositories"]

        before = len(self.requests())
        self.assertEqual(catalog(), names)
        walk = self.requests()[before:]
        lists = [r for r in walk if "list-type=2" in r]
        # one undelimited listing: no delimiter, and not one request per repository
        self.assertTrue(lists, walk)
        self.assertFalse([r for r in lists if "delimiter" in r], walk)
        self.assertLess(len(lists), 3, walk)

        # the look for other writers is off here: each request is one HEAD of the generation
        for _ in range(2):
            before = len(self.requests())
            self.assertEqual(catalog(), names)
            held = self.requests()[before:]
            self.assertEqual(len(held), 1, held)
            self.assertTrue(held[0].startswith("HEAD ") and held[0].endswith("/catalog/generation"), held)

        # a repository made through the other instance is listed at once
        b.push_blob("team/zz-new", b"new")
        self.assertIn("team/zz-new", catalog())

    def test_tag_list_held_with_one_head(self):
        rootdir = "/tags-%s" % uuid.uuid4().hex[:12]
        endpoint = self.start_proxy()
        a = self.spawn_on("a", rootdir, endpoint, look_ms=NEVER).client()
        b = self.spawn_on("b", rootdir, os.environ["S3_ENDPOINT"]).client()
        repo = "team/app"
        for i in range(3):
            a.push_image(repo, "v%d" % i, seed="s%d" % i)

        def tags():
            r = a.get("/v2/%s/tags/list" % repo)
            self.assertStatus(r, 200)
            return r.json()["tags"]

        def held():
            before = len(self.requests())
            got = tags()
            return got, self.requests()[before:]

        self.assertEqual(tags(), ["v0", "v1", "v2"])
        got, reqs = held()
        self.assertEqual(got, ["v0", "v1", "v2"])
        self.assertEqual(len(reqs), 1, reqs)
        self.assertTrue(reqs[0].startswith("HEAD ") and reqs[0].endswith("/_generation"), reqs)

        # made, moved and deleted through the other instance: seen at once; a move lists nothing
        b.push_image(repo, "v3", seed="s3")
        self.assertEqual(tags(), ["v0", "v1", "v2", "v3"])
        b.push_image(repo, "v1", seed="moved")
        got, reqs = held()
        self.assertEqual(got, ["v0", "v1", "v2", "v3"])
        self.assertEqual(len(reqs), 1, reqs)
        self.assertStatus(b.delete("/v2/%s/manifests/v0" % repo), 202)
        self.assertEqual(tags(), ["v1", "v2", "v3"])

    def test_other_writers_seen_after_the_look(self):
        """Objects put straight into the bucket (as Distribution writes them): the first
        request after them answers from what it has and starts the look (the interval is 0
        here), whose result a later request lists."""
        rootdir = "/foreign-%s" % uuid.uuid4().hex[:12]
        c = self.spawn_on("c", rootdir, os.environ["S3_ENDPOINT"], look_ms=0).client()
        repo = "team/app"
        img = c.push_image(repo, "v1")
        catalog = lambda: c.get("/v2/_catalog?n=1000").json()["repositories"]  # noqa: E731
        tags = lambda: c.get("/v2/%s/tags/list" % repo).json()["tags"]  # noqa: E731
        self.assertEqual(catalog(), [repo])
        self.assertEqual(tags(), ["v1"])

        v2 = rootdir.lstrip("/") + "/docker/registry/v2/repositories/"
        layer = hashlib.sha256(b"foreign").hexdigest()
        self.assertEqual(put_object(v2 + "team/foreign/_layers/sha256/%s/link" % layer,
                                    "sha256:" + layer), 200)
        self.assertEqual(put_object(v2 + repo + "/_manifests/tags/zz/current/link", img["digest"]), 200)
        self.assertEqual(catalog(), [repo])  # answered from the snapshot; the look starts
        self.assertEqual(tags(), ["v1"])
        self.assertTrue(berthtest.wait_until(lambda: "team/foreign" in catalog(), timeout=30))
        self.assertTrue(berthtest.wait_until(lambda: tags() == ["v1", "zz"], timeout=30))


NEVER = 3600 * 1000  # ms: no look during the test


def put_object(key, body):
    """PUT of the bucket's object key, signed by curl (--aws-sigv4): the HTTP status."""
    e = os.environ
    url = "%s/%s/%s" % (e["S3_ENDPOINT"].rstrip("/"), e["S3_BUCKET"], key)
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
           "--aws-sigv4", "aws:amz:%s:s3" % e["S3_REGION"],
           "--user", "%s:%s" % (e["S3_ACCESS_KEY"], e["S3_SECRET_KEY"]),
           "-H", "x-amz-content-sha256: " + hashlib.sha256(body.encode()).hexdigest(),
           "-H", "Content-Type: application/octet-stream", "--data-binary", body, url]
    return int(subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout)


if __name__ == "__main__":
    berthtest.main()
