"""Repository delete: DELETE /v2/_berth/repositories/<name> and `berth repo delete CONFIG NAME`,
through a real config file; the store left readable by Distribution (docker-registry)."""

import os
import shutil
import subprocess
import threading
import time
import unittest

import berthtest
from test_policies import BASE, start, stop

CONFIG = BASE + """policies:
  immutabletags:
    - repository: locked
      tags: v.*
"""

BINARY = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")


class RepoDeleteTest(unittest.TestCase):
    def setUp(self):
        self.proc, self.c, self.tmp = start(CONFIG)
        self.root = os.path.join(self.tmp, "root")
        self.cfg = os.path.join(self.tmp, "config.yml")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.stop)

    def stop(self):
        if self.proc.returncode is None:
            stop(self.proc)

    def test_delete_removes_tags_manifests_links_not_nested(self):
        c = self.c
        a = c.push_image("rd/app", "one", seed="1")
        c.push_image("rd/app", "two", seed="2")
        c.put("/v2/rd/app/blobs/uploads/", headers={"Content-Length": "0"})  # an open upload
        keep = c.push_image("rd/app/sub", "kept", seed="3")
        r = c.delete("/v2/_berth/repositories/rd/app")
        self.assertEqual(r.status, 202, r.describe())
        r = c.get("/v2/rd/app/tags/list")
        self.assertEqual(r.status, 404, r.describe())
        self.assertEqual(r.error_codes(), ["NAME_UNKNOWN"])
        self.assertEqual(c.get("/v2/rd/app/manifests/%s" % a["digest"]).status, 404)
        self.assertEqual(c.get("/v2/rd/app/blobs/%s" % a["layers"][0]["digest"]).status, 404)
        repos = c.get("/v2/_catalog").json()["repositories"]
        self.assertNotIn("rd/app", repos)
        self.assertIn("rd/app/sub", repos)
        self.assertTrue(berthtest.pulls_whole(c, "rd/app/sub", "kept"))
        # the blob data stays for the collection: another repository can mount it
        r = c.post("/v2/other/blobs/uploads/?mount=%s" % a["layers"][0]["digest"],
                   headers={"Content-Length": "0"})
        self.assertEqual(r.status, 201, r.describe())
        # again: nothing left
        r = c.delete("/v2/_berth/repositories/rd/app")
        self.assertEqual(r.status, 404, r.describe())
        self.assertEqual(r.error_codes(), ["NAME_UNKNOWN"])
        self.assertEqual(r.json()["errors"][0]["detail"], {"name": "rd/app"})
        # the name can be pushed again, from scratch
        c.push_image("rd/app", "one", seed="again")
        self.assertTrue(berthtest.pulls_whole(c, "rd/app", "one"))
        self.assertEqual(keep["digest"], c.get("/v2/rd/app/sub/manifests/kept").header(
            "Docker-Content-Digest"))

    def test_route_answers(self):
        c = self.c
        c.push_image("locked", "v1", seed="l")
        r = c.delete("/v2/_berth/repositories/locked")
        self.assertEqual(r.status, 403, r.describe())
        self.assertEqual(r.error_codes(), ["DENIED"])
        self.assertTrue(berthtest.pulls_whole(c, "locked", "v1"))
        self.assertEqual(c.get("/v2/_berth/repositories/locked").status, 405)
        r = c.delete("/v2/_berth/repositories/Bad_Name")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(r.error_codes(), ["NAME_INVALID"])
        self.assertEqual(c.delete("/v2/_berth/repositories/").status, 400)

    def test_concurrent_pushes_leave_every_tag_whole(self):
        c = self.c
        stop = time.time() + 4
        errors = []

        def pusher(i):
            cl = berthtest.Client(c.base)
            n = 0
            while time.time() < stop:
                try:
                    cl.push_image("busy/app", "t%d-%d" % (i, n), layers=2, seed="%d-%d" % (i, n))
                except AssertionError:
                    pass  # a push racing with the delete may fail; it must not leave a half image
                except Exception as e:  # noqa: BLE001 (reported below)
                    errors.append(repr(e))
                n += 1

        def deleter():
            cl = berthtest.Client(c.base)
            while time.time() < stop:
                r = cl.delete("/v2/_berth/repositories/busy/app")
                if r.status not in (202, 404):
                    errors.append(r.describe())
                time.sleep(0.05)

        threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=deleter))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        r = c.get("/v2/busy/app/tags/list")
        tags = r.json()["tags"] if r.status == 200 else []
        for tag in tags:
            self.assertTrue(berthtest.pulls_whole(c, "busy/app", tag), tag)
        self.assertEqual(self.proc.poll(), None)

    def test_cli_and_distribution_reads_the_store(self):
        c = self.c
        c.push_image("cli/gone", "x", seed="g")
        c.push_image("cli/kept", "y", seed="k")
        self.stop()
        p = subprocess.run([BINARY, "repo", "delete", self.cfg, "cli/gone"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([BINARY, "repo", "delete", self.cfg, "cli/gone"], capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no repository 'cli/gone'", p.stderr)
        # its blobs are left to the collection: orphans until garbage-collect, then a clean store
        p = subprocess.run([BINARY, "fsck", self.root], capture_output=True, timeout=60)
        self.assertIn(b"3 problems: 3 orphan-blob", p.stdout)
        p = subprocess.run([BINARY, "garbage-collect", self.cfg], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = subprocess.run([BINARY, "fsck", self.root], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        d, dc = berthtest.start_docker_registry(self.root, self.tmp)
        if not d:
            self.skipTest("docker-registry is not installed")
        self.addCleanup(lambda: (d.terminate(), d.wait(10)))
        self.assertEqual(dc.get("/v2/_catalog").json()["repositories"], ["cli/kept"])
        self.assertEqual(dc.get("/v2/cli/gone/tags/list").status, 404)
        self.assertTrue(berthtest.pulls_whole(dc, "cli/kept", "y"))


class RepoDeleteDisabledTest(unittest.TestCase):
    def test_without_storage_delete_it_is_unsupported(self):
        proc, c, tmp = start(CONFIG.replace("enabled: true", "enabled: false"))
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.addCleanup(stop, proc)
        c.push_image("kept", "t", seed="d")
        r = c.delete("/v2/_berth/repositories/kept")
        self.assertEqual(r.status, 405, r.describe())
        self.assertEqual(r.error_codes(), ["UNSUPPORTED"])
        self.assertTrue(berthtest.pulls_whole(c, "kept", "t"))
        p = subprocess.run([BINARY, "repo", "delete", os.path.join(tmp, "config.yml"), "kept"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"storage.delete.enabled is off", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
