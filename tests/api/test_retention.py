"""policies.retention: each rule through `berth retention CONFIG.yml [--dry-run]` on a real
config and store, serve's own timer with its notification events, and the store left readable
by Distribution (docker-registry). Push times are set by changing the mtime of the tags' current
links and of the revision links, which is what retention reads."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import berthtest
from notify_sink import Sink
from test_policies import BASE, assert_refused, start, stop

BINARY = os.environ.get("BERTH_BIN") or os.path.join(berthtest.SRC, "build", "berth")
HOUR = 3600

RULES = BASE + """policies:
  immutabletags:
    - repository: keep/immutable
      tags: v1
  retention:
    interval: 0s
    rules:
      - repository: keep/latest
        keeplatest: 2
      - repository: keep/pattern
        keeptags: v[0-9.]+|latest
      - repository: keep/recent
        keeppushedwithin: 1h
      - repository: keep/union
        keeplatest: 1
        keeptags: release-.*
        keeppushedwithin: 1h
      - repository: keep/immutable
        keeplatest: 0
      - repository: keep/notags
        untaggedafter: 1000h
      - repository: untagged/.*
        untaggedafter: 24h
      - repository: both/.*
        keeplatest: 1
        untaggedafter: 24h
      - repository: keep/.*
        keeplatest: 0
"""


class RetentionServer(unittest.TestCase):
    """A berth serving CONFIG on a fresh root, with helpers to age what retention reads."""
    CONFIG = RULES

    def setUp(self):
        self.proc, self.c, self.tmp = start(self.CONFIG)
        self.root = os.path.join(self.tmp, "root")
        self.cfg = os.path.join(self.tmp, "config.yml")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.stop)

    def stop(self):
        if self.proc.returncode is None:
            stop(self.proc)

    def repo_dir(self, repo):
        return os.path.join(self.root, "docker/registry/v2/repositories", repo)

    def age(self, path, seconds):
        t = time.time() - seconds
        os.utime(path, (t, t))

    def age_tag(self, repo, tag, seconds):
        self.age(os.path.join(self.repo_dir(repo), "_manifests/tags", tag, "current/link"), seconds)

    def age_revision(self, repo, digest, seconds):
        alg, hexd = digest.split(":")
        self.age(os.path.join(self.repo_dir(repo), "_manifests/revisions", alg, hexd, "link"), seconds)

    def push_tags(self, repo, tags):
        """Pushes one image per tag, the first oldest (an hour apart, the last an hour ago)."""
        imgs = {}
        for i, tag in enumerate(tags):
            imgs[tag] = self.c.push_image(repo, tag, seed="%s-%s" % (repo, tag))
            self.age_tag(repo, tag, (len(tags) - i) * HOUR)
        return imgs

    def retention(self, *args, status=0):
        p = subprocess.run([BINARY, "retention", self.cfg] + list(args), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, status, p.stdout + p.stderr)
        return p.stdout.decode()

    def tags(self, repo):
        r = self.c.get("/v2/%s/tags/list" % repo)
        return sorted(r.json()["tags"] or []) if r.status == 200 else []


class RetentionTest(RetentionServer):
    def test_keep_latest(self):
        imgs = self.push_tags("keep/latest", ["t1", "t2", "t3", "t4"])
        out = self.retention()
        self.assertEqual(self.tags("keep/latest"), ["t3", "t4"])
        self.assertIn("removed tag keep/latest:t1 (%s)\n" % imgs["t1"]["digest"], out)
        self.assertIn("removed tag keep/latest:t2 (%s)\n" % imgs["t2"]["digest"], out)
        # a tag removal is the API's tag delete: the manifest stays, by digest
        self.assertTrue(berthtest.pulls_whole(self.c, "keep/latest", imgs["t1"]["digest"]))
        # a second run finds nothing more to do
        self.assertIn(" 0 tags and 0 untagged manifests removed", self.retention())

    def test_ties_order_by_name_and_a_push_makes_a_tag_new(self):
        imgs = self.push_tags("keep/latest", ["a", "b", "c"])
        for tag in imgs:
            self.age_tag("keep/latest", tag, 2 * HOUR)  # the same push time: b and c are newer
        self.c.push_manifest("keep/latest", "a", imgs["a"]["manifest"])  # pushed again: newest
        self.retention()
        self.assertEqual(self.tags("keep/latest"), ["a", "c"])

    def test_keep_tags_pattern(self):
        self.push_tags("keep/pattern", ["v1.2", "latest", "v1.2-rc1", "dev", "xv1"])
        self.retention()
        self.assertEqual(self.tags("keep/pattern"), ["latest", "v1.2"])

    def test_keep_pushed_within(self):
        self.push_tags("keep/recent", ["old", "older", "new"])
        self.age_tag("keep/recent", "new", 10 * 60)
        self.retention()
        self.assertEqual(self.tags("keep/recent"), ["new"])

    def test_keep_criteria_are_a_union(self):
        self.push_tags("keep/union", ["release-1", "x", "y", "recent", "newest"])
        self.age_tag("keep/union", "recent", 30 * 60)
        self.age_tag("keep/union", "newest", 60)
        self.retention()
        self.assertEqual(self.tags("keep/union"), ["newest", "recent", "release-1"])

    def test_immutable_tags_stay_first_matching_rule_governs(self):
        self.push_tags("keep/immutable", ["v1", "v2"])
        self.push_tags("keep/other", ["a", "b"])
        self.push_tags("keep/notags", ["a", "b"])  # its rule has no keep criterion: tags stay
        self.push_tags("elsewhere", ["a", "b"])    # no rule at all
        self.retention()
        self.assertEqual(self.tags("keep/immutable"), ["v1"])
        self.assertEqual(self.tags("keep/other"), [])  # governed by keep/.*: keeplatest 0
        self.assertEqual(self.tags("keep/notags"), ["a", "b"])
        self.assertEqual(self.tags("elsewhere"), ["a", "b"])

    def test_dry_run_removes_nothing(self):
        self.push_tags("keep/latest", ["t1", "t2", "t3"])
        c = self.c
        old = c.push_image("untagged/dry", None, seed="old")
        self.age_revision("untagged/dry", old["digest"], 48 * HOUR)
        out = self.retention("--dry-run")
        self.assertIn("would remove tag keep/latest:t1", out)
        self.assertIn("would remove untagged manifest untagged/dry@%s\n" % old["digest"], out)
        self.assertIn("1 tags and 1 untagged manifests would be removed", out)
        self.assertEqual(self.tags("keep/latest"), ["t1", "t2", "t3"])
        self.assertEqual(c.get("/v2/untagged/dry/manifests/%s" % old["digest"]).status, 200)
        # policies.retention.dryrun does the same
        with open(self.cfg) as f:
            text = f.read()
        with open(self.cfg, "w") as f:
            f.write(text.replace("    interval: 0s\n", "    interval: 0s\n    dryrun: true\n"))
        self.assertIn("would remove tag keep/latest:t1", self.retention())
        self.assertEqual(self.tags("keep/latest"), ["t1", "t2", "t3"])

    def test_untagged_manifests_after_a_duration_keeping_what_kept_ones_need(self):
        c = self.c
        repo = "untagged/app"
        tagged = c.push_image(repo, "t", seed="tagged")
        old = c.push_image(repo, None, seed="old")
        young = c.push_image(repo, None, seed="young")
        # an index, tagged, whose children are untagged and old
        kids = [c.push_image(repo, None, seed="kid%d" % i) for i in range(2)]
        index = {"schemaVersion": 2, "mediaType": berthtest.OCI_INDEX,
                 "manifests": [berthtest.descriptor(k["manifest"], berthtest.OCI_MANIFEST) for k in kids]}
        c.push_manifest(repo, "idx", index, berthtest.OCI_INDEX)
        # referrers: of the tagged manifest (stays), of the old untagged one (goes with it)
        sig_kept = c.push_image(repo, None, seed="sig1",
                                extra={"subject": berthtest.descriptor(tagged["manifest"],
                                                                       berthtest.OCI_MANIFEST)})
        sig_gone = c.push_image(repo, None, seed="sig2",
                                extra={"subject": berthtest.descriptor(old["manifest"],
                                                                       berthtest.OCI_MANIFEST)})
        for img in [tagged, old, sig_kept, sig_gone] + kids:
            self.age_revision(repo, img["digest"], 48 * HOUR)
        self.age_revision(repo, young["digest"], 23 * HOUR)
        # a tagged manifest whose tag a rule without tag criteria keeps
        out = self.retention()
        gone = {old["digest"], sig_gone["digest"]}
        for img in [tagged, old, young, sig_kept, sig_gone] + kids:
            status = c.get("/v2/%s/manifests/%s" % (repo, img["digest"])).status
            self.assertEqual(status, 404 if img["digest"] in gone else 200, img["digest"])
        for d in gone:
            self.assertIn("removed untagged manifest %s@%s\n" % (repo, d), out)
        self.assertIn(" 0 tags and 2 untagged manifests removed", out)
        self.assertEqual(self.tags(repo), ["idx", "t"])

    def test_removed_tag_manifest_goes_in_the_same_run_and_distribution_reads_the_store(self):
        c = self.c
        repo = "both/app"
        imgs = self.push_tags(repo, ["old", "new"])
        self.age_revision(repo, imgs["old"]["digest"], 48 * HOUR)
        self.age_revision(repo, imgs["new"]["digest"], 48 * HOUR)
        other = self.push_tags("keep/latest", ["t1", "t2", "t3"])
        out = self.retention()
        self.assertIn("removed tag both/app:old", out)
        self.assertIn("removed untagged manifest both/app@%s" % imgs["old"]["digest"], out)
        self.assertEqual(self.tags(repo), ["new"])
        self.assertEqual(c.get("/v2/%s/manifests/%s" % (repo, imgs["old"]["digest"])).status, 404)
        self.assertTrue(berthtest.pulls_whole(c, repo, "new"))
        # berth fsck finds the store sound (the removed manifest's blobs are left to the collection)
        p = subprocess.run([BINARY, "fsck", self.root], capture_output=True, timeout=60)
        self.assertNotIn(b"dangling", p.stdout + p.stderr)
        self.stop()
        d, dc = berthtest.start_docker_registry(self.root, self.tmp)
        if not d:
            self.skipTest("docker-registry is not installed")
        self.addCleanup(lambda: (d.terminate(), d.wait(10)))
        self.assertEqual(dc.get("/v2/_catalog").json()["repositories"], ["both/app", "keep/latest"])
        self.assertEqual(dc.get("/v2/both/app/tags/list").json()["tags"], ["new"])
        self.assertEqual(sorted(dc.get("/v2/keep/latest/tags/list").json()["tags"]), ["t2", "t3"])
        self.assertTrue(berthtest.pulls_whole(dc, repo, "new"))
        self.assertTrue(berthtest.pulls_whole(dc, "keep/latest", "t2"))
        self.assertTrue(berthtest.pulls_whole(dc, "keep/latest", other["t1"]["digest"]))
        self.assertEqual(dc.get("/v2/%s/manifests/%s" % (repo, imgs["old"]["digest"])).status, 404)


PULLS = BASE + """policies:
  retention:
    interval: 0s
    pullflush: 50ms
    rules:
      - repository: pulled/.*
        keeppulledwithin: 1h
"""


class PullsServer(RetentionServer):
    """keeppulledwithin: pulls recorded by berth serve (GET by tag or by the digest a tag
    names; not HEAD), flushed to /berth/pulls/ in the store, read by `berth retention`."""
    CONFIG = PULLS

    def record(self, repo, ref):
        if ":" in ref:
            return os.path.join(self.root, "berth/pulls", repo, "_digests", *ref.split(":"))
        return os.path.join(self.root, "berth/pulls", repo, "_tags", ref)

    def write_record(self, repo, ref, seconds_ago):
        path = self.record(repo, ref)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("%d" % (time.time() - seconds_ago))

    def read_record(self, repo, ref):
        with open(self.record(repo, ref)) as f:
            return int(f.read())

    def wait_for_record(self, repo, ref):
        deadline = time.time() + 20
        while not os.path.exists(self.record(repo, ref)):
            self.assertLess(time.time(), deadline, "no pull record of %s %s" % (repo, ref))
            time.sleep(0.02)

    def pull(self, client, repo, ref, method="GET"):
        r = client.request(method, "/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": berthtest.OCI_MANIFEST})
        self.assertEqual(r.status, 200, r.describe())


class RetentionPullsTest(PullsServer):
    def test_pulled_tags_stay_unpulled_equally_old_ones_go_head_does_not_count(self):
        repo = "pulled/app"
        imgs = self.push_tags(repo, ["bytag", "bydigest", "headed", "never"])
        for tag in imgs:
            self.age_tag(repo, tag, 2 * HOUR)
        before = int(time.time())
        self.pull(self.c, repo, "bytag")
        self.pull(self.c, repo, imgs["bydigest"]["digest"])
        self.pull(self.c, repo, "headed", "HEAD")
        self.pull(self.c, repo, imgs["headed"]["digest"], "HEAD")
        self.stop()  # flushes what the last periodic flush did not write
        self.assertGreaterEqual(self.read_record(repo, "bytag"), before)
        self.assertGreaterEqual(self.read_record(repo, imgs["bydigest"]["digest"]), before)
        self.assertFalse(os.path.exists(self.record(repo, "headed")))
        self.assertFalse(os.path.exists(self.record(repo, imgs["headed"]["digest"])))
        out = self.retention("--dry-run")
        self.assertIn("would remove tag pulled/app:headed", out)
        self.assertIn("would remove tag pulled/app:never", out)
        self.assertNotIn(":bytag", out)
        self.assertNotIn(":bydigest", out)
        self.assertIn("2 tags and 0 untagged manifests would be removed", out)
        self.retention()
        self.proc, self.c, _ = start(self.CONFIG, self.tmp)  # the records survive the restart
        self.assertEqual(self.tags(repo), ["bydigest", "bytag"])
        # neither Distribution's layout nor berth fsck sees the records
        p = subprocess.run([BINARY, "fsck", self.root], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn(b"berth/pulls", p.stdout + p.stderr)
        self.assertEqual(self.c.get("/v2/_catalog").json()["repositories"], [repo])

    def test_records_written_by_hand_decide(self):
        repo = "pulled/hand"
        imgs = self.push_tags(repo, ["recent", "stale", "viadigest", "junk", "moved"])
        for tag in imgs:
            self.age_tag(repo, tag, 2 * HOUR)
        self.write_record(repo, "recent", 10 * 60)
        self.write_record(repo, "stale", 2 * HOUR)
        self.write_record(repo, imgs["viadigest"]["digest"], 10 * 60)
        with open(self.record(repo, "junk"), "w") as f:
            f.write("yesterday")  # unreadable: keeps nothing
        self.write_record(repo, "moved", 3 * HOUR)
        self.retention()
        self.assertEqual(self.tags(repo), ["recent", "viadigest"])
        # a removed tag's record goes with it, a deleted repository's records with it
        self.assertFalse(os.path.exists(self.record(repo, "stale")))
        self.assertTrue(os.path.exists(self.record(repo, "recent")))
        self.assertEqual(self.c.delete("/v2/_berth/repositories/%s" % repo).status, 202)
        self.assertFalse(os.path.exists(self.record(repo, "recent")))
        self.assertFalse(os.path.exists(self.record(repo, imgs["viadigest"]["digest"])))

    def test_two_instances_on_one_store_see_each_others_pulls(self):
        repo = "pulled/shared"
        imgs = self.push_tags(repo, ["x", "y", "z"])
        for tag in imgs:
            self.age_tag(repo, tag, 2 * HOUR)
        other_tmp = tempfile.mkdtemp(prefix="berth-policies-")
        self.addCleanup(shutil.rmtree, other_tmp, ignore_errors=True)
        proc, other, _ = start(self.CONFIG.replace("%(root)s", self.root), other_tmp)
        self.addCleanup(stop, proc)
        self.pull(self.c, repo, "x")
        self.pull(other, repo, "y")
        self.wait_for_record(repo, "x")  # each flushed by its periodic flush
        self.wait_for_record(repo, "y")
        # a newer stored pull (another instance's) is never overwritten by an older one
        future = int(time.time()) + HOUR
        with open(self.record(repo, "x"), "w") as f:
            f.write("%d" % future)
        self.pull(self.c, repo, "x")
        self.stop()  # flushes x's pull
        self.assertEqual(self.read_record(repo, "x"), future)
        self.retention()
        self.assertEqual(sorted(other.get("/v2/%s/tags/list" % repo).json()["tags"]), ["x", "y"])


MEMORY = BASE.replace("level: warn", "level: info") + """policies:
  retention:
    interval: 100ms
    pullflush: 1h
    rules:
      - repository: mem/.*
        keeppushedwithin: 30m
        keeppulledwithin: 1h
"""


class RetentionPullsInMemoryTest(PullsServer):
    CONFIG = MEMORY

    def test_serve_uses_the_pulls_it_has_not_flushed_yet(self):
        repo = "mem/app"
        for tag in ["pulled", "unpulled"]:  # new: kept by keeppushedwithin meanwhile
            self.c.push_image(repo, tag, seed=tag)
        self.pull(self.c, repo, "pulled")
        for tag in ["pulled", "unpulled"]:
            self.age_tag(repo, tag, 2 * HOUR)
        deadline = time.time() + 20
        while "unpulled" in self.tags(repo):
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        self.assertEqual(self.tags(repo), ["pulled"])
        self.assertFalse(os.path.exists(self.record(repo, "pulled")))  # in memory only
        self.stop()
        self.assertTrue(os.path.exists(self.record(repo, "pulled")))  # flushed at the stop
        self.retention()
        self.proc, self.c, _ = start(self.CONFIG, self.tmp)
        self.assertEqual(self.tags(repo), ["pulled"])

    def test_deleted_manifests_and_repositories_leave_no_records(self):
        repo, gone = "mem/deleted", "mem/gone"
        pulled = self.c.push_image(repo, "a", seed="deleted-a")["digest"]
        stored = self.c.push_image(repo, "b", seed="deleted-b")["digest"]
        other = self.c.push_image(gone, "t", seed="gone-t")["digest"]
        self.write_record(repo, stored, 60)  # flushed earlier
        self.pull(self.c, repo, pulled)  # in memory only (pullflush: 1h)
        self.pull(self.c, gone, "t")
        self.pull(self.c, gone, other)
        for digest in (pulled, stored):
            r = self.c.delete("/v2/%s/manifests/%s" % (repo, digest))
            self.assertEqual(r.status, 202, r.describe())
        self.assertFalse(os.path.exists(self.record(repo, stored)))
        # a tag deleted: its record goes, so the same tag pushed again starts with no pulls
        self.c.push_image(repo, "c", seed="deleted-c")
        self.write_record(repo, "c", 60)
        r = self.c.delete("/v2/%s/manifests/c" % repo)
        self.assertEqual(r.status, 202, r.describe())
        self.assertFalse(os.path.exists(self.record(repo, "c")))
        self.assertEqual(self.c.delete("/v2/_berth/repositories/%s" % gone).status, 202)
        self.stop()  # flushes what memory holds: nothing of what was deleted
        for name, ref in ((repo, pulled), (gone, "t"), (gone, other)):
            self.assertFalse(os.path.exists(self.record(name, ref)), "%s %s" % (name, ref))


class RetentionTimerTest(unittest.TestCase):
    def test_serve_applies_rules_on_its_timer_and_notifies(self):
        sink = Sink()
        self.addCleanup(sink.close)
        config = BASE.replace("level: warn", "level: info") + """notifications:
  endpoints:
    - name: sink
      url: %s
      timeout: 2s
      backoff: 100ms
policies:
  retention:
    interval: 1s
    rules:
      - repository: timer/.*
        keeplatest: 1
""" % sink.url.replace("%", "%%")
        proc, c, tmp = start(config)
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.addCleanup(stop, proc)
        old = c.push_image("timer/app", "old", seed="o")
        c.push_image("timer/app", "new", seed="n")
        link = os.path.join(tmp, "root/docker/registry/v2/repositories/timer/app/_manifests/tags/old/current/link")
        t = time.time() - HOUR
        os.utime(link, (t, t))
        deadline = time.time() + 10
        while time.time() < deadline and "old" in (c.get("/v2/timer/app/tags/list").json()["tags"] or []):
            time.sleep(0.1)
        self.assertEqual(c.get("/v2/timer/app/tags/list").json()["tags"], ["new"])
        deleted = []
        while time.time() < deadline and not deleted:
            deleted = [e for e in sink.events() if e["action"] == "delete"]
            time.sleep(0.05)
        self.assertEqual(len(deleted), 1, deleted)
        self.assertEqual(deleted[0]["target"]["repository"], "timer/app")
        self.assertEqual(deleted[0]["target"]["tag"], "old")
        with open(os.path.join(tmp, "log")) as f:
            log = f.read()
        self.assertIn("retention: removed tag timer/app:old (%s" % old["digest"], log)


class RetentionRaceTest(unittest.TestCase):
    def test_manifests_pushed_again_meanwhile_are_never_removed(self):
        """A tag moving back and forth between two manifests while serve applies
        untaggedafter: 0s every 10 ms: each manifest is untagged and old in turn, and pushed
        again right after. A removal decided before that push must be dropped (the decision is
        checked again under the repository's lock), or the tag would go with the manifest."""
        config = BASE.replace("level: warn", "level: info") + """policies:
  retention:
    interval: 10ms
    rules:
      - repository: race/.*
        untaggedafter: 0s
"""
        proc, c, tmp = start(config)
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.addCleanup(stop, proc)
        imgs = [c.push_image("race/app", None, seed="s%d" % i) for i in range(2)]
        revisions = os.path.join(tmp, "root/docker/registry/v2/repositories/race/app/_manifests/revisions")
        deadline = time.time() + 6
        n = 0
        while time.time() < deadline:
            img = imgs[n % 2]
            # The other one is untagged now: made old at once (mtimes are whole seconds, a push
            # refreshes its link), so that every run in this window removes it.
            other = imgs[(n + 1) % 2]["digest"].replace(":", "/", 1)
            try:
                os.utime(os.path.join(revisions, other, "link"), (time.time() - HOUR,) * 2)
            except FileNotFoundError:
                pass  # removed already
            r = c.put_manifest("race/app", "cur", img["manifest"])
            self.assertEqual(r.status, 201, r.describe())
            r = c.get("/v2/race/app/manifests/cur", headers={"Accept": berthtest.OCI_MANIFEST})
            self.assertEqual(r.status, 200, "after %d pushes: %s" % (n, r.describe()))
            self.assertEqual(r.header("Docker-Content-Digest"), img["digest"])
            n += 1
        with open(os.path.join(tmp, "log")) as f:
            log = f.read()
        # the rule did act: the manifest not tagged at some run went
        self.assertIn("retention: removed untagged manifest race/app@", log)


class BadRetentionConfigTest(unittest.TestCase):
    def assert_refused(self, policies, words):
        assert_refused(self, policies, words)

    def test_bad_values_and_misspelt_keys_are_refused_by_name(self):
        self.assert_refused("  retention:\n    rules:\n      - keeplatest: -1\n",
                            b"policies.retention.rules[0].keeplatest: must be between 0")
        self.assert_refused("  retention:\n    rules:\n      - keeptags: 'v[0-9'\n",
                            b"policies.retention.rules[0].keeptags: invalid regular expression")
        self.assert_refused("  retention:\n    rules:\n      - untaggedafter: 3 days\n",
                            b"policies.retention.rules[0].untaggedafter: expected a duration")
        self.assert_refused("  retention:\n    rules:\n      - keeplast: 3\n",
                            b"policies.retention.rules[0].keeplast: refused: unknown key")
        self.assert_refused("  retention:\n    dryrun: maybe\n",
                            b"policies.retention.dryrun: expected a boolean")
        self.assert_refused("  retention:\n    rules:\n      - keeppulledwithin: 3 days\n",
                            b"policies.retention.rules[0].keeppulledwithin: expected a duration")
        self.assert_refused("  retention:\n    pullflush: 0s\n",
                            b"policies.retention.pullflush: must be more than 0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
