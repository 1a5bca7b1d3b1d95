"""Online garbage collection with two berth instances on one store (registry/gc_shared.h): both
run the collection (every second, 3 s delay, deleteuntagged) while clients push and delete
through both, for BERTH_GC_INSTANCES_SECONDS (default 12 s on a filesystem root, 20 s on S3).
With BERTH_STORAGE=s3 (run so by tests/e2e/test_s3_suites.sh, on its RGW) the instances share
one bucket and rootdirectory; otherwise one filesystem root.

The pushers are test_gc_online's (HEAD then push each layer, shared and just-orphaned layers,
chunked and monolithic uploads, pauses before the manifest, indexes): a manifest refused for a
blob it checked less than the delay before fails the test. Afterwards every tag pulls whole
through the other instance, `berth fsck` is clean, nothing is left to collect (`berth
garbage-collect --dry-run -m` finds no blob and no manifest eligible), no run failed, and the
lease kept the collection to one instance at a time (the other skipped its runs).

And the stored-bytes quotas of the instance that does not collect follow what the other's
collection removed (it counts them again when the store's generation changes).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import berthtest
import test_gc_online
from berthtest import digest

S3 = berthtest.s3_mode()
PUSH_SECONDS = float(os.environ.get("BERTH_GC_INSTANCES_SECONDS", "20" if S3 else "12"))
PUSHERS = 4
# Across instances the age rule alone covers a push's own steps (a manifest PUT from its checks
# to its revision link must end within the delay; in one process the sweep lock covers them),
# and manifest PUTs took up to half a second on a 2-core machine at load 30: 3 s leaves them
# room (BERTH_GC_INSTANCES_DELAY changes it); the pushers' pauses and their check of refused
# manifests scale with it.
DELAY = float(os.environ.get("BERTH_GC_INSTANCES_DELAY", "3"))
test_gc_online.DELAY = DELAY

CONFIG = """version: 0.1
log:
  level: %(loglevel)s
%(storage)s  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
    gc:
      enabled: true
      interval: 1s
      delay: %(delay)dms
      deleteuntagged: true
http:
  addr: 127.0.0.1:%%(port)d
  secret: shared-between-the-instances
  debug:
    addr: 127.0.0.1:%%(debugport)d
    prometheus:
      enabled: true
"""


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else 0


class Instances(unittest.TestCase):
    """Two instances on one store (start() each), same configuration."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="berth-gc-instances-")
        if not os.environ.get("BERTH_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        if S3:
            storage = berthtest.s3_storage_yaml("/gc-instances-%d-%d" % (os.getpid(), int(time.time())))
        else:
            storage = "storage:\n  filesystem:\n    rootdirectory: %s\n" % os.path.join(self.tmp, "root")
        self.config = CONFIG % {"storage": storage, "delay": DELAY * 1000,
                                "loglevel": os.environ.get("BERTH_GC_LOG_LEVEL", "info")}
        self.procs = []

    def start(self, name):
        proc, client, tmp = berthtest.start_with_config(self.config, "berth-gc-inst-%s-" % name,
                                                        tempfile.mkdtemp(dir=self.tmp))
        self.procs.append(proc)
        self.addCleanup(self.stop, proc)
        return client, tmp

    def stop(self, proc):
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)

    def metrics(self, tmp):
        with open(os.path.join(tmp, "config.yml")) as f:
            cfg = f.read()
        addr = re.search(r"debug:\n    addr: (\S+)", cfg).group(1)
        return berthtest.Client("http://" + addr).get("/metrics").body.decode()

    def leftovers(self, cfg):
        """(blobs, manifests) `garbage-collect --dry-run -m` finds eligible."""
        r = berthtest.run_berth(["garbage-collect", "--dry-run", "--delete-untagged", "--quiet", cfg],
                                timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
        m = re.search(r"(\d+) manifests and \d+ layer links eligible", r.stdout)
        b = re.search(r"(\d+) blobs eligible for deletion", r.stdout)
        return int(b.group(1)), int(m.group(1))


class TwoInstancesCollect(Instances):
    def test_pushes_through_both_lose_nothing(self):
        (ca, ta), (cb, tb) = self.start("a"), self.start("b")
        clients = [ca, cb]
        pushers = test_gc_online.push_concurrently(self, clients, PUSHERS, PUSH_SECONDS)
        pushed = sum(p.pushed for p in pushers)
        self.assertGreater(pushed, 10, "too few pushes to mean anything")

        # every tag pulls whole through the instance that did not take its push
        check = test_gc_online.OnlineGCStress("pull_whole")
        for p in pushers:
            other = clients[(p.n + 1) % 2]
            for repo, tag in p.tags:
                check.pull_whole(other, repo, tag)

        # nothing is pushed now: the collection (by whichever instance holds the lease) takes
        # every leftover once older than the delay
        cfg = os.path.join(ta, "config.yml")
        left = (None, None)
        for _ in range(30):
            time.sleep(DELAY + 0.5)
            left = self.leftovers(cfg)
            if left == (0, 0):
                break
        self.assertEqual(left, (0, 0), "blobs and manifests left uncollected")

        ma, mb = self.metrics(ta), self.metrics(tb)
        runs = [metric(m, 'berth_gc_runs_total{result="ok"}') for m in (ma, mb)]
        skipped = [metric(m, 'berth_gc_runs_total{result="skipped"}') for m in (ma, mb)]
        failed = [metric(m, 'berth_gc_runs_total{result="failed"}') for m in (ma, mb)]
        deleted = sum(metric(m, "berth_gc_blobs_deleted_total") for m in (ma, mb))
        print("\n%d images pushed through 2 instances, %d manifest PUTs retried after a layer "
              "was collected; runs %s, skipped %s (lease), %d blobs deleted" % (
                  pushed, sum(p.retried for p in pushers), runs, skipped, deleted))
        self.assertEqual(failed, [0, 0], ma + mb)
        self.assertGreaterEqual(sum(runs), 2)
        self.assertGreater(sum(skipped), 0, "the lease let both instances collect every time")
        self.assertGreater(deleted, 0)

        for proc in self.procs:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=60), 0)
        for t in (ta, tb):
            with open(os.path.join(t, "log"), "rb") as f:
                log = f.read().decode("utf-8", "replace")
            self.assertNotIn("level=error", log, log[-3000:])
            done = [l for l in log.splitlines() if "garbage collection: done" in l]
            if done:
                print(done[len(done) // 2][done[len(done) // 2].find("done"):])
        r = subprocess.run([berthtest.berth_bin(), "fsck", cfg], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])


QUOTA = """policies:
  quotas:
    - repository: q/.*
      bytes: 3000
"""


class TwoInstancesQuota(Instances):
    def setUp(self):
        super().setUp()
        self.config += QUOTA

    def push(self, c, repo, data):
        r = c.start_upload(repo)
        return c.put(c.resolve(r.header("Location"), {"digest": digest(data)}), data,
                     headers={"Content-Type": "application/octet-stream"})

    def test_bytes_counted_again_after_the_other_collects(self):
        # a holds the lease before b starts: b never collects
        ca, ta = self.start("a")
        self.assertTrue(berthtest.wait_until(
            lambda: metric(self.metrics(ta), 'berth_gc_runs_total{result="ok"}') > 0, timeout=60))
        cb, tb = self.start("b")
        test_gc_online.push_untagged_image(self, cb, "q/a")
        # untagged: a collects it all; 2500 more bytes fit in b's 3000 only once b has
        # counted again (it counted 1200 + the config + the manifest itself)
        big = b"B" * 2500
        self.assertTrue(berthtest.wait_until(lambda: self.push(cb, "q/b", big).status == 201,
                                             timeout=60, interval=0.5),
                        "b kept counting what a collected")
        r = self.push(cb, "q/b", b"C" * 600)
        self.assertEqual(r.status, 403, r.describe())
        self.assertIn("quota exceeded: bytes (2500 of 3000 stored, this blob adds 600)",
                      r.json()["errors"][0]["message"])
        self.assertEqual(metric(self.metrics(tb), 'berth_gc_runs_total{result="ok"}'), 0)


if __name__ == "__main__":
    berthtest.main()
