"""Blob HEADs on S3 with the blob descriptor cache in Redis (storage.cache.blobdescriptor: redis),
the production model of several instances on one bucket sharing one Redis: Ceph's RADOS Gateway
on loopback (tests/fixtures/s3/) with tests/fixtures/s3/faultproxy.py in front of it as a
request log, Debian's redis-server (redis-up.sh), two berth instances on one bucket and one
Redis.

- A HEAD of a blob Redis holds makes no S3 request.
- A blob deleted through the other instance is not found afterwards (deletes clear Redis).
- Concurrent lookups of one blob share a Redis round trip, and only one sent after they
  arrived: with Redis stopped (SIGSTOP) while one lookup is in flight, the requests arriving
  meanwhile wait for the next round, one round trip for all of them once Redis goes on.
Skipped when radosgw or redis-server is not installed (scripts/install-deps.sh installs them).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import berthtest

FIXTURES = os.path.join(berthtest.SRC, "tests", "fixtures", "s3")
ROOT = "/redis"
WAITERS = 7  # requests arriving while the first one's lookup is in flight
PATIENCE = 60  # seconds a condition the test made may take to show (a stuck test fails)

state = {}


def _start_berth(name, endpoint):
    config = berthtest.s3_config(
        ROOT, state["rgw"], endpoint, chunksize=None, accesslog=False, delete=True, cache="redis", purging=False,
        debug=True, more="redis:\n  addr: 127.0.0.1:%d\n  readtimeout: 60s\n  writetimeout: 60s\n"
        % state["redis_port"])
    # no background look for writers that bump no generation: its requests would mix with the
    # ones counted (test-only knob, README)
    return berthtest.start_s3_module_berth(state, name, config, {"BERTH_TEST_LOOK_INTERVAL_MS": str(3600 * 1000)})


def redis_pid():
    with open(os.path.join(state["tmp"], "redis", "redis.pid")) as f:
        return int(f.read().strip())


def stop_redis():
    try:
        pid = redis_pid()
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGCONT)  # a test that failed while it was stopped
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def setUpModule():
    if not (shutil.which("radosgw") and shutil.which("ceph-mon")):
        raise unittest.SkipTest("radosgw and ceph-mon are not installed")
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        raise unittest.SkipTest("redis-server is not installed")
    tmp = state["tmp"] = tempfile.mkdtemp(prefix="berth-s3redis-")
    try:
        env = state["rgw"] = berthtest.start_rgw(tmp, "redis")
        state["redis_port"] = berthtest.free_port()
        subprocess.run([os.path.join(FIXTURES, "redis-up.sh"), os.path.join(tmp, "redis"),
                        str(state["redis_port"])], check=True, timeout=30)
        state["log"] = os.path.join(tmp, "requests.log")
        logged = berthtest.start_s3_faultproxy(state, "proxy", env["S3_ENDPOINT"], ["--log-file", state["log"]])
        # "counted" reaches S3 through the request log; "other" directly, as another instance.
        state["counted"] = _start_berth("counted", logged)
        state["other"] = _start_berth("other", env["S3_ENDPOINT"])
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    if "tmp" in state:
        stop_redis()
    berthtest.stop_s3_module(state, ("proxy",))


def s3_requests(action):
    """The S3 requests berth "counted" made during action(): a list of (method, target)."""
    return berthtest.logged_requests(state["log"], action)


def metric(client, name):
    text = client.debug.get("/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "no %s in the metrics:\n%s" % (name, text[:3000])
    return int(m.group(1))


def redis_calls(command):
    """How many times Redis ran command so far (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-p", str(state["redis_port"]), "info", "commandstats"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    m = re.search(r"^cmdstat_%s:calls=(\d+)," % command, out, re.M)
    return int(m.group(1)) if m else 0


class S3Redis(berthtest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c, cls.other = state["counted"], state["other"]

    def setUp(self):
        pass  # the module's own servers, not berthtest's

    def pushed_blob(self, name):
        repo = self.repo(name)
        digest = self.other.push_blob(repo, os.urandom(2048))
        path = "/v2/%s/blobs/%s" % (repo, digest)
        r = self.c.head(path)  # a miss at most: S3, then Redis holds it
        self.assertEqual(r.status, 200, r.describe())
        return path

    def test_head_from_redis_makes_no_s3_request(self):
        path = self.pushed_blob("nos3")
        hits = metric(self.c, 'berth_redis_cache_requests_total{result="hit"}')
        statuses = []
        reqs = s3_requests(lambda: statuses.extend(self.c.head(path).status for _ in range(20)))
        self.assertEqual(statuses, [200] * 20)
        self.assertEqual(reqs, [])
        self.assertGreaterEqual(metric(self.c, 'berth_redis_cache_requests_total{result="hit"}'), hits + 20)

    def test_blob_deleted_through_another_instance(self):
        path = self.pushed_blob("deleted")
        self.assertEqual(self.c.head(path).status, 200)
        r = self.other.delete(path)
        self.assertEqual(r.status, 202, r.describe())
        r = self.c.head(path)
        self.assertEqual(r.status, 404, r.describe())

    def test_concurrent_lookups_share_a_round_trip(self):
        path = self.pushed_blob("shared")
        busy = "berth_workers_busy"
        self.assertEqual(metric(self.c, busy), 0)
        calls = redis_calls("sismember")
        shared = metric(self.c, "berth_redis_cache_shared_total")
        pid = redis_pid()
        statuses, errors = [], []

        def head():
            try:
                statuses.append(self.c.head(path).status)
            except Exception as e:  # reported by the test, not lost in a thread
                errors.append("%s: %s" % (type(e).__name__, e))

        first = threading.Thread(target=head)
        others = [threading.Thread(target=head) for _ in range(WAITERS)]
        os.kill(pid, signal.SIGSTOP)
        try:
            # The first lookup is sent and waits on Redis; only then do the others arrive.
            first.start()
            self.assertTrue(berthtest.wait_until(lambda: metric(self.c, busy) == 1, timeout=PATIENCE))
            for t in others:
                t.start()
            self.assertTrue(berthtest.wait_until(lambda: metric(self.c, busy) == 1 + WAITERS,
                                                 timeout=PATIENCE))
        finally:
            os.kill(pid, signal.SIGCONT)
        for t in [first] + others:
            t.join(PATIENCE)
        self.assertEqual(errors, [])
        self.assertEqual(statuses, [200] * (1 + WAITERS))
        # One round trip for the first, one for all that came while it was in flight.
        self.assertEqual(redis_calls("sismember") - calls, 2)
        self.assertEqual(metric(self.c, "berth_redis_cache_shared_total") - shared, WAITERS - 1)
        self.assertEqual(metric(self.c, 'berth_redis_cache_requests_total{result="error"}'), 0)


if __name__ == "__main__":
    unittest.main()
