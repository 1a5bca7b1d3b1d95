"""The berth-specific `policies` section, through a real config file: immutable tags."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import berthtest


def start(config_text, tmp=None):
    return berthtest.start_with_config(config_text, "berth-policies-", tmp)


def berth_usage(test, tmp):
    """`berth usage` on the config in tmp: its output (status 0 asserted)."""
    binary = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
    p = subprocess.run([binary, "usage", os.path.join(tmp, "config.yml")], capture_output=True, timeout=30)
    test.assertEqual(p.returncode, 0, p.stderr)
    return p.stdout.decode()


def assert_refused(test, policies, words):
    """berth serve refuses a config whose policies section is `policies`, saying words."""
    tmp = tempfile.mkdtemp(prefix="berth-policies-")
    test.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    cfg = os.path.join(tmp, "config.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nstorage:\n  inmemory:\npolicies:\n" + policies)
    binary = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
    p = subprocess.run([binary, "serve", cfg], capture_output=True, timeout=20)
    test.assertEqual(p.returncode, 1)
    test.assertIn(words, p.stderr + p.stdout)


def stop(proc):
    """SIGTERM; a clean stop is status 0 (or the signal itself); anything else, e.g.
    LeakSanitizer's 23 in a sanitizer build, fails the test."""
    if proc.poll() is None:
        proc.terminate()
    rc = proc.wait(10)
    if rc not in (0, -15):
        raise AssertionError("berth exited with status %s after SIGTERM" % rc)


# A server on a fresh root with deletes enabled; a test adds its policies section.
BASE = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %(root)s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%(port)d
"""

IMMUTABLE = BASE + """policies:
  immutabletags:
    - repository: prod/.*
      tags: v[0-9]+(\\.[0-9]+)*
    - repository: frozen
"""


class ServerTest(unittest.TestCase):
    """One berth for the class, started with the class's CONFIG."""
    CONFIG = None

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.c, cls.tmp = start(cls.CONFIG)

    @classmethod
    def tearDownClass(cls):
        try:
            stop(cls.proc)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)


class ImmutableTagsTest(ServerTest):
    CONFIG = IMMUTABLE

    def assert_denied(self, r, words):
        self.assertEqual(r.status, 403, r.describe())
        self.assertEqual(r.error_codes(), ["DENIED"], r.describe())
        self.assertIn(words, r.json()["errors"][0]["message"], r.describe())

    def test_move_is_denied_same_manifest_is_fine(self):
        c = self.c
        a = c.push_image("prod/app", "v1.2", seed="a")
        b = c.push_image("prod/app", None, seed="b")
        self.assert_denied(c.put_manifest("prod/app", "v1.2", b["manifest"]), "immutable")
        # the tag still names the first manifest; pushing that again is fine
        self.assertEqual(c.get("/v2/prod/app/manifests/v1.2").header("Docker-Content-Digest"),
                         a["digest"])
        self.assertEqual(c.put_manifest("prod/app", "v1.2", a["manifest"]).status, 201)
        # tags the rule does not match move freely
        c.push_manifest("prod/app", "latest", a["manifest"])
        c.push_manifest("prod/app", "latest", b["manifest"])

    def test_delete_of_tag_and_of_its_manifest_is_denied(self):
        c = self.c
        a = c.push_image("prod/db", "v3", seed="db")
        self.assert_denied(c.delete("/v2/prod/db/manifests/v3"), "immutable")
        self.assert_denied(c.delete("/v2/prod/db/manifests/%s" % a["digest"]), "immutable tag")
        self.assertEqual(c.get("/v2/prod/db/manifests/v3").status, 200)
        # a manifest no immutable tag names deletes as before; so does a mutable tag
        b = c.push_image("prod/db", "edge", seed="db2")
        self.assertEqual(c.delete("/v2/prod/db/manifests/edge").status, 202)
        self.assertEqual(c.delete("/v2/prod/db/manifests/%s" % b["digest"]).status, 202)
        # an unknown immutable tag is still 404
        r = c.delete("/v2/prod/db/manifests/v9")
        self.assertEqual(r.status, 404, r.describe())

    def test_rule_without_tags_covers_every_tag_and_whole_names_only(self):
        c = self.c
        a = c.push_image("frozen", "anything", seed="f1")
        b = c.push_image("frozen", None, seed="f2")
        self.assert_denied(c.put_manifest("frozen", "anything", b["manifest"]), "immutable")
        # "frozen" must match the whole name: frozen2 and prod (no slash) are not covered
        c.push_image("frozen2", "anything", seed="g1")
        c.push_image("frozen2", "anything", seed="g2")
        c.push_image("prod", "v1", seed="p1")
        c.push_image("prod", "v1", seed="p2")
        self.assertEqual(c.get("/v2/frozen/manifests/anything").header("Docker-Content-Digest"),
                         a["digest"])

    def test_concurrent_first_pushes_one_wins(self):
        import threading
        c = self.c
        imgs = [c.push_image("prod/race", None, seed="r%d" % i) for i in range(6)]
        statuses = []

        def put(img):
            statuses.append(berthtest.Client(c.base).put_manifest("prod/race", "v7",
                                                                      img["manifest"]).status)
        threads = [threading.Thread(target=put, args=(img,)) for img in imgs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [201] + [403] * 5, statuses)
        d = c.get("/v2/prod/race/manifests/v7").header("Docker-Content-Digest")
        self.assertIn(d, [img["digest"] for img in imgs])


QUOTAS = BASE + """policies:
  quotas:
    - repository: team/.*
      tags: 3
      repositories: 2
    - repository: race
      tags: 2
    - repository: team/m.*
      bytes: 1000000
"""


class QuotaTest(ServerTest):
    CONFIG = QUOTAS

    def usage(self):
        return berth_usage(self, self.tmp)

    def test_tags_and_repositories(self):
        c = self.c
        a = c.push_image("team/a", "t1", seed="a1")
        c.push_image("team/a", "t2", seed="a2")
        b = c.push_image("team/b", "t1", seed="b1")
        self.assertIn("repository 'team/.*': tags 3/3 repositories 2/2\n", self.usage())
        # a new tag past the limit: 403 DENIED naming the limit; nothing written
        r = c.put_manifest("team/a", "t3", a["manifest"])
        self.assertEqual(r.status, 403, r.describe())
        self.assertEqual(r.error_codes(), ["DENIED"])
        self.assertIn("quota exceeded: tags (3 of 3)", r.json()["errors"][0]["message"])
        self.assertEqual(c.get("/v2/team/a/manifests/t3").status, 404)
        # moving an existing tag, pushing by digest, pulling: never refused
        self.assertEqual(c.put_manifest("team/a", "t1", b["manifest"]).status, 400)  # blobs of b not in a
        c.push_manifest("team/a", "t2", a["manifest"])
        c.push_image("team/a", None, seed="by-digest")
        self.assertEqual(c.get("/v2/team/a/manifests/t1").status, 200)
        # a third repository: its blobs go in, its first manifest does not
        r = c.put_manifest("team/c", "x", c.push_image("other", None, seed="c")["manifest"])
        self.assertEqual(r.status, 400)  # (its blobs are not in team/c yet)
        img = c.push_image("elsewhere", None, seed="c2")
        for d in [img["obj"]["config"]] + img["obj"]["layers"]:
            rr = c.post("/v2/team/c/blobs/uploads/?mount=%s&from=elsewhere" % d["digest"],
                        headers={"Content-Length": "0"})
            self.assertEqual(rr.status, 201, rr.describe())
        r = c.put_manifest("team/c", img["digest"], img["manifest"])
        self.assertEqual(r.status, 403, r.describe())
        self.assertIn("quota exceeded: repositories (2 of 2)", r.json()["errors"][0]["message"])
        # repositories the rule does not cover are free
        c.push_image("solo", "t1", seed="s")
        c.push_image("solo", "t2", seed="s2")
        c.push_image("solo", "t3", seed="s3")
        c.push_image("solo", "t4", seed="s4")
        # a delete frees room at once (usage is counted from the store)
        self.assertEqual(c.delete("/v2/team/a/manifests/t2").status, 202)
        c.push_manifest("team/a", "t3", a["manifest"])
        self.assertIn("repository 'team/.*': tags 3/3 repositories 2/2\n", self.usage())

    def test_concurrent_new_tags_stop_at_the_limit(self):
        import threading
        c = self.c
        img = c.push_image("race", None, seed="race")
        statuses = []
        n = 16
        ready = threading.Barrier(n)

        def put(i):
            s = c.session()  # connected before the barrier, so the PUTs arrive together
            s.conn.connect()
            ready.wait()
            statuses.append(s.request("PUT", "/v2/race/manifests/n%d" % i, img["manifest"],
                                      {"Content-Type": berthtest.OCI_MANIFEST}).status)
            s.close()
        threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [201] * 2 + [403] * (n - 2), statuses)
        self.assertEqual(len(c.get("/v2/race/tags/list").json()["tags"]), 2)


class QuotaMetricsTest(unittest.TestCase):
    def test_usage_counted_from_the_store_at_start(self):
        debug = "  debug:\n    addr: 127.0.0.1:%(debugport)d\n    prometheus:\n      enabled: true\n"
        config = QUOTAS.replace("  addr: 127.0.0.1:%(port)d\n", "  addr: 127.0.0.1:%(port)d\n" + debug)
        proc, c, tmp = start(config)
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        stored = 0
        for img in (c.push_image("team/m", "a", seed="m1"), c.push_image("team/m", "b", seed="m2")):
            stored += len(img["config"]) + img["layers"][0]["size"] + len(img["manifest"])
        c.push_image("team/n", "a", seed="n1")
        stop(proc)
        proc, c, _ = start(config, tmp)
        self.addCleanup(stop, proc)
        with open(os.path.join(tmp, "config.yml")) as f:
            debug = f.read().split("debug:\n    addr: ")[1].split("\n")[0]
        want = ['berth_quota_tags{repository="team/.*"} 3',
                'berth_quota_tags_limit{repository="team/.*"} 3',
                'berth_quota_repositories{repository="team/.*"} 2',
                'berth_quota_repositories_limit{repository="team/.*"} 2',
                'berth_quota_tags{repository="race"} 0',
                'berth_quota_repositories_limit{repository="race"} 0',
                'berth_quota_bytes{repository="team/m.*"} %d' % stored,  # counted again at start
                'berth_quota_bytes_limit{repository="team/m.*"} 1000000',
                'berth_quota_bytes_limit{repository="race"} 0']
        text = ""
        for _ in range(100):  # counted by a background thread just after the start
            text = berthtest.Client("http://" + debug).get("/metrics").body.decode()
            if all(w in text.splitlines() for w in want):
                break
            time.sleep(0.05)
        for w in want:
            self.assertIn(w, text.splitlines())


BYTES = BASE + """policies:
  quotas:
    - repository: bytes/.*
      bytes: 1000
"""


def blob(seed, size=400):
    return (seed.encode() * size)[:size]


class BytesQuotaTest(unittest.TestCase):
    """policies.quotas[].bytes: distinct blobs linked into covered repositories, checked at each
    link (blob commit, mount, manifest PUT), counted in memory and again at start-up."""

    def setUp(self):
        self.proc, self.c, self.tmp = start(BYTES)
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(lambda: stop(self.proc))

    def restart(self):
        stop(self.proc)
        self.proc, self.c, _ = start(BYTES, self.tmp)

    def usage(self):
        return berth_usage(self, self.tmp)

    def push_blob(self, repo, data):
        c = self.c
        r = c.start_upload(repo)
        return c.put(c.resolve(r.header("Location"), {"digest": berthtest.digest(data)}), data,
                     headers={"Content-Type": "application/octet-stream"})

    def assert_denied(self, r, words):
        self.assertEqual(r.status, 403, r.describe())
        self.assertEqual(r.error_codes(), ["DENIED"], r.describe())
        self.assertIn(words, r.json()["errors"][0]["message"], r.describe())

    def test_push_past_quota_delete_then_push_again_restart_keeps_usage(self):
        c = self.c
        a, b, x = blob("a"), blob("b"), blob("x")
        self.assertEqual(self.push_blob("bytes/one", a).status, 201)
        self.assertEqual(self.push_blob("bytes/one", b).status, 201)
        # the same blob again, or in another covered repository, adds nothing
        self.assertEqual(self.push_blob("bytes/one", a).status, 201)
        self.assertEqual(self.push_blob("bytes/two", a).status, 201)
        self.assertIn("repository 'bytes/.*': tags 0/- repositories 0/- bytes 800/1000\n", self.usage())
        # a third 400-byte blob would make 1200: refused at the commit, naming limit and usage
        r = self.push_blob("bytes/two", x)
        self.assert_denied(r, "quota exceeded: bytes (800 of 1000 stored, this blob adds 400) "
                              "for repositories matching 'bytes/.*'")
        self.assertEqual(c.head("/v2/bytes/two/blobs/%s" % berthtest.digest(x)).status, 404)
        # a monolithic POST the same; nothing is left in _uploads
        r = c.post("/v2/bytes/two/blobs/uploads/?digest=%s" % berthtest.digest(x), x,
                   headers={"Content-Type": "application/octet-stream"})
        self.assert_denied(r, "quota exceeded: bytes")
        uploads = os.path.join(self.tmp, "root/docker/registry/v2/repositories/bytes/two/_uploads")
        self.assertEqual(os.listdir(uploads) if os.path.isdir(uploads) else [], [])
        # a mount from an uncovered repository is a link too
        self.assertEqual(self.push_blob("free", x).status, 201)
        r = c.post("/v2/bytes/two/blobs/uploads/?mount=%s&from=free" % berthtest.digest(x),
                   headers={"Content-Length": "0"})
        self.assert_denied(r, "quota exceeded: bytes (800 of 1000")
        # uncovered repositories and pulls are never affected
        self.assertEqual(self.push_blob("free", blob("y", 5000)).status, 201)
        self.assertEqual(c.get("/v2/bytes/one/blobs/%s" % berthtest.digest(a)).body, a)
        # a delete frees room at once: b goes, x fits (by mount now)
        self.assertEqual(c.delete("/v2/bytes/one/blobs/%s" % berthtest.digest(b)).status, 202)
        r = c.post("/v2/bytes/two/blobs/uploads/?mount=%s&from=free" % berthtest.digest(x),
                   headers={"Content-Length": "0"})
        self.assertEqual(r.status, 201, r.describe())
        self.assertIn("bytes 800/1000\n", self.usage())
        # a is still linked into bytes/two: deleting it from bytes/one frees nothing
        self.assertEqual(c.delete("/v2/bytes/one/blobs/%s" % berthtest.digest(a)).status, 202)
        self.assert_denied(self.push_blob("bytes/one", b), "(800 of 1000 stored, this blob adds 400)")
        # a restart counts the same usage from the store
        self.restart()
        c = self.c
        self.assert_denied(self.push_blob("bytes/one", b), "(800 of 1000 stored, this blob adds 400)")
        self.assertEqual(c.delete("/v2/bytes/two/blobs/%s" % berthtest.digest(x)).status, 202)
        self.assertEqual(self.push_blob("bytes/one", b).status, 201)
        self.assertIn("bytes 800/1000\n", self.usage())

    def test_concurrent_pushes_stop_at_the_limit(self):
        import threading
        statuses = []
        n = 12
        ready = threading.Barrier(n)

        def push(i):
            data = blob("c%d" % i)
            s = self.c.session()
            s.conn.connect()
            r = s.request("POST", "/v2/bytes/race/blobs/uploads/", b"", {"Content-Length": "0"})
            loc = r.header("Location")
            ready.wait()
            statuses.append(s.request("PUT", loc + ("&" if "?" in loc else "?") + "digest=" +
                                      berthtest.digest(data), data,
                                      {"Content-Type": "application/octet-stream"}).status)
            s.close()
        threads = [threading.Thread(target=push, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(statuses), [201] * 2 + [403] * (n - 2), statuses)
        self.assertIn("bytes 800/1000\n", self.usage())

    def test_manifest_bytes_count_and_repository_delete_frees(self):
        c = self.c
        img = c.push_image("bytes/app", "v1", seed="m")  # config + one layer + the manifest
        size = len(img["config"]) + img["layers"][0]["size"] + len(img["manifest"])
        self.assertIn("bytes %d/1000\n" % size, self.usage())
        # a manifest that would pass the limit is refused, though its blobs are in
        layer = blob("L", 1000 - size - 10)
        self.assertEqual(self.push_blob("bytes/app", layer).status, 201)
        m = dict(img["obj"], layers=[berthtest.descriptor(layer, berthtest.OCI_LAYER)])
        r = c.put_manifest("bytes/app", "v2", m)
        self.assert_denied(r, "quota exceeded: bytes (%d of 1000 stored, this blob adds %d)"
                           % (1000 - 10, len(berthtest.canonical(m))))
        self.assertEqual(c.get("/v2/bytes/app/manifests/v2").status, 404)
        # the manifest already there pushes again (its link exists: it adds nothing)
        self.assertEqual(c.put_manifest("bytes/app", "v1", img["manifest"]).status, 201)
        # deleting the manifest by digest frees its bytes; deleting the repository frees all
        self.assertEqual(c.delete("/v2/bytes/app/manifests/%s" % img["digest"]).status, 202)
        self.assertIn("bytes %d/1000\n" % (1000 - 10 - len(img["manifest"])), self.usage())
        r = c.delete("/v2/_berth/repositories/bytes/app")
        self.assertEqual(r.status, 202, r.describe())
        self.assertIn("bytes 0/1000\n", self.usage())
        self.assertEqual(self.push_blob("bytes/app", blob("z", 1000)).status, 201)
        self.assert_denied(self.push_blob("bytes/other", blob("w", 1)), "(1000 of 1000 stored")


class BadPolicyConfigTest(unittest.TestCase):
    def assert_refused(self, policies, words):
        assert_refused(self, policies, words)

    def test_bad_pattern_is_refused_by_name(self):
        self.assert_refused("  immutabletags:\n    - repository: a\n      tags: 'v[0-9'\n",
                            b"policies.immutabletags[0].tags: invalid regular expression")

    def test_quota_bytes_must_be_a_count(self):
        self.assert_refused("  quotas:\n    - repository: a\n      bytes: 1GB\n",
                            b"policies.quotas[0].bytes: expected an integer")


if __name__ == "__main__":
    unittest.main(verbosity=2)
