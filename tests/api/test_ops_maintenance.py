"""storage.maintenance: readonly (every write refused with 405 UNSUPPORTED, reads still served)
and uploadpurging (a background job that removes uploads older than `age` every `interval`,
or only logs them with dryrun)."""

import os
import time

import berthtest as bt
from berthtest import ACCEPT_ALL, setUpModule  # noqa: F401


def tearDownModule():
    bt.kill_spawned()
    bt.tearDownModule()


def config(root, port, maintenance="", delete=True):
    return ("version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: true\n"
            "storage:\n  filesystem:\n    rootdirectory: %s\n"
            "  delete:\n    enabled: %s\n%s"
            "http:\n  addr: 127.0.0.1:%d\n"
            % (root, "true" if delete else "false", maintenance, port))


def start(tmp, name, root, maintenance=""):
    def make(port):
        return ["serve", bt.write_file(os.path.join(tmp, name + ".yml"),
                                       config(root, port, maintenance))], {}
    return bt.spawn_berth(make, tmp)


def tree(root):
    """{relative path: file content} of everything under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def upload_dir(root, repo, uuid):
    return os.path.join(root, "docker", "registry", "v2", "repositories", repo, "_uploads", uuid)


def open_upload(c, repo, data=b"0123456789"):
    """Starts an upload and PATCHes data into it; returns (location, uuid)."""
    r = c.start_upload(repo)
    uuid = r.header("Docker-Upload-UUID")
    r = c.patch(c.resolve(r.header("Location")), data,
                headers={"Content-Type": "application/octet-stream"})
    if r.status != 202:
        raise AssertionError("PATCH failed" + r.describe())
    return r.header("Location"), uuid


class ReadOnlyTest(bt.OpsTestCase):
    REPO = "ro/image"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = os.path.join(cls.tmp, "root")
        w = start(cls.tmp, "writable", cls.root)
        c = w.client()
        cls.img = c.push_image(cls.REPO, "v1", layers=2)
        cls.layer = cls.img["layers"][0]["digest"]
        cls.upload_loc, cls.upload_uuid = open_upload(c, cls.REPO)
        w.stop()
        cls.s = start(cls.tmp, "readonly", cls.root,
                      "  maintenance:\n    readonly:\n      enabled: true\n")
        cls.c = cls.s.client()

    def setUp(self):
        if not self.s.alive():
            self.fail("berth is no longer running\n" + self.s.describe())

    def test_writes_refused(self):
        c, repo = self.c, self.REPO
        before = tree(self.root)
        new = b"a blob that must not be stored"
        up = c.resolve(self.upload_loc)
        m = self.img["manifest"]
        writes = [
            ("POST", "/v2/%s/blobs/uploads/" % repo, None, {}),
            ("POST", "/v2/other/repo/blobs/uploads/", None, {}),
            ("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, bt.digest(new)), new,
             {"Content-Type": "application/octet-stream"}),
            ("POST", "/v2/other/repo/blobs/uploads/?mount=%s&from=%s" % (self.layer, repo), None, {}),
            ("PATCH", up, b"more", {"Content-Type": "application/octet-stream"}),
            ("PUT", c.resolve(self.upload_loc, {"digest": bt.digest(b"0123456789")}), None, {}),
            ("DELETE", up, None, {}),
            ("PUT", "/v2/%s/manifests/v2" % repo, m, {"Content-Type": bt.OCI_MANIFEST}),
            ("PUT", "/v2/%s/manifests/%s" % (repo, self.img["digest"]), m,
             {"Content-Type": bt.OCI_MANIFEST}),
            ("DELETE", "/v2/%s/manifests/%s" % (repo, self.img["digest"]), None, {}),
            ("DELETE", "/v2/%s/manifests/v1" % repo, None, {}),
            ("DELETE", "/v2/%s/blobs/%s" % (repo, self.layer), None, {}),
        ]
        for method, path, body, headers in writes:
            r = c.request(method, path, body=body, headers=headers)
            self.assertError(r, 405, "UNSUPPORTED", "%s %s in read-only mode" % (method, path))
            self.assertRegex(r.header("Content-Type", ""), r"^application/json", r.describe())
        self.assertEqual(sorted(tree(self.root)), sorted(before),
                         "read-only mode changed the storage")
        self.assertEqual(tree(self.root), before)

    def test_reads_served(self):
        c, repo, img = self.c, self.REPO, self.img
        self.assertStatus(c.get("/v2/"), 200)
        for ref in ("v1", img["digest"]):
            r = c.get("/v2/%s/manifests/%s" % (repo, ref), headers=ACCEPT_ALL)
            self.assertStatus(r, 200)
            self.assertEqual(r.body, img["manifest"])
            r = c.head("/v2/%s/manifests/%s" % (repo, ref), headers=ACCEPT_ALL)
            self.assertStatus(r, 200)
            self.assertHeader(r, "Docker-Content-Digest", img["digest"])
        r = c.get("/v2/%s/blobs/%s" % (repo, bt.digest(img["config"])))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, img["config"])
        self.assertStatus(c.head("/v2/%s/blobs/%s" % (repo, self.layer)), 200)
        r = c.get("/v2/%s/blobs/%s" % (repo, self.layer), headers={"Range": "bytes=0-4"})
        self.assertStatus(r, 206)
        self.assertEqual(c.get("/v2/%s/tags/list" % repo).json()["tags"], ["v1"])
        self.assertIn(repo, c.get("/v2/_catalog").json()["repositories"])
        r = c.get(c.resolve(self.upload_loc))
        self.assertStatus(r, 204, "upload status is a read")
        self.assertHeader(r, "Range", "0-9")
        self.assertError(c.get("/v2/%s/manifests/nope" % repo, headers=ACCEPT_ALL), 404,
                         "MANIFEST_UNKNOWN")

    def test_readonly_from_environment(self):
        root = os.path.join(self.tmp, "envroot")
        s = bt.spawn_berth(lambda port: (["serve", bt.write_file(
            os.path.join(self.tmp, "env.yml"), config(root, port))],
            {"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true"}), self.tmp)
        self.addCleanup(bt.stop_spawned, s)
        self.assertError(s.client().post("/v2/env/ro/blobs/uploads/"), 405, "UNSUPPORTED")
        self.assertStatus(s.client().get("/v2/"), 200)


class UploadPurgingTest(bt.OpsTestCase):
    """Five servers at once, each with an upload made at the start; one wait for them all."""

    FAST = "      age: 1s\n      interval: 1s\n"
    CASES = {
        "purge": "  maintenance:\n    uploadpurging:\n      enabled: true\n%s" % FAST,
        "dryrun": "  maintenance:\n    uploadpurging:\n      enabled: true\n      dryrun: true\n%s"
                  % FAST,
        "disabled": "  maintenance:\n    uploadpurging:\n      enabled: false\n%s" % FAST,
        "young": "  maintenance:\n    uploadpurging:\n      enabled: true\n"
                 "      age: 1h\n      interval: 1s\n",
        # purging deletes, so a read-only registry (set up for a garbage collection) must not
        "readonly": "  maintenance:\n    readonly:\n      enabled: true\n"
                    "    uploadpurging:\n      enabled: true\n%s" % FAST,
    }
    REPO = "purge/repo"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.servers, cls.uploads, cls.roots = {}, {}, {}
        ro_root = os.path.join(cls.tmp, "readonly-root")
        w = start(cls.tmp, "writable", ro_root)
        cls.uploads["readonly"] = open_upload(w.client(), cls.REPO)
        w.stop()
        cls.kept_blob = b"a finished blob the purge must leave alone"
        for name, maint in cls.CASES.items():
            root = os.path.join(cls.tmp, name + "-root")
            cls.roots[name] = root
            s = start(cls.tmp, name, root, maint)
            cls.servers[name] = s
            if name != "readonly":
                s.client().push_blob(cls.REPO, cls.kept_blob)
                cls.uploads[name] = open_upload(s.client(), cls.REPO)
        cls.leftovers = cls.make_leftovers(cls.roots["purge"])
        cls.t0 = time.time()
        # wait for the purge to remove the old upload and the dry run to report it; then a
        # little more so that every server had at least two passes with the upload old enough
        s, uuid = cls.servers["purge"], cls.uploads["purge"][1]
        bt.wait_until(lambda: not os.path.exists(upload_dir(cls.roots["purge"], cls.REPO, uuid))
                      and cls.servers["dryrun"].wait_log(
                          cls.uploads["dryrun"][1], timeout=0), timeout=8, interval=0.1)
        while time.time() - cls.t0 < 3.5:
            time.sleep(0.1)

    @classmethod
    def make_leftovers(cls, root):
        """Upload directories with no readable startedat, an hour old by their mtime: a torn
        startedat (it is written without fsync) and what a crash left of a session removal."""
        made = []
        for uuid, startedat in (("0f1e2d3c-0000-4000-8000-00000000aaaa", b""),
                                ("0f1e2d3c-0000-4000-8000-00000000bbbb", None)):
            d = upload_dir(root, cls.REPO, uuid)
            os.makedirs(d)
            with open(os.path.join(d, "data"), "wb") as f:
                f.write(b"partial")
            if startedat is not None:
                with open(os.path.join(d, "startedat"), "wb") as f:
                    f.write(startedat)
            old = time.time() - 3600
            os.utime(d, (old, old))
            made.append(d)
        return made

    def status(self, name):
        s = self.servers[name]
        loc = self.uploads[name][0]
        return s.client().get(s.client().resolve(loc))

    def present(self, name):
        return os.path.isdir(upload_dir(self.roots[name], self.REPO, self.uploads[name][1]))

    def test_old_upload_purged(self):
        s = self.servers["purge"]
        self.assertFalse(self.present("purge"), "the upload is still on disk %.1fs after it "
                         "started (age 1s, interval 1s)\n%s" % (time.time() - self.t0, s.describe()))
        self.assertError(self.status("purge"), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertIsNotNone(s.wait_log(self.uploads["purge"][1], timeout=0),
                             "the purge does not log what it deleted\n" + s.describe())
        r = s.client().get("/v2/%s/blobs/%s" % (self.REPO, bt.digest(self.kept_blob)))
        self.assertStatus(r, 200, "the purge must leave finished blobs alone")
        self.assertEqual(r.body, self.kept_blob)

    def test_sessions_without_startedat_purged_by_age(self):
        for d in self.leftovers:
            self.assertFalse(os.path.exists(d), "%s is still there" % d)

    def test_dryrun_keeps_and_logs(self):
        s = self.servers["dryrun"]
        self.assertTrue(self.present("dryrun"), "dryrun deleted the upload\n" + s.describe())
        self.assertStatus(self.status("dryrun"), 204)
        line = s.wait_log(self.uploads["dryrun"][1], timeout=0)
        self.assertIsNotNone(line, "dryrun must log the upload it would delete\n" + s.describe())

    def test_disabled_keeps(self):
        s = self.servers["disabled"]
        self.assertTrue(self.present("disabled"), s.describe())
        self.assertStatus(self.status("disabled"), 204)
        self.assertIsNone(s.wait_log(self.uploads["disabled"][1], timeout=0), s.describe())
        self.assertIsNone(s.wait_log("purge", timeout=0), "purging is disabled\n" + s.describe())

    def test_young_upload_kept(self):
        s = self.servers["young"]
        self.assertTrue(self.present("young"), "an upload younger than age was purged\n"
                        + s.describe())
        r = self.status("young")
        self.assertStatus(r, 204)
        self.assertHeader(r, "Range", "0-9")

    def test_readonly_does_not_purge(self):
        s = self.servers["readonly"]
        self.assertTrue(self.present("readonly"), "a read-only registry purged an upload\n"
                        + s.describe())
        self.assertStatus(self.status("readonly"), 204)


if __name__ == "__main__":
    bt.main()
