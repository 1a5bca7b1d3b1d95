"""The catalog on S3 (BERTH_STORAGE=s3: run by tests/e2e/test_s3_suites.sh on its RGW), every
request berth makes counted by tests/fixtures/s3/faultproxy.py (--every 0: it only forwards and
logs). A catalog whose snapshot holds costs one HEAD (the store's catalog generation) and no
LIST; the walk it replaces lists the whole repositories tree without a delimiter (a few
requests for these repositories, where one LIST per directory took one per repository); a
repository pushed through a second instance on the same bucket is listed at once."""

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
        port_file, self.log = self.path("proxy.port"), self.path("requests.log")
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

    def spawn_on(self, name, rootdir, endpoint):
        cfg = self.path(name + ".yml")

        def make(port):
            storage = berthtest.s3_storage_yaml(rootdir).replace(
                "regionendpoint: %s\n" % os.environ["S3_ENDPOINT"], "regionendpoint: %s\n" % endpoint)
            berthtest.write_file(cfg, "version: 0.1\nlog: {level: warn}\n" + storage
                                 + "  redirect: {disable: true}\n"
                                 + "http: {addr: '127.0.0.1:%d'}\n" % port)
            return ["serve", cfg], None

        return self.spawn(make)

    def test_catalog_held_with_one_head(self):
        rootdir = "/catalog-%s" % uuid.uuid4().hex[:12]
        endpoint = self.start_proxy()
        a = self.spawn_on("a", rootdir, endpoint).client()
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

        # Two more: the directories are looked at again (a new walk on S3) every 2 s, so at
        # least one of two back-to-back requests is served from the snapshot.
        held = []
        for _ in range(2):
            before = len(self.requests())
            self.assertEqual(catalog(), names)
            held.append(self.requests()[before:])
        self.assertIn(1, [len(h) for h in held], held)
        one = [h for h in held if len(h) == 1][0]
        self.assertTrue(one[0].startswith("HEAD ") and one[0].endswith("/catalog/generation"), one)

        # a repository made through the other instance is listed at once
        b.push_blob("team/zz-new", b"new")
        self.assertIn("team/zz-new", catalog())


if __name__ == "__main__":
    berthtest.main()
