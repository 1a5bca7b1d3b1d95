"""Online garbage collection (storage.maintenance.gc) under concurrent pushes: the issue's 60 s
stress test, plus the configuration it is refused with, and which requests restart a blob's age.

For about 50 s, pushers push new images continuously (layers shared with images being
deleted, layers of images that were just untagged pushed again, chunked and monolithic
uploads, HEAD before each layer as clients do, pauses between the layers and the manifest,
indexes whose children go first by digest) and delete tags, while the collection runs every
second with a 1 s delay and deleteuntagged. Then: every tag pulls whole (each blob hashes to
its digest), `berth fsck` is clean (no orphan blob, nothing dangling), every blob no manifest
references is gone, and no push was refused a blob it had checked or pushed less than the
delay before (that would be the collection deleting what a push needed).
"""

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import berthtest
from berthtest import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, canonical, descriptor, digest

DELAY = 1.0
PUSH_SECONDS = float(os.environ.get("BERTH_GC_STRESS_SECONDS", "50"))
PUSHERS = 6
REPOS = ["stress/a", "stress/b", "stress/c"]

CONFIG = """version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %(root)s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    gc:
      enabled: true
      interval: 1s
      delay: 1s
      deleteuntagged: true
http:
  addr: 127.0.0.1:%(port)d
  debug:
    addr: 127.0.0.1:%(debugport)d
    prometheus:
      enabled: true
"""


class Violation(Exception):
    pass


class Pusher:
    """One client pushing and deleting in a loop (a thread)."""

    def __init__(self, t, n, client, deadline):
        self.t = t
        self.n = n
        self.c = client
        self.deadline = deadline
        self.rnd = random.Random(1000 + n)
        self.tags = []  # (repo, tag) this pusher pushed and did not delete
        self.pushed = 0
        self.retried = 0
        self.error = None

    # -- blobs --

    def head(self, repo, d):
        return self.c.head("/v2/%s/blobs/%s" % (repo, d)).status

    def upload(self, repo, data):
        """Monolithic (POST + PUT) or chunked (POST, PATCHes, PUT), at random."""
        d = digest(data)
        r = self.c.start_upload(repo)
        loc = r.header("Location")
        if self.rnd.random() < 0.5:
            r = self.c.put(self.c.resolve(loc, {"digest": d}), data,
                           headers={"Content-Type": "application/octet-stream"})
        else:
            half = len(data) // 2
            off = 0
            for part in (data[:half], data[half:]):
                r = self.c.patch(self.c.resolve(loc), part, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": "%d-%d" % (off, off + len(part) - 1)})
                if r.status != 202:
                    raise AssertionError("PATCH" + r.describe())
                off += len(part)
                loc = r.header("Location")
                if self.rnd.random() < 0.3:
                    time.sleep(self.rnd.uniform(0, 0.3))
            r = self.c.put(self.c.resolve(loc, {"digest": d}), b"")
        if r.status != 201:
            raise AssertionError("blob upload" + r.describe())

    def ensure(self, repo, data, seen):
        """What a client does per layer: HEAD, and push only if missing. Records when the
        check or push started: the blob's age is refreshed after that."""
        d = digest(data)
        started = time.time()
        if self.head(repo, d) != 200:
            self.upload(repo, data)
        seen[d] = (started, data)
        with self.t.lock:
            self.t.layer_bytes[d] = data
        return d

    def put_manifest(self, repo, ref, body, media_type, seen):
        """PUT; on MANIFEST_BLOB_UNKNOWN, the blob named must have been checked more than the
        delay before the answer (else the collection took what this push needed), and the
        client pushes it again and retries, as a retrying client would."""
        for _ in range(5):
            r = self.c.put_manifest(repo, ref, body, media_type)
            answered = time.time()
            if r.status == 201:
                return digest(body)
            if r.status != 400 or "MANIFEST_BLOB_UNKNOWN" not in r.error_codes():
                raise AssertionError("manifest PUT" + r.describe())
            m = re.search(r"sha256:[0-9a-f]{64}", r.body.decode("utf-8", "replace"))
            missing = m.group(0) if m else None
            if missing not in seen:
                raise AssertionError("manifest PUT: unknown blob %s" % missing + r.describe())
            checked, data = seen[missing]
            # (50 ms for the coarse clock file times are taken from)
            if answered - checked < DELAY - 0.05:
                raise Violation("%s: blob %s checked %.3fs before the manifest's answer was "
                                "collected (delay %.1fs)" % (repo, missing, answered - checked,
                                                             DELAY))
            self.retried += 1
            if isinstance(data, bytes):
                self.ensure(repo, data, seen)
            else:  # a child manifest: push it again
                self.put_manifest(repo, missing, data[0], data[1], seen)
                seen[missing] = (time.time(), data)
        raise AssertionError("manifest PUT kept failing")

    # -- images --

    def image(self, repo, seed, seen):
        """Pushes a config and 1-3 layers (shared, just orphaned, or new); returns the
        manifest body, unpushed."""
        config = canonical({"architecture": "amd64", "os": "linux", "seed": seed})
        cd = self.ensure(repo, config, seen)
        layers = []
        for i in range(self.rnd.randint(1, 3)):
            roll = self.rnd.random()
            if roll < 0.35:
                data = self.t.shared[self.rnd.randrange(len(self.t.shared))]
            elif roll < 0.6 and self.t.orphaned:
                with self.t.lock:
                    data = self.rnd.choice(self.t.orphaned)
            else:
                data = ("layer %s %d " % (seed, i)).encode() * self.rnd.randint(10, 400)
            self.ensure(repo, data, seen)
            layers.append(descriptor(data, OCI_LAYER))
        body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
                          "layers": layers})
        return body, layers

    def pause(self):
        if self.rnd.random() < 0.4:
            time.sleep(self.rnd.uniform(0.05, DELAY * 0.6))

    def push_one(self, k):
        repo = self.rnd.choice(REPOS)
        tag = "p%d-%d" % (self.n, k)
        seen = {}
        if self.rnd.random() < 0.2:
            # an index: children by digest first (untagged until the index comes)
            children = []
            for j in range(2):
                body, _ = self.image(repo, "%s-%d-child%d" % (tag, k, j), seen)
                self.pause()
                d = self.put_manifest(repo, digest(body), body, OCI_MANIFEST, seen)
                seen[d] = (time.time(), (body, OCI_MANIFEST))
                children.append(dict(descriptor(body, OCI_MANIFEST),
                                     platform={"os": "linux", "architecture": "arch%d" % j}))
            self.pause()
            index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                               "manifests": children})
            self.put_manifest(repo, tag, index, OCI_INDEX, seen)
        else:
            body, _ = self.image(repo, "%s-%d" % (tag, k), seen)
            self.pause()
            self.put_manifest(repo, tag, body, OCI_MANIFEST, seen)
        self.tags.append((repo, tag))
        self.pushed += 1

    def delete_some(self):
        """Deletes an older tag of this pusher; its layers become candidates to push again."""
        if len(self.tags) < 3 or self.rnd.random() < 0.4:
            return
        repo, tag = self.tags.pop(self.rnd.randrange(len(self.tags) - 1))
        r = self.c.get("/v2/%s/manifests/%s" % (repo, tag), headers=berthtest.ACCEPT_ALL)
        if r.status != 200:
            raise AssertionError("GET before delete" + r.describe())
        m = json.loads(r.body)
        r = self.c.delete("/v2/%s/manifests/%s" % (repo, tag))
        if r.status != 202:
            raise AssertionError("tag DELETE" + r.describe())
        if "layers" in m:
            # the layer bytes are rebuilt from the seed only for new layers: keep the shared
            # and orphaned ones we know the bytes of
            known = {digest(x): x for x in self.t.shared}
            with self.t.lock:
                known.update({digest(x): x for x in self.t.orphaned})
                for l in m["layers"]:
                    data = known.get(l["digest"]) or self.t.layer_bytes.get(l["digest"])
                    if data is not None:
                        self.t.orphaned.append(data)
                del self.t.orphaned[:-50]

    def run(self):
        try:
            k = 0
            while time.time() < self.deadline:
                self.push_one(k)
                k += 1
                self.delete_some()
        except BaseException as e:  # reported by the test's thread
            self.error = e


def push_untagged_image(t, c, repo):
    """A 1200-byte layer, its config and their image manifest pushed untagged (by digest) to
    repo through client c, the manifest PUT checked by test case t: (layer, config, body)."""
    layer, config = b"L" * 1200, canonical({"os": "linux", "architecture": "amd64"})
    for data in (layer, config):
        c.push_blob(repo, data)
    body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": descriptor(config, OCI_CONFIG),
                      "layers": [descriptor(layer, OCI_LAYER)]})
    t.assertEqual(c.put_manifest(repo, digest(body), body).status, 201)
    return layer, config, body


def push_concurrently(t, clients, count, seconds):
    """count Pushers for seconds, pusher n on clients[n % len(clients)], sharing the layers and
    the records they keep on t (a test case); the first pusher's failure is raised. Returns
    the pushers."""
    t.shared = [("shared layer %d " % i).encode() * (50 + i) for i in range(12)]
    t.orphaned = []
    t.layer_bytes = {}
    t.lock = threading.Lock()
    deadline = time.time() + seconds
    pushers = [Pusher(t, n, clients[n % len(clients)], deadline) for n in range(count)]
    threads = [threading.Thread(target=p.run) for p in pushers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for p in pushers:
        if p.error:
            raise p.error
    return pushers


class OnlineGCStress(berthtest.OpsTestCase):
    def test_concurrent_pushes_lose_nothing(self):
        proc, c, tmp = berthtest.start_with_config(CONFIG, "berth-gc-online-")
        root = os.path.join(tmp, "root")
        try:
            pushers = push_concurrently(self, [c], PUSHERS, PUSH_SECONDS)
            pushed = sum(p.pushed for p in pushers)
            self.assertGreater(pushed, 50, "too few pushes to mean anything")

            # Every tag pulls whole.
            tags = [t for p in pushers for t in p.tags]
            for repo, tag in tags:
                self.pull_whole(c, repo, tag)

            # Nothing is pushed now: two more runs after the delay collect every leftover.
            time.sleep(DELAY + 3.5)
            metrics = berthtest.Client("http://" + self.debug_addr(tmp)).get("/metrics")
            metrics = metrics.body.decode()
            runs = int(re.search(r'berth_gc_runs_total\{result="ok"\} (\d+)', metrics).group(1))
            failed = int(re.search(r'berth_gc_runs_total\{result="failed"\} (\d+)',
                                   metrics).group(1))
            deleted = int(re.search(r"berth_gc_blobs_deleted_total (\d+)", metrics).group(1))
            print("\n%d images pushed, %d manifest PUTs retried after a layer was collected, "
                  "%d collection runs, %d blobs deleted" % (
                      pushed, sum(p.retried for p in pushers), runs, deleted))
            self.assertEqual(failed, 0, metrics)
            self.assertGreater(runs, PUSH_SECONDS / 2, metrics)
            self.assertGreater(deleted, 0, metrics)
        finally:
            proc.terminate()
            rc = proc.wait(timeout=60)
        with open(os.path.join(tmp, "log"), "rb") as f:
            log = f.read().decode("utf-8", "replace")
        self.assertEqual(rc, 0, log[-3000:])  # a clean stop (and no leak under the sanitizers)
        self.assertIn("garbage collection: done", log)
        # each run's line gives the time of each phase, the sweep notices' included
        self.assertRegex(log, r"garbage collection: done in [0-9.]+s \(mark [0-9.]+s, manifests [0-9.]+s, "
                              r"scan [0-9.]+s, blobs [0-9.]+s, layer links [0-9.]+s, notices [0-9.]+s\): ")
        self.assertNotIn("level=error", log)

        # fsck: no orphan, no dangling link, no missing reference
        r = subprocess.run([berthtest.berth_bin(), "fsck", root], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])

        # every blob no manifest references is gone (fsck's orphans, checked here directly),
        # and every manifest left is tagged or reached from a tag (deleteuntagged)
        blobs, referenced, untagged = self.scan(root)
        self.assertEqual(blobs - referenced, set())
        self.assertEqual(untagged, set())
        shutil.rmtree(tmp, ignore_errors=True)

    def debug_addr(self, tmp):
        cfg = open(os.path.join(tmp, "config.yml")).read()
        return re.search(r"debug:\n    addr: (\S+)", cfg).group(1)

    def pull_whole(self, c, repo, tag):
        r = c.get("/v2/%s/manifests/%s" % (repo, tag), headers=berthtest.ACCEPT_ALL)
        self.assertEqual(r.status, 200, r.describe())
        m = json.loads(r.body)
        refs = []
        if "manifests" in m:
            for child in m["manifests"]:
                r = c.get("/v2/%s/manifests/%s" % (repo, child["digest"]),
                          headers=berthtest.ACCEPT_ALL)
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(digest(r.body), child["digest"])
                cm = json.loads(r.body)
                refs += [cm["config"]] + cm["layers"]
        else:
            refs += [m["config"]] + m["layers"]
        for d in refs:
            r = c.get("/v2/%s/blobs/%s" % (repo, d["digest"]))
            self.assertEqual(r.status, 200, "%s:%s %s" % (repo, tag, r.describe()))
            self.assertEqual("sha256:" + hashlib.sha256(r.body).hexdigest(), d["digest"])

    def scan(self, root):
        """(blob digests, digests some revision references or is, revisions no tag reaches)."""
        v2 = os.path.join(root, "docker", "registry", "v2")
        blobs = set()
        for dirpath, _, files in os.walk(os.path.join(v2, "blobs", "sha256")):
            if "data" in files:
                blobs.add("sha256:" + os.path.basename(dirpath))
        referenced, untagged = set(), set()
        for repo in REPOS:
            rdir = os.path.join(v2, "repositories", repo, "_manifests")
            revs = set("sha256:" + h for h in os.listdir(os.path.join(rdir, "revisions", "sha256")))
            reach, stack = set(), []
            tdir = os.path.join(rdir, "tags")
            for t in os.listdir(tdir) if os.path.isdir(tdir) else []:
                with open(os.path.join(tdir, t, "current", "link")) as f:
                    stack.append(f.read().strip())
            bodies = {}
            for d in revs:
                with open(os.path.join(v2, "blobs", "sha256", d[7:9], d[7:], "data"), "rb") as f:
                    bodies[d] = json.loads(f.read())
                m = bodies[d]
                referenced.add(d)
                for x in [m.get("config")] + m.get("layers", []) + m.get("manifests", []):
                    if x:
                        referenced.add(x["digest"])
            while stack:
                d = stack.pop()
                if d in reach or d not in bodies:
                    continue
                reach.add(d)
                stack += [x["digest"] for x in bodies[d].get("manifests", [])]
            untagged |= set("%s@%s" % (repo, d) for d in revs - reach)
        return blobs, referenced, untagged


QUOTA_CONFIG = CONFIG + """policies:
  quotas:
    - repository: q/.*
      bytes: 3000
"""


class OnlineGCQuota(unittest.TestCase):
    """What the collection removes leaves the stored-bytes quotas (policies.quotas[].bytes)
    counted in memory: a push after it is checked against what is stored, not what was."""

    def test_collected_links_leave_the_bytes_usage(self):
        proc, c, tmp = berthtest.start_with_config(QUOTA_CONFIG, "berth-gc-quota-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        v2 = os.path.join(tmp, "root", "docker", "registry", "v2", "repositories", "q", "a")
        try:
            layer, config, body = push_untagged_image(self, c, "q/a")
            # untagged: deleteuntagged collects the manifest, then its config and layer
            links = [os.path.join(v2, "_manifests", "revisions", "sha256", digest(body)[7:]),
                     os.path.join(v2, "_layers", "sha256", digest(layer)[7:]),
                     os.path.join(v2, "_layers", "sha256", digest(config)[7:])]
            self.assertTrue(berthtest.wait_until(
                lambda: not any(os.path.exists(p) for p in links), timeout=60), links)
            # 2500 bytes fit in 3000 only if the collected 1200 + config + manifest left the count
            c.push_blob("q/b", b"B" * 2500)
            r = c.start_upload("q/b")
            r = c.put(c.resolve(r.header("Location"), {"digest": digest(b"C" * 600)}), b"C" * 600,
                      headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(r.status, 403, r.describe())
            self.assertIn("quota exceeded: bytes (2500 of 3000 stored, this blob adds 600)",
                          r.json()["errors"][0]["message"])
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=60), 0)
        r = berthtest.run_berth(["usage", os.path.join(tmp, "config.yml")])
        self.assertIn("bytes 2500/3000", r.stdout, r.stdout + r.stderr)


AGES_CONFIG = """version: 0.1
storage:
  filesystem:
    rootdirectory: %(root)s
  maintenance:
    gc:
      enabled: true
      interval: 1h
      delay: 1h
http:
  addr: 127.0.0.1:%(port)d
"""
REDIRECT = """middleware:
  storage:
    - name: redirect
      options:
        baseurl: https://cdn.example.com/
"""


class OnlineGCAges(unittest.TestCase):
    """What restarts a blob's age (its data's mtime): a HEAD (a pusher checking a layer it will
    reference) does; a pull, a GET plain, conditional or redirected, does not (on S3 each
    refresh is a CopyObject)."""

    def serve(self, config):
        proc, c, tmp = berthtest.start_with_config(config, "berth-gc-ages-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(timeout=60)))
        d = c.push_blob("ages/app", b"a layer pulled, then checked by a pusher")
        path = os.path.join(tmp, "root", "docker", "registry", "v2", "blobs", "sha256", d[7:9], d[7:], "data")
        old = time.time() - 7200
        os.utime(path, (old, old))
        return c, d, path, old

    def check(self, config, pulls):
        c, d, path, old = self.serve(config)
        url = "/v2/ages/app/blobs/%s" % d
        for headers, status in pulls:
            r = c.get(url, headers=headers)
            self.assertEqual(r.status, status, r.describe())
            self.assertEqual(os.stat(path).st_mtime, old, "a %d GET refreshed the age" % status)
        self.assertEqual(c.head(url).status, 200)
        self.assertGreater(os.stat(path).st_mtime, time.time() - 60, "a HEAD did not refresh the age")

    def test_head_refreshes_get_does_not(self):
        self.check(AGES_CONFIG, [({}, 200)])

    def test_conditional_get_does_not_refresh(self):
        c, d, path, old = self.serve(AGES_CONFIG)
        r = c.get("/v2/ages/app/blobs/%s" % d, headers={"If-None-Match": '"%s"' % d})
        self.assertEqual(r.status, 304, r.describe())
        self.assertEqual(os.stat(path).st_mtime, old)

    def test_redirected_get_does_not_refresh(self):
        self.check(AGES_CONFIG + REDIRECT, [({}, 307)])


class OnlineGCConfig(berthtest.OpsTestCase):
    def refused(self, gc_lines, key):
        tmp = tempfile.mkdtemp(prefix="berth-gc-cfg-", dir=self.tmp)
        cfg = os.path.join(tmp, "config.yml")
        with open(cfg, "w") as f:
            f.write("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  maintenance:\n    gc:\n%s" % (os.path.join(tmp, "root"), gc_lines))
        r = berthtest.run_berth(["serve", cfg, "--addr", "127.0.0.1:%d" % berthtest.free_port()])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(key, r.stdout + r.stderr)

    def test_bad_values_are_refused_by_name(self):
        self.refused("      enabled: true\n      delay: 0s\n", "storage.maintenance.gc.delay")
        self.refused("      enabled: true\n      interval: 0\n", "storage.maintenance.gc.interval")
        self.refused("      enabled: maybe\n", "storage.maintenance.gc.enabled")
        self.refused("      interval: soon\n", "storage.maintenance.gc.interval")
        self.refused("      deleteuntagged: 3\n", "storage.maintenance.gc.deleteuntagged")


if __name__ == "__main__":
    berthtest.main()
