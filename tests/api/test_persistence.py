"""What the filesystem driver stores survives a restart of the server, uploads in progress
included (the spec's "resumable push" use case)."""

import os

import berthtest
from berthtest import ACCEPT_ALL, digest, setUpModule, tearDownModule  # noqa: F401


class PersistenceTest(berthtest.TestCase):
    def test_content_survives_restart(self):
        if os.environ.get("BERTH_STORAGE", "") == "inmemory":
            self.skipTest("in-memory storage does not persist")
        repo = self.repo()
        img = self.c.push_image(repo, "v1")
        self.c.push_manifest(repo, "v2", img["manifest"])
        data = b"0123456789" * 100
        r = self.c.start_upload(repo)
        r = self.c.patch(self.c.resolve(r.header("Location")), data[:400],
                         headers={"Content-Type": "application/octet-stream",
                                  "Content-Range": "0-399"})
        self.assertStatus(r, 202)
        loc = r.header("Location")

        self.srv.restart()
        c = self.srv.client()
        type(self).c = c

        r = c.get("/v2/%s/manifests/v1" % repo, headers=ACCEPT_ALL)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["manifest"])
        self.assertEqual(sorted(c.get("/v2/%s/tags/list" % repo).json()["tags"]), ["v1", "v2"])
        self.assertIn(repo, c.get("/v2/_catalog").json()["repositories"])
        r = c.get("/v2/%s/blobs/%s" % (repo, digest(img["config"])))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["config"])
        # the upload resumes where it stopped (Location paths are relative to the server)
        r = c.get(c.resolve(loc))
        self.assertStatus(r, 204)
        self.assertHeader(r, "Range", "0-399")
        r = c.patch(c.resolve(r.header("Location")), data[400:],
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": "400-%d" % (len(data) - 1)})
        self.assertStatus(r, 202)
        r = c.put(c.resolve(r.header("Location"), {"digest": digest(data)}), b"")
        self.assertStatus(r, 201)
        r = c.get("/v2/%s/blobs/%s" % (repo, digest(data)))
        self.assertEqual(r.body, data)


if __name__ == "__main__":
    berthtest.main()
